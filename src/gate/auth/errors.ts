// Authentication failures of the gate's first stage (lease + DPoP) and of
// lease issuance. Each carries one of the API's wire codes (README, HTTP API; plus
// `lease_revoked`); the HTTP layer maps it to a status with AUTH_ERROR_STATUS
// and answers {"error": code, "message": message}.

import { statusOf } from '../errors.js';

export type AuthErrorCode =
  | 'missing_auth_header'
  | 'invalid_auth_scheme'
  | 'missing_dpop_header'
  | 'invalid_dpop'
  | 'invalid_lease'
  | 'lease_expired'
  | 'key_binding_failed'
  | 'replay_detected'
  | 'replay_cache_unavailable'
  | 'lease_revoked'
  | 'scope_not_permitted'
  | 'invalid_request';

const AUTH_CODES: readonly AuthErrorCode[] = [
  'missing_auth_header', 'invalid_auth_scheme', 'missing_dpop_header', 'invalid_dpop', 'invalid_lease', 'lease_expired',
  'key_binding_failed', 'replay_detected', 'lease_revoked', 'replay_cache_unavailable', 'scope_not_permitted', 'invalid_request',
];

/** The statuses come from the gate's one table (src/gate/errors.ts). */
export const AUTH_ERROR_STATUS: Readonly<Record<AuthErrorCode, number>> = Object.freeze(
  Object.fromEntries(AUTH_CODES.map((c) => [c, statusOf(c)])) as Record<AuthErrorCode, number>,
);

export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    readonly code: AuthErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The HTTP status this failure is answered with. */
  get status(): number {
    return AUTH_ERROR_STATUS[this.code];
  }

  toJSON(): { error: AuthErrorCode; message: string } {
    return { error: this.code, message: this.message };
  }
}

const MAX_ECHO = 120;

/**
 * Makes an attacker-supplied value safe to quote in an error message (which
 * ends up in logs, audit events and HTTP bodies): control characters
 * replaced, length capped.
 */
export function echo(value: unknown): string {
  let s: string;
  try {
    s = typeof value === 'string' ? JSON.stringify(value) : String(JSON.stringify(value));
  } catch {
    s = '<unprintable>';
  }
  // eslint-disable-next-line no-control-regex
  s = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?');
  return s.length > MAX_ECHO ? `${s.slice(0, MAX_ECHO)}...` : s;
}
