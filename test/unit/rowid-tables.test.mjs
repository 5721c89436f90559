// The tables of large rows (receipts, the replies of idempotency keys) are
// rowid tables (src/ledger/rowid-tables.ts): a new file has them so, and a
// file written with the earlier WITHOUT ROWID layout is rebuilt at its first
// open, every row kept, its chain still verifying, and its writes going on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ledger } from '../../dist/ledger/ledger.js';
import { immediate, openDb } from '../../dist/ledger/db.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyLedger, verifyLedgerFile } from '../../dist/ledger/verify.js';
import { signReceipt } from '../../dist/ledger/receipt.js';
import { rebuildAsRowidTable } from '../../dist/ledger/rowid-tables.js';
import { IdempotencyKeys, KEY_TTL_SECONDS } from '../../dist/gate/idempotency.js';
import { checkChainedState } from '../../dist/gate/state-check.js';
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

/** The tables as an earlier latchgate created them. */
const EARLIER = {
  receipts: `CREATE TABLE IF NOT EXISTS receipts (
  receipt_id TEXT PRIMARY KEY,
  grant_id TEXT NOT NULL,
  trace_id TEXT,
  receipt_json TEXT NOT NULL,
  created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS receipts_grant_id ON receipts(grant_id);`,
  idempotency_keys: `CREATE TABLE IF NOT EXISTS idempotency_keys (
      principal TEXT NOT NULL, key TEXT NOT NULL, action_id TEXT NOT NULL, request_hash TEXT NOT NULL,
      trace_id TEXT NOT NULL, reply_json TEXT, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
      PRIMARY KEY (principal, key)) WITHOUT ROWID`,
};

/** Turns `table` back into what an earlier latchgate made, its rows kept; then runs `extra`. */
function toEarlier(db, table, extra = []) {
  immediate(db, () => {
    db.exec(`CREATE TEMP TABLE kept AS SELECT * FROM ${table}; DROP TABLE ${table}`);
    db.exec(EARLIER[table]);
    db.exec(`INSERT INTO ${table} SELECT * FROM temp.kept; DROP TABLE temp.kept`);
    for (const sql of extra) db.exec(sql);
  });
  assert.equal(withoutRowid(db, table), 1);
}

/** A state directory whose ledger holds receipts 1..n in the earlier layout, with `extra` run after. */
function earlierLedger(t, n, extra = []) {
  const dir = tempDir(t, 'latchgate-rowid-');
  const path = join(dir, 'ledger.sqlite3');
  const keys = new KeyStore(join(dir, 'keys'));
  const ledger = Ledger.open(path);
  const written = Array.from({ length: n }, (_, i) => run(ledger, keys, i + 1, i === 2 ? 200 : 6000));
  toEarlier(ledger.db, 'receipts', extra);
  const rows = ledger.db.prepare('SELECT * FROM receipts ORDER BY receipt_id').all();
  ledger.db.close();
  return { path, keys, written, rows };
}

test('a ledger written with WITHOUT ROWID receipts is rebuilt at its next open: every receipt kept, the chain verifies, writes go on', (t) => {
  const fresh = Ledger.open(join(tempDir(t, 'latchgate-rowid-'), 'ledger.sqlite3'));
  // A new ledger has them as a rowid table already.
  assert.equal(withoutRowid(fresh.db, 'receipts'), 0);
  fresh.db.close();
  const { path, keys, written, rows } = earlierLedger(t, 5);
  assert.equal(rows.length, 5);
  const ledger = Ledger.open(path);
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
  immediate(db, () => assert.equal(rebuildAsRowidTable(db, { table: 'receipts', earlier: '', indexes: [], create: () => 'CREATE TABLE never (x)', order: 'receipt_id' }), false));
  report = verifyLedger(db, keys);
  assert.equal(report.intact, true);
  assert.equal(report.receipts.total, 6);
  // Only inside a transaction, where a failure leaves the table as it was.
  assert.throws(() => rebuildAsRowidTable(db, { table: 'receipts', earlier: '', indexes: [], create: () => '', order: 'receipt_id' }), /not inside a transaction/);
});

/** Opening the file refuses to rebuild, naming why and the fix; the file is as it was (its table, its rows, what verify says). */
function refusedAsItWas(t, path, keys, rows, why) {
  // As `latchgate verify` runs it: with the state outside the chain (triggers and views among it).
  const verify = () => verifyLedgerFile(path, keys, checkChainedState);
  const before = verify();
  assert.throws(() => Ledger.open(path), (e) => {
    assert.equal(e.code, 'ledger_rebuild_refused', e.message);
    assert.match(e.message, why);
    assert.match(e.message, /nothing was changed\. Fix: /);
    return true;
  });
  const db = openDb(path);
  t.after(() => db.close());
  assert.equal(withoutRowid(db, 'receipts'), 1);
  assert.deepEqual(db.prepare('SELECT * FROM receipts ORDER BY receipt_id').all(), rows);
  assert.deepEqual(verify(), before);
  return { db, before };
}

test('the rebuild drops nothing that would hide tampering: a trigger or view anywhere, a foreign key to the table, another index, a damaged one', (t) => {
  // A trigger verify reports would go with the dropped table, and the report with it.
  let e = earlierLedger(t, 2, ["CREATE TRIGGER keep_quiet AFTER INSERT ON receipts BEGIN SELECT 1; END"]);
  let { before } = refusedAsItWas(t, e.path, e.keys, e.rows, /the file holds trigger "keep_quiet", which no latchgate makes/);
  assert.match(JSON.stringify(before), /keep_quiet/, 'verify no longer names the trigger');
  e = earlierLedger(t, 2, ['CREATE VIEW all_receipts AS SELECT * FROM receipts']);
  refusedAsItWas(t, e.path, e.keys, e.rows, /the file holds view "all_receipts"/);
  // Dropping the table would delete the rows that cascade from it.
  e = earlierLedger(t, 2, ['CREATE TABLE notes (n TEXT, receipt TEXT REFERENCES receipts(receipt_id) ON DELETE CASCADE)', "INSERT INTO notes VALUES ('kept', 'r-g1')"]);
  const { db } = refusedAsItWas(t, e.path, e.keys, e.rows, /table\(s\) notes refer to it by a foreign key/);
  assert.deepEqual(db.prepare('SELECT n FROM notes').pluck().all(), ['kept']);
  e = earlierLedger(t, 2, ['CREATE INDEX receipts_by_trace ON receipts(trace_id)']);
  refusedAsItWas(t, e.path, e.keys, e.rows, /its indexes are \["CREATE INDEX receipts_by_trace ON receipts\(trace_id\)","CREATE INDEX receipts_grant_id ON receipts\(grant_id\)"\], not the \["CREATE INDEX receipts_grant_id ON receipts\(grant_id\)"\]/);
  // The earlier index's name on another definition (one that leaves rows out, say).
  e = earlierLedger(t, 2, ['DROP INDEX receipts_grant_id', "CREATE INDEX receipts_grant_id ON receipts(grant_id) WHERE grant_id <> 'g2'"]);
  refusedAsItWas(t, e.path, e.keys, e.rows, /its indexes are \["CREATE INDEX receipts_grant_id ON receipts\(grant_id\) WHERE grant_id <> 'g2'"\]/);
  // An index that disagrees with its table (a byte of a key changed in the file): integrity_check reports it; the rebuild would erase it.
  e = earlierLedger(t, 2);
  const raw = openDb(e.path);
  raw.pragma('wal_checkpoint(TRUNCATE)');
  const page = raw.prepare(`SELECT rootpage FROM sqlite_master WHERE name = 'receipts_grant_id'`).pluck().get();
  const size = raw.pragma('page_size', { simple: true });
  raw.close();
  const file = readFileSync(e.path);
  const at = file.indexOf('g2', (page - 1) * size);
  assert.ok(at > 0 && at < page * size, 'the index page holds no g2');
  file.write('g7', at);
  writeFileSync(e.path, file);
  refusedAsItWas(t, e.path, e.keys, e.rows, /SQLite finds the file damaged: .*receipts_grant_id/);
  // Damage outside the table: a free list naming a page of audit_events would have the copy overwrite events.
  e = earlierLedger(t, 4);
  const freed = openDb(e.path);
  freed.exec('CREATE TABLE scratch (x)');
  for (let i = 0; i < 8; i++) freed.prepare('INSERT INTO scratch VALUES (randomblob(4000))').run();
  freed.exec('DROP TABLE scratch');
  freed.pragma('wal_checkpoint(TRUNCATE)');
  const eventsPage = freed.prepare(`SELECT pageno FROM dbstat WHERE name = 'audit_events' AND pagetype = 'leaf' ORDER BY pageno LIMIT 1`).pluck().get();
  freed.close();
  const bytes = readFileSync(e.path);
  const trunk = bytes.readUInt32BE(32); // the first free-list trunk page (the file header, offset 32)
  assert.ok(trunk > 0 && bytes.readUInt32BE((trunk - 1) * size + 4) > 0, 'no free pages to list');
  bytes.writeUInt32BE(eventsPage, (trunk - 1) * size + 8);
  writeFileSync(e.path, bytes);
  refusedAsItWas(t, e.path, e.keys, e.rows, /SQLite finds the file damaged: .*2nd reference to page/s);
});

test('a table of the rebuilt one\'s name, in any case, or a table unlike the earlier one, stops the rebuild', (t) => {
  for (const name of ['receipts_rowid', 'RECEIPTS_ROWID', 'Receipts_Rowid']) {
    // Rows put aside where the rebuild would copy to: they must not join the receipts.
    const e = earlierLedger(t, 2, [`CREATE TABLE ${name} (receipt_id TEXT PRIMARY KEY ON CONFLICT IGNORE, grant_id TEXT, trace_id TEXT, receipt_json TEXT, created_at TEXT)`, `INSERT INTO ${name} VALUES ('r-g1', 'g-planted', NULL, '{}', '2020-01-01')`]);
    refusedAsItWas(t, e.path, e.keys, e.rows, new RegExp(`the file already has a table named "${name}", which no latchgate makes.*Fix: look at what it holds .*then drop it`));
  }
  const e = earlierLedger(t, 2);
  const db = openDb(e.path);
  immediate(db, () => {
    db.exec(`CREATE TEMP TABLE kept AS SELECT * FROM receipts; DROP TABLE receipts`);
    db.exec(EARLIER.receipts.replace('receipt_id TEXT PRIMARY KEY', 'receipt_id TEXT PRIMARY KEY ON CONFLICT IGNORE'));
    db.exec(`INSERT INTO receipts SELECT * FROM temp.kept; DROP TABLE temp.kept`);
  });
  db.close();
  refusedAsItWas(t, e.path, e.keys, e.rows, /it is not the table an earlier latchgate made: "CREATE TABLE receipts \(\\n  receipt_id TEXT PRIMARY KEY ON CONFLICT IGNORE/);
});

test('a ledger another process holds the write lock of is named busy, with what to do', (t) => {
  const { path, rows } = earlierLedger(t, 1);
  const other = openDb(path);
  t.after(() => other.close());
  other.exec('BEGIN IMMEDIATE');
  assert.throws(() => Ledger.open(path), (e) => e.code === 'ledger_busy' && /is busy: another process has held its write lock.*Fix: wait for it and start again, or stop the other latchgate processes/.test(e.message));
  other.exec('ROLLBACK');
  const ledger = Ledger.open(path);
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
  toEarlier(db, 'idempotency_keys');
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
