// Where the gate listens and who is calling: Unix sockets identify the peer
// by SO_PEERCRED (never by anything the client says); the box's own socket
// has its principal fixed by the launcher; TCP is opt-in and loopback only.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { loadAddon } from '../native/addon.js';
import type { Caller } from './app.js';
import { GateError } from './errors.js';

export interface IdentityMap {
  principals: Map<number, { name: string; scopes: string[] }>;
  operators: Map<number, string>;
}

function socketPeerUid(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) return undefined;
  const c = loadAddon().peerCred(fd);
  return typeof c === 'number' ? undefined : c.uid;
}

function peerUid(req: FastifyRequest): number | undefined {
  return socketPeerUid(req.raw.socket);
}

/** The peer of a Unix socket connection, for the per-peer limits and counts: its uid (SO_PEERCRED). */
export function unixPeer(socket: Socket): string {
  const uid = socketPeerUid(socket);
  if (uid === undefined) throw new GateError('identity_unauthenticated', 'the peer of this connection cannot be identified');
  return `uid:${uid}`;
}

/** Callers on a Unix socket: mapped from the peer's uid. */
export function unixIdentity(map: IdentityMap): (req: FastifyRequest) => Caller {
  return (req) => {
    const uid = peerUid(req);
    if (uid === undefined) throw new GateError('identity_unauthenticated', 'the peer of this connection cannot be identified');
    const p = map.principals.get(uid);
    const operator = map.operators.get(uid);
    if (!p && !operator) throw new GateError('identity_unauthenticated', `uid ${uid} is not a known principal; map it under [identity.principals.${uid}] in latchgate.toml`);
    return { principal: p?.name ?? `operator:${operator}`, scopes: p?.scopes ?? [], uid, operator, transport: 'unix' };
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
