// The embedded policy engine: Cedar (@cedar-policy/cedar-wasm, nodejs build).
// The policy set (policies/latchgate.cedar) is parsed, validated against the
// schema (policies/latchgate.cedarschema) in strict mode and pre-parsed once.
// Each decision is one statefulIsAuthorized call: principal
// LatchGate::Principal::"<principal>", action LatchGate::Action::"execute",
// resource LatchGate::Tool::"<action_id>", no entity data, and a context
// holding the input and the principal's ACL resolved against the policy data
// (set lookups here, the rules about them in the policy; see the schema for
// why nothing rides on entities). Cedar's answer and the annotations of the
// policies that determined it become a PolicyDecision; any Cedar failure,
// including a policy that errors while evaluating (Cedar would skip it), is a
// deny.
// First: how V8 compiles and calls Wasm (runtime/wasm-flags.ts).
import '../runtime/wasm-flags.js';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { sha256Hex } from '../crypto/jcs.js';
import type { PolicyDecision, PolicyInput } from './types.js';
import {
  DEFAULT_DENY_REASON,
  DEFAULT_POLICY_DIR,
  ENGINE_FAILURE,
  WILDCARD,
  guardedDecide,
  inspectData,
  policyFile,
  type EngineFail,
  type FaultListener,
  type PolicyData,
  type PolicyEngine,
} from './engine.js';

const NS = 'LatchGate';
const PRINCIPAL_TYPE = `${NS}::Principal`;
const TOOL_TYPE = `${NS}::Tool`;
const ACTION = { type: `${NS}::Action`, id: 'execute' } as const;

/** A policy of the loaded set, with the annotations the engine reads. */
export interface CedarPolicyMeta {
  id: string;
  effect: 'permit' | 'forbid';
  /** Lower names the deny reason first; Infinity when absent. */
  order: number;
  reason?: string;
  approval?: 'required' | 'bypass';
  annotations: Record<string, string>;
}

export class CedarPolicyError extends Error {
  constructor(
    message: string,
    /** Which file is at fault: the policy set or the schema. */
    readonly source: 'policy' | 'schema' = 'policy',
  ) {
    super(message);
    this.name = 'CedarPolicyError';
  }
}

export interface CedarEngineOptions {
  /** Directory holding latchgate.cedar and latchgate.cedarschema (default: the package's policies/). */
  policyDir?: string;
  /** Policy text instead of <policyDir>/latchgate.cedar. */
  policyText?: string;
  /** Schema text (Cedar schema syntax) instead of <policyDir>/latchgate.cedarschema. */
  schemaText?: string;
  /**
   * Also validate each request against the schema (default false: the policies
   * are validated against it at load, and the engine builds every request from
   * a schema-checked input, so the types hold by construction; on costs ~40 µs).
   */
  validateRequests?: boolean;
  /** Told why a decision failed closed (the decision carries only the code). */
  onFault?: FaultListener;
}


type CedarDiagnostic = { message: string; help?: string | null; sourceLocations?: { start: number }[] };

/** "line L, column C" of a character offset into a text. */
function position(text: string, at: number): string {
  const before = text.slice(0, at);
  return `line ${before.split('\n').length}, column ${at - before.lastIndexOf('\n')}`;
}

/** Cedar's source locations are UTF-8 byte offsets: the character offset into the same text. */
function charOffset(text: string, byteOffset: number): number {
  return Buffer.from(text, 'utf8').subarray(0, byteOffset).toString('utf8').length;
}

/** Cedar's errors as one line; with `locate`, each says where (from its first source location, a byte offset). */
function messages(errors: CedarDiagnostic[] | undefined, locate?: (byteOffset: number) => string): string {
  const one = (e: CedarDiagnostic) => {
    const at = e.sourceLocations?.[0]?.start;
    return `${locate && at !== undefined ? `${locate(at)}: ` : ''}${e.message}${e.help ? ` (${e.help})` : ''}`;
  };
  return (errors ?? []).map(one).join('; ') || 'unknown error';
}

// fs_path as the policy sees it: posix-normalised ("." and ".." segments and
// repeated "/" resolved, no trailing "/") and anchored with a leading "/", so
// that the like-pattern "*/.env" (the glob "**/.env") also matches a relative
// ".env". Symbolic links are not resolved here: the caller must pass the path
// the provider will really touch.
export function normalizeFsPath(p: string): string {
  let n = posix.normalize(p.startsWith('/') ? p : `/${p}`);
  while (n.length > 1 && n.endsWith('/')) n = n.slice(0, -1);
  return n;
}

const LONG_MAX = Number.MAX_SAFE_INTEGER;
function toLong(n: number): number {
  const f = Math.floor(n);
  return f > LONG_MAX ? LONG_MAX : f < -LONG_MAX ? -LONG_MAX : f;
}

function parsePolicySet(text: string): Map<string, { text: string; meta: CedarPolicyMeta }> {
  const parts = cedar.policySetTextToParts(text);
  if (parts.type !== 'success') throw new CedarPolicyError(`policy set does not parse: ${messages(parts.errors, (b) => position(text, charOffset(text, b)))}`);
  if (parts.policy_templates.length > 0) throw new CedarPolicyError('policy templates are not supported in the latchgate policy set');
  if (parts.policies.length === 0) throw new CedarPolicyError('the policy set is empty');
  const out = new Map<string, { text: string; meta: CedarPolicyMeta }>();
  parts.policies.forEach((ptext, i) => {
    const j = cedar.policyToJson(ptext);
    if (j.type !== 'success') throw new CedarPolicyError(`policy #${i + 1} (${position(text, text.indexOf(ptext))}) does not parse: ${messages(j.errors)}`);
    const annotations = { ...(j.json.annotations ?? {}) } as Record<string, string>;
    const id = annotations['id'];
    if (!id) throw new CedarPolicyError(`policy #${i + 1} (${position(text, text.indexOf(ptext))}) has no @id("...") annotation (every policy needs a unique id for the audit trail)`);
    if (out.has(id)) throw new CedarPolicyError(`two policies have @id("${id}")`);
    const effect = j.json.effect;
    const orderText = annotations['order'];
    let order = Number.POSITIVE_INFINITY;
    if (orderText !== undefined) {
      order = Number(orderText);
      if (orderText.trim() === '' || !Number.isFinite(order)) throw new CedarPolicyError(`policy ${id}: @order("${orderText}") is not a number`);
    }
    const approval = annotations['approval'];
    if (approval !== undefined && approval !== 'required' && approval !== 'bypass') {
      throw new CedarPolicyError(`policy ${id}: @approval("${approval}") must be "required" or "bypass"`);
    }
    if (approval !== undefined && effect !== 'permit') throw new CedarPolicyError(`policy ${id}: @approval belongs on a permit, not a forbid`);
    const reason = annotations['reason'];
    if (effect === 'forbid' && !reason) throw new CedarPolicyError(`policy ${id}: a forbid needs @reason("...") (every deny names its rule)`);
    const meta: CedarPolicyMeta = { id, effect, order, annotations };
    if (reason) meta.reason = reason;
    if (approval) meta.approval = approval;
    out.set(id, { text: ptext, meta });
  });
  return out;
}

let nextId = 0;
const DECISION_CACHE_SIZE = 1024;
/** Requests above this (a long fs_path or many unresolved names) are not remembered: 1 024 of them stay within about 16 MiB. */
const DECISION_KEY_MAX_CHARS = 8192;

/**
 * A plain copy of an array of the input: the request is serialized twice (the
 * key here, and Cedar's call in its glue), and an array with its own toJSON could
 * read otherwise the second time.
 */
function plain<T>(xs: readonly T[]): T[] {
  const out = new Array<T>(xs.length);
  for (let i = 0; i < xs.length; i++) out[i] = xs[i]!;
  return out;
}

interface AclView {
  has_entry: boolean;
  inherits_wildcard: boolean;
  actions: Set<string>;
  sinks: Set<string>;
  wildcardActions: Set<string>;
  wildcardSinks: string[];
}

/** A policy set parsed, validated against its schema and pre-parsed into Cedar (under policySetId, and schemaName when requests are validated too). */
interface PreparedPolicySet {
  policies: ReadonlyMap<string, CedarPolicyMeta>;
  policySetId: string;
  schemaName: string;
}

/**
 * The policy sets this process prepared, by the digest of their text and
 * schema: every gate a process opens on the same policy (tests, a box's
 * launcher that opens one more) takes the first's, instead of parsing and
 * validating again (about 100 ms) and leaving one more pre-parsed set in Cedar.
 */
const prepared = new Map<string, PreparedPolicySet>();

function prepare(policyText: string, schemaText: string, version: string, validateRequests: boolean): PreparedPolicySet {
  const parsed = parsePolicySet(policyText);
  const staticPolicies: Record<string, string> = {};
  const metas = new Map<string, CedarPolicyMeta>();
  for (const [id, p] of parsed) {
    staticPolicies[id] = p.text;
    metas.set(id, p.meta);
  }
  const schemaCheck = cedar.checkParseSchema(schemaText);
  if (schemaCheck.type !== 'success') throw new CedarPolicyError(`schema does not parse: ${messages(schemaCheck.errors, (b) => position(schemaText, charOffset(schemaText, b)))}`, 'schema');
  const v = cedar.validate({ schema: schemaText, policies: { staticPolicies }, validationSettings: { mode: 'strict' } });
  if (v.type !== 'success') throw new CedarPolicyError(`policy validation failed: ${messages(v.errors)}`);
  if (v.validationErrors.length > 0) {
    // Locations are within each policy's own text: placed in the file by where that text starts.
    const inFile = (id: string) => {
      const ptext = staticPolicies[id] ?? '';
      const base = policyText.indexOf(ptext);
      return (b: number) => (base < 0 ? `policy ${id}` : position(policyText, base + charOffset(ptext, b)));
    };
    throw new CedarPolicyError(`policies do not match the schema: ${v.validationErrors.map((e) => `${e.policyId}: ${messages([e.error], inFile(e.policyId))}`).join('; ')}`);
  }
  const tag = `${version.slice(0, 16)}-${process.pid}-${nextId++}`;
  const out: PreparedPolicySet = { policies: metas, policySetId: `latchgate-${tag}`, schemaName: `latchgate-schema-${tag}` };
  const ps = cedar.preparsePolicySet(out.policySetId, { staticPolicies });
  if (ps.type !== 'success') throw new CedarPolicyError(`policy set does not pre-parse: ${messages(ps.errors)}`);
  if (validateRequests) {
    const ss = cedar.preparseSchema(out.schemaName, schemaText);
    if (ss.type !== 'success') throw new CedarPolicyError(`schema does not pre-parse: ${messages(ss.errors)}`);
  }
  return out;
}

export class CedarEngine implements PolicyEngine {
  readonly kind = 'cedar' as const;
  readonly version: string;
  readonly policies: ReadonlyMap<string, CedarPolicyMeta>;
  readonly cedarVersion: string = cedar.getCedarVersion();
  private readonly policySetId: string;
  private readonly schemaName: string;
  private readonly validateRequests: boolean;
  private readonly onFault: FaultListener | undefined;
  /** Decisions by exact request (evaluate): an agent repeats the same calls, and Cedar costs about 0.4 ms a decision. Bounded, least recently used out. */
  private readonly decisions = new Map<string, PolicyDecision>();
  /** Requests Cedar evaluated, and those answered from the decisions it made before. */
  readonly counts = { evaluated: 0, remembered: 0 };
  private readonly aclCache = new WeakMap<object, { wildcardActions: Set<string>; wildcardSinks: string[]; principals: Map<string, AclView> }>();

  private constructor(policyText: string, schemaText: string, opts: CedarEngineOptions) {
    this.version = sha256Hex(`${policyText}\u0000${schemaText}`);
    this.validateRequests = opts.validateRequests ?? false;
    this.onFault = opts.onFault;
    const key = `${this.version}:${this.validateRequests}`;
    let ready = prepared.get(key);
    if (!ready) prepared.set(key, (ready = prepare(policyText, schemaText, this.version, this.validateRequests)));
    this.policies = ready.policies;
    this.policySetId = ready.policySetId;
    this.schemaName = ready.schemaName;
  }

  /** Loads, validates and pre-parses the policy set; throws CedarPolicyError with the cause when it cannot. */
  static load(opts: CedarEngineOptions = {}): CedarEngine {
    const dir = opts.policyDir ?? DEFAULT_POLICY_DIR;
    const policyText = opts.policyText ?? readFileSync(policyFile('latchgate.cedar', dir), 'utf8');
    const schemaText = opts.schemaText ?? readFileSync(policyFile('latchgate.cedarschema', dir), 'utf8');
    return new CedarEngine(policyText, schemaText, opts);
  }

  decide(input: PolicyInput, data: PolicyData): Promise<PolicyDecision> {
    return guardedDecide(this, input, data, (pv) => this.evaluate(input, data, pv), this.onFault);
  }

  /** The data-derived part of the ACL record, cached per data object and principal. */
  private aclFor(data: PolicyData, principal: string): AclView {
    let c = this.aclCache.get(data);
    if (!c) {
      const w = Object.prototype.hasOwnProperty.call(data.acl, WILDCARD) ? data.acl[WILDCARD] : undefined;
      c = {
        wildcardActions: new Set(w?.allowed_actions ?? []),
        wildcardSinks: [...new Set(w?.allowed_sinks ?? [])],
        principals: new Map(),
      };
      this.aclCache.set(data, c);
    }
    let p = c.principals.get(principal);
    if (!p) {
      const own = Object.prototype.hasOwnProperty.call(data.acl, principal) ? data.acl[principal] : undefined;
      p = {
        has_entry: own !== undefined,
        inherits_wildcard: own?.inherits_wildcard === true,
        actions: new Set(own?.allowed_actions ?? []),
        sinks: new Set(own?.allowed_sinks ?? []),
        wildcardActions: c.wildcardActions,
        wildcardSinks: c.wildcardSinks,
      };
      if (c.principals.size >= 4096) c.principals.clear();
      c.principals.set(principal, p);
    }
    return p;
  }

  /** The Cedar request for an input (exposed for tests and `policy explain`-style tools). */
  request(input: PolicyInput, data: PolicyData): { principal: { type: string; id: string }; resource: { type: string; id: string }; context: Record<string, unknown> } {
    inspectData(data); // frozen before its ACL is cached (decide() has done it already; a caller of this may not have)
    const acl = this.aclFor(data, input.principal);
    const list = Object.prototype.hasOwnProperty.call(data.allowlist, input.action_id) ? data.allowlist[input.action_id] : undefined;
    const allowlisted = list !== undefined && Object.prototype.hasOwnProperty.call(list, input.principal) && list[input.principal] === true;
    const context: Record<string, unknown> = {
      acl: {
        has_entry: acl.has_entry,
        inherits_wildcard: acl.inherits_wildcard,
        own_allows_action: acl.actions.has(input.action_id),
        wildcard_allows_action: acl.wildcardActions.has(input.action_id),
        sinks_not_own: plain(input.requested_sinks).filter((s) => !acl.sinks.has(s)),
        wildcard_sinks: acl.wildcardSinks,
      },
      tool: {
        action_id: input.action_id,
        version: input.action_version,
        risk_level: input.action_risk_level,
        category: input.action_category,
        required_scopes: plain(input.required_scopes),
        allowlisted,
      },
      trust_verdict: input.action_trust_verdict,
      scopes: plain(input.scopes),
      requested_sinks: plain(input.requested_sinks),
      requested_secrets: plain(input.requested_secrets),
      egress_profile: input.egress_profile,
      calls_remaining: toLong(input.budgets_before.calls_remaining),
      unresolved_domains: plain(input.unresolved_domains),
      unresolved_paths: plain(input.unresolved_paths),
    };
    if (input.fs_path !== undefined) context['fs_path'] = normalizeFsPath(input.fs_path);
    if (input.budgets_before.cost_remaining !== undefined) context['cost_remaining'] = toLong(input.budgets_before.cost_remaining);
    return { principal: { type: PRINCIPAL_TYPE, id: input.principal }, resource: { type: TOOL_TYPE, id: input.action_id }, context };
  }

  private evaluate(input: PolicyInput, data: PolicyData, policyVersion: string): PolicyDecision | EngineFail {
    const req = this.request(input, data);
    // Cedar decides from the request alone (no entities, nothing from the clock):
    // the same request under the same policies and data gets the same decision.
    // Remembered per session: another lease of the principal cannot time whether
    // this one made a call. A request too large to keep is decided every time.
    const key = `${policyVersion}\n${input.session_id}\n${JSON.stringify(req)}`;
    if (key.length > DECISION_KEY_MAX_CHARS) {
      this.counts.evaluated++;
      return this.decideAfresh(req, policyVersion);
    }
    const known = this.decisions.get(key);
    if (known) {
      this.decisions.delete(key); // most recently used last
      this.decisions.set(key, known);
      this.counts.remembered++;
      return { ...known, determining_policies: [...known.determining_policies] };
    }
    this.counts.evaluated++;
    const decided = this.decideAfresh(req, policyVersion);
    if (!('fail' in decided)) {
      if (this.decisions.size >= DECISION_CACHE_SIZE) this.decisions.delete(this.decisions.keys().next().value as string);
      this.decisions.set(key, { ...decided, determining_policies: [...decided.determining_policies] });
    }
    return decided;
  }

  private decideAfresh(req: ReturnType<CedarEngine['request']>, policyVersion: string): PolicyDecision | EngineFail {
    const call: cedar.StatefulAuthorizationCall = {
      principal: req.principal,
      action: ACTION,
      resource: req.resource,
      context: req.context as cedar.Context,
      preparsedPolicySetId: this.policySetId,
      entities: [],
    };
    if (this.validateRequests) {
      call.preparsedSchemaName = this.schemaName;
      call.validateRequest = true;
    }
    const ans = cedar.statefulIsAuthorized(call);
    if (ans.type !== 'success') return { fail: ENGINE_FAILURE.unavailable, detail: `cedar: ${messages(ans.errors)}` };
    const { decision, diagnostics } = ans.response;
    if (diagnostics.errors.length > 0) {
      return {
        fail: ENGINE_FAILURE.evaluationError,
        detail: diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`).join('; '),
      };
    }
    const metas: CedarPolicyMeta[] = [];
    for (const id of diagnostics.reason) {
      const m = this.policies.get(id);
      if (!m) return { fail: ENGINE_FAILURE.invalidResponse, detail: `cedar named an unknown policy ${id}` };
      metas.push(m);
    }
    metas.sort((a, b) => a.order - b.order || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const ids = (ms: CedarPolicyMeta[]) => ms.map((m) => m.id);

    if (decision === 'deny') {
      const forbids = metas.filter((m) => m.effect === 'forbid');
      if (forbids.length !== metas.length) return { fail: ENGINE_FAILURE.invalidResponse, detail: 'cedar denied with a permit among the reasons' };
      const first = forbids[0];
      if (!first) {
        return { allow: false, requires_approval: false, deny_reason: DEFAULT_DENY_REASON, determining_policies: [], policy_version: policyVersion };
      }
      return {
        allow: false,
        requires_approval: false,
        deny_reason: first.reason ?? `${first.id}: forbidden`,
        determining_policies: ids(forbids),
        policy_version: policyVersion,
      };
    }
    if (decision !== 'allow' || metas.length === 0 || metas.some((m) => m.effect !== 'permit')) {
      return { fail: ENGINE_FAILURE.invalidResponse, detail: `cedar answered ${String(decision)} with reasons [${ids(metas).join(', ')}]` };
    }
    const bypasses = metas.filter((m) => m.approval === 'bypass');
    const required = metas.filter((m) => m.approval === 'required');
    if (bypasses.length > 0) {
      return { allow: true, requires_approval: false, determining_policies: ids(bypasses), policy_version: policyVersion };
    }
    if (required.length > 0) {
      return { allow: true, requires_approval: true, determining_policies: ids(required), policy_version: policyVersion };
    }
    return { allow: true, requires_approval: false, determining_policies: ids(metas), policy_version: policyVersion };
  }
}
