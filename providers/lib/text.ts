// String <-> UTF-8 with an ASCII fast path. Fuel is spent per loop
// iteration (docs/PROVIDERS.md), so the common case moves 8 characters per
// iteration; anything else goes through the standard library.

const HIGH8: u64 = 0x8080808080808080;
const HIGH16: u64 = 0xff80ff80ff80ff80;

/** True when the `len` bytes at `p` are all ASCII. */
export function asciiBytes(p: usize, len: usize): bool {
  let i: usize = 0;
  while (i + 32 <= len) {
    if (((load<u64>(p + i) | load<u64>(p + i + 8) | load<u64>(p + i + 16) | load<u64>(p + i + 24)) & HIGH8) != 0) return false;
    i += 32;
  }
  for (; i < len; i++) if (load<u8>(p + i) >= 0x80) return false;
  return true;
}

function asciiString(s: string): bool {
  const p = changetype<usize>(s);
  const n = <usize>s.length;
  let i: usize = 0;
  while (i + 8 <= n) {
    if (((load<u64>(p + (i << 1)) | load<u64>(p + (i << 1) + 8)) & HIGH16) != 0) return false;
    i += 8;
  }
  for (; i < n; i++) if (load<u16>(p + (i << 1)) >= 0x80) return false;
  return true;
}

/** A fresh string of `len` code units, to be filled. */
export function newString(len: i32): string {
  return changetype<string>(__new(<usize>len << 1, idof<string>()));
}

export function decodeUtf8(p: usize, len: usize): string {
  if (!asciiBytes(p, len)) return String.UTF8.decodeUnsafe(p, len);
  const s = newString(<i32>len);
  const d = changetype<usize>(s);
  let i: usize = 0;
  while (i + 8 <= len) {
    const v = load<u64>(p + i);
    store<u64>(d + (i << 1), (v & 0xff) | ((v & 0xff00) << 8) | ((v & 0xff0000) << 16) | ((v & 0xff000000) << 24));
    const w = v >> 32;
    store<u64>(d + (i << 1) + 8, (w & 0xff) | ((w & 0xff00) << 8) | ((w & 0xff0000) << 16) | ((w & 0xff000000) << 24));
    i += 8;
  }
  for (; i < len; i++) store<u16>(d + (i << 1), load<u8>(p + i));
  return s;
}

export function encodeUtf8(s: string): ArrayBuffer {
  if (!asciiString(s)) return String.UTF8.encode(s);
  const n = <usize>s.length;
  const out = new ArrayBuffer(<i32>n);
  const d = changetype<usize>(out);
  const p = changetype<usize>(s);
  let i: usize = 0;
  while (i + 8 <= n) {
    const a = load<u64>(p + (i << 1));
    const b = load<u64>(p + (i << 1) + 8);
    store<u32>(d + i, <u32>((a & 0xff) | ((a >> 8) & 0xff00) | ((a >> 16) & 0xff0000) | ((a >> 24) & 0xff000000)));
    store<u32>(d + i + 4, <u32>((b & 0xff) | ((b >> 8) & 0xff00) | ((b >> 16) & 0xff0000) | ((b >> 24) & 0xff000000)));
    i += 8;
  }
  for (; i < n; i++) store<u8>(d + i, <u8>load<u16>(p + (i << 1)));
  return out;
}
