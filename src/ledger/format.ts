// Rendering of audit events for `latchgate audit --format table|json|jsonl|csv`
// and of a verify report. Event fields are attacker-influenced (principals,
// action ids, error messages), so the table escapes control characters (no
// terminal escape sequences reach the operator's terminal) and the CSV
// neutralises spreadsheet formulas.
import { canonicalize } from '../crypto/jcs.js';
import type { AuditEvent } from '../core/audit-event.js';
import type { StateReport } from './state-record.js';
import type { VerifyReport } from './verify.js';
import { checkpointLines } from './tree-verify.js';
import { textTable } from '../core/text-table.js';

export type AuditFormat = 'table' | 'json' | 'jsonl' | 'csv';
export const AUDIT_FORMATS: readonly AuditFormat[] = ['table', 'json', 'jsonl', 'csv'];

/** host, reason, error: what a refusal was of and why (a box exit's target, the gate's deny reason or error code). */
export const TABLE_COLUMNS = ['timestamp', 'event_type', 'decision', 'principal', 'action_id', 'host', 'reason', 'error', 'trace_id'] as const;
type TableColumn = (typeof TABLE_COLUMNS)[number];
/** A cell longer than this is cut (the whole value is in --format json). */
const TABLE_CELL_MAX = 60;
export const CSV_COLUMNS = [
  'timestamp',
  'event_type',
  'decision',
  'principal',
  'session_id',
  'action_id',
  'action_version',
  'request_hash',
  'deny_reason',
  'error_code',
  'operator',
  'trace_id',
  'prev_hash',
] as const;
export type CsvColumn = (typeof CSV_COLUMNS)[number];

/** The value of one named column of an event ('' when absent). */
export function eventField(e: AuditEvent, col: CsvColumn): string {
  switch (col) {
    case 'timestamp':
      return e.timestamp ?? '';
    case 'event_type':
      return e.event_type ?? '';
    case 'decision':
      return e.decision ?? '';
    case 'principal':
      return e.subject?.principal ?? '';
    case 'session_id':
      return e.subject?.session_id ?? '';
    case 'action_id':
      return e.action?.action_id ?? '';
    case 'action_version':
      return e.action?.action_version ?? '';
    case 'request_hash':
      return e.request?.request_hash ?? '';
    case 'deny_reason':
      return e.policy?.deny_reason ?? '';
    case 'error_code':
      return e.error?.code ?? '';
    case 'operator':
      return e.operator?.name ?? '';
    case 'trace_id':
      return e.trace_id ?? '';
    case 'prev_hash':
      return e.prev_hash ?? '';
  }
}

/** Control characters (C0, DEL, C1) and line/paragraph separators shown as \uXXXX escapes. */
export function escapeControl(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** One CSV field (RFC 4180): quoted when needed; a leading = + - @ TAB or CR gets a ' so spreadsheets do not run it. */
export function csvField(value: string): string {
  let v = value;
  if (/^[=+\-@\t\r]/.test(v)) v = `'${v}`;
  return /[",\r\n]/.test(v) || /^\s|\s$/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

export function csvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\r\n`;
}

export function csvRow(e: AuditEvent): string {
  return `${CSV_COLUMNS.map((c) => csvField(eventField(e, c))).join(',')}\r\n`;
}

/** One JSONL line: the event's canonical JSON (the bytes the chain hashes) and "\n". */
export function jsonlLine(e: AuditEvent): string {
  return `${canonicalize(e)}\n`;
}

export function formatTable(events: AuditEvent[]): string {
  return `${textTable(TABLE_COLUMNS.map((c) => c.toUpperCase()), events.map((e) => TABLE_COLUMNS.map((c) => escapeControl(tableCell(e, c)))))}\n`;
}

/** A table cell: the field, and for a summary of counted denials how many it stands for. */
function tableCell(e: AuditEvent, col: TableColumn): string {
  if (col === 'host' || col === 'reason' || col === 'error') {
    const v = refusalField(e, col);
    return v.length > TABLE_CELL_MAX ? `${v.slice(0, TABLE_CELL_MAX - 1)}…` : v;
  }
  const v = eventField(e, col);
  const count = (e.details?.coalesced as { count?: unknown } | undefined)?.count;
  return col === 'decision' && typeof count === 'number' ? `${v} x${count}` : v;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * What a refusal was of and why: the host (with its port) a box exit was
 * asked for, the name asked of its resolver or the credential route; the
 * reason (the exit's, or the policy's deny reason); the error code, or what
 * the exit found (a resolver or connect error).
 */
function refusalField(e: AuditEvent, col: 'host' | 'reason' | 'error'): string {
  const d = (e.details ?? {}) as Record<string, unknown>;
  switch (col) {
    case 'host': {
      const host = text(d.host);
      if (host) return typeof d.port === 'number' ? `${host}:${d.port}` : host;
      if (e.event_type === 'egress_dns') return text(d.name) ?? '';
      if (e.event_type === 'credential_proxy') return text(d.route) ? `route ${d.route as string}` : '';
      return '';
    }
    case 'reason':
      return text(d.reason) ?? text(e.policy?.deny_reason) ?? '';
    case 'error':
      return text(e.error?.code) ?? text(d.detail) ?? '';
  }
}

/** Renders events in one of the audit formats; the output ends with a newline (json: a pretty array). */
export function formatEvents(events: AuditEvent[], format: AuditFormat): string {
  switch (format) {
    case 'table':
      return formatTable(events);
    case 'json':
      return `${JSON.stringify(events, null, 2)}\n`;
    case 'jsonl':
      return events.map(jsonlLine).join('');
    case 'csv':
      return csvHeader() + events.map(csvRow).join('');
    default:
      throw new Error(`unknown audit format ${JSON.stringify(format)}; expected one of ${AUDIT_FORMATS.join(', ')}`);
  }
}

/** The state kept outside the chain: each table that differs from the chain, or that all match. */
function formatState(s: StateReport): string[] {
  if (s.mismatches.length) {
    return [`${s.mismatches.length} table${s.mismatches.length === 1 ? '' : 's'} DIFFER from what the chain recorded:`, ...s.mismatches.map((m) => `  ${escapeControl(m.message)}`)];
  }
  const values = Object.entries(s.values).map(([k, v]) => `${k} ${escapeControl(String(v.table ?? '(none)'))}`).join(', ');
  if (!s.baseline) return [`State outside the chain: not recorded yet (the next gate start records its baseline); ${values}.`];
  return [`State outside the chain matches the chain: ${values}.`];
}

const INTENT_STATUS: Record<VerifyReport['intents_without_receipts'][number]['status'], (eventId: number | null) => string> = {
  interrupted: (id) => `interrupted (the gate stopped before its receipt; execution_interrupted event id=${id})`,
  failed: (id) => `failed (event id=${id} recorded the error)`,
  in_flight: () => 'in flight (a running gate is dispatching it)',
  unexplained: () => 'unexplained',
};

/** The human summary `latchgate verify` prints (the intact case in the wording scripts match). */
export function formatVerifyReport(r: VerifyReport): string {
  const out: string[] = [];
  if (r.first_bad) {
    const b = r.first_bad;
    out.push(`BROKEN at id=${b.id} trace_id=${escapeControl(b.trace_id ?? '(missing)')}: ${escapeControl(b.reason)}`);
    out.push(`Checked ${r.total_events} events, ${r.verified_links} links intact.`);
  } else {
    out.push(`Ledger integrity verified: ${r.total_events} events, ${r.verified_links} links intact.`);
  }
  if (r.receipts.bad.length) {
    out.push(`${r.receipts.bad.length} of ${r.receipts.total} receipts FAIL verification:`);
    for (const x of r.receipts.bad) out.push(`  receipt ${escapeControl(x.receipt_id)}: ${escapeControl(x.reason)}`);
  } else {
    out.push(`Receipts: ${r.receipts.total} verified.`);
  }
  const unexplained = r.intents_without_receipts.filter((i) => i.status === 'unexplained');
  if (unexplained.length) {
    out.push(`${unexplained.length} execution intents have no receipt and no event accounts for it:`);
    for (const i of unexplained) out.push(`  ${escapeControl(i.reason ?? '')}`);
  }
  const accounted = r.intents_without_receipts.filter((i) => i.status !== 'unexplained');
  if (accounted.length) {
    out.push(`${accounted.length} execution intents have no receipt (the outcome was never recorded; check whether the side effect happened):`);
    for (const i of accounted) {
      out.push(`  grant ${escapeControl(i.grant_id)} action ${escapeControl(i.action_id)} trace_id ${escapeControl(i.trace_id)} started ${escapeControl(i.started_at)}: ${INTENT_STATUS[i.status](i.event_id)}`);
    }
  }
  if (r.state) out.push(...formatState(r.state));
  out.push(...checkpointLines(r.checkpoints).map(escapeControl));
  if (!r.database.ok) {
    out.push(`The SQLite file itself is inconsistent (PRAGMA integrity_check): an index or the schema was edited, which can hide events from the gate's look-ups. Fix: restore the state directory from a backup.`);
    for (const p of r.database.problems) out.push(`  ${escapeControl(p)}`);
  }
  return `${out.join('\n')}\n`;
}
