// The ledger's Merkle tree recomputed from the events themselves, streaming
// (one pass, in id order), never from merkle_nodes: whoever rewrites the
// events can rewrite the stored nodes too. Memory is O(log n): the compact
// range (the roots of the complete subtrees that make up the leaves so far,
// RFC 9162 2.1.1's split), plus, between two sizes asked for, the few
// subtrees the consistency proof between them needs (RFC 9162 2.1.4.1).
//
// Give it the sizes to stop at (sorted); it hands back the root at each, and
// for each two consecutive sizes the consistency proof between them, as
// RFC 9162 builds it, from the recomputed tree.
import * as crypto from 'node:crypto';
import { nodeMerkle } from '../crypto/merkle.js';

// RFC 9162's leaf hash, SHA-256(0x00 || bytes), of an event's stored text: U+0000 is the one byte 0x00 in
// UTF-8, so the text with it in front hashes to the same; crypto.hash (Node >= 20.12) encodes it without a Buffer.
export const leafHashOfText: (text: string) => Uint8Array =
  typeof crypto.hash === 'function' ? (text) => crypto.hash('sha256', `\u0000${text}`, 'buffer') : (text) => nodeMerkle.leafHash(Buffer.from(text, 'utf8'));

interface Range {
  start: number;
  len: number;
}

interface Entry extends Range {
  hash: Uint8Array;
}

/** What a stop gives: the root at that size, and the proof from the previous stop (absent at the first, and from size 0). */
export interface TreeStop {
  size: number;
  root: Uint8Array;
  proofFromPrevious?: { from: number; proof: Uint8Array[] };
}

/** The largest power of two below n (n >= 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The ranges whose hashes make the consistency proof from m to n leaves (RFC 9162 2.1.4.1 SUBPROOF), in proof order. */
export function consistencyRanges(m: number, n: number): Range[] {
  const out: Range[] = [];
  const sub = (m: number, start: number, n: number, b: boolean): void => {
    if (m === n) {
      if (!b) out.push({ start, len: n });
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      sub(m, start, k, b);
      out.push({ start: start + k, len: n - k });
    } else {
      sub(m - k, start + k, n - k, false);
      out.push({ start, len: k });
    }
  };
  if (m > 0 && m < n) sub(m, 0, n, true);
  return out;
}

/** Exact for every safe integer (the bit operators are 32-bit). */
const isPowerOfTwo = (n: number) => n > 0 && 2 ** Math.round(Math.log2(n)) === n;

export class TreeRecompute {
  /** The compact range: complete subtrees, largest (leftmost) first. */
  private readonly stack: Entry[] = [];
  private leaves = 0;
  private stopAt = 0;
  private readonly stops: number[];
  private readonly out: TreeStop[] = [];
  /** The previous stop's compact range (the proof's hashes left of it are among them). */
  private prev: { size: number; stack: Entry[] } | undefined;
  /** Complete subtrees right of the previous stop that the proof to the next stop needs: level -> start -> hash. */
  private wanted = new Map<number, Map<number, Uint8Array | null>>();

  /**
   * sizes: the sizes to stop at, ascending, distinct, each >= 0. onStop is
   * called at each (default: kept for results()); a verifier of many
   * checkpoints handles each there, so memory stays O(log n).
   */
  constructor(
    sizes: readonly number[],
    private readonly onStop: (stop: TreeStop) => void = (stop) => this.out.push(stop),
  ) {
    this.stops = [...sizes];
    for (let i = 1; i < this.stops.length; i++) if (!(this.stops[i]! > this.stops[i - 1]!)) throw new RangeError('stop sizes must be distinct and ascending');
    if (this.stops[0] === 0) this.stop();
  }

  /** The number of leaves pushed so far. */
  get size(): number {
    return this.leaves;
  }

  /** Adds the next leaf (its bytes: the event's stored event_json). */
  push(leaf: Uint8Array | string): void {
    this.pushLeafHash(typeof leaf === 'string' ? leafHashOfText(leaf) : nodeMerkle.leafHash(leaf));
  }

  /** Adds the next leaf by its leaf hash (computed elsewhere, e.g. by a worker thread). */
  pushLeafHash(leafHash: Uint8Array): void {
    let hash = leafHash;
    let start = this.leaves;
    let len = 1;
    this.keep(0, start, hash);
    for (let top = this.stack.at(-1); top && top.len === len; top = this.stack.at(-1)) {
      this.stack.pop();
      hash = nodeMerkle.nodeHash(top.hash, hash);
      start = top.start;
      len *= 2;
      this.keep(Math.log2(len), start, hash);
    }
    this.stack.push({ start, len, hash });
    this.leaves++;
    if (this.leaves === this.stops[this.stopAt]) this.stop();
  }

  /** The stops reached so far, in order (when no onStop was given). */
  results(): TreeStop[] {
    return this.out;
  }

  /** The root of the leaves so far. */
  root(): Uint8Array {
    return this.fold(0);
  }

  private keep(level: number, start: number, hash: Uint8Array): void {
    const atLevel = this.wanted.get(level);
    if (atLevel?.has(start)) atLevel.set(start, hash);
  }

  /** The hash of the leaves from `start` to the end: the compact range's entries from there, folded right to left. */
  private fold(start: number, stack: readonly Entry[] = this.stack): Uint8Array {
    if (stack.length === 0) return nodeMerkle.emptyRoot();
    const from = stack.findIndex((e) => e.start === start);
    if (from < 0) throw new Error(`internal: no compact-range entry starts at ${start}`);
    let h = stack[stack.length - 1]!.hash;
    for (let i = stack.length - 2; i >= from; i--) h = nodeMerkle.nodeHash(stack[i]!.hash, h);
    return h;
  }

  private stop(): void {
    const size = this.leaves;
    const stop: TreeStop = { size, root: this.fold(0) };
    if (this.prev && this.prev.size > 0) stop.proofFromPrevious = { from: this.prev.size, proof: this.proof(this.prev, size) };
    this.onStop(stop);
    this.stopAt++;
    this.prev = { size, stack: this.stack.map((e) => ({ ...e })) };
    // The next stop's proof: register the complete subtrees right of here that it needs.
    this.wanted = new Map();
    const next = this.stops[this.stopAt];
    if (next === undefined || size === 0) return;
    for (const r of consistencyRanges(size, next)) {
      if (r.start >= size && isPowerOfTwo(r.len) && r.start % r.len === 0) {
        const level = Math.log2(r.len);
        if (!this.wanted.has(level)) this.wanted.set(level, new Map());
        this.wanted.get(level)!.set(r.start, null);
      }
    }
  }

  /** The proof from the previous stop to this one, from the previous compact range, the subtrees kept since and this compact range. */
  private proof(prev: { size: number; stack: Entry[] }, size: number): Uint8Array[] {
    return consistencyRanges(prev.size, size).map((r) => {
      if (r.start + r.len <= prev.size) {
        const e = prev.stack.find((x) => x.start === r.start && x.len === r.len);
        if (!e) throw new Error(`internal: the range ${r.start}+${r.len} is not in the compact range of ${prev.size}`);
        return e.hash;
      }
      if (isPowerOfTwo(r.len) && r.start % r.len === 0) {
        const h = this.wanted.get(Math.log2(r.len))?.get(r.start);
        if (!h) throw new Error(`internal: the subtree ${r.start}+${r.len} was not kept`);
        return h;
      }
      if (r.start + r.len !== size) throw new Error(`internal: the range ${r.start}+${r.len} neither is complete nor ends at ${size}`);
      return this.fold(r.start);
    });
  }
}
