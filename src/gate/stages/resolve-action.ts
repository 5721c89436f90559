// The action from the registry, and its provider's trust: a builtin must be
// one this gate has, a module digest must be registered.
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import type { Execution } from '../execution.js';

export function resolveAction(ctx: GateContext, x: Execution): void {
  const action = ctx.registry.get(x.actionId);
  if (!action) throw new GateError('action_not_found', `no action ${JSON.stringify(x.actionId)} is registered; list them with GET /v1/actions`);
  const m = action.manifest;
  const trust = ctx.providers.has(m.provider_module_digest) ? 'digest_ok' : 'untrusted';
  if (trust !== 'digest_ok') {
    throw new GateError('action_not_registered', `no trusted provider with digest ${m.provider_module_digest} is installed for ${m.action_id}`, { action_id: m.action_id });
  }
  x.action = action;
  x.trust = trust;
}
