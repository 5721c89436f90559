// What the call was allowed on must still stand where it commits (the debit,
// the grant and the intent, in reserveAndSignGrant's transaction): the run
// may have waited since the request was authenticated and decided (the
// policy engine, a provider's first compile, the connection opened ahead,
// an approval), and what an operator changed meanwhile applies to it.
//   - The lease: not revoked (the epoch), not expired, and its client token
//     (if it came through one) neither revoked nor expired.
//   - The policy data the decision was made on is still the gate's: a grant
//     taken from the principal, say, refuses the call (409 policy_changed,
//     nothing done; called again, it is decided under the current policy).
//     An approved plan was decided by its operator, and is not refused for this.
import { leaseRefusal } from './approvals.js';
import type { GateContext } from './context.js';
import { GateError } from './errors.js';
import { need, type Execution } from './execution.js';
import { leaseProblem } from './lease-standing.js';

export function stillStands(ctx: GateContext, x: Execution): void {
  const plan = need(x, 'plan');
  const now = new Date();
  if (x.approval) {
    const r = leaseRefusal(plan, ctx.state.epoch, now, ctx.tokens);
    if (r) throw new GateError(r.code, `approval ${x.approval.id}: ${r.message}; nothing was done`);
    return;
  }
  const p = leaseProblem(plan.session, ctx.state.epoch, now, ctx.tokens, 'the lease this call was made under');
  if (p) throw new GateError(p.cause === 'lease_unknown' ? 'lease_revoked' : p.cause, `${p.message}; nothing was done: request a new lease and call again`);
  if (ctx.policyData.data() !== need(x, 'decided').data) {
    throw new GateError('policy_changed', `the policy changed while this call of ${plan.core.action_id} was being prepared; nothing was done: call again to have it decided under the current policy`);
  }
}
