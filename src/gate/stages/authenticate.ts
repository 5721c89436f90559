// Drain guard, lease + DPoP, and the binding of the lease to the caller the
// transport identified (a lease is never usable by another principal, nor
// through another client token).
import type { Caller, RequestAuth } from '../app.js';
import { AuthError } from '../auth/errors.js';
import { verifyRequest } from '../auth/dpop.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Execution, type Session } from '../execution.js';

export async function authenticate(ctx: GateContext, x: Execution): Promise<void> {
  const caller = need(x, 'caller');
  const s = await verifySession(ctx, caller, need(x, 'auth'));
  x.session = s;
  x.event.subject = { principal: s.principal, session_id: s.session_id, lease_jti: s.lease_jti, identity_method: caller.transport };
}

/** The session a signed request belongs to (also for polls and receipt reads). */
export async function verifySession(ctx: GateContext, caller: Caller, auth: RequestAuth): Promise<Session> {
  if (ctx.state.draining) throw new GateError('draining', 'the gate is draining: no new executions; retry on another instance or after restart');
  let v;
  try {
    v = await verifyRequest(
      { authorization: auth.authorization, dpop: auth.dpop, method: auth.method, url: auth.url },
      { keys: ctx.keys, replay: ctx.replay, currentEpoch: ctx.state.epoch, mayUse: (lease) => mayUse(caller, lease) },
    );
  } catch (e) {
    if (e instanceof AuthError) throw new GateError(e.code, e.message);
    throw e;
  }
  return { principal: v.principal, session_id: v.session_id, lease_jti: v.lease_jti, scopes: v.scopes, jkt: v.jkt, lease_epoch: v.lease_epoch, lease_expires_at: v.lease_expires_at, ...(v.token_id ? { token_id: v.token_id } : {}) };
}

/** The lease belongs to the caller the transport identified, and to the client token it came with. */
function mayUse(caller: Caller, lease: { principal: string; token_id?: string }): void {
  if (lease.principal !== caller.principal) {
    throw new GateError('identity_forbidden', `this lease was issued to ${lease.principal}, not to the caller ${caller.principal}`);
  }
  // A lease issued through a client token is used with that token only (and
  // dies with it); one issued to a peer uid or a box is never used over TCP.
  if (lease.token_id !== caller.token_id) {
    throw new GateError('identity_forbidden', lease.token_id ? `this lease was issued through client token ${lease.token_id}; send that token with it` : 'this lease was not issued through a client token; request a lease with your own token');
  }
}
