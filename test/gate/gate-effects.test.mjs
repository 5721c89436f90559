// Dispatch through the provider interface and honest effect
// verification: host-observed evidence decides "verified"; a lying provider
// is caught; failures, crashes, timeouts and bad output are 502 with a
// signed receipt; every receipt verifies and the chain stays intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { verifyReceipt } from '../../dist/ledger/receipt.js';
import { fakeTransport } from '../fixtures/providers.mjs';
import { Agent, grantAll, TEST_PROVIDERS } from '../helpers/gate.mjs';
import { admin, eventsSince, gateFor, lastEventId } from '../helpers/gate-faults.mjs';

/** The stored receipt of a response, checked to verify. */
function receiptOf(g, body) {
  assert.ok(body.receipt_id, `no receipt_id in ${JSON.stringify(body)}`);
  const r = g.ctx.ledger.getReceipt(body.receipt_id);
  assert.ok(r, `receipt ${body.receipt_id} is not stored`);
  assert.deepEqual(verifyReceipt(g.ctx.keys, r), { ok: true }, `receipt ${body.receipt_id} verifies`);
  return r;
}

function assertIntact(g) {
  const v = verifyLedger(g.db, g.ctx.keys);
  assert.equal(v.intact, true, JSON.stringify(v.first_bad ?? v.receipts));
  assert.deepEqual(v.receipts.bad, []);
  assert.deepEqual(v.intents_without_receipts, []);
  return v;
}

async function setup(t, status) {
  const transport = fakeTransport(status);
  const g = await gateFor(t, { transport });
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease();
  return { g, a, transport };
}

test('t_http_honest, host sees 200: verified, with the host evidence in the receipt', async (t) => {
  const { g, a, transport } = await setup(t, 200);
  const r = await a.execute('t_http_honest', { id: 'item-1', note: 'a b&c' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.verification_outcome, 'verified');
  assert.deepEqual(r.body.verification, { outcome: 'verified', is_fully_successful: true });
  assert.equal(r.body.runtime.io_calls, 1);
  // The template was expanded: the host made exactly the manifest's call.
  assert.equal(transport.calls.length, 1);
  assert.equal(transport.calls[0].method, 'POST');
  assert.equal(transport.calls[0].url, 'https://api.example.com/items/item-1');
  assert.deepEqual(JSON.parse(transport.calls[0].body), { id: 'item-1', note: 'a b&c' });
  const rc = receiptOf(g, r.body);
  assert.equal(rc.verification_outcome.status, 'verified');
  assert.equal(rc.effect_evidence.length, 1);
  assert.equal(rc.effect_evidence[0].status, 200);
  assert.equal(rc.effect_evidence[0].url, 'https://api.example.com/items/item-1');
  assertIntact(g);
});

test('t_http_honest, host sees 500: the provider reports failure, the receipt is not "verified"', async (t) => {
  const { g, a } = await setup(t, 500);
  const r = await a.execute('t_http_honest', { id: 'item-2', note: 'x' });
  assert.equal(r.status, 502, r.text);
  assert.equal(r.body.error, 'action_execution_failed');
  assert.equal(r.body.failure_class, 'provider_error');
  assert.notEqual(r.body.verification_outcome, 'verified');
  const rc = receiptOf(g, r.body);
  assert.notEqual(rc.verification_outcome.status, 'verified');
  assert.equal(rc.normalized_result.kind, 'failure');
  assert.equal(rc.failure_class, 'provider_error');
  assert.equal(rc.effect_evidence[0].status, 500, 'the host evidence records what happened');
  assertIntact(g);
});

test('t_http_liar (high risk) claims 200, host sees 500: verification_failed, 403, receipt still written and signed', async (t) => {
  const { g, a } = await setup(t, 500);
  const held = await a.execute('t_http_liar', { id: 'x1', note: 'hi' });
  assert.equal(held.status, 202, `high risk waits for an operator: ${held.text}`);
  const before = lastEventId(g);
  const ap = await admin(g, 'POST', `/v1/approvals/${held.body.approval_id}/approve`, {});
  assert.equal(ap.status, 200, ap.text);
  assert.equal(ap.body.http_status, 403);
  const body = ap.body.result;
  assert.equal(body.error, 'verification_failed');
  assert.equal(body.verification_outcome, 'verification_failed');
  assert.match(body.message, /claimed status 200.*observed 500/);
  const rc = receiptOf(g, body);
  assert.equal(rc.verification_outcome.status, 'verification_failed');
  assert.equal(rc.failure_class, 'verification_failed');
  assert.equal(rc.provider_receipt.status_code, 200, 'the provider claim is kept as claimed');
  assert.equal(rc.effect_evidence[0].status, 500);

  // The agent polling its approval gets the same 403.
  const p = await a.signed('GET', `/v1/approvals/${held.body.approval_id}/poll`);
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.receipt_id, body.receipt_id);
  assert.equal(p.body.result.status, 403);
  assert.equal(p.body.result.body.error, 'verification_failed');

  const final = eventsSince(g, before).find((e) => e.event_type === 'action_call' && e.execution?.receipt_id === body.receipt_id);
  assert.ok(final);
  assert.equal(final.execution.verification_outcome, 'verification_failed');
  assert.equal(final.execution.failure_class, 'verification_failed');
  assert.equal(final.decision, 'error');
  assertIntact(g);
});

test('t_http_liar with a host that sees 200: verified (the claim matches the evidence)', async (t) => {
  const { g, a } = await setup(t, 200);
  const held = await a.execute('t_http_liar', { id: 'x2', note: 'hi' });
  assert.equal(held.status, 202, held.text);
  const ap = await admin(g, 'POST', `/v1/approvals/${held.body.approval_id}/approve`, {});
  assert.equal(ap.body.http_status, 200, ap.text);
  assert.equal(ap.body.result.verification_outcome, 'verified');
  receiptOf(g, ap.body.result);
  assertIntact(g);
});

for (const [action, failure, code] of [
  ['t_fail', 'provider_error', 'action_execution_failed'],
  ['t_crash', 'provider_error', 'action_execution_failed'],
]) {
  test(`${action}: 502 ${code}, outcome provider_failed_before_verification, signed receipt`, async (t) => {
    const { g, a } = await setup(t, 200);
    const before = lastEventId(g);
    const r = await a.execute(action, { n: 1 });
    assert.equal(r.status, 502, r.text);
    assert.equal(r.body.error, code);
    assert.equal(r.body.failure_class, failure);
    assert.equal(r.body.verification_outcome, 'provider_failed_before_verification');
    const rc = receiptOf(g, r.body);
    assert.equal(rc.verification_outcome.status, 'provider_failed_before_verification');
    assert.equal(rc.normalized_result.kind, 'failure');
    assert.equal(rc.failure_class, failure);
    const ev = eventsSince(g, before).find((e) => e.event_type === 'action_call');
    assert.equal(ev.decision, 'error');
    assert.equal(ev.execution.receipt_id, r.body.receipt_id);
    assertIntact(g);
  });
}

test('t_hang: the 1 s wall-clock limit ends it: 502, failure_class timeout, a signed receipt', async (t) => {
  const { g, a } = await setup(t, 200);
  const t0 = Date.now();
  const r = await a.execute('t_hang', { n: 1 });
  const ms = Date.now() - t0;
  assert.equal(r.status, 502, r.text);
  assert.equal(r.body.error, 'action_execution_failed');
  assert.equal(r.body.failure_class, 'timeout');
  // Ended by its own 1 s limit: not before it, and long before any other limit would have.
  assert.ok(ms >= 950 && ms < 15_000, `timed out after ~1 s, took ${ms} ms`);
  const rc = receiptOf(g, r.body);
  assert.equal(rc.failure_class, 'timeout');
  assert.equal(rc.verification_outcome.status, 'provider_failed_before_verification');
  assertIntact(g);
});

test('t_bad_output: 502 response_schema_violation, the bad output is not returned, signed receipt', async (t) => {
  const { g, a } = await setup(t, 200);
  const r = await a.execute('t_bad_output', { n: 1 });
  assert.equal(r.status, 502, r.text);
  assert.equal(r.body.error, 'response_schema_violation');
  assert.equal(r.body.output, undefined);
  assert.doesNotMatch(r.text, /unexpected/);
  assert.match(r.body.message, /response schema/);
  const rc = receiptOf(g, r.body);
  assert.equal(rc.normalized_result.kind, 'failure');
  assertIntact(g);
});

test('an answer the receipt cannot hold (output or provider receipt nested past the canonical form\'s depth, alone or inside the receipt; an error of megabytes): 502 with a signed failure receipt, no intent left open', async (t) => {
  const deep = (n) => (n === 0 ? 'bottom' : { d: deep(n - 1) });
  const providers = {
    ...TEST_PROVIDERS,
    'builtin:test_success': { execute: async () => ({ ok: true, output: deep(70), provider_receipt: { claimed: 'did it' } }) },
    'builtin:test_bad_output': { execute: async () => ({ ok: true, output: { done: true }, provider_receipt: deep(70) }) },
    // Deep enough alone, one level too deep inside the receipt.
    'builtin:test_http_honest': {
      async execute(task, io) {
        await io.http(task.call);
        return { ok: true, output: { status_code: 200 }, provider_receipt: deep(64) };
      },
    },
    // A TypeScript provider's error is not cut by the runtime: 5 MB of it.
    'builtin:test_failure': { execute: async () => ({ ok: false, error: 'x'.repeat(5_000_000) }) },
  };
  const g = await gateFor(t, { providers });
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease();
  for (const [id, body, why] of [
    ['t_ok', { n: 1 }, /cannot be recorded: .*deeper than/],
    ['t_bad_output', { n: 1 }, /cannot be recorded: .*deeper than/],
    ['t_http_honest', { id: 'z', note: 'z' }, /exceeds what a receipt holds .*host evidence is left out: 1 host record\(s\), sha256:[0-9a-f]{64}/],
    ['t_fail', { n: 1 }, /^x{2048}\.\.\. \(4997952 more characters\)$/],
  ]) {
    const r = await a.execute(id, body);
    assert.equal(r.status, 502, `${id}: ${r.text.slice(0, 300)}`);
    assert.equal(r.body.error, 'action_execution_failed');
    assert.match(r.body.message, why, id);
    const rc = receiptOf(g, r.body);
    assert.equal(rc.failure_class, 'provider_error', id);
    assert.equal(rc.response_hash, undefined);
    if (id !== 't_fail') assert.equal(rc.provider_receipt, null, id);
  }
  assertIntact(g);
});

test('after a mix of outcomes every stored receipt verifies and verifyLedger is intact', async (t) => {
  const { g, a } = await setup(t, 200);
  const codes = [];
  for (const [id, body] of [['t_ok', { n: 1 }], ['t_fail', { n: 1 }], ['t_crash', { n: 1 }], ['t_bad_output', { n: 1 }], ['t_http_honest', { id: 'z', note: 'z' }], ['t_ok', { n: 2 }]]) {
    codes.push((await a.execute(id, body)).status);
  }
  assert.deepEqual(codes, [200, 502, 502, 502, 200, 200]);
  const v = assertIntact(g);
  assert.equal(v.receipts.total, 6);
  for (const row of g.db.prepare('SELECT receipt_json FROM receipts').all()) {
    assert.deepEqual(verifyReceipt(g.ctx.keys, JSON.parse(row.receipt_json)), { ok: true });
  }
});
