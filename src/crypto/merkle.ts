// The Merkle tree functions of src/verify/merkle.ts over node:crypto's SHA-256,
// for the Node side (the ledger's tree, tests).
import * as crypto from 'node:crypto';
import { merkle, type Sha256 } from '../verify/merkle.js';

// crypto.hash (Node >= 20.12) hashes in one call, without a Hash object: the
// cheaper way for the small inputs of a tree, run on every ledger append.
const oneShot = typeof crypto.hash === 'function';

export const sha256Chunks: Sha256 = (...chunks) => {
  if (oneShot) return crypto.hash('sha256', chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks), 'buffer');
  const h = crypto.createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest();
};

export const nodeMerkle = merkle(sha256Chunks);
