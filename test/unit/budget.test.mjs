// Budget windows (src/gate/budget.ts) on a real SQLite ledger file:
// snapshots, the all-or-nothing debit of every window and its refusals
// (naming the window), refunds to every window, a debit joining the caller's
// transaction, connections that cannot overspend, the migration of the
// per-session table of earlier versions, and the sweep.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { openDb } from '../../dist/ledger/db.js';
import { Budgets } from '../../dist/gate/budget.js';
import { BudgetRules } from '../../dist/gate/budget-rules.js';
import { parseConfig } from '../../dist/config/latchgate-toml.js';

const UNLIMITED = Number.MAX_SAFE_INTEGER;
const LATER = new Date(Date.now() + 3600_000);
const rules = (toml) => new BudgetRules(parseConfig('budgets.toml', toml).gate.budgets);

function ledgerFile(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-budget-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'ledger.sqlite3');
}

function budgetsOn(t, { file = ledgerFile(t), toml } = {}) {
  const db = openDb(file);
  t.after(() => db.close());
  const b = new Budgets(db, toml === undefined ? undefined : rules(toml));
  b.migrate();
  return { db, b, file };
}

const lease = (session_id, principal = 'p') => ({ session_id, principal });
/** A debit's result without the rows it took (compared on their own). */
const result = ({ taken, exhausted, ...rest }) => rest;

test('a session without a row, or without limits, is unlimited in calls and has no cost budget', (t) => {
  const { b } = budgetsOn(t);
  assert.deepEqual(b.snapshot('nobody'), { calls_remaining: UNLIMITED });
  b.init(lease('free'), {}, LATER);
  assert.deepEqual(b.snapshot('free'), { calls_remaining: UNLIMITED });
  const d = b.debit('free', 7);
  assert.deepEqual(result(d), { ok: true, before: { calls_remaining: UNLIMITED }, after: { calls_remaining: UNLIMITED } });
  assert.deepEqual(result(b.debit('nobody', 7)), { ok: true, before: { calls_remaining: UNLIMITED }, after: { calls_remaining: UNLIMITED } });
});

test('each debit takes one call and its cost, and says what was left before and after', (t) => {
  const { b } = budgetsOn(t);
  b.init(lease('s'), { max_calls: 3, max_cost: 10 }, LATER);
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 3, cost_remaining: 10 });
  assert.deepEqual(result(b.debit('s', 4)), { ok: true, before: { calls_remaining: 3, cost_remaining: 10 }, after: { calls_remaining: 2, cost_remaining: 6 } });
  assert.deepEqual(result(b.debit('s')), { ok: true, before: { calls_remaining: 2, cost_remaining: 6 }, after: { calls_remaining: 1, cost_remaining: 6 } });
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 1, cost_remaining: 6 });
});

test('no calls left: refused (reason calls), naming the window, and nothing is taken', (t) => {
  const { b } = budgetsOn(t);
  b.init(lease('s'), { max_calls: 1, max_cost: 5 }, LATER);
  assert.equal(b.debit('s', 1).ok, true);
  const d = b.debit('s', 1);
  assert.deepEqual(result(d), { ok: false, before: { calls_remaining: 0, cost_remaining: 4 }, reason: 'calls' });
  assert.deepEqual(d.exhausted, { window: 'lease', level: 'principal', principal: 'p', limit: 'calls', max: 1, used: 1, set_by: 'the lease request (budgets.max_calls)' });
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 0, cost_remaining: 4 });
});

test('a cost the budget cannot cover: refused (reason cost), and the call is not taken either; the exact remainder can be spent', (t) => {
  const { b } = budgetsOn(t);
  b.init(lease('s'), { max_calls: 5, max_cost: 3 }, LATER);
  assert.deepEqual(result(b.debit('s', 3.5)), { ok: false, before: { calls_remaining: 5, cost_remaining: 3 }, reason: 'cost' });
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 5, cost_remaining: 3 });
  assert.deepEqual(b.debit('s', 3).after, { calls_remaining: 4, cost_remaining: 0 });
  assert.equal(b.debit('s', 1).reason, 'cost');
  assert.equal(b.debit('s', 0).ok, true, 'a call that costs nothing still fits');
});

test('a calls limit without a cost limit never refuses for cost', (t) => {
  const { b } = budgetsOn(t);
  b.init(lease('s'), { max_calls: 2 }, LATER);
  assert.deepEqual(result(b.debit('s', 1e9)), { ok: true, before: { calls_remaining: 2 }, after: { calls_remaining: 1 } });
});

test('a refund gives one call and its cost back to every window taken, never past what they started with', (t) => {
  const { b } = budgetsOn(t, { toml: '[budgets.p]\ncalls_per_day = 2\ncost_per_day = 10\n[budgets.p.actions.a]\ncalls_per_day = 1\n' });
  b.init(lease('s'), { max_calls: 2, max_cost: 10 }, LATER);
  const who = { principal: 'p', session_id: 's', action_id: 'a' };
  const d = b.debit(who, 4);
  assert.equal(d.ok, true);
  assert.deepEqual(d.taken.map((k) => `${k.window}/${k.action}`), ['lease/', 'day/', 'lease/a', 'day/a']);
  assert.equal(b.debit(who, 1).exhausted.level, 'action');
  b.refund(d.taken, 4);
  assert.deepEqual(b.snapshot(who), { calls_remaining: 1, cost_remaining: 10 }, 'the action day window has its call back');
  b.refund(d.taken, 4);
  assert.deepEqual(b.snapshot(who), { calls_remaining: 1, cost_remaining: 10 }, 'a refund without a debit gives nothing');
  b.refund([{ window: 'lease', owner: 'nobody', action: '', day: '' }], 1); // no row: nothing to give back, and no error
  assert.deepEqual(b.snapshot('nobody'), { calls_remaining: UNLIMITED });
});

test('a session is initialised once', (t) => {
  const { b } = budgetsOn(t);
  b.init(lease('s'), { max_calls: 1 }, LATER);
  assert.throws(() => b.init(lease('s'), { max_calls: 100 }, LATER), /UNIQUE|PRIMARY KEY/);
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 1 });
});

test('a debit inside the caller\'s transaction is part of it: a refusal later in that transaction gives the call back', (t) => {
  const { db, b } = budgetsOn(t, { toml: '[budgets.p]\ncalls_per_day = 5\n' });
  b.init(lease('s'), { max_calls: 2, max_cost: 10 }, LATER);
  assert.throws(() => db.transaction(() => {
    assert.equal(b.debit('s', 4).ok, true);
    assert.deepEqual(b.snapshot('s'), { calls_remaining: 1, cost_remaining: 6 });
    throw new Error('refused after the debit');
  }).immediate(), /refused after the debit/);
  assert.deepEqual(b.snapshot('s'), { calls_remaining: 2, cost_remaining: 10 });
  assert.equal(db.prepare("SELECT count(*) AS n FROM budget_windows WHERE window = 'day'").get().n, 0, 'the day row went with it');
});

test('the day window is the principal\'s: every lease counts against it, and it is keyed by the UTC day', (t) => {
  const { b } = budgetsOn(t, { toml: '[budgets.p]\ncalls_per_day = 2\n' });
  const day1 = new Date('2030-05-01T23:59:59Z');
  const day2 = new Date('2030-05-02T00:00:01Z');
  for (const s of ['s1', 's2', 's3']) b.init(lease(s), {}, LATER);
  assert.equal(b.debit('s1', 0, day1).ok, true);
  assert.equal(b.debit('s2', 0, day1).ok, true);
  const refused = b.debit('s3', 0, day1);
  assert.equal(refused.ok, false);
  assert.deepEqual(refused.exhausted, { window: 'day', level: 'principal', principal: 'p', limit: 'calls', max: 2, used: 2, set_by: '[budgets.p] calls_per_day', day: '2030-05-01' });
  assert.equal(b.debit('s3', 0, day2).ok, true, 'a new UTC day');
  // Another principal has its own day (and no entry: unlimited).
  b.init(lease('q1', 'q'), {}, LATER);
  for (let i = 0; i < 5; i++) assert.equal(b.debit('q1', 0, day1).ok, true);
});

test('what a debit says is left after it is what the windows hold once it committed, over every window and fractional costs', (t) => {
  const { b } = budgetsOn(t, { toml: '[budgets.p]\ncalls_per_day = 400\ncost_per_day = 90\ncost_per_lease = 70\n[budgets.p.actions.a]\ncalls_per_lease = 300\ncost_per_day = 60\n' });
  b.init(lease('s1'), { max_calls: 250, max_cost: 55 }, LATER);
  b.init(lease('s2'), {}, LATER);
  const costs = [0, 0.1, 0.2, 0.3, 1, 2.5, 0.7, 1e-9, 3.3];
  let granted = 0;
  for (let i = 0; i < 200; i++) {
    const session = i % 3 ? 's1' : 's2';
    const subject = { principal: 'p', session_id: session, action_id: i % 2 ? 'a' : 'b', lease_expires_at: Math.floor(LATER.getTime() / 1000) };
    const r = b.debit(subject, costs[i % costs.length]);
    if (!r.ok) continue;
    granted++;
    assert.deepEqual(r.after, b.snapshot(subject), `debit ${i}`);
  }
  assert.ok(granted > 50 && granted < 200, `both granted and refused debits were made (${granted} granted)`);
});

/** In a worker thread, on its own connection: one debit of `cost` from each session, in order; resolves how many were granted. */
function debitInWorker(file, sessions, cost, toml = '') {
  const worker = new Worker(
    `const { workerData: w, parentPort } = require('node:worker_threads');
     Promise.all([import(w.db), import(w.budget), import(w.rules), import(w.config)]).then(([{ openDb }, { Budgets }, { BudgetRules }, { parseConfig }]) => {
       const db = openDb(w.file);
       const b = new Budgets(db, new BudgetRules(parseConfig('budgets.toml', w.toml).gate.budgets));
       let ok = 0;
       for (const s of w.sessions) if (b.debit(s, w.cost).ok) ok++;
       db.close();
       parentPort.postMessage(ok);
     });`,
    {
      eval: true,
      workerData: {
        file,
        sessions,
        cost,
        toml,
        db: new URL('../../dist/ledger/db.js', import.meta.url).href,
        budget: new URL('../../dist/gate/budget.js', import.meta.url).href,
        rules: new URL('../../dist/gate/budget-rules.js', import.meta.url).href,
        config: new URL('../../dist/config/latchgate-toml.js', import.meta.url).href,
      },
    },
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
  for (const s of sessions) b.init(lease(s), { max_calls: 1, max_cost: 10 }, LATER);
  const granted = await Promise.all([1, 2, 3, 4].map(() => debitInWorker(file, sessions, 2)));
  assert.equal(granted.reduce((x, y) => x + y, 0), sessions.length);
  for (const s of sessions) assert.deepEqual(b.snapshot(s), { calls_remaining: 0, cost_remaining: 8 });
});

test('gates on their own connections, on many leases of one principal, never overspend its day', async (t) => {
  const toml = '[budgets.p]\ncalls_per_day = 50\n';
  const { b, file } = budgetsOn(t, { toml });
  const sessions = Array.from({ length: 100 }, (_, i) => `s${i}`);
  for (const s of sessions) b.init(lease(s), {}, LATER);
  const granted = await Promise.all([1, 2, 3, 4].map(() => debitInWorker(file, sessions, 0, toml)));
  assert.equal(granted.reduce((x, y) => x + y, 0), 50);
  assert.equal(b.snapshot('s0').calls_remaining, 0);
});

test('migrate is idempotent and keeps the budgets', (t) => {
  const { db, b } = budgetsOn(t);
  b.init(lease('s'), { max_calls: 4 }, LATER);
  b.debit('s');
  const again = new Budgets(db);
  again.migrate();
  assert.deepEqual(again.snapshot('s'), { calls_remaining: 3 });
});

test('the per-session table of earlier versions: its live leases carry on, its expired ones go, and the table goes', (t) => {
  const file = ledgerFile(t);
  const db = openDb(file);
  t.after(() => db.close());
  db.exec(`CREATE TABLE budgets (session_id TEXT PRIMARY KEY, calls_max INTEGER, calls_used INTEGER NOT NULL DEFAULT 0, cost_max REAL, cost_used REAL NOT NULL DEFAULT 0, expires_at TEXT NOT NULL)`);
  db.prepare('INSERT INTO budgets VALUES (?, ?, ?, ?, ?, ?)').run('live', 5, 2, null, 0, LATER.toISOString());
  db.prepare('INSERT INTO budgets VALUES (?, ?, ?, ?, ?, ?)').run('gone', 5, 1, null, 0, '2020-01-01T00:00:00.000Z');
  const b = new Budgets(db);
  b.migrate();
  assert.deepEqual(b.snapshot('live'), { calls_remaining: 3 });
  assert.equal(db.prepare("SELECT count(*) AS n FROM budget_windows WHERE owner = 'gone'").get().n, 0);
  assert.equal(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'budgets'").get().n, 0);
});

test('the sweep deletes the rows of expired leases and of days long past, and keeps the rest', (t) => {
  const { db, b } = budgetsOn(t, { toml: '[budgets.p]\ncalls_per_day = 9\n' });
  const now = new Date('2030-05-10T12:00:00Z');
  b.init(lease('old'), {}, new Date('2030-05-10T11:00:00Z'));
  b.init(lease('live'), {}, new Date('2030-05-10T13:00:00Z'));
  b.debit('old', 0, new Date('2030-05-07T10:00:00Z')); // a day row of 05-07, kept until 05-10T00:00
  b.debit('live', 0, new Date('2030-05-09T10:00:00Z'));
  assert.equal(b.sweep(now), 2);
  const rows = db.prepare('SELECT window, owner, day FROM budget_windows ORDER BY window, day').all().map((r) => `${r.window} ${r.owner} ${r.day}`);
  assert.deepEqual(rows, ['day p 2030-05-09', 'lease live ']);
});
