// Domain and path pre-check. Expands the template once to learn the target;
// a host outside the manifest's allowlist is "unresolved" (the policy asks a
// human), never silently allowed.
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Execution, type Prechecked } from '../execution.js';
import type { LoadedAction } from '../registry.js';
import { HostAllowlist } from '../../egress/allowlist.js';
import type { ActionManifest } from '../types.js';
import { expandTemplate, TemplateError } from '../templates.js';

export function precheckTargets(_ctx: GateContext, x: Execution): void {
  x.pre = precheck(need(x, 'action'), x.request);
}

/** One strict matcher per manifest (the same rules as the box's CONNECT proxy). */
const allowlists = new WeakMap<ActionManifest, HostAllowlist>();
function allowlistOf(m: ActionManifest): HostAllowlist {
  let a = allowlists.get(m);
  if (!a) allowlists.set(m, (a = new HostAllowlist(m.egress.allowed_domains, `${m.action_id}: egress.allowed_domains`)));
  return a;
}

/** Also run again for an approved plan, whose expanded call is not stored. */
export function precheck(action: LoadedAction, body: unknown): Prechecked {
  const m = action.manifest;
  const out: Prechecked = { targets: [], unresolved_domains: [], unresolved_paths: [], category: m.provider_module_digest === 'builtin:fs' ? 'fs' : m.template ? 'http' : 'other' };
  if (m.template) {
    try {
      out.call = expandTemplate(m.template, body, m.secrets.map((s) => s.name), { allowedDomains: m.egress.allowed_domains });
    } catch (e) {
      if (e instanceof TemplateError) throw new GateError('invalid_request', `the request cannot fill ${m.action_id}'s template: ${e.message}`);
      throw e;
    }
    const host = new URL(out.call.url).hostname;
    out.targets.push(out.call.url);
    if (!allowlistOf(m).matches(host)) out.unresolved_domains.push(host);
  }
  if (out.category === 'fs') {
    const p = (body as { path?: unknown }).path;
    if (typeof p === 'string') {
      out.fs_path = p;
      out.targets.push(p);
    }
  }
  return out;
}
