// The plan: exactly what may run (action, digests, request hash, policy
// version, targets, secrets, egress), for whom, and until when.
import type { GateContext } from '../context.js';
import { need, type Execution } from '../execution.js';

export function planExecution(ctx: GateContext, x: Execution): void {
  const action = need(x, 'action');
  const m = action.manifest;
  x.plan = {
    core: {
      action_id: m.action_id,
      action_version: m.version,
      action_digest: action.action_digest,
      provider_module_digest: m.provider_module_digest,
      request_hash: need(x, 'requestHash'),
      policy_version: need(x, 'decided').decision.policy_version,
      approved_targets: need(x, 'pre').targets,
      approved_secrets: m.secrets.map((s) => s.name),
      approved_egress: m.egress.profile,
      expires_at: new Date(Date.now() + ctx.settings.grantTtlSeconds * 1000).toISOString(),
    },
    session: need(x, 'session'),
    request: x.request,
    cost: m.cost ?? 0,
  };
}
