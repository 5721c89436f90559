// verifyLedger against an attacker with write access to the SQLite file:
// every single-row edit, delete, insert, swap, a moved chain head, and
// tampered receipts must be caught, with first_bad naming the right event.
// Each attack runs inside a transaction on a shared ledger and is rolled back
// afterwards, so the 50-seed property test stays fast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ledger, eventHash } from '../../dist/ledger/ledger.js';
import { immediate } from '../../dist/ledger/db.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { signReceipt, computeResultHash, verifyReceipt } from '../../dist/ledger/receipt.js';
import { formatVerifyReport } from '../../dist/ledger/format.js';
import { recordInterrupted } from '../../dist/gate/interrupted.js';
import { canonicalize } from '../../dist/crypto/jcs.js';
import { prng, tempDir } from '../fixtures/unit/helpers.mjs';

const N = 24;

function setup(t) {
  const dir = tempDir(t, 'latchgate-tamper-');
  const ledger = Ledger.open(join(dir, 'ledger.db'));
  const keys = new KeyStore(join(dir, 'keys'));
  t.after(() => ledger.db.close());
  immediate(ledger.db, () => {
    for (let i = 0; i < N; i++) {
      const admin = i % 5 === 0;
      ledger.appendInTransaction({
        event_type: admin ? 'admin_reload' : 'action_call',
        decision: i % 2 ? 'allow' : 'deny',
        subject: { principal: `agent-${i % 3}`, session_id: `s-${i % 2}` },
        action: { action_id: `act_${i % 4}` },
        // an admin act names its operator and what the reload did (src/core/event-catalogue.ts)
        ...(admin ? { operator: { name: 'root', uid: 0 } } : {}),
        details: { n: i, note: `event ${i}`, ...(admin ? { ok: true, generation: i } : {}) },
      });
    }
  });
  for (let g = 1; g <= 3; g++) {
    ledger.consumeGrantAndWriteIntent({ grant_id: `g${g}`, trace_id: `t-g${g}`, action_id: 'act_1', principal: 'agent-1', provider_module_digest: 'builtin:http_api', request_hash: 'sha256:ab', started_at: `2025-01-01T00:00:0${g}.000Z` });
  }
  for (const g of ['g1', 'g2']) {
    const r = signReceipt(keys, {
      receipt_id: `r-${g}`,
      grant_id: g,
      trace_id: `t-${g}`,
      provider_module_digest: 'builtin:http_api',
      provider_receipt: { status: 201, body: { id: 7 } },
      normalized_result: { kind: 'success', summary: 'created' },
      verification_outcome: { status: 'verified', evidence: { status: 201 } },
      effect_evidence: [{ kind: 'http_status', value: 201 }],
      started_at: '2025-01-01T00:00:00.000Z',
      finished_at: '2025-01-01T00:00:00.020Z',
    });
    ledger.commitEvidence(r, { event_type: 'action_call', decision: 'allow', subject: { principal: 'agent-1' }, action: { action_id: 'act_1' }, execution: { grant_id: g } });
  }
  // g3's gate "stopped" before its receipt: the next gate records it (no gate process is alive here).
  assert.equal(recordInterrupted(ledger, { isRunning: () => false }).length, 1);
  return { ledger, keys, db: ledger.db, total: N + 3 };
}

/** Runs an attack in a transaction, verifies, rolls back, and checks the ledger is intact again. */
function attack(ctx, fn) {
  const { db, keys } = ctx;
  db.exec('BEGIN IMMEDIATE');
  let report;
  try {
    fn(db);
    report = verifyLedger(db, keys);
  } finally {
    db.exec('ROLLBACK');
  }
  return report;
}

const rows = (db) => db.prepare('SELECT * FROM audit_events ORDER BY id').all();
const rowById = (db, id) => db.prepare('SELECT * FROM audit_events WHERE id = ?').get(id);

function assertBad(report, id, traceId, reason) {
  assert.equal(report.intact, false, 'tampering went unnoticed');
  assert.ok(report.first_bad, 'first_bad is null');
  assert.equal(report.first_bad.id, id, `first_bad ${JSON.stringify(report.first_bad)}`);
  assert.equal(report.first_bad.trace_id, traceId);
  assert.match(report.first_bad.reason, reason);
}

/** Moves every row with id > after one id up (descending, so ids never collide). */
function shiftUp(db, after) {
  for (const { id } of db.prepare('SELECT id FROM audit_events WHERE id > ? ORDER BY id DESC').all(after)) {
    db.prepare('UPDATE audit_events SET id = ? WHERE id = ?').run(id + 1, id);
  }
}

test('an untouched ledger is intact, with intents without receipts listed apart', (t) => {
  const ctx = setup(t);
  const r = verifyLedger(ctx.db, ctx.keys);
  assert.equal(r.intact, true, JSON.stringify(r.first_bad));
  assert.equal(r.first_bad, null);
  assert.equal(r.total_events, ctx.total);
  assert.equal(r.verified_links, ctx.total - 1);
  assert.equal(r.chain_head, ctx.ledger.chainHead());
  assert.deepEqual(r.receipts, { total: 2, bad: [] });
  assert.deepEqual(r.intents_without_receipts, [{ grant_id: 'g3', trace_id: 't-g3', action_id: 'act_1', started_at: '2025-01-01T00:00:03.000Z', status: 'interrupted', event_id: ctx.total }]);
  assert.match(formatVerifyReport(r), /^Ledger integrity verified: 27 events, 26 links intact\.\n/);
  assert.match(formatVerifyReport(r), /1 execution intents have no receipt[\s\S]*grant g3 .*: interrupted \(the gate stopped before its receipt; execution_interrupted event id=27\)/);
});

test('an intent without a receipt that no event accounts for: not intact (a crash no gate has recorded yet), unless a live gate is running it', (t) => {
  const ctx = setup(t);
  ctx.ledger.consumeGrantAndWriteIntent({ grant_id: 'g4', trace_id: 't-g4', action_id: 'act_1', principal: 'agent-1', provider_module_digest: 'builtin:http_api', request_hash: 'sha256:cd', started_at: '2025-01-01T00:00:04.000Z', instance_id: 'i-1' });
  const r = verifyLedger(ctx.db, ctx.keys);
  assert.equal(r.intact, false);
  assert.equal(r.first_bad, null, 'the chain itself is fine');
  const g4 = r.intents_without_receipts.find((i) => i.grant_id === 'g4');
  assert.equal(g4.status, 'unexplained');
  assert.equal(g4.reason, 'interrupted: the gate stopped after the intent of grant g4 (action act_1, trace_id t-g4, started 2025-01-01T00:00:04.000Z) and before its receipt, and no gate has recorded it since (a gate that starts on this state directory writes its execution_interrupted event). Check whether the side effect happened');
  assert.match(formatVerifyReport(r), /1 execution intents have no receipt and no event accounts for it:\n  interrupted: the gate stopped after the intent of grant g4/);
  // The gate that wrote it still runs: in flight, not a problem.
  const live = verifyLedger(ctx.db, ctx.keys, undefined, undefined, { inFlight: (i) => i.instance_id === 'i-1' });
  assert.equal(live.intact, true);
  assert.equal(live.intents_without_receipts.find((i) => i.grant_id === 'g4').status, 'in_flight');
  // A gate that starts with i-1 still alive records nothing; once i-1 is gone, it records the interruption.
  assert.deepEqual(recordInterrupted(ctx.ledger, { isRunning: (i) => i.instance_id === 'i-1' }), []);
  assert.deepEqual(recordInterrupted(ctx.ledger, { isRunning: () => false }).map((i) => i.grant_id), ['g4']);
  assert.deepEqual(recordInterrupted(ctx.ledger, { isRunning: () => false }), [], 'recorded once');
  const after = verifyLedger(ctx.db, ctx.keys);
  assert.equal(after.intact, true, JSON.stringify(after.intents_without_receipts));
  assert.equal(after.intents_without_receipts.find((i) => i.grant_id === 'g4').status, 'interrupted');
});

test('an empty ledger is intact; emptied (all rows deleted) it is not', (t) => {
  const dir = tempDir(t);
  const ledger = Ledger.open(join(dir, 'l.db'));
  t.after(() => ledger.db.close());
  const keys = new KeyStore(join(dir, 'k'));
  assert.equal(verifyLedger(ledger.db, keys).intact, true);
  ledger.append({ event_type: 'admin_drain', decision: 'allow', operator: { name: 'root' }, subject: { principal: 'root' }, details: {} });
  ledger.db.exec('DELETE FROM audit_events');
  assertBad(verifyLedger(ledger.db, keys), 1, null, /deleted/);
});

test('property (50 seeds): editing any single event is caught at that event, whether or not the attacker recomputes its hash', (t) => {
  const ctx = setup(t);
  const edits = [
    ['decision', (e) => (e.decision = e.decision === 'allow' ? 'deny' : 'allow')],
    ['details', (e) => (e.details = { ...e.details, n: 1000 })],
    ['note', (e) => (e.details = { ...e.details, note: 'nothing to see' })],
    ['prev_hash', (e) => (e.prev_hash = e.prev_hash ? `sha256:${'0'.repeat(64)}` : `sha256:${'1'.repeat(64)}`)],
    ['timestamp', (e) => (e.timestamp = '2020-01-01T00:00:00.000Z')],
    ['drop', (e) => delete e.action],
  ];
  for (let seed = 1; seed <= 50; seed++) {
    const rnd = prng(seed);
    const all = rows(ctx.db);
    const victim = rnd.pick(all);
    const [what, edit] = rnd.pick(edits);
    const mode = rnd.pick(['json-only', 'json+hash', 'json+hash+columns', 'non-canonical']);
    const report = attack(ctx, (db) => {
      const e = JSON.parse(victim.event_json);
      edit(e);
      const json = mode === 'non-canonical' ? JSON.stringify(e, null, 1) : canonicalize(e);
      if (mode === 'json-only') db.prepare('UPDATE audit_events SET event_json = ? WHERE id = ?').run(json, victim.id);
      else if (mode === 'non-canonical') db.prepare('UPDATE audit_events SET event_json = ?, hash = ? WHERE id = ?').run(json, eventHash(json), victim.id);
      else {
        db.prepare('UPDATE audit_events SET event_json = ?, hash = ? WHERE id = ?').run(json, eventHash(json), victim.id);
        if (mode === 'json+hash+columns') {
          db.prepare('UPDATE audit_events SET timestamp = ?, decision = ?, action_id = ? WHERE id = ?').run(e.timestamp, e.decision ?? null, e.action?.action_id ?? null, victim.id);
        }
      }
    });
    const label = `seed ${seed}: ${what} edit (${mode}) of id=${victim.id}`;
    assert.equal(report.intact, false, `${label} went unnoticed`);
    assert.equal(report.first_bad?.id, victim.id, `${label}: ${JSON.stringify(report.first_bad)}`);
    assert.equal(report.first_bad.trace_id, victim.trace_id, label);
    assert.match(report.first_bad.reason, /edited|edit/, label);
  }
  assert.equal(verifyLedger(ctx.db, ctx.keys).intact, true, 'every attack was rolled back');
});

test('an event written compact with its keys out of JCS order (as JSON.stringify writes it), hash recomputed, is caught as not canonical', (t) => {
  const ctx = setup(t);
  const victim = rowById(ctx.db, 7);
  const e = JSON.parse(victim.event_json);
  // The same members, compact, in an order that is not the canonical one: at the top level, and only deep inside.
  const top = JSON.stringify(Object.fromEntries(Object.entries(e).reverse()));
  const deep = JSON.stringify({ ...e, details: Object.fromEntries(Object.entries(e.details).reverse()) });
  for (const json of [top, deep]) {
    assert.notEqual(json, victim.event_json);
    const report = attack(ctx, (db) => db.prepare('UPDATE audit_events SET event_json = ?, hash = ? WHERE id = 7').run(json, eventHash(json)));
    assertBad(report, 7, victim.trace_id, /not in canonical \(JCS\) form/);
  }
  assert.equal(verifyLedger(ctx.db, ctx.keys).intact, true);
});

test('editing an indexed column only (event_json untouched) is caught at that row', (t) => {
  const ctx = setup(t);
  for (const [col, value] of [['principal', 'mallory'], ['decision', 'allow_unverified'], ['action_id', 'other'], ['session_id', null], ['event_type', 'lease_issued'], ['timestamp', '2031-01-01T00:00:00.000Z'], ['trace_id', 'forged-trace']]) {
    const victim = rowById(ctx.db, 7);
    const report = attack(ctx, (db) => db.prepare(`UPDATE audit_events SET ${col} = ? WHERE id = 7`).run(value));
    assertBad(report, 7, col === 'trace_id' ? 'forged-trace' : victim.trace_id, new RegExp(`column ${col}`));
  }
});

test('deleting a middle, the first or the last event is caught, naming the missing id', (t) => {
  const ctx = setup(t);
  for (const k of [2, 13, ctx.total - 1]) {
    assertBad(attack(ctx, (db) => db.prepare('DELETE FROM audit_events WHERE id = ?').run(k)), k, null, /deleted/);
  }
  assertBad(attack(ctx, (db) => db.prepare('DELETE FROM audit_events WHERE id IN (5, 6, 7)').run()), 5, null, /events id=5\.\.7 were deleted/);
  assertBad(attack(ctx, (db) => db.prepare('DELETE FROM audit_events WHERE id = 1').run()), 1, null, /deleted/);
  assertBad(attack(ctx, (db) => db.prepare('DELETE FROM audit_events WHERE id = ?').run(ctx.total)), ctx.total, null, /last event .*deleted/);
  assertBad(attack(ctx, (db) => db.prepare('DELETE FROM audit_events WHERE id > ?').run(ctx.total - 3)), ctx.total - 2, null, /last events .*deleted/);
  // deleted and the ids renumbered to hide the gap: still caught, at the event next to the hole
  const report = attack(ctx, (db) => {
    db.prepare('DELETE FROM audit_events WHERE id = 10').run();
    for (let id = 11; id <= ctx.total; id++) db.prepare('UPDATE audit_events SET id = ? WHERE id = ?').run(id - 1, id);
    db.prepare(`UPDATE sqlite_sequence SET seq = ? WHERE name = 'audit_events'`).run(ctx.total - 1);
  });
  assert.equal(report.intact, false);
  assert.equal(report.first_bad.id, 9);
  assert.match(report.first_bad.reason, /deleted and the ids renumbered/);
});

test('deleting the last event and moving chain_head back: caught by sqlite_sequence, or by the evidence the event accounted for', (t) => {
  const ctx = setup(t);
  const cut = (db, seq) => {
    db.prepare('DELETE FROM audit_events WHERE id = ?').run(ctx.total);
    db.prepare(`UPDATE ledger_metadata SET value = ? WHERE key = 'chain_head'`).run(rowById(db, ctx.total - 1).hash);
    if (seq) db.prepare(`UPDATE sqlite_sequence SET seq = ? WHERE name = 'audit_events'`).run(ctx.total - 1);
  };
  assertBad(attack(ctx, (db) => cut(db, false)), ctx.total, null, /^missing: chain_head was moved back to the event before them; the last event \(id=27\) was deleted \(sqlite_sequence records id=27 as handed out\)$/);
  // With sqlite_sequence fixed too, the chain holds, but the execution_interrupted event was g3's account.
  const report = attack(ctx, (db) => cut(db, true));
  assert.equal(report.intact, false);
  assert.equal(report.first_bad, null);
  assert.equal(report.intents_without_receipts[0].status, 'unexplained');
});

test('the one rewrite a chain alone cannot see: the last event, tied to no evidence, deleted with chain_head and sqlite_sequence moved back', (t) => {
  // An attacker who rewrites the tail and chain_head consistently, and fixes
  // sqlite_sequence, leaves a valid shorter chain. Pinned here so the limit
  // stays visible: the stored Merkle tree still shows it, and once that is
  // trimmed too, only a checkpoint does (test/gate/checkpoint-tamper.test.mjs).
  const ctx = setup(t);
  ctx.ledger.append({ event_type: 'admin_drain', decision: 'allow', operator: { name: 'root' }, subject: { principal: 'root' }, details: {} });
  const last = ctx.total + 1;
  const report = attack(ctx, (db) => {
    db.prepare('DELETE FROM audit_events WHERE id = ?').run(last);
    db.prepare(`UPDATE ledger_metadata SET value = ? WHERE key = 'chain_head'`).run(rowById(db, last - 1).hash);
    db.prepare(`UPDATE sqlite_sequence SET seq = ? WHERE name = 'audit_events'`).run(last - 1);
  });
  assert.equal(report.first_bad, null, 'the chain alone holds');
  assert.equal(report.intact, false);
  assert.deepEqual(report.checkpoints.problems.map((p) => p.kind), ['tree_mismatch']);
  assert.match(report.checkpoints.problems[0].message, new RegExp(`the stored Merkle tree holds ${last} leaves, but the ledger only ${last - 1} events`));
});

test('ids renumbered with the links intact (an event moved to a higher id, or the first one): the gap is caught', (t) => {
  const ctx = setup(t);
  assertBad(attack(ctx, (db) => db.prepare('UPDATE audit_events SET id = ? WHERE id = ?').run(ctx.total + 1, ctx.total)), ctx.total, null, /^missing: event id=27 is not there, and event id=28 links to event id=26: events were deleted and the ids of others changed$/);
  assertBad(attack(ctx, (db) => db.prepare('UPDATE audit_events SET id = ? WHERE id = ?').run(ctx.total + 5, ctx.total)), ctx.total, null, /^missing: events id=27\.\.31 are not there, and event id=32 links to event id=26/);
  assertBad(attack(ctx, (db) => shiftUp(db, 0)), 1, null, /^missing: event id=1 is not there, and the first event has id=2/);
});

test('a forged event inserted in the middle, with a valid-looking hash and link, is caught at the forged row', (t) => {
  const ctx = setup(t);
  for (const k of [1, 8, ctx.total - 1]) {
    const before = rowById(ctx.db, k);
    const report = attack(ctx, (db) => {
      shiftUp(db, k);
      const forged = { event_type: 'action_call', decision: 'allow', subject: { principal: 'agent-0', session_id: 's-0' }, action: { action_id: 'act_0' }, details: { n: -1 }, trace_id: 'forged', timestamp: before.timestamp, prev_hash: before.hash };
      const json = canonicalize(forged);
      db.prepare(`INSERT INTO audit_events(id, trace_id, timestamp, event_type, principal, session_id, action_id, decision, event_json, hash) VALUES (?, 'forged', ?, 'action_call', 'agent-0', 's-0', 'act_0', 'allow', ?, ?)`).run(k + 1, before.timestamp, json, eventHash(json));
    });
    assertBad(report, k + 1, 'forged', /inserted/);
  }
  // appended after the last event without moving chain_head
  const last = rowById(ctx.db, ctx.total);
  const report = attack(ctx, (db) => {
    const forged = { event_type: 'x', trace_id: 'tail', timestamp: last.timestamp, prev_hash: last.hash };
    const json = canonicalize(forged);
    db.prepare(`INSERT INTO audit_events(trace_id, timestamp, event_type, event_json, hash) VALUES ('tail', ?, 'x', ?, ?)`).run(last.timestamp, json, eventHash(json));
  });
  assertBad(report, ctx.total + 1, 'tail', /not appended by the ledger/);
});

test('property: swapping the contents of two rows is caught at the earlier position', (t) => {
  const ctx = setup(t);
  const cols = ['trace_id', 'timestamp', 'event_type', 'principal', 'session_id', 'action_id', 'decision', 'event_json', 'hash'];
  const pairs = [[1, 2], [5, 6], [ctx.total - 1, ctx.total], [1, ctx.total]];
  for (let seed = 1; seed <= 12; seed++) {
    const rnd = prng(1000 + seed);
    const a = 1 + rnd.below(ctx.total);
    let b = 1 + rnd.below(ctx.total);
    if (a === b) b = a === ctx.total ? 1 : a + 1;
    pairs.push([Math.min(a, b), Math.max(a, b)]);
  }
  for (const [i, j] of pairs) {
    const ri = rowById(ctx.db, i);
    const rj = rowById(ctx.db, j);
    const report = attack(ctx, (db) => {
      const set = db.prepare(`UPDATE audit_events SET ${cols.map((c) => `${c} = @${c}`).join(', ')} WHERE id = @id`);
      set.run({ ...ri, trace_id: 'tmp', id: ri.id });
      set.run({ ...ri, id: rj.id });
      set.run({ ...rj, id: ri.id });
    });
    assertBad(report, i, rj.trace_id, /out of order/);
  }
});

test('a changed chain_head is caught at the last event', (t) => {
  const ctx = setup(t);
  const last = rowById(ctx.db, ctx.total);
  assertBad(attack(ctx, (db) => db.prepare(`UPDATE ledger_metadata SET value = ? WHERE key = 'chain_head'`).run(`sha256:${'ab'.repeat(32)}`)), ctx.total, last.trace_id, /chain_head/);
  assertBad(attack(ctx, (db) => db.prepare(`UPDATE ledger_metadata SET value = '' WHERE key = 'chain_head'`).run()), ctx.total, last.trace_id, /chain_head was reset/);
  // chain_head rolled back to an earlier event
  const r = attack(ctx, (db) => db.prepare(`UPDATE ledger_metadata SET value = ? WHERE key = 'chain_head'`).run(rowById(db, 10).hash));
  assertBad(r, 11, rowById(ctx.db, 11).trace_id, /chain_head ends at event id=10/);
  assert.match(formatVerifyReport(r), /^BROKEN at id=11 trace_id=/);
});

test('tampered receipts: a bad signature, an edited field, a wrong kid, a stripped signature; the chain itself stays fine', (t) => {
  const ctx = setup(t);
  const editReceipt = (fn) =>
    attack(ctx, (db) => {
      const r = JSON.parse(db.prepare(`SELECT receipt_json FROM receipts WHERE receipt_id = 'r-g1'`).pluck().get());
      fn(r);
      db.prepare(`UPDATE receipts SET receipt_json = ? WHERE receipt_id = 'r-g1'`).run(canonicalize(r));
    });
  const expectBad = (report, reason) => {
    assert.equal(report.intact, false);
    assert.equal(report.first_bad, null, 'the chain is not what was tampered with');
    assert.equal(report.receipts.total, 2);
    assert.deepEqual(report.receipts.bad.map((b) => b.receipt_id), ['r-g1']);
    assert.match(report.receipts.bad[0].reason, reason);
  };
  expectBad(editReceipt((r) => (r.receipt_signature = (r.receipt_signature[0] === 'a' ? 'b' : 'a') + r.receipt_signature.slice(1))), /signature does not verify/);
  expectBad(editReceipt((r) => (r.normalized_result.summary = 'failed')), /result_hash does not match/);
  expectBad(editReceipt((r) => (r.verification_outcome = { status: 'verified', evidence: { status: 500 } })), /result_hash does not match/);
  // an attacker who also recomputes result_hash cannot re-sign it
  expectBad(
    editReceipt((r) => {
      r.provider_receipt = { status: 200 };
      r.result_hash = computeResultHash(r);
    }),
    /signature does not verify/,
  );
  expectBad(editReceipt((r) => (r.signing_key_id = '0123456789abcdef')), /not in the receipt key history/);
  expectBad(editReceipt((r) => delete r.receipt_signature), /not signed/);
  expectBad(attack(ctx, (db) => db.prepare(`UPDATE receipts SET receipt_json = '{"receipt_id":' WHERE receipt_id = 'r-g1'`).run()), /not valid JSON/);
  expectBad(attack(ctx, (db) => db.prepare(`UPDATE receipts SET grant_id = 'g3' WHERE receipt_id = 'r-g1'`).run()), /column grant_id/);
  assert.equal(verifyLedger(ctx.db, ctx.keys).intact, true);
});

test('receipts against the chain: deleted (with or without its intent), replaced, or added without an event naming it', (t) => {
  const ctx = setup(t);
  const r2 = ctx.ledger.getReceipt('r-g2');
  const event2 = rows(ctx.db).find((r) => JSON.parse(r.event_json).execution?.receipt_id === 'r-g2');
  assert.equal(JSON.parse(event2.event_json).execution.receipt_hash, r2.result_hash, 'the event carries the receipt hash');
  const missing = `missing: event id=${event2.id} (trace_id t-g2) names this receipt, which is not in the receipts table: it was deleted`;
  for (const sql of [`DELETE FROM receipts WHERE receipt_id = 'r-g2'`, `DELETE FROM receipts WHERE receipt_id = 'r-g2'; DELETE FROM execution_intents WHERE grant_id = 'g2'`]) {
    const gone = attack(ctx, (db) => db.exec(sql));
    assert.equal(gone.intact, false, sql);
    assert.equal(gone.first_bad, null);
    assert.deepEqual(gone.receipts.bad, [{ receipt_id: 'r-g2', reason: missing }], sql);
  }
  // Replaced by another, validly signed receipt of the same id and trace: not the one the event recorded.
  const other = signReceipt(ctx.keys, { ...r2, normalized_result: { kind: 'failure', reason: 'swapped' } });
  const swapped = attack(ctx, (db) => db.prepare(`UPDATE receipts SET receipt_json = ? WHERE receipt_id = 'r-g2'`).run(canonicalize(other)));
  assert.equal(swapped.intact, false);
  assert.deepEqual(swapped.receipts.bad, [{ receipt_id: 'r-g2', reason: `its result_hash "${other.result_hash}" is not the receipt_hash "${r2.result_hash}" that event id=${event2.id} (trace_id t-g2) recorded: the receipt was replaced` }]);
  // A validly signed receipt no event names.
  const extra = signReceipt(ctx.keys, { ...r2, receipt_id: 'r-extra', grant_id: 'g3', trace_id: 't-g3' });
  const added = attack(ctx, (db) => db.prepare(`INSERT INTO receipts(receipt_id, grant_id, trace_id, receipt_json, created_at) VALUES ('r-extra', 'g3', 't-g3', ?, '2025-01-02T00:00:00.000Z')`).run(canonicalize(extra)));
  assert.equal(added.intact, false);
  assert.deepEqual(added.receipts.bad, [{ receipt_id: 'r-extra', reason: `no chained event names this receipt: the event of its trace (id=${ctx.total}) does not name it; it was added to the receipts table outside the gate` }]);
  assert.equal(verifyLedger(ctx.db, ctx.keys).intact, true);
});

test('receipts signed before a key rotation still verify after it', (t) => {
  const ctx = setup(t);
  const oldKid = ctx.ledger.getReceipt('r-g1').signing_key_id;
  const newKid = ctx.keys.rotate('receipt').kid;
  assert.notEqual(newKid, oldKid);
  const r = signReceipt(ctx.keys, { ...ctx.ledger.getReceipt('r-g1'), receipt_id: 'r-g4', grant_id: 'g4', trace_id: 't-g4' });
  assert.equal(r.signing_key_id, newKid);
  ctx.ledger.commitEvidence(r, { event_type: 'action_call', decision: 'allow', subject: { principal: 'agent-1' }, action: { action_id: 'act_1' } });
  // a fresh KeyStore over the same directory (a restarted gate)
  const report = verifyLedger(ctx.db, new KeyStore(ctx.keys.dir));
  assert.equal(report.intact, true, JSON.stringify(report.receipts.bad));
  assert.equal(report.receipts.total, 3);
  assert.deepEqual(report.intents_without_receipts.map((i) => [i.grant_id, i.status]), [['g3', 'interrupted']]);
});

test('a receipt signed with a copy of the retired receipt key and dated after its retirement is reported bad; the receipts it signed before verify', (t) => {
  const ctx = setup(t);
  const stolen = createPrivateKey(readFileSync(ctx.keys.keyPath('receipt'), 'utf8'));
  const oldKid = ctx.keys.current('receipt').kid;
  ctx.keys.rotate('receipt');
  const retiredAt = ctx.keys.jwks('receipt').keys.find((k) => k.kid === oldKid).retired_at;
  // Dated after the rotation, hashed and signed as the gate would, but with the old key.
  const later = new Date(Date.parse(retiredAt) + 1000).toISOString();
  const fields = { ...ctx.ledger.getReceipt('r-g1'), receipt_id: 'r-g4', grant_id: 'g4', trace_id: 't-g4', started_at: later, finished_at: later };
  const result_hash = computeResultHash(fields);
  const forged = { ...fields, result_hash, signing_key_id: oldKid, receipt_signature: cryptoSign(null, Buffer.from(result_hash, 'ascii'), stolen).toString('hex') };
  ctx.ledger.commitEvidence(forged, { event_type: 'action_call', decision: 'allow', subject: { principal: 'agent-1' }, action: { action_id: 'act_1' } });
  for (const keys of [ctx.keys, new KeyStore(ctx.keys.dir)]) {
    const report = verifyLedger(ctx.db, keys);
    assert.equal(report.intact, false);
    assert.equal(report.receipts.total, 3);
    assert.deepEqual(report.receipts.bad, [
      { receipt_id: 'r-g4', reason: `key ${oldKid} was retired at ${retiredAt}; the signed receipt is dated ${later}, after that: a retired key signs nothing after its retirement` },
    ]);
  }
  // Dating only finished_at back does not help: the latest time the receipt claims counts.
  const halfBackdated = { ...fields, finished_at: retiredAt };
  const hash2 = computeResultHash(halfBackdated);
  const sig2 = cryptoSign(null, Buffer.from(hash2, 'ascii'), stolen).toString('hex');
  assert.match(verifyReceipt(ctx.keys, { ...halfBackdated, result_hash: hash2, signing_key_id: oldKid, receipt_signature: sig2 }).reason, /was retired at/);
});
