// The grant is checked again (signature, expiry, epoch, the action
// unchanged), then the intent is written and the grant consumed in one
// transaction: a replayed grant gets 409, a crash leaves an intent to find.
import { verifyGrantSignature } from '../grant.js';
import { immediate } from '../../ledger/db.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Execution } from '../execution.js';

/**
 * Never run a request twice when a previous run of it has an unknown outcome
 * (an identical request still being dispatched by a live gate is not one of
 * those): 409 previous_outcome_unknown. Checked where the intent is written,
 * and before anything is opened or started for the call (openCallHosts), so
 * an agent repeating such a request opens no connection and takes no worker.
 */
export function refuseUnknownOutcome(ctx: GateContext, requestHash: string, actionId: string, principal: string): void {
  const unknown = ctx.ledger.unfinishedIntent(requestHash, actionId, principal, (i) => ctx.instances.isRunning(i));
  if (unknown) {
    throw new GateError('previous_outcome_unknown', `this exact request already started (grant ${unknown.grant_id}, ${unknown.started_at}) and has no receipt; an operator must establish its outcome before it may run again (latchgate verify)`);
  }
}

export function recordIntent(ctx: GateContext, x: Execution): void {
  const grant = need(x, 'grant');
  const now = new Date();
  if (!verifyGrantSignature(ctx.keys, grant)) throw new GateError('internal_error', 'the grant signature does not verify: refusing to dispatch');
  if (grant.core.expires_at <= now.toISOString()) throw new GateError('invalid_request', 'the grant expired before dispatch');
  if (grant.revocation_epoch !== ctx.state.epoch) throw new GateError('lease_revoked', 'grants were revoked (latchgate revoke) after this one was issued');
  const current = ctx.registry.get(grant.core.action_id, grant.core.action_version);
  if (!current || current.action_digest !== grant.core.action_digest) {
    throw new GateError('action_digest_mismatch', `${grant.core.action_id}@${grant.core.action_version} changed after the grant was issued`);
  }
  refuseUnknownOutcome(ctx, grant.core.request_hash, grant.core.action_id, grant.subject.principal);
  const approvalId = x.approval?.id;
  const ok = immediate(ctx.db, () => {
    if (approvalId && !ctx.approvals.consumeInTransaction(approvalId)) return false;
    const wrote = ctx.ledger.consumeGrantAndWriteIntent({
      grant_id: grant.grant_id,
      trace_id: x.traceId,
      action_id: grant.core.action_id,
      principal: grant.subject.principal,
      provider_module_digest: grant.core.provider_module_digest,
      request_hash: grant.core.request_hash,
      ...(grant.approved_by ? { approved_by: grant.approved_by } : {}),
      started_at: now.toISOString(),
      instance_id: ctx.instances.id,
    });
    // The key is claimed with the intent, or not at all (a lost race rolls the debit and the intent back).
    if (wrote && x.idempotency) {
      ctx.idempotency.claim(x.idempotency, x.traceId, now);
      x.idempotencyClaimed = true;
    }
    return wrote;
  });
  if (!ok) throw new GateError('grant_consumed', `grant ${grant.grant_id} (or its approval) was already used: one grant, one execution`);
  // The debit stands once the intent does (they commit together): the event says so.
  const debit = need(x, 'debit');
  x.event.budgets_before = debit.before;
  x.event.budgets_after = debit.after;
  // From the intent on, this grant is in flight (not of unknown outcome) until its receipt.
  const running = ctx.instances.running;
  running.add(grant.grant_id);
  x.onEnd.push(() => running.delete(grant.grant_id));
}
