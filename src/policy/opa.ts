// OPA behind the same decision interface, for operators who have OPA:
//  - OpaWasmEngine: a policy compiled with `opa build -t wasm -e latchgate/decision`
//    (policy.wasm from the bundle), run in-process by @open-policy-agent/opa-wasm;
//  - OpaServerEngine: an OPA server's data API (POST {"input": ...} to e.g.
//    http://127.0.0.1:8181/v1/data/latchgate/decision), with a timeout.
// Both speak the Rego contract of the bundled policy (definitions/policies/opa/latchgate.rego,
// package latchgate): the input is the PolicyInput document as it is, the
// answer is `decision` = {allow, requires_approval?, deny_reason?, ...}.
// Both fail closed: timeout -> policy_engine_timeout, unreachable or not
// loadable -> policy_engine_unavailable, anything that is not a decision ->
// policy_engine_invalid_response.
// First: how V8 compiles and calls Wasm (runtime/wasm-flags.ts).
import '../runtime/wasm-flags.js';
import { readFileSync } from 'node:fs';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import { sha256Hex } from '../crypto/jcs.js';
import type { PolicyDecision, PolicyInput } from './types.js';
import {
  ENGINE_FAILURE,
  describeError,
  guardedDecide,
  type EngineFail,
  type FaultListener,
  type PolicyData,
  type PolicyEngine,
} from './engine.js';

export const DEFAULT_OPA_ENTRYPOINT = 'latchgate/decision';
export const DEFAULT_OPA_TIMEOUT_MS = 1000;


/**
 * Maps the value of the policy's `decision` rule to a PolicyDecision, or says
 * why it is not one. An allow must say requires_approval (the bundled
 * policy's always does) and carry no deny_reason; a deny without a reason gets one.
 */
export function mapOpaDecision(result: unknown, policyVersion: string, source: string): PolicyDecision | EngineFail {
  const bad = (why: string): EngineFail => ({ fail: ENGINE_FAILURE.invalidResponse, detail: `${source}: ${why}` });
  if (result === undefined) return bad('the decision is undefined (no result)');
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return bad('the decision is not an object');
  const r = result as Record<string, unknown>;
  if (typeof r['allow'] !== 'boolean') return bad('"allow" is not a boolean');
  let determining = [`opa:${source}`];
  if (r['determining_policies'] !== undefined) {
    const d = r['determining_policies'];
    if (!Array.isArray(d) || !d.every((x) => typeof x === 'string' && x.length > 0)) return bad('"determining_policies" is not a list of names');
    determining = d as string[];
  }
  if (r['allow'] === true) {
    if (typeof r['requires_approval'] !== 'boolean') return bad('an allow without a boolean "requires_approval"');
    if (r['deny_reason'] !== undefined && r['deny_reason'] !== null) return bad('an allow with a "deny_reason"');
    return { allow: true, requires_approval: r['requires_approval'], determining_policies: determining, policy_version: policyVersion };
  }
  const reason = r['deny_reason'];
  if (reason !== undefined && reason !== null && (typeof reason !== 'string' || reason.length === 0)) return bad('"deny_reason" is not a non-empty string');
  return {
    allow: false,
    requires_approval: false,
    deny_reason: typeof reason === 'string' ? reason : 'opa: denied without a reason',
    determining_policies: determining,
    policy_version: policyVersion,
  };
}

// ---- OPA as WebAssembly ------------------------------------------------------------

/** Exports every module built by `opa build -t wasm` has (OPA wasm ABI 1.x). */
const OPA_ABI_EXPORTS = ['opa_malloc', 'opa_heap_ptr_get', 'opa_heap_ptr_set', 'opa_json_parse', 'opa_json_dump', 'builtins', 'entrypoints'];

export class OpaLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OpaLoadError';
  }
}

type LoadedPolicy = Awaited<ReturnType<typeof loadPolicy>>;

export interface OpaWasmEngineOptions {
  /** Entrypoint of the compiled bundle (default latchgate/decision). */
  entrypoint?: string;
  /** Upper bound of the policy's linear memory, in 64 KiB pages (default 1024 = 64 MiB). */
  maxMemoryPages?: number;
  onFault?: FaultListener;
}

/**
 * Checks that bytes are an OPA policy module and instantiates it. Throws
 * OpaLoadError naming what is wrong (not WebAssembly, not OPA's ABI, no such
 * entrypoint, instantiation failed).
 */
export async function loadOpaWasm(bytes: Uint8Array<ArrayBuffer>, what: string, entrypoint: string, maxMemoryPages = 1024): Promise<LoadedPolicy> {
  if (!WebAssembly.validate(bytes)) throw new OpaLoadError(`${what} is not a valid WebAssembly module`);
  const mod = await WebAssembly.compile(bytes);
  const exports = new Set(WebAssembly.Module.exports(mod).map((e) => e.name));
  const missing = OPA_ABI_EXPORTS.filter((n) => !exports.has(n));
  if (!exports.has('opa_eval') && !exports.has('eval')) missing.push('opa_eval');
  const imports = WebAssembly.Module.imports(mod);
  const memImport = imports.some((i) => i.module === 'env' && i.name === 'memory' && i.kind === 'memory');
  if (missing.length > 0 || !memImport) {
    const what2 = [...(missing.length ? [`missing exports ${missing.join(', ')}`] : []), ...(memImport ? [] : ['no env.memory import'])];
    throw new OpaLoadError(`${what} is not an OPA policy module (build one with \`opa build -t wasm -e ${entrypoint}\`): ${what2.join('; ')}`);
  }
  let policy: LoadedPolicy;
  try {
    policy = await loadPolicy(mod, { initial: 5, maximum: maxMemoryPages });
  } catch (e) {
    throw new OpaLoadError(`${what}: the OPA module does not instantiate: ${describeError(e)}`);
  }
  const eps = (policy.entrypoints ?? {}) as Record<string, number>;
  if (!Object.prototype.hasOwnProperty.call(eps, entrypoint)) {
    throw new OpaLoadError(`${what} has no entrypoint ${entrypoint} (it has: ${Object.keys(eps).join(', ') || 'none'}); build with -e ${entrypoint}`);
  }
  return policy;
}

export class OpaWasmEngine implements PolicyEngine {
  readonly kind = 'opa-wasm' as const;
  /** SHA-256 of the policy.wasm bytes ('0'*64 when the file cannot be read). */
  readonly version: string;
  readonly entrypoint: string;
  private readonly loading: Promise<LoadedPolicy>;
  private policy: LoadedPolicy | undefined;
  private dataLoaded: { data: PolicyData; pv: string } | undefined;
  private readonly onFault: FaultListener | undefined;

  constructor(readonly policyWasmPath: string, opts: OpaWasmEngineOptions = {}) {
    this.entrypoint = opts.entrypoint ?? DEFAULT_OPA_ENTRYPOINT;
    this.onFault = opts.onFault;
    let bytes: Uint8Array<ArrayBuffer> | undefined;
    let readError: unknown;
    try {
      bytes = new Uint8Array(readFileSync(policyWasmPath));
    } catch (e) {
      readError = e;
    }
    this.version = bytes ? sha256Hex(bytes) : '0'.repeat(64);
    this.loading = bytes
      ? loadOpaWasm(bytes, policyWasmPath, this.entrypoint, opts.maxMemoryPages)
      : Promise.reject(new OpaLoadError(`cannot read the OPA policy ${policyWasmPath}: ${describeError(readError)}`));
    this.loading.then(
      (p) => {
        this.policy = p;
      },
      () => undefined, // reported by ready() and by every decide()
    );
  }

  /** Loads the engine, throwing OpaLoadError when the module cannot serve (for a loud start-up). */
  static async load(policyWasmPath: string, opts: OpaWasmEngineOptions = {}): Promise<OpaWasmEngine> {
    const e = new OpaWasmEngine(policyWasmPath, opts);
    await e.ready();
    return e;
  }

  async ready(): Promise<void> {
    await this.loading;
  }

  decide(input: PolicyInput, data: PolicyData): Promise<PolicyDecision> {
    return guardedDecide(this, input, data, async (pv) => {
      let policy = this.policy;
      if (!policy) {
        try {
          policy = await this.loading;
        } catch (e) {
          return { fail: ENGINE_FAILURE.unavailable, detail: describeError(e) };
        }
      }
      try {
        if (!this.dataLoaded || this.dataLoaded.data !== data || this.dataLoaded.pv !== pv) {
          // The bundled Rego reads data.acl, data.latchgate.allowlist and data.policy_version
          policy.setData({ acl: data.acl, allowlist: data.allowlist, latchgate: { allowlist: data.allowlist }, policy_version: pv });
          this.dataLoaded = { data, pv };
        }
      } catch (e) {
        this.dataLoaded = undefined;
        return { fail: ENGINE_FAILURE.unavailable, detail: `setData: ${describeError(e)}` };
      }
      let rs: unknown;
      try {
        rs = policy.evaluate(input, this.entrypoint);
      } catch (e) {
        return { fail: ENGINE_FAILURE.evaluationError, detail: `evaluate: ${describeError(e)}` };
      }
      if (!Array.isArray(rs)) return { fail: ENGINE_FAILURE.invalidResponse, detail: 'the result set is not a list' };
      if (rs.length === 0) return mapOpaDecision(undefined, pv, this.entrypoint);
      if (rs.length > 1) return { fail: ENGINE_FAILURE.invalidResponse, detail: `${rs.length} results for one decision` };
      const first = rs[0] as unknown;
      if (first === null || typeof first !== 'object') return { fail: ENGINE_FAILURE.invalidResponse, detail: 'a result that is not an object' };
      return mapOpaDecision((first as { result?: unknown }).result, pv, this.entrypoint);
    }, this.onFault);
  }
}

// ---- OPA server ------------------------------------------------------------------

export interface OpaServerEngineOptions {
  /** Whole-request deadline, connection to last byte (default 1000 ms). */
  timeoutMs?: number;
  /** Extra request headers (e.g. Authorization for an OPA with authn). */
  headers?: Record<string, string>;
  /** Largest answer read (default 1 MiB). */
  maxResponseBytes?: number;
  onFault?: FaultListener;
}

/**
 * Asks an OPA server. The server holds its own policy and data (load the
 * bundle with data.json there): PolicyStore's data is not sent, so the
 * policy_version is the server's (`decision.policy_version` when the policy
 * returns one) prefixed with "opa-server:".
 */
export class OpaServerEngine implements PolicyEngine {
  readonly kind = 'opa-server' as const;
  /** SHA-256 of the server URL: the policy text lives on the server. */
  readonly version: string;
  readonly url: string;
  readonly timeoutMs: number;
  private readonly headers: Record<string, string>;
  private readonly maxResponseBytes: number;
  private readonly onFault: FaultListener | undefined;

  constructor(url: string, opts: OpaServerEngineOptions = {}) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new OpaLoadError(`OPA server URL ${JSON.stringify(url)} is not a URL (expected e.g. http://127.0.0.1:8181/v1/data/latchgate/decision)`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new OpaLoadError(`OPA server URL must be http: or https:, not ${u.protocol}`);
    if (u.username || u.password) throw new OpaLoadError('OPA server URL must not carry credentials; pass an Authorization header instead');
    const timeoutMs = opts.timeoutMs ?? DEFAULT_OPA_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new OpaLoadError(`OPA timeout must be a positive number of milliseconds, not ${timeoutMs}`);
    this.url = u.href;
    this.timeoutMs = timeoutMs;
    this.version = sha256Hex(`opa-server ${u.href}`);
    this.headers = { 'content-type': 'application/json', accept: 'application/json', ...(opts.headers ?? {}) };
    this.maxResponseBytes = opts.maxResponseBytes ?? 1024 * 1024;
    this.onFault = opts.onFault;
  }

  decide(input: PolicyInput, data: PolicyData): Promise<PolicyDecision> {
    return guardedDecide(this, input, data, async (pv) => this.ask(input, pv), this.onFault);
  }

  /**
   * The server's answer, or a timeout failure once timeoutMs have passed
   * whatever the HTTP client does with the abort (one run of the suite saw
   * fetch go on to the answer 20 s later): the deadline is a race, not a hope.
   */
  private async ask(input: PolicyInput, pv: string): Promise<PolicyDecision | EngineFail> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<EngineFail>((resolve) => {
      timer = setTimeout(() => {
        resolve({ fail: ENGINE_FAILURE.timeout, detail: `no answer from ${this.url} within ${this.timeoutMs} ms` });
        controller.abort();
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([this.fetchDecision(input, pv, controller.signal), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async fetchDecision(input: PolicyInput, pv: string, signal: AbortSignal): Promise<PolicyDecision | EngineFail> {
    let text: string;
    try {
      const res = await fetch(this.url, {
        method: 'POST',
        headers: this.headers,
        body: JSON.stringify({ input }),
        signal,
        redirect: 'error',
      });
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        return { fail: ENGINE_FAILURE.unavailable, detail: `${this.url} answered HTTP ${res.status}` };
      }
      const declared = Number(res.headers.get('content-length') ?? NaN);
      if (Number.isFinite(declared) && declared > this.maxResponseBytes) {
        await res.body?.cancel().catch(() => undefined);
        return { fail: ENGINE_FAILURE.invalidResponse, detail: `answer of ${declared} bytes exceeds ${this.maxResponseBytes}` };
      }
      const chunks: Uint8Array[] = [];
      let size = 0;
      if (res.body) {
        const reader = res.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          size += value.byteLength;
          if (size > this.maxResponseBytes) {
            await reader.cancel().catch(() => undefined);
            return { fail: ENGINE_FAILURE.invalidResponse, detail: `answer exceeds ${this.maxResponseBytes} bytes` };
          }
          chunks.push(value);
        }
      }
      text = Buffer.concat(chunks).toString('utf8');
    } catch (e) {
      // After the deadline this answer is not read (ask has answered with the timeout).
      return { fail: ENGINE_FAILURE.unavailable, detail: `${this.url}: ${describeError(e)}` };
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { fail: ENGINE_FAILURE.invalidResponse, detail: `${this.url}: the answer is not JSON` };
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return { fail: ENGINE_FAILURE.invalidResponse, detail: `${this.url}: the answer is not a JSON object` };
    }
    const result = (body as { result?: unknown }).result;
    const serverVersion =
      result !== null && typeof result === 'object' && typeof (result as { policy_version?: unknown }).policy_version === 'string'
        ? (result as { policy_version: string }).policy_version
        : undefined;
    const version = serverVersion && serverVersion.length > 0 && serverVersion.length <= 200 ? `opa-server:${serverVersion}` : `${pv.split('.')[0]}.unversioned`;
    return mapOpaDecision(result, version, 'latchgate/decision');
  }
}
