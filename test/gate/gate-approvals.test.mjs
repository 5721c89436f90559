// Approvals through the real gate: a high-risk action is held
// (202), polled, approved or denied by an operator on the admin socket, runs
// once through the same dispatch tail, and expires.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalHash } from '../../dist/crypto/jcs.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { verifyReceipt } from '../../dist/ledger/receipt.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AGENT, Agent, advanceEpochOnly, grantAll } from '../helpers/gate.mjs';
import { admin, boxSocket, eventsSince, eventsWithCode, gateFor, lastEventId, sleep } from '../helpers/gate-faults.mjs';

const poll = (a, id) => a.signed('GET', `/v1/approvals/${id}/poll`);

test('t_high: 202 pending -> poll pending -> operator approves -> runs once; poll approved with receipt and result', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease({ budgets: { max_calls: 5 } });
  const before = lastEventId(g);

  const held = await a.execute('t_high', { n: 3 });
  assert.equal(held.status, 202, held.text);
  assert.equal(held.body.decision, 'pending_approval');
  assert.match(held.body.approval_id, /^[0-9a-f-]{36}$/);
  assert.equal(held.body.request_hash, canonicalHash({ n: 3 }));
  const id = held.body.approval_id;

  // Nothing ran yet: no intent, no receipt, budget untouched.
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 0);
  assert.equal(g.ctx.budgets.snapshot(a.session_id).calls_remaining, 5);

  const p1 = await poll(a, id);
  assert.equal(p1.status, 200, p1.text);
  assert.equal(p1.body.status, 'pending');
  assert.equal(p1.body.request_hash, held.body.request_hash);
  assert.equal(p1.body.receipt_id, undefined);

  // The operator sees it in the pending list, with its plan hash.
  const list = await admin(g, 'GET', '/v1/approvals');
  assert.equal(list.status, 200, list.text);
  const listed = list.body.approvals.find((x) => x.approval_id === id);
  assert.ok(listed, 'the pending approval is listed');
  assert.match(listed.plan_hash, /^sha256:[0-9a-f]{64}$/);
  const shown = await admin(g, 'GET', `/v1/approvals/${id}`);
  assert.equal(shown.status, 200);
  assert.equal(shown.body.plan_hash, listed.plan_hash);
  assert.equal(canonicalHash(shown.body.plan), shown.body.plan_hash, 'the stored plan hashes to plan_hash');

  const ap = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
  assert.equal(ap.status, 200, ap.text);
  assert.equal(ap.body.status, 'approved');
  assert.equal(ap.body.http_status, 200);
  const result = ap.body.result;
  assert.equal(result.decision, 'allow');
  assert.equal(result.action_id, 't_high');
  const expectedApprovalHash = canonicalHash({ approval_id: id, plan_hash: listed.plan_hash });
  // The grant carried the approver and approval_hash = H({approval_id, plan_hash}).
  assert.deepEqual(result.approval, { approved_by: 'op', approval_hash: expectedApprovalHash });

  const p2 = await poll(a, id);
  assert.equal(p2.status, 200, p2.text);
  assert.equal(p2.body.status, 'approved');
  assert.equal(p2.body.decided_by, 'op');
  assert.equal(p2.body.receipt_id, result.receipt_id);
  assert.equal(p2.body.result.status, 200);
  assert.equal(p2.body.result.body.receipt_id, result.receipt_id);

  // Exactly one execution: one intent (approved by op), one receipt that verifies.
  const intents = g.db.prepare('SELECT * FROM execution_intents').all();
  assert.equal(intents.length, 1);
  assert.equal(intents[0].approved_by, 'op');
  assert.equal(intents[0].grant_id, result.grant_id);
  const receipt = g.ctx.ledger.getReceipt(result.receipt_id);
  assert.deepEqual(verifyReceipt(g.ctx.keys, receipt), { ok: true });
  assert.equal(g.ctx.budgets.snapshot(a.session_id).calls_remaining, 4);

  // The ledger: pending decision, the operator's approval act, the final call event.
  const evs = eventsSince(g, before);
  const pending = evs.find((e) => e.event_type === 'action_call' && e.decision === 'pending_approval');
  assert.ok(pending);
  assert.equal(pending.approval.approval_id, id);
  assert.equal(pending.approval.plan_hash, listed.plan_hash);
  const granted = evs.find((e) => e.event_type === 'approval_granted');
  assert.ok(granted);
  assert.equal(granted.operator.name, 'op');
  assert.equal(granted.details.approval_id, id);
  assert.equal(granted.details.plan_hash, listed.plan_hash);
  assert.equal(granted.details.approval_hash, expectedApprovalHash);
  const final = evs.find((e) => e.event_type === 'action_call' && e.execution?.receipt_id === result.receipt_id);
  assert.ok(final);
  assert.equal(final.decision, 'allow');
  assert.deepEqual(final.approval, { approval_id: id, approved_by: 'op' });
  assert.equal(final.request.request_hash, held.body.request_hash);

  // Single use: approving again is refused and runs nothing.
  const again = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
  assert.equal(again.status, 409, again.text);
  assert.equal(again.body.error, 'approval_not_pending');
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 1);
  // Nor can it be denied afterwards.
  const late = await admin(g, 'POST', `/v1/approvals/${id}/deny`, { reason: 'too late' });
  assert.equal(late.status, 409);
  assert.equal(late.body.error, 'approval_not_pending');

  const v = verifyLedger(g.db, g.ctx.keys);
  assert.equal(v.intact, true, JSON.stringify(v.first_bad));
});

test('a denied approval polls as denied with the reason, runs nothing, and is recorded with the operator', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease();
  const held = await a.execute('t_high', { n: 4 });
  assert.equal(held.status, 202, held.text);
  const id = held.body.approval_id;
  const before = lastEventId(g);

  const d = await admin(g, 'POST', `/v1/approvals/${id}/deny`, { reason: 'not on a Friday' });
  assert.equal(d.status, 200, d.text);
  assert.equal(d.body.status, 'denied');

  const p = await poll(a, id);
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.status, 'denied');
  assert.equal(p.body.reason, 'not on a Friday');
  assert.equal(p.body.decided_by, 'op');
  assert.equal(p.body.receipt_id, undefined);
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 0);

  const ev = eventsSince(g, before).find((e) => e.event_type === 'approval_denied');
  assert.ok(ev);
  assert.equal(ev.operator.name, 'op');
  assert.equal(ev.details.approval_id, id);
  assert.equal(ev.details.reason, 'not on a Friday');

  const ap = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
  assert.equal(ap.status, 409);
  assert.equal(ap.body.error, 'approval_not_pending');
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 0);
});

test('an unknown approval: poll and approve are 404 approval_not_found', async (t) => {
  const g = await gateFor(t);
  const a = new Agent(g.agentSocket);
  await a.lease();
  const missing = '00000000-0000-4000-8000-000000000000';
  const p = await poll(a, missing);
  assert.equal(p.status, 404);
  assert.equal(p.body.error, 'approval_not_found');
  const ap = await admin(g, 'POST', `/v1/approvals/${missing}/approve`, {});
  assert.equal(ap.status, 404);
  assert.equal(ap.body.error, 'approval_not_found');
});

test('an expired approval (approvalTtlSeconds: 1) cannot be approved: 403 approval_expired, and an approval_expired event', async (t) => {
  const g = await gateFor(t, { config: { approvalTtlSeconds: 1 } });
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease();
  const held = await a.execute('t_high', { n: 5 });
  assert.equal(held.status, 202, held.text);
  const id = held.body.approval_id;
  const ttl = Date.parse(held.body.expires_at) - Date.now();
  assert.ok(ttl <= 1000 && ttl > 0, `the approval expires in ~1 s (config approvalTtlSeconds), got ${ttl} ms`);
  const before = lastEventId(g);
  await sleep(1200);

  const ap = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
  assert.equal(ap.status, 403, ap.text);
  assert.equal(ap.body.error, 'approval_expired');
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 0, 'nothing ran');

  const expired = eventsSince(g, before).filter((e) => e.event_type === 'approval_expired');
  assert.equal(expired.length, 1, 'the expiry is recorded once');
  assert.equal(expired[0].approval.approval_id, id);

  const p = await poll(a, id);
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.status, 'expired');
});

test('an expired approval is recorded when a poll first notices it', async (t) => {
  const g = await gateFor(t, { config: { approvalTtlSeconds: 1 } });
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease();
  const held = await a.execute('t_high', { n: 6 });
  assert.equal(held.status, 202, held.text);
  const before = lastEventId(g);
  await sleep(1200);
  const p = await poll(a, held.body.approval_id);
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.status, 'expired');
  await poll(a, held.body.approval_id);
  const expired = eventsSince(g, before).filter((e) => e.event_type === 'approval_expired');
  assert.equal(expired.length, 1, 'recorded once, not per poll');
  assert.equal(expired[0].approval.approval_id, held.body.approval_id);
  assert.equal(expired[0].decision, 'deny');
});

test('denying an expired approval: 403 approval_expired, and the expiry is still recorded (once)', async (t) => {
  const g = await gateFor(t, { config: { approvalTtlSeconds: 1 } });
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease();
  const held = await a.execute('t_high', { n: 7 });
  assert.equal(held.status, 202, held.text);
  const before = lastEventId(g);
  await sleep(1200);
  const d = await admin(g, 'POST', `/v1/approvals/${held.body.approval_id}/deny`, { reason: 'late' });
  assert.equal(d.status, 403, d.text);
  assert.equal(d.body.error, 'approval_expired');
  // Whatever notices the expiry first, the ledger must say the approval expired.
  await admin(g, 'GET', '/v1/approvals?status=all');
  const expired = eventsSince(g, before).filter((e) => e.event_type === 'approval_expired');
  assert.equal(expired.length, 1, `approval_expired events: ${expired.length}`);
  assert.equal(expired[0].approval.approval_id, held.body.approval_id);
});

/** A gate, an agent with a 5-call lease (on the agent socket, or on socketOf(g)), and its t_high request held for approval. */
async function heldRequest(t, n, socketOf = (g) => g.agentSocket) {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(await socketOf(g));
  await a.lease({ budgets: { max_calls: 5 } });
  const held = await a.execute('t_high', { n });
  assert.equal(held.status, 202, held.text);
  return { g, a, id: held.body.approval_id };
}

/** Nothing ran for a refused approval: no intent, no grant consumed, no debit, no provider call. */
function assertNothingRan(g, a, callsRemaining) {
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 0, 'no intent');
  assert.equal(g.transport.calls.length, 0, 'the provider did not run');
  assert.equal(g.ctx.budgets.snapshot(a.session_id).calls_remaining, callsRemaining, 'nothing was debited');
}

test('revoke, then approve: the pending approval is marked revoked, the approval refused (409 approval_revoked), recorded, and nothing runs', async (t) => {
  const { g, a, id } = await heldRequest(t, 11);
  const before = lastEventId(g);

  const rv = await admin(g, 'POST', '/v1/admin/revoke-all');
  assert.equal(rv.status, 200, rv.text);
  assert.deepEqual(rv.body.approvals_revoked, [id]);
  assert.equal((await poll(a, id)).status, 401, 'the lease the approval was requested under is revoked');

  const ap = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
  assert.equal(ap.status, 409, ap.text);
  assert.equal(ap.body.error, 'approval_revoked');
  assert.match(ap.body.message, /revoked/);
  assertNothingRan(g, a, 5);

  const evs = eventsSince(g, before);
  assert.deepEqual(evs.filter((e) => e.event_type !== 'request_refused').map((e) => e.event_type), ['admin_revoke_all', 'approval_revoked'], 'no approval_granted, no action_call');
  const act = evs.find((e) => e.event_type === 'admin_revoke_all');
  assert.equal(act.details.approvals_revoked, 1);
  const revoked = evs.find((e) => e.event_type === 'approval_revoked');
  assert.equal(revoked.decision, 'deny');
  assert.equal(revoked.approval.approval_id, id);
  assert.equal(revoked.details.cause, 'lease_revoked');
  assert.equal(revoked.details.epoch, 1);
  assert.equal(revoked.operator.name, 'op');
  assert.equal(revoked.subject.principal, AGENT);
  assert.equal(eventsWithCode(g, before, 'approval_revoked').length, 1, 'the refused approval is recorded');
  assert.equal(verifyLedger(g.db, g.ctx.keys).intact, true);

  // The agent, under a fresh lease, sees it revoked; the operator sees it in the full list.
  await a.lease();
  const p = await poll(a, id);
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.status, 'revoked');
  const list = await admin(g, 'GET', '/v1/approvals?status=all');
  assert.equal(list.body.approvals.find((x) => x.approval_id === id)?.status, 'revoked');
  assert.equal((await admin(g, 'GET', '/v1/approvals')).body.approvals.find((x) => x.approval_id === id), undefined, 'no longer pending');
});

test('a revocation the pending approvals were not marked for (another gate advanced the epoch) still refuses the approval', async (t) => {
  const { g, a, id } = await heldRequest(t, 12);
  advanceEpochOnly(g); // the epoch alone, as a gate from before approvals were revoked with it does
  assert.equal(g.ctx.approvals.get(id).status, 'pending');
  const before = lastEventId(g);

  const ap = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
  assert.equal(ap.status, 409, ap.text);
  assert.equal(ap.body.error, 'approval_revoked');
  assertNothingRan(g, a, 5);
  assert.equal(g.ctx.approvals.get(id).status, 'revoked');
  const evs = eventsSince(g, before);
  assert.equal(evs.filter((e) => e.event_type === 'approval_granted' || e.event_type === 'action_call').length, 0);
  assert.equal(evs.find((e) => e.event_type === 'approval_revoked')?.details.cause, 'lease_revoked');
});

test('a revocation between the approval and its run: the resumed run refuses it (recheckPlan), records it, and nothing runs', async (t) => {
  const { g, a, id } = await heldRequest(t, 13);
  const decide = g.ctx.approvals.decide.bind(g.ctx.approvals);
  t.mock.method(g.ctx.approvals, 'decide', (...args) => {
    const r = decide(...args);
    advanceEpochOnly(g); // another process revokes right after the approval is marked
    return r;
  });
  const before = lastEventId(g);

  const ap = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
  assert.equal(ap.status, 409, ap.text);
  assert.equal(ap.body.error, 'approval_revoked');
  assertNothingRan(g, a, 5);
  const calls = eventsSince(g, before).filter((e) => e.event_type === 'action_call');
  assert.equal(calls.length, 1);
  assert.equal(calls[0].decision, 'deny');
  assert.equal(calls[0].error.code, 'approval_revoked');
  assert.equal(g.ctx.approvals.get(id).status, 'revoked');
  assert.equal(verifyLedger(g.db, g.ctx.keys).intact, true);
});

test('an approval whose lease expired is refused (409 approval_lease_expired), recorded, and nothing runs', async (t) => {
  // Leases expire on whole seconds: a 1 s lease issued late in a second lives a few milliseconds, too
  // short to hold a request with on a loaded machine; 2 s lives at least one.
  const g = await gateFor(t, { config: { leaseTtlSeconds: 2 } });
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease({ budgets: { max_calls: 5 } });
  const held = await a.execute('t_high', { n: 14 });
  assert.equal(held.status, 202, held.text);
  const id = held.body.approval_id;
  await sleep(2100);
  assert.ok(Date.parse(held.body.expires_at) > Date.now(), 'the approval itself has not expired');
  const before = lastEventId(g);

  const ap = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
  assert.equal(ap.status, 409, ap.text);
  assert.equal(ap.body.error, 'approval_lease_expired');
  assert.match(ap.body.message, /expired at/);
  assertNothingRan(g, a, 5);
  assert.equal(g.ctx.approvals.get(id).status, 'revoked');
  const evs = eventsSince(g, before);
  assert.equal(evs.filter((e) => e.event_type === 'approval_granted' || e.event_type === 'action_call').length, 0);
  assert.equal(evs.find((e) => e.event_type === 'approval_revoked')?.details.cause, 'lease_expired');
  assert.equal(eventsWithCode(g, before, 'approval_lease_expired').length, 1);
});

test('after a revoke, a request held under a fresh lease is approved and runs', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease();
  const old = await a.execute('t_high', { n: 15 });
  assert.equal(old.status, 202, old.text);
  assert.equal((await admin(g, 'POST', '/v1/admin/revoke-all')).status, 200);

  await a.lease({ budgets: { max_calls: 5 } });
  const held = await a.execute('t_high', { n: 16 });
  assert.equal(held.status, 202, held.text);
  const ap = await admin(g, 'POST', `/v1/approvals/${held.body.approval_id}/approve`, {});
  assert.equal(ap.status, 200, ap.text);
  assert.equal(ap.body.http_status, 200, JSON.stringify(ap.body));
  assert.equal(g.ctx.budgets.snapshot(a.session_id).calls_remaining, 4);
  assert.equal((await poll(a, held.body.approval_id)).body.status, 'approved');
  assert.equal(g.ctx.approvals.get(old.body.approval_id).status, 'revoked');
});

test('an expiry noticed by the decision itself is durable and recorded once', async (t) => {
  const g = await gateFor(t, { config: { approvalTtlSeconds: 1 } });
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease();
  const held = await a.execute('t_high', { n: 17 });
  assert.equal(held.status, 202, held.text);
  const id = held.body.approval_id;
  await sleep(1200);
  const expire = t.mock.method(g.ctx.approvals, 'expire', () => []); // the sweep misses it: the decision notices
  const before = lastEventId(g);

  const ap = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
  assert.equal(ap.status, 403, ap.text);
  assert.equal(ap.body.error, 'approval_expired');
  assert.equal(g.ctx.approvals.get(id).status, 'expired', 'the expiry is kept');
  const again = await admin(g, 'POST', `/v1/approvals/${id}/deny`, {});
  assert.equal(again.body.error, 'approval_expired');
  expire.mock.restore();
  g.gate.sweepApprovals();
  const expired = eventsSince(g, before).filter((e) => e.event_type === 'approval_expired');
  assert.equal(expired.length, 1, 'recorded once');
  assert.equal(expired[0].approval.approval_id, id);
});

test('the requester cannot approve: the same uid on the client socket, or the same principal on another socket, is refused (403 approver_is_requester), recorded, and nothing runs', async (t) => {
  for (const [how, socketOf] of [['the same uid', (g) => g.socket], ['the same principal', (g) => boxSocket(t, g, 'tester')]]) {
    const { g, a, id } = await heldRequest(t, 21, socketOf);
    const before = lastEventId(g);
    const ap = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
    assert.equal(ap.status, 403, `${how}: ${ap.text}`);
    assert.equal(ap.body.error, 'approver_is_requester');
    assert.match(ap.body.message, how === 'the same uid' ? /the principal tester asked for it|uid \d+ asked for it/ : /the principal tester asked for it/);
    assertNothingRan(g, a, 5);
    assert.equal((await poll(a, id)).body.status, 'pending', `${how}: still pending, for another operator`);
    assert.equal(eventsWithCode(g, before, 'approver_is_requester').length, 1, `${how}: recorded once`);
    assert.equal(eventsSince(g, before).filter((e) => e.event_type === 'approval_granted').length, 0);
    // Denying what one asked for oneself is no escalation.
    assert.equal((await admin(g, 'POST', `/v1/approvals/${id}/deny`, { reason: 'withdrawn' })).status, 200);
  }
});

test('a requester uid that is not also a principal of the approver is caught by uid alone (old principal names do not matter)', async (t) => {
  // The agent socket's principal differs from the operator's, but the row says the request came from the operator's uid.
  const { g, a, id } = await heldRequest(t, 22);
  g.db.prepare("UPDATE approvals SET requester_transport = 'unix', requester_uid = ? WHERE approval_id = ?").run(process.getuid(), id);
  const ap = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
  assert.equal(ap.status, 403, ap.text);
  assert.match(ap.body.message, new RegExp(`uid ${process.getuid()} asked for it on the client socket`));
  assertNothingRan(g, a, 5);
});

/**
 * A request on the admin socket from a process started with `unshare
 * args...` (asynchronously: the gate runs in this process): "status error message".
 */
async function adminFromNamespace(g, args, method = 'GET', urlPath = '/v1/approvals') {
  const probe = `const q = require('http').request({ socketPath: process.argv[1], method: process.argv[2], path: process.argv[3], headers: { 'content-type': 'application/json' } }, (s) => { let t = ''; s.on('data', (d) => (t += d)); s.on('end', () => console.log(s.statusCode + ' ' + (JSON.parse(t).error || 'ok') + ' ' + (JSON.parse(t).message || ''))); }); q.end(process.argv[2] === 'POST' ? '{}' : undefined);`;
  const { stdout } = await promisify(execFile)('unshare', [...args, process.execPath, '-e', probe, g.adminSocket, method, urlPath], { encoding: 'utf8' });
  return stdout.trim();
}

test('a process of the operator\'s uid inside a sandbox (a nested PID or user namespace) is not an operator; on the host it is', async (t) => {
  const { g, a, id } = await heldRequest(t, 23);
  assert.match(await adminFromNamespace(g, []), /^200 ok/, 'the legitimate path: the operator on the host');
  const nested = process.getuid() === 0
    ? [['--pid', '--fork'], ['--user', '--map-root-user'], ['--user', '--map-root-user', '--pid', '--fork', '--mount-proc']]
    : [['--user', '--map-current-user'], ['--user', '--map-current-user', '--pid', '--fork', '--mount-proc']];
  for (const args of nested) {
    const out = await adminFromNamespace(g, args);
    assert.match(out, /^403 operator_required uid \d+ is the operator op, but process \d+ is not acting as the operator: it runs in a (PID|user) namespace/, `unshare ${args.join(' ')}: ${out}`);
  }
  // And so it cannot approve what the box asked.
  assert.match(await adminFromNamespace(g, nested[0], 'POST', `/v1/approvals/${id}/approve`), /^403 operator_required /);
  assertNothingRan(g, a, 5);
  assert.equal((await poll(a, id)).body.status, 'pending');
});
