// Canonical ABI glue for the built-in providers (AssemblyScript, stub
// runtime: nothing is freed, the instance lives for one call). Layouts follow
// the component model's canonical ABI for the types of wit/latchgate-io.wit.
import { decodeUtf8, encodeUtf8 } from './text';

/** The host allocates strings and lists it hands back with this. */
export function cabi_realloc(old: usize, oldSize: usize, align: usize, size: usize): usize {
  if (size == 0) return align;
  const p = heap.alloc(size + align);
  const aligned = (p + align - 1) & ~(align - 1);
  if (old != 0) memory.copy(aligned, old, oldSize < size ? oldSize : size);
  return aligned;
}

export function liftString(ptr: usize, len: usize): string {
  return decodeUtf8(ptr, len);
}

export function liftBytes(ptr: usize, len: usize): Uint8Array {
  const out = new Uint8Array(<i32>len);
  memory.copy(out.dataStart, ptr, len);
  return out;
}

/** A string's UTF-8 bytes, kept alive (the stub runtime never frees). */
export class Lowered {
  constructor(
    public ptr: usize,
    public len: usize,
  ) {}
}

export function lowerString(s: string): Lowered {
  const buf = encodeUtf8(s);
  return new Lowered(changetype<usize>(buf), <usize>buf.byteLength);
}

export function lowerBytes(b: Uint8Array): Lowered {
  return new Lowered(b.dataStart, <usize>b.length);
}

/** list<tuple<string, string>>: 16 bytes per element. */
export function lowerPairs(keys: string[], values: string[]): Lowered {
  const n = keys.length;
  const base = heap.alloc(<usize>(n * 16 + 8));
  const p = (base + 7) & ~7;
  for (let i = 0; i < n; i++) {
    const k = lowerString(keys[i]);
    const v = lowerString(values[i]);
    store<u32>(p + i * 16, <u32>k.ptr);
    store<u32>(p + i * 16 + 4, <u32>k.len);
    store<u32>(p + i * 16 + 8, <u32>v.ptr);
    store<u32>(p + i * 16 + 12, <u32>v.len);
  }
  return new Lowered(p, <usize>n);
}

/** result<string, string> for `execute`: tag at 0, pointer at 4, length at 8. */
export function returnResult(ok: bool, s: string): usize {
  const area = (heap.alloc(24) + 7) & ~7;
  const l = lowerString(s);
  store<u8>(area, ok ? 0 : 1);
  store<u32>(area + 4, <u32>l.ptr);
  store<u32>(area + 8, <u32>l.len);
  return area;
}

/** A return area for an import's result. */
export function retArea(size: usize): usize {
  return (heap.alloc(size + 8) + 7) & ~7;
}
