// The atomic budget debit, and the Ed25519-signed grant binding plan, sender
// key, budget and approval.
import { randomUUID } from 'node:crypto';
import { signGrant } from '../grant.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Execution } from '../execution.js';
import type { ExecutionGrant } from '../types.js';

export function reserveAndSignGrant(ctx: GateContext, x: Execution): void {
  const plan = need(x, 'plan');
  const debit = ctx.budgets.debit(plan.session.session_id, plan.cost);
  if (!debit.ok) {
    throw new GateError('budget_exhausted', debit.reason === 'calls' ? 'the session has no calls left in its budget' : `the session's cost budget cannot cover ${plan.cost}`, {
      budgets_before: debit.before,
    });
  }
  const grant: ExecutionGrant = {
    grant_id: randomUUID(),
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
    revocation_epoch: ctx.state.epoch,
  };
  x.grant = signGrant(ctx.keys, grant);
  x.debit = { before: { ...debit.before }, after: { ...debit.after } };
}
