// The ledger: an append-only, hash-chained record of every decision, admin
// act and egress event, plus the evidence of executions (intents, consumed
// grants, signed receipts). One SQLite file shared by `latchgate up` and
// `latchgate sandbox`; every append takes the write lock (BEGIN IMMEDIATE),
// so two processes appending at once cannot fork the chain.
//
// Chain: event.prev_hash = "sha256:<hex>" of the full JCS (RFC 8785) bytes of
// the previous event (its own prev_hash included); null for the first event.
// The stored event_json is exactly those canonical bytes, and `hash` is their
// hash, so a JSONL export can be re-verified line by line by anyone.
// ledger_metadata.chain_head holds the hash of the last event, which is what
// reveals a deleted or edited last event. Beside the chain, the same bytes
// are the leaves of a Merkle tree (merkle-store.ts), grown in each append's
// transaction.
import { randomUUID } from 'node:crypto';
import { canonicalize } from '../crypto/jcs.js';
import { eventHash, indexedColumns } from './event-row.js';

export { eventHash, indexedColumns, type IndexedColumns } from './event-row.js';
import { ChangeStamp, immediate, openDb, type Db } from './db.js';
import { STATE_RECORDS } from './state-record.js';
import type { AuditEvent, AuditEventInput } from '../core/audit-event.js';
import { EVENT_TYPES, checkEvent, eventTypesSelectedBy } from '../core/event-catalogue.js';
import { nearest } from '../config/suggest.js';
import type { ExecutionReceipt } from './receipt.js';
import { MerkleStore } from './merkle-store.js';
import { busyExplained, rebuildAsRowidTable } from './rowid-tables.js';
import { migrateCheckpoints } from './tree-checkpoints.js';

export const CHAIN_HASH_FORMAT = 'jcs-sha256';
/** Canonicalisation limits of one event (upstream: 256 KiB, depth 64). */
export const EVENT_LIMITS = { maxDepth: 64, maxBytes: 256 * 1024 } as const;
export const DEFAULT_QUERY_LIMIT = 100;
export const MAX_QUERY_LIMIT = 10_000;

/** Pre-dispatch evidence marker: written (with the grant consumed) before a provider runs. */
export interface ExecutionIntent {
  grant_id: string;
  trace_id: string;
  action_id: string;
  principal: string;
  provider_module_digest: string;
  request_hash: string;
  approved_by?: string | null;
  started_at: string;
  /** The gate process that dispatched it (see src/gate/instances.ts). */
  instance_id?: string | null;
}

export interface LedgerFilters {
  /** action_id */
  action?: string;
  principal?: string;
  decision?: string;
  /** Inclusive lower bound on timestamp (any Date.parse-able time; compared in UTC). */
  after?: string;
  /** Exclusive upper bound on timestamp. */
  before?: string;
  trace_id?: string;
  session_id?: string;
  /** One event type, or a group of them (EVENT_TYPE_GROUPS: egress is every box exit's). */
  event_type?: string;
  /** query(): default 100, at most 10000. exportJsonl(): no limit unless given. Keeps the newest N. */
  limit?: number;
}

export class LedgerError extends Error {
  constructor(message: string, readonly code: string = 'ledger_error') {
    super(message);
    this.name = 'LedgerError';
  }
}

/** An event that does not fit its catalogue entry (src/core/event-catalogue.ts): nothing was written. */
export class EventRefusedError extends LedgerError {
  constructor(
    message: string,
    /** The event's type, when it had a string one. */
    readonly eventType: string | null,
    /** The field at fault (a dotted path such as details.reason). */
    readonly field: string,
  ) {
    super(message, 'bad_event');
    this.name = 'EventRefusedError';
  }
}

/** Refuses (throws) an event the catalogue does not allow; an unknown type gets the nearest known name. */
export function assertEventFits(input: unknown): void {
  const p = checkEvent(input);
  if (!p) return;
  const guess = p.field === 'event_type' && p.event_type !== null ? nearest(p.event_type, EVENT_TYPES) : undefined;
  throw new EventRefusedError(`${p.message}${guess ? `; did you mean "${guess}"?` : ''}`, p.event_type, p.field);
}

/** A rowid table: a receipt is often larger than a WITHOUT ROWID table's cell holds (src/ledger/rowid-tables.ts). */
const receiptsTable = (name: string): string => `CREATE TABLE IF NOT EXISTS ${name} (
  receipt_id TEXT PRIMARY KEY NOT NULL,
  grant_id TEXT NOT NULL,
  trace_id TEXT,
  receipt_json TEXT NOT NULL,
  created_at TEXT NOT NULL
)`;

/** Receipts as latchgate kept them before (src/ledger/rowid-tables.ts). */
const RECEIPTS_REBUILD = {
  table: 'receipts',
  earlier: `CREATE TABLE receipts (receipt_id TEXT PRIMARY KEY, grant_id TEXT NOT NULL, trace_id TEXT, receipt_json TEXT NOT NULL, created_at TEXT NOT NULL) WITHOUT ROWID`,
  indexes: ['CREATE INDEX receipts_grant_id ON receipts(grant_id)'],
  create: receiptsTable,
  order: 'created_at, receipt_id',
};

const SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  trace_id TEXT UNIQUE NOT NULL,
  timestamp TEXT NOT NULL,
  event_type TEXT NOT NULL,
  principal TEXT,
  session_id TEXT,
  action_id TEXT,
  decision TEXT,
  event_json TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_action_id ON audit_events(action_id);
CREATE INDEX IF NOT EXISTS audit_events_principal ON audit_events(principal);
CREATE INDEX IF NOT EXISTS audit_events_timestamp ON audit_events(timestamp);
CREATE INDEX IF NOT EXISTS audit_events_decision ON audit_events(decision);
CREATE INDEX IF NOT EXISTS audit_events_event_type ON audit_events(event_type);
CREATE INDEX IF NOT EXISTS audit_events_session_id ON audit_events(session_id);
${receiptsTable('receipts')};
CREATE INDEX IF NOT EXISTS receipts_grant_id ON receipts(grant_id);
-- The other keyed tables, of small rows, are WITHOUT ROWID: one B-tree each,
-- so every row written costs one page in the WAL, not two or three.
CREATE TABLE IF NOT EXISTS execution_intents (
  grant_id TEXT PRIMARY KEY,
  trace_id TEXT NOT NULL,
  action_id TEXT NOT NULL,
  principal TEXT NOT NULL,
  provider_module_digest TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  approved_by TEXT,
  started_at TEXT NOT NULL,
  instance_id TEXT
) WITHOUT ROWID;
-- The intents whose receipt is not yet written: the pre-dispatch check for an
-- earlier run of unknown outcome looks here, so its cost does not grow with
-- the number of finished runs. Written with the intent, deleted with the
-- receipt, in the same transactions. (verify reads the tables themselves.)
CREATE TABLE IF NOT EXISTS open_intents (
  request_hash TEXT NOT NULL,
  action_id TEXT NOT NULL,
  principal TEXT NOT NULL,
  grant_id TEXT NOT NULL,
  PRIMARY KEY (request_hash, action_id, principal, grant_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumed_grants (
  grant_id TEXT PRIMARY KEY,
  action_id TEXT NOT NULL,
  principal TEXT NOT NULL,
  consumed_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_metadata (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`;

interface EventRow {
  id: number;
  event_json: string;
}

function normaliseTime(name: string, value: string): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new LedgerError(`filter ${name}: ${JSON.stringify(value)} is not a time (use ISO 8601, e.g. 2025-01-31T12:00:00Z)`, 'bad_filter');
  return new Date(ms).toISOString();
}

function buildWhere(filters: LedgerFilters): { where: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  const eq = (col: string, v: string | undefined) => {
    if (v === undefined) return;
    clauses.push(`${col} = ?`);
    params.push(v);
  };
  eq('action_id', filters.action);
  eq('principal', filters.principal);
  eq('decision', filters.decision);
  eq('trace_id', filters.trace_id);
  eq('session_id', filters.session_id);
  if (filters.event_type !== undefined) {
    // A group name (egress) selects every type of its group.
    const types = eventTypesSelectedBy(filters.event_type);
    clauses.push(`event_type IN (${types.map(() => '?').join(', ')})`);
    params.push(...types);
  }
  if (filters.after !== undefined) {
    clauses.push('timestamp >= ?');
    params.push(normaliseTime('after', filters.after));
  }
  if (filters.before !== undefined) {
    clauses.push('timestamp < ?');
    params.push(normaliseTime('before', filters.before));
  }
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

function checkLimit(limit: number, max: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new LedgerError(`limit must be a positive integer, got ${limit}`, 'bad_filter');
  if (limit > max) throw new LedgerError(`limit ${limit} is above the maximum of ${max}; use the JSONL export for more`, 'bad_filter');
  return limit;
}

export class Ledger {
  readonly db: Db;
  private readonly tree: MerkleStore;
  private migrated = false;
  /** Set while commitEvidence appends the event of the receipt it writes. */
  private withReceipt = false;
  private stmts?: ReturnType<Ledger['prepare']>;
  private readonly appendListeners = new Set<() => void>();

  constructor(db: Db) {
    this.db = db;
    this.tree = new MerkleStore(db);
  }

  /** The Merkle tree over the events: roots and proofs for any size so far (docs/EVIDENCE.md). */
  get merkle(): MerkleStore {
    this.ready();
    return this.tree;
  }

  /** Opens (creating if needed) the ledger file and migrates it. */
  static open(path: string): Ledger {
    const ledger = new Ledger(openDb(path));
    try {
      return ledger.migrate();
    } catch (e) {
      ledger.db.close();
      throw e;
    }
  }

  /**
   * Creates the tables if needed, seeds ledger_metadata, and refuses a ledger
   * whose chain_hash_format is not ours. Idempotent; safe while another
   * process uses the same file.
   */
  migrate(): this {
    if (this.migrated) return this;
    busyExplained(this.db, () => immediate(this.db, () => {
      const hadOpenIntents = this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'open_intents'`).get() !== undefined;
      rebuildAsRowidTable(this.db, RECEIPTS_REBUILD);
      this.db.exec(SCHEMA);
      if (!hadOpenIntents) {
        // A ledger from before open_intents: fill it from the tables.
        this.db.exec(`INSERT INTO open_intents(grant_id, request_hash, action_id, principal)
          SELECT i.grant_id, i.request_hash, i.action_id, i.principal FROM execution_intents i
           WHERE NOT EXISTS (SELECT 1 FROM receipts r WHERE r.grant_id = i.grant_id)`);
      }
      this.db.prepare(`INSERT OR IGNORE INTO ledger_metadata(key, value) VALUES ('chain_hash_format', ?)`).run(CHAIN_HASH_FORMAT);
      const head = this.db.prepare(`SELECT value FROM ledger_metadata WHERE key = 'chain_head'`).get() as { value: string } | undefined;
      if (!head) {
        // A ledger without a head (older file): recover it from the last row.
        const last = this.db.prepare('SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1').get() as { hash: string } | undefined;
        this.db.prepare(`INSERT INTO ledger_metadata(key, value) VALUES ('chain_head', ?)`).run(last?.hash ?? '');
      }
      this.tree.migrate();
      migrateCheckpoints(this.db);
    }));
    const format = (this.db.prepare(`SELECT value FROM ledger_metadata WHERE key = 'chain_hash_format'`).get() as { value: string }).value;
    if (format !== CHAIN_HASH_FORMAT) {
      throw new LedgerError(
        `ledger ${this.db.name} uses chain_hash_format '${format}', but this latchgate only reads '${CHAIN_HASH_FORMAT}' (RFC 8785 JCS then SHA-256). ` +
          `Refusing to open it, so its chain is not extended with hashes of another format. Fix: point latchgate at a new ledger file (state_dir / ledger path) and keep this one for the tool that wrote it`,
        'ledger_format_mismatch',
      );
    }
    this.tree.catchUp();
    this.migrated = true;
    return this;
  }

  private prepare() {
    const db = this.db;
    return {
      head: db.prepare(`SELECT value FROM ledger_metadata WHERE key = 'chain_head'`).pluck(),
      setHead: db.prepare(`UPDATE ledger_metadata SET value = ? WHERE key = 'chain_head'`),
      insertEvent: db.prepare(
        `INSERT INTO audit_events(trace_id, timestamp, event_type, principal, session_id, action_id, decision, event_json, hash)
         VALUES (@trace_id, @timestamp, @event_type, @principal, @session_id, @action_id, @decision, @event_json, @hash)`,
      ),
      traceExists: db.prepare('SELECT 1 FROM audit_events WHERE trace_id = ?').pluck(),
      insertIntent: db.prepare(
        `INSERT INTO execution_intents(grant_id, trace_id, action_id, principal, provider_module_digest, request_hash, approved_by, started_at, instance_id)
         VALUES (@grant_id, @trace_id, @action_id, @principal, @provider_module_digest, @request_hash, @approved_by, @started_at, @instance_id)`,
      ),
      consume: db.prepare(`INSERT OR IGNORE INTO consumed_grants(grant_id, action_id, principal, consumed_at) VALUES (?, ?, ?, ?)`),
      isConsumed: db.prepare('SELECT 1 FROM consumed_grants WHERE grant_id = ?').pluck(),
      insertReceipt: db.prepare(`INSERT INTO receipts(receipt_id, grant_id, trace_id, receipt_json, created_at) VALUES (?, ?, ?, ?, ?)`),
      getReceipt: db.prepare('SELECT receipt_json FROM receipts WHERE receipt_id = ?').pluck(),
      receiptsForGrant: db.prepare('SELECT receipt_json FROM receipts WHERE grant_id = ? ORDER BY created_at').pluck(),
      orphanIntents: db.prepare(
        `SELECT i.grant_id, i.trace_id, i.action_id, i.principal, i.provider_module_digest, i.request_hash, i.approved_by, i.started_at
           FROM execution_intents i
          WHERE NOT EXISTS (SELECT 1 FROM receipts r WHERE r.grant_id = i.grant_id)
          ORDER BY i.started_at, i.grant_id`,
      ),
      count: db.prepare('SELECT count(*) FROM audit_events').pluck(),
      unfinished: db.prepare(
        `SELECT i.grant_id, i.trace_id, i.action_id, i.principal, i.provider_module_digest, i.request_hash, i.approved_by, i.started_at, i.instance_id
           FROM open_intents o JOIN execution_intents i ON i.grant_id = o.grant_id
          WHERE o.request_hash = ? AND o.action_id = ? AND o.principal = ?`,
      ),
      unaccounted: db.prepare(
        `SELECT i.grant_id, i.trace_id, i.action_id, i.principal, i.provider_module_digest, i.request_hash, i.approved_by, i.started_at, i.instance_id
           FROM open_intents o JOIN execution_intents i ON i.grant_id = o.grant_id
          WHERE NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.trace_id = i.trace_id)
          ORDER BY i.started_at, i.grant_id`,
      ),
      openIntent: db.prepare(`INSERT INTO open_intents(grant_id, request_hash, action_id, principal) VALUES (@grant_id, @request_hash, @action_id, @principal)`),
      closeIntent: db.prepare(
        `DELETE FROM open_intents WHERE (request_hash, action_id, principal, grant_id) IN
           (SELECT request_hash, action_id, principal, grant_id FROM execution_intents WHERE grant_id = ?)`,
      ),
    };
  }

  private ready(): void {
    void this.s;
  }

  private get s() {
    if (!this.stmts) {
      this.migrate();
      this.stmts = this.prepare();
    }
    return this.stmts;
  }

  /**
   * Appends one event (gate decisions, admin acts, egress events) in its own
   * BEGIN IMMEDIATE transaction, and returns it as stored. An event that does
   * not fit its type's catalogue entry (src/core/event-catalogue.ts) is
   * refused with EventRefusedError, and nothing is written.
   * Use this unless the event must commit atomically with other writes; then
   * call appendInTransaction() inside your own immediate(db, ...) block.
   * (Called inside an open transaction, append() joins it.)
   */
  append(input: AuditEventInput): AuditEvent {
    return immediate(this.db, () => this.appendInTransaction(input));
  }

  /**
   * Appends within the caller's transaction (no BEGIN of its own): for an
   * event that must commit together with other rows, e.g. the final audit
   * event and its receipt. The caller's transaction should be BEGIN
   * IMMEDIATE (db.ts immediate()): a deferred one that read before this
   * call can fail with SQLITE_BUSY when another process appended meanwhile
   * (it can never fork the chain: SQLite serialises writers).
   * Throws if no transaction is open.
   */
  appendInTransaction(input: AuditEventInput): AuditEvent {
    const s = this.s;
    if (!this.db.inTransaction) {
      throw new LedgerError('appendInTransaction() called outside a transaction; use append(), or wrap the call in immediate(db, ...)', 'not_in_transaction');
    }
    // Fail closed: an event of no known type, or without what its type requires, is not written.
    assertEventFits(input);
    if (input.execution?.receipt_id !== undefined && !this.withReceipt) {
      throw new EventRefusedError(`${input.event_type} event: execution.receipt_id names a receipt, and such an event is written only together with its receipt (commitEvidence)`, input.event_type, 'execution.receipt_id');
    }
    const head = s.head.get() as string | undefined;
    const trace_id = input.trace_id ?? randomUUID();
    if (typeof trace_id !== 'string' || trace_id === '') throw new LedgerError('trace_id must be a non-empty string', 'bad_event');
    const event = { ...input, trace_id, timestamp: new Date().toISOString(), prev_hash: head ? head : null } as AuditEvent;
    const event_json = canonicalize(event, EVENT_LIMITS);
    const stored = JSON.parse(event_json) as AuditEvent;
    const bytes = Buffer.from(event_json, 'utf8');
    const hash = eventHash(bytes);
    if (s.traceExists.get(trace_id)) throw new LedgerError(`an audit event with trace_id ${trace_id} already exists`, 'duplicate_trace_id');
    const { lastInsertRowid } = s.insertEvent.run({ ...indexedColumns(stored), event_json, hash });
    this.tree.append(Number(lastInsertRowid), bytes);
    s.setHead.run(hash);
    // A new record of the epoch or the policy: the gate's checks of those tables look again.
    if (STATE_RECORDS.has(stored.event_type)) ChangeStamp.of(this.db).noteOwnWrite();
    for (const listener of this.appendListeners) listener();
    return stored;
  }

  /**
   * Calls `listener` after each event this process appends, inside the
   * append's transaction (which may still roll back): it must only count or
   * schedule (the checkpoint trigger, src/ledger/checkpoint-schedule.ts),
   * never write or throw. Returns the function that removes it.
   */
  onAppend(listener: () => void): () => void {
    this.appendListeners.add(listener);
    return () => this.appendListeners.delete(listener);
  }

  /** The hash of the last event ('' for an empty ledger). */
  chainHead(): string {
    return (this.s.head.get() as string | undefined) ?? '';
  }

  count(): number {
    return this.s.count.get() as number;
  }

  /**
   * Writes the pre-dispatch intent (inside an open transaction, as part
   * of it). Prefer consumeGrantAndWriteIntent(), which does both atomically.
   */
  writeIntent(intent: ExecutionIntent): void {
    immediate(this.db, () => {
      this.s.insertIntent.run({ ...intent, approved_by: intent.approved_by ?? null, instance_id: intent.instance_id ?? null });
      this.s.openIntent.run({ grant_id: intent.grant_id, request_hash: intent.request_hash, action_id: intent.action_id, principal: intent.principal });
    });
  }

  /** Marks a grant consumed; false if it already was (grants are one-shot). */
  consumeGrant(grantId: string, actionId: string, principal: string): boolean {
    return this.s.consume.run(grantId, actionId, principal, new Date().toISOString()).changes === 1;
  }

  isGrantConsumed(grantId: string): boolean {
    return this.s.isConsumed.get(grantId) === 1;
  }

  /**
   * Consumes the grant and writes its intent in one BEGIN IMMEDIATE
   * transaction (the recordIntent stage, src/gate/stages/record-intent.ts). Returns false, writing nothing, if the
   * grant was already consumed: the caller answers 409.
   */
  consumeGrantAndWriteIntent(intent: ExecutionIntent): boolean {
    return immediate(this.db, () => {
      if (!this.consumeGrant(intent.grant_id, intent.action_id, intent.principal)) return false;
      this.writeIntent(intent);
      return true;
    });
  }

  /** Stores a signed receipt (canonical JSON), closing its intent; inside an open transaction, as part of it. */
  writeReceipt(receipt: ExecutionReceipt): void {
    immediate(this.db, () => {
      this.s.insertReceipt.run(receipt.receipt_id, receipt.grant_id, receipt.trace_id ?? null, canonicalize(receipt), new Date().toISOString());
      this.s.closeIntent.run(receipt.grant_id);
    });
  }

  /**
   * Evidence finalisation: the receipt and the final audit event
   * committed in one transaction. If this throws, nothing was stored and the
   * client must get evidence_persistence_failed. The event is the receipt's:
   * it carries the receipt's trace_id, and execution.receipt_id and
   * execution.receipt_hash (its result_hash) are set here, so the chained
   * event proves the receipt (`latchgate verify` checks both directions).
   */
  commitEvidence(receipt: ExecutionReceipt, event: AuditEventInput): AuditEvent {
    if (event.trace_id !== undefined && event.trace_id !== receipt.trace_id) {
      throw new LedgerError(`the event completing receipt ${receipt.receipt_id} has trace_id ${event.trace_id}, not the receipt's ${receipt.trace_id}`, 'bad_event');
    }
    const bound: AuditEventInput = {
      ...event,
      trace_id: receipt.trace_id,
      execution: { ...event.execution, receipt_id: receipt.receipt_id, receipt_hash: receipt.result_hash },
    };
    assertEventFits(bound); // before the receipt is written (appendInTransaction would roll it back too)
    return immediate(this.db, () => {
      this.writeReceipt(receipt);
      this.withReceipt = true;
      try {
        return this.appendInTransaction(bound);
      } finally {
        this.withReceipt = false;
      }
    });
  }

  getReceipt(receiptId: string): ExecutionReceipt | null {
    const json = this.s.getReceipt.get(receiptId) as string | undefined;
    return json === undefined ? null : (JSON.parse(json) as ExecutionReceipt);
  }

  receiptsForGrant(grantId: string): ExecutionReceipt[] {
    return (this.s.receiptsForGrant.all(grantId) as string[]).map((j) => JSON.parse(j) as ExecutionReceipt);
  }

  /** An earlier run of exactly this request whose outcome was never recorded, if any. */
  unfinishedIntent(requestHash: string, actionId: string, principal: string, stillRunning: (i: ExecutionIntent) => boolean = () => false): ExecutionIntent | undefined {
    for (const i of this.s.unfinished.iterate(requestHash, actionId, principal) as IterableIterator<ExecutionIntent>) {
      if (!stillRunning(i)) return i;
    }
    return undefined;
  }

  /** Intents with no receipt for their grant: executions whose outcome was never recorded (crash between dispatch and receipt). */
  intentsWithoutReceipts(): ExecutionIntent[] {
    return (this.s.orphanIntents.all() as ExecutionIntent[]).map((r) => {
      const out: ExecutionIntent = { ...r };
      if (out.approved_by === null) delete out.approved_by;
      return out;
    });
  }

  /**
   * Intents with no receipt and no event of their trace: runs still going,
   * or left by a gate process that stopped between intent and receipt.
   */
  unaccountedIntents(): ExecutionIntent[] {
    return this.s.unaccounted.all() as ExecutionIntent[];
  }

  /** Matching events, oldest first; the newest `limit` of them (default 100, at most 10000). */
  query(filters: LedgerFilters = {}): AuditEvent[] {
    this.ready();
    const limit = checkLimit(filters.limit ?? DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT);
    const { where, params } = buildWhere(filters);
    const rows = this.db
      .prepare(`SELECT * FROM (SELECT id, event_json FROM audit_events ${where} ORDER BY id DESC LIMIT ?) ORDER BY id ASC`)
      .all(...params, limit) as EventRow[];
    return rows.map((r) => JSON.parse(r.event_json) as AuditEvent);
  }

  /**
   * Streams matching events, oldest first, one row at a time. Each call of
   * `write` gets one event's canonical JSON (the stored bytes, whose SHA-256
   * is the next event's prev_hash) followed by "\n". Returns the number of
   * lines written. With filters.limit, only the newest `limit` events.
   */
  exportJsonl(write: (line: string) => void, filters: LedgerFilters = {}): number {
    this.ready();
    const { where, params } = buildWhere(filters);
    let sql = `SELECT event_json FROM audit_events ${where} ORDER BY id ASC`;
    if (filters.limit !== undefined) {
      checkLimit(filters.limit, Number.MAX_SAFE_INTEGER);
      sql = `SELECT event_json FROM (SELECT id, event_json FROM audit_events ${where} ORDER BY id DESC LIMIT ?) ORDER BY id ASC`;
      params.push(filters.limit);
    }
    let n = 0;
    // A read transaction: one consistent snapshot even while others append.
    this.db.transaction(() => {
      for (const json of this.db.prepare(sql).pluck().iterate(...params) as IterableIterator<string>) {
        write(`${json}\n`);
        n++;
      }
    })();
    return n;
  }
}
