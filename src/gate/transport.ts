// Where the gate listens and who is calling: Unix sockets identify the peer
// by SO_PEERCRED (never by anything the client says); the box's own socket
// has its principal fixed by the launcher; TCP is opt-in and loopback only.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import { loadAddon } from '../native/addon.js';
import type { Caller } from './app.js';
import { GateError } from './errors.js';
import { nestedNamespace } from './peer-namespace.js';

export interface IdentityMap {
  principals: Map<number, { name: string; scopes: string[] }>;
  operators: Map<number, string>;
}

function peer(req: FastifyRequest): { uid: number; pid: number } | undefined {
  const fd = (req.raw.socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) return undefined;
  const c = loadAddon().peerCred(fd);
  return typeof c === 'number' ? undefined : c;
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
    const cred = peer(req);
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

/** --expose-http: loopback TCP callers act as the given principal. */
export function httpIdentity(principal: { name: string; scopes: string[] }): () => Caller {
  return () => ({ principal: principal.name, scopes: principal.scopes, transport: 'http' });
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
