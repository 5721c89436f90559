// The atomic budget debit, and the Ed25519-signed grant binding plan, sender
// key, budget and approval. The lease the plan was made under must still
// stand here, where the call commits: a revocation (or the lease's or its
// token's end) that landed while the run waited (the policy engine, a
// provider's first compile, the connection opened ahead) refuses the call
// before anything is debited, signed or sent. The grant carries the lease's
// epoch, so recordIntent refuses it too should the epoch move before the
// intent is written.
import { callSubject, describeExhausted } from '../budget.js';
import { signGrant } from '../grant.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { leaseRefusal } from '../approvals.js';
import { leaseProblem } from '../lease-standing.js';
import { need, type Execution } from '../execution.js';
import type { ExecutionGrant } from '../types.js';

export function reserveAndSignGrant(ctx: GateContext, x: Execution): void {
  const plan = need(x, 'plan');
  leaseStands(ctx, x);
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

/** The lease still stands now (see the header); a GateError naming what ended it otherwise. */
function leaseStands(ctx: GateContext, x: Execution): void {
  const plan = need(x, 'plan');
  const now = new Date();
  if (x.approval) {
    const r = leaseRefusal(plan, ctx.state.epoch, now, ctx.tokens);
    if (r) throw new GateError(r.code, `approval ${x.approval.id}: ${r.message}; nothing was done`);
    return;
  }
  const p = leaseProblem(plan.session, ctx.state.epoch, now, ctx.tokens, 'the lease this call was made under');
  if (p) throw new GateError(p.cause === 'lease_unknown' ? 'lease_revoked' : p.cause, `${p.message}; nothing was done: request a new lease and call again`);
}
