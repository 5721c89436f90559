// A call worker: every run message gets an instance of its own (nothing
// survives between calls), runs `execute` and reports. Host imports are
// forwarded to the main thread: post the call, block on Atomics.wait until the
// main thread has put the answer on the answer port.
//
// Once a call has ended and the pool says its caller is done with it
// (SpareMessage), the worker makes the next call's instance: a fresh instance of the same code, memory cap and imports, used by
// at most one call and thrown away if the next call differs. Only small
// instances are kept ready (SPARE_MAX_BYTES of linear memory), and one that
// calls a host import while no call runs is discarded.
// First: how V8 compiles and calls Wasm (runtime/wasm-flags.ts).
import '../runtime/wasm-flags.js';
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import type { DoneMessage, HostAnswer, HostMessage, LogMessage, RunMessage, SpareMessage } from './runtime-protocol.js';
import type { IoInterface } from './runtime-types.js';
import { BULK_BYTES_PER_UNIT, FUEL_FIELD, FUEL_MODULE, FUEL_SCALE } from './runtime-fuel-names.js';
import { LogBudget } from './runtime-protocol.js';
import { HostIoError } from './host-error.js';
import { fsPath, fsWriteArgs, httpArgs, logArgs } from './runtime-args.js';

/** A fuel budget in the meter's counts (the global holds counts; limits and reports are in units). */
const counts = (units: number): bigint => BigInt(units) * BigInt(FUEL_SCALE);

interface Glue {
  instantiate(
    getCoreModule: (name: string) => WebAssembly.Module,
    imports: Record<string, Record<string, (...args: never[]) => unknown>>,
    instantiateCore: (m: WebAssembly.Module, imports?: WebAssembly.Imports) => Promise<WebAssembly.Instance>,
  ): Promise<{ execute(task: string): string }>;
}

// jco's glue reads process.env.JCO_DEBUG at each of its debug-log calls, dozens per call; this
// thread's environment, a copy as a plain object, answers without a lookup through the process's.
process.env = { ...process.env };

// The glue registers every resource it lifts with a FinalizationRegistry, whose callback runs the
// guest's destructor from a garbage collection: guest code outside any call, its failure thrown on
// this thread while no call runs. A provider's world has no resource (component-world.ts); should one
// get through, the glue finds no FinalizationRegistry and drops its handles without a destructor.
(globalThis as { FinalizationRegistry?: unknown }).FinalizationRegistry = undefined;

// What the glue lifts out of the guest's memory must be what the canonical ABI allows, or the call
// traps: strings are decoded fatally (invalid UTF-8 is an error, never U+FFFD) and whole (a leading
// byte-order mark is part of the string, not dropped), and a byte list is
// copied out of the memory only whole (ArrayBuffer slice clips a range past the end, silently).
// The glue and this file are the only code of this thread that reaches these globals; Node's own
// modules hold the originals.
const Decoder = globalThis.TextDecoder;
globalThis.TextDecoder = class FatalTextDecoder extends Decoder {
  constructor(label?: string, options?: TextDecoderOptions) {
    super(label, { ...options, fatal: true, ignoreBOM: true });
  }
} as typeof TextDecoder;
const slice = ArrayBuffer.prototype.slice;
ArrayBuffer.prototype.slice = function wholeSlice(this: ArrayBuffer, begin = 0, end = this.byteLength): ArrayBuffer {
  if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin || end > this.byteLength) {
    throw new RangeError(`bytes ${begin} to ${end} are outside the provider's memory of ${this.byteLength} bytes`);
  }
  return slice.call(this, begin, end);
};

const { signal, answers } = workerData as { signal: SharedArrayBuffer; answers: MessagePort };
const flag = new Int32Array(signal);
/** A provider's code as loaded: its glue, its core modules, and those of them that define a memory. */
interface Loaded {
  glue: Glue;
  modules: Record<string, WebAssembly.Module>;
  memoryModules: ReadonlySet<WebAssembly.Module>;
}
const loaded = new Map<string, Loaded>();
/**
 * Core instances one instance of a component may make (a built-in or a
 * componentize-js provider makes 3), and of them, instances of a module with
 * a memory of its own: each copies its data segments in and holds up to
 * memory_mb, work and memory no fuel is charged for.
 */
const CORE_INSTANCES_MAX = 16;
const MEMORY_INSTANCES_MAX = 1;
let hostMs = 0;
/** The running call's log lines and bytes. */
let logBudget = new LogBudget();
/** True while a call runs: the only time a host import may be called. */
let inCall = false;
/** The running call's fuel: a host import charges what it carries to it. */
let callFuel: WebAssembly.Global | undefined;
/** Set once the gate refused an I/O call past max_io_calls: the later ones are refused here, never posted. */
let ioClosed: string | undefined;
/** The meter of the instance being made ahead, while its start code runs. */
let makingAhead: { fuel: WebAssembly.Global; touched: boolean } | undefined;

/** Instances larger than this, or slower to make, are made when their call comes, not kept ready. */
const SPARE_MAX_BYTES = 16 * 2 ** 20;
const SPARE_MAX_MS = 50;
/** How long the instance of the call that ran last took to make. */
let lastMadeMs = Infinity;

interface Made {
  instance: { execute(task: string): string };
  fuel: WebAssembly.Global;
  memories: WebAssembly.Memory[];
  /** Fuel the module's start code used, in the meter's counts. */
  startFuel: bigint;
  ms: number;
}
/**
 * The instance of the call that ran last, held (never called again) until the next call has
 * run. V8 holds a function's optimized code only weakly: a collection that finds no function
 * of the glue alive that has run (the worker idle between calls, its spare not yet run) drops
 * that code, and every next instance runs the glue unoptimized and compiles it again, CPU
 * spent on every call. Only a small instance is held, as a spare is; its
 * memory, the finished call's, is reachable from nothing else.
 */
const lastRun: { instance?: unknown } = {};

const linearBytes = (memories: WebAssembly.Memory[]): number => memories.reduce((n, m) => n + m.buffer.byteLength, 0);
/** The next call's instance, made ahead for code `key` with imports `linked`. */
let spare: { key: string; linked: string; made: Promise<Made> } | undefined;

/** Refuses a host import outside a call. */
function needCall(iface: IoInterface, fn: string): void {
  // A component's start code can reach a lowered import (a component can hand one to a core instance
  // it instantiates). An instance made ahead never gets it: its fuel is taken (it traps at its next
  // metered step, whatever it does with the error) and it is thrown away.
  if (!inCall) {
    if (makingAhead) {
      makingAhead.touched = true;
      makingAhead.fuel.value = -1n;
    }
    throw new Error(`${iface}.${fn} was called while no call runs (from the module's start code)`);
  }
}

/**
 * What a host import's arguments cost in fuel: one unit, one per
 * BULK_BYTES_PER_UNIT bytes of strings and bytes, and one per list element
 * and record field, each of which the glue lifted on its own.
 */
function units(v: unknown): number {
  if (v instanceof Uint8Array) return Math.floor(v.byteLength / BULK_BYTES_PER_UNIT);
  if (typeof v === 'string') return Math.floor(v.length / BULK_BYTES_PER_UNIT);
  let n = 0;
  if (Array.isArray(v)) for (const x of v) n += 1 + units(x);
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) n += 1 + units(x);
  return n;
}

/**
 * Charges a host import's arguments to the call's fuel, as a bulk memory
 * instruction is charged (runtime-fuel.ts): the glue has just copied
 * them out of the guest's memory, by whatever types the component declared,
 * work by their size that would otherwise cost the guest one loop iteration.
 * Throws once the fuel is spent (the call fails as fuel_exhausted).
 */
function charge(args: unknown[]): void {
  if (!callFuel) return;
  const left = (callFuel.value as bigint) - counts(1 + units(args));
  callFuel.value = left;
  if (left < 0n) throw new Error('the fuel ran out in a host import');
}

/**
 * Forwards one I/O call and blocks until it is answered. Its arguments are
 * charged, then checked here as the gate's thread checks them again
 * (runtime-args.ts): a call of the wrong shape, or past max_io_calls once
 * the gate refused one, is refused without being posted.
 */
function host(iface: IoInterface, fn: string, lifted: unknown[], wire: (a: unknown[]) => unknown[]): unknown {
  needCall(iface, fn);
  charge(lifted);
  if (ioClosed) throw { payload: ioClosed };
  let args: unknown[];
  try {
    args = wire(lifted);
  } catch (e) {
    if (e instanceof HostIoError) throw { payload: `${e.code}: ${e.message}` };
    throw e;
  }
  const t = performance.now();
  Atomics.store(flag, 0, 0);
  parentPort!.postMessage({ type: 'host', iface, fn, args } satisfies HostMessage);
  Atomics.wait(flag, 0, 0);
  const answer = receiveMessageOnPort(answers)?.message as HostAnswer | undefined;
  hostMs += performance.now() - t;
  if (!answer) throw new Error('host answer missing');
  if (!answer.ok) {
    if (answer.error.startsWith('io_limit_exceeded:')) ioClosed = answer.error;
    throw { payload: answer.error }; // jco turns { payload } into the err case
  }
  return answer.value;
}

/** The request record as the glue lifts it (timeoutMs), as the gate's thread reads it (timeout_ms). */
function fetchArgs(a: unknown[]): unknown[] {
  const r = a[0] as { method?: unknown; url?: unknown; headers?: unknown; body?: unknown; timeoutMs?: unknown } | undefined;
  const req = a.length === 1 && r !== null && typeof r === 'object' ? { method: r.method, url: r.url, headers: r.headers, body: r.body, timeout_ms: r.timeoutMs } : r;
  return [httpArgs(a.length === 1 ? [req] : a)];
}
const pathArgs = (fn: string) => (a: unknown[]) => (a.length === 1 ? [fsPath(fn, a)] : refuseArity(`fs.${fn}`));
function refuseArity(what: string): never {
  throw new HostIoError('invalid_arguments', `${what} takes other arguments (the component's types do not match wit/latchgate-io.wit)`);
}

type Fn = (...args: never[]) => unknown;
/** The JS shapes jco's glue calls, for the linked interfaces only. */
function imports(linked: IoInterface[]): Record<string, Record<string, Fn>> {
  const all: Record<IoInterface, Record<string, Fn>> = {
    'latchgate:io/http': {
      fetch: ((...a: unknown[]) => host('latchgate:io/http', 'fetch', a, fetchArgs)) as Fn,
    },
    'latchgate:io/fs': {
      read: ((...a: unknown[]) => host('latchgate:io/fs', 'read', a, pathArgs('read'))) as Fn,
      write: ((...a: unknown[]) => {
        host('latchgate:io/fs', 'write', a, (x) => (x.length === 3 ? fsWriteArgs(x) : refuseArity('fs.write')));
      }) as Fn,
      delete: ((...a: unknown[]) => {
        host('latchgate:io/fs', 'delete', a, pathArgs('delete'));
      }) as Fn,
      list: ((...a: unknown[]) => host('latchgate:io/fs', 'list', a, pathArgs('list'))) as Fn,
      stat: ((...a: unknown[]) => {
        const s = host('latchgate:io/fs', 'stat', a, pathArgs('stat')) as { kind: string; size: number; mtime_ms: number };
        return { kind: s.kind, size: s.size, mtimeMs: s.mtime_ms };
      }) as Fn,
    },
    'latchgate:io/log': {
      log: ((...a: unknown[]) => {
        // Posted without waiting (it answers nothing); a malformed line, or one past the caps, is dropped here.
        needCall('latchgate:io/log', 'log');
        charge(a);
        const line = a.length === 3 ? logArgs(a) : undefined;
        if (line && logBudget.take(line[1], line[2])) parentPort!.postMessage({ type: 'log', args: line } satisfies LogMessage);
      }) as Fn,
    },
  };
  return Object.fromEntries(linked.map((i) => [i, all[i]]));
}

async function load(msg: RunMessage): Promise<Loaded> {
  let entry = loaded.get(msg.key);
  if (!entry) {
    if (!msg.code) throw new Error(`worker has no code for ${msg.key}`);
    const glue = (await import(`data:text/javascript;base64,${Buffer.from(msg.code.js).toString('base64')}`)) as Glue;
    const { modules, memoryModules } = msg.code;
    entry = { glue, modules, memoryModules: new Set(memoryModules.map((n) => modules[n]).filter((m) => m !== undefined)) };
    loaded.set(msg.key, entry);
  }
  return entry;
}

/** A fresh instance of the code, metered from `fuelLimit`; its start code runs now. */
async function instantiate(msg: RunMessage, fuelLimit: number): Promise<Made> {
  const t0 = performance.now();
  const fuel = new WebAssembly.Global({ value: 'i64', mutable: true }, counts(fuelLimit));
  const memories: WebAssembly.Memory[] = [];
  const ahead = inCall ? undefined : (makingAhead = { fuel, touched: false });
  if (inCall) callFuel = fuel; // its start code's host imports are the call's
  try {
    const { glue, modules, memoryModules } = await load(msg);
    let instances = 0;
    let withMemory = 0;
    const instance = await glue.instantiate(
      (name) => {
        const m = modules[name];
        if (!m) throw new Error(`no core module ${name}`);
        return m;
      },
      imports(msg.linked),
      // Synchronous: the modules are compiled already, and this is the worker's thread.
      async (m, imp = {}) => {
        if (++instances > CORE_INSTANCES_MAX) throw new Error(`the component makes more than ${CORE_INSTANCES_MAX} core instances; the gate runs at most that many`);
        if (memoryModules.has(m) && ++withMemory > MEMORY_INSTANCES_MAX) {
          throw new Error(`the component makes more than ${MEMORY_INSTANCES_MAX} core instance with a memory of its own; the gate runs at most that many`);
        }
        const inst = new WebAssembly.Instance(m, { ...imp, [FUEL_MODULE]: { [FUEL_FIELD]: fuel } });
        for (const v of Object.values(inst.exports)) if (v instanceof WebAssembly.Memory) memories.push(v);
        return inst;
      },
    );
    if (ahead?.touched) throw new Error('its start code called a host import');
    return { instance, fuel, memories, startFuel: counts(fuelLimit) - (fuel.value as bigint), ms: performance.now() - t0 };
  } catch (e) {
    throw Object.assign(e instanceof Error ? e : new Error(String(e)), { fuel, memories });
  } finally {
    if (makingAhead === ahead) makingAhead = undefined;
  }
}

/** The spare for this call if it was made for the same code and imports, else undefined (and the spare is dropped). */
async function takeSpare(msg: RunMessage): Promise<Made | undefined> {
  const s = spare;
  spare = undefined;
  if (!s || s.key !== msg.key || s.linked !== msg.linked.join(',')) return undefined;
  try {
    const made = await s.made;
    return made.startFuel <= counts(msg.fuel) ? made : undefined;
  } catch {
    return undefined; // made again below, inside the call, where its failure is reported
  }
}

/** Makes the next call's instance for the code and imports of the call that just ended. */
function prepareSpare(msg: RunMessage): void {
  const linked = msg.linked.join(',');
  const made = instantiate(msg, msg.fuel).then((m) => {
    if (linearBytes(m.memories) > SPARE_MAX_BYTES) throw new Error('too large to keep ready');
    return m;
  });
  made.catch(() => {
    if (spare?.made === made) spare = undefined;
  });
  spare = { key: msg.key, linked, made };
}

async function run(msg: RunMessage): Promise<DoneMessage> {
  hostMs = 0;
  logBudget = new LogBudget();
  ioClosed = undefined;
  let fuel: WebAssembly.Global | undefined;
  let memories: WebAssembly.Memory[] = [];
  let instantiateMs = 0;
  let madeAhead = false;
  lastMadeMs = Infinity;
  const used = (): number => (fuel ? msg.fuel - Math.floor(Math.max(0, Number(fuel.value as bigint)) / FUEL_SCALE) : 0);
  const t0 = performance.now();
  let t1 = t0;
  const done = (d: Omit<DoneMessage, 'type' | 'fuel_used' | 'instantiate_ms' | 'made_ahead' | 'guest_ms' | 'host_io_ms'>): DoneMessage => {
    const end = performance.now();
    return { type: 'done', ...d, fuel_used: used(), instantiate_ms: instantiateMs, made_ahead: madeAhead, guest_ms: Math.max(0, end - t1 - hostMs), host_io_ms: hostMs };
  };
  const outOfFuel = (): DoneMessage => done({ ok: false, failure_class: 'fuel_exhausted', error: `the provider ran out of fuel (limit ${msg.fuel})` });
  try {
    let made = await takeSpare(msg);
    if (made) {
      // Its start code's fuel counts against this call, as if it had run now.
      made.fuel.value = counts(msg.fuel) - made.startFuel;
      instantiateMs = made.ms;
      madeAhead = true;
    } else {
      inCall = true; // start code runs inside the call: its host imports are the call's
      try {
        made = await instantiate(msg, msg.fuel);
      } catch (e) {
        ({ fuel, memories = [] } = e as { fuel?: WebAssembly.Global; memories?: WebAssembly.Memory[] });
        instantiateMs = performance.now() - t0;
        throw e;
      }
      instantiateMs = made.ms;
    }
    ({ fuel, memories } = made);
    lastMadeMs = made.ms;
    t1 = performance.now();
    inCall = true;
    callFuel = fuel;
    const out = made.instance.execute(msg.task);
    // (The meter traps before a region it cannot pay for; this covers fuel a host import's charge took last.)
    if ((fuel.value as bigint) < 0n) return outOfFuel();
    lastRun.instance = linearBytes(made.memories) <= SPARE_MAX_BYTES ? made.instance : undefined;
    if (typeof out !== 'string') return done({ ok: false, failure_class: 'trap', error: 'execute returned no string' });
    if (Buffer.byteLength(out) > msg.max_response_bytes)
      return done({ ok: false, failure_class: 'response_too_large', error: `the provider returned ${Buffer.byteLength(out)} bytes, over max_response_bytes (${msg.max_response_bytes})` });
    return done({ ok: true, json: out });
  } catch (e) {
    if (t1 === t0) t1 = performance.now();
    if (e && typeof e === 'object' && 'payload' in e) {
      const p = String((e as { payload: unknown }).payload);
      return done({ ok: false, failure_class: 'provider_error', error: p.length > 4096 ? `${p.slice(0, 4096)}…` : p });
    }
    const message = e instanceof Error ? e.message : String(e);
    if (fuel && (fuel.value as bigint) < 0n) return outOfFuel();
    if (e instanceof WebAssembly.RuntimeError && memories.some((m) => m.buffer.byteLength + 65536 > msg.memory_bytes))
      return done({ ok: false, failure_class: 'memory_exhausted', error: `the provider trapped at its memory limit of ${msg.memory_bytes / 2 ** 20} MiB: ${message}` });
    return done({ ok: false, failure_class: 'trap', error: `the provider trapped: ${message}` });
  } finally {
    inCall = false;
    callFuel = undefined;
  }
}

/** The call whose instance is worth making again, once the pool says so (SpareMessage). */
let spareFor: RunMessage | undefined;

parentPort!.on('message', (msg: RunMessage | SpareMessage) => {
  if (msg.type === 'spare') {
    const m = spareFor;
    spareFor = undefined;
    if (m) prepareSpare(m);
    return;
  }
  spareFor = undefined; // a call came first: it makes its own instance
  void run(msg).then((d) => {
    parentPort!.postMessage(d);
    // After a failure the pool replaces this worker: no spare is worth making.
    if ((d.ok || d.failure_class === 'provider_error') && lastMadeMs <= SPARE_MAX_MS) spareFor = msg;
  });
});
