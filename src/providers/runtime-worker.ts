// A call worker: for every run message it instantiates the provider afresh
// (nothing survives between calls), runs `execute` and reports. Host imports
// are forwarded to the main thread: post the call, block on Atomics.wait
// until the main thread has put the answer on the answer port.
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import type { DoneMessage, HostAnswer, HostMessage, RunMessage } from './runtime-protocol.js';
import type { IoInterface } from './runtime-types.js';
import { FUEL_FIELD, FUEL_MODULE } from './runtime-fuel-names.js';
import { MAX_LOG_LINES } from './runtime-protocol.js';

interface Glue {
  instantiate(
    getCoreModule: (name: string) => WebAssembly.Module,
    imports: Record<string, Record<string, (...args: never[]) => unknown>>,
    instantiateCore: (m: WebAssembly.Module, imports?: WebAssembly.Imports) => Promise<WebAssembly.Instance>,
  ): Promise<{ execute(task: string): string }>;
}

const { signal, answers } = workerData as { signal: SharedArrayBuffer; answers: MessagePort };
const flag = new Int32Array(signal);
const loaded = new Map<string, { glue: Glue; modules: Record<string, WebAssembly.Module> }>();
let hostMs = 0;
let logLines = 0;

/** Forwards one host call and blocks until it is answered. */
function host(iface: IoInterface, fn: string, args: unknown[]): unknown {
  const t = performance.now();
  Atomics.store(flag, 0, 0);
  parentPort!.postMessage({ type: 'host', iface, fn, args } satisfies HostMessage);
  Atomics.wait(flag, 0, 0);
  const answer = receiveMessageOnPort(answers)?.message as HostAnswer | undefined;
  hostMs += performance.now() - t;
  if (!answer) throw new Error('host answer missing');
  if (!answer.ok) throw { payload: answer.error }; // jco turns { payload } into the err case
  return answer.value;
}

type Fn = (...args: never[]) => unknown;
/** The JS shapes jco's glue calls, for the linked interfaces only. */
function imports(linked: IoInterface[]): Record<string, Record<string, Fn>> {
  const all: Record<IoInterface, Record<string, Fn>> = {
    'latchgate:io/http': {
      fetch: ((req: { method: string; url: string; headers: [string, string][]; body?: Uint8Array; timeoutMs?: number }) =>
        host('latchgate:io/http', 'fetch', [{ method: req.method, url: req.url, headers: req.headers, body: req.body, timeout_ms: req.timeoutMs }])) as Fn,
    },
    'latchgate:io/fs': {
      read: ((path: string) => host('latchgate:io/fs', 'read', [path])) as Fn,
      write: ((path: string, data: Uint8Array, mode: string) => {
        host('latchgate:io/fs', 'write', [path, data, mode]);
      }) as Fn,
      delete: ((path: string) => {
        host('latchgate:io/fs', 'delete', [path]);
      }) as Fn,
      list: ((path: string) => host('latchgate:io/fs', 'list', [path])) as Fn,
      stat: ((path: string) => {
        const s = host('latchgate:io/fs', 'stat', [path]) as { kind: string; size: number; mtime_ms: number };
        return { kind: s.kind, size: s.size, mtimeMs: s.mtime_ms };
      }) as Fn,
    },
    'latchgate:io/log': {
      log: ((level: string, message: string, fields: [string, string][]) => {
        // Lines past the cap are dropped here, without a trip to the main thread.
        if (++logLines <= MAX_LOG_LINES) host('latchgate:io/log', 'log', [level, message, fields]);
      }) as Fn,
    },
  };
  return Object.fromEntries(linked.map((i) => [i, all[i]]));
}

async function load(msg: RunMessage): Promise<{ glue: Glue; modules: Record<string, WebAssembly.Module> }> {
  let entry = loaded.get(msg.key);
  if (!entry) {
    if (!msg.code) throw new Error(`worker has no code for ${msg.key}`);
    const glue = (await import(`data:text/javascript;base64,${Buffer.from(msg.code.js).toString('base64')}`)) as Glue;
    entry = { glue, modules: msg.code.modules };
    loaded.set(msg.key, entry);
  }
  return entry;
}

async function run(msg: RunMessage): Promise<DoneMessage> {
  hostMs = 0;
  logLines = 0;
  const fuel = new WebAssembly.Global({ value: 'i64', mutable: true }, BigInt(msg.fuel));
  const memories: WebAssembly.Memory[] = [];
  const used = (): number => msg.fuel - Math.max(0, Number(fuel.value as bigint));
  const t0 = performance.now();
  let t1 = t0;
  const done = (d: Omit<DoneMessage, 'type' | 'fuel_used' | 'instantiate_ms' | 'guest_ms' | 'host_io_ms'>): DoneMessage => {
    const end = performance.now();
    return { type: 'done', ...d, fuel_used: used(), instantiate_ms: t1 - t0, guest_ms: Math.max(0, end - t1 - hostMs), host_io_ms: hostMs };
  };
  try {
    const { glue, modules } = await load(msg);
    const instance = await glue.instantiate(
      (name) => {
        const m = modules[name];
        if (!m) throw new Error(`no core module ${name}`);
        return m;
      },
      imports(msg.linked),
      // Synchronous: the modules are compiled already, and this is the worker's thread.
      async (m, imp = {}) => {
        const inst = new WebAssembly.Instance(m, { ...imp, [FUEL_MODULE]: { [FUEL_FIELD]: fuel } });
        for (const v of Object.values(inst.exports)) if (v instanceof WebAssembly.Memory) memories.push(v);
        return inst;
      },
    );
    t1 = performance.now();
    const out = instance.execute(msg.task);
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
    if ((fuel.value as bigint) < 0n) return done({ ok: false, failure_class: 'fuel_exhausted', error: `the provider ran out of fuel (limit ${msg.fuel})` });
    if (e instanceof WebAssembly.RuntimeError && memories.some((m) => m.buffer.byteLength + 65536 > msg.memory_bytes))
      return done({ ok: false, failure_class: 'memory_exhausted', error: `the provider trapped at its memory limit of ${msg.memory_bytes / 2 ** 20} MiB: ${message}` });
    return done({ ok: false, failure_class: 'trap', error: `the provider trapped: ${message}` });
  }
}

parentPort!.on('message', (msg: RunMessage) => {
  void run(msg).then((d) => parentPort!.postMessage(d));
});
