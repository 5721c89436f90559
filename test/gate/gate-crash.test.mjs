// Crash: the gate is killed with SIGKILL after a provider's side
// effect and before its receipt. Until a gate starts again, verify fails,
// naming the interrupted intent; the restarted gate records it
// (execution_interrupted), verify then reports exactly that intent and is
// intact, and retrying the request never executes twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { canonicalHash } from '../../dist/crypto/jcs.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { Agent } from '../helpers/gate.mjs';
import {
  admin,
  cliVerify,
  crashGateOptions,
  eventsSince,
  eventsWithCode,
  gateFor,
  lastEventId,
  markerCount,
  sideEffectProvider,
  spawnCrashServer,
  tempDir,
  waitFor,
} from '../helpers/gate-faults.mjs';

test('SIGKILL between intent and receipt: verify reports the intent; the same request is never run again', async (t) => {
  const root = tempDir(t, 'latchgate-crash-');
  const stateDir = path.join(root, 'state');
  const marker = path.join(root, 'side-effect.log');

  // 1. A gate in its own process; its provider writes the marker, then hangs.
  const server = await spawnCrashServer(t, { stateDir, markerFile: marker });
  const agent = new Agent(server.socket);
  await agent.lease();
  const inflight = agent.execute('t_side_effect', { n: 1 }).then(
    (r) => ({ answered: r }),
    (e) => ({ error: e }),
  );
  // Its line written, not only the file created: the kill must come after the whole side effect.
  await waitFor(() => markerCount(marker) === 1, { timeoutMs: 10_000, what: 'the side effect (a line in the marker file)' });
  server.child.kill('SIGKILL');
  const { signal } = await server.exited;
  assert.equal(signal, 'SIGKILL');
  const outcome = await inflight;
  assert.ok(outcome.error, `the client never hears an outcome, got ${JSON.stringify(outcome.answered)}`);
  assert.equal(markerCount(marker), 1);

  // Before any gate starts again, nothing accounts for the intent: latchgate verify says the gate stopped.
  const crashed = cliVerify(t, stateDir, { text: true });
  assert.equal(crashed.code, 2, crashed.text);
  const [stopped] = crashed.report.intents_without_receipts;
  assert.equal(stopped.status, 'unexplained');
  assert.match(stopped.reason, /^interrupted: the gate stopped after the intent of grant \S+ \(action t_side_effect, trace_id \S+, started \S+\) and before its receipt/);
  assert.match(crashed.text, /1 execution intents have no receipt and no event accounts for it:\n {2}interrupted: the gate stopped after the intent of grant/);

  // 2. Restart in-process on the same state dir, with a provider that records each run.
  const g = await gateFor(t, crashGateOptions(stateDir, sideEffectProvider(marker)));
  const v = verifyLedger(g.db, g.ctx.keys);
  assert.equal(v.intact, true, `a crash is not tampering: ${JSON.stringify(v.first_bad)}`);
  assert.equal(v.intents_without_receipts.length, 1, JSON.stringify(v.intents_without_receipts));
  const orphan = v.intents_without_receipts[0];
  assert.equal(orphan.action_id, 't_side_effect');
  assert.equal(orphan.grant_id, stopped.grant_id);
  // The restarted gate recorded it, in the intent's trace.
  assert.equal(orphan.status, 'interrupted');
  const recorded = eventsSince(g, 0).find((e) => e.id === orphan.event_id);
  assert.equal(recorded.event_type, 'execution_interrupted');
  assert.equal(recorded.trace_id, orphan.trace_id);
  assert.equal(recorded.execution.grant_id, orphan.grant_id);
  const restarted = cliVerify(t, stateDir, { text: true });
  assert.equal(restarted.code, 0, restarted.text);
  assert.match(restarted.text, /grant \S+ action t_side_effect .*: interrupted \(the gate stopped before its receipt; execution_interrupted event id=\d+\)/);
  const row = g.db.prepare('SELECT * FROM execution_intents WHERE grant_id = ?').get(orphan.grant_id);
  assert.equal(row.request_hash, canonicalHash({ n: 1 }));
  assert.equal(row.principal, 'tester');
  assert.equal(g.ctx.ledger.isGrantConsumed(orphan.grant_id), true);
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM receipts').get().n, 0);

  // The admin API reports it too.
  const av = await admin(g, 'GET', '/v1/audit/verify');
  assert.equal(av.status, 200, av.text);
  assert.equal(av.body.intents_without_receipts.length, 1);
  assert.equal(av.body.intents_without_receipts[0].grant_id, orphan.grant_id);

  // 3. Retrying the same body with a new lease and proof: never executed again.
  const retry = new Agent(g.socket);
  await retry.lease();
  const before = lastEventId(g);
  const again = await retry.execute('t_side_effect', { n: 1 });
  assert.equal(again.status, 409, again.text);
  assert.equal(again.body.error, 'previous_outcome_unknown');
  assert.equal(markerCount(marker), 1, 'the side effect did not happen twice');
  assert.equal(eventsWithCode(g, before, 'previous_outcome_unknown').length, 1, 'the refusal is audited');
  // A second retry, from yet another session, is refused the same way.
  const third = new Agent(g.socket);
  await third.lease();
  const again2 = await third.execute('t_side_effect', { n: 1 });
  assert.equal(again2.status, 409, again2.text);
  assert.equal(again2.body.error, 'previous_outcome_unknown');
  assert.equal(markerCount(marker), 1);

  // 4. A different body still executes.
  const other = await retry.execute('t_side_effect', { n: 2 });
  assert.equal(other.status, 200, other.text);
  assert.equal(markerCount(marker), 2);

  // The orphan stays reported (an operator must settle it); the rest is intact.
  const v2 = verifyLedger(g.db, g.ctx.keys);
  assert.equal(v2.intact, true, JSON.stringify(v2.first_bad));
  assert.deepEqual(v2.intents_without_receipts.map((i) => i.grant_id), [orphan.grant_id]);
  assert.equal(v2.receipts.total, 1);
  assert.deepEqual(v2.receipts.bad, []);
});
