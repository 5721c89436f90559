// One HTTP exchange of the providers' HTTP host (host-http.ts), on a fresh
// connection to an address already checked: the socket goes to exactly that
// address (no name is resolved here), TLS is verified against the URL's host
// name (rejectUnauthorized, Node's checkServerIdentity), redirects are not
// followed, the whole exchange ends at the deadline, and the response body is
// read only up to its cap: one byte more and the socket is destroyed.
// Through the upstream proxy (src/egress/upstream-proxy.ts) the connection
// is a CONNECT tunnel to the name (a pinned name: its address), with TLS to
// the upstream inside it, checked as without the proxy.
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { defaultTrust, TLS_CODES } from '../egress/trust-roots.js';
import { openTunnel, UpstreamProxyError, type UpstreamProxy } from '../egress/upstream-proxy.js';
import { HostIoError } from './host-error.js';
import type { HeaderList } from './http-headers.js';
import type { HttpTarget } from './http-target.js';

export interface Exchange {
  target: HttpTarget;
  /** The checked address and port to connect to (a pin's, or the name's first checked address). */
  address: string;
  port: number;
  family: 4 | 6;
  method: string;
  /** The provider's headers with secrets filled; the host adds Host, Accept-Encoding and Content-Length. */
  headers: HeaderList;
  body: Uint8Array | undefined;
  /** Milliseconds since the epoch by which the whole response must have arrived. */
  deadline: number;
  maxResponseBytes: number;
  secureContext: tls.SecureContext;
  /** Set when the exchange goes through the upstream proxy (via), which is asked to CONNECT to host:port. */
  proxy?: { via: UpstreamProxy; host: string; port: number };
  /** Aborted when the call this exchange belongs to has ended: whatever is still under way is cut. */
  signal?: AbortSignal;
}

export interface RawResponse {
  status: number;
  /** The response's header fields as received (hop-by-hop fields dropped). */
  headers: HeaderList;
  body: Buffer;
}

/** Response fields about this connection only: not handed to the provider. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'proxy-authenticate']);
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

const contexts = new Map<string, tls.SecureContext>();
let baseTrust: string[] | undefined;

/** The TLS context trusting the default roots plus extra (PEM certificates), built once per distinct extra list. */
export function secureContextFor(extra: readonly string[]): tls.SecureContext {
  const key = extra.join('\n');
  let ctx = contexts.get(key);
  if (ctx === undefined) {
    baseTrust ??= defaultTrust();
    ctx = tls.createSecureContext({ ca: [...baseTrust, ...extra] });
    if (contexts.size >= 16) contexts.delete(contexts.keys().next().value as string);
    contexts.set(key, ctx);
  }
  return ctx;
}

/** Never called for an IP address; should Node ever try to resolve a name here, the connect fails. */
const noLookup: net.LookupFunction = (hostname, _options, callback) => {
  callback(Object.assign(new Error(`refused to resolve ${hostname} a second time`), { code: 'ENOTFOUND' }), '', 4);
};

/** A failed request as the provider sees it. */
function failure(err: NodeJS.ErrnoException, where: string): HostIoError {
  // The provider is not told where the gate's proxy is; the code says what failed.
  if (err instanceof UpstreamProxyError) return new HostIoError(err.reason, `could not reach ${where} through the gate's upstream proxy (${err.reason}${err.status ? ` ${err.status}` : ''})`);
  const code = typeof err.code === 'string' ? err.code : '';
  if (TLS_CODES.test(code) || /certificate|SSL|TLS/i.test(err.message)) return new HostIoError('tls_failed', `${where} failed TLS verification (${code || 'TLS error'}: ${err.message})`);
  if (code.startsWith('HPE_')) return new HostIoError('bad_response', `${where} sent a malformed HTTP response (${code})`);
  if (code === 'ECONNRESET' || code === 'EPIPE') return new HostIoError('upstream_aborted', `${where} closed the connection (${code})`);
  return new HostIoError('connect_failed', `could not reach ${where} (${code || err.message})`);
}

/** Where one connection goes: a checked address, and for https the name its certificate must carry. */
export type ConnectionTarget = Pick<Exchange, 'target' | 'address' | 'port' | 'family' | 'secureContext'>;

/**
 * Opens the connection an exchange uses: TCP to exactly the checked address
 * (nothing is resolved), and for https TLS verified against the URL's host
 * name (rejectUnauthorized, Node's checkServerIdentity). The HTTP host may
 * open it before the provider asks (preconnect); no request byte is written
 * until exchange() takes it.
 */
export function openConnection(c: ConnectionTarget): net.Socket {
  const base = { host: c.address, port: c.port, family: c.family, lookup: noLookup };
  if (c.target.scheme !== 'https') return net.connect(base);
  return checkedByLeaf(tls.connect({ ...base, servername: c.target.host, rejectUnauthorized: true, secureContext: c.secureContext, checkServerIdentity: tls.checkServerIdentity }));
}

const peerCertificate = tls.TLSSocket.prototype.getPeerCertificate;

/**
 * The subjectaltname has a DNS name as tls.checkServerIdentity reads it
 * (entries split on ", ", none quoted): then the check reads that string
 * alone, never the subject (the CN counts only where there is no DNS name).
 */
function namesDns(san: string | undefined): san is string {
  return san !== undefined && !san.includes('"') && san.split(', ').some((n) => n.startsWith('DNS:'));
}

/**
 * Node checks the server's name (checkServerIdentity) on getPeerCertificate(true):
 * the whole chain turned into objects, fingerprints and all, about 0.3 ms of
 * the event loop per handshake; the leaf alone still costs 0.1 ms. OpenSSL has
 * verified the chain itself already (rejectUnauthorized), and the check reads
 * only the leaf's subjectaltname and, where that names no DNS name, its
 * subject. So it gets the subjectaltname string of the leaf (X509Certificate,
 * the same string getPeerCertificate gives) when that names a DNS name, and
 * the leaf as getPeerCertificate(false) gives it (toLegacyObject) otherwise.
 * Nothing else asks these sockets for their certificate.
 */
function checkedByLeaf(socket: tls.TLSSocket): tls.TLSSocket {
  socket.getPeerCertificate = function leafCertificate(this: tls.TLSSocket) {
    // Once getPeerX509Certificate has been called, Node 20's getPeerCertificate answers {}: the fallback is the same X509's legacy object.
    const x = this.getPeerX509Certificate();
    if (!x) return peerCertificate.call(this, false);
    const san = x.subjectAltName;
    if (namesDns(san)) return { subjectaltname: san } as tls.DetailedPeerCertificate;
    return x.toLegacyObject() as tls.DetailedPeerCertificate;
  } as tls.TLSSocket['getPeerCertificate'];
  return socket;
}

/** The connection through the upstream proxy: a tunnel, then (https) TLS to the upstream inside it, verified as openConnection does. */
async function openThroughProxy(c: ConnectionTarget & Pick<Exchange, 'deadline' | 'signal'>, p: NonNullable<Exchange['proxy']>): Promise<net.Socket> {
  // The call's end cuts the tunnel under way (no CONNECT after it), and starts nothing in one it left behind.
  const sock = await openTunnel(p.via, p.host, p.port, { timeoutMs: Math.max(1, c.deadline - Date.now()), ...(c.signal ? { signal: c.signal } : {}) });
  if (c.signal?.aborted) {
    sock.destroy();
    throw new HostIoError('call_ended', `the call ended while the tunnel to ${c.target.hostHeader} was being opened; nothing was sent in it`);
  }
  if (c.target.scheme !== 'https') return sock;
  if (sock.readableLength > 0) {
    sock.destroy();
    throw new UpstreamProxyError('upstream_proxy_bad_answer', 'the upstream proxy sent bytes of its own into the tunnel before TLS began');
  }
  return checkedByLeaf(tls.connect({ socket: sock, servername: c.target.host, rejectUnauthorized: true, secureContext: c.secureContext, checkServerIdentity: tls.checkServerIdentity }));
}

/** The connection key an opened connection serves: scheme, name and checked address. */
export const connectionKey = (c: ConnectionTarget): string => `${c.target.scheme}://${c.target.host}:${c.port}@${c.address}`;

/** Performs the exchange on `socket` (opened for this target by openConnection) or on a new connection; rejects with a HostIoError. */
export function exchange(x: Exchange, socket?: net.Socket): Promise<RawResponse> {
  const where = x.target.hostHeader;
  return new Promise<RawResponse>((resolve, reject) => {
    // Nothing is opened or written for a call that has ended.
    if (x.signal?.aborted) {
      socket?.destroy();
      return reject(new HostIoError('call_ended', `the call ended before ${where} was asked; nothing was sent`));
    }
    let settled = false;
    let res: http.IncomingMessage | undefined;
    // Cut once under way: the request may have reached the upstream (call_cut, not call_ended).
    const cut = () => fail(new HostIoError('call_cut', `the call ended while ${where} was being asked; the exchange was cut, and the request may have reached it`));
    const options: http.RequestOptions = {
      method: x.method,
      path: x.target.path,
      // No agent: with createConnection alone the request uses exactly this connection, and it is never pooled.
      setHost: false,
      insecureHTTPParser: false,
      createConnection: (_o, created) => {
        if (socket) return socket;
        if (!x.proxy) return openConnection(x);
        openThroughProxy(x, x.proxy).then(
          (s) => created?.(null, s),
          (e: Error) => created?.(e, undefined as unknown as net.Socket),
        );
        return undefined;
      },
    };
    const req = http.request(options);
    const fail = (e: HostIoError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      x.signal?.removeEventListener('abort', cut);
      res?.destroy();
      req.destroy();
      reject(e);
    };
    const timer = setTimeout(
      () => fail(new HostIoError('timeout', `${where} did not answer completely within the call's time limit`)),
      Math.max(0, x.deadline - Date.now()),
    );
    req.on('error', (e: NodeJS.ErrnoException) => fail(failure(e, where)));
    x.signal?.addEventListener('abort', cut, { once: true });
    req.on('response', (r) => {
      res = r;
      r.on('error', () => fail(new HostIoError('upstream_aborted', `${where} broke off the response`)));
      r.on('aborted', () => fail(new HostIoError('upstream_aborted', `${where} broke off the response`)));
      const bodyless = x.method === 'HEAD' || r.statusCode === 204 || r.statusCode === 304;
      const te = r.headers['transfer-encoding'];
      if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
        return fail(new HostIoError('bad_response', `${where} answered with transfer-encoding ${JSON.stringify(te.slice(0, 64))}; only chunked is read`));
      }
      const codings = (r.headers['content-encoding'] ?? '').split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '' && s !== 'identity');
      if (codings.length > 0 && !bodyless) {
        return fail(new HostIoError('unsupported_content_encoding', `${where} answered with content-encoding ${JSON.stringify(codings.join(', ').slice(0, 64))} although the host asked for identity; an encoded body cannot be searched for secrets`));
      }
      const declared = Number(r.headers['content-length']);
      const tooLarge = () => new HostIoError('response_too_large', `${where}'s response body is larger than the limit of ${x.maxResponseBytes} bytes`);
      if (!bodyless && Number.isFinite(declared) && declared > x.maxResponseBytes) return fail(tooLarge());
      const chunks: Buffer[] = [];
      let total = 0;
      r.on('data', (c: Buffer) => {
        total += c.length;
        if (total > x.maxResponseBytes) return fail(tooLarge());
        chunks.push(c);
      });
      r.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        x.signal?.removeEventListener('abort', cut);
        const headers: HeaderList = [];
        for (let i = 0; i + 1 < r.rawHeaders.length; i += 2) {
          const name = r.rawHeaders[i] as string;
          if (!HOP_BY_HOP.has(name.toLowerCase())) headers.push([name, r.rawHeaders[i + 1] as string]);
        }
        resolve({ status: r.statusCode ?? 0, headers, body: Buffer.concat(chunks, total) });
        // Closed once the answer is on its way to the provider: nothing more is read from it.
        setImmediate(() => req.destroy());
      });
    });
    req.setHeader('Host', x.target.hostHeader);
    req.setHeader('Accept-Encoding', 'identity');
    const grouped = new Map<string, { name: string; values: string[] }>();
    for (const [name, value] of x.headers) {
      const g = grouped.get(name.toLowerCase()) ?? { name, values: [] };
      g.values.push(value);
      grouped.set(name.toLowerCase(), g);
    }
    for (const { name, values } of grouped.values()) req.setHeader(name, values.length === 1 ? (values[0] as string) : values);
    if (x.body !== undefined || !BODYLESS_METHODS.has(x.method)) req.setHeader('Content-Length', String(x.body?.byteLength ?? 0));
    req.end(x.body === undefined ? undefined : Buffer.from(x.body));
  });
}
