// What `latchgate verify` learns of one audit_events row from the row alone:
// its hash recomputed, its parsed event checked against the canonical form,
// the stored hash and the indexed columns, the receipt it names, its type for
// the state checks, and its Merkle leaf hash. Pure, so the same function runs
// in the walk's own thread for small ledgers and in worker threads for large
// ones (verify-pool.ts); the walk (verify.ts) then checks what links rows.
import { canonicalize, isCanonicalText } from '../crypto/jcs.js';
import { eventHash, indexedColumns, type IndexedColumns } from './event-row.js';
import { leafHashOfText } from './tree-recompute.js';
import type { AuditEvent } from '../core/audit-event.js';

export interface Row extends IndexedColumns {
  id: number;
  event_json: string;
  hash: string;
}

/** A row as SQLite hands it over in raw mode (cheaper to read and to send to a worker than an object): ROW_COLUMNS in order. */
export type RawRow = [id: number, trace_id: string, timestamp: string, event_type: string, principal: string | null, session_id: string | null, action_id: string | null, decision: string | null, event_json: string, hash: string];
export const ROW_COLUMNS = 'id, trace_id, timestamp, event_type, principal, session_id, action_id, decision, event_json, hash';

export const rowOf = (r: RawRow): Row => ({ id: r[0], trace_id: r[1], timestamp: r[2], event_type: r[3], principal: r[4], session_id: r[5], action_id: r[6], decision: r[7], event_json: r[8], hash: r[9] });

export interface NamedReceipt {
  receipt_id: string;
  receipt_hash: unknown;
}

export interface RowFacts {
  /** eventHash(event_json). */
  computed: string;
  /** Whether event_json parsed to an object; if not, problem says so. */
  isObject: boolean;
  /** The event's prev_hash (undefined when it has none or is no object). */
  linked: unknown;
  /** Why the row's own content is wrong (edited), or null. */
  problem: string | null;
  /** The receipt the event names (execution.receipt_id), if any. */
  named: NamedReceipt | null;
  /** The row's type for the state checks: the event's own event_type, else the column's. */
  type: string;
  /** RFC 9162 leaf hash of event_json. */
  leaf: Uint8Array;
}

/** An event's execution.receipt_id and receipt_hash, when it names a receipt. */
export function receiptNamed(event: AuditEvent): NamedReceipt | null {
  const x = event.execution;
  return x && typeof x === 'object' && typeof x.receipt_id === 'string' ? { receipt_id: x.receipt_id, receipt_hash: x.receipt_hash } : null;
}

/** The type a row counts as for the state checks (state-record.ts): the event's own event_type, else the column's. */
export const recordType = (event: unknown, column: string): string => {
  const t = (event as { event_type?: unknown } | null | undefined)?.event_type;
  return typeof t === 'string' ? t : column;
};

const NOT_JSON = Symbol('not JSON');

export function rowFacts(row: Row): RowFacts {
  const computed = eventHash(row.event_json);
  let parsed: unknown = NOT_JSON;
  try {
    parsed = JSON.parse(row.event_json);
  } catch {
    // contentProblem names it
  }
  const isObject = parsed !== NOT_JSON && parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed);
  const event = isObject ? (parsed as AuditEvent) : undefined;
  return {
    computed,
    isObject,
    linked: event?.prev_hash,
    problem: contentProblem(row, parsed, computed),
    named: event ? receiptNamed(event) : null,
    type: recordType(parsed === NOT_JSON ? undefined : parsed, row.event_type),
    leaf: leafHashOfText(row.event_json),
  };
}

function contentProblem(row: Row, parsed: unknown, computed: string): string | null {
  if (parsed === NOT_JSON) return 'event_json is not valid JSON: the event was edited';
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return 'event_json is not an object: the event was edited';
  const event = parsed as AuditEvent;
  if (!isCanonicalText(row.event_json, event)) {
    let canonical: string;
    try {
      canonical = canonicalize(event);
    } catch (e) {
      return `event_json cannot be canonicalised (${(e as Error).message}): the event was edited`;
    }
    if (canonical !== row.event_json) return 'event_json is not in canonical (JCS) form: it was edited outside the ledger';
  }
  if (computed !== row.hash) return 'the stored hash does not match event_json: the event was edited';
  const cols = indexedColumns(event);
  for (const col in cols) {
    const want = cols[col as keyof IndexedColumns];
    const have = row[col as keyof Row];
    if (have !== want) return `column ${col} (${JSON.stringify(have)}) disagrees with event_json (${JSON.stringify(want)}): the row was edited`;
  }
  return null;
}
