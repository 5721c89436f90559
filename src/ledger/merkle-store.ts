// The ledger's Merkle tree (RFC 9162 section 2.1; docs/EVIDENCE.md), grown in
// the same transaction that appends each event. Leaf i is the i-th event in id
// order, and its bytes are the event's stored event_json: the RFC 8785 bytes
// whose SHA-256 is the chain hash.
//
// merkle_nodes holds the root of every complete subtree, written once, when
// its last leaf arrives, keyed by its position in post-order: the order in
// which appends complete them (leaf i is at 2i - popcount(i), and the nodes it
// completes follow it). An append therefore writes only at the end of the
// table (its leaf and, amortised, one node) and reads one stored left sibling
// per node it completes. The root of any size up to the current one, and any
// inclusion or consistency proof, are folded from O(log n) stored nodes: the
// complete subtrees of a historic tree are the same nodes as in today's.
import type { Db } from './db.js';
import { immediate } from './db.js';
import { nodeMerkle } from '../crypto/merkle.js';

/** Post-order positions (below 2 x size) stay exact in a double up to here. */
export const MAX_TREE_SIZE = 2 ** 52;
/** Events folded in per transaction when the tree is built from a ledger that had none. */
const CATCH_UP_CHUNK = 10_000;

export class MerkleStoreError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'MerkleStoreError';
  }
}

/** The tree's size and the id of the last event it holds: ledger_metadata's merkle_tree, beside chain_head. */
interface TreeState {
  size: number;
  lastEventId: number;
}
const EMPTY_STATE = JSON.stringify({ size: 0, last_event_id: 0 });

export class MerkleStore {
  private stmts?: ReturnType<MerkleStore['prepare']>;

  constructor(private readonly db: Db) {}

  /**
   * Inside the ledger's migration transaction: creates the table (a ledger
   * from before the tree gets an empty one, filled by catchUp()) and refuses
   * a tree whose stored nodes disagree with its recorded size.
   */
  migrate(): void {
    const db = this.db;
    if (db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'merkle_nodes'`).get() === undefined) {
      // event_id: set on leaves, the audit_events row the leaf hashes.
      db.exec('CREATE TABLE merkle_nodes (pos INTEGER PRIMARY KEY, hash BLOB NOT NULL, event_id INTEGER)');
      db.prepare(`INSERT OR REPLACE INTO ledger_metadata(key, value) VALUES ('merkle_tree', ?)`).run(EMPTY_STATE);
    }
    const { size } = this.state();
    const last = db.prepare('SELECT max(pos) FROM merkle_nodes').pluck().get() as number | null;
    const want = size === 0 ? null : nodeCount(size) - 1;
    if (last !== want) {
      throw new MerkleStoreError(
        `the ledger's Merkle tree is damaged: its size is ${size}, so the last node should be at position ${want ?? '(none)'}, but it is at ${last ?? '(none)'} (merkle_nodes or ledger_metadata was edited). ` +
          'Fix: restore the state directory from a backup; or drop the merkle_nodes table to rebuild the tree from the events at the next start (its roots then no longer match any published before)',
        'merkle_damaged',
      );
    }
  }

  /**
   * Folds into the tree every event it does not hold yet (a ledger from before
   * the tree, or events an older latchgate appended), a chunk per transaction
   * so other writers are not held off. Returns the number folded in.
   */
  catchUp(): number {
    let total = 0;
    for (;;) {
      const n = immediate(this.db, () => {
        const st = this.state();
        const rows = this.s.pending.all(st.lastEventId, CATCH_UP_CHUNK) as { id: number; event_json: string }[];
        for (const r of rows) this.fold(st, r.id, Buffer.from(r.event_json, 'utf8'));
        if (rows.length > 0) this.save(st);
        return rows.length;
      });
      total += n;
      if (n < CATCH_UP_CHUNK) return total;
    }
  }

  /** Adds the event just inserted (row id, stored bytes) as the next leaf; inside the append's transaction. */
  append(eventId: number, eventBytes: Uint8Array): void {
    const st = this.state();
    if (eventId <= st.lastEventId) {
      throw new MerkleStoreError(
        `event id ${eventId} is not after the last event in the Merkle tree (id ${st.lastEventId}): sqlite_sequence or audit_events was edited. ` +
          'Fix: run `latchgate verify`, and restore the state directory from a backup',
        'merkle_out_of_order',
      );
    }
    if (eventId !== st.lastEventId + 1) {
      // Events appended without the tree (by an older latchgate) go in first, in id order.
      for (const r of this.s.between.all(st.lastEventId, eventId) as { id: number; event_json: string }[]) this.fold(st, r.id, Buffer.from(r.event_json, 'utf8'));
    }
    this.fold(st, eventId, eventBytes);
    this.save(st);
  }

  /** The number of leaves (events) in the tree. */
  treeSize(): number {
    return this.state().size;
  }

  /** The current size and root, read together. */
  head(): { size: number; root: Uint8Array } {
    return this.read(() => {
      const size = this.state().size;
      return { size, root: this.rootOf(size) };
    });
  }

  /** The root of the tree of the first `size` events (default: all of them). */
  merkleRoot(size?: number): Uint8Array {
    return this.read(() => this.rootOf(size === undefined ? this.state().size : this.checkSize('size', size, 0)));
  }

  /** The event id and leaf hash of leaf `index`. */
  leaf(index: number): { eventId: number; hash: Uint8Array } {
    return this.read(() => {
      this.checkIndex(index, this.state().size);
      const row = this.s.leaf.get(leafPos(index)) as { hash: Buffer; event_id: number | null } | undefined;
      if (!row || row.event_id === null) throw missing(leafPos(index));
      return { eventId: row.event_id, hash: row.hash };
    });
  }

  /** RFC 9162 2.1.3.1: the inclusion proof of leaf `index` in the tree of `size` leaves. */
  inclusionProof(index: number, size: number): Uint8Array[] {
    return this.read(() => {
      this.checkSize('size', size, 1);
      this.checkIndex(index, size);
      const proof: Uint8Array[] = [];
      this.path(index, 0, size, proof);
      return proof;
    });
  }

  /** RFC 9162 2.1.4.1: the consistency proof from the tree of `size1` leaves to the one of `size2` (0 < size1 <= size2). */
  consistencyProof(size1: number, size2: number): Uint8Array[] {
    return this.read(() => {
      this.checkSize('size2', size2, 1);
      this.checkSize('size1', size1, 1);
      if (size1 > size2) throw new MerkleStoreError(`size1 (${size1}) is above size2 (${size2}); a consistency proof goes from the smaller tree to the larger`, 'bad_tree_size');
      const proof: Uint8Array[] = [];
      this.subproof(size1, 0, size2, true, proof);
      return proof;
    });
  }

  private prepare() {
    const db = this.db;
    return {
      state: db.prepare(`SELECT value FROM ledger_metadata WHERE key = 'merkle_tree'`).pluck(),
      setState: db.prepare(`UPDATE ledger_metadata SET value = ? WHERE key = 'merkle_tree'`),
      insert: db.prepare('INSERT INTO merkle_nodes(pos, hash, event_id) VALUES (?, ?, ?)'),
      node: db.prepare('SELECT hash FROM merkle_nodes WHERE pos = ?').pluck(),
      leaf: db.prepare('SELECT hash, event_id FROM merkle_nodes WHERE pos = ?'),
      pending: db.prepare('SELECT id, event_json FROM audit_events WHERE id > ? ORDER BY id LIMIT ?'),
      between: db.prepare('SELECT id, event_json FROM audit_events WHERE id > ? AND id < ? ORDER BY id'),
    };
  }

  private get s() {
    this.stmts ??= this.prepare();
    return this.stmts;
  }

  private state(): TreeState {
    const text = this.s.state.get() as string | undefined;
    let v: { size?: unknown; last_event_id?: unknown } | undefined;
    try {
      v = text === undefined ? undefined : (JSON.parse(text) as typeof v);
    } catch {
      v = undefined;
    }
    if (!v || !Number.isSafeInteger(v.size) || !Number.isSafeInteger(v.last_event_id)) {
      throw new MerkleStoreError(
        `the ledger's Merkle tree has no recorded state (ledger_metadata merkle_tree is ${text === undefined ? 'missing' : JSON.stringify(text)}, expected {"size":N,"last_event_id":N}: it was edited). ` +
          'Fix: restore the state directory from a backup; or drop the merkle_nodes table to rebuild the tree from the events at the next start',
        'merkle_damaged',
      );
    }
    return { size: v.size as number, lastEventId: v.last_event_id as number };
  }

  private save(st: TreeState): void {
    this.s.setState.run(JSON.stringify({ size: st.size, last_event_id: st.lastEventId }));
  }

  /** Appends one leaf and stores each subtree root it completes (a right child whose left sibling is stored). */
  private fold(st: TreeState, eventId: number, bytes: Uint8Array): void {
    if (st.size >= MAX_TREE_SIZE) throw new MerkleStoreError(`the ledger's Merkle tree is full (${MAX_TREE_SIZE} leaves)`, 'merkle_full');
    let hash = nodeMerkle.leafHash(bytes);
    let pos = leafPos(st.size);
    this.s.insert.run(pos, hash, eventId);
    for (let idx = st.size, level = 0; idx % 2 === 1; idx = (idx - 1) / 2, level++) {
      hash = nodeMerkle.nodeHash(this.node(level, idx - 1), hash);
      this.s.insert.run(++pos, hash, null);
    }
    st.size++;
    st.lastEventId = eventId;
  }

  /** The stored root of the complete subtree `idx` at `level` (leaves idx*2^level ... (idx+1)*2^level - 1). */
  private node(level: number, idx: number): Uint8Array {
    const pos = nodePos(level, idx);
    const hash = this.s.node.get(pos) as Buffer | undefined;
    if (!hash) throw missing(pos);
    return hash;
  }

  /** MTH(D[start:start+len]) of RFC 9162 2.1.1: a stored node when complete, else its left (complete) part with the rest. */
  private subtree(start: number, len: number): Uint8Array {
    if (isPowerOfTwo(len)) return this.node(log2(len), start / len);
    const k = splitPoint(len);
    return nodeMerkle.nodeHash(this.subtree(start, k), this.subtree(start + k, len - k));
  }

  private rootOf(size: number): Uint8Array {
    return size === 0 ? nodeMerkle.emptyRoot() : this.subtree(0, size);
  }

  /** PATH(m, D[start:start+n]) of RFC 9162 2.1.3.1, pushed onto `out` lowest level first. */
  private path(m: number, start: number, n: number, out: Uint8Array[]): void {
    if (n === 1) return;
    const k = splitPoint(n);
    if (m < k) {
      this.path(m, start, k, out);
      out.push(this.subtree(start + k, n - k));
    } else {
      this.path(m - k, start + k, n - k, out);
      out.push(this.subtree(start, k));
    }
  }

  /** SUBPROOF(m, D[start:start+n], b) of RFC 9162 2.1.4.1. */
  private subproof(m: number, start: number, n: number, b: boolean, out: Uint8Array[]): void {
    if (m === n) {
      if (!b) out.push(this.subtree(start, n));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      this.subproof(m, start, k, b, out);
      out.push(this.subtree(start + k, n - k));
    } else {
      this.subproof(m - k, start + k, n - k, false, out);
      out.push(this.subtree(start, k));
    }
  }

  /** One snapshot for a multi-statement read (joins an open transaction). */
  private read<T>(fn: () => T): T {
    return this.db.inTransaction ? fn() : this.db.transaction(fn)();
  }

  private checkSize(name: string, size: number, min: number): number {
    const have = this.state().size;
    if (!Number.isSafeInteger(size) || size < min || size > have) {
      throw new MerkleStoreError(`${name} must be an integer from ${min} to the tree's size (${have}), got ${size}`, 'bad_tree_size');
    }
    return size;
  }

  private checkIndex(index: number, size: number): void {
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new MerkleStoreError(`leaf index must be an integer from 0 to ${size - 1} (below the tree size ${size}), got ${index}`, 'bad_leaf_index');
    }
  }
}

function missing(pos: number): MerkleStoreError {
  return new MerkleStoreError(
    `the ledger's Merkle tree has no node at position ${pos} (merkle_nodes was edited). Fix: restore the state directory from a backup; or drop the merkle_nodes table to rebuild the tree from the events at the next start`,
    'merkle_damaged',
  );
}

/** The post-order position of leaf i: the nodes before it are those of the complete subtrees of its i predecessors. */
export function leafPos(i: number): number {
  return 2 * i - popCount(i);
}

/** The post-order position of the complete subtree `idx` at `level`: just after its last leaf and the level - 1 nodes below it. */
export function nodePos(level: number, idx: number): number {
  return leafPos((idx + 1) * 2 ** level - 1) + level;
}

/** The number of nodes stored for a tree of `size` leaves. */
function nodeCount(size: number): number {
  return 2 * size - popCount(size);
}

/** Bit operators are 32-bit in JS: count the two halves. */
function popCount(n: number): number {
  return popCount32(n >>> 0) + popCount32(Math.floor(n / 2 ** 32));
}

function popCount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && 2 ** log2(n) === n;
}

/** floor(log2 n), exactly, for n >= 1. */
function log2(n: number): number {
  let l = 0;
  for (let p = 2; p <= n; p *= 2) l++;
  return l;
}

/** The largest power of two below n (n >= 2): where RFC 9162 splits a tree of n leaves. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
