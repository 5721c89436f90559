// A request with an Idempotency-Key that this principal already used for the
// same request gets that request's stored answer (marked idempotent_replay),
// and nothing runs again; the key used for another request is refused. A new
// key is claimed later, with the intent or the approval hold
// (src/gate/idempotency.ts).
import { appendEvent } from '../audit.js';
import type { GateContext } from '../context.js';
import { need, type Execution } from '../execution.js';

export function replayIdempotent(ctx: GateContext, x: Execution): void {
  const key = x.auth?.idempotencyKey;
  if (key === undefined) return;
  const session = need(x, 'session');
  // A key is its caller's: the principal, and the client token when the lease came through one.
  const owner = session.token_id === undefined ? session.principal : `${session.principal} token:${session.token_id}`;
  const keyed = { principal: owner, key, action_id: need(x, 'action').manifest.action_id, request_hash: need(x, 'requestHash') };
  const stored = ctx.idempotency.lookup(keyed);
  if (!stored) {
    x.idempotency = keyed;
    return;
  }
  const first = typeof stored.body.trace_id === 'string' ? stored.body.trace_id : '';
  appendEvent(ctx, { event_type: 'idempotent_replay', decision: 'allow', subject: x.event.subject, action: x.event.action, request: x.event.request, trace_id: x.traceId, details: { idempotency_key: key, first_trace_id: first, status: stored.status } });
  x.reply = { status: stored.status, body: { ...stored.body, idempotent_replay: true } };
}
