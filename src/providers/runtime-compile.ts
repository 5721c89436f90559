// Compile once per digest: from the on-disk cache when a verified entry is
// there, else in a one-off worker thread (runtime-compile-job.ts), then
// cached. Per memory cap, the core modules are compiled by V8 once and the
// WebAssembly.Module objects shared with every call worker.
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { compilerId } from './compiler-id.js';
import { readCache, writeCache } from './runtime-cache.js';
import type { CompileAnswer, CompileOutput } from './runtime-compile-job.js';
import { capMemory, definesMemory } from './runtime-memory.js';

const JOB_URL = new URL('./runtime-compile-job.js', import.meta.url);
/** Compiles run one at a time: metering a 12 MB module takes hundreds of MB for seconds. */
let queue: Promise<unknown> = Promise.resolve();
/** A compile still running after this is stopped and the provider refused: it would hold every later one up. */
const COMPILE_TIMEOUT_MS = 300_000;

function compileInWorker(component: Uint8Array): Promise<CompileAnswer> {
  return new Promise((resolve, reject) => {
    // stderr piped and dropped: binaryen warns about name sections it does not know.
    const w = new Worker(JOB_URL, { workerData: component, stderr: true });
    w.stderr.resume();
    const timer = setTimeout(() => {
      reject(new Error(`compiling and metering the provider took longer than ${COMPILE_TIMEOUT_MS / 1000} s; it is refused`));
      void w.terminate();
    }, COMPILE_TIMEOUT_MS);
    w.once('exit', () => clearTimeout(timer));
    w.once('message', (m: ({ ok: true } & CompileAnswer) | { ok: false; error: string }) => {
      void w.terminate();
      if (m.ok) resolve({ out: m.out, compiler: m.compiler });
      else reject(new Error(m.error));
    });
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`the compile worker exited (code ${code})`)));
  });
}

/** Cache write failures said once per directory and digest (each later start compiles again until fixed). */
const unwritable = new Set<string>();

/**
 * The compiled form of the component with this digest: the installation's
 * precompiled entry (`prebuiltDir`, the built-in providers), else the
 * gate's cached one, else compiled now and cached. Refused when the bytes
 * are not the digest's, or when the compile step on disk is no longer the
 * one this process started with (an upgrade under a running gate).
 */
export async function compiled(cacheDir: string, digest: string, component: Uint8Array, prebuiltDir?: string): Promise<CompileOutput> {
  const actual = `sha256:${createHash('sha256').update(component).digest('hex')}`;
  if (actual !== digest) throw new Error(`the component to compile has digest ${actual}, not ${digest}: nothing compiled or cached under that digest`);
  const cached = (prebuiltDir !== undefined ? readCache(prebuiltDir, digest, { keep: true }) : undefined) ?? readCache(cacheDir, digest);
  if (cached) return cached;
  const job = queue.then(() => compileInWorker(component));
  queue = job.catch(() => undefined);
  const { out, compiler } = await job;
  if (compiler !== compilerId()) {
    throw new Error('latchgate or the packages it compiles providers with changed on disk since this gate started (an upgrade or reinstall): restart the gate; nothing compiled now is used or cached');
  }
  try {
    writeCache(cacheDir, digest, out);
  } catch (e) {
    // The compile stands; only its reuse is lost. Said once, with the fix.
    const key = `${cacheDir}\0${digest}`;
    if (!unwritable.has(key)) {
      unwritable.add(key);
      process.stderr.write(`latchgate: the compiled provider ${digest} could not be cached in ${cacheDir} (${(e as Error).message}); each gate start compiles it again until that directory is writable to this user again\n`);
    }
  }
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
