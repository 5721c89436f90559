// The atomic budget debit, and the Ed25519-signed grant binding plan, sender
// key, budget and approval. What the call was allowed on must still stand
// here, where it commits (src/gate/still-stands.ts: the lease, the policy data): a
// change that landed while the run waited refuses the call before anything
// is debited, signed or sent. The grant carries the lease's epoch, so
// recordIntent refuses it too should the epoch move before the intent is
// written.
import { callSubject, describeExhausted } from '../budget.js';
import { signGrant } from '../grant.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Execution } from '../execution.js';
import { stillStands } from '../still-stands.js';
import type { ExecutionGrant } from '../types.js';

export function reserveAndSignGrant(ctx: GateContext, x: Execution): void {
  const plan = need(x, 'plan');
  stillStands(ctx, x);
  // Every window the call counts against (lease and day; principal and action), in the pipeline's transaction.
  const debit = ctx.budgets.debit(callSubject(plan.session, plan.core.action_id), plan.cost);
  if (!debit.ok) {
    x.event.details = { budget_window: debit.exhausted };
    throw new GateError('budget_exhausted', describeExhausted(debit.exhausted), { budgets_before: debit.before, budget_window: debit.exhausted });
  }
  const grant: ExecutionGrant = {
    grant_id: need(x, 'providerRun').grantId,
    subject: { principal: plan.session.principal, session_id: plan.session.session_id },
    sender_binding: plan.session.jkt,
    core: plan.core,
    budget_reservation: {
      calls_before: debit.before.calls_remaining,
      calls_after: debit.after.calls_remaining,
      ...(debit.before.cost_remaining !== undefined ? { cost_before: debit.before.cost_remaining, cost_after: debit.after.cost_remaining } : {}),
    },
    ...(x.approval ? { approved_by: x.approval.approved_by, approval_hash: x.approval.approval_hash } : {}),
    issued_at: new Date().toISOString(),
    revocation_epoch: plan.session.lease_epoch,
  };
  x.grant = signGrant(ctx.keys, grant);
  x.debit = { before: { ...debit.before }, after: { ...debit.after }, taken: debit.taken, cost: plan.cost };
}

