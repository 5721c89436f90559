// `latchgate verify` spreads the per-row work over worker threads on a large
// ledger (src/ledger/verify-pool.ts): every finding must be the one the
// single-threaded walk makes, for tampering anywhere, including at the
// edges of the batches the workers get (1024 rows each, round robin).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Ledger, eventHash } from '../../dist/ledger/ledger.js';
import { immediate } from '../../dist/ledger/db.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { factsOf, verifyThreads } from '../../dist/ledger/verify-pool.js';
import { ROW_COLUMNS } from '../../dist/ledger/verify-row.js';
import { signReceipt } from '../../dist/ledger/receipt.js';
import { canonicalize } from '../../dist/crypto/jcs.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const N = 3200;

function setup(t) {
  const dir = tempDir(t, 'latchgate-verify-threads-');
  const ledger = Ledger.open(join(dir, 'ledger.db'));
  const keys = new KeyStore(join(dir, 'keys'));
  t.after(() => ledger.db.close());
  const receiptAt = new Set([10, 1500, 3000]);
  for (let i = 0; i < N; ) {
    immediate(ledger.db, () => {
      for (const end = Math.min(N, i + 500); i < end && !receiptAt.has(i); i++) {
        ledger.appendInTransaction({ event_type: 'action_call', decision: i % 3 ? 'allow' : 'deny', subject: { principal: `agent-${i % 5}`, session_id: `s-${i % 7}` }, action: { action_id: `act_${i % 4}` }, details: { n: i, note: 'é'.repeat(i % 40) } });
      }
    });
    if (receiptAt.has(i)) {
      const g = `g${i}`;
      ledger.consumeGrantAndWriteIntent({ grant_id: g, trace_id: `t-${g}`, action_id: 'act_1', principal: 'agent-1', provider_module_digest: 'builtin:http_api', request_hash: 'sha256:ab', started_at: '2025-01-01T00:00:00.000Z' });
      const r = signReceipt(keys, { receipt_id: `r-${g}`, grant_id: g, trace_id: `t-${g}`, provider_module_digest: 'builtin:http_api', provider_receipt: { status: 200 }, normalized_result: { kind: 'success', summary: 'ok' }, verification_outcome: { status: 'verified', evidence: {} }, effect_evidence: [], started_at: '2025-01-01T00:00:00.000Z', finished_at: '2025-01-01T00:00:00.010Z' });
      ledger.commitEvidence(r, { event_type: 'action_call', decision: 'allow', subject: { principal: 'agent-1' }, action: { action_id: 'act_1' }, execution: { grant_id: g } });
      i++;
    }
  }
  return { ledger, keys, db: ledger.db };
}

function withThreads(n, fn) {
  const before = process.env.LATCHGATE_VERIFY_THREADS;
  process.env.LATCHGATE_VERIFY_THREADS = String(n);
  try {
    return fn();
  } finally {
    if (before === undefined) delete process.env.LATCHGATE_VERIFY_THREADS;
    else process.env.LATCHGATE_VERIFY_THREADS = before;
  }
}

/** The report of one tampering, verified in one thread and with two workers (the third batch goes to the first worker again); they must agree. */
function bothWays(ctx, tamper) {
  const { db, keys } = ctx;
  db.exec('BEGIN IMMEDIATE');
  try {
    tamper(db);
    const one = withThreads(0, () => verifyLedger(db, keys));
    const two = withThreads(2, () => verifyLedger(db, keys));
    assert.deepEqual(two, one);
    return one;
  } finally {
    db.exec('ROLLBACK');
  }
}

const row = (db, id) => db.prepare('SELECT * FROM audit_events WHERE id = ?').get(id);
const setJson = (db, id, json, hash) => db.prepare('UPDATE audit_events SET event_json = ?, hash = ? WHERE id = ?').run(json, hash, id);

test('the facts of every row come back from the workers in row order, across batches', (t) => {
  const { db } = setup(t);
  const rows = () => db.prepare(`SELECT ${ROW_COLUMNS} FROM audit_events ORDER BY id`).raw(true).iterate();
  const one = [...factsOf(rows(), 0)];
  const three = [...factsOf(rows(), 2)];
  assert.equal(three.length, one.length);
  assert.ok(one.length > 3 * 1024, 'enough rows for more batches than workers');
  for (let i = 0; i < one.length; i++) {
    assert.equal(three[i][0][0], one[i][0][0], `row ${i}`);
    assert.deepEqual({ ...three[i][1], leaf: [...three[i][1].leaf] }, { ...one[i][1], leaf: [...one[i][1].leaf] }, `facts of row ${i}`);
  }
});

test('an untouched large ledger is intact whether verified in one thread or several', (t) => {
  const ctx = setup(t);
  const r = bothWays(ctx, () => {});
  assert.equal(r.intact, true, JSON.stringify(r.first_bad));
  assert.equal(r.total_events, N);
  assert.equal(r.receipts.total, 3);
});

test('tampering at the edges of the workers\' batches is found at the same event, with the same report, in one thread or several', (t) => {
  const ctx = setup(t);
  const last = ctx.db.prepare('SELECT max(id) FROM audit_events').pluck().get();
  for (const id of [1, 1024, 1025, 2048, 2049, last]) {
    const edits = {
      'json and hash': (db) => {
        const e = JSON.parse(row(db, id).event_json);
        e.details = { n: -1 };
        const json = canonicalize(e);
        setJson(db, id, json, eventHash(json));
      },
      'not JSON': (db) => setJson(db, id, '{"event_type":', eventHash('{"event_type":')),
      'a column': (db) => db.prepare(`UPDATE audit_events SET principal = 'agent-root' WHERE id = ?`).run(id),
      deleted: (db) => db.prepare('DELETE FROM audit_events WHERE id = ?').run(id),
    };
    for (const [what, edit] of Object.entries(edits)) {
      const r = bothWays(ctx, edit);
      assert.equal(r.intact, false, `${what} at id=${id} went unnoticed`);
      assert.ok(r.first_bad, `${what} at id=${id}: first_bad`);
    }
  }
  // Two rows of different batches swapped.
  const swapped = bothWays(ctx, (db) => {
    const a = row(db, 1000);
    const b = row(db, 2500);
    db.prepare(`UPDATE audit_events SET trace_id = 'swapping' WHERE id = ?`).run(a.id);
    for (const [to, from] of [[b.id, a], [a.id, b]]) {
      db.prepare('UPDATE audit_events SET trace_id = ?, timestamp = ?, event_type = ?, principal = ?, session_id = ?, action_id = ?, decision = ?, event_json = ?, hash = ? WHERE id = ?').run(from.trace_id, from.timestamp, from.event_type, from.principal, from.session_id, from.action_id, from.decision, from.event_json, from.hash, to);
    }
  });
  assert.equal(swapped.first_bad?.id, 1000, JSON.stringify(swapped.first_bad));
  // A receipt deleted: found through the event that names it, in a worker's batch.
  const deleted = bothWays(ctx, (db) => db.prepare(`DELETE FROM receipts WHERE receipt_id = 'r-g1500'`).run());
  assert.match(JSON.stringify(deleted.receipts.bad), /r-g1500.*missing/);
});

test('LATCHGATE_VERIFY_THREADS: a count, else the size decides; anything else is refused by name', () => {
  assert.equal(verifyThreads(10, { LATCHGATE_VERIFY_THREADS: '2' }), 2);
  assert.equal(verifyThreads(10_000_000, { LATCHGATE_VERIFY_THREADS: '0' }), 0);
  assert.equal(verifyThreads(100, {}), 0);
  assert.ok(verifyThreads(1_000_000, {}) >= 1);
  for (const bad of ['two', '-1', '1.5', '65']) assert.throws(() => verifyThreads(10, { LATCHGATE_VERIFY_THREADS: bad }), /LATCHGATE_VERIFY_THREADS.*whole number/);
});
