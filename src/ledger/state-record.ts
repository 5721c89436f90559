// What the hash chain recorded about the gate state kept outside it, in
// plain tables: the revocation epoch (every admin_revoke_all carries the new
// epoch) and the digest of the complete policy data (every policy change
// carries it). A state_baseline event records both once, on the first start
// of a gate on a ledger that had no such record. The gate and `latchgate
// verify` compare the tables with the newest record (src/gate/state-check.ts).
// Read-only; the rows found are checked against their stored hash, so an
// edited record is reported rather than believed.
import type { EventType } from '../core/event-catalogue.js';
import type { Db } from './db.js';
import { eventHash } from './event-row.js';
import { recordType } from './verify-row.js';

/** The events that record the revocation epoch (details.epoch). */
export const EPOCH_RECORDS = ['admin_revoke_all', 'state_baseline'] as const satisfies readonly EventType[];
/** The events that record the policy data's digest (details.policy_digest; older policy events carry none). */
export const POLICY_RECORDS = ['policy_grant', 'policy_revoke', 'policy_allowlist_add', 'policy_allowlist_remove', 'policy_accepted', 'state_baseline'] as const satisfies readonly EventType[];
/** Every type above. */
export const STATE_RECORDS: ReadonlySet<string> = new Set([...EPOCH_RECORDS, ...POLICY_RECORDS]);

export interface Recorded<T> {
  value: T;
  /** The recording event's row id, trace id and type. */
  id: number;
  trace_id: string;
  event_type: string;
  /** The row's event_json no longer matches its stored hash: the record was edited. */
  edited: boolean;
}

/**
 * The id of the newest event of these types (0 when none), to notice a new
 * record: one seek of the event_type index per type (a max() over one
 * equality is read from the index's end, whatever the number of events).
 */
export function newestRecordSql(types: readonly string[]): string {
  return `max(0, ${types.map((t) => `coalesce((SELECT max(id) FROM audit_events WHERE event_type = '${t}'), 0)`).join(', ')})`;
}

/** One row as the chain wrote it, read for a check of the state outside the chain. */
export interface ChainedRow {
  id: number;
  trace_id: string;
  /** The type its event_json names (the hashed bytes), not the indexed column's. */
  event_type: string;
  event: Record<string, unknown> | undefined;
  /** The event_json no longer matches its hash, or the event_type column disagrees with it: the row was edited. */
  edited: boolean;
}

/**
 * The rows whose event (the hashed JSON) is of one of these types, newest
 * first. Read from the table itself, never through an index (NOT INDEXED) and
 * never by the event_type column: neither is covered by the chain's hashes, so
 * either could be edited to hide a row from this look-up while every event
 * still verifies. A cheap substring test of event_json picks the candidates;
 * each is parsed and checked against its hash.
 */
export function* chainedRowsOf(db: Db, types: readonly string[]): Generator<ChainedRow> {
  const index = served.get(db);
  if (index) {
    yield* index.rowsOf(db, types);
    return;
  }
  const names = types.map((t) => `instr(event_json, '"event_type":${JSON.stringify(t).replace(/'/g, "''")}') > 0`).join(' OR ');
  const rows = db.prepare(`SELECT id, trace_id, event_type, event_json, hash FROM audit_events NOT INDEXED WHERE ${names} ORDER BY id DESC`).iterate() as IterableIterator<StoredRow>;
  const wanted = new Set(types);
  for (const r of rows) {
    const event = parseEvent(r.event_json);
    const type = recordType(event, r.event_type);
    if (!wanted.has(type)) continue; // the text appeared deeper in some other event
    yield { id: r.id, trace_id: r.trace_id, event_type: type, event, edited: eventHash(r.event_json) !== r.hash || r.event_type !== type };
  }
}

interface StoredRow {
  id: number;
  trace_id: string;
  event_type: string;
  event_json: string;
  hash: string;
}

function parseEvent(json: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(json) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The type a row is looked up by: its event_json's event_type, or the column's when event_json names none. */

/**
 * What the chain walk of `latchgate verify` learnt of every row, so the state
 * checks that follow it in the same read transaction find their rows without
 * a scan of the whole table each: the ids of each type (as chainedRowsOf
 * types a row) and the rows whose hash or event_type column disagreed with
 * event_json. A row is then read by its id (the table's own key, not an
 * index) and parsed again; the result is the scan's, row for row.
 */
export class ChainIndex {
  private readonly ids = new Map<string, number[]>();
  private readonly editedIds = new Set<number>();
  private last = -Infinity; // an attacker can store ids of 0 and below

  /** One row, in ascending id order: its event_type column, its type (recordType of its event) and whether its stored hash matched. */
  add(id: number, column: string, type: string, hashMatches: boolean): void {
    if (id <= this.last) throw new Error('internal: ChainIndex rows must come in ascending id order');
    this.last = id;
    let list = this.ids.get(type);
    if (!list) this.ids.set(type, (list = []));
    list.push(id);
    if (!hashMatches || column !== type) this.editedIds.add(id);
  }

  *rowsOf(db: Db, types: readonly string[]): Generator<ChainedRow> {
    const get = db.prepare('SELECT id, trace_id, event_type, event_json, hash FROM audit_events WHERE id = ?');
    // The scan's text test too: it also keeps rows whose own type is wanted only when some wanted name is in the text.
    const names = types.map((t) => `"event_type":${JSON.stringify(t)}`);
    const lists = [...new Set(types)].map((t) => this.ids.get(t) ?? []);
    const at = lists.map((l) => l.length - 1);
    for (;;) {
      // Newest first across the types: the largest id left.
      let k = -1;
      for (let i = 0; i < lists.length; i++) if (at[i]! >= 0 && (k < 0 || lists[i]![at[i]!]! > lists[k]![at[k]!]!)) k = i;
      if (k < 0) return;
      const id = lists[k]![at[k]!--]!;
      const r = get.get(id) as StoredRow | undefined;
      if (!r) throw new Error(`internal: event id=${id} read by the chain walk is gone from its snapshot`);
      if (!names.some((n) => r.event_json.includes(n))) continue;
      const event = parseEvent(r.event_json);
      yield { id: r.id, trace_id: r.trace_id, event_type: recordType(event, r.event_type), event, edited: this.editedIds.has(id) };
    }
  }
}

const served = new WeakMap<Db, ChainIndex>();

/** Runs fn with chainedRowsOf(db, ...) answered from index (built by a walk of every row in the same read transaction). */
export function withChainIndex<T>(db: Db, index: ChainIndex, fn: () => T): T {
  if (!db.inTransaction) throw new Error('internal: a ChainIndex holds only inside the read transaction that built it');
  served.set(db, index);
  try {
    return fn();
  } finally {
    served.delete(db);
  }
}

/**
 * The newest event of these types whose details[key] passes `valid`, or
 * null when the chain holds none (src/ledger/state-record.ts chainedRowsOf:
 * the table itself, each row checked against its hash).
 */
export function latestRecorded<T>(db: Db, types: readonly string[], key: string, valid: (v: unknown) => v is T): Recorded<T> | null {
  for (const r of chainedRowsOf(db, types)) {
    const v = (r.event?.details as Record<string, unknown> | undefined)?.[key];
    if (valid(v)) return { value: v, id: r.id, trace_id: r.trace_id, event_type: r.event_type, edited: r.edited };
    if (r.edited) return { value: undefined as T, id: r.id, trace_id: r.trace_id, event_type: r.event_type, edited: true };
  }
  return null;
}

export const isEpoch = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
export const isDigest = (v: unknown): v is string => typeof v === 'string' && /^sha256:[0-9a-f]{64}$/.test(v);

export const recordedEpoch = (db: Db): Recorded<number> | null => latestRecorded(db, EPOCH_RECORDS, 'epoch', isEpoch);
/**
 * The newest record of the epoch when it is below one the chain recorded
 * before it, or null. The epoch only moves forward, and the newest record is
 * what the table must hold; anyone who can write the database can append an
 * event to the chain (no key is needed), so a lowered table with an appended
 * record of the lower value would otherwise match. (A later revoke, past
 * both values, puts it right.)
 */
export function epochRegression(db: Db): { id: number; epoch: number; earlier: { id: number; epoch: number } } | null {
  const records = [...chainedRowsOf(db, EPOCH_RECORDS)].flatMap((r) => {
    const epoch = (r.event?.details as Record<string, unknown> | undefined)?.epoch;
    return r.edited || !isEpoch(epoch) ? [] : [{ id: r.id, epoch }]; // an edited record is the chain walk's finding
  });
  const [newest, ...earlier] = records; // newest first
  const highest = earlier.reduce<{ id: number; epoch: number } | undefined>((h, r) => (!h || r.epoch > h.epoch ? r : h), undefined);
  return newest && highest && newest.epoch < highest.epoch ? { ...newest, earlier: highest } : null;
}

export const recordedPolicyDigest = (db: Db): Recorded<string> | null => latestRecorded(db, POLICY_RECORDS, 'policy_digest', isDigest);
/** The events that record the digest of the client_tokens table after their change (details.tokens_digest). */
export const TOKEN_RECORDS = ['client_token_created', 'client_token_revoked'] as const satisfies readonly EventType[];
export const recordedTokensDigest = (db: Db): Recorded<string> | null => latestRecorded(db, TOKEN_RECORDS, 'tokens_digest', isDigest);

/** A table whose value differs from what the chain recorded, and how to put it right (in message). */
export interface StateMismatch {
  /** The table (and key) checked, e.g. gate_state.revocation_epoch. */
  table: string;
  /** The value in the table (null: absent). */
  found: number | string | null;
  /** The value the chain recorded last (null: none). */
  recorded: number | string | null;
  /** The event that recorded it. */
  recorded_by: { id: number; trace_id: string; event_type: string } | null;
  /** What is wrong, what the gate does about it, and the fix. */
  message: string;
}

/** The state kept outside the chain, compared with the chain (part of `latchgate verify`'s report). */
export interface StateReport {
  /** False until the first gate start records a baseline (state_baseline) or a later change records the policy digest. */
  baseline: boolean;
  values: Record<string, { table: number | string | null; recorded: number | string | null }>;
  mismatches: StateMismatch[];
}
