// Every failure of reading, writing or decrypting a secrets file is a
// SecretsError: one code per kind of failure (tests and callers branch on
// it), the file and the key path where they are known, and a message that
// says what to do.

export type SecretsErrorCode =
  | 'file_unreadable' | 'file_too_large' | 'malformed_file' | 'missing_metadata' | 'bad_metadata'
  | 'unsupported_format' | 'unsupported_key_groups' | 'unsupported_recipient' | 'no_age_recipient'
  | 'no_matching_identity' | 'no_identity' | 'bad_identity' | 'identity_file_permissions' | 'bad_recipient'
  | 'age_armor' | 'age_header' | 'age_stanza' | 'age_header_mac' | 'age_payload' | 'bad_data_key'
  | 'bad_value' | 'value_auth_failed' | 'unencrypted_value' | 'mac_only_encrypted'
  | 'mac_auth_failed' | 'mac_mismatch'
  | 'secret_unusable' | 'too_many_stanzas' | 'bad_name' | 'no_such_secret' | 'no_such_recipient' | 'unsupported_key_service' | 'exists' | 'last_recipient' | 'lockout' | 'locked' | 'write_failed';

export class SecretsError extends Error {
  readonly code: SecretsErrorCode;
  readonly file?: string;
  readonly keyPath?: string;

  constructor(code: SecretsErrorCode, message: string, where: { file?: string; keyPath?: string } = {}) {
    super(message);
    this.name = 'SecretsError';
    this.code = code;
    if (where.file !== undefined) this.file = where.file;
    if (where.keyPath !== undefined) this.keyPath = where.keyPath;
  }
}

