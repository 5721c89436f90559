// Stage 5b: budget snapshot and policy decision. The engine's answer is one
// of deny (with its reason), allow, or allow pending a human's approval.
import { ENGINE_FAILURE } from '../../policy/engine.js';
import type { BudgetSnapshot } from '../budget.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import type { PolicyDecision, PolicyInput } from '../../policy/types.js';
import type { Admitted } from './admit.js';
import type { Session } from './authenticate.js';
import type { Prechecked } from './precheck.js';

export interface Decided {
  input: PolicyInput;
  decision: PolicyDecision;
  budget: BudgetSnapshot;
}

const ENGINE_CODES = new Set<string>([ENGINE_FAILURE.unavailable, ENGINE_FAILURE.timeout, ENGINE_FAILURE.invalidResponse]);

export async function decide(ctx: GateContext, s: Session, a: Admitted, p: Prechecked): Promise<Decided> {
  const m = a.action.manifest;
  const budget = ctx.budgets.snapshot(s.session_id);
  const input: PolicyInput = {
    principal: s.principal,
    session_id: s.session_id,
    scopes: s.scopes,
    required_scopes: m.required_scopes,
    action_id: m.action_id,
    action_version: m.version,
    action_risk_level: m.risk_level,
    action_trust_verdict: a.trust,
    action_category: p.category,
    request_hash: a.request_hash,
    requested_sinks: m.declared_side_effects,
    requested_secrets: m.secrets.map((x) => x.name),
    egress_profile: m.egress.profile,
    ...(p.fs_path !== undefined ? { fs_path: p.fs_path } : {}),
    budgets_before: budget.cost_remaining === undefined
      ? { calls_remaining: Math.min(budget.calls_remaining, Number.MAX_SAFE_INTEGER) }
      : { calls_remaining: budget.calls_remaining, cost_remaining: budget.cost_remaining - (m.cost ?? 0) },
    unresolved_domains: p.unresolved_domains,
    unresolved_paths: p.unresolved_paths,
  };
  const decision = await ctx.policy.decide(input, ctx.policyStore.data());
  return { input, decision, budget };
}

/** The error a denial becomes: an engine that could not decide is a 503, a rule's denial a 403. */
export function denialError(d: PolicyDecision): GateError {
  const reason = d.deny_reason ?? 'denied';
  if (/budget/i.test(reason)) return new GateError('budget_exhausted', reason, { deny_reason: reason });
  if (ENGINE_CODES.has(reason)) return new GateError(reason, `the policy engine could not decide (${reason}); nothing was executed`, { deny_reason: reason });
  return new GateError('policy_denied', reason, { deny_reason: reason, policy_version: d.policy_version });
}
