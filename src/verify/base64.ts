// Strict standard base64 (RFC 4648 section 4, with padding), for the signed
// notes and checkpoints. Standalone: no Node API, so it runs in a browser.
// Decoding refuses anything but the one canonical encoding of some bytes
// (no whitespace, no missing or extra padding, no non-zero pad bits): two
// texts that decode to the same bytes would let a signed text be altered.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const VALUE = new Map<string, number>([...ALPHABET].map((c, i) => [c, i]));

export function encodeBase64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]!;
    out += i + 1 < bytes.length ? ALPHABET[(n >> 6) & 63]! : '=';
    out += i + 2 < bytes.length ? ALPHABET[n & 63]! : '=';
  }
  return out;
}

/** The bytes of a canonical base64 text, or null when it is not one. */
export function decodeBase64(text: string): Uint8Array | null {
  if (text.length % 4 !== 0) return null;
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = text[i + j] as string;
      const last = i + 4 === text.length;
      if (c === '=' && last && j >= 4 - pad) {
        n <<= 6;
        continue;
      }
      const v = VALUE.get(c);
      if (v === undefined) return null;
      n = (n << 6) | v;
    }
    // Pad bits must be zero: otherwise several texts decode to these bytes.
    if (i + 4 === text.length && ((pad === 1 && (n & 0xff) !== 0) || (pad === 2 && (n & 0xffff) !== 0))) return null;
    out[o++] = (n >> 16) & 0xff;
    if (o < out.length) out[o++] = (n >> 8) & 0xff;
    if (o < out.length) out[o++] = n & 0xff;
  }
  return out;
}

/** base64url without padding (RFC 4648 section 5), as JWKs and RFC 7638 thumbprints use it. */
export function encodeBase64Url(bytes: Uint8Array): string {
  return encodeBase64(bytes).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

/** The bytes of a canonical unpadded base64url text, or null when it is not one. */
export function decodeBase64Url(text: string): Uint8Array | null {
  if (/[+/=]/.test(text) || text.length % 4 === 1) return null;
  const std = text.replace(/-/g, '+').replace(/_/g, '/');
  return decodeBase64(std + '='.repeat((4 - (std.length % 4)) % 4));
}
