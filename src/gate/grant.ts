// Signing and verifying execution grants (the grant key of src/keys/): an
// Ed25519 signature, in hex, over the JCS of the grant without its two
// signature fields.
import { canonicalize } from '../crypto/jcs.js';
import { latestTime, type KeyStore } from '../keys/store.js';
import type { ExecutionGrant } from './types.js';

/** The bytes a grant signature covers: the JCS of the grant without grant_signature and grant_signing_key_id. */
export function grantSigningBytes(grant: ExecutionGrant): Buffer {
  const { grant_signature: _s, grant_signing_key_id: _k, ...unsigned } = grant;
  return Buffer.from(canonicalize(unsigned), 'utf8');
}

/** Signs a grant with the current grant key; returns a copy carrying grant_signature (hex) and grant_signing_key_id. */
export function signGrant(keys: KeyStore, grant: ExecutionGrant): ExecutionGrant {
  const { kid, signature } = keys.sign('grant', grantSigningBytes(grant));
  return { ...grant, grant_signature: signature, grant_signing_key_id: kid };
}

/**
 * True only for a present signature by a key in the grant history (by kid or
 * legacy kid) over exactly these fields, by a key not retired before the
 * grant's issued_at.
 */
export function verifyGrantSignature(keys: KeyStore, grant: ExecutionGrant): boolean {
  if (typeof grant.grant_signature !== 'string' || typeof grant.grant_signing_key_id !== 'string') return false;
  let bytes: Buffer;
  try {
    bytes = grantSigningBytes(grant);
  } catch {
    return false;
  }
  return keys.verify('grant', grant.grant_signing_key_id, bytes, grant.grant_signature, { signedAt: latestTime(grant.issued_at) });
}
