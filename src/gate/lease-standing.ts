// Whether the lease a plan was made under still stands: issued in the
// current revocation epoch, not expired, and (when it came through a client
// token) that token neither revoked nor expired. Authentication checks this
// when a request arrives; a plan is checked again where it is committed
// (reserveAndSignGrant), since a revocation may land while the run waits
// (the policy engine, a provider's first compile, a human's approval).
import type { ClientTokens } from './tokens.js';

/** The client tokens' standing, for a lease issued through one. */
export type TokenCheck = Pick<ClientTokens, 'problem'>;

/** The lease fields a plan's session holds. */
export interface LeaseFields {
  lease_epoch?: unknown;
  lease_expires_at?: unknown;
  token_id?: unknown;
}

export type LeaseCause = 'lease_revoked' | 'lease_expired' | 'lease_unknown' | 'token_revoked' | 'token_expired';

/** Why the lease no longer stands (the cause, and what happened, naming `whose` lease), or null while it does. */
export function leaseProblem(s: LeaseFields | undefined, currentEpoch: number, now: Date, tokens: TokenCheck | undefined, whose: string): { cause: LeaseCause; message: string } | null {
  const epoch = s?.lease_epoch;
  const exp = s?.lease_expires_at;
  if (typeof epoch !== 'number' || typeof exp !== 'number') {
    return { cause: 'lease_unknown', message: `the plan was stored without its lease's epoch and expiry, so ${whose} cannot be shown to stand` };
  }
  if (epoch !== currentEpoch) return { cause: 'lease_revoked', message: `${whose} was revoked (issued in epoch ${epoch}, current epoch ${currentEpoch})` };
  if (now.getTime() >= exp * 1000) return { cause: 'lease_expired', message: `${whose} expired at ${new Date(exp * 1000).toISOString()}` };
  const token = typeof s?.token_id === 'string' ? tokens?.problem(s.token_id, now) : undefined;
  if (token) return { cause: token.code === 'token_expired' ? 'token_expired' : 'token_revoked', message: `${whose} was issued through a client token that no longer stands: ${token.message}` };
  return null;
}
