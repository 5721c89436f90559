// The secrets a manifest declares `required: true` must have a value on the
// gate before anything of the call is opened or started: a missing one ends
// the run here (503 secret_missing, the event naming the secret, never a
// value), before openCallHosts connects and startProvider loads the provider.
// An optional secret without a value lets the call go on; a placeholder
// naming it is refused at the transport (secret_missing, src/providers/).
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Execution } from '../execution.js';

export async function requireSecrets(ctx: GateContext, x: Execution): Promise<void> {
  const m = need(x, 'action').manifest;
  for (const s of m.secrets) {
    if (!s.required) continue;
    let v: string | undefined;
    try {
      v = await ctx.providerHosts.secrets.get(s.name);
    } catch (e) {
      // The store's own errors name the file and the fix, never a value.
      throw new GateError('secrets_unavailable', `${m.action_id}: secret ${s.name} cannot be read: ${(e as Error).message}`, { secret: s.name });
    }
    if (v === undefined || v === '') {
      throw new GateError('secret_missing', `${m.action_id} requires secret ${s.name}, which has no value on the gate; set it with latchgate secrets set ${s.name} (or LATCHGATE_SECRET_${s.name} in the gate's environment), then call again`, { secret: s.name });
    }
  }
}
