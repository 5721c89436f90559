// RFC 8785 canonical JSON (src/verify/jcs.ts, the one implementation) and
// the SHA-256 hashes latchgate takes over it, with node:crypto.
import { createHash } from 'node:crypto';
import { canonicalize, type CanonicalizeLimits } from '../verify/jcs.js';

export { canonicalize, CanonicalizationError, type CanonicalizeLimits } from '../verify/jcs.js';

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** "sha256:<hex>" of the canonical UTF-8 bytes. */
export function canonicalHash(value: unknown, limits?: CanonicalizeLimits): string {
  return `sha256:${sha256Hex(Buffer.from(canonicalize(value, limits), 'utf8'))}`;
}
