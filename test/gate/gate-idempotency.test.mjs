// Idempotency-Key through the real gate: a retry of the same request with the
// same key gets the first answer and nothing runs again (one intent, one
// receipt, one debit); the key cannot be reused for another request, nor
// raced (two at once: one runs), and belongs to its principal only; a held
// request's retry gets the same approval. Without a key the same body runs
// again, as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from '../helpers/gate.mjs';
import { admin, eventsSince, lastEventId, leasedGate } from '../helpers/gate-faults.mjs';

const withKey = (key) => ({ headers: { 'idempotency-key': key } });
const intents = (g, action) => g.db.prepare('SELECT COUNT(*) AS n FROM execution_intents WHERE action_id = ?').get(action).n;

const setup = leasedGate;

test('a retry with the same key gets the first answer; nothing runs again; without a key the same body runs again', async (t) => {
  const { g, a } = await setup(t);
  const before = lastEventId(g);
  const first = await a.execute('t_ok', { n: 1 }, withKey('k-1'));
  assert.equal(first.status, 200, first.text);
  const again = await a.execute('t_ok', { n: 1 }, withKey('k-1'));
  assert.equal(again.status, 200, again.text);
  assert.equal(again.body.receipt_id, first.body.receipt_id);
  assert.equal(again.body.trace_id, first.body.trace_id);
  assert.equal(again.body.idempotent_replay, true);
  assert.deepEqual(again.body, { ...first.body, idempotent_replay: true });
  // What is kept is the answer's status and body, once (not its serialized text beside them).
  const kept = JSON.parse(g.db.prepare('SELECT reply_json FROM idempotency_keys WHERE key = ?').get('k-1').reply_json);
  assert.deepEqual(kept, { status: 200, body: first.body });
  assert.equal(intents(g, 't_ok'), 1, 'the retry ran the action again');
  const ev = eventsSince(g, before);
  assert.equal(ev.filter((e) => e.event_type === 'action_call' && e.decision === 'allow').length, 1);
  const replay = ev.find((e) => e.event_type === 'idempotent_replay');
  assert.deepEqual(replay.details, { idempotency_key: 'k-1', first_trace_id: first.body.trace_id, status: 200 });
  // Legitimate: the same body without a key is a new request.
  assert.equal((await a.execute('t_ok', { n: 1 })).status, 200);
  assert.equal(intents(g, 't_ok'), 2);
});

test('a failed run is the answer too: its retry gets the same failure and receipt, not a second try', async (t) => {
  const { g, a } = await setup(t);
  const first = await a.execute('t_fail', { n: 1 }, withKey('k-fail'));
  assert.equal(first.status, 502, first.text);
  const again = await a.execute('t_fail', { n: 1 }, withKey('k-fail'));
  assert.equal(again.status, 502);
  assert.equal(again.body.receipt_id, first.body.receipt_id);
  assert.equal(intents(g, 't_fail'), 1);
});

test('attack: the key of one request cannot carry another (422), and nothing runs', async (t) => {
  const { g, a } = await setup(t);
  assert.equal((await a.execute('t_ok', { n: 1 }, withKey('k-2'))).status, 200);
  for (const [action, body] of [['t_ok', { n: 2 }], ['t_fail', { n: 1 }]]) {
    const r = await a.execute(action, body, withKey('k-2'));
    assert.equal(r.status, 422, r.text);
    assert.equal(r.body.error, 'idempotency_key_reused');
  }
  assert.equal(intents(g, 't_ok') + intents(g, 't_fail'), 1);
});

test('attack: two requests racing with one key: one runs, the other is told to retry (409)', async (t) => {
  const { g, a } = await setup(t);
  const b = new Agent(g.socket);
  await b.lease();
  const [x, y] = await Promise.all([a.execute('t_hang', { n: 1 }, withKey('k-race')), b.execute('t_hang', { n: 1 }, withKey('k-race'))]);
  const statuses = [x.status, y.status].sort();
  assert.deepEqual(statuses, [409, 502], `${x.text} / ${y.text}`);
  const lost = x.status === 409 ? x : y;
  assert.equal(lost.body.error, 'idempotency_in_progress');
  assert.equal(intents(g, 't_hang'), 1);
  // Once the first has its answer, a retry gets it.
  const retry = await a.execute('t_hang', { n: 1 }, withKey('k-race'));
  assert.equal(retry.status, 502);
  assert.equal(retry.body.idempotent_replay, true);
  assert.equal(intents(g, 't_hang'), 1);
});

test("a key is its principal's: another principal's request with the same key is its own", async (t) => {
  const { g, a } = await setup(t);
  const other = new Agent(g.agentSocket);
  await other.lease();
  assert.equal((await a.execute('t_ok', { n: 5 }, withKey('shared'))).status, 200);
  const r = await other.execute('t_ok', { n: 5 }, withKey('shared'));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.idempotent_replay, undefined);
  assert.equal(intents(g, 't_ok'), 2);
});

test('a held request retried with its key gets the same approval, not a second one', async (t) => {
  const { g } = await setup(t);
  const a = new Agent(g.agentSocket);
  await a.lease();
  const held = await a.execute('t_high', { n: 3 }, withKey('k-held'));
  assert.equal(held.status, 202, held.text);
  const again = await a.execute('t_high', { n: 3 }, withKey('k-held'));
  assert.equal(again.status, 202);
  assert.equal(again.body.approval_id, held.body.approval_id);
  assert.equal(again.body.idempotent_replay, true);
  const pending = await admin(g, 'GET', '/v1/approvals?status=pending');
  assert.equal(pending.body.approvals.length, 1);
});

test('a malformed or repeated Idempotency-Key header is refused, naming it', async (t) => {
  const { a } = await setup(t);
  for (const bad of ['', 'has space', 'x'.repeat(256), 'quote"d']) {
    const r = await a.execute('t_ok', { n: 1 }, withKey(bad));
    assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.text}`);
    assert.match(r.body.message, /Idempotency-Key/);
  }
  const twice = await a.execute('t_ok', { n: 1 }, { headers: { 'idempotency-key': ['a', 'b'] } });
  assert.equal(twice.status, 400, twice.text);
  assert.equal(twice.body.error, 'duplicate_header');
});
