// Concurrency: parallel executions against one session's budget
// never overspend, and every one of them leaves exactly one decision event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { verifyReceipt } from '../../dist/ledger/receipt.js';
import { Agent, grantAll } from '../helpers/gate.mjs';
import { burst, decisionEvents, gateFor } from '../helpers/gate-faults.mjs';

test('50 parallel t_ok against max_calls 10: exactly 10 succeed, 40 budget_exhausted, 50 decisions in the ledger', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease({ budgets: { max_calls: 10 } });
  const rs = await burst(a, 't_ok', 50);

  const byStatus = {};
  for (const r of rs) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  assert.deepEqual(byStatus, { 200: 10, 403: 40 }, JSON.stringify(rs.filter((r) => r.status !== 200 && r.status !== 403).map((r) => r.text)));
  for (const r of rs.filter((x) => x.status === 403)) assert.equal(r.body.error, 'budget_exhausted', r.text);
  const receipts = new Set(rs.filter((r) => r.status === 200).map((r) => r.body.receipt_id));
  assert.equal(receipts.size, 10, 'ten distinct receipts');

  const evs = decisionEvents(g, a.session_id);
  assert.equal(evs.length, 50, 'one decision event per request');
  const allow = evs.filter((e) => e.decision === 'allow');
  const deny = evs.filter((e) => e.decision === 'deny');
  assert.equal(allow.length, 10);
  assert.equal(deny.length, 40);
  for (const e of deny) assert.equal(e.error.code, 'budget_exhausted');
  assert.equal(new Set(evs.map((e) => e.trace_id)).size, 50);

  assert.deepEqual(g.ctx.budgets.snapshot(a.session_id), { calls_remaining: 0 });
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 10);
  const v = verifyLedger(g.db, g.ctx.keys);
  assert.equal(v.intact, true, JSON.stringify(v.first_bad));
  assert.equal(v.receipts.total, 10);
  assert.deepEqual(v.receipts.bad, []);
  for (const id of receipts) assert.deepEqual(verifyReceipt(g.ctx.keys, g.ctx.ledger.getReceipt(id)), { ok: true });
});

test('cost budget: t_costly (cost 3) against max_cost 10 in parallel: exactly 3 succeed', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease({ budgets: { max_cost: 10 } });
  const rs = await burst(a, 't_costly', 12);
  const ok = rs.filter((r) => r.status === 200);
  assert.equal(ok.length, 3, rs.map((r) => `${r.status} ${r.body?.error ?? ''}`).join(', '));
  for (const r of rs.filter((x) => x.status !== 200)) {
    assert.equal(r.status, 403, r.text);
    assert.equal(r.body.error, 'budget_exhausted', r.text);
  }
  const snap = g.ctx.budgets.snapshot(a.session_id);
  assert.equal(snap.cost_remaining, 1);
  const evs = decisionEvents(g, a.session_id);
  assert.equal(evs.length, 12);
  assert.equal(evs.filter((e) => e.decision === 'allow').length, 3);
  assert.equal(evs.filter((e) => e.error?.code === 'budget_exhausted').length, 9);
});

test('cost budget, sequential: the 4th t_costly is refused before anything runs', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease({ budgets: { max_cost: 10 } });
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push((await a.execute('t_costly', { n: i })).status);
  assert.deepEqual(statuses, [200, 200, 200, 403]);
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 3);
});

test('two sessions do not share a budget', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.socket);
  const b = new Agent(g.socket);
  await a.lease({ budgets: { max_calls: 2 } });
  await b.lease({ budgets: { max_calls: 2 } });
  const [ra, rb] = await Promise.all([burst(a, 't_ok', 5), burst(b, 't_ok', 5)]);
  assert.equal(ra.filter((r) => r.status === 200).length, 2);
  assert.equal(rb.filter((r) => r.status === 200).length, 2);
});

test('50 parallel executions of the same request with a provider that takes time: exactly 10 succeed, 40 budget_exhausted', async (t) => {
  // A provider doing real I/O is still running when the next identical
  // request arrives: its intent has no receipt yet, but its outcome is not
  // "unknown" (the gate is alive and waiting for it). Only a crash makes it so.
  const slow = async (call) => {
    slow.calls.push(call);
    await new Promise((r) => setTimeout(r, 20));
    return { status: 200, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' };
  };
  slow.calls = [];
  const g = await gateFor(t, { transport: slow });
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease({ budgets: { max_calls: 10 } });
  const rs = await burst(a, 't_http_honest', 50, () => ({ id: 'same-item', note: 'same' }));
  const tally = {};
  for (const r of rs) tally[`${r.status} ${r.body?.error ?? 'ok'}`] = (tally[`${r.status} ${r.body?.error ?? 'ok'}`] ?? 0) + 1;
  assert.deepEqual(tally, { '200 ok': 10, '403 budget_exhausted': 40 });
  assert.equal(slow.calls.length, 10);
  assert.equal(decisionEvents(g, a.session_id).length, 50);
});
