// Approval hold (HTTP 202): a decision that needs a human stores the plan and
// the execution's event so far, and the run ends. When an operator approves,
// the pipeline resumes after this stage on the Execution rebuilt here from
// what was stored.
import { randomUUID } from 'node:crypto';
import type { Approval, HeldEvent } from '../approvals.js';
import { immediate } from '../../ledger/db.js';
import { appendEvent } from '../audit.js';
import type { GateContext } from '../context.js';
import { need, type Execution, type ExecutionPlan } from '../execution.js';

export function holdForApproval(ctx: GateContext, x: Execution): void {
  if (!need(x, 'decided').decision.requires_approval) return;
  const plan = need(x, 'plan');
  const s = need(x, 'session');
  // The plan must outlive the wait for a human.
  const expires_at = new Date(Date.parse(plan.core.expires_at) + ctx.approvals.ttlSeconds * 1000).toISOString();
  const { subject, action, request, policy } = x.event;
  const caller = need(x, 'caller');
  // With an Idempotency-Key, the key is claimed with the hold: its answer is this 202, so a retry gets the same approval.
  const a = immediate(ctx.db, () => {
    if (x.idempotency) {
      ctx.idempotency.claim(x.idempotency, x.traceId);
      x.idempotencyClaimed = true;
    }
    return ctx.approvals.create({
      action_id: plan.core.action_id,
      principal: s.principal,
      session_id: s.session_id,
      request_hash: plan.core.request_hash,
      plan: { ...plan, core: { ...plan.core, expires_at } },
      event: { subject, action, request, policy },
      requester: { transport: caller.transport, ...(caller.uid !== undefined ? { uid: caller.uid } : {}) },
    });
  });
  appendEvent(ctx, { ...x.event, decision: 'pending_approval', approval: { approval_id: a.approval_id, plan_hash: a.plan_hash } });
  x.reply = { status: 202, body: { decision: 'pending_approval', approval_id: a.approval_id, request_hash: plan.core.request_hash, trace_id: x.traceId, expires_at: a.expires_at } };
}

/** The Execution an approval resumes, in a new trace: its stored plan, and the held event with the operator's approval. */
export function approvedExecution(ctx: GateContext, a: Approval, operator: string): Execution {
  const plan = a.plan as ExecutionPlan;
  const held = ctx.approvals.heldEvent(a.approval_id) ?? planEvent(plan);
  const traceId = randomUUID();
  // Not a decision of its own (the held event is): it does not repeat the decision's input.
  const { input: _decided, ...policy } = held.policy ?? {};
  return {
    traceId,
    actionId: plan.core.action_id,
    request: plan.request,
    onEnd: [],
    session: plan.session,
    plan,
    approval: { id: a.approval_id, approved_by: operator, approval_hash: a.approval_hash! },
    event: {
      event_type: 'action_call',
      trace_id: traceId,
      ...held,
      policy: { ...policy, decision: 'allow' },
      approval: { approval_id: a.approval_id, approved_by: operator },
    },
  };
}

/** The held event of an approval stored before approvals kept one: what its plan says. */
function planEvent(plan: ExecutionPlan): HeldEvent {
  const { session: s, core: c } = plan;
  return {
    subject: { principal: s.principal, session_id: s.session_id, lease_jti: s.lease_jti },
    action: { action_id: c.action_id, action_version: c.action_version, action_digest: c.action_digest },
    request: { request_hash: c.request_hash },
    policy: { policy_version: c.policy_version },
  };
}
