// Every ledger event type, defined once: what it means, which fields it
// carries, which keys its details hold and which modules write it. The
// ledger refuses an event that does not fit its entry (checkEvent, called by
// Ledger.append and commitEvidence), AuditEventInput.event_type is the union
// of the names here, docs/EVENTS.md is generated from it
// (scripts/gen-event-docs.mjs) and `latchgate audit --event-type` completes
// from it. Adding an event type is adding one entry.
import type { AuditEventInput, Decision } from './audit-event.js';

export type Presence = 'required' | 'optional';

/**
 * The fields an entry declares. event_type and trace_id belong to every
 * event (the ledger adds trace_id when absent, and timestamp and prev_hash
 * always), sandbox_degraded to every event written while a box runs degraded.
 * A dotted path names one key of a field's object (subject.session_id).
 */
export type EventField = Exclude<keyof AuditEventInput, 'event_type' | 'trace_id' | 'sandbox_degraded'>;
export type FieldPath = EventField | `${Exclude<EventField, 'decision' | 'details'>}.${string}`;

export interface EventTypeSpec {
  /** One line: what happened. */
  meaning: string;
  /** The modules that write it (a path under src/). */
  emitters: readonly string[];
  /** Fields not listed are not written for this type. */
  fields: Readonly<Partial<Record<FieldPath, Presence>>>;
  /** The keys of details, when fields lists details. */
  details?: Readonly<Record<string, Presence>>;
  /** Repeated refusals of this type may be counted into summary events (src/ledger/coalesce.ts). */
  coalesced?: boolean;
}

const R = 'required';
const O = 'optional';

/** An operator's act through the admin socket or the CLI (src/gate/admin.ts, Admin.act). */
const ADMIN_ACT = { decision: R, operator: R, subject: R, details: R } as const;
const ADMIN = ['src/gate/admin.ts'];
/**
 * What every policy store change records (src/policy/store.ts, PolicyStore.change): policy_digest is
 * the SHA-256 of the JCS of the complete policy data after the change, which the gate and `latchgate
 * verify` compare with the policy tables (src/gate/state-check.ts).
 */
const POLICY_CHANGE = { principal: R, changed: R, store_version_before: R, store_version_after: R, policy_digest: R } as const;
/** A refusal by the gate, before or after a lease was verified. */
const GATE_REFUSAL = { decision: R, subject: R, error: R } as const;
/** A record of the box launcher: the box's principal is the subject. */
const LAUNCHER = { decision: R, subject: R, details: R } as const;

const CATALOGUE = {
  action_call: {
    meaning: 'An execution of an action: held for approval, refused, or run with its receipt',
    emitters: ['src/gate/pipeline.ts', 'src/gate/stages/hold-for-approval.ts'],
    fields: {
      decision: R,
      subject: R,
      'subject.session_id': O,
      action: R,
      request: O,
      policy: O,
      // What a decision needs beyond the event's other fields to be made again (src/policy/recorded-input.ts);
      // absent on a run an operator approved (its held pending_approval event has it) and on events written before.
      'policy.input': O,
      budgets_before: O,
      budgets_after: O,
      execution: O,
      // The receipt of a run (src/ledger/ledger.ts, commitEvidence): its id and result_hash, so this chained event proves it.
      'execution.receipt_id': O,
      'execution.receipt_hash': O,
      approval: O,
      error: O,
      details: O,
    },
    // budget_window: the window that ran out, on a budget_exhausted refusal (src/gate/budget.ts, ExhaustedWindow).
    // budget_debit: the windows a run's debit took from, its cost and whether it was refunded (src/gate/budget-check.ts).
    details: { budget_window: O, budget_debit: O },
    coalesced: true,
  },
  execution_interrupted: {
    meaning: 'A gate found the intent of an execution whose gate process stopped (a crash, a kill) after dispatching it and before its receipt: the outcome is unknown, and the same request is not run again (previous_outcome_unknown)',
    emitters: ['src/gate/interrupted.ts'],
    // trace_id is the intent's: the action_call of that trace was never written.
    fields: { decision: R, subject: R, action: R, execution: R, 'execution.grant_id': R, details: R },
    details: { started_at: R, instance_id: R, request_hash: R },
  },
  idempotent_replay: {
    meaning: 'A retried execution (same Idempotency-Key, same request) answered with the first one\'s stored answer: nothing ran again',
    emitters: ['src/gate/stages/replay-idempotent.ts'],
    fields: { decision: R, subject: R, 'subject.session_id': R, action: R, request: R, details: R },
    details: { idempotency_key: R, first_trace_id: R, status: R },
  },
  lease_issued: {
    meaning: 'A lease (session) issued to a principal',
    emitters: ['src/gate/service.ts'],
    fields: { decision: R, subject: R, 'subject.session_id': R, details: R },
    details: { scopes: R, budgets: R, expires_at: R, token_id: O },
  },
  lease_denied: {
    meaning: 'A lease request refused',
    emitters: ['src/gate/service.ts'],
    fields: GATE_REFUSAL,
    coalesced: true,
  },
  request_refused: {
    meaning: 'A request refused with no event of its own (a malformed or oversized body, an unidentified caller, an unknown approval...)',
    emitters: ['src/gate/service.ts'],
    fields: { ...GATE_REFUSAL, details: R },
    details: { route: R, peer: O },
    coalesced: true,
  },
  approval_expired: {
    meaning: 'A pending approval expired before an operator decided it',
    emitters: ['src/gate/service.ts'],
    fields: { decision: R, subject: R, 'subject.session_id': R, action: R, approval: R, details: R },
    details: { expires_at: R },
  },
  approval_granted: {
    meaning: 'An operator approved a pending execution (it runs next, as its own action_call)',
    emitters: ADMIN,
    fields: ADMIN_ACT,
    details: { approval_id: R, plan_hash: R, approval_hash: R, action_id: R, principal: R },
  },
  approval_denied: {
    meaning: 'An operator denied a pending execution',
    emitters: ADMIN,
    fields: ADMIN_ACT,
    details: { approval_id: R, plan_hash: R, reason: R, action_id: R, principal: R },
  },
  approval_revoked: {
    meaning: 'An approval will not run: the lease it was requested under was revoked or expired (marked by a revoke, or refused when approved)',
    emitters: ADMIN,
    fields: { decision: R, operator: R, subject: R, 'subject.session_id': R, action: R, approval: R, details: R },
    details: { cause: R, epoch: O },
  },
  admin_revoke_all: {
    meaning: 'An operator revoked every lease and grant issued so far (the revocation epoch advanced to details.epoch, in the same transaction), and every pending approval with them',
    emitters: ADMIN,
    fields: ADMIN_ACT,
    details: { epoch: R, approvals_revoked: R },
  },
  admin_drain: {
    meaning: 'An operator set the gate draining (new executions are refused)',
    emitters: ADMIN,
    fields: ADMIN_ACT,
    details: {},
  },
  admin_reload: {
    meaning: 'An operator reloaded the action manifests (ok false: refused, the previous set stays)',
    emitters: ADMIN,
    fields: ADMIN_ACT,
    details: { ok: R, generation: R, actions: O, errors: O },
  },
  admin_secrets_reloaded: {
    meaning: "An operator had the SOPS secrets file read again (`latchgate reload`): file, the number of values it holds, or ok false and why it cannot be read; never a value",
    emitters: ADMIN,
    fields: ADMIN_ACT,
    details: { ok: R, file: R, secrets: O, error: O },
  },
  admin_receipt_keys_read: {
    meaning: "An operator read the receipt keys' public half",
    emitters: ADMIN,
    fields: ADMIN_ACT,
    details: {},
  },
  client_token_created: {
    meaning: 'An operator issued a client token for callers on the TCP listener (its secret is never recorded)',
    emitters: ADMIN,
    fields: ADMIN_ACT,
    // tokens_digest: the digest of the whole client_tokens table after the change (src/gate/tokens.ts).
    details: { token_id: R, principal: R, scopes: R, expires_at: R, tokens_digest: O },
  },
  client_token_revoked: {
    meaning: 'An operator revoked a client token: from the next request on, it and every lease issued through it are refused',
    emitters: ADMIN,
    fields: ADMIN_ACT,
    details: { token_id: R, principal: R, tokens_digest: O },
  },
  admin_keys_rotated: {
    meaning: 'An operator rotated a signing key (receipt, grant, lease or checkpoint); processes lists every running gate process (instance_id, pid, role, started_at, kid, picked_up, self, note) and whether it signs with the new kid',
    emitters: ADMIN,
    fields: ADMIN_ACT,
    details: { kind: R, kid: R, previous_kid: R, all_picked_up: R, processes: R },
  },
  policy_grant: {
    meaning: 'An operator granted a principal actions and sinks',
    emitters: ['src/policy/store.ts', 'src/gate/admin.ts'],
    fields: ADMIN_ACT,
    details: { ...POLICY_CHANGE, actions: R, sinks: R, added_actions: R, added_sinks: R, created_entry: R, inherits_wildcard: O },
  },
  policy_revoke: {
    meaning: 'An operator took actions (and sinks) away from a principal',
    emitters: ['src/policy/store.ts', 'src/gate/admin.ts'],
    fields: ADMIN_ACT,
    details: { ...POLICY_CHANGE, actions: R, sinks: R, removed_actions: R, removed_sinks: R, removed_entry: R },
  },
  policy_allowlist_add: {
    meaning: "A principal's calls of an action skip approval from now on (a change the policy store describes; no command records it yet)",
    emitters: ['src/policy/store.ts'],
    fields: ADMIN_ACT,
    details: { ...POLICY_CHANGE, action_id: R },
  },
  policy_allowlist_remove: {
    meaning: "A principal's calls of an action need approval again (a change the policy store describes; no command records it yet)",
    emitters: ['src/policy/store.ts'],
    fields: ADMIN_ACT,
    details: { ...POLICY_CHANGE, action_id: R },
  },
  policy_accepted: {
    meaning: 'An operator accepted the policy data as it is now (after it was found to differ from what the chain recorded): details.policy_digest is its digest, data the data, recorded_digest the digest the chain held before',
    emitters: ADMIN,
    fields: ADMIN_ACT,
    // data: the complete policy data accepted, or data_omitted saying why not (src/policy/data-history.ts).
    details: { policy_digest: R, recorded_digest: R, store_version: R, data: O, data_omitted: O },
  },
  state_baseline: {
    meaning: 'The first record of the gate state kept outside the chain (revocation epoch, policy data digest and the data), written once by the first gate start on a ledger without one',
    emitters: ['src/gate/state-baseline.ts'],
    fields: { decision: R, details: R },
    // data: the complete policy data, where the chain's record of it starts, or data_omitted saying why not (src/policy/data-history.ts).
    details: { epoch: R, epoch_in_table: R, policy_digest: R, store_version: R, data: O, data_omitted: O },
  },
  budget_counts_restored: {
    meaning: 'A gate found budget windows counting fewer calls than the chain records (the table was edited) and put them back to the chain\'s count',
    emitters: ['src/gate/budget-check.ts'],
    fields: { decision: R, details: R },
    details: { windows: R },
  },
  key_history_roots: {
    meaning: 'The root of each key history (its first key, or the key that sealed an older history): written when a gate first sees a kind with a key; the roots never change, and a history with another root is refused',
    emitters: ['src/ledger/key-roots.ts'],
    fields: { decision: R, details: R },
    details: { roots: R },
  },
  checkpoint_refused: {
    meaning: "A gate or `latchgate checkpoint` signed no checkpoint of the ledger's tree: the tree no longer extends the latest checkpoint (events deleted, history rewritten) or the ledger's id was edited (reason, error); recorded once per process and reason",
    emitters: ['src/ledger/checkpoint-schedule.ts', 'src/cli/checkpoint.ts'],
    fields: { decision: R, details: R },
    details: { reason: R, error: R },
  },
  checkpoint_sink_failed: {
    meaning: 'A checkpoint sink (a directory, command or HTTPS endpoint of [ledger.checkpoints.sinks], or checkpoints.log) failed to take a checkpoint: recorded when it starts failing; it is retried at every later checkpoint, with what waits for it (pending), until it takes them',
    emitters: ['src/ledger/checkpoint-sinks.ts'],
    fields: { decision: R, details: R },
    details: { sink: R, target: R, size: R, error: R, pending: R },
  },
  checkpoint_sink_recovered: {
    meaning: 'A checkpoint sink that had failed took the checkpoints waiting for it (failures: the failed rounds before; delivered_size: the largest it now holds)',
    emitters: ['src/ledger/checkpoint-sinks.ts'],
    fields: { decision: R, details: R },
    details: { sink: R, target: R, failures: R, delivered_size: R },
  },
  egress: {
    meaning: "A CONNECT through the box's egress proxy: refused, or a tunnel recorded when it closed",
    emitters: ['src/egress/connect-proxy.ts'],
    fields: { decision: R, subject: O, details: R },
    details: {
      host: R,
      port: R,
      resolved_address: R,
      bytes_up: R,
      bytes_down: R,
      duration_ms: R,
      reason: R,
      transport: R,
      status: R,
      pinned: O,
      detail: O,
      target: O,
      method: O,
      addresses: O,
      // Through the host's upstream proxy: its redacted URL and where it was configured ({url, source}), and the host:port it was asked to CONNECT to.
      upstream_proxy: O,
      proxy_target: O,
    },
    coalesced: true,
  },
  credential_proxy: {
    meaning: "A request through the box's credential proxy (the key added on the way out)",
    emitters: ['src/egress/credential-proxy.ts'],
    fields: { decision: R, subject: O, details: R },
    details: { route: R, method: R, path: R, status: R, bytes_up: R, bytes_down: R, duration_ms: R, redactions: R, reason: R, upstream_proxy: O },
    coalesced: true,
  },
  egress_dns: {
    meaning: "A DNS query to the box's resolver, refused at once (the box resolves no names; hosts are reached by name through the CONNECT proxy): the name, its type, whether the proxy would allow it",
    emitters: ['src/egress/box-dns.ts'],
    fields: { decision: R, subject: O, details: R },
    // name and qtype are null when the query could not be read (reason malformed_query, detail says why).
    details: { name: R, qtype: R, reason: R, rcode: R, transport: R, allowlisted: R, detail: O },
    coalesced: true,
  },
  sandbox_degraded: {
    meaning: 'A box started in a weaker mode the user asked for',
    emitters: ['src/sandbox/box-events.ts'],
    fields: LAUNCHER,
    details: { degraded: R, workspace: R },
  },
  sandbox_host_exec: {
    meaning: 'Something the box left that the host would run (a new git directory, a tool config, a home dotfile...): disabled, kept, reported or not disabled',
    emitters: ['src/sandbox/box-events.ts'],
    fields: LAUNCHER,
    details: { kind: R, path: R, action: R, moved_to: O, gitlinks: O },
  },
  state_file_merge: {
    meaning: "What became of an agent state file after the box ran (merged, unchanged or kept aside); key paths only, never values",
    emitters: ['src/sandbox/box-events.ts'],
    fields: LAUNCHER,
    details: { path: R, outcome: R, dropped: R, kept_at: O, reason: O },
  },
} satisfies Record<string, EventTypeSpec>;

export type EventType = keyof typeof CATALOGUE;
export const EVENT_CATALOGUE: Readonly<Record<EventType, EventTypeSpec>> = CATALOGUE;
/** The names, in catalogue order. */
export const EVENT_TYPES = Object.keys(CATALOGUE) as readonly EventType[];

/**
 * Names that select more than their own type in `latchgate audit --event-type`
 * and the admin API's event_type: egress is every decision of the box's
 * network exits (the CONNECT proxy, the credential proxy, the resolver).
 */
export const EVENT_TYPE_GROUPS: Readonly<Partial<Record<EventType, readonly EventType[]>>> = {
  egress: ['egress', 'credential_proxy', 'egress_dns'],
};

/** The event types a filter on name selects: its group, or itself. */
export function eventTypesSelectedBy(name: string): readonly string[] {
  return (isEventType(name) ? EVENT_TYPE_GROUPS[name] : undefined) ?? [name];
}

export function isEventType(name: unknown): name is EventType {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(CATALOGUE, name);
}

/**
 * The ledger's indexed columns (src/ledger/ledger.ts: indexedColumns and
 * the audit_events indexes), the event field each is read from, and the
 * `latchgate audit` option that filters on it.
 */
export const INDEXED_FIELDS = [
  { column: 'event_type', field: 'event_type', option: '--event-type' },
  { column: 'trace_id', field: 'trace_id', option: '--trace-id' },
  { column: 'timestamp', field: 'timestamp', option: '--after, --before' },
  { column: 'decision', field: 'decision', option: '--decision' },
  { column: 'principal', field: 'subject.principal', option: '--principal' },
  { column: 'session_id', field: 'subject.session_id', option: '--session-id' },
  { column: 'action_id', field: 'action.action_id', option: '--action' },
] as const;

/** The indexed fields an event type can fill (every type fills event_type, trace_id and timestamp). */
export function indexedFieldsOf(name: EventType): (typeof INDEXED_FIELDS)[number][] {
  const fields = EVENT_CATALOGUE[name].fields as Record<string, Presence | undefined>;
  return INDEXED_FIELDS.filter((f) => {
    const [top, key] = f.field.split('.') as [string, string | undefined];
    if (top === 'event_type' || top === 'trace_id' || top === 'timestamp') return true;
    // subject.principal and action.action_id come with their object; other keys are listed.
    if (key === undefined || key === 'principal' || key === 'action_id') return fields[top] !== undefined;
    return fields[f.field] !== undefined;
  });
}

/** A summary of counted refusals carries its type's decision and details.coalesced; its other fields are those the kind covers. */
export const SUMMARY_FIELDS: readonly string[] = ['decision', 'details.coalesced'];

const DECISIONS: Record<Decision, true> = { allow: true, allow_unverified: true, deny: true, pending_approval: true, error: true };

/** Why an event cannot be written: the event type (when it has one), the field at fault, and a sentence naming both. */
export interface EventProblem {
  event_type: string | null;
  field: string;
  message: string;
}

/** What is wrong with a field's value: said of the field itself, or of one key of it (key). */
type Check = (v: unknown) => { key?: string; what: string } | null;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const object: Check = (v) => (isObject(v) ? null : { what: 'must be an object' });
/** An object whose first key is a string, and whose other keys given are strings (strings) or numbers (numbers) when present. */
const objectWith =
  (required: string, strings: string[] = [], numbers: string[] = []): Check =>
  (v) => {
    if (!isObject(v)) return { what: 'must be an object' };
    if (typeof v[required] !== 'string') return { key: required, what: 'must be a string' };
    const str = strings.find((k) => v[k] !== undefined && typeof v[k] !== 'string');
    if (str) return { key: str, what: 'must be a string' };
    const num = numbers.find((k) => v[k] !== undefined && typeof v[k] !== 'number');
    return num ? { key: num, what: 'must be a number' } : null;
  };
const is = (ok: (v: unknown) => boolean, what: string): Check => (v) => (ok(v) ? null : { what });

/**
 * The shape of each top-level field, whatever the type. The mapped type makes
 * the compiler insist on one entry per field of AuditEventInput.
 */
const SHAPES: { [K in keyof Required<AuditEventInput>]: Check } = {
  event_type: is((v) => typeof v === 'string', 'must be a string'),
  trace_id: is((v) => typeof v === 'string' && v !== '', 'must be a non-empty string'),
  decision: is((v) => typeof v === 'string' && Object.prototype.hasOwnProperty.call(DECISIONS, v), `must be one of ${Object.keys(DECISIONS).join(', ')}`),
  subject: objectWith('principal', ['session_id', 'lease_jti', 'identity_method']),
  action: objectWith('action_id'),
  request: object,
  policy: object,
  budgets_before: object,
  budgets_after: object,
  execution: object,
  approval: object,
  operator: objectWith('name', [], ['uid']),
  error: objectWith('code', ['message']),
  details: object,
  sandbox_degraded: is((v) => typeof v === 'boolean', 'must be a boolean'),
};
/** Set by the ledger on every append; whatever a caller passes is replaced. */
const LEDGER_SET = new Set(['timestamp', 'prev_hash']);

/** The value at a one- or two-part path; undefined is absent (it is not written). */
function at(e: Record<string, unknown>, path: string): unknown {
  const [top, key] = path.split('.') as [string, string | undefined];
  const v = e[top];
  return key === undefined ? v : isObject(v) ? v[key] : undefined;
}

/**
 * The first reason the ledger must refuse this event, or null when it may be
 * written: not an object, an event_type not in the catalogue, a field that is
 * not an event field or has the wrong shape, or a field or details key its
 * type requires that is missing. Fields and keys a type does not list are
 * not refused here (undeclaredFields() names them, for the tests).
 */
export function checkEvent(input: unknown): EventProblem | null {
  if (!isObject(input)) return { event_type: null, field: 'event_type', message: 'an audit event must be an object with an event_type' };
  const e = input;
  const type = e.event_type;
  if (typeof type !== 'string' || type === '') return { event_type: null, field: 'event_type', message: 'an audit event needs a non-empty event_type' };
  const problem = (field: string, what: string): EventProblem => ({ event_type: type, field, message: `${type} event: ${field} ${what}` });
  if (!isEventType(type)) {
    return { event_type: type, field: 'event_type', message: `event_type ${JSON.stringify(type)} is not in the event catalogue (src/core/event-catalogue.ts)` };
  }
  for (const [k, v] of Object.entries(e)) {
    if (v === undefined || LEDGER_SET.has(k)) continue;
    if (!Object.prototype.hasOwnProperty.call(SHAPES, k)) return problem(k, 'is not a field of a ledger event');
    const bad = SHAPES[k as keyof AuditEventInput](v);
    if (bad) return problem(bad.key === undefined ? k : `${k}.${bad.key}`, bad.what);
  }
  const spec = EVENT_CATALOGUE[type];
  const summary = spec.coalesced === true && isObject(e.details) && e.details.coalesced !== undefined;
  if (summary) {
    for (const f of SUMMARY_FIELDS) if (at(e, f) === undefined) return problem(f, 'is missing (a summary of counted refusals carries it)');
    return null;
  }
  for (const [f, p] of Object.entries(spec.fields)) {
    if (p === 'required' && at(e, f) === undefined) return problem(f, 'is missing');
  }
  for (const [k, p] of Object.entries(spec.details ?? {})) {
    if (p === 'required' && at(e, `details.${k}`) === undefined) return problem(`details.${k}`, 'is missing');
  }
  return null;
}

/** The fields and details keys an event carries that its catalogue entry does not list (a catalogue left behind by its emitter). */
export function undeclaredFields(e: AuditEventInput): string[] {
  const spec = EVENT_CATALOGUE[e.event_type];
  if (!spec) return ['event_type'];
  const fields = spec.fields as Record<string, Presence | undefined>;
  const summary = spec.coalesced === true && e.details?.coalesced !== undefined;
  const out: string[] = [];
  for (const [k, v] of Object.entries(e)) {
    if (v === undefined || k === 'event_type' || k === 'trace_id' || k === 'sandbox_degraded' || LEDGER_SET.has(k)) continue;
    if (fields[k] === undefined && !(summary && k === 'details')) out.push(k);
  }
  const session = (e.subject as Record<string, unknown> | undefined)?.session_id;
  if (session !== undefined && fields['subject.session_id'] === undefined) out.push('subject.session_id');
  for (const [k, v] of Object.entries(e.details ?? {})) {
    if (v === undefined || (summary && k === 'coalesced')) continue;
    if (spec.details?.[k] === undefined) out.push(`details.${k}`);
  }
  return out;
}
