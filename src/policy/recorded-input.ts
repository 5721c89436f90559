// What a decision's ledger event keeps of the policy input, so that the
// exact document the engine got can be given to a policy again (`latchgate
// policy replay`). The event already names the principal and session
// (subject), the action's id, version, risk level and trust verdict
// (action) and the request_hash (request): policy.input holds only the
// other members, and leaves out a list member that is empty (absent is []).
// budgets_before is kept as the engine saw it: the event's own
// budgets_before is the debit's (taken later) on a call that ran.
import type { AuditEventInput } from '../core/audit-event.js';
import type { PolicyInput } from './types.js';

/** The members of PolicyInput that the event holds elsewhere, and where. */
type FromEvent = 'principal' | 'session_id' | 'action_id' | 'action_version' | 'action_risk_level' | 'action_trust_verdict' | 'request_hash';

/** policy.input of a decision event: PolicyInput without what the event holds elsewhere, empty lists left out. */
export type RecordedInput = Omit<PolicyInput, FromEvent | ListMember> & Partial<Pick<PolicyInput, ListMember>>;

const LISTS = ['scopes', 'required_scopes', 'requested_sinks', 'requested_secrets', 'unresolved_domains', 'unresolved_paths'] as const;
type ListMember = (typeof LISTS)[number];

/** policy.input for the event of a decision made on `input`. */
export function recordedInput(input: PolicyInput): RecordedInput {
  const r: RecordedInput = { action_category: input.action_category, egress_profile: input.egress_profile, budgets_before: input.budgets_before };
  for (const k of LISTS) if (input[k].length > 0) r[k] = input[k];
  if (input.fs_path !== undefined) r.fs_path = input.fs_path;
  return r;
}

/** The input a decision event was decided on, or why it cannot be rebuilt (the event names the missing field). */
export type RebuiltInput = { input: PolicyInput } | { problem: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The PolicyInput a decision event records: policy.input with the members
 * the event holds elsewhere and the empty lists put back. An event written
 * before inputs were recorded has no policy.input. The input is not checked
 * against the schema here: the engine does that, as it did when deciding.
 */
export function inputOfEvent(e: AuditEventInput): RebuiltInput {
  const rec = e.policy && (e.policy as Record<string, unknown>).input;
  if (rec === undefined) return { problem: 'policy.input is absent (the event was written before decisions recorded their input)' };
  if (!isObject(rec)) return { problem: 'policy.input is not an object' };
  const fromEvent: [FromEvent, string, unknown][] = [
    ['principal', 'subject.principal', e.subject?.principal],
    ['session_id', 'subject.session_id', e.subject?.session_id],
    ['action_id', 'action.action_id', e.action?.action_id],
    ['action_version', 'action.action_version', e.action?.action_version],
    ['action_risk_level', 'action.risk_level', e.action?.risk_level],
    ['action_trust_verdict', 'action.action_trust_verdict', e.action?.action_trust_verdict],
    ['request_hash', 'request.request_hash', e.request?.request_hash],
  ];
  for (const [member, field, value] of fromEvent) {
    if (value === undefined) return { problem: `${field} is absent (policy input member ${member})` };
  }
  // fromEntries defines own properties (a recorded "__proto__" stays a member); later entries win.
  const input = Object.fromEntries([...fromEvent.map(([member, , value]) => [member, value]), ...LISTS.map((k) => [k, []]), ...Object.entries(rec)]);
  return { input: input as unknown as PolicyInput };
}
