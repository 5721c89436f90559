// Where the SDK's requests go: the gate's Unix socket (`unix:///path`, as a
// box's LATCHGATE_URL names it) or a TCP base URL (`http://host:port`, a gate
// served with --expose-http), over kept-alive connections, with an
// AbortSignal. The DPoP `htu` of a request is the gate's public base URL plus
// its path, whatever the transport.
import http from 'node:http';
import https from 'node:https';
import { LatchGateConnectionError } from './errors.js';

/** Where the gate is, resolved from the options and the environment. */
export interface GateEndpoint {
  /** The Unix socket, or undefined for a TCP base URL. */
  socket?: string;
  /** The TCP base URL (no trailing slash), or undefined for a socket. */
  baseUrl?: string;
  /** What DPoP proofs name as htu: the gate's [gate] public_base_url (default http://latchgate.local). */
  publicBaseUrl: string;
  /** Checks the socket's directory before each request (throws to refuse it): a directory only checked once could be another user's by then. */
  verify?: () => void;
}

export interface Answer {
  status: number;
  body: unknown;
}

export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal }) => Promise<{ status: number; text(): Promise<string> }>;

/** The default gate: LATCHGATE_URL, else LATCHGATE_SOCKET, else the socket `latchgate up` serves for this user. */
export function resolveEndpoint(o: { socket?: string | undefined; baseUrl?: string | undefined; publicBaseUrl?: string | undefined }, env: NodeJS.ProcessEnv, defaultSocket: () => { socket: string; verify: () => void }): GateEndpoint {
  const publicBaseUrl = trimSlash(o.publicBaseUrl ?? env.LATCHGATE_PUBLIC_URL ?? 'http://latchgate.local');
  checkHttpUrl(publicBaseUrl, 'publicBaseUrl (LATCHGATE_PUBLIC_URL)');
  if (o.socket !== undefined) return { socket: checkSocket(o.socket, 'socket'), publicBaseUrl };
  const url = o.baseUrl ?? env.LATCHGATE_URL;
  if (url !== undefined && url !== '') {
    const field = o.baseUrl !== undefined ? 'baseUrl' : 'LATCHGATE_URL';
    if (url.startsWith('unix://')) return { socket: checkSocket(decodeURIComponent(url.slice('unix://'.length)), field), publicBaseUrl };
    checkHttpUrl(url, field);
    return { baseUrl: trimSlash(url), publicBaseUrl };
  }
  if (env.LATCHGATE_SOCKET) return { socket: checkSocket(env.LATCHGATE_SOCKET, 'LATCHGATE_SOCKET'), publicBaseUrl };
  const d = defaultSocket();
  return { socket: d.socket, publicBaseUrl, verify: d.verify };
}

const trimSlash = (u: string) => u.replace(/\/+$/, '');

function checkSocket(path: string, field: string): string {
  if (!path.startsWith('/')) throw new TypeError(`${field}: expected an absolute socket path (unix:///run/latchgate/gate.sock), got ${JSON.stringify(path)}`);
  return path;
}

function checkHttpUrl(url: string, field: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`${field}: expected unix:///path or an http(s):// URL, got ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`${field}: expected unix:///path or an http(s):// URL, got ${JSON.stringify(url)}`);
  if (u.search || u.hash || u.username || u.password) throw new TypeError(`${field}: a base URL has no query, fragment or user info, got ${JSON.stringify(url)}`);
}

/** Marks a failure of a request sent on a kept-alive connection before any answer came. */
const REUSED = Symbol('reused connection');

/** The request went on a kept-alive connection the other end had closed: it failed writing or before any answer. */
const staleConnection = (e: unknown): boolean =>
  (e as { [REUSED]?: boolean })?.[REUSED] === true && ['ECONNRESET', 'EPIPE'].includes((e as NodeJS.ErrnoException).code ?? '');

/** One gate request; resolves with the status and the parsed JSON body, rejects with LatchGateConnectionError. */
export class Transport {
  private readonly agent: http.Agent;

  constructor(
    readonly endpoint: GateEndpoint,
    private readonly fetchImpl?: FetchLike,
  ) {
    const secure = endpoint.baseUrl?.startsWith('https:') === true;
    this.agent = secure ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  /** The URL a proof for `path` names. */
  htu(path: string): string {
    return this.endpoint.publicBaseUrl + path;
  }

  async request(method: string, path: string, headers: Record<string, string>, body: unknown, signal?: AbortSignal): Promise<Answer> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const h: Record<string, string> = { accept: 'application/json', ...headers };
    if (payload !== undefined) h['content-type'] = 'application/json';
    const where = this.endpoint.socket ?? this.endpoint.baseUrl ?? '';
    this.endpoint.verify?.();
    let status: number;
    let text: string;
    try {
      if (this.fetchImpl && this.endpoint.baseUrl) {
        const r = await this.fetchImpl(this.endpoint.baseUrl + path, { method, headers: h, ...(payload !== undefined ? { body: payload } : {}), ...(signal ? { signal } : {}) });
        status = r.status;
        text = await r.text();
      } else {
        ({ status, text } = await this.nodeRequest(method, path, h, payload, signal).catch((e: unknown) => {
          // A kept-alive connection the gate had already closed (idle past its
          // keep_alive_timeout_ms while this process's event loop was held up):
          // the gate never read the request. Once more, on a new connection.
          // The same DPoP proof goes with it: had the gate read the first after
          // all, it refuses the second as a replay, so nothing runs twice.
          if (!staleConnection(e)) throw e;
          return this.nodeRequest(method, path, h, payload, signal, false);
        }));
      }
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      const code = (e as NodeJS.ErrnoException).code;
      const hint = code === 'ENOENT' || code === 'ECONNREFUSED' ? ': is the gate running (latchgate up, or inside latchgate sandbox)?' : code === 'EACCES' ? ': this user may not use that socket' : '';
      throw new LatchGateConnectionError('gate_unreachable', `cannot reach the gate at ${where} (${code ?? (e as Error).message})${hint}`, 0, undefined, { cause: e });
    }
    if (text === '') return { status, body: undefined };
    try {
      return { status, body: JSON.parse(text) };
    } catch {
      throw new LatchGateConnectionError('bad_answer', `the gate at ${where} answered ${status} with something that is not JSON: is this the latchgate gate?`, status);
    }
  }

  /** One exchange; `pooled` false: on a connection of its own, never a kept-alive one. */
  private nodeRequest(method: string, path: string, headers: Record<string, string>, payload: string | undefined, signal?: AbortSignal, pooled = true): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const e = this.endpoint;
      const target = e.socket !== undefined ? { socketPath: e.socket, path } : (() => {
        const u = new URL(e.baseUrl + path);
        return { hostname: u.hostname, port: u.port, path: u.pathname + u.search };
      })();
      const mod = e.baseUrl?.startsWith('https:') ? https : http;
      let answered = false;
      const req = mod.request({ ...target, method, headers: payload === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(payload)) }, agent: pooled ? this.agent : false, ...(signal ? { signal } : {}) }, (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', (e: NodeJS.ErrnoException) => reject(req.reusedSocket && !answered ? Object.assign(e, { [REUSED]: true }) : e));
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
