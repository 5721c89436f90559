// Stage 1: drain guard, lease + DPoP, and the binding of the lease to the
// caller the transport identified (a lease is never usable by another principal).
import type { Caller, RequestAuth } from '../app.js';
import { AuthError } from '../auth/errors.js';
import { verifyRequest } from '../auth/dpop.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';

export interface Session {
  principal: string;
  session_id: string;
  lease_jti: string;
  scopes: string[];
  jkt: string;
}

export async function authenticate(ctx: GateContext, caller: Caller, auth: RequestAuth): Promise<Session> {
  if (ctx.state.draining) throw new GateError('draining', 'the gate is draining: no new executions; retry on another instance or after restart');
  let v;
  try {
    v = await verifyRequest(
      { authorization: auth.authorization, dpop: auth.dpop, method: auth.method, url: auth.url },
      { keys: ctx.keys, replay: ctx.replay, currentEpoch: ctx.state.epoch },
    );
  } catch (e) {
    if (e instanceof AuthError) throw new GateError(e.code, e.message);
    throw e;
  }
  if (v.principal !== caller.principal) {
    throw new GateError('identity_forbidden', `this lease was issued to ${v.principal}, not to the caller ${caller.principal}`);
  }
  return { principal: v.principal, session_id: v.session_id, lease_jti: v.lease_jti, scopes: v.scopes, jkt: v.jkt };
}
