// The Merkle tree of RFC 9162 section 2.1: hashing, and the verification of
// inclusion (2.1.3.2) and consistency (2.1.4.2) proofs. Standalone: no Node
// API and no import, so the same file verifies a log's evidence in a browser.
// SHA-256 is passed in (node:crypto on the Node side, src/crypto/merkle.ts;
// any synchronous implementation elsewhere).
//
// Every failure throws MerkleProofError, whose `reason` names the kind; a
// verification that returns has passed. Sizes and indices are numbers (safe
// integers) or bigints (up to 2^64 - 1); the arithmetic is done in bigint.

/** SHA-256 of the concatenation of the chunks. */
export type Sha256 = (...chunks: Uint8Array[]) => Uint8Array;

/** A tree size or leaf index: a non-negative safe integer, or a bigint below 2^64. */
export type TreeInt = number | bigint;

export const HASH_SIZE = 32;
const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);
const MAX_U64 = (1n << 64n) - 1n;

export type MerkleFailure =
  /** An argument of the wrong type or range (not a hash of 32 bytes, a negative size...). */
  | 'bad_input'
  /** The leaf index is not below the tree size. */
  | 'index_out_of_range'
  /** The second size is below the first. */
  | 'sizes_out_of_order'
  /** A consistency proof from the empty tree: it proves nothing. */
  | 'empty_tree'
  /** The proof has more or fewer hashes than the sizes call for. */
  | 'wrong_proof_length'
  /** The root the proof leads to is not the one given. */
  | 'root_mismatch';

export class MerkleProofError extends Error {
  constructor(
    readonly reason: MerkleFailure,
    message: string,
  ) {
    super(message);
    this.name = 'MerkleProofError';
  }
}

export interface Merkle {
  /** SHA-256(0x00 || leaf): the hash of one entry of the log. */
  leafHash(leaf: Uint8Array): Uint8Array;
  /** SHA-256(0x01 || left || right): an interior node. */
  nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array;
  /** The root of the tree of no leaves: SHA-256 of nothing. */
  emptyRoot(): Uint8Array;
  /** The root an inclusion proof leads to (RFC 9162 2.1.3.2 without the last comparison). */
  rootFromInclusionProof(leafIndex: TreeInt, treeSize: TreeInt, leafHash: Uint8Array, proof: readonly Uint8Array[]): Uint8Array;
  /** Throws unless `proof` shows the leaf at `leafIndex` in the tree of `treeSize` leaves whose root is `root`. */
  verifyInclusion(leafIndex: TreeInt, treeSize: TreeInt, leafHash: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): void;
  /**
   * Throws unless `proof` shows that the tree of `size2` leaves (root2)
   * begins with the tree of `size1` leaves (root1). Equal sizes need an empty
   * proof and equal roots; size1 = 0 is refused (every tree extends the
   * empty one, so such a proof would say nothing about root2).
   */
  verifyConsistency(size1: TreeInt, size2: TreeInt, proof: readonly Uint8Array[], root1: Uint8Array, root2: Uint8Array): void;
}

/** The tree's functions over the given SHA-256. */
export function merkle(sha256: Sha256): Merkle {
  const nodeHash = (left: Uint8Array, right: Uint8Array) => sha256(NODE_PREFIX, left, right);

  function rootFromInclusionProof(leafIndex: TreeInt, treeSize: TreeInt, leafHash: Uint8Array, proof: readonly Uint8Array[]): Uint8Array {
    const index = u64('leafIndex', leafIndex);
    const size = u64('treeSize', treeSize);
    if (index >= size) throw new MerkleProofError('index_out_of_range', `leaf index ${index} is not below the tree size ${size}`);
    hash32('leafHash', leafHash);
    hashes32(proof);
    const wrongLength = () =>
      new MerkleProofError('wrong_proof_length', `the inclusion proof of leaf ${index} in a tree of ${size} has ${proof.length} hashes; it needs ${inclusionProofLength(index, size)}`);
    // RFC 9162 2.1.3.2, step by step (fn: the leaf's position, sn: the last leaf's).
    let fn = index;
    let sn = size - 1n;
    let r = leafHash;
    for (const p of proof) {
      if (sn === 0n) throw wrongLength();
      if ((fn & 1n) === 1n || fn === sn) {
        r = nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw wrongLength();
    return r;
  }

  return {
    leafHash: (leaf) => sha256(LEAF_PREFIX, leaf),
    nodeHash,
    emptyRoot: () => sha256(),
    rootFromInclusionProof,

    verifyInclusion(leafIndex, treeSize, leafHash, proof, root) {
      bytes('root', root);
      const r = rootFromInclusionProof(leafIndex, treeSize, leafHash, proof);
      if (!equal(r, root)) {
        throw new MerkleProofError('root_mismatch', `the inclusion proof of leaf ${leafIndex} leads to root ${hex(r)}, not to the given ${hex(root)}`);
      }
    },

    verifyConsistency(size1, size2, proof, root1, root2) {
      const m = u64('size1', size1);
      const n = u64('size2', size2);
      bytes('root1', root1);
      bytes('root2', root2);
      if (m > n) throw new MerkleProofError('sizes_out_of_order', `size1 (${m}) is above size2 (${n}): a log does not shrink`);
      if (m === 0n) {
        throw new MerkleProofError('empty_tree', 'size1 is 0: every tree extends the empty tree, so a consistency proof from it proves nothing; check the later tree against its root instead');
      }
      hashes32(proof);
      if (m === n) {
        if (proof.length !== 0) throw new MerkleProofError('wrong_proof_length', `the sizes are equal (${m}), so the proof must be empty; it has ${proof.length} hashes`);
        if (!equal(root1, root2)) throw new MerkleProofError('root_mismatch', `the trees have the same size (${m}) but different roots: ${hex(root1)} and ${hex(root2)}`);
        return;
      }
      const wrongLength = () =>
        new MerkleProofError('wrong_proof_length', `the consistency proof from ${m} to ${n} leaves has ${proof.length} hashes; it needs ${consistencyProofLength(m, n)}`);
      // RFC 9162 2.1.4.2, step by step (an empty proof, refused by its step 1, ends below the root).
      const path = isPowerOfTwo(m) ? [root1, ...proof] : proof;
      let fn = m - 1n;
      let sn = n - 1n;
      while ((fn & 1n) === 1n) {
        fn >>= 1n;
        sn >>= 1n;
      }
      let fr = path[0] ?? root1;
      let sr = fr;
      for (const c of path.slice(1)) {
        if (sn === 0n) throw wrongLength();
        if ((fn & 1n) === 1n || fn === sn) {
          fr = nodeHash(c, fr);
          sr = nodeHash(c, sr);
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        } else {
          sr = nodeHash(sr, c);
        }
        fn >>= 1n;
        sn >>= 1n;
      }
      if (sn !== 0n) throw wrongLength();
      if (!equal(fr, root1)) throw new MerkleProofError('root_mismatch', `the consistency proof leads to ${hex(fr)} for the tree of ${m}, not to root1 ${hex(root1)}`);
      if (!equal(sr, root2)) throw new MerkleProofError('root_mismatch', `the consistency proof leads to ${hex(sr)} for the tree of ${n}, not to root2 ${hex(root2)}`);
    },
  };
}

/**
 * The number of hashes in the inclusion proof of leaf `index` in a tree of
 * `size`: the levels below the point where the paths to the leaf and to the
 * last leaf part (inner), then one per left sibling above it (border).
 */
function inclusionProofLength(index: bigint, size: bigint): number {
  const inner = bitLength(index ^ (size - 1n));
  return inner + popCount(index >> BigInt(inner));
}

/** The number of hashes in the consistency proof from m to n leaves (0 < m < n). */
function consistencyProofLength(m: bigint, n: bigint): number {
  const shift = trailingZeros(m);
  // The subtree of 2^shift leaves ending at leaf m-1 is root1 itself when m is a power of two, else its hash leads the proof.
  return (isPowerOfTwo(m) ? 0 : 1) + inclusionProofLength(m - 1n, n) - shift;
}

function u64(name: string, v: TreeInt): bigint {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new MerkleProofError('bad_input', `${name} must be a non-negative safe integer (or a bigint), got ${v}`);
    return BigInt(v);
  }
  if (typeof v !== 'bigint' || v < 0n || v > MAX_U64) throw new MerkleProofError('bad_input', `${name} must be an integer from 0 to 2^64-1, got ${String(v)}`);
  return v;
}

function bytes(name: string, v: Uint8Array): void {
  if (!(v instanceof Uint8Array)) throw new MerkleProofError('bad_input', `${name} must be a Uint8Array`);
}

function hash32(name: string, v: Uint8Array): void {
  bytes(name, v);
  if (v.length !== HASH_SIZE) throw new MerkleProofError('bad_input', `${name} must be a SHA-256 hash of ${HASH_SIZE} bytes, got ${v.length} bytes`);
}

function hashes32(proof: readonly Uint8Array[]): void {
  if (!Array.isArray(proof)) throw new MerkleProofError('bad_input', 'proof must be an array of hashes');
  proof.forEach((p, i) => hash32(`proof[${i}]`, p));
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function isPowerOfTwo(v: bigint): boolean {
  return v > 0n && (v & (v - 1n)) === 0n;
}

function bitLength(v: bigint): number {
  return v === 0n ? 0 : v.toString(2).length;
}

function popCount(v: bigint): number {
  let c = 0;
  for (const d of v.toString(2)) if (d === '1') c++;
  return c;
}

function trailingZeros(v: bigint): number {
  let z = 0;
  while ((v & 1n) === 0n && v !== 0n) {
    v >>= 1n;
    z++;
  }
  return z;
}
