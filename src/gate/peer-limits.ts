// How much one peer may ask of the gate: requests per second (a token bucket
// per peer) and connections open at once. A peer is what the transport can
// tell apart without trusting the client: the peer uid on a Unix socket
// (SO_PEERCRED), the box on its own socket, the loopback TCP port as one.
// One peer's flood drains only its own bucket and its own connection count.
import { LIMIT_DEFAULTS } from './defaults.js';
import { GateError } from './errors.js';

export interface PeerLimitSettings {
  /** Requests a peer may make per second, sustained. */
  requestsPerSecond: number;
  /** Requests a peer may make at once before the rate applies. */
  requestBurst: number;
  /** Connections one peer may hold open at once. */
  maxConnectionsPerPeer: number;
  /** Time to receive a request's headers (Node's headersTimeout). */
  headersTimeoutMs: number;
  /** Time to receive a whole request, headers and body (Node's requestTimeout); the answer is not timed. */
  requestTimeoutMs: number;
  /** How long a kept-alive connection may wait for its next request. */
  keepAliveTimeoutMs: number;
  /** How long a connection may stay silent while no request on it is being worked on. */
  idleTimeoutMs: number;
}

/** [gate] key and setting, for the messages that name a bad value. */
const KEYS: Record<keyof PeerLimitSettings, string> = {
  requestsPerSecond: 'requests_per_second',
  requestBurst: 'request_burst',
  maxConnectionsPerPeer: 'max_connections_per_peer',
  headersTimeoutMs: 'headers_timeout_ms',
  requestTimeoutMs: 'request_timeout_ms',
  keepAliveTimeoutMs: 'keep_alive_timeout_ms',
  idleTimeoutMs: 'idle_timeout_ms',
};

/** The limits latchgate.toml [gate] sets, the defaults for the rest; a value that would turn a limit off is refused. */
export function peerLimits(c: Partial<Record<keyof PeerLimitSettings, number | undefined>>): PeerLimitSettings {
  const out = { ...LIMIT_DEFAULTS };
  for (const k of Object.keys(KEYS) as (keyof PeerLimitSettings)[]) {
    const v = c[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 1) throw new GateError('invalid_request', `[gate] ${KEYS[k]} = ${v}: expected an integer >= 1 (the default is ${LIMIT_DEFAULTS[k]}); a limit cannot be turned off`);
    out[k] = v;
  }
  if (out.headersTimeoutMs > out.requestTimeoutMs) {
    throw new GateError('invalid_request', `[gate] headers_timeout_ms = ${out.headersTimeoutMs} is longer than request_timeout_ms = ${out.requestTimeoutMs}: the headers are part of the request; make headers_timeout_ms at most request_timeout_ms`);
  }
  return out;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Requests per peer: a token bucket each, refilled at the rate up to the burst. */
export class RequestRate {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limits: Pick<PeerLimitSettings, 'requestsPerSecond' | 'requestBurst'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes a token for the peer: 0 when it may go on, else the whole seconds until it may try again. */
  take(peer: string): number {
    const now = this.now();
    const { requestsPerSecond: rate, requestBurst: burst } = this.limits;
    const b = this.buckets.get(peer) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (this.buckets.size > 4096) this.forgetFull(now);
    this.buckets.set(peer, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / rate));
  }

  /** Buckets that have refilled are the same as none: dropped so that many peers cannot grow the map. */
  private forgetFull(now: number): void {
    const { requestsPerSecond: rate, requestBurst: burst } = this.limits;
    for (const [k, b] of this.buckets) if (b.tokens + ((now - b.at) / 1000) * rate >= burst) this.buckets.delete(k);
  }
}

/** Connections open per peer. */
export class ConnectionCount {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Counts a new connection of the peer, or returns false (not counted) when the peer is at its cap. */
  admit(peer: string): boolean {
    const n = this.open.get(peer) ?? 0;
    if (n >= this.max) return false;
    this.open.set(peer, n + 1);
    return true;
  }

  /** A connection admit() counted has closed. */
  release(peer: string): void {
    const n = (this.open.get(peer) ?? 0) - 1;
    if (n > 0) this.open.set(peer, n);
    else this.open.delete(peer);
  }

  of(peer: string): number {
    return this.open.get(peer) ?? 0;
  }
}

/** What one gate process counts: shared by its client and admin sockets, so a peer's share is one. */
export class PeerGuard {
  readonly rate: RequestRate;
  readonly connections: ConnectionCount;

  constructor(readonly limits: PeerLimitSettings) {
    this.rate = new RequestRate(limits);
    this.connections = new ConnectionCount(limits.maxConnectionsPerPeer);
  }
}
