// Whether the policy data grants an action to a caller, as the default
// policies (policies/latchgate.cedar, rules 1, 2, 3 and 5) read it: a trusted
// provider, the action in the principal's effective ACL (with the wildcard
// where it applies), every declared sink allowed, and the manifest's required
// scopes within the caller's. Budgets, approvals and request-dependent rules
// are decided at execute time; this only says which tools to offer.
import { effectiveAcl } from '../policy/engine.js';
import type { Caller } from './app.js';
import type { GateContext } from './context.js';
import type { ActionManifest } from './types.js';

export function callableBy(ctx: GateContext, caller: Caller): (m: ActionManifest) => boolean {
  const acl = effectiveAcl(ctx.policyData.data(), caller.principal);
  const actions = new Set(acl.actions);
  const sinks = new Set(acl.sinks);
  const scopes = new Set(caller.scopes);
  return (m) =>
    actions.has(m.action_id) &&
    m.declared_side_effects.every((s) => sinks.has(s)) &&
    m.required_scopes.every((s) => scopes.has(s)) &&
    scopes.has('tools:call') &&
    !ctx.wasm.refused.has(m.action_id) &&
    ctx.providers.has(m.provider_module_digest);
}
