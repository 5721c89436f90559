// The SDK against a real in-process gate (real SQLite, keys, DPoP, policy):
// imported by the package's own name as an agent would; LATCHGATE_URL with
// unix:// (what a box sets); every call with a fresh proof; typed errors;
// approvals through to the gate's own run of the held request; receipts
// verified with the gate's published keys (and an edited one refused); a
// lease that expires mid-session; a gate restarted mid-session; cancellation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { inspect } from 'node:util';
import path from 'node:path';
import {
  LatchGateApprovalRequired,
  LatchGateClient,
  LatchGateConflict,
  LatchGateConnectionError,
  LatchGateDenied,
  LatchGateError,
  LatchGateInvalidRequest,
  LatchGateNotFound,
} from 'latchgate';
import * as sdkPath from 'latchgate/sdk';
import { openGate } from '../../dist/gate/factory.js';
import { buildGateApp } from '../../dist/gate/app.js';
import { boxIdentity, listenUnix } from '../../dist/gate/transport.js';
import { AGENT, BASE_URL, gateConfig, grantAll, startGate, TEST_PROVIDERS } from '../helpers/gate.mjs';
import { admin, eventsSince, lastEventId } from '../helpers/gate-faults.mjs';
import * as P from '../fixtures/providers.mjs';

let g;
before(async () => {
  g = await startGate();
  grantAll(g);
});
after(async () => g?.close());

const client = (over = {}) => new LatchGateClient({ socket: g.agentSocket, publicBaseUrl: BASE_URL, ...over });

test('the package exports the SDK under its name and under /sdk', () => {
  assert.equal(sdkPath.LatchGateClient, LatchGateClient);
  assert.equal(typeof LatchGateClient, 'function');
});

test('LATCHGATE_URL=unix://... and LATCHGATE_PUBLIC_URL, as a box sets them: execute returns the output and a receipt that verifies', async () => {
  const c = new LatchGateClient({ env: { LATCHGATE_URL: `unix://${g.agentSocket}`, LATCHGATE_PUBLIC_URL: BASE_URL } });
  assert.deepEqual(c.endpoint, { socket: g.agentSocket, publicBaseUrl: BASE_URL });
  const before = lastEventId(g);
  const r = await c.execute('t_ok', { n: 1 });
  assert.equal(r.decision, 'allow');
  assert.match(r.receiptId, /^[0-9a-f-]{36}$/);
  assert.ok(r.traceId && r.grantId);
  assert.equal(typeof r.verification.outcome, 'string');
  // A second call: a fresh proof (a replayed one would be refused), the same lease.
  await c.execute('t_ok', { n: 2 });
  const leases = eventsSince(g, before).filter((e) => e.event_type === 'lease_issued');
  assert.equal(leases.length, 1, 'one lease for the session');
  const receipt = await c.getReceipt(r.receiptId);
  assert.equal(receipt.receipt_id, r.receiptId);
  assert.deepEqual(await c.verifyReceipt(receipt), { ok: true, kid: receipt.signing_key_id });
  c.close();
});

test('an idempotency key makes a retry safe: the same receipt back, marked replayed, and one run', async () => {
  const c = client();
  const key = `retry-${Date.now()}`;
  const first = await c.execute('t_ok', { n: 11 }, { idempotencyKey: key });
  const again = await c.execute('t_ok', { n: 11 }, { idempotencyKey: key });
  assert.equal(first.replayed, false);
  assert.equal(again.replayed, true);
  assert.equal(again.receiptId, first.receiptId);
  await assert.rejects(c.execute('t_ok', { n: 12 }, { idempotencyKey: key }), (e) => e instanceof LatchGateConflict && e.code === 'idempotency_key_reused' && e.status === 422);
  c.close();
});

test('an edited receipt, or one signed by a key the gate does not publish, does not verify', async () => {
  const c = client();
  const r = await c.execute('t_ok', { n: 3 });
  const receipt = await c.getReceipt(r.receiptId);
  const edited = { ...receipt, normalized_result: { kind: 'success', summary: 'something else' } };
  const v1 = await c.verifyReceipt(edited);
  assert.equal(v1.ok, false);
  assert.match(v1.reason, /result_hash/);
  const resigned = { ...receipt, receipt_signature: receipt.receipt_signature.replace(/^./, (ch) => (ch === '0' ? '1' : '0')) };
  assert.equal((await c.verifyReceipt(resigned)).ok, false);
  const otherKey = { ...receipt, signing_key_id: 'not-a-gate-key' };
  assert.match((await c.verifyReceipt(otherKey)).reason, /not among the gate's receipt keys/);
  c.close();
});

test('errors are typed by family and carry the code, status and trace id', async () => {
  const c = client();
  await assert.rejects(c.execute('no_such_action', {}), (e) => e instanceof LatchGateNotFound && e.name === 'LatchGateNotFound' && e.code === 'action_not_found' && e.status === 404);
  await assert.rejects(c.execute('t_ok', { n: -1 }), (e) => e instanceof LatchGateInvalidRequest && e.code === 'schema_violation' && e.status === 422);
  await assert.rejects(c.execute('t_fail', { n: 1 }), (e) => e instanceof LatchGateError && e.code === 'action_execution_failed' && typeof e.receiptId === 'string' && typeof e.traceId === 'string');
  // A principal without the grant: denied by policy.
  g.gate.admin.policyRevoke((await import('../helpers/gate.mjs')).operatorCaller(), { principal: AGENT, actions: ['t_ok'] });
  try {
    await assert.rejects(c.execute('t_ok', { n: 1 }), (e) => e instanceof LatchGateDenied && e.code === 'policy_denied' && e.status === 403);
  } finally {
    grantAll(g, AGENT);
  }
  c.close();
});

test('a pending approval throws LatchGateApprovalRequired; waitForApproval returns the run the gate makes once approved', async () => {
  const c = client();
  const err = await c.execute('t_high', { n: 7 }).catch((e) => e);
  assert.ok(err instanceof LatchGateApprovalRequired, String(err));
  assert.match(err.approvalId, /^[0-9a-f-]{36}$/);
  assert.match(err.requestHash, /^sha256:/);
  assert.match(err.message, /latchgate approvals approve /);
  assert.equal((await c.getApprovalStatus(err.approvalId)).status, 'pending');
  const waiting = c.waitForApproval(err.approvalId, { intervalMs: 100 });
  const ap = await admin(g, 'POST', `/v1/approvals/${err.approvalId}/approve`, {});
  assert.equal(ap.status, 200, ap.text);
  const r = await waiting;
  assert.equal(r.decision, 'allow');
  assert.ok(r.receiptId);
  assert.equal((await c.verifyReceipt(await c.getReceipt(r.receiptId))).ok, true);
  c.close();
});

test('a denied approval ends the wait with LatchGateDenied approval_denied; an aborted wait rejects at once', async () => {
  const c = client();
  const held = await c.execute('t_high', { n: 8 }).catch((e) => e);
  assert.ok(held instanceof LatchGateApprovalRequired);
  const ac = new AbortController();
  const aborted = c.waitForApproval(held.approvalId, { intervalMs: 100, signal: ac.signal });
  ac.abort();
  await assert.rejects(aborted, (e) => e.name === 'AbortError');
  const waiting = c.waitForApproval(held.approvalId, { intervalMs: 100 });
  await admin(g, 'POST', `/v1/approvals/${held.approvalId}/deny`, { reason: 'not today' });
  await assert.rejects(waiting, (e) => e instanceof LatchGateDenied && e.code === 'approval_denied' && /not today/.test(e.message));
  c.close();
});

test('cancellation: an aborted execute rejects with AbortError while its provider runs', async () => {
  const c = client();
  await c.connect();
  const ac = new AbortController();
  const pending = c.execute('t_hang', { n: 1 }, { signal: ac.signal });
  setTimeout(() => ac.abort(), 200);
  await assert.rejects(pending, (e) => e.name === 'AbortError');
  c.close();
});

test('bad endpoints are refused naming the field; an unreachable gate is a LatchGateConnectionError with the fix', async () => {
  assert.throws(() => new LatchGateClient({ env: { LATCHGATE_URL: 'ftp://x' } }), /LATCHGATE_URL: expected unix:\/\/\/path or an http\(s\):\/\/ URL/);
  assert.throws(() => new LatchGateClient({ baseUrl: 'unix://relative/sock', env: {} }), /baseUrl: expected an absolute socket path/);
  assert.throws(() => new LatchGateClient({ env: { LATCHGATE_PUBLIC_URL: 'not a url' } }), /publicBaseUrl \(LATCHGATE_PUBLIC_URL\)/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lg-sdk-'));
  try {
    const c = new LatchGateClient({ socket: path.join(dir, 'none.sock'), env: {} });
    await assert.rejects(c.execute('t_ok', { n: 1 }), (e) => e instanceof LatchGateConnectionError && e.code === 'gate_unreachable' && /is the gate running/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A gate on a fixed socket path (so a restart is at the same place), its box identity the agent's. */
async function gateAt(stateDir, socket, over = {}) {
  const cfg = gateConfig(over);
  const opened = await openGate({ stateDir, config: cfg, providers: TEST_PROVIDERS, transport: P.fakeTransport(200), builtinManifests: true });
  const app = buildGateApp({ service: opened.gate, role: 'client', identify: boxIdentity(AGENT, ['tools:call']), peer: () => `box:${AGENT}` });
  await listenUnix(app, socket, 0o600);
  return { ...opened, async close() { await app.close(); opened.close(); } };
}

test('proofs made ahead between calls: each used once, only for its own request and lease, never once too old', async () => {
  const c = client();
  const tick = () => new Promise((r) => setImmediate(r));
  // Back to back: from the second call on, the proof was signed while the client was idle. Each proof
  // has its own jti: one used twice would be refused as a replay.
  for (let n = 1; n <= 5; n++) assert.equal((await c.execute('t_ok', { n })).decision, 'allow');
  await tick();
  // The proof made ahead does not show where the client is printed or logged: all this client's
  // proofs start with the same header (its key), which must not be in what inspect shows.
  const { makeProof } = await import('../../dist/gate/auth/client.js');
  const header = (await makeProof({ key: await c['key'], method: 'POST', url: `${BASE_URL}/v1/actions/t_ok/execute` })).split('.')[0];
  assert.ok(!inspect(c, { depth: Infinity, showHidden: true }).includes(header), 'a usable proof shows in util.inspect(client)');
  // Another action: another htu, so the proof made for t_ok is not sent (the gate would refuse it).
  assert.equal((await c.execute('t_fail', { n: 1 }).catch((e) => e)).code, 'action_execution_failed');
  await tick();
  // A proof made ahead and left 70 s (the gate takes an iat up to 60 s old): a new one is made instead.
  const now = Date.now;
  const shift = 70_000;
  Date.now = () => now() + shift;
  try {
    assert.equal((await c.execute('t_fail', { n: 1 }).catch((e) => e)).code, 'action_execution_failed');
  } finally {
    Date.now = now;
  }
  c.close();
});

test('a lease that expires mid-session is renewed: ahead of expiry, and once more when the gate says lease_expired', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lg-sdk-lease-'));
  const gg = await gateAt(path.join(dir, 'state'), path.join(dir, 'gate.sock'), { leaseTtlSeconds: 2 });
  try {
    grantAll(gg, AGENT);
    const c = new LatchGateClient({ socket: path.join(dir, 'gate.sock'), publicBaseUrl: BASE_URL, env: {} });
    const start = lastEventId(gg);
    await c.execute('t_ok', { n: 1 });
    // The client believes its lease still fresh; the gate's copy has expired.
    const held = await c['lease'];
    c['lease'] = Promise.resolve({ ...held, expiresAt: Date.now() + 3_600_000 });
    await new Promise((r) => setTimeout(r, 3000));
    const r = await c.execute('t_ok', { n: 2 });
    assert.equal(r.decision, 'allow');
    const ev = eventsSince(gg, start);
    assert.equal(ev.filter((e) => e.event_type === 'lease_issued').length, 2, 'a new lease after lease_expired');
    assert.ok(ev.some((e) => e.error?.code === 'lease_expired'), 'the gate refused the expired lease first');
    // With a 2 s lease every call is within the renewal margin: the client renews before sending.
    await c.execute('t_ok', { n: 3 });
    assert.equal(eventsSince(gg, start).filter((e) => e.event_type === 'lease_issued').length, 3);
    c.close();
  } finally {
    await gg.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a gate restarted mid-session: calls fail as unreachable while it is down, and go on with the same lease after', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lg-sdk-restart-'));
  const state = path.join(dir, 'state');
  const socket = path.join(dir, 'gate.sock');
  let gg = await gateAt(state, socket);
  try {
    grantAll(gg, AGENT);
    const c = new LatchGateClient({ socket, publicBaseUrl: BASE_URL, env: {} });
    await c.execute('t_ok', { n: 1 });
    await gg.close();
    await assert.rejects(c.execute('t_ok', { n: 2 }), (e) => e instanceof LatchGateConnectionError && e.code === 'gate_unreachable');
    gg = await gateAt(state, socket);
    const start = lastEventId(gg);
    const r = await c.execute('t_ok', { n: 3 });
    assert.equal(r.decision, 'allow');
    assert.equal(eventsSince(gg, start).filter((e) => e.event_type === 'lease_issued').length, 0, 'the lease outlived the restart');
    c.close();
  } finally {
    await gg.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
