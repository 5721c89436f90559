// The WebAssembly providers actions run on: the built-ins (builtin:http_api,
// builtin:fs, built from providers/ at install, trusted by the digest the
// build recorded) and the operator's own (provider_module_digest
// "sha256:<hex>" with provider_source naming the component file, relative to
// the manifest). A file whose digest differs from the manifest's is never
// compiled: its actions are refused with provider_untrusted and the reason.
// Each call runs on a fresh instance (src/providers/runtime.ts) with the
// hosts src/gate/provider-hosts.ts made for it.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { BUILTIN_PROVIDERS, builtinProvider, PREBUILT_DIR, type BuiltinProvider } from '../providers/builtins.js';
import { ProviderRuntime } from '../providers/runtime.js';
import { ProviderRefused, type RunLimits } from '../providers/runtime-types.js';
import type { HostIo, Provider, ProviderOutput, ProviderTable, RunTask } from './providers.js';
import type { LoadedAction } from './registry.js';
import type { ActionManifest } from './types.js';

/** What the runtime needs of a manifest: its imports and limits. */
export function runLimits(m: ActionManifest): RunLimits {
  return {
    required_imports: m.required_imports,
    fuel: m.resource_limits.fuel,
    memory_mb: m.resource_limits.memory_mb,
    timeout_seconds: m.resource_limits.timeout_seconds,
    max_io_calls: m.resource_limits.max_io_calls,
    // The task carries the gate's expansion of the request besides the request itself.
    max_request_bytes: m.io.max_request_bytes * 2 + 16384,
    max_response_bytes: m.io.max_response_bytes,
    max_host_response_bytes: m.resource_limits.max_host_response_bytes,
  };
}

/** builtin:fs takes {op, request}: the one operation the manifest allows, or "write" (request.mode chooses) for create + overwrite. */
export function fsOperation(m: ActionManifest): string {
  const ops = m.fs?.allowed_operations ?? [];
  if (ops.length === 1) return ops[0]!;
  if (ops.length === 2 && ops.includes('create') && ops.includes('overwrite')) return 'write';
  throw new ProviderRefused('provider_error', `${m.action_id}: a builtin:fs action allows one operation, or create and overwrite together; it allows ${ops.join(', ')}`);
}

/** A component the runtime runs: the file and the digest it must have. */
class WasmProvider implements Provider {
  // The runtime stops the guest at timeout_seconds, counted from when a worker takes the call.
  readonly timesItself = true;
  // The guest's only imports are the host functions HostIo holds until the intent is durable.
  readonly confined = true;

  constructor(
    private readonly runtime: ProviderRuntime,
    private readonly file: string,
    private readonly digest: string,
    private readonly builtin: BuiltinProvider | undefined,
  ) {}

  /** Hashes the file again (a swapped file is refused) and compiles it on first use (cached by digest, on disk too). */
  async prepare(): Promise<ProviderOutput | undefined> {
    try {
      await this.runtime.load(this.file, this.digest);
      return undefined;
    } catch (e) {
      const refused = e instanceof ProviderRefused ? e : new ProviderRefused('provider_untrusted', (e as Error).message);
      return { ok: false, error: this.rebuilt() ?? refused.message, failure_class: refused.failure_class };
    }
  }

  /** For a built-in whose recorded digest is no longer the one this gate read: why, and the fix (a restart, not a rebuild). */
  private rebuilt(): string | undefined {
    if (!this.builtin) return undefined;
    let now: string;
    try {
      now = builtinProvider(this.builtin).digest;
    } catch {
      return undefined;
    }
    if (now === this.digest) return undefined;
    return `the built-in provider ${this.builtin} was rebuilt or upgraded since this gate started (it is now ${now}; this gate trusts the ${this.digest} it read then): restart the gate`;
  }

  async execute(task: RunTask, io: HostIo, signal: AbortSignal, m: ActionManifest): Promise<ProviderOutput> {
    const input = this.builtin === 'fs' ? { op: fsOperation(m), request: task.request } : task;
    const r = await this.runtime.run(this.digest, input, runLimits(m), io.hosts(), signal, io.settled);
    return {
      ok: r.ok,
      ...(r.output !== undefined ? { output: r.output } : {}),
      ...(r.error !== undefined ? { error: r.error } : {}),
      ...(r.provider_receipt !== undefined ? { provider_receipt: r.provider_receipt } : {}),
      ...(r.failure_class ? { failure_class: r.failure_class } : {}),
      runtime: { io_calls: r.io_calls, ...(r.fuel_used !== undefined ? { fuel_used: r.fuel_used } : {}), ...r.timings },
    };
  }
}

const sha256File = (file: string) => `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;

export class WasmProviders {
  readonly runtime: ProviderRuntime;
  /** Why an action's provider was not registered, by action id: the answer its calls get. */
  readonly refused = new Map<string, string>();
  /** The component digest each registered provider_module_digest runs ("builtin:fs" -> "sha256:..."). */
  readonly components = new Map<string, string>();

  constructor(opts: { cacheDir: string; poolSize?: number; queueLimit?: number }) {
    this.runtime = new ProviderRuntime({ ...opts, prebuiltDir: PREBUILT_DIR });
  }

  /**
   * Registers the provider of every action that names a WebAssembly one.
   * Only reads and hashes files: compiling waits for the first call.
   */
  register(table: ProviderTable, actions: readonly LoadedAction[]): void {
    for (const a of actions) {
      const m = a.manifest;
      const d = m.provider_module_digest;
      if (table.has(d)) continue;
      try {
        const p = this.providerFor(m, a.file);
        if (p) {
          table.register(d, p.provider);
          this.components.set(d, p.digest);
        }
      } catch (e) {
        this.refused.set(m.action_id, (e as Error).message);
      }
    }
  }

  private providerFor(m: ActionManifest, manifestFile: string): { provider: Provider; digest: string } | undefined {
    const d = m.provider_module_digest;
    const name = d.startsWith('builtin:') ? d.slice('builtin:'.length) : undefined;
    if (name !== undefined) {
      if (!(BUILTIN_PROVIDERS as readonly string[]).includes(name)) return undefined;
      const b = builtinProvider(name as BuiltinProvider);
      return { provider: new WasmProvider(this.runtime, b.file, b.digest, name as BuiltinProvider), digest: b.digest };
    }
    if (!m.provider_source) throw new ProviderRefused('provider_untrusted', `${m.action_id}: provider_module_digest ${d} needs provider_source (the component file, relative to the manifest)`);
    const file = isAbsolute(m.provider_source) ? m.provider_source : resolve(dirname(manifestFile), m.provider_source);
    let actual: string;
    try {
      actual = sha256File(file);
    } catch (e) {
      throw new ProviderRefused('provider_untrusted', `${m.action_id}: provider_source ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (actual !== d) {
      throw new ProviderRefused('provider_untrusted', `${m.action_id}: provider_source ${file} has digest ${actual}, not the ${d} its manifest trusts: rebuild the provider from its source, or check the file and update provider_module_digest (latchgate providers digest FILE)`);
    }
    return { provider: new WasmProvider(this.runtime, file, d, undefined), digest: d };
  }

  close(): Promise<void> {
    return this.runtime.close();
  }
}
