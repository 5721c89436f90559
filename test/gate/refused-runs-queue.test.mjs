// A run the gate refuses after its provider was started (here: 409
// previous_outcome_unknown, refused where the intent would be written, which
// an agent can repeat at will once such an intent exists) never takes a
// worker, and takes no place in the provider queue either: with every worker
// busy, such runs used to wait in the queue until a worker came free, so a
// handful of cheap refused requests filled it and the calls that go on were
// answered 429 provider_busy. The legitimate call beside them waits for the
// busy worker and runs. Nor does such a run make the gate stop and spawn a
// worker (what an agent could otherwise repeat at will).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canonicalHash } from '../../dist/crypto/jcs.js';
import { Agent, grantAll, startGate } from '../helpers/gate.mjs';
import { waitFor } from '../helpers/gate-faults.mjs';
import { NO_OPENSSL, tlsUpstream } from '../helpers/tls-upstream.mjs';

/** A run of this exact request has no receipt: every new one is refused at commit (409 previous_outcome_unknown). */
const orphan = { url: 'https://api.github.com/orphan' };

/** A gate reaching `up` (closed after the test), every action granted, an agent with a lease, and the orphan's intent. */
async function gateOn(t, up, providers) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-queue-'));
  const g = await startGate({ stateDir: path.join(dir, 'state'), config: { resolve: up.pins(), extraCaCerts: [up.caFile], ...(providers ? { providers } : {}) } });
  t.after(async () => {
    await g.close();
    up.close();
    rmSync(dir, { recursive: true, force: true });
  });
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  g.ctx.ledger.consumeGrantAndWriteIntent({ grant_id: randomUUID(), trace_id: randomUUID(), action_id: 'http_fetch', principal: 'tester', provider_module_digest: 'builtin:http_api', request_hash: canonicalHash(orphan), started_at: new Date().toISOString() });
  return { g, a };
}

test('runs refused at commit take no place in the provider queue: a call made meanwhile waits for the busy worker and runs', { skip: NO_OPENSSL }, async (t) => {
  const stuck = [];
  const up = await tlsUpstream(['api.github.com'], (req, res) => {
    if (req.url !== '/busy') return false;
    stuck.push(res); // answered when the test says so
    return true;
  });
  t.after(() => stuck.forEach((s) => s.destroy()));
  const { g, a } = await gateOn(t, up, { poolSize: 1, queueLimit: 4 });

  // The one worker is busy with a call its upstream has not answered yet.
  const busy = a.execute('http_fetch', { url: 'https://api.github.com/busy' });
  await waitFor(() => stuck.length === 1, { timeoutMs: 60_000, what: 'the busy call to reach its upstream' });
  // More refused runs than the queue holds.
  for (let i = 0; i < 8; i++) {
    const r = await a.execute('http_fetch', orphan);
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.error, 'previous_outcome_unknown');
  }
  const pool = g.ctx.providers.get('builtin:http_api').runtime.pool;
  assert.equal(pool.queue.length, 0, 'refused runs wait in the provider queue');

  let answered;
  const legit = a.execute('http_fetch', { url: 'https://api.github.com/legit' }).then((r) => (answered = r));
  await waitFor(() => answered !== undefined || pool.queue.length === 1, { timeoutMs: 60_000, what: 'the call to queue for the worker' });
  assert.equal(answered, undefined, `the call was answered while it should wait for the worker: ${answered?.text}`);
  stuck[0].end('done');
  assert.equal((await busy).status, 200);
  const r = await legit;
  assert.equal(r.status, 200, r.text);
  assert.ok(up.seen.some((s) => s.url === '/legit'));
  assert.ok(!up.seen.some((s) => s.url === '/orphan'), 'a refused run reached the upstream');
});

test('runs of a request whose earlier run has no receipt never take a worker or open a connection: the idle workers are the same ones after 20 of them, and the next call runs on one', { skip: NO_OPENSSL }, async (t) => {
  const up = await tlsUpstream(['api.github.com'], () => false);
  const { g, a } = await gateOn(t, up);
  assert.equal((await a.execute('http_fetch', { url: 'https://api.github.com/warm' })).status, 200);
  const pool = g.ctx.providers.get('builtin:http_api').runtime.pool;
  const idle = () => pool.idle.map((w) => w.worker.threadId).sort();
  const before = idle();
  assert.ok(before.length >= 1);
  const conns = up.connections;
  for (let i = 0; i < 20; i++) assert.equal((await a.execute('http_fetch', orphan)).status, 409);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(up.connections, conns, 'refused runs opened connections to the upstream');
  // A refused run that took a worker would have had it stopped (aborted) and a new one spawned.
  assert.deepEqual(idle(), before, 'refused runs made the gate stop and spawn workers');
  assert.equal((await a.execute('http_fetch', { url: 'https://api.github.com/after' })).status, 200);
  assert.ok(!up.seen.some((s) => s.url === '/orphan'));
});
