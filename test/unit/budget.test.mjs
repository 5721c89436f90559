// Per-session budgets (src/gate/budget.ts) on a real SQLite ledger file:
// snapshots, the all-or-nothing debit and its refusals, refunds, a debit
// joining the caller's transaction, and connections that cannot overspend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { openDb } from '../../dist/ledger/db.js';
import { Budgets } from '../../dist/gate/budget.js';

const UNLIMITED = Number.MAX_SAFE_INTEGER;
const LATER = new Date(Date.now() + 3600_000);

function ledgerFile(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-budget-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'ledger.sqlite3');
}

function budgetsOn(t, file = ledgerFile(t)) {
  const db = openDb(file);
  t.after(() => db.close());
  const b = new Budgets(db);
  b.migrate();
  return { db, b, file };
}

test('a session without a row, or without limits, is unlimited in calls and has no cost budget', (t) => {
  const { b } = budgetsOn(t);
  assert.deepEqual(b.snapshot('nobody'), { calls_remaining: UNLIMITED });
  b.init('free', {}, LATER);
  assert.deepEqual(b.snapshot('free'), { calls_remaining: UNLIMITED });
  const d = b.debit('free', 7);
  assert.equal(d.ok, true);
  assert.deepEqual(d.before, { calls_remaining: UNLIMITED });
  assert.deepEqual(d.after, { calls_remaining: UNLIMITED });
  assert.deepEqual(b.debit('nobody', 7), { ok: true, before: { calls_remaining: UNLIMITED }, after: { calls_remaining: UNLIMITED } });
});

test('each debit takes one call and its cost, and says what was left before and after', (t) => {
  const { b } = budgetsOn(t);
  b.init('s', { max_calls: 3, max_cost: 10 }, LATER);
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 3, cost_remaining: 10 });
  assert.deepEqual(b.debit('s', 4), { ok: true, before: { calls_remaining: 3, cost_remaining: 10 }, after: { calls_remaining: 2, cost_remaining: 6 } });
  assert.deepEqual(b.debit('s'), { ok: true, before: { calls_remaining: 2, cost_remaining: 6 }, after: { calls_remaining: 1, cost_remaining: 6 } });
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 1, cost_remaining: 6 });
});

test('no calls left: refused (reason calls), and nothing is taken', (t) => {
  const { b } = budgetsOn(t);
  b.init('s', { max_calls: 1, max_cost: 5 }, LATER);
  assert.equal(b.debit('s', 1).ok, true);
  assert.deepEqual(b.debit('s', 1), { ok: false, before: { calls_remaining: 0, cost_remaining: 4 }, reason: 'calls' });
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 0, cost_remaining: 4 });
});

test('a cost the budget cannot cover: refused (reason cost), and the call is not taken either; the exact remainder can be spent', (t) => {
  const { b } = budgetsOn(t);
  b.init('s', { max_calls: 5, max_cost: 3 }, LATER);
  assert.deepEqual(b.debit('s', 3.5), { ok: false, before: { calls_remaining: 5, cost_remaining: 3 }, reason: 'cost' });
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 5, cost_remaining: 3 });
  assert.deepEqual(b.debit('s', 3).after, { calls_remaining: 4, cost_remaining: 0 });
  assert.equal(b.debit('s', 1).reason, 'cost');
  assert.equal(b.debit('s', 0).ok, true, 'a call that costs nothing still fits');
});

test('a calls limit without a cost limit never refuses for cost', (t) => {
  const { b } = budgetsOn(t);
  b.init('s', { max_calls: 2 }, LATER);
  const d = b.debit('s', 1e9);
  assert.deepEqual(d, { ok: true, before: { calls_remaining: 2 }, after: { calls_remaining: 1 } });
});

test('a refund gives one call and its cost back, never past what the session started with', (t) => {
  const { b } = budgetsOn(t);
  b.init('s', { max_calls: 2, max_cost: 10 }, LATER);
  b.debit('s', 4);
  b.refund('s', 4);
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 2, cost_remaining: 10 });
  b.refund('s', 4);
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 2, cost_remaining: 10 }, 'a refund without a debit gives nothing');
  b.refund('nobody', 1); // no row: nothing to give back, and no error
  assert.deepEqual(b.snapshot('nobody'), { calls_remaining: UNLIMITED });
});

test('a session is initialised once', (t) => {
  const { b } = budgetsOn(t);
  b.init('s', { max_calls: 1 }, LATER);
  assert.throws(() => b.init('s', { max_calls: 100 }, LATER), /UNIQUE|PRIMARY KEY/);
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 1 });
});

test('a debit inside the caller\'s transaction is part of it: a refusal later in that transaction gives the call back', (t) => {
  const { db, b } = budgetsOn(t);
  b.init('s', { max_calls: 2, max_cost: 10 }, LATER);
  assert.throws(() => db.transaction(() => {
    assert.equal(b.debit('s', 4).ok, true);
    assert.deepEqual(b.snapshot('s'), { calls_remaining: 1, cost_remaining: 6 });
    throw new Error('refused after the debit');
  }).immediate(), /refused after the debit/);
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 2, cost_remaining: 10 });
});

/** In a worker thread, on its own connection: one debit of `cost` from each session, in order; resolves how many were granted. */
function debitInWorker(file, sessions, cost) {
  const worker = new Worker(
    `const { workerData: w, parentPort } = require('node:worker_threads');
     Promise.all([import(w.db), import(w.budget)]).then(([{ openDb }, { Budgets }]) => {
       const db = openDb(w.file);
       const b = new Budgets(db);
       let ok = 0;
       for (const s of w.sessions) if (b.debit(s, w.cost).ok) ok++;
       db.close();
       parentPort.postMessage(ok);
     });`,
    { eval: true, workerData: { file, sessions, cost, db: new URL('../../dist/ledger/db.js', import.meta.url).href, budget: new URL('../../dist/gate/budget.js', import.meta.url).href } },
  );
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

test('gates on their own connections to one ledger, debiting the same sessions at the same time, never overspend', async (t) => {
  const { b, file } = budgetsOn(t);
  // Many sessions with one call each: every one is a last call the gates race for.
  const sessions = Array.from({ length: 300 }, (_, i) => `s${i}`);
  for (const s of sessions) b.init(s, { max_calls: 1, max_cost: 10 }, LATER);
  const granted = await Promise.all([1, 2, 3, 4].map(() => debitInWorker(file, sessions, 2)));
  assert.equal(granted.reduce((x, y) => x + y, 0), sessions.length);
  for (const s of sessions) assert.deepEqual(b.snapshot(s), { calls_remaining: 0, cost_remaining: 8 });
});

test('migrate is idempotent and keeps the budgets', (t) => {
  const { db, b } = budgetsOn(t);
  b.init('s', { max_calls: 4 }, LATER);
  b.debit('s');
  const again = new Budgets(db);
  again.migrate();
  assert.deepEqual(again.snapshot('s'), { calls_remaining: 3 });
});
