// The provider interface: what the gate dispatches to after a grant is
// consumed. Providers reach the outside only through HostIo, which records
// what really happened (the evidence effect verification trusts): the host
// functions of a WebAssembly provider's call (src/gate/provider-hosts.ts), or
// the plain HTTP transport of a provider written in TypeScript (the test
// providers). The WebAssembly providers are src/gate/wasm-providers.ts.
import { createHash } from 'node:crypto';
import type { FsEvidence } from '../providers/host-fs.js';
import { HostIoError } from '../providers/host-error.js';
import type { HttpEvidence } from '../providers/host-http.js';
import type { FailureClass, Hosts, HttpRequest } from '../providers/runtime-types.js';
import type { CallHosts, ProviderLogLine } from './provider-hosts.js';
import type { ActionManifest } from './types.js';

export interface HttpCall {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** What the host observed: the only facts verification relies on. */
export type HostEvidence = { kind: 'http'; method: string; url: string; status: number; body_sha256: string } | HttpEvidence | FsEvidence;

export type HttpTransport = (call: HttpCall, signal: AbortSignal) => Promise<HttpResult>;

export class HostIo {
  private readonly own: HostEvidence[] = [];
  private calls = 0;
  private ended = false;

  /**
   * `durable` settles once the call's intent is on disk: every I/O call waits
   * for it, so the provider may be instantiated and start while the intent is
   * being synced, yet nothing leaves the gate before it survives a power cut.
   * If it fails, every I/O call fails with it and nothing is done; if the
   * call ends first (end()), every I/O call still waiting is refused.
   */
  constructor(
    private readonly transport: HttpTransport | undefined,
    private readonly maxIoCalls: number,
    private readonly signal: AbortSignal,
    private readonly call?: CallHosts,
    private readonly durable: Promise<void> = Promise.resolve(),
    /** Settles once the gate is done with the call (its receipt written): the runtime makes its next instance then. */
    readonly settled?: Promise<void>,
  ) {}

  /**
   * The call is over (returned, failed, timed out or aborted): an I/O call
   * still waiting for the intent is refused when it lands, so nothing is done
   * after the receipt's account of the call is settled.
   */
  end(): void {
    this.ended = true;
  }

  /** Waits for the intent to be durable; throws if it failed or the call ended meanwhile. */
  private async ready(): Promise<void> {
    await this.durable;
    this.refuseIfEnded();
  }

  private refuseIfEnded(): void {
    if (this.ended || this.signal.aborted) throw new HostIoError('call_ended', 'the call ended (timed out, failed or was aborted) before this I/O call could be made; nothing was done');
  }

  /** Everything the hosts observed, in the order of the calls. */
  get evidence(): HostEvidence[] {
    return [...this.own, ...(this.call?.http?.evidence ?? []), ...(this.call?.fs?.evidence ?? [])];
  }

  /** What the provider wrote to its log. */
  get logs(): readonly ProviderLogLine[] {
    return this.call?.logs ?? [];
  }

  /** The host functions of a WebAssembly provider's call, each counted as one I/O call. */
  hosts(): Hosts {
    const c = this.call;
    if (!c) return {};
    const count = <A extends unknown[], R>(f: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
      this.calls++;
      await this.ready();
      return f(...a);
    };
    const { http, fs } = c;
    return {
      // The HTTP host checks a request while the intent is made durable, and sends it only after (mayGo).
      ...(http
        ? {
            http: async (req: HttpRequest) => {
              this.calls++;
              // A call that has ended gets nothing done, not even its request checked or its secrets read.
              this.refuseIfEnded();
              return http(req, () => this.ready());
            },
          }
        : {}),
      ...(fs
        ? { fs: { read: count((p) => fs.read(p)), write: count((p, d, m) => fs.write(p, d, m)), delete: count((p) => fs.delete(p)), list: count((p) => fs.list(p)), stat: count((p) => fs.stat(p)) } }
        : {}),
      log: c.log,
    };
  }

  async http(call: HttpCall): Promise<HttpResult> {
    if (++this.calls > this.maxIoCalls) throw new Error(`I/O call budget of ${this.maxIoCalls} exhausted`);
    if (!this.transport) throw new Error('no HTTP transport is configured for this provider');
    await this.ready();
    const r = await this.transport(call, this.signal);
    this.own.push({ kind: 'http', method: call.method, url: call.url, status: r.status, body_sha256: createHash('sha256').update(r.body).digest('hex') });
    return r;
  }

  get ioCalls(): number {
    return this.calls;
  }
}

export interface RunTask {
  action_id: string;
  grant_id: string;
  /** The validated request body. */
  request: unknown;
  /** The manifest template expanded with the request (HTTP-style actions). */
  call?: HttpCall;
}

export interface ProviderOutput {
  ok: boolean;
  /** What the provider returns to the caller (validated against the response schema). */
  output?: unknown;
  error?: string;
  /** The provider's own account of what it did: recorded, never trusted. */
  provider_receipt?: unknown;
  /** Why a WebAssembly provider's call failed, as its runtime classed it (fuel, memory, time, output...). */
  failure_class?: FailureClass;
  /** What a WebAssembly provider's call used. */
  runtime?: { io_calls: number; fuel_used?: number; instantiate_ms: number; made_ahead?: boolean; guest_ms: number; host_io_ms: number };
}

export interface Provider {
  /** True when the provider stops a call at the manifest's timeout itself (the WebAssembly runtime): the gate's own timer is then only a backstop. */
  readonly timesItself?: boolean;
  /**
   * True when the provider cannot reach the outside but through HostIo (a
   * WebAssembly component: its code has no other import): it may start
   * while the intent is made durable, its I/O held until then. Any other
   * provider (TypeScript in the gate's process, which could write a file or
   * open a socket itself) is started only once the intent is durable.
   */
  readonly confined?: boolean;
  /** Work done once per provider before its first call (a WebAssembly component's compile), outside the call's time limit; a failure says why it cannot run. */
  prepare?(): Promise<ProviderOutput | undefined>;
  execute(task: RunTask, io: HostIo, signal: AbortSignal, manifest: ActionManifest): Promise<ProviderOutput>;
}

/** Providers by module digest ("sha256:..." or "builtin:<name>"). */
export class ProviderTable {
  private readonly byDigest = new Map<string, Provider>();

  register(digest: string, p: Provider): void {
    this.byDigest.set(digest, p);
  }

  get(digest: string): Provider | undefined {
    return this.byDigest.get(digest);
  }

  has(digest: string): boolean {
    return this.byDigest.has(digest);
  }
}
