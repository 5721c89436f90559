// Ledger verification (`latchgate verify`).
//
// The chain walk is read-only and streams rows (iterate()), inside one read
// transaction, so it sees a consistent snapshot while other processes append.
// It names the first bad event and why:
//   - edited: stored hash or indexed columns disagree with event_json, or the
//     next event's prev_hash no longer matches it (attacker recomputed `hash`);
//   - deleted: an id gap where the link breaks, the first event having a
//     prev_hash, or chain_head naming an event that is not there (first_bad.id
//     is then the first missing id and trace_id is null);
//   - inserted: the next real event links over it to an earlier one;
//   - reordered: an event's predecessor is stored after it.
//   - renumbered: an id gap where the links hold, or ids after the last
//     event that sqlite_sequence says were handed out (the last events
//     deleted and chain_head moved back).
// Receipts are checked apart (receipt.ts: result_hash recomputed, signature
// through the append-only key history), and against the chain: every event
// that names a receipt (execution.receipt_id) finds it, with the result_hash
// the event recorded (execution.receipt_hash) and the event's trace, and
// every receipt is named by the event of its trace. An intent without a
// receipt must be accounted for by an event of its trace (the
// execution_interrupted a restarted gate writes, or an action_call that
// recorded the failure) or by a gate still running it (inFlight); otherwise
// the ledger is not intact: the gate stopped before the receipt and no gate
// has started since, or evidence was deleted. With a state checker (the
// gate's, src/gate/state-check.ts), the state kept outside the chain
// (revocation epoch, policy data) is compared with the chain's newest record
// of it, in the same read transaction; a mismatch makes the ledger not
// intact. The signed checkpoints of the Merkle tree are checked against the
// tree recomputed from the events (tree-verify.ts: what a chain alone cannot
// show, events deleted at its end or the whole chain rewritten).
// Verification writes nothing, neither in the database nor in the key store:
// it works on a read-only copy.
import type { KeyStore } from '../keys/store.js';
import { existsSync } from 'node:fs';
import { openDbReadOnly, type Db } from './db.js';
import { CHAIN_HASH_FORMAT, eventHash, LedgerError } from './ledger.js';
import type { AuditEvent } from '../core/audit-event.js';
import { verifyReceipt, type ExecutionReceipt } from './receipt.js';
import { ChainIndex, withChainIndex, type StateReport } from './state-record.js';
import { checkpointCheck, type CheckpointInputs, type CheckpointReport } from './tree-verify.js';
import { receiptNamed, ROW_COLUMNS, type NamedReceipt, type RawRow } from './verify-row.js';
import { factsOf, verifyThreads } from './verify-pool.js';

/** Compares the state kept outside the chain with the chain; only reads. */
/** full: check the whole history too (verify), not only what a gate relies on now. */
export type StateChecker = (db: Db, keys: KeyStore, full?: boolean) => StateReport;

export interface VerifyOptions {
  /** Whether a live gate process may still be dispatching this intent (src/gate/instances.ts); default: none is. */
  inFlight?: (intent: { grant_id: string; instance_id: string | null }) => boolean;
  /** The checkpoint log and a checkpoint kept elsewhere, to check the stored checkpoints against (tree-verify.ts). */
  checkpoints?: CheckpointInputs;
}

/**
 * An intent with no receipt, and what accounts for it: an event of its trace
 * (execution_interrupted, or an action_call that recorded the failure), a gate
 * still running it, or nothing (unexplained: the ledger is not intact).
 */
export interface IntentWithoutReceipt {
  grant_id: string;
  trace_id: string;
  action_id: string;
  started_at: string;
  status: 'interrupted' | 'failed' | 'in_flight' | 'unexplained';
  /** The event that accounts for it (interrupted, failed). */
  event_id: number | null;
  /** Why it is unexplained. */
  reason?: string;
}

export interface BadEvent {
  id: number;
  /** null when the bad event is missing (deleted). */
  trace_id: string | null;
  reason: string;
}

export interface VerifyReport {
  intact: boolean;
  total_events: number;
  /** Links between consecutive events whose prev_hash matched (total_events - 1 when intact). */
  verified_links: number;
  chain_head: string;
  first_bad: BadEvent | null;
  /** bad: receipts that fail their signature, that no chained event names, or that an event names and that are missing or differ. */
  receipts: { total: number; bad: { receipt_id: string; reason: string }[] };
  intents_without_receipts: IntentWithoutReceipt[];
  /** The state kept outside the chain against the chain (null: not checked). */
  state: StateReport | null;
  /**
   * SQLite's own check of the file (PRAGMA integrity_check): an index that
   * disagrees with its table can hide rows from look-ups by a column while
   * every event still verifies, so a problem here is a broken ledger too.
   */
  database: { ok: boolean; problems: string[] };
  /** The signed checkpoints of the Merkle tree against the tree recomputed from the events (src/ledger/tree-verify.ts). */
  checkpoints: CheckpointReport;
}

interface PendingBreak {
  row: { id: number; trace_id: string };
  prev: { id: number; trace_id: string } | null;
  prevHash: string | null;
  computed: string;
  linked: unknown;
  /** Does the link from this row to the next (or chain_head) still hold? */
  nextLinkOk?: boolean;
}

/** Walks the hash chain and checks every receipt. Read-only; never throws for tampering, only for a file that is not a ledger. */
export function verifyLedger(db: Db, keys: KeyStore, name = db.name, state?: StateChecker, opts: VerifyOptions = {}): VerifyReport {
  let tables: Set<string>;
  try {
    tables = new Set(db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]);
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'SQLITE_NOTADB') throw e;
    throw new LedgerError(`${name} is not a latchgate ledger (${(e as Error).message})`, 'not_a_ledger');
  }
  for (const t of ['audit_events', 'receipts', 'execution_intents', 'ledger_metadata']) {
    if (!tables.has(t)) throw new LedgerError(`${name} is not a latchgate ledger (no ${t} table)`, 'not_a_ledger');
  }
  return db.transaction(() => walk(db, keys, name, state, opts))();
}

/**
 * Verifies the ledger file at path without opening it for writing (no
 * migration, no -wal or -shm left behind): `latchgate verify` on an archived
 * or read-only state directory.
 */
export function verifyLedgerFile(path: string, keys: KeyStore, state?: StateChecker, opts: VerifyOptions = {}): VerifyReport {
  if (!existsSync(path)) {
    throw new LedgerError(`no ledger at ${path}. Fix: point [state] dir in latchgate.toml (or XDG_STATE_HOME) at the state directory that holds ledger.sqlite3`, 'not_a_ledger');
  }
  let db: Db | undefined;
  try {
    db = openDbReadOnly(path);
    return verifyLedger(db, keys, path, state, opts);
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'SQLITE_CANTOPEN') throw e;
    throw new LedgerError(
      `cannot open the ledger ${path} to read it (${(e as Error).message}). Fix: check that ${path} and its directory are readable by this user`,
      'ledger_unreadable',
    );
  } finally {
    db?.close();
  }
}

function walk(db: Db, keys: KeyStore, name: string, stateChecker: StateChecker | undefined, opts: VerifyOptions): VerifyReport {
  const meta = (key: string) => db.prepare('SELECT value FROM ledger_metadata WHERE key = ?').pluck().get(key) as string | undefined;
  const format = meta('chain_hash_format');
  if (format !== CHAIN_HASH_FORMAT) {
    throw new LedgerError(`ledger ${name} uses chain_hash_format '${format ?? '(none)'}', not '${CHAIN_HASH_FORMAT}'; it cannot be verified by this latchgate`, 'ledger_format_mismatch');
  }
  const chainHead = meta('chain_head') ?? '';

  let total = 0;
  let links = 0;
  let prev: { id: number; trace_id: string } | null = null;
  let prevHash: string | null = null;
  let first: BadEvent | null = null;
  let pending: PendingBreak | null = null;
  let awaitingNext = false;
  const receiptOf = namedReceiptChecker(db);
  const missingReceipts: { receipt_id: string; reason: string }[] = [];
  // One read of each event serves the chain, the Merkle tree the checkpoints are checked against, and the state checks' look-ups.
  const tree = checkpointCheck(db, keys, opts.checkpoints);
  const index = new ChainIndex();

  const rows = db.prepare(`SELECT ${ROW_COLUMNS} FROM audit_events ORDER BY id`).raw(true).iterate() as IterableIterator<RawRow>;
  const maxId = (db.prepare('SELECT max(id) FROM audit_events').pluck().get() as number | null) ?? 0;
  // The facts of each row alone (verify-row.ts), from worker threads on a large ledger; what links rows is checked here, in order.
  for (const [raw, facts] of factsOf(rows, verifyThreads(maxId))) {
    const [id, trace_id, , event_type, , , , , , hash] = raw;
    const row = { id, trace_id };
    total++;
    const { computed, linked } = facts;
    tree.pushLeafHash(facts.leaf);
    index.add(id, event_type, facts.type, computed === hash);
    const named = facts.named ? receiptOf(row, facts.named) : null;
    if (named) missingReceipts.push(named);
    if (awaitingNext && pending) {
      pending.nextLinkOk = linked === pending.computed;
      awaitingNext = false;
    }
    const linkOk = linked === prevHash || (prev === null && linked === null);
    if (linkOk && prev !== null) links++;
    if (!first && !pending) {
      if (facts.problem) first = { id, trace_id, reason: facts.problem };
      else if (!linkOk) {
        pending = { row, prev, prevHash, computed, linked };
        awaitingNext = true;
      } else first = idGap(row, prev);
    }
    prev = row;
    prevHash = computed;
  }
  if (awaitingNext && pending) pending.nextLinkOk = chainHead === pending.computed;

  if (!first && pending) first = classifyBreak(db, pending);
  if (!first) first = checkHead(db, chainHead, prev, prevHash, total);

  const receipts = checkReceipts(db, keys);
  // One finding per receipt: its own (signature, hash) before how the chain names it.
  const found = new Set(receipts.bad.map((b) => b.receipt_id));
  receipts.bad.push(...missingReceipts.filter((m) => !found.has(m.receipt_id)));
  const intents = intentsWithoutReceipts(db, opts);
  const state = stateChecker ? withChainIndex(db, index, () => stateChecker(db, keys, true)) : null;
  const checked = (db.pragma('integrity_check(20)') as { integrity_check: string }[]).map((r) => r.integrity_check);
  const database = { ok: checked.length === 1 && checked[0] === 'ok', problems: checked.filter((p) => p !== 'ok') };
  const checkpoints = tree.finish();

  return {
    intact: first === null && receipts.bad.length === 0 && intents.every((i) => i.status !== 'unexplained') && (state?.mismatches.length ?? 0) === 0 && database.ok && checkpoints.ok,
    database,
    checkpoints,
    total_events: total,
    verified_links: links,
    chain_head: chainHead,
    first_bad: first,
    receipts,
    intents_without_receipts: intents,
    state,
  };
}

/** The row whose computed hash is h (its stored hash must agree), if any. */
function rowWithHash(db: Db, h: unknown): { id: number; trace_id: string } | null {
  if (typeof h !== 'string' || h === '') return null;
  const rows = db.prepare('SELECT id, trace_id, event_json FROM audit_events WHERE hash = ? ORDER BY id').all(h) as { id: number; trace_id: string; event_json: string }[];
  const r = rows.find((x) => eventHash(x.event_json) === h);
  return r ? { id: r.id, trace_id: r.trace_id } : null;
}

function rowAfter(db: Db, id: number): { id: number; trace_id: string } | null {
  return (db.prepare('SELECT id, trace_id FROM audit_events WHERE id > ? ORDER BY id LIMIT 1').get(id) as { id: number; trace_id: string } | undefined) ?? null;
}

function classifyBreak(db: Db, p: PendingBreak): BadEvent {
  const { row, prev } = p;
  const target = rowWithHash(db, p.linked);
  if (target && prev && target.id < prev.id) {
    const inserted = rowAfter(db, target.id) ?? row;
    return {
      id: inserted.id,
      trace_id: inserted.trace_id,
      reason: `inserted: not part of the chain (event id=${row.id} links directly to event id=${target.id}, over the events stored between them)`,
    };
  }
  if (target && target.id > row.id) {
    return { id: row.id, trace_id: row.trace_id, reason: `out of order: its predecessor (id=${target.id}, trace_id=${target.trace_id}) is stored after it; events were swapped or moved` };
  }
  if (prev === null) {
    // First row with a prev_hash: the events before it were deleted (or it was edited and re-hashed).
    if (p.nextLinkOk === false) return { id: row.id, trace_id: row.trace_id, reason: 'the first event has a prev_hash that is not null and its successor no longer links to it: the event was edited' };
    if (row.id > 1) return { id: 1, trace_id: null, reason: `missing: the first event (id=${row.id}) links to an earlier event that is not there; events id=1..${row.id - 1} were deleted` };
    return { id: row.id, trace_id: row.trace_id, reason: 'the first event has a prev_hash that names no event: events before it were deleted' };
  }
  if (p.nextLinkOk === false) {
    // Its own hash changed too (the next link broke): this event itself was edited and re-hashed.
    return { id: row.id, trace_id: row.trace_id, reason: `edited: its prev_hash no longer matches event id=${prev.id} and the next event no longer links to it` };
  }
  if (row.id !== prev.id + 1) {
    const a = prev.id + 1;
    const b = row.id - 1;
    return {
      id: a,
      trace_id: null,
      reason: `missing: event id=${row.id} links to an event that is not there; ${a === b ? `event id=${a} was` : `events id=${a}..${b} were`} deleted`,
    };
  }
  return {
    id: prev.id,
    trace_id: prev.trace_id,
    reason: `edited: the next event (id=${row.id}) recorded a different hash for it (its content was changed and its hash recomputed), or an event between them was deleted and the ids renumbered`,
  };
}

function checkHead(db: Db, head: string, last: { id: number; trace_id: string } | null, lastHash: string | null, total: number): BadEvent | null {
  const seq = (db.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'`).pluck().get() as number | undefined) ?? 0;
  if (total === 0 || !last) {
    if (head === '') return null;
    return { id: 1, trace_id: null, reason: `missing: the ledger holds no events but chain_head names one (${head}); ${seq > 0 ? `events id=1..${seq}` : 'all events'} were deleted` };
  }
  if (head === lastHash) return seq > last.id ? deletedAtEnd(last.id, seq, 'chain_head was moved back to the event before them') : null;
  if (head === '') return { id: last.id, trace_id: last.trace_id, reason: 'chain_head is empty but the ledger holds events: chain_head was reset' };
  const named = rowWithHash(db, head);
  if (named && named.id < last.id) {
    const after = rowAfter(db, named.id) ?? last;
    return { id: after.id, trace_id: after.trace_id, reason: `not part of the chain: chain_head ends at event id=${named.id}; the events after it were not appended by the ledger` };
  }
  if (seq > last.id) return deletedAtEnd(last.id, seq, 'chain_head names an event that is not there');
  return { id: last.id, trace_id: last.trace_id, reason: 'chain_head does not match the last event: the last event was edited (and its hash recomputed), or chain_head was changed' };
}

/** The events after the last one that sqlite_sequence says were appended: deleted. */
function deletedAtEnd(lastId: number, seq: number, how: string): BadEvent {
  const a = lastId + 1;
  return { id: a, trace_id: null, reason: `missing: ${how}; ${a === seq ? `the last event (id=${a}) was` : `the last events (id=${a}..${seq}) were`} deleted (sqlite_sequence records id=${seq} as handed out)` };
}

/**
 * Ids run 1, 2, 3... without a gap (the ledger never deletes, and a rolled
 * back append gives its id back): a gap where the links hold means events
 * were deleted and the ids of those after them changed.
 */
function idGap(row: { id: number }, prev: { id: number } | null): BadEvent | null {
  const want = prev ? prev.id + 1 : 1;
  if (row.id === want) return null;
  const range = want === row.id - 1 ? `event id=${want} is` : `events id=${want}..${row.id - 1} are`;
  const link = prev ? `event id=${row.id} links to event id=${prev.id}` : `the first event has id=${row.id}`;
  return { id: want, trace_id: null, reason: `missing: ${range} not there, and ${link}: events were deleted and the ids of others changed` };
}

interface ReceiptRow {
  receipt_id: string;
  grant_id: string;
  trace_id: string | null;
  receipt_json: string;
}

const parseObject = (json: string): Record<string, unknown> | null => {
  try {
    const v: unknown = JSON.parse(json);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
};

/**
 * For each chained event that names a receipt: the receipt is there, of the
 * event's trace, with the result_hash the event recorded (a format-2 receipt
 * is always named with one; a format-1 receipt of an older ledger may be
 * named without). Returns the problem, or null.
 */
function namedReceiptChecker(db: Db): (row: { id: number; trace_id: string }, named: NamedReceipt) => { receipt_id: string; reason: string } | null {
  const get = db.prepare('SELECT receipt_id, grant_id, trace_id, receipt_json FROM receipts WHERE receipt_id = ?');
  return (row, named) => {
    const at = `event id=${row.id} (trace_id ${row.trace_id})`;
    const bad = (reason: string) => ({ receipt_id: named.receipt_id, reason });
    const r = get.get(named.receipt_id) as ReceiptRow | undefined;
    if (!r) return bad(`missing: ${at} names this receipt, which is not in the receipts table: it was deleted`);
    if (r.trace_id !== row.trace_id) return bad(`${at} names this receipt, but the receipt is of trace ${r.trace_id ?? '(none)'}: the receipt was replaced`);
    const receipt = parseObject(r.receipt_json);
    if (!receipt) return null; // reported by checkReceipts
    if (named.receipt_hash === undefined) {
      return receipt.receipt_format === undefined ? null : bad(`${at} names this format-${String(receipt.receipt_format)} receipt without its receipt_hash: the receipt was replaced`);
    }
    if (named.receipt_hash !== receipt.result_hash) {
      return bad(`its result_hash ${JSON.stringify(receipt.result_hash)} is not the receipt_hash ${JSON.stringify(named.receipt_hash)} that ${at} recorded: the receipt was replaced`);
    }
    return null;
  };
}

function checkReceipts(db: Db, keys: KeyStore): VerifyReport['receipts'] {
  let total = 0;
  const bad: { receipt_id: string; reason: string }[] = [];
  // With the event of the receipt's trace, which must be the one naming it.
  const rows = db
    .prepare(
      `SELECT r.receipt_id, r.grant_id, r.trace_id, r.receipt_json, a.id AS event_id, a.event_json
         FROM receipts r LEFT JOIN audit_events a ON a.trace_id = r.trace_id
        ORDER BY r.created_at, r.receipt_id`,
    )
    .iterate() as IterableIterator<ReceiptRow & { event_id: number | null; event_json: string | null }>;
  for (const row of rows) {
    total++;
    const problem = receiptProblem(row, keys) ?? unnamed(row);
    if (problem) bad.push({ receipt_id: row.receipt_id, reason: problem });
  }
  return { total, bad };
}

function receiptProblem(row: ReceiptRow, keys: KeyStore): string | null {
  let receipt: ExecutionReceipt;
  try {
    receipt = JSON.parse(row.receipt_json) as ExecutionReceipt;
  } catch {
    return 'receipt_json is not valid JSON: the receipt was edited';
  }
  if (!receipt || typeof receipt !== 'object') return 'receipt_json is not an object: the receipt was edited';
  const mismatch = (['receipt_id', 'grant_id', 'trace_id'] as const).find((k) => (receipt[k] ?? null) !== row[k]);
  if (mismatch) return `column ${mismatch} disagrees with receipt_json: the row was edited`;
  const v = verifyReceipt(keys, receipt);
  return v.ok ? null : v.reason;
}

/** Why no chained event names this receipt (the event of its trace must), or null when one does. */
function unnamed(row: ReceiptRow & { event_id: number | null; event_json: string | null }): string | null {
  const event = row.event_json === null ? null : (parseObject(row.event_json) as AuditEvent | null);
  if (event && receiptNamed(event)?.receipt_id === row.receipt_id) return null;
  const found = row.event_id === null ? `no event of its trace (${row.trace_id ?? 'none'}) is in the ledger` : `the event of its trace (id=${row.event_id}) does not name it`;
  return `no chained event names this receipt: ${found}; it was added to the receipts table outside the gate`;
}

/**
 * The intents without a receipt, each with what accounts for it (the event
 * of its trace, or a live gate); an unexplained one says what happened.
 */
function intentsWithoutReceipts(db: Db, opts: VerifyOptions): IntentWithoutReceipt[] {
  const rows = db
    .prepare(
      `SELECT i.grant_id, i.trace_id, i.action_id, i.started_at, i.instance_id, a.id AS event_id, a.event_json
         FROM execution_intents i LEFT JOIN audit_events a ON a.trace_id = i.trace_id
        WHERE NOT EXISTS (SELECT 1 FROM receipts r WHERE r.grant_id = i.grant_id)
        ORDER BY i.started_at, i.grant_id`,
    )
    .all() as { grant_id: string; trace_id: string; action_id: string; started_at: string; instance_id: string | null; event_id: number | null; event_json: string | null }[];
  return rows.map(({ instance_id, event_id, event_json, ...i }) => {
    const event = event_json === null ? null : (parseObject(event_json) as AuditEvent | null);
    if (event?.event_type === 'execution_interrupted' && event.execution?.grant_id === i.grant_id) return { ...i, status: 'interrupted', event_id };
    if (event?.event_type === 'action_call' && event.error !== undefined && !receiptNamed(event)) return { ...i, status: 'failed', event_id };
    if (opts.inFlight?.({ grant_id: i.grant_id, instance_id })) return { ...i, status: 'in_flight', event_id: null };
    const what = `the intent of grant ${i.grant_id} (action ${i.action_id}, trace_id ${i.trace_id}, started ${i.started_at})`;
    const reason =
      event_id === null
        ? `interrupted: the gate stopped after ${what} and before its receipt, and no gate has recorded it since (a gate that starts on this state directory writes its execution_interrupted event). Check whether the side effect happened`
        : `${what} has no receipt, but its event id=${event_id} does not account for that: the receipt was deleted`;
    return { ...i, status: 'unexplained', event_id: null, reason };
  });
}
