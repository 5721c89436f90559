// The operator's budgets ([budgets] in latchgate.toml): day windows keyed by
// principal (+action) and UTC day survive new leases and gate restarts, a
// lease request can only narrow its lease, a per-action limit bites only its
// action, parallel calls never overspend a day, a refusal names its window,
// and the rows of expired leases and past days are swept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseConfig } from '../../dist/config/latchgate-toml.js';
import { Agent, grantAll, request, startGate } from '../helpers/gate.mjs';
import { burst, decisionEvents, gateFor, tempDir } from '../helpers/gate-faults.mjs';

/** [budgets] as the gate reads it from latchgate.toml. */
const budgets = (toml) => parseConfig('budgets-test.toml', toml).gate.budgets;

async function agent(g, leaseOpts) {
  const a = new Agent(g.socket);
  await a.lease(leaseOpts);
  return a;
}

test('within the day budget every call runs, and the events show what is left', async (t) => {
  const g = await gateFor(t, { config: { budgets: budgets('[budgets.tester]\ncalls_per_day = 3\n') } });
  grantAll(g);
  const a = await agent(g);
  for (let i = 0; i < 3; i++) {
    const r = await a.execute('t_ok', { n: i });
    assert.equal(r.status, 200, r.text);
  }
  const evs = decisionEvents(g, a.session_id);
  assert.deepEqual(evs.map((e) => e.budgets_after), [{ calls_remaining: 2 }, { calls_remaining: 1 }, { calls_remaining: 0 }]);
});

test('an agent that takes a new lease after using up its day budget is still refused, and the refusal names the day window', async (t) => {
  const g = await gateFor(t, { config: { budgets: budgets('[budgets.tester]\ncalls_per_day = 2\ncalls_per_lease = 10\n') } });
  grantAll(g);
  const a = await agent(g);
  assert.equal((await a.execute('t_ok', { n: 1 })).status, 200);
  assert.equal((await a.execute('t_ok', { n: 2 })).status, 200);
  const third = await a.execute('t_ok', { n: 3 });
  assert.equal(third.status, 403, third.text);
  assert.equal(third.body.error, 'budget_exhausted');

  // The attack: a fresh lease (a fresh session) to get a fresh budget.
  const b = await agent(g);
  assert.notEqual(b.session_id, a.session_id);
  const r = await b.execute('t_ok', { n: 4 });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.body.error, 'budget_exhausted');
  assert.match(r.body.message, /day budget/);
  assert.match(r.body.message, /\[budgets\.tester\] calls_per_day/);
  assert.equal(r.body.budget_window.window, 'day');
  assert.equal(r.body.budget_window.level, 'principal');
  assert.equal(r.body.budget_window.principal, 'tester');
  assert.equal(r.body.budget_window.max, 2);
  // The audit event says the same.
  const ev = decisionEvents(g, b.session_id).at(-1);
  assert.equal(ev.error.code, 'budget_exhausted');
  assert.match(ev.error.message, /day budget/);
  assert.equal(ev.details.budget_window.window, 'day');
  assert.equal(ev.details.budget_window.set_by, '[budgets.tester] calls_per_day');
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 2, 'only the two calls within the budget ran');
});

test('a restart of the gate keeps the day usage', async (t) => {
  const stateDir = tempDir(t);
  const config = { budgets: budgets('[budgets.default]\ncalls_per_day = 2\n') };
  const g1 = await startGate({ stateDir, config });
  grantAll(g1);
  const a = await agent(g1);
  assert.equal((await a.execute('t_ok', { n: 1 })).status, 200);
  assert.equal((await a.execute('t_ok', { n: 2 })).status, 200);
  await g1.close({ keepState: true });

  const g2 = await gateFor(t, { stateDir, config });
  const b = await agent(g2);
  const r = await b.execute('t_ok', { n: 3 });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.body.budget_window.window, 'day');
  assert.match(r.body.message, /\[budgets\.default\] calls_per_day/);
});

test('a lease request asking for more than the operator allows is refused (400 budget_exceeds_limit), naming the field and the limit', async (t) => {
  const g = await gateFor(t, { config: { budgets: budgets('[budgets.tester]\ncalls_per_lease = 5\ncost_per_day = 9\n') } });
  const a = new Agent(g.socket);
  await assert.rejects(a.lease({ budgets: { max_calls: 6 } }), /400 .*budget_exceeds_limit.*budgets\.max_calls 6 exceeds the operator's limit of 5.*calls_per_lease/);
  // Against the day's limit too, when the lease has none of its own.
  await assert.rejects(a.lease({ budgets: { max_cost: 10 } }), /400 .*budget_exceeds_limit.*budgets\.max_cost 10 exceeds the operator's limit of 9.*cost_per_day/);
  const denied = g.db.prepare("SELECT event_json FROM audit_events WHERE event_type = 'lease_denied'").all().map((r) => JSON.parse(r.event_json));
  assert.ok(denied.some((e) => e.error.code === 'budget_exceeds_limit'), JSON.stringify(denied));
  // The body, field by field.
  const key = (await import('../../dist/gate/auth/client.js')).createDpopKey;
  const r = await request(g.socket, 'POST', '/v1/leases', { body: { scopes: ['tools:call'], dpop_jwk: (await key()).jwk, budgets: { max_calls: 50 } } });
  assert.equal(r.status, 400);
  assert.deepEqual({ error: r.body.error, field: r.body.field, requested: r.body.requested, limit: r.body.limit, limit_key: r.body.limit_key }, { error: 'budget_exceeds_limit', field: 'budgets.max_calls', requested: 50, limit: 5, limit_key: '[budgets.tester] calls_per_lease' });
  // At the limit is fine.
  await a.lease({ budgets: { max_calls: 5, max_cost: 9 } });
});

test('a lease request asking for less narrows its lease; another lease has the operator\'s limit', async (t) => {
  const g = await gateFor(t, { config: { budgets: budgets('[budgets.tester]\ncalls_per_lease = 5\n') } });
  grantAll(g);
  const a = await agent(g, { budgets: { max_calls: 2 } });
  assert.equal((await a.execute('t_ok', { n: 1 })).status, 200);
  assert.equal((await a.execute('t_ok', { n: 2 })).status, 200);
  const r = await a.execute('t_ok', { n: 3 });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.body.budget_window.window, 'lease');
  assert.equal(r.body.budget_window.set_by, 'the lease request (budgets.max_calls)');

  const b = await agent(g);
  const rs = await burst(b, 't_ok', 7);
  assert.equal(rs.filter((x) => x.status === 200).length, 5, 'the operator\'s calls_per_lease');
  const refused = rs.find((x) => x.status === 403);
  assert.equal(refused.body.budget_window.set_by, '[budgets.tester] calls_per_lease');
});

test('a per-action limit bites only that action', async (t) => {
  const g = await gateFor(t, { config: { budgets: budgets('[budgets.tester]\ncalls_per_day = 100\n[budgets.tester.actions.t_costly]\ncalls_per_day = 1\n') } });
  grantAll(g);
  const a = await agent(g);
  assert.equal((await a.execute('t_costly', { n: 1 })).status, 200);
  const r = await a.execute('t_costly', { n: 2 });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.body.budget_window.level, 'action');
  assert.equal(r.body.budget_window.action_id, 't_costly');
  assert.match(r.body.message, /for action "t_costly"/);
  assert.match(r.body.message, /\[budgets\.tester\.actions\."t_costly"\] calls_per_day/);
  // A new lease does not reset the action's day either.
  const b = await agent(g);
  assert.equal((await b.execute('t_costly', { n: 3 })).status, 403);
  // Other actions go on.
  for (let i = 0; i < 5; i++) assert.equal((await b.execute('t_ok', { n: i })).status, 200);
});

test('parallel calls from several leases never overspend the day budget', async (t) => {
  const g = await gateFor(t, { config: { budgets: budgets('[budgets.tester]\ncalls_per_day = 10\n') } });
  grantAll(g);
  const agents = await Promise.all([agent(g), agent(g), agent(g)]);
  const rs = (await Promise.all(agents.map((a) => burst(a, 't_ok', 10)))).flat();
  const ok = rs.filter((r) => r.status === 200);
  assert.equal(ok.length, 10, rs.map((r) => `${r.status} ${r.body?.error ?? ''}`).join(', '));
  for (const r of rs.filter((x) => x.status !== 200)) assert.equal(r.body.error, 'budget_exhausted', r.text);
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 10);
  const day = g.db.prepare("SELECT calls_used FROM budget_windows WHERE window = 'day' AND owner = 'tester' AND action = ''").get();
  assert.equal(day.calls_used, 10);
});

test('a call whose provider never ran is given back to every window it took from', async (t) => {
  const g = await gateFor(t, { config: { budgets: budgets('[budgets.tester]\ncalls_per_day = 1\ncalls_per_lease = 1\n[budgets.tester.actions.t_fail]\ncalls_per_day = 1\n') } });
  grantAll(g);
  const a = await agent(g);
  const f = await a.execute('t_fail', { n: 1 });
  assert.equal(f.status, 502, f.text);
  const used = g.db.prepare('SELECT window, action, calls_used FROM budget_windows WHERE calls_used > 0').all();
  assert.deepEqual(used, [], 'every window refunded');
  // The refunded call is there to use.
  assert.equal((await a.execute('t_ok', { n: 2 })).status, 200);
});

test('expired leases leave no budget rows; day rows of past days are swept', async (t) => {
  // Short leases, yet long enough that the fresh one below outlives its call on a loaded machine.
  const g = await gateFor(t, { config: { leaseTtlSeconds: 4, budgets: budgets('[budgets.tester]\ncalls_per_day = 1000\n') } });
  grantAll(g);
  const leaseRow = g.db.prepare("SELECT count(*) AS n FROM budget_windows WHERE window = 'lease' AND owner = ?");
  const old = [];
  for (let i = 0; i < 20; i++) {
    const a = await agent(g);
    assert.equal(leaseRow.get(a.session_id).n, 1, 'each lease has its row while it lives');
    old.push(a);
  }
  // A day long past (as a gate left it then).
  g.db.prepare("INSERT INTO budget_windows (window, owner, action, day, principal, calls_used, expires_at) VALUES ('day', 'tester', '', '2020-01-01', 'tester', 7, '2020-01-04T00:00:00.000Z')").run();
  // Wait until every one of those leases has expired (generous; by the clock, not a timed assertion).
  const lastExpiry = Math.max(...old.map((a) => JSON.parse(Buffer.from(a.lease_jwt.split('.')[1], 'base64url')).exp));
  while (Date.now() / 1000 <= lastExpiry + 1) await sleep(200);
  const fresh = await agent(g); // issuing sweeps
  assert.equal((await fresh.execute('t_ok', { n: 1 })).status, 200);
  const rows = g.db.prepare('SELECT window, owner, day FROM budget_windows ORDER BY window').all();
  assert.deepEqual(rows.map((r) => r.window), ['day', 'lease'], JSON.stringify(rows));
  assert.equal(rows.find((r) => r.window === 'lease').owner, fresh.session_id);
  assert.notEqual(rows.find((r) => r.window === 'day').day, '2020-01-01');
  // Today's day usage stays.
  assert.equal(g.db.prepare("SELECT calls_used FROM budget_windows WHERE window = 'day'").get().calls_used, 1);
});

test('GET /v1/admin/policy shows what is left per principal and per configured action', async (t) => {
  const g = await gateFor(t, { config: { budgets: budgets('[budgets.tester]\ncalls_per_day = 5\ncalls_per_lease = 4\n[budgets.tester.actions.t_costly]\ncalls_per_day = 2\n') } });
  grantAll(g);
  const a = await agent(g);
  await a.execute('t_ok', { n: 1 });
  await a.execute('t_costly', { n: 1 });
  const r = await request(g.adminSocket, 'GET', '/v1/admin/policy?principal=tester');
  assert.equal(r.status, 200, r.text);
  const p = r.body.budgets.principals[0];
  assert.equal(r.body.budgets.configured, true);
  assert.equal(p.principal, 'tester');
  assert.deepEqual(p.day.calls, { limit: 5, used: 2, left: 3 });
  assert.deepEqual(p.per_lease, { calls: 4, cost: null });
  assert.deepEqual(p.leases.map((l) => [l.session_id, l.calls.left]), [[a.session_id, 2]]);
  assert.deepEqual(p.actions.map((x) => [x.action_id, x.day.calls]), [['t_costly', { limit: 2, used: 1, left: 1 }]]);
  // Every principal: the configured ones and those seen today.
  const all = await request(g.adminSocket, 'GET', '/v1/admin/policy');
  assert.deepEqual(all.body.budgets.principals.map((x) => x.principal), ['tester']);
});

test('no [budgets] configured: unlimited, and the report says so', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = await agent(g);
  const rs = await burst(a, 't_ok', 20);
  assert.equal(rs.filter((r) => r.status === 200).length, 20);
  const r = await request(g.adminSocket, 'GET', '/v1/admin/policy');
  assert.equal(r.body.budgets.configured, false);
  assert.deepEqual(r.body.budgets.principals[0].day.calls, { limit: null, used: 20, left: null });
});

test('a budget naming an action no manifest defines is refused when the gate opens', async (t) => {
  await assert.rejects(startGate({ stateDir: tempDir(t), config: { budgets: budgets('[budgets.tester.actions.t_okk]\ncalls_per_day = 1\n') } }), /\[budgets\.tester\.actions\."t_okk"\]: no action "t_okk" is registered/);
});
