// Tampering through the real gate: after real executions, a
// single-row edit, delete, insert or swap in the ledger file is caught by
// verifyLedger, which names the row. (`latchgate verify` is the CLI face of
// verifyLedger; it is not built yet, so the function is called directly.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalize } from '../../dist/crypto/jcs.js';
import { eventHash, indexedColumns } from '../../dist/ledger/ledger.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { Agent, grantAll } from '../helpers/gate.mjs';
import { admin, gateFor, ledgerCopy } from '../helpers/gate-faults.mjs';

/** A gate with a dozen real events: leases, allowed calls, a failure, a denial, a held approval. */
async function busyGate(t) {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease({ budgets: { max_calls: 4 } });
  for (let i = 0; i < 3; i++) assert.equal((await a.execute('t_ok', { n: i })).status, 200);
  assert.equal((await a.execute('t_fail', { n: 1 })).status, 502);
  assert.equal((await a.execute('t_ok', { n: -1 })).status, 422);
  assert.equal((await a.execute('t_high', { n: 1 })).status, 202);
  const v = verifyLedger(g.db, g.ctx.keys);
  assert.equal(v.intact, true, JSON.stringify(v.first_bad));
  assert.ok(v.total_events >= 7, `events: ${v.total_events}`);
  return g;
}

const rows = (db) => db.prepare('SELECT * FROM audit_events ORDER BY id').all();

/** Rewrites one row's event (keeping it canonical), optionally recomputing hash and columns as a careful attacker would. */
function rewrite(db, id, edit, { rehash = false } = {}) {
  const row = db.prepare('SELECT * FROM audit_events WHERE id = ?').get(id);
  const ev = JSON.parse(row.event_json);
  edit(ev);
  const json = canonicalize(ev);
  if (!rehash) {
    db.prepare('UPDATE audit_events SET event_json = ? WHERE id = ?').run(json, id);
    return;
  }
  const c = indexedColumns(ev);
  db.prepare('UPDATE audit_events SET event_json = ?, hash = ?, decision = ?, principal = ?, action_id = ? WHERE id = ?').run(json, eventHash(json), c.decision, c.principal, c.action_id, id);
}

test('an edited event_json in the live gate ledger is named by verifyLedger', async (t) => {
  const g = await busyGate(t);
  const target = rows(g.db).find((r) => r.event_type === 'action_call' && r.decision === 'allow');
  assert.ok(target);
  const changed = target.event_json.replace('"decision":"allow"', '"decision":"deny"');
  assert.notEqual(changed, target.event_json);
  g.db.prepare('UPDATE audit_events SET event_json = ? WHERE id = ?').run(changed, target.id);
  const v = verifyLedger(g.db, g.ctx.keys);
  assert.equal(v.intact, false);
  assert.equal(v.first_bad.id, target.id);
  assert.equal(v.first_bad.trace_id, target.trace_id);
  assert.match(v.first_bad.reason, /edited/);
  // The admin API says the same.
  const av = await admin(g, 'GET', '/v1/audit/verify');
  assert.equal(av.body.intact, false);
  assert.equal(av.body.first_bad.id, target.id);
});

test('every single-row edit, delete, insert and swap of a real gate ledger is caught and located', async (t) => {
  const g = await busyGate(t);
  const all = rows(g.db);
  const mid = all[Math.floor(all.length / 2)];
  const last = all.at(-1);
  const cases = [
    ['edit (hash left stale)', (db) => rewrite(db, mid.id, (e) => (e.subject.principal = 'mallory')), [mid.id]],
    ['edit (hash and columns recomputed)', (db) => rewrite(db, mid.id, (e) => (e.subject.principal = 'mallory'), { rehash: true }), [mid.id]],
    ['edit of the last event (rehashed)', (db) => rewrite(db, last.id, (e) => (e.decision = 'deny'), { rehash: true }), [last.id]],
    ['edit of the first event (rehashed)', (db) => rewrite(db, all[0].id, (e) => (e.event_type = 'lease_denied'), { rehash: true }), [all[0].id]],
    ['column edit only', (db) => db.prepare('UPDATE audit_events SET decision = ? WHERE id = ?').run('allow', all.find((r) => r.decision === 'deny').id), [all.find((r) => r.decision === 'deny').id]],
    ['delete a middle event', (db) => db.prepare('DELETE FROM audit_events WHERE id = ?').run(mid.id), [mid.id]],
    ['delete the first event', (db) => db.prepare('DELETE FROM audit_events WHERE id = ?').run(all[0].id), [all[0].id]],
    ['delete the last event', (db) => db.prepare('DELETE FROM audit_events WHERE id = ?').run(last.id), [last.id]],
    [
      'insert a well-formed event at the end',
      (db) => {
        const ev = { ...JSON.parse(last.event_json), trace_id: 'forged-trace', prev_hash: last.hash };
        const json = canonicalize(ev);
        db.prepare(
          `INSERT INTO audit_events(trace_id, timestamp, event_type, principal, session_id, action_id, decision, event_json, hash)
           VALUES (@trace_id, @timestamp, @event_type, @principal, @session_id, @action_id, @decision, @event_json, @hash)`,
        ).run({ ...indexedColumns(ev), event_json: json, hash: eventHash(json) });
      },
      [last.id + 1],
    ],
    [
      'swap two adjacent events',
      (db) => {
        const [a, b] = [all[2], all[3]];
        const put = db.prepare('UPDATE audit_events SET trace_id = ?, timestamp = ?, event_type = ?, principal = ?, session_id = ?, action_id = ?, decision = ?, event_json = ?, hash = ? WHERE id = ?');
        const vals = (r) => [r.trace_id, r.timestamp, r.event_type, r.principal, r.session_id, r.action_id, r.decision, r.event_json, r.hash];
        db.transaction(() => {
          db.prepare('UPDATE audit_events SET trace_id = trace_id || ? WHERE id IN (?, ?)').run('-tmp', a.id, b.id);
          put.run(...vals(b), a.id);
          put.run(...vals(a), b.id);
        })();
      },
      [all[2].id, all[3].id],
    ],
  ];
  for (const [name, tamper, ids] of cases) {
    const copy = await ledgerCopy(t, g);
    assert.equal(copy.verify().intact, true, `${name}: the copy starts intact`);
    tamper(copy.db);
    const v = copy.verify();
    assert.equal(v.intact, false, `${name}: not caught`);
    assert.ok(ids.includes(v.first_bad.id), `${name}: first_bad ${JSON.stringify(v.first_bad)}, expected id in ${ids}`);
  }
});

test('an edited receipt of a real execution is named in receipts.bad', async (t) => {
  const g = await busyGate(t);
  const copy = await ledgerCopy(t, g);
  const r = copy.db.prepare('SELECT receipt_id, receipt_json FROM receipts ORDER BY created_at LIMIT 1').get();
  const receipt = JSON.parse(r.receipt_json);
  receipt.normalized_result = { kind: 'success', summary: 'completed, honestly' };
  copy.db.prepare('UPDATE receipts SET receipt_json = ? WHERE receipt_id = ?').run(canonicalize(receipt), r.receipt_id);
  const v = copy.verify();
  assert.equal(v.intact, false);
  assert.deepEqual(v.receipts.bad.map((b) => b.receipt_id), [r.receipt_id]);
  // Deleting a receipt: the chained event that named it finds it missing, and its intent is accounted for by nothing.
  const copy2 = await ledgerCopy(t, g);
  const gone = copy2.db.prepare('SELECT receipt_id, grant_id FROM receipts LIMIT 1').get();
  copy2.db.prepare('DELETE FROM receipts WHERE receipt_id = ?').run(gone.receipt_id);
  const v2 = copy2.verify();
  assert.equal(v2.intact, false);
  assert.deepEqual(v2.receipts.bad.map((b) => b.receipt_id), [gone.receipt_id]);
  assert.match(v2.receipts.bad[0].reason, /^missing: event id=\d+ \(trace_id [0-9a-f-]+\) names this receipt, which is not in the receipts table: it was deleted$/);
  assert.deepEqual(v2.intents_without_receipts.map((i) => [i.grant_id, i.status]), [[gone.grant_id, 'unexplained']]);
  assert.match(v2.intents_without_receipts[0].reason, /has no receipt, but its event id=\d+ does not account for that: the receipt was deleted/);
});
