// The host's own HTTP proxy (a corporate network's way out), which the box's
// exits use to reach the internet: where it is ([sandbox.network]
// upstream_proxy over the launcher's https_proxy / HTTPS_PROXY), which hosts
// bypass it (no_proxy over the launcher's no_proxy / NO_PROXY, with curl's
// rules), and a CONNECT through it (openTunnel). Its credentials
// (http://user:pass@proxy) only ever leave this module as the
// Proxy-Authorization header sent to the proxy: every printed form is
// redacted (display), and no error quotes the value.
import net from 'node:net';
import { LaunchError } from '../core/errors.js';
import { normalizeAllowHost } from '../config/hosts.js';
import { parseIPv4, parseIPv6 } from './ssrf.js';

/** Where the upstream proxy setting was read: a config field, or a variable of the launcher's environment. */
export interface ProxySource {
  /** What error messages and the plan name, e.g. "latchgate.toml: [sandbox.network] upstream_proxy" or "HTTPS_PROXY". */
  source: string;
}

export interface UpstreamProxy extends ProxySource {
  host: string;
  port: number;
  /** "Basic ..." when the URL carried credentials; never printed. */
  authorization: string | null;
  /** http://[***@]host:port: the form plans, ledger events and messages show. */
  display: string;
  noProxy: NoProxy;
}

/** A failure of the upstream proxy; reason is the ledger's and the box's word for it. */
export class UpstreamProxyError extends Error {
  constructor(
    readonly reason: 'upstream_proxy_unreachable' | 'upstream_proxy_refused' | 'upstream_proxy_timeout' | 'upstream_proxy_bad_answer',
    message: string,
    /** The proxy's status for a refused CONNECT. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'UpstreamProxyError';
  }

  get code(): string {
    return this.reason.toUpperCase();
  }
}

/**
 * How long the host's own lookup of a name bound for the upstream proxy may
 * take (for the address check it can still make) before the name is left to
 * the proxy to resolve.
 */
export const PROXY_LOOKUP_MS = 2000;

const DEFAULT_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * Parses a proxy URL, http://[user:pass@]host:port[/]. A value without a
 * scheme is read as http:// (as curl does). The port is required: tools
 * disagree on the default (curl 1080, others 80). Errors name the field and
 * never quote the value, which may hold a password.
 */
export function parseProxyUrl(text: string, source: string): Omit<UpstreamProxy, 'noProxy' | 'source'> {
  const fail = (why: string): never => {
    throw new LaunchError(`${source}: ${why}; expected http://[user:password@]host:port, e.g. http://proxy.corp.example:3128 (the value is not shown: it may hold a password)`);
  };
  if (typeof text !== 'string' || text.trim() === '') return fail('is empty');
  const raw = text.trim();
  if (/[\s\x00-\x1f\x7f]/.test(raw)) return fail('contains spaces or control characters');
  const withScheme = DEFAULT_SCHEME.test(raw) ? raw : `http://${raw}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    return fail('is not a URL');
  }
  if (u.protocol === 'https:') return fail('an https:// proxy (TLS to the proxy itself) is not supported; name its plain http:// port');
  if (u.protocol !== 'http:') return fail(`the scheme ${JSON.stringify(u.protocol.slice(0, -1).slice(0, 16))} is not supported (only http:// proxies that answer CONNECT)`);
  if (u.hostname === '') return fail('has no host');
  // The URL parser drops a default port (":80"): whether one was written is read from the authority itself.
  const authority = withScheme.slice(withScheme.indexOf('://') + 3).split(/[/?#]/)[0] ?? '';
  if (!/:[0-9]+$/.test(authority.slice(authority.lastIndexOf('@') + 1))) return fail('has no port');
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') return fail('has a path, query or fragment');
  const port = u.port === '' ? 80 : Number(u.port);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  let authorization: string | null = null;
  if (u.username !== '' || u.password !== '') {
    let user: string;
    let pass: string;
    try {
      user = decodeURIComponent(u.username);
      pass = decodeURIComponent(u.password);
    } catch {
      return fail('has badly percent-encoded credentials');
    }
    authorization = `Basic ${Buffer.from(`${user}:${pass}`, 'utf8').toString('base64')}`;
  }
  const hostText = host.includes(':') ? `[${host}]` : host;
  return { host, port, authorization, display: `http://${authorization ? '***@' : ''}${hostText}:${port}` };
}

type NoProxyEntry =
  | { kind: 'all' }
  | { kind: 'name'; name: string; port: number | null }
  | { kind: 'ip'; family: 4 | 6; bits: bigint; len: number; port: number | null };

function ipBits(ip: string): { family: 4 | 6; bits: bigint } | null {
  const v4 = parseIPv4(ip);
  if (v4 !== null) return { family: 4, bits: BigInt(v4) };
  const v6 = parseIPv6(ip);
  if (v6 === null) return null;
  return { family: 6, bits: v6.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n) };
}

function inPrefix(e: Extract<NoProxyEntry, { kind: 'ip' }>, a: { family: 4 | 6; bits: bigint }): boolean {
  if (a.family !== e.family) return false;
  const width = e.family === 4 ? 32 : 128;
  const shift = BigInt(width - e.len);
  return a.bits >> shift === e.bits >> shift;
}

/**
 * The hosts that bypass the upstream proxy, with the rules curl and most
 * Node and Python tools share: entries separated by commas (or spaces); "*"
 * alone bypasses every host; a name matches itself and every name below it,
 * with or without a leading "." or "*." (".example.com" and "example.com"
 * both match example.com and a.example.com); ":port" narrows an entry to one
 * port; an IP address ("10.1.2.3", "[::1]") or a CIDR range ("10.0.0.0/8",
 * "fd00::/8") matches a literal address: a pinned name's address, or an
 * upstream written as an address. A name is never resolved to be matched.
 */
export class NoProxy {
  readonly entries: readonly string[];
  readonly #parsed: NoProxyEntry[];

  /** source names the field in errors: "latchgate.toml: [sandbox.network] no_proxy" or "NO_PROXY". */
  constructor(entries: readonly string[], readonly source: string) {
    const parsed: NoProxyEntry[] = [];
    const kept: string[] = [];
    entries.forEach((raw, i) => {
      if (typeof raw !== 'string') throw new LaunchError(`${source}[${i}]: expected a string`);
      const e = raw.trim();
      if (e === '') return;
      parsed.push(parseEntry(e, `${source}${entries.length > 1 ? `[${i}]` : ''} ${JSON.stringify(e.slice(0, 80))}`));
      kept.push(e);
    });
    this.entries = kept;
    this.#parsed = parsed;
  }

  /** A list written as the environment variable holds it: "a.example,.b.example:8443, 10.0.0.0/8". */
  static fromList(text: string, source: string): NoProxy {
    return new NoProxy(text.split(/[\s,]+/), source);
  }

  get bypassesAll(): boolean {
    return this.#parsed.some((e) => e.kind === 'all');
  }

  /** Whether a connection to host:port (a normalised name, or an address) goes direct; address: the pin it connects to, if any. */
  bypasses(host: string, port: number, address?: string): boolean {
    const name = host.toLowerCase().replace(/\.$/, '');
    const addrs = [address, host].flatMap((a) => {
      const b = a === undefined ? null : ipBits(a.replace(/^\[|\]$/g, ''));
      return b ? [b] : [];
    });
    for (const e of this.#parsed) {
      if (e.kind === 'all') return true;
      if (e.port !== null && e.port !== port) continue;
      if (e.kind === 'name' && (name === e.name || name.endsWith(`.${e.name}`))) return true;
      if (e.kind === 'ip' && addrs.some((a) => inPrefix(e, a))) return true;
    }
    return false;
  }
}

function parseEntry(e: string, where: string): NoProxyEntry {
  const fail = (why: string): never => {
    throw new LaunchError(`${where}: ${why}; expected a host name (example.com, .example.com), an address or CIDR range (10.0.0.0/8, [::1]), optionally with :port, or "*"`);
  };
  if (e === '*') return { kind: 'all' };
  const portOf = (p: string | undefined): number | null => {
    if (p === undefined) return null;
    if (!/^[1-9][0-9]{0,4}$/.test(p) || Number(p) > 65535) return fail(`bad port ${JSON.stringify(p)}`);
    return Number(p);
  };
  // [v6], [v6]:port, [v6/len]
  let m = /^\[([^\]]+)\](?::([^:]*))?$/.exec(e);
  if (m) return ipEntry(m[1]!, portOf(m[2]), fail);
  // v4, v4:port, v4/len, v6, v6/len (an unbracketed v6 takes no port)
  if (/^[0-9.]+(?:\/\d+)?(?::\d+)?$/.test(e)) {
    m = /^([^:]+)(?::(.*))?$/.exec(e)!;
    return ipEntry(m[1]!, portOf(m[2]), fail);
  }
  if (e.split(':').length > 2) return ipEntry(e, null, fail);
  m = /^([^:]+)(?::(.*))?$/.exec(e);
  if (!m) return fail('is empty');
  let name = m[1]!.toLowerCase();
  if (name.startsWith('*.')) name = name.slice(2);
  else if (name.startsWith('.')) name = name.slice(1);
  name = name.replace(/\.$/, '');
  if (name === '' || name.includes('*')) return fail('is not a host name');
  let normal: string;
  try {
    normal = normalizeAllowHost(name, 'no_proxy');
  } catch {
    return fail('is not a host name');
  }
  return { kind: 'name', name: normal, port: portOf(m[2]) };
}

function ipEntry(text: string, port: number | null, fail: (why: string) => never): NoProxyEntry {
  const [addr, len, extra] = text.split('/');
  if (extra !== undefined) return fail('has more than one "/"');
  const b = ipBits(addr ?? '');
  if (!b) return fail('is not an IP address');
  const width = b.family === 4 ? 32 : 128;
  let bits = width;
  if (len !== undefined) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(len) || Number(len) > width) return fail(`bad prefix length ${JSON.stringify(len)} (0-${width})`);
    bits = Number(len);
  }
  return { kind: 'ip', family: b.family, bits: b.bits, len: bits, port };
}

/** The settings that decide the upstream proxy: the config's, then the launcher's environment. */
export interface ProxySettings {
  /** [sandbox.network] upstream_proxy: a URL, or "none" (no proxy, whatever the environment says). */
  upstreamProxy?: string | undefined;
  /** [sandbox.network] no_proxy. */
  noProxy?: readonly string[] | undefined;
  /** How the config's fields are named in messages: "latchgate.toml: [sandbox.network]". */
  section: string;
}

/** The first of names set (non-empty) in env. */
function fromEnv(env: NodeJS.ProcessEnv, names: readonly string[]): { name: string; value: string } | null {
  for (const name of names) {
    const value = env[name];
    if (typeof value === 'string' && value.trim() !== '') return { name, value };
  }
  return null;
}

/**
 * The upstream proxy the exits use, or null for none. Precedence: the config's
 * upstream_proxy (the operator's explicit word; "none" turns the environment's
 * off), then https_proxy, then HTTPS_PROXY (curl's order). The bypass list:
 * the config's no_proxy when set, else no_proxy, else NO_PROXY. source says
 * which one was used, for the plan and the ledger.
 */
export function upstreamProxyFrom(s: ProxySettings, env: NodeJS.ProcessEnv): UpstreamProxy | null {
  let url: { value: string; source: string } | null = null;
  if (s.upstreamProxy !== undefined) {
    if (s.upstreamProxy.trim().toLowerCase() === 'none') return null;
    url = { value: s.upstreamProxy, source: `${s.section} upstream_proxy` };
  } else {
    const e = fromEnv(env, ['https_proxy', 'HTTPS_PROXY']);
    if (e) url = { value: e.value, source: `${e.name} (the launcher's environment)` };
  }
  if (!url) return null;
  const parsed = parseProxyUrl(url.value, url.source);
  let noProxy: NoProxy;
  if (s.noProxy !== undefined) {
    noProxy = new NoProxy(s.noProxy, `${s.section} no_proxy`);
  } else {
    const e = fromEnv(env, ['no_proxy', 'NO_PROXY']);
    noProxy = e ? NoProxy.fromList(e.value, `${e.name} (the launcher's environment)`) : new NoProxy([], 'none');
  }
  return { ...parsed, source: url.source, noProxy };
}

/** The proxy's printable description: its redacted URL and where it was configured; never the credentials. */
export function describeUpstreamProxy(p: UpstreamProxy): { url: string; source: string; no_proxy: readonly string[]; no_proxy_source: string } {
  return { url: p.display, source: p.source, no_proxy: p.noProxy.entries, no_proxy_source: p.noProxy.source };
}

/** What an operator does about a failed upstream proxy. */
export function upstreamProxyFix(p: Pick<UpstreamProxy, 'display' | 'source'>): string {
  return `check that the upstream proxy ${p.display} (from ${p.source}) is reachable from this host and allows CONNECT to this host and port; or correct it, or add the host to no_proxy`;
}

/** Status-line reason text from the proxy as it may be printed: printable ASCII, short. */
function cleanReason(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}

const MAX_ANSWER_HEAD = 16 * 1024;

export interface TunnelOptions {
  /** Connecting to the proxy and its answer to CONNECT, together, within this. */
  timeoutMs: number;
  /** Aborting destroys the socket and rejects. */
  signal?: AbortSignal;
  /** Opens the TCP connection to the proxy (tests); default net.connect. */
  connect?: (host: string, port: number) => net.Socket;
}

/**
 * Opens a tunnel to host:port through the proxy: CONNECT (with
 * Proxy-Authorization when the URL had credentials), and resolves with the
 * socket once the proxy answered 2xx, positioned after the answer's head
 * (bytes behind it stay readable). Anything else rejects with an
 * UpstreamProxyError whose message names the proxy by its redacted form.
 */
export function openTunnel(p: UpstreamProxy, host: string, port: number, o: TunnelOptions): Promise<net.Socket> {
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) {
      reject(new UpstreamProxyError('upstream_proxy_unreachable', 'aborted before connecting to the upstream proxy'));
      return;
    }
    const sock = (o.connect ?? ((h, pt) => net.connect({ host: h, port: pt })))(p.host, p.port);
    let head = Buffer.alloc(0);
    let connected = false;
    let settled = false;
    const finish = (err: UpstreamProxyError | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      sock.off('data', onData);
      sock.off('error', onError);
      sock.off('close', onClose);
      sock.off('connect', onConnect);
      if (err) {
        sock.on('error', () => undefined);
        sock.destroy();
        reject(err);
      } else {
        resolve(sock);
      }
    };
    const onAbort = () => finish(new UpstreamProxyError('upstream_proxy_unreachable', 'aborted while connecting through the upstream proxy'));
    const onError = (e: NodeJS.ErrnoException) =>
      finish(
        connected
          ? new UpstreamProxyError('upstream_proxy_bad_answer', `the upstream proxy ${p.display} broke off its answer to CONNECT ${authority} (${e.code ?? e.message})`)
          : new UpstreamProxyError('upstream_proxy_unreachable', `the upstream proxy ${p.display} is unreachable (${e.code ?? e.message})`),
      );
    const onClose = () => finish(new UpstreamProxyError('upstream_proxy_bad_answer', `the upstream proxy ${p.display} closed the connection without answering CONNECT ${authority}`));
    const onConnect = () => {
      connected = true;
      sock.setNoDelay(true);
      const auth = p.authorization ? `Proxy-Authorization: ${p.authorization}\r\n` : '';
      sock.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth}\r\n`);
    };
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_ANSWER_HEAD) finish(new UpstreamProxyError('upstream_proxy_bad_answer', `the upstream proxy ${p.display} sent an answer head over ${MAX_ANSWER_HEAD} bytes`));
        return;
      }
      const line = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const m = /^HTTP\/1\.[01] ([1-5][0-9]{2})(?: (.*))?$/.exec(line);
      if (!m) {
        finish(new UpstreamProxyError('upstream_proxy_bad_answer', `the upstream proxy ${p.display} answered CONNECT with something other than HTTP/1.x`));
        return;
      }
      const status = Number(m[1]);
      if (status < 200 || status > 299) {
        const hint = status === 407 ? (p.authorization ? ': it did not accept the credentials in the proxy URL' : ': it wants credentials (http://user:password@host:port)') : '';
        finish(new UpstreamProxyError('upstream_proxy_refused', `the upstream proxy ${p.display} refused CONNECT ${authority} with ${status} ${cleanReason(m[2] ?? '')}${hint}`, status));
        return;
      }
      const rest = head.subarray(end + 4);
      sock.pause();
      if (rest.length > 0) sock.unshift(rest);
      finish(null);
    };
    const timer = setTimeout(
      () => finish(new UpstreamProxyError('upstream_proxy_timeout', `the upstream proxy ${p.display} did not ${connected ? 'answer CONNECT' : 'accept the connection'} within ${o.timeoutMs} ms`)),
      o.timeoutMs,
    );
    o.signal?.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', onConnect);
    sock.on('data', onData);
    sock.once('error', onError);
    sock.once('close', onClose);
  });
}
