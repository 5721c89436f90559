// RFC 8785 canonical JSON (src/verify/jcs.ts, the one implementation) and
// the SHA-256 hashes latchgate takes over it, with node:crypto.
import * as crypto from 'node:crypto';
import { canonicalize, type CanonicalizeLimits } from '../verify/jcs.js';

export { canonicalize, CanonicalizationError, isCanonicalText, type CanonicalizeLimits } from '../verify/jcs.js';

// crypto.hash (Node >= 20.12): one call, no Hash object; the same bytes (a string as its UTF-8).
export const sha256Hex: (data: string | Uint8Array) => string =
  typeof crypto.hash === 'function' ? (data) => crypto.hash('sha256', data, 'hex') : (data) => crypto.createHash('sha256').update(data).digest('hex');

/** "sha256:<hex>" of the canonical UTF-8 bytes. */
export function canonicalHash(value: unknown, limits?: CanonicalizeLimits): string {
  return `sha256:${sha256Hex(Buffer.from(canonicalize(value, limits), 'utf8'))}`;
}
