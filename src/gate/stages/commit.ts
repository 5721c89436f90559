// Stage 7: the grant is checked again (signature, expiry, epoch, the action
// unchanged), then the intent is written and the grant consumed in one
// transaction: a replayed grant gets 409, a crash leaves an intent to find.
import { verifyGrantSignature } from '../grant.js';
import { immediate } from '../../ledger/db.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import type { ExecutionGrant } from '../types.js';

export function commitIntent(ctx: GateContext, grant: ExecutionGrant, traceId: string, approvalId?: string, now = new Date()): void {
  if (!verifyGrantSignature(ctx.keys, grant)) throw new GateError('internal_error', 'the grant signature does not verify: refusing to dispatch');
  if (grant.core.expires_at <= now.toISOString()) throw new GateError('invalid_request', 'the grant expired before dispatch');
  if (grant.revocation_epoch !== ctx.state.epoch) throw new GateError('lease_revoked', 'grants were revoked (latchgate revoke) after this one was issued');
  const current = ctx.registry.get(grant.core.action_id, grant.core.action_version);
  if (!current || current.action_digest !== grant.core.action_digest) {
    throw new GateError('action_digest_mismatch', `${grant.core.action_id}@${grant.core.action_version} changed after the grant was issued`);
  }
  // Never run a request twice when a previous run of it has an unknown outcome.
  // (An identical request still being dispatched by a live gate is not one of those.)
  const unknown = ctx.ledger.unfinishedIntent(grant.core.request_hash, grant.core.action_id, grant.subject.principal, (i) => ctx.instances.isRunning(i));
  if (unknown) {
    throw new GateError('previous_outcome_unknown', `this exact request already started (grant ${unknown.grant_id}, ${unknown.started_at}) and has no receipt; an operator must establish its outcome before it may run again (latchgate verify)`);
  }
  const ok = immediate(ctx.db, () => {
    if (approvalId && !ctx.approvals.consumeInTransaction(approvalId)) return false;
    return ctx.ledger.consumeGrantAndWriteIntent({
      grant_id: grant.grant_id,
      trace_id: traceId,
      action_id: grant.core.action_id,
      principal: grant.subject.principal,
      provider_module_digest: grant.core.provider_module_digest,
      request_hash: grant.core.request_hash,
      ...(grant.approved_by ? { approved_by: grant.approved_by } : {}),
      started_at: now.toISOString(),
      instance_id: ctx.instances.id,
    });
  });
  if (!ok) throw new GateError('grant_consumed', `grant ${grant.grant_id} (or its approval) was already used: one grant, one execution`);
}

/** The intent is the evidence that survives a crash during dispatch: on disk before the provider runs. */
export async function makeIntentDurable(ctx: GateContext): Promise<void> {
  try {
    await ctx.wal.sync();
  } catch (e) {
    throw new GateError('store_unavailable', `the intent could not be made durable (${(e as Error).message}); nothing was dispatched`);
  }
}
