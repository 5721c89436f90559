// Where the gate listens and who is calling: Unix sockets identify the peer
// by SO_PEERCRED (never by anything the client says); the box's own socket
// has its principal fixed by the launcher; TCP is opt-in, loopback only, and
// its callers are identified by client tokens (src/gate/tokens.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { loadAddon } from '../native/addon.js';
import type { Caller } from './app.js';
import { GateError } from './errors.js';
import { nestedNamespace } from './peer-namespace.js';
import { TOKEN_HEADER, type ClientTokens } from './tokens.js';

export interface IdentityMap {
  principals: Map<number, { name: string; scopes: string[] }>;
  operators: Map<number, string>;
}

/** Each connection's peer, asked once: SO_PEERCRED is fixed when the peer connects (unix(7)). */
const peerBySocket = new WeakMap<Socket, { uid: number; pid: number }>();

function socketPeer(socket: Socket): { uid: number; pid: number } | undefined {
  const known = peerBySocket.get(socket);
  if (known) return known;
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) return undefined;
  const c = loadAddon().peerCred(fd);
  if (typeof c === 'number') return undefined;
  peerBySocket.set(socket, c);
  return c;
}

/** The peer of a Unix socket connection, for the per-peer limits and counts: its uid (SO_PEERCRED). */
export function unixPeer(socket: Socket): string {
  const uid = socketPeer(socket)?.uid;
  if (uid === undefined) throw new GateError('identity_unauthenticated', 'the peer of this connection cannot be identified');
  return `uid:${uid}`;
}

/** The namespace check per connection: its peer process cannot change. */
const nestedBySocket = new WeakMap<object, string | null>();

/**
 * Callers on a Unix socket: mapped from the peer's uid. A process of an
 * operator's uid inside a sandbox or container (peer-namespace.ts) is not
 * an operator: the box would otherwise approve its own requests.
 */
export function unixIdentity(map: IdentityMap): (req: FastifyRequest) => Caller {
  return (req) => {
    const cred = socketPeer(req.raw.socket);
    if (cred === undefined) throw new GateError('identity_unauthenticated', 'the peer of this connection cannot be identified');
    const { uid, pid } = cred;
    const p = map.principals.get(uid);
    let operator = map.operators.get(uid);
    let operatorRefusal: string | undefined;
    if (operator !== undefined) {
      const socket = req.raw.socket;
      let nested = nestedBySocket.get(socket);
      if (nested === undefined) nestedBySocket.set(socket, (nested = nestedNamespace(pid)));
      if (nested) {
        operatorRefusal = `uid ${uid} is the operator ${operator}, but process ${pid} is not acting as the operator: ${nested}. Operators act from the host, outside every sandbox`;
        operator = undefined;
      }
    }
    if (!p && !operator) throw new GateError('identity_unauthenticated', operatorRefusal ?? `uid ${uid} is not a known principal; map it under [identity.principals.${uid}] in latchgate.toml`);
    return { principal: p?.name ?? `operator:${operator}`, scopes: p?.scopes ?? [], uid, pid, operator, ...(operatorRefusal ? { operatorRefusal } : {}), transport: 'unix' };
  };
}

/** The box's socket: one principal, chosen by the launcher. */
export function boxIdentity(principal: string, scopes: string[]): () => Caller {
  return () => ({ principal, scopes, transport: 'box' });
}

/** What the TCP listener admits: the Host names it answers to, the browser origins it serves, the client tokens. */
export interface TcpAdmission {
  /** Host header values, lowercase (see tcpHosts). */
  hosts: ReadonlySet<string>;
  /** Origin header values, lowercase; a request with any other Origin is refused. */
  origins: ReadonlySet<string>;
  tokens: Pick<ClientTokens, 'authenticate'>;
}

const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = (req.headers as Record<string, string | string[] | undefined> | undefined)?.[name];
  return typeof v === 'string' ? v : undefined;
};

/**
 * --expose-http: a TCP caller has no peer uid, so it is identified only by a
 * client token (LatchGate-Token: lgt_..., on every request), as the token's
 * principal with its scopes; never as the gate's owner. First the Host header
 * must name this listener (a page that rebinds its own name to 127.0.0.1 sends
 * its own name), and a request from a browser page (it carries Origin) must
 * come from an origin the configuration lists.
 */
export function tokenIdentity(a: TcpAdmission): (req: FastifyRequest) => Caller {
  return (req) => {
    const host = header(req, 'host');
    if (host === undefined || !a.hosts.has(host.toLowerCase())) {
      throw new GateError('host_not_allowed', `Host ${host === undefined ? '(none)' : JSON.stringify(host.slice(0, 100))} is not a name of this gate; it answers to ${[...a.hosts].join(', ')} (add a name under [gate] http_hosts in latchgate.toml)`);
    }
    const origin = header(req, 'origin');
    if (origin !== undefined && !a.origins.has(origin.toLowerCase())) {
      throw new GateError('origin_not_allowed', `requests from browser pages are refused: Origin ${JSON.stringify(origin.slice(0, 100))} is not listed under [gate] http_origins in latchgate.toml`);
    }
    const token = header(req, TOKEN_HEADER);
    if (token === undefined) {
      const misplaced = /^bearer\s+lgt_/i.test(header(req, 'authorization') ?? '') ? ' (not in Authorization, which carries the lease)' : '';
      throw new GateError('identity_unauthenticated', `callers over TCP are identified by a client token: send LatchGate-Token: lgt_...${misplaced} on every request; an operator issues one with latchgate tokens create`);
    }
    const t = a.tokens.authenticate(token);
    return { principal: t.principal, scopes: t.scopes, token_id: t.token_id, transport: 'http' };
  };
}

/**
 * The peer a TCP request proves: its client token's id when the token is one
 * this gate issued and still stands. Its connection then counts against that
 * token's own share (src/gate/http-guards.ts), not the pool every tokenless
 * connection shares.
 */
export function tokenPeer(tokens: Pick<ClientTokens, 'authenticate'>): (req: FastifyRequest) => string | undefined {
  return (req) => {
    const token = header(req, TOKEN_HEADER);
    if (token === undefined) return undefined;
    try {
      return `token:${tokens.authenticate(token).token_id}`;
    } catch {
      return undefined;
    }
  };
}

/** The Host values a loopback listener answers to: its address, the other loopback spellings of it, and the configured names. */
export function tcpHosts(listen: { host: string; port: number }, configured: readonly string[] = []): Set<string> {
  const names = new Set(['localhost', '127.0.0.1', '[::1]', listen.host.includes(':') ? `[${listen.host}]` : listen.host]);
  const out = new Set<string>();
  for (const n of names) {
    out.add(`${n}:${listen.port}`);
    if (listen.port === 80) out.add(n);
  }
  for (const c of configured) out.add(c.toLowerCase());
  return out;
}

export async function listenUnix(app: FastifyInstance, path: string, mode: number): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true });
  await app.listen({ path });
  chmodSync(path, mode);
}

export function parseLoopbackAddress(spec: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(spec);
  const host = m?.[1]?.replace(/^\[|\]$/g, '');
  const port = Number(m?.[2]);
  const loopback = host === 'localhost' || (isIP(host ?? '') === 4 && host!.startsWith('127.')) || host === '::1';
  if (!m || !loopback || port < 1 || port > 65535) {
    throw new GateError('invalid_request', `--expose-http ${spec}: expected a loopback address and port such as 127.0.0.1:8080`);
  }
  return { host: host!, port };
}
