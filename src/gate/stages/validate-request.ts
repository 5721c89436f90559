// The request against the action's input schema, in RFC 8785 canonical
// form within the action's size limit, and its request_hash.
import { canonicalize, sha256Hex } from '../../crypto/jcs.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Execution } from '../execution.js';
import type { ValidationResult } from '../registry.js';

/** Synchronous unless the action's schema is checked in a worker (src/gate/schema-judge.ts). */
export function validateRequest(ctx: GateContext, x: Execution): void | Promise<void> {
  const action = need(x, 'action');
  const m = action.manifest;
  const body = x.request;
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
  const v = ctx.registry.validateRequest(m.action_id, body, m.version, { who: x.caller?.principal ?? '' });
  return v instanceof Promise ? v.then((r) => admitted(x, r, canonical)) : admitted(x, v, canonical);
}

function admitted(x: Execution, v: ValidationResult, canonical: string): void {
  if (!v.ok) {
    const message = v.errors.map((e) => `${e.pointer || '/'}: ${e.message}`).join('; ');
    if (v.unchecked === 'busy') throw new GateError('rate_limited', message, { retry_after_seconds: 1 });
    throw new GateError('schema_violation', message, { errors: v.errors });
  }
  const action = need(x, 'action');
  const m = action.manifest;
  // canonicalHash(body), from the canonical form made above (the schema check changes nothing: no defaults, no coercion).
  x.requestHash = `sha256:${sha256Hex(Buffer.from(canonical, 'utf8'))}`;
  // The event names the action's version, digest and trust only for a request
  // admitted this far: a refusal before it names the action id asked for.
  x.event.action = { action_id: m.action_id, action_version: m.version, action_digest: action.action_digest, action_trust_verdict: need(x, 'trust'), risk_level: m.risk_level };
  x.event.request = { request_hash: x.requestHash };
}
