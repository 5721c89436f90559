// The call's host functions, made once the plan is final, and the
// connection to the target of the action's template opened now (every check
// of a request included: allowlist, port, resolution, SSRF rules) so the TLS
// handshake runs while the grant, the intent and the provider are prepared.
// Nothing is opened for a call the policy refused or a human must approve:
// those ended before this stage. No request byte is written on the connection
// before the intent has landed (dispatch); a run that ends before dispatch
// closes it unused. The provider's log lines are kept as the run ends.
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Execution } from '../execution.js';
import { callHosts } from '../provider-hosts.js';
import { refuseUnknownOutcome } from './record-intent.js';

export async function openCallHosts(ctx: GateContext, x: Execution): Promise<void> {
  const m = need(x, 'action').manifest;
  const plan = need(x, 'plan');
  const principal = plan.session.principal;
  refuseUnknownOutcome(ctx, plan.core.request_hash, plan.core.action_id, principal);
  const call = need(x, 'pre').call;
  try {
    const hosts = callHosts(ctx.providerHosts, m, principal, call);
    x.hosts = { hosts };
    // Whatever the provider logged, the run done or failed.
    x.onEnd.push(() => ctx.providerLog.append(hosts.logs.map((l) => ({ time: l.time, trace_id: x.traceId, action_id: m.action_id, principal, level: l.level, message: l.message, fields: l.fields }))));
    const http = hosts.http;
    if (!http) return;
    x.onEnd.push(() => http.close());
    // The stages after this one run without a break: the connection starts now, or (a name to look
    // up) once the lookup is back, whenever that is; the run waits one turn of the loop at most.
    if (call) await Promise.race([http.preconnect(call.url), new Promise((go) => setImmediate(go))]);
  } catch (e) {
    // The configuration cannot serve the action (no file root, say): nothing runs, and the receipt says why.
    x.hosts = { unserved: e instanceof GateError ? `${e.code}: ${e.message}` : (e as Error).message };
  }
}
