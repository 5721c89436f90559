// The Merkle tree functions of src/verify/merkle.ts over node:crypto's SHA-256,
// for the Node side (the ledger's tree, tests).
import { createHash } from 'node:crypto';
import { merkle, type Sha256 } from '../verify/merkle.js';

export const sha256Chunks: Sha256 = (...chunks) => {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest();
};

export const nodeMerkle = merkle(sha256Chunks);
