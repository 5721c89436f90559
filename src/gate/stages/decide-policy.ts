// Budget snapshot and policy decision. The engine's answer is one of deny
// (with its reason), allow, or allow pending a human's approval.
import { ENGINE_FAILURE } from '../../policy/engine.js';
import { callSubject, describeExhausted, type ExhaustedWindow } from '../budget.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Execution } from '../execution.js';
import { recordedInput } from '../../policy/recorded-input.js';
import type { PolicyDecision, PolicyInput } from '../../policy/types.js';

const ENGINE_CODES = new Set<string>([ENGINE_FAILURE.unavailable, ENGINE_FAILURE.timeout, ENGINE_FAILURE.invalidResponse]);

export async function decidePolicy(ctx: GateContext, x: Execution): Promise<void> {
  const s = need(x, 'session');
  const p = need(x, 'pre');
  const m = need(x, 'action').manifest;
  // The tightest of the windows that apply (lease and day; the principal's, the action's).
  const view = ctx.budgets.view(callSubject(s, m.action_id), m.cost ?? 0);
  const budget = view.snapshot;
  const input: PolicyInput = {
    principal: s.principal,
    session_id: s.session_id,
    scopes: s.scopes,
    required_scopes: m.required_scopes,
    action_id: m.action_id,
    action_version: m.version,
    action_risk_level: m.risk_level,
    action_trust_verdict: need(x, 'trust'),
    action_category: p.category,
    request_hash: need(x, 'requestHash'),
    requested_sinks: m.declared_side_effects,
    requested_secrets: m.secrets.map((sec) => sec.name),
    egress_profile: m.egress.profile,
    ...(p.fs_path !== undefined ? { fs_path: p.fs_path } : {}),
    budgets_before: budget.cost_remaining === undefined
      ? { calls_remaining: Math.min(budget.calls_remaining, Number.MAX_SAFE_INTEGER) }
      : { calls_remaining: budget.calls_remaining, cost_remaining: budget.cost_remaining - (m.cost ?? 0) },
    unresolved_domains: p.unresolved_domains,
    unresolved_paths: p.unresolved_paths,
  };
  const data = ctx.policyData.data();
  const decision = await ctx.policy.decide(input, data);
  x.decided = { input, decision, budget, data };
  // The input, as much of it as the event does not hold already: the decision can be made again (`latchgate policy replay`).
  // policy_version names the policy data too (its second half: the data version, src/policy/engine.ts).
  x.event.policy = {
    policy_version: decision.policy_version,
    decision: decision.allow ? (decision.requires_approval ? 'pending_approval' : 'allow') : 'deny',
    determining_policies: decision.determining_policies,
    ...(decision.deny_reason ? { deny_reason: decision.deny_reason } : {}),
    input: recordedInput(input),
  };
  x.event.budgets_before = { ...budget };
  if (!decision.allow) {
    const e = denialError(decision, view.exhausted);
    if (e.extra.budget_window) x.event.details = { budget_window: e.extra.budget_window };
    throw e;
  }
}

/** The error a denial becomes: an engine that could not decide is a 503, a rule's denial a 403; a budget's names the window that ran out. */
function denialError(d: PolicyDecision, exhausted: ExhaustedWindow | undefined): GateError {
  const reason = d.deny_reason ?? 'denied';
  if (/budget/i.test(reason)) {
    return new GateError('budget_exhausted', exhausted ? `${reason}: ${describeExhausted(exhausted)}` : reason, { deny_reason: reason, ...(exhausted ? { budget_window: exhausted } : {}) });
  }
  if (ENGINE_CODES.has(reason)) return new GateError(reason, `the policy engine could not decide (${reason}); nothing was executed`, { deny_reason: reason });
  return new GateError('policy_denied', reason, { deny_reason: reason, policy_version: d.policy_version });
}
