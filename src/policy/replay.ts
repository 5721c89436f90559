// `latchgate policy replay`: the decisions a ledger recorded, made again by
// another policy, and every one that would come out differently. Each
// action_call event with a policy decision carries the input it was decided
// on (src/policy/recorded-input.ts) and names the policy data by its data
// version; the data is rebuilt from the chain (src/policy/data-history.ts),
// or is the data the tables hold now when asked for by name (data
// "current"). Nothing is executed and nothing written: the ledger is opened
// read-only. A decision that cannot be made again (an event from before
// inputs were recorded, data the chain cannot rebuild, an edited event) is
// counted, with why, never dropped.
import type { AuditEvent } from '../core/audit-event.js';
import { openDbReadOnly, type Db } from '../ledger/db.js';
import { canonicalize } from '../crypto/jcs.js';
import { eventHash, LedgerError } from '../ledger/ledger.js';
import { dataVersionOf, isPolicyDataEvent, PolicyDataHistory } from './data-history.js';
import type { PolicyData, PolicyEngine, PolicyEngineKind } from './engine.js';
import { inputOfEvent } from './recorded-input.js';
import { readPolicyData } from './store.js';
import type { PolicyDecision } from './types.js';

export type Outcome = 'allow' | 'deny' | 'pending_approval';
const OUTCOMES: readonly string[] = ['allow', 'deny', 'pending_approval'];

/** Which policy data a replayed decision is made on. */
export type ReplayData = 'recorded' | 'current';

export interface ReplayOptions {
  /** Only decisions recorded at or after this time (ISO 8601, UTC). */
  since?: string;
  /** Only decisions recorded before this time. */
  until?: string;
  /** Only decisions about this action. */
  action?: string;
  /** Default "recorded": the data each decision was made on, rebuilt from the chain. */
  data?: ReplayData;
}

/** Decisions that change the same way: from, to, action, the candidate's reason and the recorded one. */
export interface ChangeGroup {
  from: Outcome;
  to: Outcome;
  action_id: string;
  /** The candidate's: its deny_reason, or the policies that allowed. */
  reason: string;
  /** The recorded decision's, the same way. */
  recorded_reason: string;
  count: number;
  trace_ids: string[];
}

export interface NotReplayable {
  reason: string;
  count: number;
  trace_ids: string[];
}

export interface ReplayReport {
  ledger: string;
  policy: { engine: PolicyEngineKind; version: string; files: string[] };
  data: ReplayData;
  filters: { since?: string; until?: string; action?: string };
  /** Decisions the filters select (runs an operator approved are not decisions: see approved_runs). */
  decisions: number;
  replayed: number;
  unchanged: number;
  changed: number;
  not_replayable: number;
  not_replayable_reasons: NotReplayable[];
  /** action_call events of runs an operator approved: decided by their held pending_approval event, not replayed again. */
  approved_runs: number;
  changes: ChangeGroup[];
}

export function outcomeOf(d: PolicyDecision): Outcome {
  return d.allow ? (d.requires_approval ? 'pending_approval' : 'allow') : 'deny';
}

const reasonOf = (outcome: string, denyReason: unknown, policies: unknown): string =>
  outcome === 'deny' ? (typeof denyReason === 'string' ? denyReason : '(no reason recorded)') : Array.isArray(policies) && policies.length ? policies.join(', ') : '-';

/** The events replay reads: decisions, and what sets the policy data. */
const TYPES = ['action_call', 'state_baseline', 'policy_accepted', 'policy_grant', 'policy_revoke', 'policy_allowlist_add', 'policy_allowlist_remove'];

/**
 * The events of TYPES in chain order, each with whether the chain still
 * holds it. Every row is read (from the table itself: the event_type column
 * and its index are not covered by the chain's hashes, and a substring test
 * of the text misses a type spelt with an escape) and its type taken from
 * the parsed event. A row's own hash is not enough to call it intact: whoever
 * edits an event can recompute that too, so the next event's prev_hash (or
 * chain_head, for the last) must still name it, and its text must be its
 * canonical form. (A break is put on the event before it: the edited one, or
 * the one before an inserted or deleted event.) A row that is not JSON at all is yielded too (event undefined): it
 * may have been a decision.
 */
function* chainEvents(db: Db): Generator<{ event: AuditEvent | undefined; traceId: string; edited: boolean }> {
  const head = db.prepare(`SELECT value FROM ledger_metadata WHERE key = 'chain_head'`).pluck().get() as string | undefined;
  const rows = db.prepare('SELECT trace_id, event_json, hash FROM audit_events ORDER BY id').iterate() as IterableIterator<{ trace_id: string; event_json: string; hash: string }>;
  let held: { event: AuditEvent | undefined; traceId: string; edited: boolean; hash: string } | undefined;
  const release = (nextLink: unknown) => {
    if (!held) return undefined;
    const out = { event: held.event, traceId: held.traceId, edited: held.edited || nextLink !== held.hash };
    return out.event === undefined || TYPES.includes(String(out.event.event_type)) ? out : undefined;
  };
  for (const r of rows) {
    let event: AuditEvent | undefined;
    try {
      const v: unknown = JSON.parse(r.event_json);
      event = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as AuditEvent) : undefined;
    } catch {
      event = undefined;
    }
    const out = release(event?.prev_hash);
    if (out) yield out;
    const hash = eventHash(r.event_json);
    let canonical = false;
    try {
      canonical = event !== undefined && canonicalize(event) === r.event_json;
    } catch {
      // no canonical form: edited
    }
    held = { event, traceId: r.trace_id, hash, edited: !canonical || hash !== r.hash };
  }
  const last = release(head);
  if (last) yield last;
}

/** Replays the decisions of the ledger open in `db` with `engine`. */
export async function replayDecisions(db: Db, name: string, engine: PolicyEngine, files: string[], opts: ReplayOptions = {}): Promise<ReplayReport> {
  const dataMode = opts.data ?? 'recorded';
  let current: PolicyData | undefined;
  if (dataMode === 'current') {
    const d = db.transaction(() => readPolicyData(db))();
    if (!d) throw new LedgerError(`${name} holds no policy data tables: --data current has nothing to use; use --data recorded`, 'no_policy_data');
    current = d;
  }
  const history = new PolicyDataHistory();
  const report: ReplayReport = {
    ledger: name,
    policy: { engine: engine.kind, version: engine.version, files },
    data: dataMode,
    filters: { ...(opts.since ? { since: opts.since } : {}), ...(opts.until ? { until: opts.until } : {}), ...(opts.action ? { action: opts.action } : {}) },
    decisions: 0,
    replayed: 0,
    unchanged: 0,
    changed: 0,
    not_replayable: 0,
    not_replayable_reasons: [],
    approved_runs: 0,
    changes: [],
  };
  const groups = new Map<string, ChangeGroup>();
  const skipped = new Map<string, NotReplayable>();
  const notReplayable = (reason: string, traceId: string) => {
    let s = skipped.get(reason);
    if (!s) skipped.set(reason, (s = { reason, count: 0, trace_ids: [] }));
    s.count++;
    s.trace_ids.push(traceId);
    report.not_replayable++;
  };

  for (const { event: e, traceId, edited } of chainEvents(db)) {
    if (!e) {
      // Its type cannot be read, so it cannot be left out as "not a decision".
      report.decisions++;
      notReplayable('the event is not a JSON object: it was edited after it was written, and may have been a decision (run latchgate verify)', traceId);
      continue;
    }
    if (isPolicyDataEvent(e.event_type)) {
      if (current) continue; // --data current: the history is not used
      if (edited) history.lose(`the ${e.event_type} event ${String(e.trace_id)} was edited after it was written (run latchgate verify)`);
      else history.apply(e);
      continue;
    }
    if (e.event_type !== 'action_call' || typeof e.policy?.decision !== 'string') continue;
    if (opts.action !== undefined && e.action?.action_id !== opts.action) continue;
    if (opts.since !== undefined && !(e.timestamp >= opts.since)) continue;
    if (opts.until !== undefined && !(e.timestamp < opts.until)) continue;
    if (e.approval?.approved_by !== undefined) {
      report.approved_runs++;
      continue;
    }
    report.decisions++;
    const trace = String(e.trace_id);
    if (edited) {
      notReplayable('the chain does not hold at this event: it was edited after it was written (its hash, its canonical form, or the next event\'s link to it), or an event after it was inserted or deleted; run latchgate verify', trace);
      continue;
    }
    const from = e.policy.decision;
    if (!OUTCOMES.includes(from)) {
      notReplayable(`policy.decision ${JSON.stringify(from)} is not allow, deny or pending_approval`, trace);
      continue;
    }
    const rebuilt = inputOfEvent(e);
    if ('problem' in rebuilt) {
      notReplayable(`no recorded input: ${rebuilt.problem}`, trace);
      continue;
    }
    let data = current;
    if (!data) {
      const version = dataVersionOf(e.policy.policy_version);
      const found = version === null ? { problem: `policy_version ${JSON.stringify(e.policy.policy_version)} names no policy data version` } : history.lookup(version);
      if ('problem' in found) {
        notReplayable(`policy data unknown: ${found.problem}`, trace);
        continue;
      }
      data = found.data;
    }
    const d = await engine.decide(rebuilt.input, data);
    report.replayed++;
    const to = outcomeOf(d);
    const reason = reasonOf(to, d.deny_reason, d.determining_policies);
    const recorded = reasonOf(from, e.policy.deny_reason, e.policy.determining_policies);
    if (to === from && (to !== 'deny' || reason === recorded)) {
      report.unchanged++;
      continue;
    }
    report.changed++;
    const action = e.action?.action_id ?? '';
    const key = JSON.stringify([from, to, action, reason, recorded]);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { from: from as Outcome, to, action_id: action, reason, recorded_reason: recorded, count: 0, trace_ids: [] }));
    g.count++;
    g.trace_ids.push(trace);
  }
  const order = <T extends { count: number }>(xs: T[], key: (x: T) => string) => xs.sort((a, b) => b.count - a.count || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  report.changes = order([...groups.values()], (g) => JSON.stringify([g.from, g.to, g.action_id, g.reason, g.recorded_reason]));
  report.not_replayable_reasons = order([...skipped.values()], (s) => s.reason);
  return report;
}

/** Replays the decisions of the ledger file at `path`, opened read-only (nothing in its directory is written). */
export async function replayLedgerFile(path: string, engine: PolicyEngine, files: string[], opts: ReplayOptions = {}): Promise<ReplayReport> {
  let db: Db;
  try {
    db = openDbReadOnly(path);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'SQLITE_CANTOPEN') throw new LedgerError(`cannot open the ledger ${path} to read it (${(e as Error).message}). Fix: point --ledger (or [state] dir) at the file that holds ledger.sqlite3`, 'ledger_unreadable');
    throw e;
  }
  try {
    const table = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'`).get();
    if (!table) throw new LedgerError(`${path} is not a latchgate ledger (it has no audit_events table)`, 'not_a_ledger');
    return await replayDecisions(db, path, engine, files, opts);
  } finally {
    db.close();
  }
}
