// The happy paths of the gate's client API over its real Unix
// sockets: an allowed execution with a signed receipt, receipts read back
// (per principal), the action catalogue and request schemas.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { verifyReceipt } from '../../dist/ledger/receipt.js';
import { Agent, grantAll, request } from '../helpers/gate.mjs';
import { boxSocket, eventsSince, gateFor, lastEventId } from '../helpers/gate-faults.mjs';

test('t_ok is allowed: 200, a receipt id, verification unverifiable_declared, a receipt that verifies', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  const before = lastEventId(g);
  const r = await a.execute('t_ok', { n: 7, note: 'hello' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.decision, 'allow');
  assert.equal(r.body.action_id, 't_ok');
  assert.match(r.body.receipt_id, /^[0-9a-f-]{36}$/);
  assert.match(r.body.grant_id, /^[0-9a-f-]{36}$/);
  assert.equal(r.body.verification_outcome, 'unverifiable_declared');
  assert.deepEqual(r.body.verification, { outcome: 'unverifiable_declared', is_fully_successful: true });
  assert.deepEqual(r.body.output, { done: true, echo: { n: 7, note: 'hello' } });

  // The receipt is stored, signed, bound to the grant and to this trace.
  const receipt = g.ctx.ledger.getReceipt(r.body.receipt_id);
  assert.ok(receipt);
  assert.equal(receipt.grant_id, r.body.grant_id);
  assert.equal(receipt.trace_id, r.body.trace_id);
  assert.equal(receipt.verification_outcome.status, 'unverifiable_declared');
  assert.equal(receipt.failure_class, undefined);
  assert.deepEqual(verifyReceipt(g.ctx.keys, receipt), { ok: true });

  // One final action_call event carries the decision, the grant and the receipt.
  const evs = eventsSince(g, before).filter((e) => e.event_type === 'action_call');
  assert.equal(evs.length, 1);
  assert.equal(evs[0].trace_id, r.body.trace_id);
  assert.equal(evs[0].decision, 'allow');
  assert.equal(evs[0].subject.principal, 'tester');
  assert.equal(evs[0].subject.session_id, a.session_id);
  assert.equal(evs[0].execution.receipt_id, r.body.receipt_id);
  assert.equal(evs[0].execution.grant_id, r.body.grant_id);
  assert.match(evs[0].request.request_hash, /^sha256:[0-9a-f]{64}$/);

  // The intent was written before dispatch, and the receipt closes it.
  const intent = g.db.prepare('SELECT * FROM execution_intents WHERE grant_id = ?').get(r.body.grant_id);
  assert.equal(intent.action_id, 't_ok');
  assert.equal(intent.principal, 'tester');
  assert.equal(g.ctx.ledger.isGrantConsumed(r.body.grant_id), true);
  const v = verifyLedger(g.db, g.ctx.keys);
  assert.equal(v.intact, true, JSON.stringify(v.first_bad));
  assert.deepEqual(v.intents_without_receipts, []);
});

test('GET /v1/receipts/{id}: the same principal reads it (from any of its sessions); an unknown id is 404', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  const r = await a.execute('t_ok', { n: 1 });
  assert.equal(r.status, 200, r.text);

  const got = await a.signed('GET', `/v1/receipts/${r.body.receipt_id}`);
  assert.equal(got.status, 200, got.text);
  assert.equal(got.body.receipt_id, r.body.receipt_id);
  assert.equal(got.body.grant_id, r.body.grant_id);
  assert.deepEqual(verifyReceipt(g.ctx.keys, got.body), { ok: true });

  // Receipts are per principal, not per session: another lease of the same principal reads it.
  const b = new Agent(g.socket);
  await b.lease();
  const other = await b.signed('GET', `/v1/receipts/${r.body.receipt_id}`);
  assert.equal(other.status, 200, other.text);

  const missing = await a.signed('GET', '/v1/receipts/00000000-0000-4000-8000-000000000000');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error, 'receipt_not_found');

  // Without a lease the receipt is not served on the client socket.
  const anon = await request(g.socket, 'GET', `/v1/receipts/${r.body.receipt_id}`);
  assert.equal(anon.status, 401);
  assert.equal(anon.body.error, 'missing_auth_header');

  // The operator reads any receipt on the admin socket.
  const adm = await request(g.adminSocket, 'GET', `/v1/receipts/${r.body.receipt_id}`);
  assert.equal(adm.status, 200, adm.text);
  assert.equal(adm.body.receipt_id, r.body.receipt_id);
});

test('GET /v1/receipts/{id} of another principal is 404 (receipts are per principal)', async (t) => {
  // The tests run as one uid: the other principal calls through a box-style socket.
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  const r = await a.execute('t_ok', { n: 2 });
  assert.equal(r.status, 200, r.text);
  const other = new Agent(await boxSocket(t, g, 'other-agent'));
  await other.lease();
  const got = await other.signed('GET', `/v1/receipts/${r.body.receipt_id}`);
  assert.equal(got.status, 404, got.text);
  assert.equal(got.body.error, 'receipt_not_found');
  assert.doesNotMatch(got.text, new RegExp(r.body.grant_id), 'nothing of the receipt leaks');
});

test('GET /v1/actions lists the registered actions; /v1/actions/{id} and its request schema', async (t) => {
  const g = await gateFor(t);
  const list = await request(g.socket, 'GET', '/v1/actions');
  assert.equal(list.status, 200, list.text);
  const ids = list.body.actions.map((x) => x.action_id);
  for (const id of ['t_ok', 't_high', 't_fail', 't_crash', 't_hang', 't_bad_output', 't_costly', 't_http_honest', 't_http_liar']) {
    assert.ok(ids.includes(id), `${id} missing from ${ids.join(', ')}`);
  }
  const ok = list.body.actions.find((x) => x.action_id === 't_ok');
  assert.equal(ok.version, '1.0.0');
  assert.equal(ok.risk_level, 'low');
  assert.match(ok.action_digest, /^sha256:[0-9a-f]{64}$|^[0-9a-f]{64}$/);
  assert.equal(list.body.actions.find((x) => x.action_id === 't_high').risk_level, 'high');

  const one = await request(g.socket, 'GET', '/v1/actions/t_ok');
  assert.equal(one.status, 200, one.text);
  assert.equal(one.body.action_id, 't_ok');
  assert.equal(one.body.action_digest, ok.action_digest);
  assert.equal(one.body.provider_module_digest, 'builtin:test_success');

  const schema = await request(g.socket, 'GET', '/v1/actions/t_ok/schema/request');
  assert.equal(schema.status, 200, schema.text);
  assert.equal(schema.body.type, 'object');
  assert.deepEqual(schema.body.required, ['n']);
  assert.deepEqual(schema.body.properties.n, { type: 'integer', minimum: 0 });
  assert.equal(schema.body.additionalProperties, false);

  const nope = await request(g.socket, 'GET', '/v1/actions/no_such_action/schema/request');
  assert.equal(nope.status, 404);
  assert.equal(nope.body.error, 'action_not_found');
});

test('healthz, readyz and the lease JWKS', async (t) => {
  const g = await gateFor(t);
  const h = await request(g.socket, 'GET', '/healthz');
  assert.equal(h.status, 200);
  assert.equal(h.body.status, 'ok');
  const r = await request(g.socket, 'GET', '/readyz');
  assert.equal(r.status, 200);
  assert.equal(r.body.status, 'ready');
  const j = await request(g.socket, 'GET', '/.well-known/jwks.json');
  assert.equal(j.status, 200);
  assert.ok(j.body.keys.length >= 1);
  for (const k of j.body.keys) {
    assert.equal(k.kty, 'OKP');
    assert.equal(k.crv, 'Ed25519');
    assert.equal(k.d, undefined, 'the JWKS must not publish a private key');
  }
});
