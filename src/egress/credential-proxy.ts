// The credential reverse proxy: the box's second network exit. A request for
// /<route>/<rest> goes to the route's HTTPS upstream with the host-side key
// injected as one header; the agent only ever holds a placeholder. Whatever
// auth the agent sent is stripped, the upstream's certificate is verified,
// both directions stream, and the key is redacted from everything that comes
// back (headers, status line, body, error messages) in every form
// src/egress/key-redaction.ts knows. Every request is one 'credential_proxy'
// event through the record callback, never with the key.
//
// http-proxy builds and pipes the upstream request (with a keep-alive agent
// per route); the response is handled here (selfHandleResponse) so that it
// can be redacted chunk by chunk without buffering. Trailers are not passed
// on, nor are 1xx responses.
//
// With an upstream proxy (the host's own, upstream-proxy.ts), a route whose
// upstream its no_proxy list does not name gets an agent that opens each
// connection as a CONNECT tunnel through it; TLS and the certificate check
// run inside the tunnel, end to end with the upstream, as without it.
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Transform, pipeline } from 'node:stream';
import httpProxy from 'http-proxy';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { AuditEventInput, Decision } from '../core/audit-event.js';
import { LaunchError } from '../core/errors.js';
import { KeyMatcher, KeyRedactor, MAX_KEY_LENGTH, MIN_KEY_LENGTH } from './key-redaction.js';
import { defaultTrust, extraCaCerts, parsePemCerts, TLS_CODES } from './trust-roots.js';
import { describeUpstreamProxy, openTunnel, UpstreamProxyError, type UpstreamProxy } from './upstream-proxy.js';

/** One route as configured (profile or [sandbox.agent.credentials.<name>]), its key already resolved. */
export interface CredentialRoute {
  /** [a-z0-9_-]+: the path prefix /<name>/ (and <NAME>_BASE_URL inside the box). */
  name: string;
  /** https://host[:port][/base] */
  upstream: string;
  /** The header that carries the key upstream, e.g. x-api-key or Authorization. */
  header: string;
  /** The header value, with {} (exactly once) standing for the key, e.g. "Bearer {}". */
  format: string;
  /** The resolved secret. Never logged, never sent back to the client. */
  key: string;
  /** A PEM file of extra CAs trusted for this route's upstream. */
  caFile?: string;
}

/** A route after validation: its upstream split into what the request needs. */
export interface ValidatedRoute {
  name: string;
  /** Host to connect to (IPv6 without brackets). */
  hostname: string;
  port: number;
  /** The Host header sent upstream (host, plus :port when not 443). */
  hostHeader: string;
  /** The upstream's path prefix without a trailing slash ('' for none). */
  basePath: string;
  /** Lower-case header name. */
  header: string;
  /** The header value with the key in it. */
  value: string;
  key: string;
  /** PEM certificates from caFile (empty without one). */
  caCerts: string[];
}

export interface CredentialProxyOptions {
  routes: CredentialRoute[];
  /** Called once per request (and per refused CONNECT or upgrade); a throw or rejection is swallowed. */
  record(e: AuditEventInput): void | Promise<void>;
  /** PEM certificates trusted for every upstream, on top of the system's and Node's roots. */
  extraCaCerts?: string[];
  /**
   * Operator pinning ([sandbox.network.resolve]): where to connect for an
   * upstream host name. The certificate is still checked against the name.
   */
  resolve?(hostname: string, port: number): { host: string; port: number } | undefined;
  /** Upstream socket idle timeout (connect included); default 300 s. */
  idleTimeoutMs?: number;
  /** Concurrent client connections per listener; default 256. */
  maxConnections?: number;
  /** The host's own proxy: routes whose upstream its no_proxy list does not name are reached through it. */
  upstreamProxy?: UpstreamProxy | null;
}

/** Connecting through the upstream proxy, its answer included, within this. */
const TUNNEL_TIMEOUT_MS = 30_000;

/** An agent whose connections are CONNECT tunnels through the upstream proxy, with TLS to the upstream inside. */
class TunnelAgent extends https.Agent {
  constructor(opts: https.AgentOptions, private readonly proxy: UpstreamProxy, private readonly timeoutMs: number) {
    super(opts);
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): undefined {
    const done = callback ?? (() => undefined);
    openTunnel(this.proxy, String(options.host), Number(options.port), { timeoutMs: this.timeoutMs }).then(
      (sock: net.Socket) => {
        if (sock.readableLength > 0) {
          sock.destroy();
          done(new UpstreamProxyError('upstream_proxy_bad_answer', `the upstream proxy ${this.proxy.display} sent bytes of its own into the tunnel before TLS began`), undefined as unknown as Duplex);
          return;
        }
        done(null, tls.connect({ ...(options as tls.ConnectionOptions), socket: sock }));
      },
      (e: Error) => done(e, undefined as unknown as Duplex),
    );
    return undefined;
  }
}

const ROUTE_NAME = /^[a-z0-9_-]{1,64}$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Request headers the agent may not set upstream: its own auth, and hop-by-hop headers. */
const STRIP_REQUEST = [
  'authorization',
  'x-api-key',
  'cookie',
  'proxy-authorization',
  'proxy-connection',
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'host',
  'accept-encoding',
];
/** Hop-by-hop response headers (Node frames the response itself). */
const STRIP_RESPONSE = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'transfer-encoding', 'te', 'trailer', 'upgrade'];
/** Headers a route may not inject into. */
const FORBIDDEN_ROUTE_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'accept-encoding',
  'content-encoding',
]);

function routeError(name: unknown, field: string, why: string): LaunchError {
  const label = typeof name === 'string' && name !== '' ? JSON.stringify(name) : '(unnamed)';
  return new LaunchError(`credential route ${label}: ${field} ${why}`);
}

/** Checks one route; every error names the route and the field, and never contains the key. */
export function validateRoute(r: CredentialRoute): ValidatedRoute {
  if (r === null || typeof r !== 'object') throw new LaunchError('credential route: expected a table with upstream, header, format and a key');
  const name = r.name;
  if (typeof name !== 'string' || !ROUTE_NAME.test(name)) {
    throw routeError(name, 'name', `${JSON.stringify(name)} is not valid: use 1-64 of a-z, 0-9, "_" and "-" (it becomes the path /<name>/ and <NAME>_BASE_URL)`);
  }
  const up = r.upstream;
  const upHint = '; expected https://host[:port][/base], e.g. https://api.openai.com/v1';
  if (typeof up !== 'string' || up.trim() === '') throw routeError(name, 'upstream', `is missing${upHint}`);
  let u: URL;
  try {
    u = new URL(up);
  } catch {
    throw routeError(name, 'upstream', `${JSON.stringify(up)} is not a URL${upHint}`);
  }
  if (u.protocol !== 'https:') throw routeError(name, 'upstream', `${JSON.stringify(up)} must use https:// (the key never travels in clear)${upHint}`);
  if (u.username !== '' || u.password !== '') throw routeError(name, 'upstream', `${JSON.stringify(up)} must not carry user:password (the key comes from key_source)${upHint}`);
  if (u.search !== '' || u.hash !== '' || /[?#]/.test(up)) throw routeError(name, 'upstream', `${JSON.stringify(up)} must not have a query or fragment${upHint}`);
  if (u.hostname === '') throw routeError(name, 'upstream', `${JSON.stringify(up)} has no host${upHint}`);
  const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port === '' ? 443 : Number(u.port);
  const basePath = u.pathname.replace(/\/+$/, '');

  const header = r.header;
  if (typeof header !== 'string' || !TOKEN.test(header)) {
    throw routeError(name, 'header', `${JSON.stringify(header)} is not a valid HTTP header name (e.g. x-api-key or Authorization)`);
  }
  const lower = header.toLowerCase();
  if (FORBIDDEN_ROUTE_HEADERS.has(lower) || lower.startsWith('proxy-')) {
    throw routeError(name, 'header', `${JSON.stringify(header)} cannot carry a key (it is a connection or framing header)`);
  }
  const format = r.format;
  if (typeof format !== 'string' || format.split('{}').length !== 2) {
    throw routeError(name, 'format', `${JSON.stringify(format)} must contain {} exactly once (where the key goes), e.g. "{}" or "Bearer {}"`);
  }
  if (/[^\t\x20-\x7e]/.test(format)) throw routeError(name, 'format', `${JSON.stringify(format)} may only hold printable ASCII`);

  const key = r.key;
  if (typeof key !== 'string' || key === '') throw routeError(name, 'key', 'is empty: its key_source did not resolve to a value');
  if (key.length < MIN_KEY_LENGTH) throw routeError(name, 'key', `is shorter than ${MIN_KEY_LENGTH} characters, too short to be redacted safely`);
  if (key.length > MAX_KEY_LENGTH) throw routeError(name, 'key', `is longer than ${MAX_KEY_LENGTH} characters; expected an API key or bearer token`);
  const bad = key.search(/[^\x21-\x7e]/);
  if (bad >= 0) throw routeError(name, 'key', `has a whitespace, control or non-ASCII character at position ${bad} (the value is not shown)`);

  let caCerts: string[] = [];
  if (r.caFile !== undefined) {
    if (typeof r.caFile !== 'string' || r.caFile === '') throw routeError(name, 'ca_file', 'must be a path to a PEM file');
    let text: string;
    try {
      text = readFileSync(r.caFile, 'utf8');
    } catch (e) {
      throw routeError(name, 'ca_file', `${JSON.stringify(r.caFile)} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    try {
      caCerts = parsePemCerts(text);
    } catch (e) {
      throw routeError(name, 'ca_file', `${JSON.stringify(r.caFile)} holds a malformed certificate (${(e as Error).message})`);
    }
    if (caCerts.length === 0) throw routeError(name, 'ca_file', `${JSON.stringify(r.caFile)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return {
    name,
    hostname,
    port,
    hostHeader: u.host,
    basePath,
    header: lower,
    value: format.replace('{}', () => key), // a function: "$&" in a key stays literal
    key,
    caCerts,
  };
}

interface Route extends ValidatedRoute {
  /** The key's forms, compiled once. */
  matcher: KeyMatcher;
  agent: https.Agent;
  target: { protocol: 'https:'; host: string; hostname: string; port: number };
  /** The upstream proxy the route goes through, as events name it. */
  via: { url: string; source: string } | null;
}

interface ReqState {
  started: number;
  route: Route | null;
  method: string;
  path: string;
  status: number | null;
  bytesUp: number;
  bytesDown: () => number;
  /** Key occurrences replaced in the response (head and body). */
  redactions: () => number;
  decision: Decision;
  reason: string | null;
  proxyReq: http.ClientRequest | null;
  proxyRes: http.IncomingMessage | null;
  clientClosed: boolean;
  upstreamFailed: boolean;
  timedOut: boolean;
  errorHandled: boolean;
  recorded: boolean;
}

function dotSegment(seg: string): boolean {
  return /^(\.|%2e){1,2}$/i.test(seg);
}

export class CredentialProxy {
  private readonly routes = new Map<string, Route>();
  /** Key -> its compiled forms (routes sharing a key share them). */
  private readonly matchers = new Map<string, KeyMatcher>();
  private readonly proxy: httpProxy;
  private readonly servers: http.Server[] = [];
  private readonly states = new WeakMap<http.IncomingMessage, ReqState>();
  private readonly idleTimeoutMs: number;
  private readonly maxConnections: number;
  /** Events whose record callback threw or rejected. */
  recordFailures = 0;

  constructor(private readonly opts: CredentialProxyOptions) {
    if (!opts || !Array.isArray(opts.routes)) throw new LaunchError('credential proxy: routes must be a list');
    if (typeof opts.record !== 'function') throw new LaunchError('credential proxy: record must be a function');
    const extra = extraCaCerts(opts.extraCaCerts ?? []);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 300_000;
    this.maxConnections = opts.maxConnections ?? 256;
    const base = opts.routes.length ? defaultTrust() : [];
    for (const r of opts.routes) {
      const v = validateRoute(r);
      if (this.routes.has(v.name)) throw routeError(v.name, 'name', 'is defined twice');
      const pin = opts.resolve?.(v.hostname, v.port);
      if (pin !== undefined && (typeof pin?.host !== 'string' || pin.host === '' || !Number.isInteger(pin.port) || pin.port < 1 || pin.port > 65535)) {
        throw routeError(v.name, 'upstream', `${v.hostname}:${v.port} is pinned to ${JSON.stringify(pin)}; expected { host, port } with a port in 1-65535`);
      }
      const agentOpts: https.AgentOptions = {
        keepAlive: true,
        maxSockets: 64,
        maxFreeSockets: 16,
        timeout: 30_000, // free keep-alive sockets are dropped before the upstream does
        rejectUnauthorized: true,
        secureContext: tls.createSecureContext({ ca: [...base, ...extra, ...v.caCerts] }),
      };
      if (pin && isIP(v.hostname) === 0) agentOpts.servername = v.hostname; // SNI and the certificate check stay on the name
      const connectHost = pin ? pin.host : v.hostname;
      let matcher = this.matchers.get(v.key);
      if (!matcher) this.matchers.set(v.key, (matcher = new KeyMatcher(v.key)));
      // no_proxy is matched with the upstream's name and port, and the pinned address when there is one.
      const proxy = opts.upstreamProxy && !opts.upstreamProxy.noProxy.bypasses(v.hostname, v.port, pin?.host) ? opts.upstreamProxy : null;
      const { url, source } = proxy ? describeUpstreamProxy(proxy) : { url: '', source: '' };
      this.routes.set(v.name, {
        ...v,
        matcher,
        agent: proxy ? new TunnelAgent(agentOpts, proxy, Math.min(TUNNEL_TIMEOUT_MS, this.idleTimeoutMs)) : new https.Agent(agentOpts),
        target: { protocol: 'https:', host: connectHost, hostname: connectHost, port: pin ? pin.port : v.port },
        via: proxy ? { url, source } : null,
      });
    }
    this.proxy = httpProxy.createProxyServer({ xfwd: false, changeOrigin: false, selfHandleResponse: true, secure: true });
    this.proxy.on('error', () => {
      /* every web() call has its own callback; this keeps a stray event from throwing */
    });
    this.proxy.on('proxyReq', (proxyReq, req) => this.onProxyReq(proxyReq, req));
    this.proxy.on('proxyRes', (proxyRes, req, res) => this.onProxyRes(proxyRes, req, res as http.ServerResponse));
  }

  /** Route names, in configuration order. */
  routeNames(): string[] {
    return [...this.routes.keys()];
  }

  /** Serves on an already listening socket (the box's passed 127.0.0.1 listener). */
  listenFd(fd: number): Promise<void> {
    return this.listen({ fd }).then(() => undefined);
  }

  /** Serves on host:port; returns the port (useful with port 0). */
  async listenTcp(host: string, port: number): Promise<number> {
    const s = await this.listen({ host, port });
    const a = s.address();
    return typeof a === 'object' && a ? a.port : port;
  }

  listenUnix(path: string): Promise<void> {
    return this.listen({ path }).then(() => undefined);
  }

  /** Stops every listener, cuts open connections (streams included) and drops the upstream sockets. */
  async close(): Promise<void> {
    const servers = this.servers.splice(0);
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    for (const r of this.routes.values()) r.agent.destroy();
  }

  private listen(what: { fd: number } | { host: string; port: number } | { path: string }): Promise<http.Server> {
    const s = http.createServer({ noDelay: true }, (req, res) => this.onRequest(req, res));
    s.maxConnections = this.maxConnections;
    s.on('connect', (req: http.IncomingMessage, socket) => this.refuseRaw(req, socket, 405, 'connect_not_supported', 'CONNECT goes to the egress proxy (HTTPS_PROXY), not the credential proxy'));
    s.on('upgrade', (req: http.IncomingMessage, socket) => this.refuseRaw(req, socket, 501, 'upgrade_not_supported', 'protocol upgrades (WebSocket) are not proxied; use HTTP streaming'));
    return new Promise((resolve, reject) => {
      const onErr = (e: Error) => reject(e);
      s.once('error', onErr);
      s.listen(what, () => {
        s.off('error', onErr);
        s.on('error', () => {
          /* accept errors (EMFILE...) must not kill the host process */
        });
        this.servers.push(s);
        resolve(s);
      });
    });
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const st: ReqState = {
      started: performance.now(),
      route: null,
      method: req.method ?? '',
      path: req.url ?? '',
      status: null,
      bytesUp: 0,
      bytesDown: () => 0,
      redactions: () => 0,
      decision: 'allow',
      reason: null,
      proxyReq: null,
      proxyRes: null,
      clientClosed: false,
      upstreamFailed: false,
      timedOut: false,
      errorHandled: false,
      recorded: false,
    };
    res.on('close', () => {
      if (!res.writableFinished && !st.upstreamFailed && st.reason === null) {
        st.clientClosed = true;
        st.reason = 'client_aborted';
        st.proxyRes?.destroy();
        st.proxyReq?.destroy();
      }
      setImmediate(() => this.record(st, res)); // let the upstream side's callbacks settle first
    });
    try {
      this.route(req, res, st);
    } catch (e) {
      st.decision = 'error';
      st.reason = 'internal_error';
      this.sendJson(res, st, 500, 'internal_error', 'credential proxy internal error');
    }
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse, st: ReqState): void {
    const target = splitTarget(req.url ?? '');
    if (!target) {
      st.decision = 'deny';
      st.reason = 'bad_request_target';
      return this.sendJson(res, st, 400, 'bad_request_target', 'the request target must be /<route>/<path>');
    }
    st.path = target.path + target.query;
    const m = /^\/([^/]*)(\/.*)?$/.exec(target.path);
    const route = m ? this.routes.get(m[1] ?? '') : undefined;
    if (!m || !route) {
      st.decision = 'deny';
      st.reason = 'unknown_route';
      const names = this.routeNames();
      return this.sendJson(res, st, 404, 'unknown_route', `no credential route ${JSON.stringify(m?.[1] ?? '')}; routes: ${names.length ? names.map((n) => `/${n}/`).join(', ') : '(none)'}`);
    }
    st.route = route;
    const rest = m[2] ?? '/';
    if (!target.absolute && rest.split('/').some(dotSegment)) {
      st.decision = 'deny';
      st.reason = 'bad_path';
      return this.sendJson(res, st, 400, 'bad_path', 'dot segments ("." and "..") are not allowed in the path');
    }

    const h = req.headers;
    const listed = typeof h.connection === 'string' ? h.connection.split(',').map((s) => s.trim().toLowerCase()) : [];
    for (const name of [...STRIP_REQUEST, ...listed, route.header]) delete h[name];
    h.host = route.hostHeader;
    h['accept-encoding'] = 'identity'; // so the body can be searched for the key
    h[route.header] = route.value;
    req.url = route.basePath + rest + target.query;

    this.states.set(req, st);
    this.proxy.web(req, res, { target: route.target, agent: route.agent, selfHandleResponse: true }, (err) => this.onProxyError(err, req, res, st));
    req.on('data', (c: Buffer) => {
      st.bytesUp += c.length;
    });
  }

  private onProxyReq(proxyReq: http.ClientRequest, req: http.IncomingMessage): void {
    const st = this.states.get(req);
    if (!st) return;
    st.proxyReq = proxyReq;
    if (st.clientClosed) {
      proxyReq.destroy();
      return;
    }
    proxyReq.setTimeout(this.idleTimeoutMs, () => {
      st.timedOut = true;
      proxyReq.destroy(Object.assign(new Error('upstream idle timeout'), { code: 'ETIMEDOUT' }));
    });
  }

  private onProxyError(err: Error, req: http.IncomingMessage, res: http.ServerResponse, st: ReqState): void {
    if (st.errorHandled) return;
    st.errorHandled = true;
    if (st.clientClosed || req.socket?.destroyed || res.destroyed) {
      if (!st.reason) st.reason = 'client_aborted';
      st.clientClosed = true;
      st.proxyReq?.destroy();
      return;
    }
    const route = st.route as Route;
    const code = String((err as NodeJS.ErrnoException).code ?? '');
    const where = `${route.hostname}:${route.port}`;
    let status = 502;
    let kind: string;
    let msg: string;
    if (err instanceof UpstreamProxyError) {
      // The box is not told where the host's proxy is; the user who started it gets the fix (DenialSummary).
      status = err.reason === 'upstream_proxy_timeout' ? 504 : 502;
      kind = err.reason;
      msg = `upstream ${where} not reached: the host's upstream proxy failed (${err.reason}${err.status ? ` ${err.status}` : ''}); the user who started this box can fix it`;
    } else if (st.timedOut || code === 'ETIMEDOUT') {
      status = 504;
      kind = 'upstream_timeout';
      msg = `upstream ${where} did not answer within ${Math.round(this.idleTimeoutMs / 1000)} s`;
    } else if (TLS_CODES.test(code) || /certificate|SSL|TLS/i.test(err.message)) {
      kind = 'upstream_tls_failed';
      msg = `upstream ${where} failed TLS verification (${code || 'TLS error'}: ${err.message})`;
    } else {
      kind = 'upstream_unreachable';
      msg = `upstream ${where} unreachable (${code || 'error'}: ${err.message})`;
    }
    st.decision = 'error';
    st.reason = kind;
    st.upstreamFailed = true;
    if (res.headersSent) res.destroy();
    else this.sendJson(res, st, status, kind, msg);
  }

  private onProxyRes(proxyRes: http.IncomingMessage, req: http.IncomingMessage, res: http.ServerResponse): void {
    const st = this.states.get(req);
    const route = st?.route;
    if (!st || !route) {
      proxyRes.destroy();
      return;
    }
    st.proxyRes = proxyRes;
    const upstreamFailed = () => {
      if (st.clientClosed || st.upstreamFailed) return;
      st.upstreamFailed = true;
      st.decision = 'error';
      st.reason = st.timedOut ? 'upstream_timeout' : 'upstream_aborted';
    };
    proxyRes.on('aborted', upstreamFailed);
    proxyRes.on('error', upstreamFailed);
    if (st.clientClosed || res.destroyed) {
      proxyRes.destroy();
      return;
    }
    const { matcher } = route;
    const status = proxyRes.statusCode ?? 502;
    const refuse = (reason: string, message: string) => {
      proxyRes.destroy();
      st.decision = 'error';
      st.reason = reason;
      st.upstreamFailed = true;
      this.sendJson(res, st, 502, reason, message);
    };

    // Node undoes chunked framing only: any other transfer coding would reach
    // the agent still encoded, where the key cannot be found.
    const te = proxyRes.headers['transfer-encoding'];
    if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
      return refuse('unsupported_transfer_encoding', `upstream answered with transfer-encoding ${JSON.stringify(te)}; only chunked is accepted, because another coding would reach the agent unchecked for the key`);
    }
    // Content codings are undone so the key can be found (the upstream was asked for identity).
    const bodyless = req.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
    const decoders: Transform[] = [];
    const codings = (proxyRes.headers['content-encoding'] ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== '' && s !== 'identity');
    for (const c of [...codings].reverse()) {
      if (c !== 'gzip' && c !== 'x-gzip' && c !== 'deflate' && c !== 'br') {
        return refuse('unsupported_content_encoding', `upstream answered with content-encoding ${JSON.stringify(c)}, which cannot be checked for the key; only gzip, deflate and br are decoded`);
      }
      if (bodyless) continue; // nothing to decode (an empty input is a decoder error)
      decoders.push(c === 'br' ? zlib.createBrotliDecompress() : c === 'deflate' ? zlib.createInflate() : zlib.createGunzip());
    }
    const listed = typeof proxyRes.headers.connection === 'string' ? proxyRes.headers.connection.split(',').map((s) => s.trim().toLowerCase()) : [];
    const drop = new Set([...STRIP_RESPONSE, ...listed]);
    if (!bodyless) drop.add('content-length'); // redaction may change the length: chunked instead
    if (codings.length) drop.add('content-encoding');

    let headRedactions = 0;
    const redact = (text: string): string => {
      const r = matcher.redact(text);
      headRedactions += r.count;
      return r.text;
    };
    const out = new Map<string, { name: string; values: string[] }>();
    const raw = proxyRes.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i] as string;
      const lower = name.toLowerCase();
      if (drop.has(lower)) continue;
      if (redact(name) !== name) continue; // a header named after the key: dropped
      const e = out.get(lower) ?? { name, values: [] };
      e.values.push(redact(raw[i + 1] as string));
      out.set(lower, e);
    }
    res.statusCode = status;
    res.statusMessage = redact(proxyRes.statusMessage ?? '');
    for (const { name, values } of out.values()) {
      try {
        res.setHeader(name, values.length === 1 ? (values[0] as string) : values);
      } catch {
        /* a value Node will not send; dropped */
      }
    }
    st.status = status;
    const redactor = new KeyRedactor(matcher);
    st.bytesDown = () => redactor.bytesOut;
    st.redactions = () => headRedactions + redactor.redactions;
    res.flushHeaders(); // an SSE client sees the status before the first event
    const streams: NodeJS.ReadWriteStream[] = [...decoders, redactor];
    pipeline(proxyRes, ...(streams as [Transform]), res, (err) => {
      if (!err) return;
      if (!st.clientClosed && !st.upstreamFailed) {
        upstreamFailed();
        if (codings.length && st.reason === 'upstream_aborted') st.reason = 'upstream_bad_encoding';
      }
      res.destroy();
      proxyRes.destroy();
    });
  }

  private sendJson(res: http.ServerResponse, st: ReqState, status: number, error: string, message: string): void {
    const body = JSON.stringify({ error, message: st.route ? st.route.matcher.redact(message).text : message });
    st.status = status;
    st.bytesDown = () => Buffer.byteLength(body);
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  }

  private refuseRaw(req: http.IncomingMessage, socket: import('node:stream').Duplex, status: number, error: string, message: string): void {
    const started = performance.now();
    const body = JSON.stringify({ error, message });
    const reason = status === 405 ? 'Method Not Allowed' : 'Not Implemented';
    socket.on('error', () => {});
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    this.emit({
      event_type: 'credential_proxy',
      decision: 'deny',
      details: {
        route: null,
        method: req.method ?? '',
        path: truncate(req.url ?? ''),
        status,
        bytes_up: 0,
        bytes_down: Buffer.byteLength(body),
        duration_ms: round(performance.now() - started),
        redactions: 0,
        reason: error,
      },
    });
  }

  private record(st: ReqState, res: http.ServerResponse): void {
    if (st.recorded) return;
    st.recorded = true;
    if (st.reason === null && !res.writableFinished) st.reason = 'client_aborted';
    // The path comes from the agent, which never had the key; redacted anyway.
    let path = truncate(st.path);
    for (const m of this.matchers.values()) path = m.redact(path).text;
    this.emit({
      event_type: 'credential_proxy',
      decision: st.decision,
      details: {
        route: st.route?.name ?? null,
        method: st.method,
        path,
        status: st.status,
        bytes_up: st.bytesUp,
        bytes_down: st.bytesDown(),
        duration_ms: round(performance.now() - st.started),
        redactions: st.redactions(),
        reason: st.reason,
        ...(st.route?.via ? { upstream_proxy: st.route.via } : {}),
      },
    });
  }

  private emit(e: AuditEventInput): void {
    try {
      const p = this.opts.record(e);
      if (p && typeof (p as Promise<void>).then === 'function') {
        (p as Promise<void>).catch(() => {
          this.recordFailures++;
        });
      }
    } catch {
      this.recordFailures++;
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function truncate(s: string): string {
  return s.length > 2048 ? `${s.slice(0, 2048)}...` : s;
}

/** Origin-form as is; absolute-form (a client sending through HTTP_PROXY) by its path. */
function splitTarget(url: string): { path: string; query: string; absolute: boolean } | null {
  if (url.startsWith('/')) {
    const q = url.indexOf('?');
    return q < 0 ? { path: url, query: '', absolute: false } : { path: url.slice(0, q), query: url.slice(q), absolute: false };
  }
  if (!/^https?:\/\//i.test(url)) return null;
  try {
    const u = new URL(url);
    return { path: u.pathname, query: u.search, absolute: true };
  } catch {
    return null;
  }
}
