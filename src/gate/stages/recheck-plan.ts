// What may have changed since the plan was made. Manifests may be reloaded
// while the policy decides: the plan's action must still be the registry's.
// An approved plan also waited for a human, and comes back from storage:
// its template is expanded again (the expanded call is not stored) and its
// request must still hash to what the plan says, and the lease it was
// requested under must still stand (not revoked, not expired): checked here,
// not only when the operator approves, as another process may revoke between.
import { canonicalHash } from '../../crypto/jcs.js';
import { leaseRefusal } from '../approvals.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Execution } from '../execution.js';
import { precheck } from './precheck-targets.js';

export function recheckPlan(ctx: GateContext, x: Execution): void {
  const plan = need(x, 'plan');
  if (x.approval) {
    const r = leaseRefusal(plan, ctx.state.epoch, new Date(), ctx.tokens);
    if (r) {
      ctx.approvals.revoke(x.approval.id, r.message);
      throw new GateError(r.code, `approval ${x.approval.id}: ${r.message}`);
    }
  }
  const action = ctx.registry.get(plan.core.action_id, plan.core.action_version);
  if (!action || action.action_digest !== plan.core.action_digest) {
    throw new GateError('action_digest_mismatch', `${plan.core.action_id}@${plan.core.action_version} changed since the plan was made`);
  }
  x.action = action;
  if (!x.approval) return;
  x.pre = precheck(action, plan.request);
  if (canonicalHash(plan.request) !== plan.core.request_hash) throw new GateError('approval_mismatch', 'the stored request does not match its hash');
}
