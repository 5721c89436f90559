// A provider written in TypeScript runs in the gate's own process and could
// act without HostIo (write a file, open a socket): unlike a WebAssembly
// component (Provider.confined), it is not started before the intent is
// durable. These tests give the gate such a provider that acts the moment
// it starts (it appends to a file itself) and watch that file: nothing while
// the intent's sync is held, nothing for a run refused at commit (409
// previous_outcome_unknown), and the effect once the intent has landed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { canonicalHash } from '../../dist/crypto/jcs.js';
import { Agent, grantAll } from '../helpers/gate.mjs';
import { gateFor, holdNextSync, markerCount, tempDir } from '../helpers/gate-faults.mjs';

async function gateWithActingProvider(t) {
  const marker = path.join(tempDir(t), 'effect.log');
  const provider = {
    async execute(task) {
      appendFileSync(marker, `${JSON.stringify(task.request)}\n`); // an effect of its own, not through HostIo
      return { ok: true, output: { done: true } };
    },
  };
  const g = await gateFor(t, { providers: { 'builtin:test_success': provider } });
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  const effects = () => markerCount(marker);
  return { g, a, effects };
}

test('a TypeScript provider starts only once the intent is durable: nothing while its sync is held, the effect once it lands', async (t) => {
  const { g, a, effects } = await gateWithActingProvider(t);
  const hold = holdNextSync(g);
  try {
    const pending = a.execute('t_ok', { n: 1 });
    await hold.reached;
    // The debit, grant and intent are committed; the intent is not yet on disk.
    assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 1);
    assert.equal(effects(), 0, 'the provider acted before its intent was durable');
    hold.release();
    const r = await pending;
    assert.equal(r.status, 200, r.text);
    assert.equal(effects(), 1);
  } finally {
    hold.restore();
  }
});

test('a TypeScript provider never starts for a run refused at commit; the same provider runs a call that commits', async (t) => {
  const { g, a, effects } = await gateWithActingProvider(t);
  g.ctx.ledger.consumeGrantAndWriteIntent({ grant_id: randomUUID(), trace_id: randomUUID(), action_id: 't_ok', principal: 'tester', provider_module_digest: 'builtin:test_success', request_hash: canonicalHash({ n: 2 }), started_at: new Date().toISOString() });
  const refused = await a.execute('t_ok', { n: 2 });
  assert.equal(refused.status, 409, refused.text);
  assert.equal(refused.body.error, 'previous_outcome_unknown');
  assert.equal(effects(), 0, 'the provider acted for a run that was refused');
  const ok = await a.execute('t_ok', { n: 3 });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(effects(), 1);
});
