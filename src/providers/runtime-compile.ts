// Compile once per digest: from the on-disk cache when a verified entry is
// there, else in a one-off worker thread (runtime-compile-job.ts), then
// cached. Per memory cap, the core modules are compiled by V8 once and the
// WebAssembly.Module objects shared with every call worker.
import { Worker } from 'node:worker_threads';
import { readCache, writeCache } from './runtime-cache.js';
import type { CompileOutput } from './runtime-compile-job.js';
import { capMemory, definesMemory } from './runtime-memory.js';

const JOB_URL = new URL('./runtime-compile-job.js', import.meta.url);
/** Compiles run one at a time: metering a 12 MB module takes hundreds of MB for seconds. */
let queue: Promise<unknown> = Promise.resolve();
/** A compile still running after this is stopped and the provider refused: it would hold every later one up. */
const COMPILE_TIMEOUT_MS = 300_000;

function compileInWorker(component: Uint8Array): Promise<CompileOutput> {
  return new Promise((resolve, reject) => {
    // stderr piped and dropped: binaryen warns about name sections it does not know.
    const w = new Worker(JOB_URL, { workerData: component, stderr: true });
    w.stderr.resume();
    const timer = setTimeout(() => {
      reject(new Error(`compiling and metering the provider took longer than ${COMPILE_TIMEOUT_MS / 1000} s; it is refused`));
      void w.terminate();
    }, COMPILE_TIMEOUT_MS);
    w.once('exit', () => clearTimeout(timer));
    w.once('message', (m: { ok: true; out: CompileOutput } | { ok: false; error: string }) => {
      void w.terminate();
      if (m.ok) resolve(m.out);
      else reject(new Error(m.error));
    });
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`the compile worker exited (code ${code})`)));
  });
}

/**
 * The compiled form of the component with this digest (its bytes already
 * checked against it): the installation's precompiled entry (`prebuiltDir`,
 * the built-in providers), else the gate's cached one, else compiled now
 * and cached.
 */
export async function compiled(cacheDir: string, digest: string, component: Uint8Array, prebuiltDir?: string): Promise<CompileOutput> {
  const cached = (prebuiltDir !== undefined ? readCache(prebuiltDir, digest, { keep: true }) : undefined) ?? readCache(cacheDir, digest);
  if (cached) return cached;
  const job = queue.then(() => compileInWorker(component));
  queue = job.catch(() => undefined);
  const out = await job;
  writeCache(cacheDir, digest, out);
  return out;
}

/** A provider's core modules as a call worker instantiates them. */
export interface Instantiable {
  modules: Record<string, WebAssembly.Module>;
  /** The modules that define a memory of their own (the worker lets one instance of them be made per call). */
  memoryModules: string[];
}

/** The core modules with their memories capped at `maxPages` (and their tables: runtime-memory.ts), compiled. */
export async function instantiable(modules: Record<string, Uint8Array>, maxPages: number): Promise<Instantiable> {
  const out: Instantiable = { modules: {}, memoryModules: [] };
  for (const [name, bytes] of Object.entries(modules)) {
    out.modules[name] = await WebAssembly.compile(capMemory(bytes, maxPages) as Uint8Array<ArrayBuffer>);
    if (definesMemory(bytes)) out.memoryModules.push(name);
  }
  return out;
}
