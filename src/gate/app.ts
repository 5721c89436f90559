// The gate's HTTP API (Fastify), one app used on the client socket, the admin
// socket, inside `latchgate sandbox` and on an optional TCP port. Routes only
// parse and reply; every decision is in the service (service.ts).
import type { Socket } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { GateError } from './errors.js';
import { idempotencyKeyOf } from './idempotency.js';
import { closingResponse, guardApp, peerOfSocket, requestTimeout, timeoutOptions } from './http-guards.js';
import type { PeerGuard } from './peer-limits.js';
import { timed, timing } from './stage-timing.js';
import { tuneJitForServing } from '../runtime/jit-flags.js';

/** The content type fastify gives a body it serializes itself. */
const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * No route declares a fastify schema: bodies are checked by the gate's own
 * validators (service.ts). Given explicitly, so fastify does not load ajv and
 * its serializer compiler into every gate for schemas that never come.
 */
const NO_ROUTE_SCHEMAS = {
  compilersFactory: {
    buildValidator: (): never => {
      throw new Error('internal: a gate route declared a fastify schema; the gate checks bodies with its own validators');
    },
    buildSerializer: (): never => {
      throw new Error('internal: a gate route declared a fastify response schema; the gate serializes its answers itself');
    },
  },
};

/** Who is calling, fixed by the transport (peer uid, the box), never by the client. */
export interface Caller {
  principal: string;
  scopes: string[];
  uid?: number;
  /** The peer process (Unix sockets), at the time it connected. */
  pid?: number;
  /** Set when the caller is a configured operator (admin socket only). */
  operator?: string;
  /** Why a caller of an operator's uid is not one (it runs inside a sandbox). */
  operatorRefusal?: string;
  /** The client token that identified a caller on the TCP listener (src/gate/tokens.ts). */
  token_id?: string;
  transport: 'unix' | 'box' | 'http';
  /** The peer the transport saw (AppOptions.peer): refusals are counted per peer. */
  peer?: string;
}

export interface RequestAuth {
  authorization?: string;
  dpop?: string;
  /** The Idempotency-Key header, checked (src/gate/idempotency.ts). */
  idempotencyKey?: string;
  method: string;
  /** Absolute URL the DPoP proof must name (public base URL + path). */
  url: string;
}

export interface GateService {
  readonly maxBodyBytes: number;
  readonly publicBaseUrl: string;
  /** Requests and connections per peer, and the timeouts (src/gate/peer-limits.ts). */
  readonly guard: PeerGuard;
  health(): Record<string, unknown>;
  ready(): Promise<{ status: 'ready' | 'degraded' | 'not_ready'; checks: Record<string, unknown> }>;
  issueLease(caller: Caller, body: unknown): Promise<Record<string, unknown>>;
  jwks(): Promise<Record<string, unknown>>;
  receiptKeys(): Record<string, unknown>;
  listActions(caller?: Caller): Record<string, unknown>[];
  getAction(id: string): Record<string, unknown>;
  requestSchema(id: string): Record<string, unknown>;
  execute(caller: Caller, actionId: string, body: unknown, auth: RequestAuth): Promise<{ status: number; body: Record<string, unknown>; text?: string }>;
  pollApproval(caller: Caller, id: string, auth: RequestAuth): Promise<Record<string, unknown>>;
  getReceipt(caller: Caller, id: string, auth: RequestAuth | null): Promise<Record<string, unknown>>;
  admin: AdminService;
  /** Every refused request leaves an audit event, counted per peer when repeated. */
  recordRefusal(caller: Caller | undefined, route: string, err: GateError, peer?: string): void;
}

export interface AdminService {
  approvals(q: { status?: string; limit?: number }): Record<string, unknown>[];
  approval(id: string): Record<string, unknown>;
  approve(caller: Caller, id: string, body: unknown): Promise<Record<string, unknown>>;
  deny(caller: Caller, id: string, body: unknown): Record<string, unknown>;
  auditEvents(q: Record<string, string | undefined>): Record<string, unknown>[];
  auditVerify(): Record<string, unknown>;
  revokeAll(caller: Caller): Record<string, unknown>;
  epoch(): Record<string, unknown>;
  drain(caller: Caller): Record<string, unknown>;
  reload(caller: Caller): Record<string, unknown>;
  secretsReload(caller: Caller): Promise<Record<string, unknown>>;
  receiptKeys(caller: Caller): Record<string, unknown>;
  policyShow(principal?: string): Record<string, unknown>;
  policyGrant(caller: Caller, body: unknown): Record<string, unknown>;
  policyRevoke(caller: Caller, body: unknown): Record<string, unknown>;
  policyAccept(caller: Caller): Record<string, unknown>;
  keysRotate(caller: Caller, body: unknown): Promise<Record<string, unknown>>;
  tokensCreate(caller: Caller, body: unknown): Record<string, unknown>;
  tokensList(): Record<string, unknown>[];
  tokensRevoke(caller: Caller, id: string): Record<string, unknown>;
}

export interface AppOptions {
  service: GateService;
  role: 'client' | 'admin';
  /** Resolves the caller from the connection; throws GateError when unknown. */
  identify(req: FastifyRequest): Caller;
  /** Identify the caller before every request, even those that need no identity (/healthz): the TCP listener, where identify also checks Host and Origin. */
  identifyEveryRequest?: boolean;
  /**
   * The peer of a connection, told by the transport alone (src/gate/transport.ts
   * unixPeer; one name for the box's socket or loopback HTTP): limits and
   * refusal counts are per peer. Throws when it cannot tell.
   */
  peer(socket: Socket): string;
  /** The peer a request proves, where peer() tells callers apart no better than by transport (src/gate/http-guards.ts GuardOptions.prove). */
  prove?(req: FastifyRequest): string | undefined;
}

const FASTIFY_ERRORS: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_json',
};

/** Fastify's own refusals the table above does not name, by their status. */
function fastifyError(err: FastifyError): GateError | undefined {
  const known = err.code ? FASTIFY_ERRORS[err.code] : undefined;
  if (known) return new GateError(known, err.message);
  if (!err.code?.startsWith('FST_') || !err.statusCode || err.statusCode < 400 || err.statusCode >= 500) return undefined;
  const code = err.statusCode === 404 ? 'route_not_found' : err.statusCode === 413 ? 'body_too_large' : err.statusCode === 415 ? 'unsupported_media_type' : 'invalid_request';
  return new GateError(code, err.message);
}

/** Headers that must appear once: Node keeps only the first Authorization and joins the values of the others, so a second one would pass unseen. */
const SINGLE_HEADERS = new Map([['host', 'Host'], ['authorization', 'Authorization'], ['dpop', 'DPoP'], ['latchgate-token', 'LatchGate-Token'], ['idempotency-key', 'Idempotency-Key']]);

/** The first of SINGLE_HEADERS the request carries more than once (names are case-insensitive). */
export function duplicatedHeader(rawHeaders: string[]): string | undefined {
  const seen = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (!SINGLE_HEADERS.has(name)) continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}

/** Refusals of a request no route matched are counted under one route, not one per URL a scanner tries. */
const UNROUTED = '(no route)';

export function buildGateApp(o: AppOptions): FastifyInstance {
  const s = o.service;
  const peerOf = (socket: Socket) => peerOfSocket(socket, o.peer);
  /** Records a refusal against the connection's peer (and the caller when the connection tells who). */
  const record = (socket: Socket, e: GateError, route: string) => {
    let who: Caller | undefined;
    try {
      who = o.identify({ raw: { socket } } as unknown as FastifyRequest);
    } catch {
      who = undefined;
    }
    try {
      s.recordRefusal(who, route, e, peerOf(socket));
    } catch {
      // the ledger itself is down: the status code still tells the client
    }
  };
  /** Records the refusal and answers in the gate's error format. */
  const refuse = (req: FastifyRequest, reply: FastifyReply, e: GateError, route: string) => {
    record(req.raw.socket, e, route);
    const retry = e.extra.retry_after_seconds;
    if (typeof retry === 'number') reply.header('retry-after', String(retry));
    return reply.code(e.status).send(e.body());
  };
  const routeOf = (req: FastifyRequest) => `${req.method} ${req.routeOptions?.url ?? UNROUTED}`;
  const app = Fastify({
    bodyLimit: s.maxBodyBytes,
    ...timeoutOptions(s.guard.limits),
    logger: false,
    return503OnClosing: true,
    forceCloseConnections: true,
    schemaController: NO_ROUTE_SCHEMAS,
    // A URL the router cannot decode never reaches a route or the error handler.
    frameworkErrors: (err, req, reply) => {
      refuse(req, reply, fastifyError(err) ?? new GateError('invalid_request', err.message), `${req.method} ${UNROUTED}`);
    },
    // Malformed HTTP (bad header bytes, a broken request line) fails before there is a request.
    // A request too slow to arrive (headersTimeout, requestTimeout) ends here too.
    clientErrorHandler: (err: Error & { code?: string }, socket: Socket) => {
      const e = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? requestTimeout(s.guard.limits)
        : err.code === 'HPE_HEADER_OVERFLOW' ? new GateError('body_too_large', 'the request headers are too large')
        : new GateError('invalid_request', `malformed HTTP request (${err.code ?? 'parse error'})`);
      // A connection reset by its client is no request to record.
      if (!socket.writable) return socket.destroy();
      record(socket, e, `- ${UNROUTED}`);
      socket.end(closingResponse(e));
    },
  });
  guardApp(app, { guard: s.guard, peer: o.peer, prove: o.prove, record: (socket, _peer, e) => record(socket, e, '- (connection)') });

  // JSON only: anything else is refused before a route sees it.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: s.maxBodyBytes }, (_req, text, done) => {
    try {
      done(null, text === '' ? undefined : JSON.parse(text as string));
    } catch {
      done(new GateError('malformed_json', 'the body is not valid JSON'), undefined);
    }
  });

  app.addHook('onRequest', async (req) => {
    // This process serves the gate: from its first request on, its code is optimized sooner
    // (src/runtime/jit-flags.ts); a box whose agent never calls the gate does not pay for it.
    tuneJitForServing();
    // The gate is no proxy: a target in absolute form (`GET http://other/...`) names an authority the Host check never saw.
    if (!req.raw.url?.startsWith('/')) throw new GateError('invalid_request', 'the request target must be a path (origin form, RFC 9112 section 3.2.1), not an absolute URL or *');
    const dup = duplicatedHeader(req.raw.rawHeaders);
    if (dup) throw new GateError('duplicate_header', `the request carries more than one ${SINGLE_HEADERS.get(dup)} header`);
    if (o.identifyEveryRequest) o.identify(req);
  });

  const caller = (req: FastifyRequest): Caller => ({ ...o.identify(req), peer: peerOf(req.raw.socket) });
  const auth = (req: FastifyRequest): RequestAuth => ({
    authorization: req.headers.authorization,
    dpop: typeof req.headers.dpop === 'string' ? req.headers.dpop : undefined,
    idempotencyKey: idempotencyKeyOf(req.headers['idempotency-key']),
    method: req.method,
    url: s.publicBaseUrl.replace(/\/$/, '') + req.url,
  });
  const operator = (req: FastifyRequest): Caller => {
    const c = caller(req);
    if (!c.operator) throw new GateError('operator_required', c.operatorRefusal ?? `uid ${c.uid ?? '?'} is not an operator; add it under [operators.<name>] in latchgate.toml`);
    return c;
  };
  type P = { Params: { id: string }; Querystring: Record<string, string | undefined> };

  app.get('/healthz', async () => s.health());
  app.get('/readyz', async (_req, reply) => {
    const r = await s.ready();
    return reply.code(r.status === 'not_ready' ? 503 : 200).send(r);
  });
  app.post('/v1/leases', async (req, reply) => reply.code(201).send(await s.issueLease(caller(req), req.body)));
  app.get('/.well-known/jwks.json', async () => s.jwks());
  // The receipt key history (current and retired keys, their dates and endorsements): anyone holding a receipt checks it with these.
  app.get('/.well-known/latchgate-receipt-keys.json', async () => s.receiptKeys());
  app.get('/v1/actions', async (req) => ({ actions: s.listActions(caller(req)) }));
  app.get<P>('/v1/actions/:id', async (req) => (caller(req), s.getAction(req.params.id)));
  app.get<P>('/v1/actions/:id/schema/request', async (req) => (caller(req), s.requestSchema(req.params.id)));
  app.post<P>('/v1/actions/:id/execute', async (req, reply) => {
    const r = await s.execute(caller(req), req.params.id, req.body, auth(req));
    const writing = timing();
    const traceId = writing === undefined ? undefined : (r.body as { trace_id?: unknown } | undefined)?.trace_id;
    if (typeof traceId === 'string') reply.raw.once('finish', () => timed(traceId, 'the answer written', writing));
    // The same bytes fastify's serializer makes of the body, made while the evidence was synced.
    return r.text === undefined ? reply.code(r.status).send(r.body) : reply.code(r.status).type(JSON_TYPE).send(r.text);
  });
  app.get<P>('/v1/approvals/:id/poll', async (req) => s.pollApproval(caller(req), req.params.id, auth(req)));
  app.get<P>('/v1/receipts/:id', async (req) => {
    if (o.role === 'admin') return s.getReceipt(operator(req), req.params.id, null);
    return s.getReceipt(caller(req), req.params.id, auth(req));
  });
  // Receipt public keys, for clients that verify their receipts (an operator's read is recorded, below).
  if (o.role === 'client') app.get('/v1/receipt-keys', async (req) => (caller(req), s.receiptKeys()));

  if (o.role === 'admin') {
    const a = s.admin;
    app.get<P>('/v1/approvals', async (req) => (operator(req), { approvals: a.approvals({ status: req.query.status, limit: req.query.limit ? Number(req.query.limit) : undefined }) }));
    app.get<P>('/v1/approvals/:id', async (req) => (operator(req), a.approval(req.params.id)));
    app.post<P>('/v1/approvals/:id/approve', async (req) => a.approve(operator(req), req.params.id, req.body ?? {}));
    app.post<P>('/v1/approvals/:id/deny', async (req) => a.deny(operator(req), req.params.id, req.body ?? {}));
    app.get<P>('/v1/audit/events', async (req) => (operator(req), { events: a.auditEvents(req.query) }));
    app.get('/v1/audit/verify', async (req) => (operator(req), a.auditVerify()));
    app.post('/v1/admin/revoke-all', async (req) => a.revokeAll(operator(req)));
    app.get('/v1/admin/epoch', async (req) => (operator(req), a.epoch()));
    app.post('/v1/admin/drain', async (req) => a.drain(operator(req)));
    app.post('/v1/admin/reload', async (req) => a.reload(operator(req)));
    app.post('/v1/admin/secrets/reload', async (req) => a.secretsReload(operator(req)));
    app.get('/v1/receipt-keys', async (req) => a.receiptKeys(operator(req)));
    app.post('/v1/admin/keys/rotate', async (req) => a.keysRotate(operator(req), req.body ?? {}));
    app.get<P>('/v1/admin/policy', async (req) => (operator(req), a.policyShow(req.query.principal)));
    app.post('/v1/admin/policy/grant', async (req) => a.policyGrant(operator(req), req.body));
    app.post('/v1/admin/policy/revoke', async (req) => a.policyRevoke(operator(req), req.body));
    app.get('/v1/admin/tokens', async (req) => (operator(req), { tokens: a.tokensList() }));
    app.post('/v1/admin/tokens', async (req, reply) => reply.code(201).send(a.tokensCreate(operator(req), req.body)));
    app.post<P>('/v1/admin/tokens/:id/revoke', async (req) => a.tokensRevoke(operator(req), req.params.id));
    app.post('/v1/admin/policy/accept', async (req) => a.policyAccept(operator(req)));
  }

  app.setNotFoundHandler((req, reply) => {
    refuse(req, reply, new GateError('route_not_found', `no route ${req.method} ${req.url}`), `${req.method} ${UNROUTED}`);
  });
  app.setErrorHandler((err, req, reply) => {
    const e = err instanceof GateError ? err
      : fastifyError(err as FastifyError)
      // the client hung up mid-body: its refusal, not a fault of the gate
      ?? ((err as FastifyError).code === 'ECONNRESET' ? new GateError('invalid_request', 'the connection closed before the body was complete') : new GateError('internal_error', 'internal error'));
    if (e.code === 'internal_error') process.stderr.write(`latchgate gate: ${(err as Error).stack ?? String(err)}\n`);
    return refuse(req, reply, e, routeOf(req));
  });
  return app;
}
