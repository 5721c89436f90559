// Idempotency keys (the `Idempotency-Key` request header): a client that
// retries an execution after a lost answer gets the first answer back
// instead of a second run. A key belongs to one principal and one request
// (action and request_hash); it is claimed in the transaction that writes the
// intent (or holds the plan for approval), its answer is stored once the run
// has one, and it is forgotten after KEY_TTL_SECONDS.
import { immediate, type Db } from '../ledger/db.js';
import { busyExplained, rebuildAsRowidTable } from '../ledger/rowid-tables.js';
import { GateError } from './errors.js';
import type { Reply } from './execution.js';

/** How long a key and its answer are kept. */
export const KEY_TTL_SECONDS = 24 * 3600;
/** Visible ASCII without quotes, spaces or separators a header would fold: 1 to 255 characters. */
const KEY = /^[A-Za-z0-9._:~+/=-]{1,255}$/;

export interface KeyedRequest {
  principal: string;
  key: string;
  action_id: string;
  request_hash: string;
}

/** The header's value, checked; undefined when there is none. */
export function idempotencyKeyOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !KEY.test(header)) {
    throw new GateError('invalid_request', 'Idempotency-Key: expected one value of 1 to 255 characters from A-Z a-z 0-9 . _ : ~ + / = - (a UUID is a good key)');
  }
  return header;
}

const COLUMNS = `principal TEXT NOT NULL, key TEXT NOT NULL, action_id TEXT NOT NULL, request_hash TEXT NOT NULL,
  trace_id TEXT NOT NULL, reply_json TEXT, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
  PRIMARY KEY (principal, key)`;
/** The keys as latchgate kept them before (src/ledger/rowid-tables.ts). */
const KEYS_REBUILD = {
  table: 'idempotency_keys',
  earlier: `CREATE TABLE idempotency_keys (${COLUMNS}) WITHOUT ROWID`,
  indexes: [],
  create: (name: string) => `CREATE TABLE IF NOT EXISTS ${name} (${COLUMNS})`,
  order: 'created_at',
};

export class IdempotencyKeys {
  constructor(private readonly db: Db) {}

  /**
   * A rowid table, its rows holding whole replies (src/ledger/rowid-tables.ts),
   * with the index that lets each lookup's sweep of expired keys skip the live ones.
   */
  migrate(): void {
    busyExplained(this.db, () => immediate(this.db, () => {
      rebuildAsRowidTable(this.db, KEYS_REBUILD);
      this.db.exec(`${KEYS_REBUILD.create('idempotency_keys')};
        CREATE INDEX IF NOT EXISTS idempotency_keys_expires_at ON idempotency_keys(expires_at)`);
    }));
  }

  /**
   * What a request with this key gets before it runs: undefined (a new key:
   * run it), or the stored answer of the same request. A key used for
   * another request is 422; one whose request has no answer yet is 409.
   */
  lookup(r: KeyedRequest, now = new Date()): Reply | undefined {
    this.sweep(now);
    const row = this.db.prepare('SELECT action_id, request_hash, trace_id, reply_json FROM idempotency_keys WHERE principal = ? AND key = ?').get(r.principal, r.key) as
      | { action_id: string; request_hash: string; trace_id: string; reply_json: string | null }
      | undefined;
    if (!row) return undefined;
    if (row.action_id !== r.action_id || row.request_hash !== r.request_hash) {
      throw new GateError('idempotency_key_reused', `this Idempotency-Key was used for another request (${row.action_id}, ${row.request_hash}); use a new key for a new request`);
    }
    if (row.reply_json === null) {
      throw new GateError('idempotency_in_progress', `the request with this Idempotency-Key (trace ${row.trace_id}) has no answer yet: retry in a moment; if it never gets one, its outcome is unknown (latchgate verify)`, { retry_after_seconds: 1 });
    }
    return JSON.parse(row.reply_json) as Reply;
  }

  /** Claims the key for this request, inside the caller's transaction; a concurrent claim of the same key loses (409). */
  claim(r: KeyedRequest, traceId: string, now = new Date()): void {
    const res = this.db
      .prepare('INSERT INTO idempotency_keys (principal, key, action_id, request_hash, trace_id, reply_json, created_at, expires_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?) ON CONFLICT DO NOTHING')
      .run(r.principal, r.key, r.action_id, r.request_hash, traceId, now.toISOString(), new Date(now.getTime() + KEY_TTL_SECONDS * 1000).toISOString());
    if (res.changes !== 1) throw new GateError('idempotency_in_progress', 'another request with this Idempotency-Key started first: retry in a moment to get its answer', { retry_after_seconds: 1 });
  }

  /** Stores the answer the claimed request got: its status and body (its text is made again from the body). */
  answer(r: Pick<KeyedRequest, 'principal' | 'key'>, reply: Reply): void {
    this.db.prepare('UPDATE idempotency_keys SET reply_json = ? WHERE principal = ? AND key = ?').run(JSON.stringify({ status: reply.status, body: reply.body }), r.principal, r.key);
  }

  private sweep(now: Date): void {
    this.db.prepare('DELETE FROM idempotency_keys WHERE expires_at <= ?').run(now.toISOString());
  }
}
