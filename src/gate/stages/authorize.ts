// Stage 6: the plan (what exactly may run), the atomic budget debit, and the
// Ed25519-signed grant binding plan, sender key, budget and approval.
import { randomUUID } from 'node:crypto';
import { signGrant } from '../grant.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import type { ExecutionGrant, ExecutionPlanCore } from '../types.js';
import type { Admitted } from './admit.js';
import type { Session } from './authenticate.js';
import type { Decided } from './decide.js';
import type { Prechecked } from './precheck.js';

/** What an approval holds and a grant binds: the plan, and the request it was made for. */
export interface ExecutionPlan {
  core: ExecutionPlanCore;
  session: Session;
  request: unknown;
  cost: number;
}

export function buildPlan(ctx: GateContext, s: Session, a: Admitted, p: Prechecked, d: Decided, request: unknown, now = new Date()): ExecutionPlan {
  const m = a.action.manifest;
  return {
    core: {
      action_id: m.action_id,
      action_version: m.version,
      action_digest: a.action.action_digest,
      provider_module_digest: m.provider_module_digest,
      request_hash: a.request_hash,
      policy_version: d.decision.policy_version,
      approved_targets: p.targets,
      approved_secrets: m.secrets.map((x) => x.name),
      approved_egress: m.egress.profile,
      expires_at: new Date(now.getTime() + ctx.settings.grantTtlSeconds * 1000).toISOString(),
    },
    session: s,
    request,
    cost: m.cost ?? 0,
  };
}

export interface Authorized {
  grant: ExecutionGrant;
  budget_before: Record<string, number>;
  budget_after: Record<string, number>;
}

export function authorize(ctx: GateContext, plan: ExecutionPlan, approval?: { approved_by: string; approval_hash: string }, now = new Date()): Authorized {
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
    ...(approval ? { approved_by: approval.approved_by, approval_hash: approval.approval_hash } : {}),
    issued_at: now.toISOString(),
    revocation_epoch: ctx.state.epoch,
  };
  return { grant: signGrant(ctx.keys, grant), budget_before: { ...debit.before }, budget_after: { ...debit.after } };
}
