// Finds a credential in what an upstream sends back, in the forms an upstream
// (hostile, or one that echoes request headers) can hand it back in, and
// replaces each occurrence with [redacted]. Used by the credential proxy
// (src/egress/credential-proxy.ts) on headers, status line and body.
//
// What is searched for (the "patterns"): the key itself (in any letter case:
// the input is case folded) and, for the key and for its upper-case,
// lower-case, JSON-escaped and percent-encoded versions,
//   - its hex digits;
//   - the base64 characters that depend on its bytes alone, at each of the
//     three byte alignments it can have inside a larger base64 blob (so
//     padding and the neighbouring bytes do not matter); "+" and "-", "/"
//     and "_" are interchangeable (RFC 4648 base64 and base64url).
// Every character of a pattern may appear, independently of its neighbours,
// as itself in either letter case, as %hh (RFC 3986), as \u00hh (RFC 8259),
// or as \/ \" \\ for the characters JSON escapes so (hh: the character's
// code in either letter case, hex digits in either case), and each character
// of such an escape may in turn be escaped the same way once more. So two
// layers of percent-encoding and JSON string escaping, in either order
// (percent-encoded twice, a URL in a JSON string, JSON in a query string),
// each escaping any subset of characters, are undone.
//
// The matcher is compiled once per key: the escapes of each pattern character
// become a small trie, and a DFA over all patterns is built lazily (only the
// states real input reaches, cache bounded), so the scan is one table lookup
// per byte and a chunk boundary is just a pause. Where a match begins is
// worked out only when one ends. Only the bytes of a live partial match are
// held back; anything else is passed on at once, so a stream stays a stream.
import { Transform, type TransformCallback } from 'node:stream';

/** Keys shorter than this would make redaction eat ordinary text. */
export const MIN_KEY_LENGTH = 8;
/** Longer than any API key or bearer token; bounds the compiled redaction patterns. */
export const MAX_KEY_LENGTH = 8192;

export const REDACTED = '[redacted]';
const REDACTED_BYTES = Buffer.from(REDACTED);
const EMPTY = Buffer.alloc(0);

const HEX = '0123456789abcdef';
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

const isUpper = (b: number): boolean => b >= 0x41 && b <= 0x5a;
const isLower = (b: number): boolean => b >= 0x61 && b <= 0x7a;
const toLower = (b: number): number => (isUpper(b) ? b | 0x20 : b);
const toUpper = (b: number): number => (isLower(b) ? b & ~0x20 : b);
const hex2 = (b: number): string => `${HEX[b >> 4]}${HEX[b & 15]}`;

/** One character of a pattern: the bytes it stands for (two for base64's 62 and 63). */
type Unit = readonly number[];

/** The outer forms of one pattern character, all lower case (the input is folded). */
function formsOf(unit: Unit): string[] {
  const out = new Set<string>();
  for (const t of unit) {
    out.add(String.fromCharCode(toLower(t)));
    for (const v of new Set([toLower(t), toUpper(t)])) {
      out.add(`%${hex2(v)}`);
      out.add(`\\u00${hex2(v)}`);
    }
    if (t === 0x2f || t === 0x22 || t === 0x5c) out.add(`\\${String.fromCharCode(t)}`);
  }
  return [...out];
}

/** The base64 characters determined by `bytes` alone when they start `align` bytes into a 3-byte group. */
function base64Core(bytes: Buffer, align: number): Unit[] {
  const bit = (i: number): number => {
    const byte = (i >> 3) - align;
    return byte < 0 ? 0 : ((bytes[byte] as number) >> (7 - (i & 7))) & 1;
  };
  const units: Unit[] = [];
  const first = Math.ceil((8 * align) / 6);
  const last = Math.floor((8 * (align + bytes.length)) / 6); // exclusive
  for (let k = first; k < last; k++) {
    let v = 0;
    for (let i = 6 * k; i < 6 * k + 6; i++) v = (v << 1) | bit(i);
    units.push(v === 62 ? [0x2b, 0x2d] : v === 63 ? [0x2f, 0x5f] : [B64.charCodeAt(v)]);
  }
  return units;
}

function patternsOf(key: string): Unit[][] {
  const patterns: Unit[][] = [[...Buffer.from(key, 'latin1')].map((b) => [b])];
  const json = JSON.stringify(key).slice(1, -1);
  for (const s of new Set([key, key.toUpperCase(), key.toLowerCase(), json, json.replace(/\//g, '\\/'), encodeURIComponent(key)])) {
    const bytes = Buffer.from(s, 'latin1');
    patterns.push([...bytes].flatMap((b) => [...hex2(b)].map((h) => [h.charCodeAt(0)])));
    for (let a = 0; a < 3; a++) patterns.push(base64Core(bytes, a));
  }
  const seen = new Set<string>();
  return patterns.filter((p) => {
    const id = p.map((u) => [...new Set(u.map(toLower))].sort().join('/')).join(',');
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** A trie node: a form of the character ends here. */
const END = 1;
/** A trie node: a longer form continues from here. */
const KIDS = 2;
/** Trie nodes per pattern character, at most (a node id takes 5 bits of a partial match). */
const MAX_NODES = 32;

// A partial match is one int: q << 11 | node << 6 | inner, where q is the
// position in the patterns, node the place in that character's trie of outer
// forms, and inner the progress of an escape inside the outer form:
// 0 none, 1 "\", 2 "\u", 3 "\u0", 4 "\u00", 5 + h "\u00h", 21 "%", 22 + h "%h".
const NODE_SHIFT = 6;
const Q_SHIFT = 11;
const INNER = (1 << NODE_SHIFT) - 1;
const IN_BSL = 1;
const IN_U = 2;
const IN_U00 = 4;
const IN_U00H = 5;
const IN_PCT = 21;
const IN_PCTH = 22;
/** Input bytes an inner escape has taken, by inner state. */
const innerLength = (inner: number): number => (inner < IN_U00H ? inner : inner < IN_PCT ? 5 : inner === IN_PCT ? 1 : 2);
/** Most input bytes one escaped character takes (\u00hh). */
const ESCAPE_MAX = 6;

/** A DFA transition not built yet. */
const UNKNOWN = -1;
/** A DFA transition that completes a match. */
const MATCH = -2;
/**
 * DFA states cached per key (at most 2 MB of rows); when full the cache
 * starts over and each stream rebuilds its state from its held bytes.
 */
const MAX_STATES = 2048;

/**
 * One key, compiled once per route: byte classes (case folded), one trie of
 * outer forms per distinct pattern character, every pattern's characters back
 * to back, and a DFA over them built lazily (only the states input reaches).
 * A DFA state is the set of live partial matches.
 */
export class KeyMatcher {
  /** byte -> class; 0 for a byte no form contains (it ends every partial match). */
  readonly classOf = new Uint8Array(256);
  readonly classes: number;
  /** class -> its hex digit's value, or -1. */
  private readonly hexOf: Int8Array;
  private readonly cBackslash: number;
  private readonly cPercent: number;
  private readonly cU: number;
  private readonly cZero: number;
  private readonly cSlash: number;
  private readonly cQuote: number;
  /** (kindBase[kind] + node) * classes + class -> child node, or -1. */
  private readonly trie: Int16Array;
  /** kindBase[kind] + node -> END | KIDS. */
  private readonly flags: Uint8Array;
  /** kindBase[kind] + node -> bytes from the root. */
  private readonly depth: Uint8Array;
  private readonly kindBase: Int32Array;
  /** Position q (all patterns back to back) -> its character's trie. */
  private readonly unitKind: Int32Array;
  /** Position q -> 1 when it is the last character of its pattern. */
  private readonly unitLast: Uint8Array;
  /** Position q -> most input bytes the characters of its pattern before q can take. */
  private readonly before: Int32Array;
  /** class -> the first positions of the patterns a byte of this class can start. */
  private readonly starts: Int32Array[];

  /**
   * The DFA: a state is the offset of its row (state number * 256), and
   * trans[state + byte] the next state, UNKNOWN or MATCH: one lookup per byte.
   */
  trans = new Int32Array(0);
  /** State number -> most input bytes its live partial matches can span. */
  hold = new Int32Array(0);
  /** A new row: class-0 bytes lead to state 0, the rest is UNKNOWN. */
  private readonly blankRow = new Int32Array(256);
  /** class -> its bytes. */
  private readonly bytesOf: number[][] = [];
  /** Bumped whenever the DFA cache starts over (state numbers change). */
  epoch = 0;
  /** State number -> its partial matches, sorted. */
  private sets: Int32Array[] = [];
  /** Hash of a sorted set -> the states with that hash. */
  private readonly ids = new Map<number, number[]>();
  /** Scratch for the successors build() collects. */
  private scratch = new Int32Array(256);
  private scratchLength = 0;
  private readonly collect = (sid: number): void => {
    if (this.scratchLength === this.scratch.length) {
      const bigger = new Int32Array(this.scratch.length * 2);
      bigger.set(this.scratch);
      this.scratch = bigger;
    }
    this.scratch[this.scratchLength++] = sid;
  };

  constructor(key: string) {
    if (key.length === 0) throw new Error('KeyMatcher: empty key');
    const patterns = patternsOf(key);

    const kinds = new Map<string, number>();
    const kindForms: string[][] = [];
    const unitKind: number[] = [];
    const unitLast: number[] = [];
    const firstUnits: number[] = [];
    for (const p of patterns) {
      firstUnits.push(unitKind.length);
      p.forEach((u, i) => {
        const id = [...new Set(u.map(toLower))].sort().join('/');
        let k = kinds.get(id);
        if (k === undefined) {
          k = kindForms.length;
          kinds.set(id, k);
          kindForms.push(formsOf(u));
        }
        unitKind.push(k);
        unitLast.push(i === p.length - 1 ? 1 : 0);
      });
    }

    // Classes: every byte of a form, and what inner escapes are made of.
    let classes = 1;
    for (const f of [`${HEX}%\\u/"`, ...kindForms.flat()]) {
      for (let i = 0; i < f.length; i++) {
        const b = f.charCodeAt(i);
        if (this.classOf[b] === 0) {
          this.classOf[b] = classes;
          if (isLower(b)) this.classOf[toUpper(b)] = classes;
          classes++;
        }
      }
    }
    this.classes = classes;
    for (let c = 0; c < classes; c++) this.bytesOf.push([]);
    for (let b = 0; b < 256; b++) {
      (this.bytesOf[this.classOf[b] as number] as number[]).push(b);
      this.blankRow[b] = this.classOf[b] === 0 ? 0 : UNKNOWN;
    }
    this.hexOf = new Int8Array(classes).fill(-1);
    for (let v = 0; v < 16; v++) this.hexOf[this.classOf[HEX.charCodeAt(v)] as number] = v;
    const cls = (ch: string) => this.classOf[ch.charCodeAt(0)] as number;
    this.cBackslash = cls('\\');
    this.cPercent = cls('%');
    this.cU = cls('u');
    this.cZero = cls('0');
    this.cSlash = cls('/');
    this.cQuote = cls('"');

    // Tries: node 0 is the root; children keyed by class.
    const tries = kindForms.map((forms) => {
      const kids: Map<number, number>[] = [new Map()];
      const flags: number[] = [0];
      const depth: number[] = [0];
      for (const f of forms) {
        let node = 0;
        for (let i = 0; i < f.length; i++) {
          const c = cls(f[i] as string);
          let next = kids[node]?.get(c);
          if (next === undefined) {
            next = kids.length;
            kids.push(new Map());
            flags.push(0);
            depth.push(i + 1);
            (kids[node] as Map<number, number>).set(c, next);
            flags[node] = (flags[node] as number) | KIDS;
          }
          node = next;
        }
        flags[node] = (flags[node] as number) | END;
      }
      if (kids.length > MAX_NODES) throw new Error(`KeyMatcher: ${kids.length} trie nodes for one character (at most ${MAX_NODES})`);
      return { kids, flags, depth, longest: Math.max(...forms.map((f) => f.length)) };
    });
    const total = tries.reduce((n, t) => n + t.kids.length, 0);
    this.trie = new Int16Array(total * classes).fill(-1);
    this.flags = new Uint8Array(total);
    this.depth = new Uint8Array(total);
    this.kindBase = new Int32Array(tries.length);
    let base = 0;
    tries.forEach((t, k) => {
      this.kindBase[k] = base;
      t.kids.forEach((m, node) => {
        this.flags[base + node] = t.flags[node] as number;
        this.depth[base + node] = t.depth[node] as number;
        for (const [c, child] of m) this.trie[(base + node) * classes + c] = child;
      });
      base += t.kids.length;
    });

    this.unitKind = Int32Array.from(unitKind);
    this.unitLast = Uint8Array.from(unitLast);
    if (unitKind.length >= 2 ** (31 - Q_SHIFT)) throw new Error('KeyMatcher: key too long');
    this.before = new Int32Array(unitKind.length);
    for (let q = 0; q + 1 < unitKind.length; q++) {
      if (!unitLast[q]) this.before[q + 1] = (this.before[q] as number) + (tries[unitKind[q] as number] as { longest: number }).longest * ESCAPE_MAX;
    }
    this.starts = [];
    for (let c = 0; c < classes; c++) {
      this.starts.push(
        Int32Array.from(
          firstUnits.filter((q) => {
            let any = false;
            return this.follow(q << Q_SHIFT, c, () => (any = true)) || any;
          }),
        ),
      );
    }
    this.intern(new Int32Array(0)); // state 0: nothing live
  }

  /** `s` with every match replaced; `count` matches. Header values arrive as latin1, other text as UTF-16. */
  redact(s: string): { text: string; count: number } {
    if (!this.matches(s)) return { text: s, count: 0 };
    const enc = /[^\x00-\xff]/.test(s) ? 'utf8' : 'latin1'; // either way the key's ASCII bytes are the same
    const r = new Redaction(this);
    const a = r.write(Buffer.from(s, enc));
    const b = r.end();
    return { text: Buffer.concat([a, b]).toString(enc), count: r.redactions };
  }

  /** Whether s holds a match: the DFA over its characters, without copying it. */
  private matches(s: string): boolean {
    let state = 0;
    for (let i = 0; i < s.length; i++) {
      const code = s.charCodeAt(i);
      const b = code < 0x100 ? code : 0x80; // UTF-8 bytes of such a character are not ASCII either
      let t = this.trans[state + b] as number;
      if (t === UNKNOWN) t = this.build(state, b);
      if (t === MATCH) return true;
      state = t;
    }
    return false;
  }

  /**
   * Follows one partial match over a byte of class c: each successor goes to
   * `next`; returns true when it completes a pattern.
   */
  private follow(sid: number, c: number, next: (sid: number) => void): boolean {
    const inner = sid & INNER;
    const at = sid - inner; // the same match with no inner escape under way
    if (inner === 0) {
      if (c === this.cBackslash) next(at + IN_BSL);
      else if (c === this.cPercent) next(at + IN_PCT);
      return this.outer(at, c, next);
    }
    if (inner === IN_BSL) {
      if (c === this.cU) next(at + IN_U);
      else if (c === this.cSlash || c === this.cQuote || c === this.cBackslash) return this.outer(at, c, next);
      return false;
    }
    if (inner < IN_U00) {
      if (c === this.cZero) next(sid + 1);
      return false;
    }
    const h = this.hexOf[c] as number;
    if (h < 0) return false;
    if (inner === IN_U00) next(at + IN_U00H + h);
    else if (inner < IN_PCT) return this.outer(at, this.classOf[(inner - IN_U00H) * 16 + h] as number, next);
    else if (inner === IN_PCT) next(at + IN_PCTH + h);
    else return this.outer(at, this.classOf[(inner - IN_PCTH) * 16 + h] as number, next);
    return false;
  }

  /** Steps the outer trie of partial match `at` (no inner escape under way) over a character of class c. */
  private outer(at: number, c: number, next: (sid: number) => void): boolean {
    const q = at >>> Q_SHIFT;
    const kb = this.kindBase[this.unitKind[q] as number] as number;
    const child = this.trie[(kb + ((at >> NODE_SHIFT) & (MAX_NODES - 1))) * this.classes + c] as number;
    if (child < 0) return false;
    const f = this.flags[kb + child] as number;
    if (f & END) {
      if (this.unitLast[q]) return true;
      next((q + 1) << Q_SHIFT);
    }
    if (f & KIDS) next((q << Q_SHIFT) | (child << NODE_SHIFT));
    return false;
  }

  /** Builds (and caches) the DFA transition from `state` on `byte` (and every byte of its class). */
  build(state: number, byte: number): number {
    const c = this.classOf[byte] as number;
    const set = this.sets[state >> 8] as Int32Array;
    this.scratchLength = 0;
    let match = false;
    for (let i = 0; i < set.length; i++) match = this.follow(set[i] as number, c, this.collect) || match;
    const starts = this.starts[c] as Int32Array;
    for (let i = 0; i < starts.length; i++) match = this.follow((starts[i] as number) << Q_SHIFT, c, this.collect) || match;
    const epoch = this.epoch;
    let t = MATCH;
    if (!match) {
      // Sorted and without duplicates: the set's canonical form.
      const sids = this.scratch.subarray(0, this.scratchLength).sort();
      let n = 0;
      for (let i = 0; i < sids.length; i++) if (i === 0 || sids[i] !== sids[i - 1]) sids[n++] = sids[i] as number;
      t = this.intern(sids.subarray(0, n));
    }
    if (this.epoch === epoch) for (const b of this.bytesOf[c] as number[]) this.trans[state + b] = t; // else `state` went with the old cache
    return t;
  }

  /** The state for a sorted set of partial matches, made if new. */
  private intern(sids: Int32Array): number {
    let hash = 0x811c9dc5;
    for (let i = 0; i < sids.length; i++) hash = Math.imul(hash ^ (sids[i] as number), 0x01000193);
    const same = this.ids.get(hash);
    if (same) {
      for (const row of same) {
        const set = this.sets[row >> 8] as Int32Array;
        if (set.length === sids.length && set.every((v, i) => v === sids[i])) return row;
      }
    }
    if (this.sets.length === MAX_STATES) {
      this.sets = [];
      this.ids.clear();
      this.epoch++;
      this.intern(new Int32Array(0));
    }
    const n = this.sets.length;
    if (n >= this.hold.length) {
      const cap = Math.min(MAX_STATES, Math.max(64, n * 2));
      const trans = new Int32Array(cap * 256);
      trans.set(this.trans.subarray(0, n * 256));
      const hold = new Int32Array(cap);
      hold.set(this.hold.subarray(0, n));
      this.trans = trans;
      this.hold = hold;
    }
    this.trans.set(this.blankRow, n * 256);
    let longest = 0;
    for (const sid of sids) {
      const q = sid >>> Q_SHIFT;
      const node = (sid >> NODE_SHIFT) & (MAX_NODES - 1);
      const depth = this.depth[(this.kindBase[this.unitKind[q] as number] as number) + node] as number;
      longest = Math.max(longest, (this.before[q] as number) + depth * ESCAPE_MAX + innerLength(sid & INNER));
    }
    this.hold[n] = longest;
    this.sets.push(Int32Array.from(sids));
    const rows = this.ids.get(hash);
    if (rows) rows.push(n * 256);
    else this.ids.set(hash, [n * 256]);
    return n * 256;
  }

  /**
   * Where the match ending at `end` begins (offsets in the stream; the bytes
   * are in carry, which ends where chunk begins at `base`): every partial
   * match from `from` on is followed, oldest first, and the oldest one that
   * completes wins. Only runs when the DFA has seen a match end, so its cost
   * is bounded by the match.
   */
  matchStart(carry: Buffer, chunk: Buffer, base: number, from: number, end: number): number {
    const carryBase = base - carry.length;
    let live: { sid: number; start: number }[] = [];
    for (let p = from; p < end; p++) {
      const c = this.classOf[(p < base ? carry[p - carryBase] : chunk[p - base]) as number] as number;
      const next: { sid: number; start: number }[] = [];
      const seen = new Set<number>();
      let start = -1;
      const step = (sid: number, s: number) => {
        const done = this.follow(sid, c, (n) => {
          if (!seen.has(n)) {
            seen.add(n);
            next.push({ sid: n, start: s });
          }
        });
        if (done && start < 0) start = s;
      };
      for (const t of live) step(t.sid, t.start);
      for (const q of this.starts[c] as Int32Array) step(q << Q_SHIFT, p);
      if (start >= 0) return start;
      live = next;
    }
    return from; // not reached (the DFA saw a match end at `end`); redacting the whole window fails safe
  }
}

/**
 * The redaction state of one stream. write() returns what can be passed on
 * now: everything except the tail a live partial match may cover.
 */
export class Redaction {
  redactions = 0;
  /** Offset of the next input byte in the whole stream. */
  private pos = 0;
  /** Input [pos - carry.length, pos): held back, not yet passed on. */
  private carry: Buffer = EMPTY;
  private state = 0;
  private epoch: number;

  constructor(private readonly k: KeyMatcher) {
    this.epoch = k.epoch;
  }

  write(chunk: Buffer): Buffer {
    const k = this.k;
    if (this.epoch !== k.epoch) this.resync();
    const base = this.pos;
    const stop = base + chunk.length;
    const parts: Buffer[] = [];
    let out = base - this.carry.length; // everything before is passed on or redacted
    let quiet = out; // no partial match is live before this offset
    let trans = k.trans;
    let s = this.state;
    for (let i = 0; i < chunk.length; i++) {
      let t = trans[s + (chunk[i] as number)] as number;
      if (t < 0) {
        if (t === UNKNOWN) {
          t = k.build(s, chunk[i] as number);
          trans = k.trans;
        }
        if (t === MATCH) {
          // The match was a live partial match of state s: it began after the last state 0, within hold of here.
          const end = base + i + 1;
          const start = k.matchStart(this.carry, chunk, base, Math.max(quiet, end - 1 - (k.hold[s >> 8] as number)), end);
          this.push(parts, chunk, base, out, start);
          parts.push(REDACTED_BYTES);
          this.redactions++;
          out = quiet = end;
          s = 0;
          continue;
        }
      }
      s = t;
      if (s === 0) quiet = base + i + 1;
    }
    this.state = s;
    this.epoch = k.epoch;
    const hold = s === 0 ? stop : Math.max(out, quiet, stop - (k.hold[s >> 8] as number));
    this.push(parts, chunk, base, out, hold);
    if (hold === stop) this.carry = EMPTY;
    else if (hold < base) this.carry = Buffer.concat([this.carry.subarray(hold - (base - this.carry.length)), chunk]);
    else this.carry = Buffer.from(chunk.subarray(hold - base)); // a copy: the source may reuse its buffer
    this.pos = stop;
    return parts.length === 1 ? (parts[0] as Buffer) : parts.length === 0 ? EMPTY : Buffer.concat(parts);
  }

  /** The held-back tail: no partial match can complete any more. */
  end(): Buffer {
    const rest = this.carry;
    this.carry = EMPTY;
    this.state = 0;
    return rest;
  }

  /** The DFA cache started over: the state is rebuilt from the held bytes, which cover every live partial match. */
  private resync(): void {
    const k = this.k;
    let s = 0;
    for (const b of this.carry) {
      let t = k.trans[s + b] as number;
      if (t === UNKNOWN) t = k.build(s, b);
      s = t === MATCH ? 0 : t; // a match there would have been redacted already
    }
    this.state = s;
    this.epoch = k.epoch;
  }

  /** Appends input [from, to) (stream offsets), which lies in carry and/or chunk. */
  private push(parts: Buffer[], chunk: Buffer, base: number, from: number, to: number): void {
    if (to <= from) return;
    const carryBase = base - this.carry.length;
    if (from < base) parts.push(this.carry.subarray(from - carryBase, Math.min(to, base) - carryBase));
    if (to > base) parts.push(chunk.subarray(Math.max(from, base) - base, to - base));
  }
}

/** A Redaction as a stream stage: bytes in, the same bytes with every match replaced out. */
export class KeyRedactor extends Transform {
  private readonly r: Redaction;
  bytesOut = 0;

  constructor(matcher: KeyMatcher) {
    super();
    this.r = new Redaction(matcher);
  }

  get redactions(): number {
    return this.r.redactions;
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    this.pass(this.r.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.pass(this.r.end());
    cb();
  }

  private pass(b: Buffer): void {
    if (b.length === 0) return;
    this.bytesOut += b.length;
    this.push(b);
  }
}
