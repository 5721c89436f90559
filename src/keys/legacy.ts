// What latchgate wrote before there was one key store, so that it keeps
// verifying. Grant and receipt keys already had today's file names; their
// kid was the first 16 hex characters of SHA-256 over the raw public key.
// The lease key lived in lease-signing-key.pem with its history in
// lease-jwks.json (entries without created_at or retired_at), and its kid
// was the first 16 hex characters of SHA-256 over the SPKI DER. Receipts
// (signing_key_id), grants (grant_signing_key_id) and lease JWTs (header
// kid) signed then name those kids: the history keeps each as legacy_kid.
import { createHash } from 'node:crypto';
import { ED25519_SPKI_PREFIX } from './ed25519.js';
import type { KeyKind } from './history.js';

export const LEGACY_LEASE_KEY_FILE = 'lease-signing-key.pem';
export const LEGACY_LEASE_JWKS_FILE = 'lease-jwks.json';

/** The kid an older latchgate gave a key of this kind; undefined for a kind that did not exist then. */
export function legacyKid(kind: KeyKind, raw: Uint8Array): string | undefined {
  const hashed = kind === 'lease' ? Buffer.concat([ED25519_SPKI_PREFIX, raw]) : kind === 'grant' || kind === 'receipt' ? raw : undefined;
  return hashed && createHash('sha256').update(hashed).digest('hex').slice(0, 16);
}
