// The memory limit of a call: worker resourceLimits bound only the JS heap,
// not WebAssembly linear memory, so every memory a core module defines gets
// its maximum lowered to the limit (memory.grow past it returns -1 inside the
// guest). Tables are capped too: V8 keeps them on the worker's JS heap, and a
// table allocation past the heap limit aborts the whole process (not only
// the worker), so every table a core module defines gets at most
// TABLE_MAX_ENTRIES entries, and a module at most TABLES_MAX of them.
// Rewrites of the memory and table sections (WebAssembly core spec, 5.5.7
// and 5.5.8).

export const PAGE = 65536;
/** Entries one table may hold: 800 KB of the worker's heap (a componentize-js provider's table holds about 8,000). */
export const TABLE_MAX_ENTRIES = 100_000;
/** Tables one core module may define. */
export const TABLES_MAX = 4;

export function leb(bytes: Uint8Array, at: number): [value: number, next: number] {
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

/** Where the section with id `id` is: its start, its body's start and its end; undefined without one. */
function findSection(module: Uint8Array, id: number): { at: number; body: number; end: number } | undefined {
  let at = 8; // magic and version
  while (at < module.length) {
    const [size, body] = leb(module, at + 1);
    if (module[at] === id) return { at, body, end: body + size };
    at = body + size;
  }
  return undefined;
}

/** The body of the section with id `id`, or undefined. */
export function sectionBody(module: Uint8Array, id: number): Uint8Array | undefined {
  const s = findSection(module, id);
  return s && module.subarray(s.body, s.end);
}

/** The section with id `id` rewritten by `rewrite` (its body in, the new body out); the module unchanged without one. */
function rewriteSection(module: Uint8Array, id: number, rewrite: (body: Uint8Array) => number[]): Uint8Array {
  const s = findSection(module, id);
  if (!s) return module;
  const content = rewrite(module.subarray(s.body, s.end));
  const section = [id, ...encode(content.length), ...content];
  const out = new Uint8Array(module.length - (s.end - s.at) + section.length);
  out.set(module.subarray(0, s.at), 0);
  out.set(section, s.at);
  out.set(module.subarray(s.end), s.at + section.length);
  return out;
}

/** True when the module defines a memory of its own (an imported one is another instance's). */
export function definesMemory(module: Uint8Array): boolean {
  const memories = sectionBody(module, 5);
  return memories !== undefined && leb(memories, 0)[0] > 0;
}

/** Reads limits (flag 0: min; 1: min and max) at p; refuses any other flag (shared, 64-bit). */
function limits(body: Uint8Array, p: number, what: string): { min: number; max: number | undefined; next: number } {
  const flags = body[p++];
  if (flags !== 0 && flags !== 1) throw new Error(`a core module defines a shared or 64-bit ${what} (limits flag ${flags}), which the gate does not run`);
  const [min, q] = leb(body, p);
  if (flags === 0) return { min, max: undefined, next: q };
  const [max, r] = leb(body, q);
  return { min, max, next: r };
}

/**
 * The module with each defined memory's maximum at most `maxPages`, and each
 * defined table's at most TABLE_MAX_ENTRIES. Throws when a memory or table
 * needs more than that to start, when the module defines more than
 * TABLES_MAX tables, or when one is shared, 64-bit or of a form the gate does
 * not run.
 */
export function capMemory(module: Uint8Array, maxPages: number): Uint8Array {
  const memories = rewriteSection(module, 5, (body) => {
    let [count, p] = leb(body, 0);
    const out: number[] = encode(count);
    for (; count > 0; count--) {
      const l = limits(body, p, 'memory');
      p = l.next;
      if (l.min > maxPages) throw new Error(`the provider needs ${l.min} pages (${Math.ceil((l.min * PAGE) / 2 ** 20)} MiB) of memory to start, over its memory_mb limit of ${maxPages / 16} MiB`);
      out.push(1, ...encode(l.min), ...encode(Math.min(maxPages, l.max ?? maxPages)));
    }
    return out;
  });
  return rewriteSection(memories, 4, (body) => {
    let [count, p] = leb(body, 0);
    if (count > TABLES_MAX) throw new Error(`a core module defines ${count} tables, over the ${TABLES_MAX} the gate runs`);
    const out: number[] = encode(count);
    for (; count > 0; count--) {
      const type = body[p++]!;
      // funcref or externref; 0x40 (a table with an initializer expression) is a proposal the gate does not run.
      if (type !== 0x70 && type !== 0x6f) throw new Error(`a core module defines a table of type 0x${type.toString(16)}, which the gate does not run`);
      const l = limits(body, p, 'table');
      p = l.next;
      if (l.min > TABLE_MAX_ENTRIES) throw new Error(`a core module defines a table of ${l.min} entries, over the ${TABLE_MAX_ENTRIES} the gate runs`);
      out.push(type, 1, ...encode(l.min), ...encode(Math.min(TABLE_MAX_ENTRIES, l.max ?? TABLE_MAX_ENTRIES)));
    }
    return out;
  });
}
