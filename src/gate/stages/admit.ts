// Stages 2-4: registry lookup, trust (the provider's module digest), input
// schema, JCS canonicalisation and request_hash.
import { canonicalize, canonicalHash } from '../../crypto/jcs.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import type { LoadedAction } from '../registry.js';
import type { PolicyInput } from '../../policy/types.js';

export interface Admitted {
  action: LoadedAction;
  trust: PolicyInput['action_trust_verdict'];
  request_hash: string;
}

export function admit(ctx: GateContext, actionId: string, body: unknown): Admitted {
  const action = ctx.registry.get(actionId);
  if (!action) throw new GateError('action_not_found', `no action ${JSON.stringify(actionId)} is registered; list them with GET /v1/actions`);
  const m = action.manifest;
  // Trust: a builtin must be one this gate has; a module digest must be registered.
  const trust = ctx.providers.has(m.provider_module_digest) ? 'digest_ok' : 'untrusted';
  if (trust !== 'digest_ok') {
    throw new GateError('action_not_registered', `no trusted provider with digest ${m.provider_module_digest} is installed for ${m.action_id}`, { action_id: m.action_id });
  }
  if (body === undefined) throw new GateError('invalid_request', 'the request body must be a JSON object (Content-Type: application/json)');
  let canonical: string;
  try {
    canonical = canonicalize(body);
  } catch (e) {
    throw new GateError('invalid_request', (e as Error).message);
  }
  if (Buffer.byteLength(canonical) > m.io.max_request_bytes) {
    throw new GateError('body_too_large', `the request is ${Buffer.byteLength(canonical)} bytes; ${m.action_id} accepts at most ${m.io.max_request_bytes}`);
  }
  const v = ctx.registry.validateRequest(m.action_id, body, m.version);
  if (!v.ok) {
    throw new GateError('schema_violation', v.errors.map((e) => `${e.pointer || '/'}: ${e.message}`).join('; '), { errors: v.errors });
  }
  return { action, trust, request_hash: canonicalHash(body) };
}
