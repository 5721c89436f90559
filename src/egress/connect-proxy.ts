// The box's CONNECT proxy: the only way out to the network for an agent in the
// sandbox. It is served by the Node parent, on a listening socket made inside
// the box (listenFd), on a Unix socket bind-mounted into the box (listenUnix),
// or on a loopback port for tests (listenTcp).
//
// proxy-chain is the HTTP front: listeners, connection registry, request
// parsing, status-line answers and the "200 Connection Established" hand-off.
// Every decision is ours, taken in hooks proxy-chain offers:
//   - CONNECT: parseConnectTarget (the one target parser), port, literal-IP,
//     allowlist and tunnel-count checks, then resolveAndCheck on the host and a
//     connect to exactly the checked address and port (an operator pin may name
//     another port, and proxy-chain's dnsLookup option cannot change the port,
//     nor time out a connect or answer 502/504 when it fails). So the upstream
//     socket is opened in prepareRequestFunction, and proxy-chain hands us the
//     client socket through its customConnectServer option after it wrote 200.
//   - any other method (absolute-form "GET http://..." included): 403 or 400.
//   - parser errors, oversized headers (431) and slow headers (408), which
//     proxy-chain would all answer with 400.
// Each decision is one event_type 'egress' ledger event through opts.record:
// a denial at once with its reason, an allowed tunnel when it closes, with the
// bytes each way and its duration.
//
// With an upstream proxy (the host's own, upstream-proxy.ts), an allowed
// CONNECT is passed on to it, unless its no_proxy list names the host: the
// same checks run first (a refused host never reaches the upstream proxy),
// then CONNECT host:port (a pinned name: its pinned address and port) goes to
// the upstream proxy, which resolves the name. The launcher still resolves
// the name itself when it can and refuses one that resolves to an address the
// box may not reach; a name it cannot resolve (no outside DNS behind the
// proxy) is left to the proxy, which is then the only judge of the address
// (README: "Corporate networks").
//
// Once the tunnel is established, its bytes are relayed by the kernel
// (splice-relay.ts, native/relay.cc: splice() through pipes on a thread per
// tunnel), not through Node streams: half-close, idle timeout and the byte
// counts come from the relay.
import { EventEmitter } from 'node:events';
import { lstatSync, unlinkSync } from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import { RequestError, Server } from 'proxy-chain';
import type { AuditEventInput } from '../core/audit-event.js';
import { HostAllowlist, parseConnectTarget } from './allowlist.js';
import { spliceRelay, type RelayResult, type SpliceRelay } from './splice-relay.js';
import { boxAdvice, denialFix } from './denial-advice.js';
import { resolveAndCheck, type ResolveResult } from './ssrf.js';
import { describeUpstreamProxy, openTunnel, PROXY_LOOKUP_MS, UpstreamProxyError, type UpstreamProxy } from './upstream-proxy.js';

type ResolveOpts = NonNullable<Parameters<typeof resolveAndCheck>[2]>;

export type Transport = 'fd' | 'unix' | 'tcp';

export interface ConnectProxyLimits {
  /** Tunnels open (or being opened) at once, over all listeners; the next CONNECT gets 503. Default 64. */
  maxTunnels?: number;
  /** Request line plus headers, in bytes; more gets 431. Default 8 KiB. */
  maxHeaderBytes?: number;
  /** Header fields per request; more gets 431. Default 128. */
  maxHeaderCount?: number;
  /** The whole request head must arrive within this; otherwise 408. Default 10 s. */
  headerTimeoutMs?: number;
  /** A tunnel with no byte either way for this long is closed. Default 300 s. */
  idleTimeoutMs?: number;
  /** DNS lookup, and then the TCP connect to the upstream, each within this; otherwise 504. Default 10 s. */
  connectTimeoutMs?: number;
  /** Sockets open at once on one listener (an fd budget); excess connections are dropped unanswered. Default 512. */
  maxConnections?: number;
}

export interface ConnectProxyOptions {
  allowlist: HostAllowlist;
  /** Ports a CONNECT may name. Default [443]. */
  allowPorts?: number[];
  /** Operator pins: normalised host name -> address and port to connect to instead of resolving. */
  pinned?: Map<string, { ip: string; port: number }>;
  /** DNS lookup used by resolveAndCheck (tests inject one). */
  lookup?: ResolveOpts['lookup'];
  /** Called once per decision with an event_type 'egress' event (normally Ledger.append). */
  record(event: AuditEventInput): void;
  limits?: ConnectProxyLimits;
  /**
   * Opens the upstream TCP connection to the checked address (tests only: to
   * observe where the proxy connects, or to redirect to loopback). Default
   * net.connect({host: address, port, family}).
   */
  connect?: (address: string, port: number, family: 4 | 6) => net.Socket;
  /** The host's own proxy, through which tunnels to hosts its no_proxy list does not name are opened. */
  upstreamProxy?: UpstreamProxy | null;
}

export interface ConnectProxyStats {
  activeTunnels: number;
  listeners: number;
  /** record() calls that threw; after the first one every CONNECT is refused (fail closed). */
  recordFailures: number;
}

type Decision = 'allow' | 'deny';

/** Ledger details of one egress event; every key is always present. */
interface EgressDetails {
  host: string | null;
  port: number | null;
  resolved_address: string | null;
  bytes_up: number;
  bytes_down: number;
  duration_ms: number;
  reason: string;
  transport: Transport;
  /** HTTP status answered to the client (200 for a tunnel). */
  status: number;
  pinned?: boolean;
  /** Further explanation (parser or resolver message), never sent to the client. */
  detail?: string;
  /** The raw request target, truncated, when it could not be used. */
  target?: string;
  method?: string;
  addresses?: string[];
  /** The upstream proxy the tunnel went through (redacted URL and where it was configured), and what it was asked to CONNECT to. */
  upstream_proxy?: { url: string; source: string };
  proxy_target?: string;
}

const DEFAULTS = {
  maxTunnels: 64,
  maxHeaderBytes: 8 * 1024,
  maxHeaderCount: 128,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  connectTimeoutMs: 10_000,
  maxConnections: 512,
};

/** What the client is told for each reason: short, fixed text (never request data, except a validated host name or port). */
const MESSAGES: Record<string, string> = {
  bad_target: 'malformed CONNECT target; expected host:port',
  literal_ip: 'CONNECT to a literal IP address is refused; name a host',
  port_not_allowed: 'this port is not allowed',
  host_not_allowed: 'this host is not in the egress allowlist',
  egress_disabled: 'egress is disabled (the allowlist is empty)',
  too_many_tunnels: 'too many open tunnels',
  address_not_allowed: 'the host resolves to an address that is not allowed',
  dns_failed: 'the host name did not resolve',
  dns_timeout: 'the host name did not resolve in time',
  upstream_connect_failed: 'could not connect to the host',
  upstream_connect_timeout: 'timed out connecting to the host',
  client_closed_early: 'client closed the connection',
  plain_http_refused: 'plain-HTTP proxy requests are refused; use HTTPS (CONNECT host:443)',
  absolute_form_refused: 'only CONNECT host:port is served',
  not_a_proxy_request: 'this is an egress proxy; only CONNECT host:port is served',
  header_too_large: 'request header too large',
  too_many_headers: 'too many request header fields',
  header_timeout: 'request header not received in time',
  malformed_request: 'malformed request',
  bad_request: 'bad request',
  internal_error: 'internal error in the egress proxy',
  proxy_closing: 'the egress proxy is shutting down',
  ledger_unavailable: 'the audit ledger is unavailable, egress is refused',
  upstream_proxy_unreachable: "the host's upstream proxy could not be reached",
  upstream_proxy_refused: "the host's upstream proxy refused the tunnel",
  upstream_proxy_timeout: "the host's upstream proxy did not answer in time",
  upstream_proxy_bad_answer: "the host's upstream proxy gave no usable answer",
};

const SAFE_HOST = /^[a-z0-9.-]{1,253}$/;
const TRUNCATE = 256;

function truncate(s: string): string {
  return s.length > TRUNCATE ? `${s.slice(0, TRUNCATE)}…` : s;
}

function positive(v: number | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v <= 0) throw new TypeError(`ConnectProxy limits.${name} must be a positive integer (got ${String(v)})`);
  return v;
}

/** A refusal decided (and already recorded) by the proxy. */
class Denial extends RequestError {
  /** extra: validated, client-safe text appended to the reason's message; refusal: what the answer names besides. */
  constructor(readonly reason: string, status: number, readonly extra: string, readonly refusal: Refusal) {
    super(`${MESSAGES[reason] ?? 'refused'}${extra}`, status);
  }
}

/** What a refusal's answer names besides its reason: the validated host and port, and what would allow it (denial-advice.ts). */
interface Refusal {
  host?: string;
  port?: number;
  fix?: string;
  advice: string[];
}

/** One CONNECT allowed by policy, from the decision to the close of both sockets. */
interface Tunnel {
  host: string;
  port: number;
  transport: Transport;
  started: number;
  client: net.Socket;
  upstream: net.Socket | null;
  resolved: string | null;
  pinned: boolean;
  /** Set when the tunnel goes through the upstream proxy: what it was asked to CONNECT to. */
  proxyTarget: string | null;
  /**
   * opening: resolving and connecting (a failure is recorded as a denial);
   * open: upstream connected, recorded as allowed once both sockets closed;
   * done: recorded, slot released.
   */
  phase: 'opening' | 'open' | 'done';
  /** The first cause of the end; the recorded reason. */
  reason: string | null;
  clientClosed: boolean;
  upstreamClosed: boolean;
  /** Set once the client socket is spliced to the upstream (after 200). */
  spliced: boolean;
  /** The kernel relay moving the tunnel's bytes, from the splice until it ended. */
  relay: SpliceRelay | null;
  /** Bytes the relay delivered to the upstream and to the client; null until it ended. */
  relayed: { up: number; down: number } | null;
  /** Why the relay failed, for the ledger. */
  detail?: string;
}

interface FrontHooks {
  transport: Transport;
  precheck(request: http.IncomingMessage): void;
  prepare(request: http.IncomingMessage): Promise<{ customConnectServer: http.Server }>;
  request(request: http.IncomingMessage, front: Front): void;
  clientError(err: NodeJS.ErrnoException, socket: net.Socket, front: Front): void;
  failed(request: http.IncomingMessage, err: Error, front: Front): void;
}

/** proxy-chain's Server with latchgate's limits and hooks. One per listener. */
class Front extends Server {
  constructor(private readonly hooks: FrontHooks, limits: Required<ConnectProxyLimits>) {
    super({ port: 0, authRealm: 'latchgate', verbose: false, prepareRequestFunction: ({ request }) => hooks.prepare(request) });
    const s = this.server as http.Server;
    // Options http.createServer() would take; proxy-chain creates the server
    // without options, and Node reads these per connection and on 'listening'.
    (s as unknown as { maxHeaderSize: number }).maxHeaderSize = limits.maxHeaderBytes;
    s.maxHeadersCount = limits.maxHeaderCount + 1; // one more than allowed, so "too many" is visible
    s.headersTimeout = limits.headerTimeoutMs;
    s.requestTimeout = limits.headerTimeoutMs; // answered at once: a request has no body to wait for
    (s as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.max(25, Math.min(1000, Math.floor(limits.headerTimeoutMs / 4)));
    s.keepAliveTimeout = 1000;
    s.maxConnections = limits.maxConnections;
  }

  override onConnection(socket: net.Socket): void {
    // proxy-chain destroys sockets without remoteAddress: every Unix-socket client.
    if (!socket.remoteAddress) Object.defineProperty(socket, 'remoteAddress', { value: '127.0.0.255', configurable: true });
    super.onConnection(socket);
  }

  override getHandlerOpts(request: http.IncomingMessage): ReturnType<Server['getHandlerOpts']> {
    // Our parser decides before proxy-chain's `new URL("connect://" + target)`.
    if (request.method === 'CONNECT') this.hooks.precheck(request);
    return super.getHandlerOpts(request);
  }

  override onClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
    this.hooks.clientError(err, socket, this);
  }

  override async onRequest(request: http.IncomingMessage): Promise<void> {
    this.hooks.request(request, this);
  }

  override failRequest(request: http.IncomingMessage, error: NodeJS.ErrnoException): void {
    this.hooks.failed(request, error, this);
  }

  /**
   * Answers a refusal and closes: fixed text per reason plus a validated
   * extra, then what would allow it, never request data. JSON when the
   * client asked for it (Accept: application/json), text otherwise; the
   * reason also in the x-latchgate-reason header.
   */
  answer(socket: net.Socket, status: number, reason: string, extra = '', refusal: Refusal = { advice: [] }, json = false): void {
    if (socket.destroyed || !socket.writable) {
      socket.destroy();
      return;
    }
    const text = `${MESSAGES[reason] ?? 'refused'}${extra}`;
    const headers = { 'x-latchgate-reason': reason, ...(json ? { 'content-type': 'application/json' } : {}) };
    const body = json
      ? `${JSON.stringify({ error: reason, message: text, ...(refusal.host ? { host: refusal.host } : {}), ...(refusal.port ? { port: refusal.port } : {}), ...(refusal.fix ? { fix: refusal.fix } : {}), advice: refusal.advice.join(' ') })}\n`
      : [`latchgate egress proxy: ${text} [${reason}]`, ...refusal.advice, ''].join('\n');
    this.sendSocketResponse(socket, status, headers, body);
  }
}

/** The client asked for a JSON answer. */
function wantsJson(request: http.IncomingMessage): boolean {
  const accept = request.headers.accept;
  return typeof accept === 'string' && /\bapplication\/json\b/i.test(accept);
}

export class ConnectProxy {
  readonly #allowlist: HostAllowlist;
  readonly #allowPorts: Set<number>;
  readonly #resolveOpts: ResolveOpts;
  readonly #record: (event: AuditEventInput) => void;
  readonly #connect: (address: string, port: number, family: 4 | 6) => net.Socket;
  readonly #upstream: UpstreamProxy | null;
  readonly #limits: Required<ConnectProxyLimits>;
  readonly #fronts = new Set<Front>();
  readonly #tunnels = new Set<Tunnel>();
  /** Client socket -> its tunnel, for the splice and for failRequest. */
  readonly #bySocket = new WeakMap<net.Socket, Tunnel>();
  /** The "server" proxy-chain emits 'connection' on once it answered 200. */
  readonly #splicer = new EventEmitter();
  readonly #drained: Array<() => void> = [];
  readonly #answered = new WeakSet<net.Socket>();
  #closing = false;
  #recordFailures = 0;

  constructor(opts: ConnectProxyOptions) {
    if (!(opts.allowlist instanceof HostAllowlist)) throw new TypeError('ConnectProxy: allowlist must be a HostAllowlist');
    if (typeof opts.record !== 'function') throw new TypeError('ConnectProxy: record must be a function');
    this.#allowlist = opts.allowlist;
    const ports = opts.allowPorts ?? [443];
    for (const p of ports) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw new TypeError(`ConnectProxy: allowPorts entry ${String(p)} is not a port (1-65535)`);
    }
    this.#allowPorts = new Set(ports);
    this.#resolveOpts = {};
    if (opts.lookup !== undefined) this.#resolveOpts.lookup = opts.lookup;
    if (opts.pinned !== undefined) this.#resolveOpts.pinned = opts.pinned;
    this.#record = opts.record;
    this.#connect = opts.connect ?? ((address, port, family) => net.connect({ host: address, port, family }));
    this.#upstream = opts.upstreamProxy ?? null;
    const l = opts.limits ?? {};
    this.#limits = {
      maxTunnels: positive(l.maxTunnels, DEFAULTS.maxTunnels, 'maxTunnels'),
      maxHeaderBytes: positive(l.maxHeaderBytes, DEFAULTS.maxHeaderBytes, 'maxHeaderBytes'),
      maxHeaderCount: positive(l.maxHeaderCount, DEFAULTS.maxHeaderCount, 'maxHeaderCount'),
      headerTimeoutMs: positive(l.headerTimeoutMs, DEFAULTS.headerTimeoutMs, 'headerTimeoutMs'),
      idleTimeoutMs: positive(l.idleTimeoutMs, DEFAULTS.idleTimeoutMs, 'idleTimeoutMs'),
      connectTimeoutMs: positive(l.connectTimeoutMs, DEFAULTS.connectTimeoutMs, 'connectTimeoutMs'),
      maxConnections: positive(l.maxConnections, DEFAULTS.maxConnections, 'maxConnections'),
    };
    this.#resolveOpts.timeoutMs = this.#limits.connectTimeoutMs;
    this.#splicer.on('connection', (socket: net.Socket) => this.#splice(socket));
  }

  /** Serves a listening socket made elsewhere (inside the box: RunHooks.onListen). */
  listenFd(fd: number): Promise<void> {
    return this.#listen('fd', { fd }).then(() => undefined);
  }

  /** Serves a Unix socket at path (a stale socket file there is replaced). */
  listenUnix(path: string): Promise<void> {
    try {
      if (lstatSync(path).isSocket()) unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return this.#listen('unix', { path }).then(() => undefined);
  }

  /** Serves host:port (tests; port 0 picks one). Resolves to the bound address. */
  async listenTcp(host = '127.0.0.1', port = 0): Promise<{ host: string; port: number }> {
    const addr = await this.#listen('tcp', { host, port });
    if (addr === null || typeof addr === 'string') throw new Error('listenTcp: no TCP address');
    return { host: addr.address, port: addr.port };
  }

  stats(): ConnectProxyStats {
    return { activeTunnels: this.#tunnels.size, listeners: this.#fronts.size, recordFailures: this.#recordFailures };
  }

  /** Stops every listener, closes every tunnel (each recorded, reason proxy_closed) and resolves when all is done. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const t of this.#tunnels) {
      t.reason ??= 'proxy_closed';
      t.relay?.stop(); // the relay ends, then destroys both sockets: recorded on their close
    }
    const fronts = [...this.#fronts];
    this.#fronts.clear();
    await Promise.all(fronts.map((f) => f.close(true).catch(() => undefined)));
    for (const t of this.#tunnels) {
      // A relayed socket's destroy waits for its relay to let go of the fd.
      t.client.destroy();
      t.upstream?.destroy();
    }
    if (this.#tunnels.size > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
  }

  // -------------------------------------------------------------------------

  #listen(transport: Transport, options: net.ListenOptions | { fd: number }): Promise<net.AddressInfo | string | null> {
    if (this.#closing) return Promise.reject(new Error('ConnectProxy is closed'));
    const front = new Front(this.#hooks(transport), this.#limits);
    const server = front.server as http.Server;
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => {
        server.off('listening', onListening);
        reject(e);
      };
      const onListening = () => {
        server.off('error', onError);
        // A listener error later (EMFILE on accept) must not crash the parent.
        server.on('error', () => undefined);
        this.#fronts.add(front);
        resolve(server.address());
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(options as net.ListenOptions); // { fd } is a handle object, which listen() also takes
    });
  }

  #hooks(transport: Transport): FrontHooks {
    return {
      transport,
      precheck: (request) => {
        // llhttp reads a request line without a version as HTTP/0.9.
        if (request.httpVersionMajor !== 1) {
          throw this.#deny(transport, 400, 'malformed_request', { started: Date.now(), detail: `HTTP version ${request.httpVersion}`, target: request.url ?? '' });
        }
        const parsed = parseConnectTarget(request.url ?? '');
        if ('error' in parsed) throw this.#deny(transport, 400, 'bad_target', { started: Date.now(), detail: parsed.error, target: request.url ?? '' });
      },
      prepare: (request) => this.#prepare(request, transport),
      request: (request, front) => this.#plainRequest(request, transport, front),
      clientError: (err, socket, front) => this.#clientError(err, socket, transport, front),
      failed: (request, err, front) => this.#failed(request, err, transport, front),
    };
  }

  #emit(decision: Decision, details: EgressDetails): void {
    try {
      this.#record({ event_type: 'egress', decision, details: { ...details } });
    } catch {
      // Fail closed: without a ledger no further tunnel is allowed.
      this.#recordFailures++;
    }
  }

  /** Records a denial and returns the error that makes proxy-chain answer it. */
  #deny(transport: Transport, status: number, reason: string, o: DenyInfo): Denial {
    const d: EgressDetails = {
      host: o.host ?? null,
      port: o.port ?? null,
      resolved_address: o.resolved ?? null,
      bytes_up: 0,
      bytes_down: 0,
      duration_ms: Date.now() - o.started,
      reason,
      transport,
      status,
    };
    if (o.pinned !== undefined) d.pinned = o.pinned;
    if (o.detail !== undefined) d.detail = truncate(o.detail);
    if (o.target !== undefined) d.target = truncate(o.target);
    if (o.method !== undefined) d.method = truncate(o.method);
    if (o.addresses !== undefined) d.addresses = o.addresses.slice(0, 16);
    if (o.proxyTarget !== undefined) Object.assign(d, this.#viaDetails(o.proxyTarget));
    this.#emit('deny', d);
    const host = o.host && SAFE_HOST.test(o.host) ? o.host : undefined;
    const port = o.port ?? undefined;
    let extra = '';
    if (reason === 'host_not_allowed' && host) extra = `: ${host}`;
    if (reason === 'port_not_allowed' && port) extra = `: ${port} (allowed: ${[...this.#allowPorts].join(', ')})`;
    // What would allow it, for the agent to relay: never the resolved addresses, which are the host's to know.
    const target = { reason, host: host ?? null, port: port ?? null, allowPorts: [...this.#allowPorts] };
    const fix = denialFix(target, 'box') ?? undefined;
    const refusal: Refusal = { ...(host ? { host } : {}), ...(port ? { port } : {}), ...(fix ? { fix } : {}), advice: boxAdvice(target) };
    return new Denial(reason, status, extra, refusal);
  }

  async #prepare(request: http.IncomingMessage, transport: Transport): Promise<{ customConnectServer: http.Server }> {
    const started = Date.now();
    const client = request.socket;
    const parsed = parseConnectTarget(request.url ?? '');
    if ('error' in parsed) throw this.#deny(transport, 400, 'bad_target', { started, detail: parsed.error, target: request.url ?? '' });
    const { host, port } = parsed;
    if (this.#closing) throw this.#deny(transport, 503, 'proxy_closing', { started, host, port });
    if (this.#recordFailures > 0) throw this.#deny(transport, 503, 'ledger_unavailable', { started, host, port });
    if (request.rawHeaders.length / 2 > this.#limits.maxHeaderCount) throw this.#deny(transport, 431, 'too_many_headers', { started, host, port });
    if (parsed.literalIp) throw this.#deny(transport, 403, 'literal_ip', { started, host, port });
    if (!this.#allowPorts.has(port)) throw this.#deny(transport, 403, 'port_not_allowed', { started, host, port });
    if (this.#allowlist.size === 0) throw this.#deny(transport, 403, 'egress_disabled', { started, host, port });
    if (!this.#allowlist.matches(host)) throw this.#deny(transport, 403, 'host_not_allowed', { started, host, port });
    if (this.#tunnels.size >= this.#limits.maxTunnels) throw this.#deny(transport, 503, 'too_many_tunnels', { started, host, port });

    // Allowed by policy: the tunnel holds a slot from here until it is recorded.
    const t: Tunnel = {
      host, port, transport, started, client, upstream: null, resolved: null, pinned: false,
      proxyTarget: null, phase: 'opening', reason: null, clientClosed: false, upstreamClosed: false, spliced: false,
      relay: null, relayed: null,
    };
    this.#tunnels.add(t);
    this.#bySocket.set(client, t);
    client.once('close', () => {
      t.clientClosed = true;
      t.reason ??= 'client_closed';
      if (t.phase !== 'open') return; // opening: the code awaiting below sees clientClosed
      if (t.upstream && !t.upstreamClosed) closeGracefully(t.upstream);
      this.#maybeDone(t);
    });
    // A failure while opening: recorded as a denial, the slot released at once.
    const fail = (status: number, reason: string, extra: Pick<DenyInfo, 'resolved' | 'detail' | 'addresses' | 'pinned' | 'proxyTarget'> = {}): Denial => {
      t.phase = 'done';
      this.#tunnels.delete(t);
      this.#bySocket.delete(client);
      t.upstream?.destroy();
      if (t.reason === 'proxy_closed') reason = 'proxy_closing';
      const err = this.#deny(transport, status, reason, { started, host, port, ...extra });
      this.#checkDrained();
      return err;
    };

    // Through the upstream proxy unless no_proxy names the host (or, for a pinned name, its address).
    const pin = this.#resolveOpts.pinned?.get(host);
    const proxy = this.#upstream !== null && !this.#upstream.noProxy.bypasses(host, port, pin?.ip) ? this.#upstream : null;
    let r: ResolveResult | null = await resolveAndCheck(host, port, proxy && !pin ? { ...this.#resolveOpts, timeoutMs: Math.min(PROXY_LOOKUP_MS, this.#limits.connectTimeoutMs) } : this.#resolveOpts);
    // A name the launcher cannot resolve is the upstream proxy's to resolve.
    if (proxy && !r.ok && r.reason.startsWith('DNS lookup')) r = null;
    if (t.clientClosed) throw fail(499, 'client_closed_early', r === null ? {} : r.ok ? { resolved: r.address, pinned: r.pinned } : { detail: r.reason });
    if (r !== null && !r.ok) {
      if (r.reason.startsWith('DNS lookup')) {
        const timeout = /timed out|ETIMEOUT/.test(r.reason);
        throw fail(timeout ? 504 : 502, timeout ? 'dns_timeout' : 'dns_failed', { detail: r.reason, addresses: r.addresses });
      }
      throw fail(403, 'address_not_allowed', { detail: r.reason, addresses: r.addresses });
    }
    // Through the proxy, a name is passed on as a name (the proxy connects where it resolves it), a pin as its address.
    const target = r !== null && r.pinned ? { host: r.address, port: r.port } : { host, port };
    t.pinned = r?.pinned ?? false;
    t.resolved = proxy && !t.pinned ? null : (r?.address ?? null);
    if (proxy) t.proxyTarget = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
    const where = { resolved: t.resolved, pinned: t.pinned, ...(t.proxyTarget ? { proxyTarget: t.proxyTarget } : {}) };

    let up: net.Socket;
    try {
      up = proxy ? await this.#openThroughProxy(t, proxy, target.host, target.port) : await this.#openUpstream(t, r!.address, target.port, (r as { family: 4 | 6 }).family);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (t.clientClosed) throw fail(499, 'client_closed_early', where);
      if (err instanceof UpstreamProxyError) throw fail(err.reason === 'upstream_proxy_timeout' ? 504 : 502, err.reason, { ...where, detail: err.message });
      if (err.code === 'ETIMEDOUT') throw fail(504, 'upstream_connect_timeout', { ...where, detail: `port ${target.port}` });
      throw fail(502, 'upstream_connect_failed', { ...where, detail: `${err.code ?? err.message} (port ${target.port})` });
    }
    if (t.clientClosed) {
      up.destroy();
      throw fail(499, 'client_closed_early', where);
    }
    // Open: from here the tunnel is allowed, and recorded once both sockets closed.
    t.phase = 'open';
    up.on('error', () => {
      t.reason ??= 'upstream_error';
      client.destroy();
    });
    up.once('close', () => {
      t.upstreamClosed = true;
      t.reason ??= 'upstream_closed';
      if (!t.clientClosed) closeGracefully(client);
      this.#maybeDone(t);
    });
    return { customConnectServer: this.#splicer as unknown as http.Server };
  }

  /** A tunnel through the upstream proxy to host:port within connectTimeoutMs; given up when the client leaves. */
  async #openThroughProxy(t: Tunnel, proxy: UpstreamProxy, host: string, port: number): Promise<net.Socket> {
    const abort = new AbortController();
    const onClientClose = () => abort.abort();
    t.client.once('close', onClientClose);
    try {
      const sock = await openTunnel(proxy, host, port, { timeoutMs: this.#limits.connectTimeoutMs, signal: abort.signal });
      t.upstream = sock;
      return sock;
    } finally {
      t.client.off('close', onClientClose);
    }
  }

  /** What an event of a tunnel through the upstream proxy says of it (never its credentials). */
  #viaDetails(proxyTarget: string): Pick<EgressDetails, 'upstream_proxy' | 'proxy_target'> {
    if (!this.#upstream) return {};
    const { url, source } = describeUpstreamProxy(this.#upstream);
    return { upstream_proxy: { url, source }, proxy_target: proxyTarget };
  }

  /** Connects to exactly address:port within connectTimeoutMs; rejects (and destroys the socket) on error, timeout or client close. */
  #openUpstream(t: Tunnel, address: string, port: number, family: 4 | 6): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      let sock: net.Socket;
      try {
        sock = this.#connect(address, port, family);
      } catch (e) {
        reject(e);
        return;
      }
      t.upstream = sock;
      const done = (e: NodeJS.ErrnoException | null) => {
        clearTimeout(timer);
        t.client.off('close', onClientClose);
        sock.off('error', onError);
        sock.off('connect', onConnect);
        sock.off('close', onClose);
        if (e === null) {
          resolve(sock);
        } else {
          sock.on('error', () => undefined); // late errors of a socket we gave up on
          sock.destroy();
          reject(e);
        }
      };
      const onError = (e: NodeJS.ErrnoException) => done(e);
      const onConnect = () => done(null);
      const onClose = () => done(Object.assign(new Error('upstream closed during connect'), { code: 'ECONNRESET' }));
      const onClientClose = () => done(Object.assign(new Error('client closed'), { code: 'ECLIENTCLOSED' }));
      const timer = setTimeout(() => done(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })), this.#limits.connectTimeoutMs);
      t.client.once('close', onClientClose);
      sock.once('error', onError);
      sock.once('connect', onConnect);
      sock.once('close', onClose);
    });
  }

  /** proxy-chain wrote 200 and hands over the client socket. */
  #splice(client: net.Socket): void {
    const t = this.#bySocket.get(client);
    const up = t?.upstream;
    if (!t || !up || t.phase !== 'open') {
      client.destroy();
      return;
    }
    if (t.clientClosed || t.upstreamClosed || client.destroyed || up.destroyed) {
      client.destroy();
      up.destroy();
      return;
    }
    t.spliced = true;
    client.on('error', () => {
      t.reason ??= 'client_error';
      up.destroy();
    });
    client.setNoDelay(true);
    up.setNoDelay(true);
    try {
      t.relay = spliceRelay(client, up, { idleMs: this.#limits.idleTimeoutMs, onDone: (r) => this.#relayDone(t, r) });
    } catch (e) {
      // No Node-stream fallback: both ends are kernel sockets (the listeners'
      // and net.connect's), so a socket without an fd is a bug (or a test's
      // connect hook returning something else), not a case to serve slowly.
      t.reason ??= 'relay_failed';
      t.detail = (e as Error).message;
      client.destroy();
      up.destroy();
    }
  }

  /** The relay ended: its counts and cause are the tunnel's (it destroys both sockets right after, which records the tunnel). */
  #relayDone(t: Tunnel, r: RelayResult): void {
    t.relay = null;
    t.relayed = { up: r.bytesAtoB, down: r.bytesBtoA };
    t.reason ??= tunnelReason(r);
    if (r.reason === 'error') t.detail = `relay ${r.side === 'a' ? 'client' : r.side === 'b' ? 'upstream' : ''} ${r.message ?? r.step ?? ''}`.replace(/\s+/g, ' ').trim();
  }

  #maybeDone(t: Tunnel): void {
    if (t.phase !== 'open' || !t.clientClosed || !t.upstreamClosed) return;
    t.phase = 'done';
    this.#tunnels.delete(t);
    const up = t.upstream;
    const d: EgressDetails = {
      host: t.host,
      port: t.port,
      resolved_address: t.resolved,
      // Relayed: what the relay delivered each way (bytes Node had read before the hand-off included).
      bytes_up: t.relayed?.up ?? up?.bytesWritten ?? 0,
      bytes_down: t.relayed?.down ?? up?.bytesRead ?? 0,
      duration_ms: Date.now() - t.started,
      reason: t.reason ?? 'closed',
      transport: t.transport,
      status: 200,
      pinned: t.pinned,
    };
    if (t.proxyTarget !== null) Object.assign(d, this.#viaDetails(t.proxyTarget));
    if (!t.spliced) d.detail = 'closed before the tunnel was spliced';
    else if (t.detail !== undefined) d.detail = truncate(t.detail);
    this.#emit('allow', d);
    this.#checkDrained();
  }

  #checkDrained(): void {
    if (this.#tunnels.size === 0) for (const f of this.#drained.splice(0)) f();
  }

  /**
   * True the first time for a socket; later requests or parser errors on a
   * socket already answered (pipelined requests in one packet) are dropped
   * unrecorded, so one connection cannot turn into thousands of events.
   */
  #firstAnswer(socket: net.Socket): boolean {
    if (this.#answered.has(socket)) return false;
    this.#answered.add(socket);
    return true;
  }

  #plainRequest(request: http.IncomingMessage, transport: Transport, front: Front): void {
    if (!this.#firstAnswer(request.socket)) return;
    const started = Date.now();
    const url = request.url ?? '';
    const method = request.method ?? '';
    let reason = 'not_a_proxy_request';
    let status = 400;
    let host: string | null = null;
    let port: number | null = null;
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
    if (scheme) {
      const http = scheme[1]?.toLowerCase() === 'http';
      status = 403;
      reason = http ? 'plain_http_refused' : 'absolute_form_refused';
      try {
        const u = new URL(url);
        host = u.hostname || null;
        port = u.port ? Number(u.port) : http ? 80 : null;
      } catch {
        /* host stays null; the target is kept */
      }
    }
    const denial = this.#deny(transport, status, reason, { started, host: host === null ? null : truncate(host), port, target: url, method });
    front.answer(request.socket, status, reason, '', denial.refusal, wantsJson(request));
  }

  #clientError(err: NodeJS.ErrnoException, socket: net.Socket, transport: Transport, front: Front): void {
    // A client that connected and left without a byte asked for nothing.
    const silent = (err.code === 'ECONNRESET' || err.code === 'EPIPE') && socket.bytesRead === 0;
    if (silent || !this.#firstAnswer(socket)) {
      socket.destroy();
      return;
    }
    let status = 400;
    let reason = 'malformed_request';
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      reason = 'header_too_large';
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      reason = 'header_timeout';
    }
    this.#deny(transport, status, reason, { started: Date.now(), detail: typeof err.code === 'string' ? err.code : 'parse error' });
    front.answer(socket, status, reason);
  }

  #failed(request: http.IncomingMessage, err: Error, transport: Transport, front: Front): void {
    const socket = request.socket;
    if (err instanceof Denial) {
      this.#answered.add(socket);
      front.answer(socket, err.statusCode, err.reason, err.extra, err.refusal, wantsJson(request));
      return;
    }
    const t = this.#bySocket.get(socket);
    if (t && t.phase === 'open') {
      // Allowed, but the hand-over failed (client gone while 200 was written):
      // the tunnel records itself when its sockets close.
      t.reason ??= 'client_error';
      socket.destroy();
      return;
    }
    if (!this.#firstAnswer(socket)) {
      socket.destroy();
      return;
    }
    const status = err instanceof RequestError ? err.statusCode : 500;
    const reason = err instanceof RequestError ? 'bad_request' : 'internal_error';
    this.#deny(transport, status, reason, { started: Date.now(), detail: err.message, target: request.url ?? '', method: request.method ?? '' });
    front.answer(socket, status, reason);
  }
}

interface DenyInfo {
  started: number;
  host?: string | null;
  port?: number | null;
  resolved?: string | null;
  detail?: string;
  target?: string;
  method?: string;
  addresses?: string[];
  pinned?: boolean;
  proxyTarget?: string;
}

/**
 * The tunnel's reason from the relay's result: the side that closed first
 * when one did (an error after it, like a reset from a client that closed, is
 * its consequence), else what ended it.
 */
function tunnelReason(r: RelayResult): string {
  if (r.closedFirst === 'a') return 'client_closed';
  if (r.closedFirst === 'b') return 'upstream_closed';
  switch (r.reason) {
    case 'idle_timeout':
      return 'idle_timeout';
    case 'stopped':
      return 'proxy_closed';
    case 'error':
      return r.side === 'a' ? 'client_error' : r.side === 'b' ? 'upstream_error' : 'relay_error';
    default:
      return 'closed';
  }
}

/** Ends sock's writable side, then destroys it once its queued data is flushed (or at once if it cannot write). */
function closeGracefully(sock: net.Socket): void {
  if (sock.destroyed) return;
  if (sock.writableFinished) {
    sock.destroy();
    return;
  }
  sock.once('finish', () => sock.destroy());
  if (!sock.writableEnded) sock.end();
}
