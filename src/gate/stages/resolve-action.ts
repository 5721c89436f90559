// The action from the registry, and its provider's trust: a builtin must be
// one this gate has, a module digest must be registered and its file must
// hash to it.
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import type { Execution } from '../execution.js';

export function resolveAction(ctx: GateContext, x: Execution): void {
  const action = ctx.registry.get(x.actionId);
  if (!action) throw new GateError('action_not_found', `no action ${JSON.stringify(x.actionId)} is registered; list them with GET /v1/actions`);
  const m = action.manifest;
  // A component whose file does not hash to the manifest's digest was never compiled (src/gate/wasm-providers.ts).
  const refused = ctx.wasm.refused.get(m.action_id);
  if (refused !== undefined) throw new GateError('provider_untrusted', refused, { action_id: m.action_id });
  const trust = ctx.providers.has(m.provider_module_digest) ? 'digest_ok' : 'untrusted';
  if (trust !== 'digest_ok') {
    throw new GateError('action_not_registered', `no trusted provider with digest ${m.provider_module_digest} is installed for ${m.action_id}`, { action_id: m.action_id });
  }
  x.action = action;
  x.trust = trust;
}
