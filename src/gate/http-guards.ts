// What keeps one peer's flood or slow connections from starving the gate's
// other callers, on the HTTP server of one app (src/gate/app.ts):
//   - timeouts: the headers and the whole request must arrive in time (Node's
//     headersTimeout and requestTimeout; the answer is never timed, so a long
//     execution runs on once its body is in), a kept-alive connection waits
//     so long for its next request, and a connection silent while no request
//     of it is being worked on is closed;
//   - connections per peer (src/gate/peer-limits.ts ConnectionCount),
//     counted as they are accepted: one over the cap is answered 429
//     `too_many_connections` and closed at once, before HTTP reads from it;
//   - requests per peer (RequestRate): past the rate, 429 `rate_limited` with
//     Retry-After, before anything else runs;
//   - one request at a time per connection: a request that arrives while
//     another of its connection is being answered (HTTP pipelining, which
//     no client of the gate needs) closes the connection at once, unread;
//     otherwise one read of a socket could hand the parser thousands of
//     requests, all worked on before anyone else is served; a connection
//     refused for its rate is closed as well (it comes back through accept);
//   - on a transport whose connections all look alike (the loopback TCP
//     port), a request that proves who sent it (a valid client token) moves
//     its connection to that caller's own count and bucket (`prove`); the
//     connections that proved nothing share one pool, and a new connection
//     past its cap pushes out the oldest of them that is not being served,
//     so holding unfinished connections cannot lock the proven callers out.
// Every refusal here is recorded like any other (counted per peer,
// src/ledger/coalesce.ts).
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GateError } from './errors.js';
import type { PeerGuard, PeerLimitSettings } from './peer-limits.js';

/** The Fastify options that set the timeouts. */
export function timeoutOptions(l: PeerLimitSettings) {
  return {
    connectionTimeout: l.idleTimeoutMs,
    keepAliveTimeout: l.keepAliveTimeoutMs,
    requestTimeout: l.requestTimeoutMs,
    // Node looks for expired requests every connectionsCheckingInterval (30 s by default).
    http: { headersTimeout: l.headersTimeoutMs, requestTimeout: l.requestTimeoutMs, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(l.headersTimeoutMs / 4))) },
  };
}

/** The refusal Node's ERR_HTTP_REQUEST_TIMEOUT stands for. */
export function requestTimeout(l: PeerLimitSettings): GateError {
  return new GateError('request_timeout', `the request did not arrive in time: its headers are due within ${l.headersTimeoutMs} ms and all of it within ${l.requestTimeoutMs} ms of its start ([gate] headers_timeout_ms, request_timeout_ms in latchgate.toml)`);
}

/** A whole HTTP response that closes the connection, for refusals made before Fastify has a request. */
export function closingResponse(e: GateError): string {
  const body = JSON.stringify(e.body());
  const retry = typeof e.extra.retry_after_seconds === 'number' ? `Retry-After: ${e.extra.retry_after_seconds}\r\n` : '';
  return `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${retry}Connection: close\r\n\r\n${body}`;
}

/**
 * For an app whose server never listens, fed connections by another server
 * (the box's socket, src/sandbox/box-gate.ts): Node checks headersTimeout and
 * requestTimeout only once its server has emitted 'listening'.
 */
export function timeUnlistenedServer(app: FastifyInstance): void {
  if (!app.server.listening) app.server.emit('listening');
}

export interface GuardOptions {
  guard: PeerGuard;
  /** The connection's peer as the transport sees it (throws when it cannot tell). */
  peer(socket: Socket): string;
  /** Records a refusal made here (the request, when there is one, is not yet routed). */
  record(socket: Socket, peer: string, e: GateError): void;
  /**
   * The peer a request proves it comes from, more precise than its
   * connection's (a client token's id), or undefined when it proves nothing.
   * Only for transports whose peer() cannot tell callers apart.
   */
  prove?(req: FastifyRequest): string | undefined;
}

const UNTOLD = 'unidentified';

/** The peer of every connection the guarded apps accepted (the one it proved, once it did). */
const peers = new WeakMap<Socket, string>();
/** Connections counted in PeerGuard.connections (against their entry in peers). */
const counted = new WeakSet<Socket>();

/** The peer a connection was counted against (computed now for one the guard did not see). */
export function peerOfSocket(socket: Socket, peer: (s: Socket) => string): string {
  let p = peers.get(socket);
  if (p === undefined) {
    try {
      p = peer(socket);
    } catch {
      p = UNTOLD;
    }
    peers.set(socket, p);
  }
  return p;
}

export function guardApp(app: FastifyInstance, o: GuardOptions): void {
  const { guard } = o;
  const { limits } = guard;
  // Requests being worked on, by connection: their silence is the gate's, not the client's.
  const working = new WeakMap<Socket, ServerResponse>();
  /** Connections that have proved nothing yet, oldest first (only where requests can prove a peer). */
  const unproven = new Set<Socket>();
  const overCap = (socket: Socket, peer: string) => {
    const e = new GateError('too_many_connections', `${peer} already holds ${limits.maxConnectionsPerPeer} connections to the gate: close some (or reuse them), or raise [gate] max_connections_per_peer in latchgate.toml`, { retry_after_seconds: 1 });
    try {
      o.record(socket, peer, e);
    } catch {
      // the ledger itself is down: the answer still tells the client
    }
    // A short write to a fresh socket goes out at once; then nothing more is read.
    if (socket.writable) socket.write(closingResponse(e));
    socket.destroy();
  };
  /** Makes room in the pool of unproven connections: the oldest one no request of which is being served goes. */
  const pushOutOldest = (): boolean => {
    for (const old of unproven) {
      if (working.has(old)) continue;
      unproven.delete(old);
      // Released now: 'close' comes on a later tick, and finds it no longer counted.
      if (counted.delete(old)) guard.connections.release(peers.get(old) ?? UNTOLD);
      old.destroy();
      return true;
    }
    return false;
  };

  // Before the HTTP server's own listener: an over-cap connection is closed before anything reads it.
  app.server.prependListener('connection', (socket: Socket) => {
    const peer = peerOfSocket(socket, o.peer);
    // The count released on close is the one the connection is in then (prove() may have moved it).
    socket.once('close', () => {
      unproven.delete(socket);
      if (counted.delete(socket)) guard.connections.release(peers.get(socket) ?? peer);
    });
    if (!guard.connections.admit(peer)) {
      if (!(o.prove && pushOutOldest() && guard.connections.admit(peer))) return overCap(socket, peer);
    }
    counted.add(socket);
    if (o.prove) unproven.add(socket);
  });

  /** Moves a connection to the peer its request proved, counted there; false when that peer is at its cap. */
  const moveTo = (socket: Socket, proven: string): boolean => {
    const from = peers.get(socket);
    if (from === proven) return true;
    if (!guard.connections.admit(proven)) return false;
    if (from !== undefined && counted.has(socket)) guard.connections.release(from);
    counted.add(socket);
    peers.set(socket, proven);
    unproven.delete(socket);
    return true;
  };
  app.server.on('timeout', (socket: Socket) => {
    const res = working.get(socket);
    if (res && !res.headersSent) return;
    socket.destroy();
  });

  app.addHook('onRequest', async (req: FastifyRequest, reply) => {
    const socket = req.raw.socket;
    if (working.get(socket)?.writableEnded === false) {
      // Pipelined: the request before it is still being answered. Nothing more is read from this connection.
      socket.destroy();
      return reply.hijack();
    }
    working.set(socket, reply.raw);
    const proven = o.prove?.(req);
    if (proven !== undefined && !moveTo(socket, proven)) {
      reply.header('connection', 'close');
      throw new GateError('too_many_connections', `${proven} already holds ${limits.maxConnectionsPerPeer} connections to the gate: close some (or reuse them), or raise [gate] max_connections_per_peer in latchgate.toml`, { retry_after_seconds: 1 });
    }
    const peer = peerOfSocket(socket, o.peer);
    const wait = guard.rate.take(peer);
    if (wait > 0) {
      reply.header('connection', 'close');
      throw new GateError('rate_limited', `${peer} made more than ${limits.requestBurst} requests at once or ${limits.requestsPerSecond} a second: retry after ${wait} s, or raise [gate] requests_per_second or request_burst in latchgate.toml`, { retry_after_seconds: wait });
    }
  });
  app.addHook('onResponse', async (req) => {
    working.delete(req.raw.socket);
  });
}
