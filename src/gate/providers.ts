// The provider interface: what the gate dispatches to after a grant is
// consumed. Providers reach the outside only through HostIo, which records
// what really happened (the evidence effect verification trusts). The
// WebAssembly runtime and the built-in providers plug in here.
import { createHash } from 'node:crypto';

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
export interface HostEvidence {
  kind: 'http';
  method: string;
  url: string;
  status: number;
  body_sha256: string;
}

export type HttpTransport = (call: HttpCall, signal: AbortSignal) => Promise<HttpResult>;

export class HostIo {
  readonly evidence: HostEvidence[] = [];
  private calls = 0;

  constructor(
    private readonly transport: HttpTransport | undefined,
    private readonly maxIoCalls: number,
    private readonly signal: AbortSignal,
  ) {}

  async http(call: HttpCall): Promise<HttpResult> {
    if (++this.calls > this.maxIoCalls) throw new Error(`I/O call budget of ${this.maxIoCalls} exhausted`);
    if (!this.transport) throw new Error('no HTTP transport is configured for this provider');
    const r = await this.transport(call, this.signal);
    this.evidence.push({ kind: 'http', method: call.method, url: call.url, status: r.status, body_sha256: createHash('sha256').update(r.body).digest('hex') });
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
}

export interface Provider {
  execute(task: RunTask, io: HostIo, signal: AbortSignal): Promise<ProviderOutput>;
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
