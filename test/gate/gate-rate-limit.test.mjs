// The request rate per peer: one uid (a system user made for the test)
// sends 600 requests as fast as it can; past its burst it is answered 429
// rate_limited with Retry-After, each refusal counted in the ledger against
// its peer uid; another uid (the test's own) takes a lease and executes
// meanwhile, untouched; the flooding uid is served again once it waits as
// told. The box's socket (one principal) is limited the same way, per box.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { KeyStore } from '../../dist/keys/store.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { Agent, grantAll, request, startGate } from '../helpers/gate.mjs';
import { boxSocket, lastEventId, sleep } from '../helpers/gate-faults.mjs';
import { NEEDS_ROOT, openSocketDir, runAs, systemUser } from '../helpers/other-uid.mjs';

const FLOOD = 600;
const LIMITS = { requestsPerSecond: 20, requestBurst: 40 };
const counted = (events) => events.reduce((n, e) => n + (e.details?.coalesced?.count ?? 1), 0);

test("one uid's request flood is answered 429 rate_limited with Retry-After; another uid is served meanwhile; the ledger counts every refusal", { skip: NEEDS_ROOT }, async (t) => {
  const bob = systemUser('lgbob');
  const principals = new Map([[0, { name: 'tester', scopes: ['tools:call'] }], [bob.uid, { name: 'bob', scopes: ['tools:call'] }]]);
  const g = await startGate({ config: { ...LIMITS, principals } });
  let closed = false;
  t.after(() => (closed ? rmSync(g.stateDir, { recursive: true, force: true }) : g.close()));
  grantAll(g);
  openSocketDir(g.socket);
  const start = lastEventId(g);

  const flooding = runAs(bob, 'request-flood.mjs', [g.socket, FLOOD, 'GET', '/v1/actions', 20]);
  // Meanwhile the test's own uid: a lease and a few executions, none refused for bob's rate.
  const agent = new Agent(g.socket);
  await agent.lease();
  const mine = [];
  for (let i = 0; i < 5; i++) mine.push(await agent.execute('t_ok', { n: i }));
  const { seen, retry_after: retryAfter } = await flooding;

  assert.deepEqual(mine.map((r) => r.status), [200, 200, 200, 200, 200], mine.map((r) => r.text).join('\n'));
  assert.equal(Object.values(seen).reduce((a, b) => a + b, 0), FLOOD, JSON.stringify(seen));
  const limited = seen['429 rate_limited'] ?? 0;
  assert.ok(limited >= FLOOD / 2, `most of the flood is refused for its rate: ${JSON.stringify(seen)}`);
  assert.ok((seen['200 undefined'] ?? 0) >= LIMITS.requestBurst, `the burst is served: ${JSON.stringify(seen)}`);
  assert.deepEqual(Object.keys(seen).sort(), ['200 undefined', '429 rate_limited'], JSON.stringify(seen));
  assert.ok(retryAfter.length >= 1 && retryAfter.every((s) => /^[1-9]\d*$/.test(s)), `Retry-After in whole seconds: ${retryAfter}`);

  // Waiting as told, bob is served again.
  await sleep(Number(retryAfter[0]) * 1000 + 200);
  const again = await runAs(bob, 'request-flood.mjs', [g.socket, 1, 'GET', '/v1/actions', 1]);
  assert.deepEqual(again.seen, { '200 undefined': 1 });

  await g.close({ keepState: true }); // writes what is still counted
  closed = true;
  const ledger = Ledger.open(path.join(g.stateDir, 'ledger.sqlite3'));
  t.after(() => ledger.db.close());
  const events = ledger.db.prepare('SELECT event_json FROM audit_events WHERE id > ? ORDER BY id').all(start).map((r) => JSON.parse(r.event_json));
  const refusals = events.filter((e) => e.error?.code === 'rate_limited');
  t.diagnostic(`${events.length} events for ${limited} rate_limited refusals`);
  assert.equal(counted(refusals), limited, 'full events plus counts = the refusals made');
  assert.ok(refusals.every((e) => e.details.peer === `uid:${bob.uid}` && e.subject.principal === 'bob' && e.event_type === 'request_refused'));
  assert.equal(refusals.filter((e) => !e.details.coalesced).length, 1, 'the first in full, the rest counted');
  assert.ok(events.length < 30, `${events.length} events`);
  assert.equal(events.filter((e) => e.event_type === 'action_call' && e.decision === 'allow').length, 5, "the other uid's executions in full");
  const r = verifyLedger(ledger.db, new KeyStore(path.join(g.stateDir, 'keys')));
  assert.equal(r.first_bad, null, JSON.stringify(r.first_bad));
});

test("the box's socket is limited per box: its flood is refused, a uid's calls on the client socket are not", async (t) => {
  const g = await startGate({ config: LIMITS });
  t.after(() => g.close());
  grantAll(g);
  const box = await boxSocket(t, g, 'box-agent');
  const agent = new Agent(g.socket);
  await agent.lease();
  const start = lastEventId(g);

  const seen = {};
  await Promise.all(Array.from({ length: 10 }, async () => {
    for (let i = 0; i < 30; i++) {
      const r = await request(box, 'GET', '/v1/actions');
      const k = `${r.status} ${r.body?.error}`;
      seen[k] = (seen[k] ?? 0) + 1;
      if (r.status === 429) assert.match(r.headers['retry-after'] ?? '', /^[1-9]\d*$/);
    }
  }));
  const ok = await agent.execute('t_ok', { n: 1 });
  assert.equal(ok.status, 200, ok.text);
  assert.ok((seen['429 rate_limited'] ?? 0) >= 150, JSON.stringify(seen));
  const refusal = g.db.prepare('SELECT event_json FROM audit_events WHERE id > ? ORDER BY id').all(start).map((r) => JSON.parse(r.event_json)).find((e) => e.error?.code === 'rate_limited');
  assert.equal(refusal.details.peer, 'box:box-agent');
  assert.equal(refusal.subject.principal, 'box-agent');
});

test('under the rate nothing is refused: a steady caller within its burst is always served', async (t) => {
  const g = await startGate({ config: LIMITS });
  t.after(() => g.close());
  grantAll(g);
  const agent = new Agent(g.socket);
  await agent.lease();
  const statuses = [];
  for (let i = 0; i < LIMITS.requestBurst - 2; i++) statuses.push((await agent.execute('t_ok', { n: i })).status);
  assert.ok(statuses.every((s) => s === 200), JSON.stringify(statuses));
});
