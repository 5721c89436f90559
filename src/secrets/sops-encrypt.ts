// A plaintext tree made into the text of a SOPS YAML file, as sops 3.9
// writes one: every leaf the rule selects AES-256-GCM-encrypted under the
// data key, the MAC over the plaintext encrypted with lastmodified as its
// associated data, and the data key age-encrypted (armored) to each
// recipient.
import { randomBytes } from 'node:crypto';
import { ageEncrypt, armor, parseAgeRecipient } from './age.js';
import { SecretsError } from './errors.js';
import { nowRfc3339, writeMetadata, type AgeEntry, type SopsMetadata } from './sops-metadata.js';
import { emitYaml } from './sops-stores.js';
import { DEFAULT_RULE, encryptTree, type CryptRule } from './sops-tree.js';
import { encryptEnc, type SopsMap } from './sops-value.js';

export interface EncryptOptions {
  /** age recipients (`age1...`) the data key is encrypted to. */
  recipients: readonly string[];
  /** Default: a new random key. Pass the file's own to keep it (with ageEntries, to keep them too). */
  dataKey?: Buffer;
  /** The file's existing `sops.age` entries for these recipients, kept as they are (no new age files). */
  ageEntries?: readonly AgeEntry[];
  rule?: CryptRule;
  macOnlyEncrypted?: boolean;
  /** Key services besides age to keep (pgp, kms, ...), as read. */
  others?: SopsMap;
  now?: Date;
}

export function newDataKey(): Buffer {
  return randomBytes(32);
}

/** age entries for the recipients: the existing one where a recipient has one, else a new age file of the key. */
export function ageEntriesFor(recipients: readonly string[], dataKey: Buffer, existing: readonly AgeEntry[] = []): AgeEntry[] {
  if (recipients.length === 0) throw new SecretsError('last_recipient', 'a SOPS file needs at least one age recipient');
  return recipients.map((recipient) => {
    parseAgeRecipient(recipient);
    return existing.find((e) => e.recipient === recipient) ?? { recipient, enc: armor(ageEncrypt(dataKey, [recipient])) };
  });
}

export function encryptSopsYaml(plain: SopsMap, o: EncryptOptions): string {
  const dataKey = o.dataKey ?? newDataKey();
  if (dataKey.length !== 32) throw new SecretsError('bad_data_key', 'the data key must be 32 bytes');
  const rule = o.rule ?? DEFAULT_RULE;
  const macOnlyEncrypted = o.macOnlyEncrypted ?? false;
  const { tree, mac } = encryptTree(plain, dataKey, { rule, macOnlyEncrypted });
  const lastmodified = nowRfc3339(o.now);
  const md: SopsMetadata = {
    age: ageEntriesFor(o.recipients, dataKey, o.ageEntries),
    lastmodified,
    mac: encryptEnc(mac, dataKey, lastmodified),
    rule,
    macOnlyEncrypted,
    version: '',
    others: o.others ?? new Map(),
  };
  return emitYaml(tree, writeMetadata(md));
}
