// The providers' HTTP host: the one way a WebAssembly provider reaches the
// network. The runtime calls it on the gate's main thread with the request the
// provider built; every refusal or failure is a HostIoError whose code goes
// back to the provider. In order:
//   - the method must be one the action allows (egress.allowed_methods);
//   - the URL is read by http-target.ts with the CONNECT proxy's rules: https
//     only (plain http only to an operator-pinned host, and only when
//     allow_plain_http says so: a local test upstream), a host in the action's
//     egress.allowed_domains, no userinfo, no literal IP, an allowed port;
//   - headers are checked (http-headers.ts), the body capped;
//   - {{secret:NAME}} in header values, and in the strings of a JSON body
//     (JSON-escaped, http-body.ts), is filled from the SecretSource, only
//     for the action's declared secrets, only in the request the gate
//     rendered from the manifest's template, exactly as rendered
//     (secret-binding.ts), never in the URL or method, and never over
//     plain http; a call of an action with secrets may not ask for a range
//     (Range, If-Range) nor take a 206: a stored value read back in slices
//     is beyond any redaction;
//   - the name is resolved once on the host with resolveAndCheck
//     (src/egress/ssrf.ts): every address outside the private, loopback,
//     link-local, metadata, CGNAT, ULA and mapped ranges, or the operator's
//     pin; the connection goes to exactly that address (http-transport.ts);
//     through the gate's upstream proxy (upstream_proxy, unless no_proxy names
//     the host) a name the gate cannot resolve is passed on by name, and a
//     pinned one by its address: the proxy then resolves the name (as the
//     box's CONNECT proxy does, src/egress/connect-proxy.ts);
//   - the response (a 3xx too: redirects are not followed) comes back with
//     every secret the gate holds (not only the action's, and values
//     replaced lately too: SecretSource.redactionValues) redacted from its
//     headers and body (src/egress/key-redaction.ts), in every form that
//     module knows.
// Each call, refused or not, adds one entry to `evidence`.
import { createHash } from 'node:crypto';
import tls from 'node:tls';
import { LaunchError } from '../core/errors.js';
import { HostAllowlist, normalizeConnectHost } from '../egress/allowlist.js';
import { Redaction, type KeyMatcher } from '../egress/key-redaction.js';
import { defaultLookup, resolveAndCheck, type LookupFn, type Pin } from '../egress/ssrf.js';
import { extraCaCerts } from '../egress/trust-roots.js';
import { PROXY_LOOKUP_MS, type UpstreamProxy } from '../egress/upstream-proxy.js';
import { HostIoError } from './host-error.js';
import { fillBodySecrets } from './http-body.js';
import { checkHeaders, fillSecrets, type HeaderList } from './http-headers.js';
import { parseHttpTarget, type HttpTarget } from './http-target.js';
import { connectionKey, exchange, openConnection, secureContextFor } from './http-transport.js';
import type net from 'node:net';
import type { HttpHost, HttpRequest, HttpResponse } from './runtime-types.js';
import { checkSecretPlacement, type SecretTemplate } from './secret-binding.js';
import { redactorsFor } from './secret-redactors.js';
import { SECRET_NAME, type SecretSource } from './secret-source.js';

/** The methods a provider can ever use (src/gate/manifest-schema.ts HTTP_METHODS, plus OPTIONS). */
export const HOST_HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export interface HttpHostOptions {
  /** The action's egress.allowed_domains: exact names and "*.example.com", matched as the CONNECT proxy matches. */
  allowed_domains: readonly string[];
  /** The action's egress.allowed_methods. */
  allowed_methods: readonly string[];
  /** Ports a URL may name (default [443], as the CONNECT proxy's allow_ports). */
  allowed_ports?: readonly number[];
  /** Operator pins ([gate.resolve], parsed with parsePins): host name -> the address to connect to instead of resolving it. */
  pins?: ReadonlyMap<string, Pin>;
  /** Allow plain http:// to a pinned host (local test upstreams only). Default false. */
  allow_plain_http?: boolean;
  /** Extra trusted CA certificates, PEM text ([gate] extra_ca_certs, read). */
  ca?: readonly string[];
  /** Or the TLS context already built from them with secureContextFor (a gate builds it once, not per call). */
  trust?: tls.SecureContext;
  /** The host's own proxy ([gate] upstream_proxy, else HTTPS_PROXY): hosts its no_proxy list does not name are reached through it. */
  upstream_proxy?: UpstreamProxy | null;
  /** The whole call, lookup to last response byte, in milliseconds. */
  timeout_ms: number;
  max_response_bytes: number;
  max_request_bytes: number;
  secrets: SecretSource;
  /** The action's declared secret names: the only ones filled (every secret the source holds is redacted from responses). */
  declared_secrets: readonly string[];
  /** The gate's rendering of the action's template for this call: the only request a secret is filled in. None: no secret is filled. */
  secret_template?: SecretTemplate;
  /** Tests only: the DNS lookup resolveAndCheck uses. */
  lookup?: LookupFn;
}

/** What the host observed of one call (a refused call too: status 0 and its error code). */
export interface HttpEvidence {
  kind: 'http';
  method: string;
  /** The URL as requested (normalised host, no fragment); secrets never appear in URLs. */
  url: string;
  /** The upstream's status; 0 when there was no response. */
  status: number;
  /** SHA-256 (hex) of the body handed to the provider (after redaction); '' when there was none. */
  body_sha256: string;
  /** The address connected to (the checked address or the pin), null when the call ended before. */
  address: string | null;
  port: number | null;
  pinned: boolean;
  duration_ms: number;
  /** Occurrences of a secret replaced in the response's headers and body. */
  redactions: number;
  /** The HostIoError code of a refused or failed call. */
  error?: string;
  /** The upstream proxy the call went through (its URL without credentials). */
  upstream_proxy?: string;
}

/** The http host function of one action, with what it observed of every call. */
export interface RecordingHttpHost extends HttpHost {
  readonly evidence: HttpEvidence[];
  /**
   * Opens the connection a request to `url` would use, before the provider
   * asks for it, with every check that request gets (allowlist, port,
   * scheme, resolution and address rules, TLS verification when it is
   * used). The provider's first request to the same name and checked
   * address takes it; nothing is written on it before. A URL that would be
   * refused opens nothing (its request is refused when the provider makes it).
   * Settles (never rejects) once the connection is being opened, or nothing
   * will be: at once for a pinned name, after the lookup for another.
   */
  preconnect(url: string): Promise<void>;
  /** The call has ended: closes a connection opened ahead and never taken, cuts an exchange under way, refuses any request after. */
  close(): void;
}

function positive(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new LaunchError(`http host: ${field} must be a positive integer (got ${String(v)})`);
  return v;
}

function trustOf(o: HttpHostOptions): tls.SecureContext {
  if (o.trust === undefined) return secureContextFor(extraCaCerts(o.ca ?? [], 'extra_ca_certs'));
  if (o.ca !== undefined) throw new LaunchError('http host: give ca or trust, not both');
  if (typeof o.trust !== 'object' || o.trust === null || !('context' in o.trust)) throw new LaunchError('http host: trust must be a TLS SecureContext (secureContextFor)');
  return o.trust;
}

/** Checks the options once; every error names the field and what was expected. */
function checkOptions(o: HttpHostOptions) {
  if (!o || typeof o !== 'object') throw new LaunchError('http host: options are required');
  const allowlist = new HostAllowlist(o.allowed_domains ?? [], 'egress.allowed_domains');
  const methods = new Set<string>();
  for (const m of o.allowed_methods ?? []) {
    const up = typeof m === 'string' ? m.toUpperCase() : '';
    if (!(HOST_HTTP_METHODS as readonly string[]).includes(up)) throw new LaunchError(`http host: egress.allowed_methods entry ${JSON.stringify(m)} is not one of ${HOST_HTTP_METHODS.join(', ')}`);
    methods.add(up);
  }
  const ports = new Set<number>();
  for (const p of o.allowed_ports ?? [443]) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new LaunchError(`http host: allowed_ports entry ${String(p)} is not a port (1-65535)`);
    ports.add(p);
  }
  const pins = new Map<string, Pin>();
  for (const [name, pin] of o.pins ?? []) {
    const host = normalizeConnectHost(name);
    if (host === null) throw new LaunchError(`http host: pin ${JSON.stringify(name)}: expected a host name`);
    pins.set(host, pin);
  }
  const declared = new Set<string>();
  for (const n of o.declared_secrets ?? []) {
    if (typeof n !== 'string' || !SECRET_NAME.test(n)) throw new LaunchError(`http host: declared secret ${JSON.stringify(n)} is not a secret name (letters, digits and "_", not starting with a digit)`);
    declared.add(n);
  }
  if (!o.secrets || typeof o.secrets.get !== 'function' || typeof o.secrets.redactionValues !== 'function') {
    throw new LaunchError('http host: secrets must be a SecretSource (an object with get(name) and redactionValues())');
  }
  const t = o.secret_template;
  if (t !== undefined && (typeof t !== 'object' || t === null || typeof t.method !== 'string' || typeof t.url !== 'string' || typeof t.headers !== 'object' || t.headers === null || (t.body !== undefined && typeof t.body !== 'string'))) {
    throw new LaunchError('http host: secret_template must be {method, url, headers, body?} as the gate rendered the template');
  }
  return {
    allowlist,
    methods,
    ports,
    pins,
    declared,
    plainHttp: o.allow_plain_http === true,
    secureContext: trustOf(o),
    timeoutMs: positive(o.timeout_ms, 'timeout_ms'),
    maxResponseBytes: positive(o.max_response_bytes, 'max_response_bytes'),
    maxRequestBytes: positive(o.max_request_bytes, 'max_request_bytes'),
  };
}

/** The reason every host's `ending` aborts with: made once, as a DOMException made at each call's end costs its stack trace. */
const CALL_OVER = Object.freeze(new DOMException('the call has ended', 'AbortError'));

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Replaces every match of each matcher in headers and body; returns the count. */
function redact(matchers: readonly KeyMatcher[], headers: HeaderList, body: Buffer): { headers: HeaderList; body: Buffer; count: number } {
  let count = 0;
  const text = (s: string) => {
    for (const m of matchers) {
      const r = m.redact(s);
      count += r.count;
      s = r.text;
    }
    return s;
  };
  const out: HeaderList = [];
  for (const [name, value] of headers) {
    if (text(name) !== name) continue; // a header named after a secret: dropped
    out.push([name, text(value)]);
  }
  let b = body;
  for (const m of matchers) {
    const r = new Redaction(m);
    const head = r.write(b);
    b = Buffer.concat([head, r.end()]);
    count += r.redactions;
  }
  if (b.length !== body.length) {
    // A redaction changed the length: the upstream's Content-Length no longer describes the body.
    return { headers: out.filter(([n]) => n.toLowerCase() !== 'content-length'), body: b, count };
  }
  return { headers: out, body: b, count };
}

export function createHttpHost(opts: HttpHostOptions): RecordingHttpHost {
  const o = checkOptions(opts);
  const rules = { allowlist: o.allowlist, ports: o.ports, plainHttp: (h: string) => o.plainHttp && o.pins.has(h) };
  const evidence: HttpEvidence[] = [];
  /** The template's URL read as a request's is; undefined when it cannot be (no request then matches it). */
  let templateTarget: HttpTarget | undefined;
  try {
    if (opts.secret_template) templateTarget = parseHttpTarget(opts.secret_template.url, rules);
  } catch {
    templateTarget = undefined;
  }

  /** The connection opened ahead, until a request takes it or the host is closed. */
  let ahead: { key: string; socket: net.Socket } | undefined;
  /** Aborted by close(), the call's end: nothing is looked up, read, opened or sent after, and an exchange under way is cut. */
  const ending = new AbortController();
  const goingOn = (): void => {
    if (ending.signal.aborted) throw new HostIoError('call_ended', 'the call ended before this request could be made; nothing was done');
  };
  // The lookup and the secrets' reads refuse at the moment they would start, once the call has ended.
  const lookup: LookupFn = async (name, lo) => (goingOn(), (opts.lookup ?? defaultLookup)(name, lo));
  const liveSecrets: Pick<SecretSource, 'get'> = { get: async (name) => (goingOn(), opts.secrets.get(name)) };

  /** The upstream proxy a request to target goes through, or null (none configured, or no_proxy names it). */
  function proxyFor(target: HttpTarget): UpstreamProxy | null {
    const p = opts.upstream_proxy ?? null;
    return p && !p.noProxy.bypasses(target.host, target.port, o.pins.get(target.host)?.ip) ? p : null;
  }

  async function preconnect(url: string, deadline: number): Promise<void> {
    const target = parseHttpTarget(url, rules);
    if (proxyFor(target)) return; // a tunnel is opened by the request itself
    const r = await resolveAndCheck(target.host, target.port, { pinned: o.pins, timeoutMs: Math.max(1, deadline - Date.now()), lookup });
    if (!r.ok || ending.signal.aborted || ahead) return;
    const c = { target, address: r.address, port: r.port, family: r.family, secureContext: o.secureContext };
    const socket = openConnection(c);
    socket.on('error', () => socket.destroy()); // the request that takes it opens its own instead (below)
    socket.setTimeout(Math.max(1, deadline - Date.now()), () => socket.destroy());
    ahead = { key: connectionKey(c), socket };
  }

  /** The connection opened ahead for this exact target, if it is still usable; taken once. */
  function takeAhead(key: string): net.Socket | undefined {
    const a = ahead;
    if (!a || a.key !== key) return undefined;
    ahead = undefined;
    if (a.socket.destroyed) return undefined;
    a.socket.setTimeout(0);
    a.socket.removeAllListeners('error');
    return a.socket;
  }

  /** The request checked and its secrets filled: nothing leaves the gate here (no lookup, no byte sent). */
  async function prepare(req: HttpRequest, ev: HttpEvidence) {
    const method = typeof req?.method === 'string' ? req.method.toUpperCase() : '';
    ev.method = method;
    if (!o.methods.has(method)) {
      throw new HostIoError('method_not_allowed', `method ${JSON.stringify(String(req?.method).slice(0, 32))} is not allowed (allowed: ${[...o.methods].join(', ') || 'none'})`);
    }
    const target: HttpTarget = parseHttpTarget(req.url, rules);
    ev.url = target.url;
    const headers = checkHeaders(req.headers);
    const body = req.body;
    if (body !== undefined && !(body instanceof Uint8Array)) throw new HostIoError('bad_body', 'the body must be bytes (a Uint8Array) or absent');
    if (body !== undefined && body.byteLength > o.maxRequestBytes) {
      throw new HostIoError('request_too_large', `the request body of ${body.byteLength} bytes is larger than the limit of ${o.maxRequestBytes} bytes`);
    }
    const copy = body === undefined ? undefined : Uint8Array.from(body); // the provider's memory may change after the call
    checkSecretPlacement(opts.secret_template, templateTarget, method, target, headers, copy);
    if (o.declared.size > 0 && headers.some(([n]) => /^(if-)?range$/i.test(n))) {
      throw new HostIoError('range_not_allowed', 'an action with secrets may not ask for part of a response (Range, If-Range): a stored value read back in slices escapes redaction');
    }
    const filled = await fillSecrets(headers, o.declared, liveSecrets);
    const filledBody = await fillBodySecrets(copy, headers, o.declared, liveSecrets);
    if (filled.values.length + filledBody.values.length > 0 && target.scheme !== 'https') {
      throw new HostIoError('secret_over_plain_http', `a secret is sent only over https://, not to ${target.url}`);
    }
    return { method, target, filled, filledBody };
  }

  async function send(p: Awaited<ReturnType<typeof prepare>>, ev: HttpEvidence, deadline: number): Promise<HttpResponse> {
    const { method, target, filled, filledBody } = p;
    goingOn();
    const proxy = proxyFor(target);
    const lookupMs = Math.max(1, deadline - Date.now());
    const r = await resolveAndCheck(target.host, target.port, { pinned: o.pins, timeoutMs: proxy ? Math.min(PROXY_LOOKUP_MS, lookupMs) : lookupMs, lookup });
    goingOn(); // (a lookup refused as the call ended reads as a failed one: this names it)
    // Through the proxy, a name the gate cannot resolve is the proxy's to resolve.
    const unresolved = proxy !== null && !r.ok && r.reason.startsWith('DNS lookup');
    if (!r.ok && !unresolved) {
      if (/timed out/.test(r.reason)) throw new HostIoError('timeout', `${target.host} did not resolve within the call's time limit`);
      if (r.reason.startsWith('DNS lookup')) throw new HostIoError('dns_failed', r.reason);
      throw new HostIoError('address_not_allowed', r.reason);
    }
    // What to redact as the request goes: every value current now, and the ones this request carries.
    const redactWith = await redactorsFor(opts.secrets, [...filled.values, ...filledBody.values]);
    // From here to the exchange's start nothing waits: the call cannot end in between.
    goingOn();
    const pinned = r.ok && r.pinned;
    ev.address = r.ok && (pinned || !proxy) ? r.address : null;
    ev.port = r.ok ? r.port : target.port;
    ev.pinned = pinned;
    if (proxy) ev.upstream_proxy = proxy.display;
    const x = {
      target,
      address: r.ok ? r.address : target.host,
      port: r.ok ? r.port : target.port,
      family: r.ok ? r.family : (4 as const),
      ...(proxy ? { proxy: { via: proxy, host: pinned ? r.address : target.host, port: pinned ? r.port : target.port } } : {}),
      method,
      headers: filled.headers,
      body: filledBody.body,
      deadline,
      maxResponseBytes: o.maxResponseBytes,
      secureContext: o.secureContext,
    };
    const raw = await exchange({ ...x, signal: ending.signal }, proxy ? undefined : takeAhead(connectionKey(x)));
    if (raw.status === 206 && o.declared.size > 0) {
      ev.status = raw.status;
      throw new HostIoError('range_not_allowed', 'the upstream answered with part of a resource (206) to an action with secrets; the response is not handed back');
    }
    const clean = redact(redactWith, raw.headers, raw.body);
    ev.status = raw.status;
    ev.redactions = clean.count;
    ev.body_sha256 = sha256(clean.body);
    return { status: raw.status, headers: clean.headers, body: new Uint8Array(clean.body.buffer, clean.body.byteOffset, clean.body.byteLength) };
  }

  const host = async (req: HttpRequest, mayGo?: () => Promise<void>): Promise<HttpResponse> => {
    const ev: HttpEvidence = {
      kind: 'http',
      method: '',
      url: typeof req?.url === 'string' ? req.url.slice(0, 2048) : '',
      status: 0,
      body_sha256: '',
      address: null,
      port: null,
      pinned: false,
      duration_ms: 0,
      redactions: 0,
    };
    // The checks and the secrets while the caller's intent is still being made durable; their
    // refusal, like the request itself, only once mayGo says the call may go on, asked once they are
    // done (a call that ended meanwhile sends nothing). A refusal of mayGo is no request: nothing recorded.
    const prepared = prepare(req, ev);
    await prepared.then(
      () => undefined,
      () => undefined,
    );
    if (mayGo) await mayGo();
    const started = Date.now();
    try {
      return await send(await prepared, ev, started + o.timeoutMs);
    } catch (e) {
      const err = e instanceof HostIoError ? e : new HostIoError('internal_error', `the HTTP host failed unexpectedly (${(e as Error)?.name ?? typeof e})`);
      ev.error = err.code;
      throw err;
    } finally {
      ev.duration_ms = Date.now() - started;
      evidence.push(ev);
    }
  };
  return Object.assign(host, {
    evidence,
    preconnect(url: string) {
      // A refusal here is no answer to anyone: the provider's own request gets it.
      return preconnect(url, Date.now() + o.timeoutMs).catch(() => undefined);
    },
    close() {
      ending.abort(CALL_OVER);
      ahead?.socket.destroy();
      ahead = undefined;
    },
  });
}
