// The one decision interface every policy engine sits behind (Cedar embedded,
// OPA as WebAssembly, OPA as a server), and what they share: the JSON Schemas
// of the decision input and output in policies/, the data version, and the
// fail-closed answers. An engine never throws from decide(): whatever goes
// wrong becomes a deny whose deny_reason is one of ENGINE_FAILURE.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { fixedValidator, type FixedSchema } from '../core/fixed-validators.js';
import { canonicalize, sha256Hex } from '../crypto/jcs.js';
import type { PolicyDecision, PolicyInput } from './types.js';

export type PolicyEngineKind = 'cedar' | 'opa-wasm' | 'opa-server';

export interface PolicyEngine {
  readonly kind: PolicyEngineKind;
  /** SHA-256 (hex) of the policy source the engine runs. */
  readonly version: string;
  decide(input: PolicyInput, data: PolicyData): Promise<PolicyDecision>;
}

export interface AclEntry {
  allowed_actions: string[];
  allowed_sinks: string[];
  inherits_wildcard?: boolean;
}

/**
 * The ACL and approval allowlist a decision is made with. Treat it as
 * immutable: engines cache what they derive from it per object, so the first
 * decision on an object deep-freezes it (a later mutation throws instead of
 * being silently ignored); pass a new object for new data (PolicyStore.data()
 * does).
 */
export type PolicyData = {
  acl: Record<string, AclEntry>;
  allowlist: Record<string, Record<string, true>>;
};

/** The wildcard principal of the ACL. */
export const WILDCARD = '*';

/** Deny reasons an engine gives when it could not decide (fail closed). */
export const ENGINE_FAILURE = {
  /** The input document does not match policies/decision-input.schema.json. */
  inputInvalid: 'policy_input_invalid',
  /** The policy data does not match policies/data.schema.json. */
  dataInvalid: 'policy_data_invalid',
  /** The engine could not be loaded or reached. */
  unavailable: 'policy_engine_unavailable',
  /** The engine did not answer in time. */
  timeout: 'policy_engine_timeout',
  /** The engine answered something that is not a decision. */
  invalidResponse: 'policy_engine_invalid_response',
  /** A policy failed while evaluating (Cedar skips erroring policies; we deny). */
  evaluationError: 'policy_engine_error',
} as const;
export type EngineFailureReason = (typeof ENGINE_FAILURE)[keyof typeof ENGINE_FAILURE];

/** An engine's evaluation that could not decide: the deny reason and, for logs, why. */
export type EngineFail = { fail: EngineFailureReason; detail: string };

/** Deny reason when no permit matched (the default policy's last rule). */
export const DEFAULT_DENY_REASON = 'no matching allow rule';

/** Why an engine failed closed, for logs; decide() itself only returns the code. */
export interface PolicyFault {
  engine: PolicyEngineKind;
  reason: EngineFailureReason;
  detail: string;
}
export type FaultListener = (fault: PolicyFault) => void;

/** policies/ at the package root (dist/policy/engine.js -> ../../policies/). */
export const DEFAULT_POLICY_DIR = fileURLToPath(new URL('../../policies/', import.meta.url));

export function policyFile(name: string, dir: string = DEFAULT_POLICY_DIR): string {
  return `${dir.endsWith('/') ? dir : `${dir}/`}${name}`;
}

// ---- JSON Schemas ------------------------------------------------------------

const DECISION_OPTIONS = { allErrors: false, strict: true, strictRequired: false, allowUnionTypes: true } as const;

/** The decision's documents as policies/ defines them, for fixedValidator (and the build, scripts/build-validators.mjs). */
export function decisionSchemas(): FixedSchema[] {
  const load = (n: string) => JSON.parse(readFileSync(policyFile(`${n}.schema.json`), 'utf8')) as Record<string, unknown>;
  return ['decision-input', 'decision-output', 'data'].map((n) => ({ name: `policy-${n}`, options: DECISION_OPTIONS, schema: load(n) }));
}

let validators: { input: ValidateFunction; output: ValidateFunction; data: ValidateFunction } | undefined;

function loadValidators() {
  if (validators) return validators;
  const [input, output, data] = decisionSchemas().map(fixedValidator) as [ValidateFunction, ValidateFunction, ValidateFunction];
  validators = { input, output, data };
  return validators;
}

export interface SchemaCheck {
  ok: boolean;
  /** "<json pointer>: <message>" of the first error, when not ok. */
  error?: string;
}

function check(v: ValidateFunction, doc: unknown): SchemaCheck {
  if (v(doc)) return { ok: true };
  const e = (v.errors ?? [])[0] as ErrorObject | undefined;
  return { ok: false, error: e ? `${e.instancePath || '/'}: ${e.message ?? e.keyword}` : 'invalid' };
}

export function validateInput(doc: unknown): SchemaCheck {
  return check(loadValidators().input, doc);
}
export function validateOutput(doc: unknown): SchemaCheck {
  return check(loadValidators().output, doc);
}

// ---- data version --------------------------------------------------------------

const dataInfo = new WeakMap<object, { version: string; check: SchemaCheck }>();

/**
 * Validates the policy data and returns its version: the first 16 hex digits
 * of the SHA-256 of its JCS form. Cached per object (PolicyStore.data()
 * hands out the same object until the data changes).
 */
export function inspectData(data: PolicyData): { version: string; check: SchemaCheck } {
  if (typeof data !== 'object' || data === null) return { version: 'invalid', check: { ok: false, error: '/: not an object' } };
  let info = dataInfo.get(data);
  if (!info) {
    const c = check(loadValidators().data, data);
    let version = 'invalid';
    if (c.ok) {
      try {
        version = sha256Hex(canonicalize(data)).slice(0, 16);
      } catch {
        version = 'invalid';
      }
    }
    info = { version, check: c };
    deepFreeze(data);
    dataInfo.set(data, info);
  }
  return info;
}

/**
 * Freezes o and everything below it. A node already frozen is still walked:
 * a caller may have frozen the top alone, and an edit below it would change
 * the data under a version (and the decisions remembered for it) computed before.
 */
export function deepFreeze<T>(o: T, seen: WeakSet<object> = new WeakSet()): T {
  if (o && typeof o === 'object' && !seen.has(o)) {
    seen.add(o);
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v, seen);
  }
  return o;
}

// ---- fail-closed helpers ---------------------------------------------------------

export function failClosed(reason: EngineFailureReason, policyVersion: string): PolicyDecision {
  return { allow: false, requires_approval: false, deny_reason: reason, determining_policies: [], policy_version: policyVersion };
}

/**
 * The frame every engine runs its evaluation in: input and data validated
 * first, output validated last, any throw or invalid answer turned into a
 * deny. `evaluate` returns a decision or a failure.
 */
export async function guardedDecide(
  engine: { kind: PolicyEngineKind; version: string },
  input: PolicyInput,
  data: PolicyData,
  evaluate: (policyVersion: string) => Promise<PolicyDecision | EngineFail> | PolicyDecision | EngineFail,
  onFault?: FaultListener,
): Promise<PolicyDecision> {
  const report = (reason: EngineFailureReason, detail: string, pv: string) => {
    if (onFault) {
      try {
        onFault({ engine: engine.kind, reason, detail });
      } catch {
        // a broken listener must not turn a deny into a throw
      }
    }
    return failClosed(reason, pv);
  };
  let pv = `${engine.version.slice(0, 16)}.invalid`;
  try {
    const info = inspectData(data);
    pv = `${engine.version.slice(0, 16)}.${info.version}`;
    const inCheck = validateInput(input);
    if (!inCheck.ok) return report(ENGINE_FAILURE.inputInvalid, inCheck.error ?? 'invalid', pv);
    if (!info.check.ok) return report(ENGINE_FAILURE.dataInvalid, info.check.error ?? 'invalid', pv);
  } catch (e) {
    // the schemas themselves could not be loaded: nothing can be checked
    return report(ENGINE_FAILURE.unavailable, `decision schemas: ${describeError(e)}`, pv);
  }
  let out: PolicyDecision | EngineFail;
  try {
    out = await evaluate(pv);
  } catch (e) {
    return report(ENGINE_FAILURE.unavailable, describeError(e), pv);
  }
  if (out === null || typeof out !== 'object') return report(ENGINE_FAILURE.invalidResponse, 'engine returned no decision', pv);
  if ('fail' in out) return report(out.fail, out.detail, pv);
  let outCheck: SchemaCheck;
  try {
    outCheck = validateOutput(out);
  } catch (e) {
    return report(ENGINE_FAILURE.unavailable, `decision schemas: ${describeError(e)}`, pv);
  }
  if (!outCheck.ok) return report(ENGINE_FAILURE.invalidResponse, `output ${outCheck.error ?? 'invalid'}`, pv);
  return out;
}

/** Error text from anything thrown (opa-wasm throws strings and plain objects). */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    const c = cause instanceof Error ? `: ${(cause as NodeJS.ErrnoException).code ?? cause.message}` : '';
    return `${e.message}${c}`;
  }
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') return (e as { message: string }).message;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}

/**
 * The wildcard rules of the ACL, for engines and tools that need the
 * effective lists outside a policy (Cedar's policy states the action rule
 * itself; sinks need a set union Cedar lacks).
 */
export function effectiveAcl(data: PolicyData, principal: string): {
  has_entry: boolean;
  inherits_wildcard: boolean;
  actions: string[];
  sinks: string[];
} {
  const own = Object.prototype.hasOwnProperty.call(data.acl, principal) ? data.acl[principal] : undefined;
  const wild = principal !== WILDCARD && Object.prototype.hasOwnProperty.call(data.acl, WILDCARD) ? data.acl[WILDCARD] : undefined;
  const useWild = !own || own.inherits_wildcard === true;
  const actions = new Set(own?.allowed_actions ?? []);
  const sinks = new Set(own?.allowed_sinks ?? []);
  if (useWild && wild) {
    for (const a of wild.allowed_actions) actions.add(a);
    for (const s of wild.allowed_sinks) sinks.add(s);
  }
  return { has_entry: own !== undefined, inherits_wildcard: own?.inherits_wildcard === true, actions: [...actions].sort(), sinks: [...sinks].sort() };
}
