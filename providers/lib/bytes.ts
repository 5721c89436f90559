// Base64 (RFC 4648), UTF-8 validation and SHA-256 (FIPS 180-4) for the
// built-in providers.

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function base64Encode(b: Uint8Array): string {
  const out = new Uint8Array(((b.length + 2) / 3) * 4);
  let o = 0;
  for (let i = 0; i < b.length; i += 3) {
    const n = (<u32>b[i] << 16) | (i + 1 < b.length ? <u32>b[i + 1] << 8 : 0) | (i + 2 < b.length ? <u32>b[i + 2] : 0);
    out[o++] = <u8>B64.charCodeAt((n >> 18) & 63);
    out[o++] = <u8>B64.charCodeAt((n >> 12) & 63);
    out[o++] = i + 1 < b.length ? <u8>B64.charCodeAt((n >> 6) & 63) : 61;
    out[o++] = i + 2 < b.length ? <u8>B64.charCodeAt(n & 63) : 61;
  }
  return String.UTF8.decodeUnsafe(out.dataStart, out.length);
}

function sextet(c: i32): i32 {
  if (c >= 65 && c <= 90) return c - 65;
  if (c >= 97 && c <= 122) return c - 71;
  if (c >= 48 && c <= 57) return c + 4;
  if (c == 43) return 62;
  if (c == 47) return 63;
  return -1;
}

/** The decoded bytes, or null when `s` is not canonical padded base64. */
export function base64Decode(s: string): Uint8Array | null {
  if (s.length % 4 != 0) return null;
  let pad = 0;
  if (s.length > 0 && s.charCodeAt(s.length - 1) == 61) pad++;
  if (s.length > 1 && s.charCodeAt(s.length - 2) == 61) pad++;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    let n: u32 = 0;
    for (let j = 0; j < 4; j++) {
      const c = s.charCodeAt(i + j);
      let v = 0;
      if (c == 61 && i + 4 == s.length && j >= 4 - pad) v = 0;
      else {
        v = sextet(c);
        if (v < 0) return null;
      }
      n = (n << 6) | <u32>v;
    }
    if (o < out.length) out[o++] = <u8>(n >> 16);
    if (o < out.length) out[o++] = <u8>(n >> 8);
    if (o < out.length) out[o++] = <u8>n;
  }
  return out;
}

/** True when `b` is well-formed UTF-8 (RFC 3629). */
export function isUtf8(b: Uint8Array): bool {
  let i = 0;
  while (i < b.length) {
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
    if (i + n >= b.length) return false;
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

const K: u32[] = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/** "sha256:<hex>" of `data`. */
export function sha256(data: Uint8Array): string {
  const bitLen = <u64>data.length * 8;
  const total = ((data.length + 9 + 63) / 64) * 64;
  const m = new Uint8Array(total);
  m.set(data);
  m[data.length] = 0x80;
  for (let i = 0; i < 8; i++) m[total - 1 - i] = <u8>(bitLen >> (<u64>i * 8));
  const h: u32[] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
  const w = new Uint32Array(64);
  for (let off = 0; off < total; off += 64) {
    for (let t = 0; t < 16; t++)
      w[t] = (<u32>m[off + t * 4] << 24) | (<u32>m[off + t * 4 + 1] << 16) | (<u32>m[off + t * 4 + 2] << 8) | <u32>m[off + t * 4 + 3];
    for (let t = 16; t < 64; t++) {
      const s0 = rotr<u32>(w[t - 15], 7) ^ rotr<u32>(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const s1 = rotr<u32>(w[t - 2], 17) ^ rotr<u32>(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (let t = 0; t < 64; t++) {
      const t1 = hh + (rotr<u32>(e, 6) ^ rotr<u32>(e, 11) ^ rotr<u32>(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
      const t2 = (rotr<u32>(a, 2) ^ rotr<u32>(a, 13) ^ rotr<u32>(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  }
  const hex = '0123456789abcdef';
  const parts: string[] = ['sha256:'];
  for (let i = 0; i < 8; i++) for (let s = 28; s >= 0; s -= 4) parts.push(hex.charAt((h[i] >> s) & 15));
  return parts.join('');
}
