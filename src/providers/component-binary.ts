// What is read of a component's binary before its JS glue is generated: the
// names the generator would write into the glue, and the canonical built-ins
// the component uses.
//
// Names. jco writes the import and export names of core modules, and the
// names of the component's own core instances (their instantiation arguments
// and inline exports), into the glue as they are, inside JS string literals
// and comments: a name with a quote in it is JavaScript the gate would run.
// Core WebAssembly allows any UTF-8 in those names (WebAssembly core spec,
// 5.2.4 and 5.5.10), so they are read here, from the component's binary, and
// a component with a name outside NAME is refused. The component-level names
// (imports, exports, types) are not read here: the component validator,
// which runs before the generator writes anything (and in componentWit),
// refuses any that is not a kebab-case or interface name (the component
// model's binary format, "Import and Export Definitions").
//
// Built-ins. A provider's world (component-world.ts) is one synchronous
// function; of the canonical built-ins it needs lift and lower, and resource
// new, drop and rep for resources of its own inside it. The others (async
// tasks, streams, futures, waitables, contexts, threads, error contexts) are
// the glue's JS machinery, some of which runs guest code after the call has
// answered: a component that uses one, or an async or callback option, is
// refused.
//
// Anything this reader does not understand is refused too.

/** What a core name may be made of: what compilers and adapters emit (`cabi_realloc`, `[export]ns:pkg/iface@1.0.0`, `$imports`, `0`). */
const NAME = /^[A-Za-z0-9_.:@/$#+\-[\]]*$/;

const UTF8 = new TextDecoder('utf-8', { fatal: true });

class Reader {
  constructor(
    readonly bytes: Uint8Array,
    public at: number,
    readonly end: number,
  ) {}

  byte(): number {
    if (this.at >= this.end) throw new Error('truncated');
    return this.bytes[this.at++]!;
  }

  /** An unsigned or signed LEB128 of up to 64 bits; its value only as far as a number holds it. */
  leb(): number {
    let value = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return value;
    }
    throw new Error('LEB128 too long');
  }

  name(): string {
    const n = this.leb();
    if (this.at + n > this.end) throw new Error('truncated name');
    const s = UTF8.decode(this.bytes.subarray(this.at, this.at + n));
    this.at += n;
    return s;
  }

  /** The sections that follow, each as [id, a reader of its contents]. */
  *sections(): Generator<[number, Reader]> {
    while (this.at < this.end) {
      const id = this.byte();
      const size = this.leb();
      const start = this.at;
      if (start + size > this.end) throw new Error(`section ${id} runs past the end`);
      this.at = start + size;
      yield [id, new Reader(this.bytes, start, start + size)];
    }
  }
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d];

function header(r: Reader, layer: number): void {
  for (const b of MAGIC) if (r.byte() !== b) throw new Error('not a WebAssembly binary');
  r.at += 2; // version
  if (r.byte() !== layer || r.byte() !== 0) throw new Error(layer === 0 ? 'not a core module' : 'not a component');
}

/** A value or reference type of a core import: one byte, or a reference with its heap type. */
function valueType(r: Reader): void {
  const t = r.byte();
  if (t === 0x63 || t === 0x64) r.leb(); // (ref null? ht)
  else if (!((t >= 0x7b && t <= 0x7f) || (t >= 0x69 && t <= 0x74))) throw new Error(`value type 0x${t.toString(16)}`);
}

function limits(r: Reader): void {
  const flags = r.byte();
  if (flags > 0x0f) throw new Error(`limits flags 0x${flags.toString(16)}`);
  r.leb();
  if (flags & 1) r.leb();
  if (flags & 8) r.leb(); // custom page size
}

/** Every import and export name of a core module. */
function coreNames(r: Reader, out: string[]): void {
  header(r, 0);
  for (const [id, s] of r.sections()) {
    if (id === 2) {
      for (let n = s.leb(); n > 0; n--) {
        out.push(s.name(), s.name());
        const kind = s.byte();
        if (kind === 0x00) s.leb();
        else if (kind === 0x01) (valueType(s), limits(s));
        else if (kind === 0x02) limits(s);
        else if (kind === 0x03) (valueType(s), s.byte());
        else if (kind === 0x04) (s.byte(), s.leb());
        else throw new Error(`core import kind 0x${kind.toString(16)}`);
      }
    } else if (id === 7) {
      for (let n = s.leb(); n > 0; n--) {
        out.push(s.name());
        s.byte();
        s.leb();
      }
    }
  }
}

const RESOURCE_BUILTINS = new Set([0x02, 0x03, 0x04]); // resource.new, resource.drop, resource.rep

/** The options of a lift or lower: string encoding, memory, realloc, post-return; nothing async. */
function canonOptions(s: Reader): void {
  for (let n = s.leb(); n > 0; n--) {
    const opt = s.byte();
    if (opt >= 0x03 && opt <= 0x05) s.leb();
    else if (opt > 0x02) throw new Refused(`the canonical option 0x${opt.toString(16)} (async or callback), which a provider's synchronous execute has no use for`);
  }
}

/** The canon section: lifts, lowers and the resource built-ins, nothing else. */
function canonBuiltins(s: Reader): void {
  for (let n = s.leb(); n > 0; n--) {
    const op = s.byte();
    if (op === 0x00 || op === 0x01) {
      if (s.byte() !== 0x00) throw new Error('a lift or lower of an unknown kind');
      s.leb();
      canonOptions(s);
      if (op === 0x00) s.leb();
    } else if (RESOURCE_BUILTINS.has(op)) s.leb();
    else throw new Refused(`the canonical built-in 0x${op.toString(16)} (async tasks, streams, futures, waitables, contexts, threads or error contexts), which a provider may not use`);
  }
}

/** A refusal of what was read, not a failure to read it. */
class Refused extends Error {}

/** Every core name of a component: its core modules', its core instances', and those of the components it nests; its built-ins checked. */
function componentNames(r: Reader, out: string[]): void {
  header(r, 1);
  for (const [id, s] of r.sections()) {
    if (id === 1) coreNames(s, out);
    else if (id === 4) componentNames(s, out);
    else if (id === 8) canonBuiltins(s);
    else if (id === 2) {
      for (let n = s.leb(); n > 0; n--) {
        const form = s.byte();
        if (form === 0x00) {
          s.leb(); // the module
          for (let a = s.leb(); a > 0; a--) {
            out.push(s.name());
            if (s.byte() !== 0x12) throw new Error('a core instantiation argument that is not an instance');
            s.leb();
          }
        } else if (form === 0x01) {
          for (let e = s.leb(); e > 0; e--) {
            out.push(s.name());
            s.byte();
            s.leb();
          }
        } else throw new Error(`core instance form 0x${form.toString(16)}`);
      }
    }
  }
}

/** Throws, naming it, when the component uses a built-in a provider may not, has a core name the glue generator cannot be given, or cannot be read. */
export function checkComponentBinary(component: Uint8Array): void {
  const names: string[] = [];
  try {
    componentNames(new Reader(component, 0, component.length), names);
  } catch (e) {
    if (e instanceof Refused) throw new Error(`the component uses ${e.message}; it is refused`);
    throw new Error(`the component's core modules and instances could not be read (${(e as Error).message}); it is refused`);
  }
  const bad = names.find((n) => !NAME.test(n));
  if (bad !== undefined) {
    throw new Error(`the component has a core import or export named ${JSON.stringify(bad.slice(0, 80))}: names may hold only letters, digits and _ . : @ / $ # + - [ ]; it is refused`);
  }
}
