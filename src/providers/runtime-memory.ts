// The memory limit of a call: worker resourceLimits bound only the JS heap,
// not WebAssembly linear memory, so every memory a core module defines gets
// its maximum lowered to the limit (memory.grow past it returns -1 inside the
// guest). A rewrite of the memory section (WebAssembly core spec, 5.5.8).

export const PAGE = 65536;

function leb(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[at++];
    if (b === undefined) throw new Error('truncated LEB128 in a core module');
    value += (b & 0x7f) * 2 ** shift;
    if (!(b & 0x80)) return [value, at];
    shift += 7;
    if (shift > 35) throw new Error('LEB128 too long in a core module');
  }
}

function encode(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value) b |= 0x80;
    out.push(b);
  } while (value);
  return out;
}

/**
 * The module with each defined memory's maximum at most `maxPages`. Throws
 * when a memory needs more than that to start, or is shared or 64-bit.
 */
export function capMemory(module: Uint8Array, maxPages: number): Uint8Array {
  let at = 8; // magic and version
  while (at < module.length) {
    const id = module[at]!;
    const [size, body] = leb(module, at + 1);
    const end = body + size;
    if (id === 5) {
      let [count, p] = leb(module, body);
      const limits: number[] = encode(count);
      for (; count > 0; count--) {
        const flags = module[p++];
        if (flags !== 0 && flags !== 1) throw new Error(`a core module defines a shared or 64-bit memory (limits flag ${flags}), which the gate does not run`);
        const [min, q] = leb(module, p);
        p = q;
        let max = maxPages;
        if (flags === 1) {
          const [declared, r] = leb(module, p);
          p = r;
          max = Math.min(max, declared);
        }
        if (min > maxPages) throw new Error(`the provider needs ${min} pages (${Math.ceil((min * PAGE) / 2 ** 20)} MiB) of memory to start, over its memory_mb limit of ${maxPages / 16} MiB`);
        limits.push(1, ...encode(min), ...encode(max));
      }
      const section = [5, ...encode(limits.length), ...limits];
      const out = new Uint8Array(module.length - (end - at) + section.length);
      out.set(module.subarray(0, at), 0);
      out.set(section, at);
      out.set(module.subarray(end), at + section.length);
      return out;
    }
    at = end;
  }
  return module;
}
