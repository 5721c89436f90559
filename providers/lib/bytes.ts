// Base64 (RFC 4648), UTF-8 validation and SHA-256 (FIPS 180-4) for the
// built-in providers. Fuel is spent per loop iteration (docs/PROVIDERS.md),
// so the byte loops are unrolled.
import { newString } from './text';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

// @ts-ignore: decorator
@inline
function put4(d: usize, n: u32): void {
  const t = changetype<usize>(B64);
  store<u64>(
    d,
    <u64>load<u16>(t + (((n >> 18) & 63) << 1)) |
      (<u64>load<u16>(t + (((n >> 12) & 63) << 1)) << 16) |
      (<u64>load<u16>(t + (((n >> 6) & 63) << 1)) << 32) |
      (<u64>load<u16>(t + ((n & 63) << 1)) << 48),
  );
}

// @ts-ignore: decorator
@inline
function triple(p: usize): u32 {
  return (<u32>load<u8>(p) << 16) | (<u32>load<u8>(p + 1) << 8) | <u32>load<u8>(p + 2);
}

/** Base64 of `b`, written straight into the string, 12 bytes per iteration. */
export function base64Encode(b: Uint8Array): string {
  const n = b.length;
  const s = newString(((n + 2) / 3) * 4);
  const d = changetype<usize>(s);
  const p = b.dataStart;
  let i = 0;
  let o: usize = 0;
  while (i + 12 <= n) {
    put4(d + o, triple(p + i));
    put4(d + o + 8, triple(p + i + 3));
    put4(d + o + 16, triple(p + i + 6));
    put4(d + o + 24, triple(p + i + 9));
    i += 12;
    o += 32;
  }
  for (; i + 3 <= n; i += 3, o += 8) put4(d + o, triple(p + i));
  if (i < n) {
    const rest = n - i;
    const v = (<u32>b[i] << 16) | (rest > 1 ? <u32>b[i + 1] << 8 : 0);
    put4(d + o, v);
    store<u16>(d + o + 6, 61);
    if (rest == 1) store<u16>(d + o + 4, 61);
  }
  return s;
}

// @ts-ignore: decorator
@inline
function sextet(c: u32): i32 {
  if (c - 65 < 26) return <i32>c - 65;
  if (c - 97 < 26) return <i32>c - 71;
  if (c - 48 < 10) return <i32>c + 4;
  if (c == 43) return 62;
  if (c == 47) return 63;
  return -1;
}

// @ts-ignore: decorator
@inline
function quad(p: usize): i32 {
  const a = sextet(load<u16>(p));
  const b = sextet(load<u16>(p + 2));
  const c = sextet(load<u16>(p + 4));
  const d = sextet(load<u16>(p + 6));
  if ((a | b | c | d) < 0) return -1;
  return (a << 18) | (b << 12) | (c << 6) | d;
}

// @ts-ignore: decorator
@inline
function put3(o: usize, v: i32): void {
  store<u8>(o, <u8>(v >> 16));
  store<u8>(o + 1, <u8>(v >> 8));
  store<u8>(o + 2, <u8>v);
}

/** The decoded bytes, or null when `s` is not canonical padded base64. */
export function base64Decode(s: string): Uint8Array | null {
  const len = s.length;
  if (len % 4 != 0) return null;
  if (len == 0) return new Uint8Array(0);
  let pad = 0;
  if (s.charCodeAt(len - 1) == 61) pad++;
  if (s.charCodeAt(len - 2) == 61) pad++;
  const out = new Uint8Array((len / 4) * 3 - pad);
  const p = changetype<usize>(s);
  const d = out.dataStart;
  const full = pad > 0 ? len - 4 : len; // characters in groups without padding
  let i = 0;
  let o: usize = 0;
  while (i + 16 <= full) {
    const a = quad(p + (<usize>i << 1));
    const b = quad(p + (<usize>i << 1) + 8);
    const c = quad(p + (<usize>i << 1) + 16);
    const e = quad(p + (<usize>i << 1) + 24);
    if ((a | b | c | e) < 0) return null;
    put3(d + o, a);
    put3(d + o + 3, b);
    put3(d + o + 6, c);
    put3(d + o + 9, e);
    i += 16;
    o += 12;
  }
  for (; i < full; i += 4, o += 3) {
    const a = quad(p + (<usize>i << 1));
    if (a < 0) return null;
    put3(d + o, a);
  }
  if (pad > 0) {
    const a = sextet(s.charCodeAt(full));
    const b = sextet(s.charCodeAt(full + 1));
    const c = pad == 1 ? sextet(s.charCodeAt(full + 2)) : 0;
    if ((a | b | c) < 0) return null;
    const v = (a << 18) | (b << 12) | (c << 6);
    // Canonical: the bits past the data are zero.
    if ((pad == 2 && (v & 0xffff) != 0) || (pad == 1 && (v & 0xff) != 0)) return null;
    store<u8>(d + o, <u8>(v >> 16));
    if (pad == 1) store<u8>(d + o + 1, <u8>(v >> 8));
  }
  return out;
}

/** True when `b` is well-formed UTF-8 (RFC 3629). */
export function isUtf8(b: Uint8Array): bool {
  const p = b.dataStart;
  const len = b.length;
  let i = 0;
  while (i < len) {
    // ASCII runs 32 bytes per iteration.
    while (i + 32 <= len && ((load<u64>(p + i) | load<u64>(p + i + 8) | load<u64>(p + i + 16) | load<u64>(p + i + 24)) & 0x8080808080808080) == 0) i += 32;
    if (i >= len) break;
    const c = <u32>b[i];
    let n = 0;
    let min: u32 = 0;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      min = 0x10000;
    } else return false;
    if (i + n >= len) return false;
    let cp: u32 = c & (0x3f >> n);
    for (let j = 1; j <= n; j++) {
      const d = <u32>b[i + j];
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

const K: StaticArray<u32> = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

// @ts-ignore: decorator
@inline
function big32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}

// @ts-ignore: decorator
@inline
function sched(w: usize, t: usize): void {
  const a = load<u32>(w + ((t - 15) << 2));
  const b = load<u32>(w + ((t - 2) << 2));
  const s0 = rotr<u32>(a, 7) ^ rotr<u32>(a, 18) ^ (a >> 3);
  const s1 = rotr<u32>(b, 17) ^ rotr<u32>(b, 19) ^ (b >> 10);
  store<u32>(w + (t << 2), load<u32>(w + ((t - 16) << 2)) + s0 + load<u32>(w + ((t - 7) << 2)) + s1);
}

// @ts-ignore: decorator
@inline
function S0(x: u32): u32 {
  return rotr<u32>(x, 2) ^ rotr<u32>(x, 13) ^ rotr<u32>(x, 22);
}

// @ts-ignore: decorator
@inline
function S1(x: u32): u32 {
  return rotr<u32>(x, 6) ^ rotr<u32>(x, 11) ^ rotr<u32>(x, 25);
}

// @ts-ignore: decorator
@inline
function ch(x: u32, y: u32, z: u32): u32 {
  return (x & y) ^ (~x & z);
}

// @ts-ignore: decorator
@inline
function maj(x: u32, y: u32, z: u32): u32 {
  return (x & y) ^ (x & z) ^ (y & z);
}

/** One 64-byte block at `p` into the state at `h` (8 words), schedule in `w` (64 words). Loops unrolled: fuel counts iterations. */
function block(h: usize, w: usize, p: usize): void {
  for (let t: usize = 0; t < 16; t += 4) {
    store<u32>(w + (t << 2), big32(p + (t << 2)));
    store<u32>(w + (t << 2) + 4, big32(p + (t << 2) + 4));
    store<u32>(w + (t << 2) + 8, big32(p + (t << 2) + 8));
    store<u32>(w + (t << 2) + 12, big32(p + (t << 2) + 12));
  }
  for (let t: usize = 16; t < 64; t += 8) {
    sched(w, t);
    sched(w, t + 1);
    sched(w, t + 2);
    sched(w, t + 3);
    sched(w, t + 4);
    sched(w, t + 5);
    sched(w, t + 6);
    sched(w, t + 7);
  }
  let a = load<u32>(h), b = load<u32>(h + 4), c = load<u32>(h + 8), d = load<u32>(h + 12);
  let e = load<u32>(h + 16), f = load<u32>(h + 20), g = load<u32>(h + 24), hh = load<u32>(h + 28);
  const k = changetype<usize>(K);
  let t1: u32 = 0;
  for (let t: usize = 0; t < 64; t += 8) {
    t1 = hh + S1(e) + ch(e, f, g) + load<u32>(k + (t << 2) + 0) + load<u32>(w + (t << 2) + 0);
    d += t1;
    hh = t1 + S0(a) + maj(a, b, c);
    t1 = g + S1(d) + ch(d, e, f) + load<u32>(k + (t << 2) + 4) + load<u32>(w + (t << 2) + 4);
    c += t1;
    g = t1 + S0(hh) + maj(hh, a, b);
    t1 = f + S1(c) + ch(c, d, e) + load<u32>(k + (t << 2) + 8) + load<u32>(w + (t << 2) + 8);
    b += t1;
    f = t1 + S0(g) + maj(g, hh, a);
    t1 = e + S1(b) + ch(b, c, d) + load<u32>(k + (t << 2) + 12) + load<u32>(w + (t << 2) + 12);
    a += t1;
    e = t1 + S0(f) + maj(f, g, hh);
    t1 = d + S1(a) + ch(a, b, c) + load<u32>(k + (t << 2) + 16) + load<u32>(w + (t << 2) + 16);
    hh += t1;
    d = t1 + S0(e) + maj(e, f, g);
    t1 = c + S1(hh) + ch(hh, a, b) + load<u32>(k + (t << 2) + 20) + load<u32>(w + (t << 2) + 20);
    g += t1;
    c = t1 + S0(d) + maj(d, e, f);
    t1 = b + S1(g) + ch(g, hh, a) + load<u32>(k + (t << 2) + 24) + load<u32>(w + (t << 2) + 24);
    f += t1;
    b = t1 + S0(c) + maj(c, d, e);
    t1 = a + S1(f) + ch(f, g, hh) + load<u32>(k + (t << 2) + 28) + load<u32>(w + (t << 2) + 28);
    e += t1;
    a = t1 + S0(b) + maj(b, c, d);
  }
  store<u32>(h, load<u32>(h) + a);
  store<u32>(h + 4, load<u32>(h + 4) + b);
  store<u32>(h + 8, load<u32>(h + 8) + c);
  store<u32>(h + 12, load<u32>(h + 12) + d);
  store<u32>(h + 16, load<u32>(h + 16) + e);
  store<u32>(h + 20, load<u32>(h + 20) + f);
  store<u32>(h + 24, load<u32>(h + 24) + g);
  store<u32>(h + 28, load<u32>(h + 28) + hh);
}

/** "sha256:<hex>" of `data`: full blocks straight from `data`, the padded tail from a copy. */
export function sha256(data: Uint8Array): string {
  const state = new Uint32Array(8);
  const h = state.dataStart;
  store<u32>(h, 0x6a09e667);
  store<u32>(h + 4, 0xbb67ae85);
  store<u32>(h + 8, 0x3c6ef372);
  store<u32>(h + 12, 0xa54ff53a);
  store<u32>(h + 16, 0x510e527f);
  store<u32>(h + 20, 0x9b05688c);
  store<u32>(h + 24, 0x1f83d9ab);
  store<u32>(h + 28, 0x5be0cd19);
  const w = new Uint32Array(64).dataStart;
  const n = data.length;
  const full = n & ~63;
  for (let off = 0; off < full; off += 64) block(h, w, data.dataStart + <usize>off);
  const rest = n - full;
  const tail = new Uint8Array(rest < 56 ? 64 : 128);
  memory.copy(tail.dataStart, data.dataStart + <usize>full, <usize>rest);
  tail[rest] = 0x80;
  const bits = <u64>n * 8;
  store<u64>(tail.dataStart + <usize>tail.length - 8, bswap<u64>(bits));
  block(h, w, tail.dataStart);
  if (tail.length == 128) block(h, w, tail.dataStart + 64);
  const hex = '0123456789abcdef';
  const s = newString(7 + 64);
  const d = changetype<usize>(s);
  const prefix = 'sha256:';
  memory.copy(d, changetype<usize>(prefix), 14);
  for (let i: usize = 0; i < 8; i++) {
    const v = load<u32>(h + (i << 2));
    for (let j: usize = 0; j < 8; j++) store<u16>(d + 14 + ((i * 8 + j) << 1), hex.charCodeAt(<i32>((v >> (28 - <u32>j * 4)) & 15)));
  }
  return s;
}
