// The tables of large rows (receipts, the replies of idempotency keys) are
// rowid tables (src/ledger/rowid-tables.ts): a new file has them so, and a
// file written with the earlier WITHOUT ROWID layout is rebuilt at its first
// open, every row kept, its chain still verifying, and its writes going on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Ledger } from '../../dist/ledger/ledger.js';
import { immediate, openDb } from '../../dist/ledger/db.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { signReceipt } from '../../dist/ledger/receipt.js';
import { rebuildAsRowidTable } from '../../dist/ledger/rowid-tables.js';
import { IdempotencyKeys, KEY_TTL_SECONDS } from '../../dist/gate/idempotency.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const withoutRowid = (db, table) => db.prepare(`SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?`).pluck().get(table);
const indexes = (db, table) => db.prepare(`SELECT name FROM pragma_index_list(?) ORDER BY name`).pluck().all(table);
const plan = (db, sql) => db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all().map((r) => r.detail).join('; ');

/** Writes the grant's intent and a receipt with `size` bytes of evidence (past one page, as many are). */
function run(ledger, keys, n, size = 6000) {
  const g = `g${n}`;
  ledger.consumeGrantAndWriteIntent({ grant_id: g, trace_id: `t-${g}`, action_id: 'act_1', principal: 'agent-1', provider_module_digest: 'builtin:http_api', request_hash: `sha256:${n}`, started_at: new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString() });
  const receipt = signReceipt(keys, {
    receipt_id: `r-${g}`,
    grant_id: g,
    trace_id: `t-${g}`,
    provider_module_digest: 'builtin:http_api',
    provider_receipt: { status: 200, body: { page: 'x'.repeat(size) } },
    normalized_result: { kind: 'success', summary: 'completed' },
    verification_outcome: { status: 'verified', evidence: { status: 200 } },
    effect_evidence: [{ kind: 'http_status', value: 200 }],
    started_at: '2025-01-01T00:00:00.000Z',
    finished_at: '2025-01-01T00:00:00.020Z',
  });
  ledger.commitEvidence(receipt, { event_type: 'action_call', decision: 'allow', subject: { principal: 'agent-1' }, action: { action_id: 'act_1' }, execution: { grant_id: g } });
  return receipt;
}

/** What an earlier latchgate made: the same table, WITHOUT ROWID, with its index. */
function toWithoutRowid(db, table, columns, pk, extra = []) {
  immediate(db, () => {
    const cols = columns.join(', ');
    db.exec(`CREATE TABLE old_layout (${columns.map((c) => `${c} ${pk.includes(c) ? 'TEXT NOT NULL' : 'TEXT'}`).join(', ')}, PRIMARY KEY (${pk.join(', ')})) WITHOUT ROWID`);
    db.exec(`INSERT INTO old_layout (${cols}) SELECT ${cols} FROM ${table}`);
    db.exec(`DROP TABLE ${table}`);
    db.exec(`ALTER TABLE old_layout RENAME TO ${table}`);
    for (const sql of extra) db.exec(sql);
  });
  assert.equal(withoutRowid(db, table), 1);
}

const RECEIPT_COLUMNS = ['receipt_id', 'grant_id', 'trace_id', 'receipt_json', 'created_at'];

test('a ledger written with WITHOUT ROWID receipts is rebuilt at its next open: every receipt kept, the chain verifies, writes go on', (t) => {
  const dir = tempDir(t, 'latchgate-rowid-');
  const path = join(dir, 'ledger.sqlite3');
  const keys = new KeyStore(join(dir, 'keys'));
  let ledger = Ledger.open(path);
  // A new ledger has them as a rowid table already.
  assert.equal(withoutRowid(ledger.db, 'receipts'), 0);
  const written = [1, 2, 3, 4, 5].map((n) => run(ledger, keys, n, n === 3 ? 200 : 6000));
  toWithoutRowid(ledger.db, 'receipts', RECEIPT_COLUMNS, ['receipt_id'], ['CREATE INDEX receipts_grant_id ON receipts(grant_id)']);
  const rows = ledger.db.prepare('SELECT * FROM receipts ORDER BY receipt_id').all();
  assert.equal(rows.length, 5);
  ledger.db.close();

  ledger = Ledger.open(path);
  t.after(() => ledger.db.close());
  const db = ledger.db;
  assert.equal(withoutRowid(db, 'receipts'), 0, 'the receipts table was not rebuilt as a rowid table');
  assert.deepEqual(db.prepare('SELECT * FROM receipts ORDER BY receipt_id').all(), rows);
  // In the order they were written, and found by their ids and grants as before.
  assert.deepEqual(db.prepare('SELECT receipt_id FROM receipts ORDER BY rowid').pluck().all(), ['r-g1', 'r-g2', 'r-g3', 'r-g4', 'r-g5']);
  assert.deepEqual(indexes(db, 'receipts'), ['receipts_grant_id', 'sqlite_autoindex_receipts_1']);
  assert.deepEqual(ledger.getReceipt('r-g4'), written[3]);
  assert.deepEqual(ledger.receiptsForGrant('g2'), [written[1]]);
  assert.equal(db.prepare(`SELECT count(*) FROM sqlite_master WHERE name LIKE '%_rowid'`).pluck().get(), 0, 'the rebuild left a table behind');
  let report = verifyLedger(db, keys);
  assert.equal(report.intact, true, JSON.stringify(report.first_bad));
  assert.equal(report.receipts.total, 5);
  assert.deepEqual(report.receipts.bad, []);

  // Writes go on; a second receipt id is still refused; the next open rebuilds nothing.
  const sixth = run(ledger, keys, 6);
  assert.throws(() => ledger.db.prepare('INSERT INTO receipts (receipt_id, grant_id, trace_id, receipt_json, created_at) VALUES (?, ?, ?, ?, ?)').run('r-g6', 'g9', null, '{}', 'now'), /UNIQUE constraint failed: receipts.receipt_id/);
  assert.throws(() => ledger.db.prepare('INSERT INTO receipts (receipt_id, grant_id, trace_id, receipt_json, created_at) VALUES (?, ?, ?, ?, ?)').run(null, 'g9', null, '{}', 'now'), /NOT NULL constraint failed: receipts.receipt_id/);
  assert.deepEqual(ledger.getReceipt('r-g6'), sixth);
  immediate(db, () => assert.equal(rebuildAsRowidTable(db, 'receipts', () => 'CREATE TABLE never (x)', RECEIPT_COLUMNS, 'receipt_id'), false));
  report = verifyLedger(db, keys);
  assert.equal(report.intact, true);
  assert.equal(report.receipts.total, 6);
  // Only inside a transaction, where a failure leaves the table as it was.
  assert.throws(() => rebuildAsRowidTable(db, 'receipts', () => '', RECEIPT_COLUMNS, 'receipt_id'), /not inside a transaction/);
});

test('a table already named like the rebuilt one stops the rebuild before anything changes, and says what to do', (t) => {
  const dir = tempDir(t, 'latchgate-rowid-');
  const path = join(dir, 'ledger.sqlite3');
  const keys = new KeyStore(join(dir, 'keys'));
  let ledger = Ledger.open(path);
  run(ledger, keys, 1);
  toWithoutRowid(ledger.db, 'receipts', RECEIPT_COLUMNS, ['receipt_id'], ['CREATE INDEX receipts_grant_id ON receipts(grant_id)']);
  // Rows put aside where the rebuild would copy to: they must not join the receipts.
  ledger.db.exec(`CREATE TABLE receipts_rowid (receipt_id TEXT, grant_id TEXT, trace_id TEXT, receipt_json TEXT, created_at TEXT);
    INSERT INTO receipts_rowid VALUES ('r-planted', 'g-planted', NULL, '{}', '2020-01-01')`);
  const rows = ledger.db.prepare('SELECT * FROM receipts ORDER BY receipt_id').all();
  ledger.db.close();
  assert.throws(() => Ledger.open(path), /already has a receipts_rowid, which no latchgate makes; nothing was changed\. Fix: .*drop it/);
  const db = openDb(path);
  t.after(() => db.close());
  assert.equal(withoutRowid(db, 'receipts'), 1);
  assert.deepEqual(db.prepare('SELECT * FROM receipts ORDER BY receipt_id').all(), rows);
  db.exec('DROP TABLE receipts_rowid');
  ledger = Ledger.open(path);
  assert.equal(withoutRowid(ledger.db, 'receipts'), 0);
  assert.deepEqual(ledger.db.prepare('SELECT * FROM receipts ORDER BY receipt_id').all(), rows);
  ledger.db.close();
});

test('idempotency keys: a rowid table whose sweep of expired keys reads only them (an index), rebuilt from the WITHOUT ROWID layout with every key', (t) => {
  const dir = tempDir(t, 'latchgate-rowid-');
  const db = openDb(join(dir, 'ledger.sqlite3'));
  t.after(() => db.close());
  const keys = new IdempotencyKeys(db);
  keys.migrate();
  assert.equal(withoutRowid(db, 'idempotency_keys'), 0);
  const sweep = plan(db, `DELETE FROM idempotency_keys WHERE expires_at <= '2025-01-01'`);
  assert.match(sweep, /USING (COVERING )?INDEX idempotency_keys_expires_at/, `the sweep scans every key: ${sweep}`);

  const now = new Date('2025-01-01T00:00:00.000Z');
  const req = (key, n) => ({ principal: 'agent-1', key, action_id: 'act_1', request_hash: `sha256:${n}` });
  const reply = { status: 200, body: { output: 'y'.repeat(5000) } };
  immediate(db, () => {
    keys.claim(req('k-live', 1), 't-1', now);
    keys.claim(req('k-old', 2), 't-2', new Date(now.getTime() - (KEY_TTL_SECONDS + 60) * 1000));
  });
  keys.answer(req('k-live', 1), reply);
  keys.answer(req('k-old', 2), reply);
  const columns = ['principal', 'key', 'action_id', 'request_hash', 'trace_id', 'reply_json', 'created_at', 'expires_at'];
  toWithoutRowid(db, 'idempotency_keys', columns, ['principal', 'key']);
  const rows = db.prepare('SELECT * FROM idempotency_keys ORDER BY key').all();

  const again = new IdempotencyKeys(db);
  again.migrate();
  assert.equal(withoutRowid(db, 'idempotency_keys'), 0, 'idempotency_keys was not rebuilt as a rowid table');
  assert.deepEqual(db.prepare('SELECT * FROM idempotency_keys ORDER BY key').all(), rows);
  assert.deepEqual(indexes(db, 'idempotency_keys'), ['idempotency_keys_expires_at', 'sqlite_autoindex_idempotency_keys_1']);
  // The stored answer comes back; the expired key is swept; a key is still one principal's once.
  assert.deepEqual(again.lookup(req('k-live', 1), now), reply);
  assert.equal(again.lookup(req('k-old', 2), now), undefined);
  assert.deepEqual(db.prepare('SELECT key FROM idempotency_keys').pluck().all(), ['k-live']);
  assert.throws(() => immediate(db, () => again.claim(req('k-live', 1), 't-3', now)), (e) => e.code === 'idempotency_in_progress');
});
