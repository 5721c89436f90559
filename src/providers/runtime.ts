// The WebAssembly provider runtime: loads a component by digest, and runs
// each call on a fresh instance in a worker thread under the manifest's
// limits, with only the host imports the manifest links. docs/PROVIDERS.md.
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { HostBridge } from './runtime-bridge.js';
import { compiled, instantiable, type Instantiable } from './runtime-compile.js';
import type { CompileOutput } from './runtime-compile-job.js';
import { PAGE } from './runtime-memory.js';
import { WorkerPool } from './runtime-pool.js';
import { IO_INTERFACES, ProviderRefused, refusal, type Hosts, type IoInterface, type RunLimits, type RunResult } from './runtime-types.js';

export interface RuntimeOptions {
  /** Where compiled providers are cached (the gate passes <stateDir>/provider-cache). */
  cacheDir: string;
  /** Where the installation keeps its precompiled providers, read first and never written (the gate passes PREBUILT_DIR). */
  prebuiltDir?: string;
  /** Calls running at once (default 4). */
  poolSize?: number;
  /** Calls waiting for a worker before provider_busy (default 64). */
  queueLimit?: number;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** "latchgate:io/http@0.1.0" and "latchgate:io/http" name the same interface. */
const unversioned = (name: string): string => name.replace(/@[^/]*$/, '');

/** Throws on limits no manifest could carry (a caller's bug: fail closed, loudly). */
function checkLimits(l: RunLimits): void {
  for (const k of ['fuel', 'memory_mb', 'timeout_seconds', 'max_io_calls', 'max_request_bytes', 'max_response_bytes', 'max_host_response_bytes'] as const) {
    const v = l[k];
    if (!Number.isSafeInteger(v) || v < (k === 'max_io_calls' ? 0 : 1)) throw new TypeError(`provider limit ${k} must be a positive integer, got ${String(v)}`);
  }
  if (l.memory_mb > 4096) throw new TypeError(`provider limit memory_mb is at most 4096 (wasm32), got ${l.memory_mb}`);
  if (!Array.isArray(l.required_imports)) throw new TypeError('provider limit required_imports must be a list of interface names');
}

export class ProviderRuntime {
  private readonly loaded = new Map<string, Promise<CompileOutput>>();
  /** file -> its identity (device, inode, size, mtime, ctime) when it last hashed to a digest. */
  private readonly hashed = new Map<string, string>();
  private readonly byMemory = new Map<string, Promise<Instantiable>>();
  private readonly pool: WorkerPool;
  private readonly cacheDir: string;
  private readonly prebuiltDir: string | undefined;

  constructor(opts: RuntimeOptions) {
    this.cacheDir = opts.cacheDir;
    this.prebuiltDir = opts.prebuiltDir;
    this.pool = new WorkerPool(opts.poolSize ?? 4, opts.queueLimit ?? 64);
  }

  /**
   * Loads the component in `file`, which must hash to `expectedDigest`
   * (else ProviderRefused provider_untrusted, before anything is compiled).
   * A file is hashed again whenever its identity changed since it last
   * matched: any write or rename onto it changes its ctime, which no caller
   * can set back. (What runs is always compiled from bytes that matched.)
   */
  async load(file: string, expectedDigest: string): Promise<void> {
    if (!DIGEST.test(expectedDigest)) throw new ProviderRefused('provider_untrusted', `provider digest must be "sha256:<64 lower-case hex>", got "${expectedDigest}"`);
    // Taken before the read: a change during the read leaves a stale identity, so the next call hashes again.
    // A synchronous stat of a local file is a few microseconds; a thread-pool turn would be on every call's path.
    const st = statSync(file, { bigint: true });
    const identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${expectedDigest}`;
    if (this.hashed.get(file) === identity && this.loaded.has(expectedDigest)) return void (await this.loaded.get(expectedDigest));
    const bytes = await readFile(file);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (digest !== expectedDigest) {
      this.hashed.delete(file);
      throw new ProviderRefused('provider_untrusted', `${file} has digest ${digest}, not the ${expectedDigest} the manifest trusts: rebuild the provider or update provider_module_digest`);
    }
    this.hashed.set(file, identity);
    let p = this.loaded.get(digest);
    if (!p) {
      p = compiled(this.cacheDir, digest, bytes, this.prebuiltDir);
      this.loaded.set(digest, p);
      p.catch(() => this.loaded.delete(digest));
    }
    await p;
  }

  /** The interfaces a loaded component imports ("latchgate:io/http@0.1.0"). */
  async imports(digest: string): Promise<string[]> {
    const entry = this.loaded.get(digest);
    if (!entry) throw new ProviderRefused('provider_untrusted', `no provider with digest ${digest} is loaded`);
    return [...(await entry).imports];
  }

  /** spareAfter: see Job.spareAfter. */
  async run(digest: string, task: unknown, limits: RunLimits, hosts: Hosts, signal?: AbortSignal, spareAfter?: Promise<unknown>): Promise<RunResult> {
    const entry = this.loaded.get(digest);
    if (!entry) return refusal('provider_untrusted', `no provider with digest ${digest} is loaded`);
    checkLimits(limits);
    let code: CompileOutput;
    try {
      code = await entry;
    } catch (e) {
      return refusal('provider_untrusted', e instanceof Error ? e.message : String(e));
    }
    const required = new Set(limits.required_imports.map(unversioned));
    const unknown = [...required].filter((i) => !(IO_INTERFACES as readonly string[]).includes(i));
    if (unknown.length) return refusal('provider_import_denied', `required_imports names ${unknown.join(', ')}, which this gate does not provide (it has ${IO_INTERFACES.join(', ')})`);
    const denied = code.imports.map(unversioned).filter((i) => !required.has(i));
    if (denied.length) return refusal('provider_import_denied', `the provider imports ${denied.join(', ')}, not in the action's required_imports (${[...required].join(', ') || 'none'})`);

    const json = JSON.stringify(task);
    const size = Buffer.byteLength(json);
    if (size > limits.max_request_bytes) return refusal('request_too_large', `the task is ${size} bytes, over max_request_bytes (${limits.max_request_bytes})`);

    const maxPages = limits.memory_mb * 16;
    const key = `${digest}#${maxPages}`;
    let modules = this.byMemory.get(key);
    if (!modules) {
      modules = instantiable(code.modules, maxPages);
      this.byMemory.set(key, modules);
    }
    let compiledModules: Instantiable;
    try {
      compiledModules = await modules;
    } catch (e) {
      return refusal('memory_exhausted', e instanceof Error ? e.message : String(e));
    }

    const linked = [...required] as IoInterface[];
    const bridge = new HostBridge(hosts, new Set(linked), limits.max_io_calls, limits.max_host_response_bytes);
    const outcome = await this.pool.run({
      msg: { type: 'run', key, task: json, fuel: limits.fuel, linked, max_response_bytes: limits.max_response_bytes, memory_bytes: maxPages * PAGE },
      code: { js: code.js, ...compiledModules },
      bridge,
      timeoutMs: limits.timeout_seconds * 1000,
      ...(signal ? { signal } : {}),
      ...(spareAfter ? { spareAfter } : {}),
    });
    if ('result' in outcome) return outcome.result;
    const d = outcome.done;
    const base = { io_calls: bridge.ioCalls, fuel_used: d.fuel_used, timings: { instantiate_ms: d.instantiate_ms, made_ahead: d.made_ahead, guest_ms: d.guest_ms, host_io_ms: d.host_io_ms } };
    if (!d.ok) return { ok: false, error: d.error ?? 'the provider failed', failure_class: d.failure_class ?? 'trap', ...base };
    return { ...parseOutput(d.json ?? ''), ...base };
  }

  /** Stops the idle workers (running calls finish). */
  close(): Promise<void> {
    return this.pool.close();
  }
}

/** The guest's ok string: a JSON object {"output": ..., "receipt"?: ...}. */
function parseOutput(json: string): Pick<RunResult, 'ok' | 'output' | 'provider_receipt' | 'error' | 'failure_class'> {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return { ok: false, failure_class: 'invalid_output', error: `the provider returned something that is not JSON (starts ${JSON.stringify(json.slice(0, 40))}); it must return {"output": ...}` };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v) || !('output' in v))
    return { ok: false, failure_class: 'invalid_output', error: 'the provider returned JSON without an "output" member; it must return {"output": ..., "receipt": ...}' };
  const o = v as { output: unknown; receipt?: unknown };
  return { ok: true, output: o.output, ...(o.receipt !== undefined ? { provider_receipt: o.receipt } : {}) };
}
