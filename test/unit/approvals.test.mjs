// Pending approvals (src/gate/approvals.ts) on a real SQLite ledger file:
// the stored plan and its hash, the held event, the operator's decision and
// its refusals, expiry noticed once, single use, the stored answer, the
// client's poll view, and a table from before approvals kept the held event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canonicalHash } from '../../dist/crypto/jcs.js';
import { immediate, openDb } from '../../dist/ledger/db.js';
import { ApprovalError, Approvals, approvalHash, leaseRefusal, pollView } from '../../dist/gate/approvals.js';

const T0 = new Date('2030-01-01T00:00:00.000Z');
const at = (seconds) => new Date(T0.getTime() + seconds * 1000);

function dbFile(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-approvals-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'ledger.sqlite3');
}

function approvalsOn(t, ttl = 60) {
  const db = openDb(dbFile(t));
  t.after(() => db.close());
  const approvals = new Approvals(db, ttl);
  approvals.migrate();
  return { db, approvals };
}

const plan = (n = 1) => ({ core: { action_id: 't_high', request_hash: canonicalHash({ n }) }, session: { principal: 'alice', session_id: 'sess-1' }, request: { n }, cost: 0 });
const held = { subject: { principal: 'alice', session_id: 'sess-1', identity_method: 'unix' }, action: { action_id: 't_high', risk_level: 'high' }, request: { request_hash: canonicalHash({ n: 1 }) }, policy: { policy_version: 'p1', decision: 'pending_approval' } };

function create(approvals, now = T0, n = 1) {
  return approvals.create({ action_id: 't_high', principal: 'alice', session_id: 'sess-1', request_hash: canonicalHash({ n }), plan: plan(n), event: held, requester: { transport: 'unix', uid: 1000 } }, now);
}

const refusedWith = (code) => (e) => e instanceof ApprovalError && e.code === code;

test('create stores the plan with its hash, pending until now + ttl; the held event apart from what get() shows', (t) => {
  const { approvals } = approvalsOn(t, 90);
  assert.equal(approvals.ttlSeconds, 90);
  const a = create(approvals);
  assert.match(a.approval_id, /^[0-9a-f-]{36}$/);
  assert.equal(a.status, 'pending');
  assert.deepEqual(a.plan, plan());
  assert.equal(a.plan_hash, canonicalHash(plan()));
  assert.equal(a.created_at, T0.toISOString());
  assert.equal(a.expires_at, at(90).toISOString());
  for (const k of ['decided_by', 'decided_at', 'reason', 'approval_hash', 'receipt_id', 'result']) assert.equal(a[k], null, k);
  assert.equal('event_json' in a, false, 'the held event is not part of the approval as the API shows it');
  assert.deepEqual(approvals.get(a.approval_id), a);
  assert.deepEqual(approvals.heldEvent(a.approval_id), held);
  assert.equal(approvals.get('00000000-0000-4000-8000-000000000000'), undefined);
  assert.equal(approvals.heldEvent('00000000-0000-4000-8000-000000000000'), null);
});

test('approved: the operator, the time and approval_hash = H({approval_id, plan_hash}); denied: the reason, no approval_hash', (t) => {
  const { approvals } = approvalsOn(t);
  const a = create(approvals);
  const ok = approvals.decide(a.approval_id, 'approved', 'op', undefined, at(10));
  assert.equal(ok.status, 'approved');
  assert.equal(ok.decided_by, 'op');
  assert.equal(ok.decided_at, at(10).toISOString());
  assert.equal(ok.approval_hash, canonicalHash({ approval_id: a.approval_id, plan_hash: a.plan_hash }));
  assert.equal(ok.approval_hash, approvalHash(a.approval_id, a.plan_hash));

  const b = create(approvals);
  const no = approvals.decide(b.approval_id, 'denied', 'op', 'not today', at(10));
  assert.equal(no.status, 'denied');
  assert.equal(no.reason, 'not today');
  assert.equal(no.approval_hash, null);
});

test('decide refuses an unknown approval, one already decided, and one past its expiry, changing nothing', (t) => {
  const { approvals } = approvalsOn(t, 60);
  assert.throws(() => approvals.decide('00000000-0000-4000-8000-000000000000', 'approved', 'op', undefined, T0), refusedWith('approval_not_found'));

  const a = create(approvals);
  approvals.decide(a.approval_id, 'denied', 'op', undefined, at(1));
  assert.throws(() => approvals.decide(a.approval_id, 'approved', 'op', undefined, at(2)), refusedWith('approval_not_pending'));
  assert.equal(approvals.get(a.approval_id).status, 'denied', 'a refused decision changes nothing');

  const late = create(approvals);
  // The decision that notices the expiry keeps it, and hands the approval it marked to its caller (to record it), once.
  assert.throws(() => approvals.decide(late.approval_id, 'approved', 'op', undefined, at(60)), (e) => e.code === 'approval_expired' && e.expired?.approval_id === late.approval_id && e.expired.status === 'expired', 'expiry is inclusive');
  assert.equal(approvals.get(late.approval_id).status, 'expired');
  assert.throws(() => approvals.decide(late.approval_id, 'denied', 'op', undefined, at(61)), (e) => e.code === 'approval_expired' && e.expired === undefined);
  assert.deepEqual(approvals.expire(at(61)), [], 'already marked: not again');
});

test('revoke marks a pending or approved approval once; decide refuses a revoked one', (t) => {
  const { approvals } = approvalsOn(t, 60);
  const a = create(approvals);
  const b = create(approvals);
  approvals.decide(b.approval_id, 'approved', 'op', undefined, at(1));
  assert.equal(approvals.revoke(a.approval_id, 'why', at(2))?.status, 'revoked');
  assert.equal(approvals.revoke(a.approval_id, 'why', at(3)), undefined, 'once');
  assert.equal(approvals.revoke(b.approval_id, 'why', at(3))?.reason, 'why');
  assert.throws(() => approvals.decide(a.approval_id, 'approved', 'op', undefined, at(4)), refusedWith('approval_revoked'));
  assert.deepEqual(approvals.list('revoked').map((x) => x.approval_id).sort(), [a.approval_id, b.approval_id].sort());
});

test('expire marks the pending approvals past their expiry and returns each once', (t) => {
  const { approvals } = approvalsOn(t, 60);
  const old = create(approvals, T0);
  const fresh = create(approvals, at(30));
  const decided = create(approvals, T0);
  approvals.decide(decided.approval_id, 'approved', 'op', undefined, at(1));

  assert.deepEqual(approvals.expire(at(59)), []);
  const expired = approvals.expire(at(60));
  assert.deepEqual(expired.map((a) => a.approval_id), [old.approval_id]);
  assert.equal(expired[0].status, 'expired');
  assert.equal(expired[0].decided_at, at(60).toISOString());
  assert.deepEqual(approvals.expire(at(61)), [], 'an expiry is returned (and so recorded) once');
  assert.equal(approvals.get(fresh.approval_id).status, 'pending');
  assert.equal(approvals.get(decided.approval_id).status, 'approved', 'a decided approval never expires');
});

test('an approved plan is consumed by one execution; a pending or denied one by none', (t) => {
  const { db, approvals } = approvalsOn(t);
  const consume = (id) => immediate(db, () => approvals.consumeInTransaction(id));
  const a = create(approvals);
  assert.equal(consume(a.approval_id), false, 'pending');
  approvals.decide(a.approval_id, 'approved', 'op', undefined, at(1));
  assert.equal(consume(a.approval_id), true);
  assert.equal(consume(a.approval_id), false, 'single use');
  assert.equal(approvals.get(a.approval_id).status, 'consumed');
  assert.throws(() => approvals.decide(a.approval_id, 'denied', 'op', undefined, at(2)), refusedWith('approval_not_pending'));

  const d = create(approvals);
  approvals.decide(d.approval_id, 'denied', 'op', undefined, at(1));
  assert.equal(consume(d.approval_id), false);
});

test('consuming inside a transaction that then fails leaves the approval approved', (t) => {
  const { db, approvals } = approvalsOn(t);
  const a = create(approvals);
  approvals.decide(a.approval_id, 'approved', 'op', undefined, at(1));
  assert.throws(() => immediate(db, () => {
    assert.equal(approvals.consumeInTransaction(a.approval_id), true);
    throw new Error('the intent could not be written');
  }), /intent/);
  assert.equal(approvals.get(a.approval_id).status, 'approved');
});

test('setResult keeps the execution\'s answer (with or without a receipt) for the client\'s poll', (t) => {
  const { approvals } = approvalsOn(t);
  const a = create(approvals);
  approvals.setResult(a.approval_id, 'rcpt-1', 200, { decision: 'allow', receipt_id: 'rcpt-1' });
  const got = approvals.get(a.approval_id);
  assert.equal(got.receipt_id, 'rcpt-1');
  assert.deepEqual(got.result, { status: 200, body: { decision: 'allow', receipt_id: 'rcpt-1' } });
  approvals.setResult(a.approval_id, null, 409, { error: 'approval_mismatch' });
  assert.equal(approvals.get(a.approval_id).receipt_id, null);
  assert.deepEqual(approvals.get(a.approval_id).result, { status: 409, body: { error: 'approval_mismatch' } });
});

test('list: newest first, by status or all, at most limit', (t) => {
  const { approvals } = approvalsOn(t);
  const ids = [0, 1, 2, 3].map((i) => create(approvals, at(i)).approval_id);
  approvals.decide(ids[1], 'denied', 'op', undefined, at(5));
  assert.deepEqual(approvals.list().map((a) => a.approval_id), [ids[3], ids[2], ids[1], ids[0]]);
  assert.deepEqual(approvals.list('pending').map((a) => a.approval_id), [ids[3], ids[2], ids[0]]);
  assert.deepEqual(approvals.list('denied').map((a) => a.approval_id), [ids[1]]);
  assert.deepEqual(approvals.list(undefined, 2).map((a) => a.approval_id), [ids[3], ids[2]]);
  assert.deepEqual(approvals.list('expired'), []);
});

test('pollView: a consumed approval polls as approved; pending ones say when to retry; only what is known is shown', (t) => {
  const { db, approvals } = approvalsOn(t);
  const a = create(approvals);
  assert.deepEqual(pollView(a), { approval_id: a.approval_id, status: 'pending', action_id: 't_high', request_hash: a.request_hash, expires_at: a.expires_at, retry_after_seconds: 2 });
  approvals.decide(a.approval_id, 'approved', 'op', undefined, at(1));
  immediate(db, () => approvals.consumeInTransaction(a.approval_id));
  approvals.setResult(a.approval_id, 'rcpt-9', 200, { ok: true });
  assert.deepEqual(pollView(approvals.get(a.approval_id)), {
    approval_id: a.approval_id, status: 'approved', action_id: 't_high', request_hash: a.request_hash, expires_at: a.expires_at,
    decided_by: 'op', receipt_id: 'rcpt-9', result: { status: 200, body: { ok: true } },
  });
  const d = create(approvals);
  approvals.decide(d.approval_id, 'denied', 'op', 'no', at(1));
  const v = pollView(approvals.get(d.approval_id));
  assert.equal(v.status, 'denied');
  assert.equal(v.reason, 'no');
  assert.equal('retry_after_seconds' in v, false);
  assert.equal('receipt_id' in v, false);
});

test('a table from before approvals kept the held event: migrate adds the column, its rows have none, new rows do', (t) => {
  const db = openDb(dbFile(t));
  t.after(() => db.close());
  db.exec(`CREATE TABLE approvals (
    approval_id TEXT PRIMARY KEY, status TEXT NOT NULL, action_id TEXT NOT NULL,
    principal TEXT NOT NULL, session_id TEXT NOT NULL, request_hash TEXT NOT NULL,
    plan_json TEXT NOT NULL, plan_hash TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
    decided_by TEXT, decided_at TEXT, reason TEXT, approval_hash TEXT, receipt_id TEXT, result_json TEXT)`);
  db.prepare(`INSERT INTO approvals (approval_id, status, action_id, principal, session_id, request_hash, plan_json, plan_hash, created_at, expires_at)
    VALUES ('old-1', 'pending', 't_high', 'alice', 'sess-1', ?, ?, ?, ?, ?)`).run(canonicalHash({ n: 1 }), JSON.stringify(plan()), canonicalHash(plan()), T0.toISOString(), at(60).toISOString());

  const approvals = new Approvals(db, 60);
  approvals.migrate();
  approvals.migrate();
  const old = approvals.get('old-1');
  assert.equal(old.status, 'pending');
  assert.deepEqual(old.plan, plan());
  assert.equal('event_json' in old, false);
  assert.equal(approvals.heldEvent('old-1'), null);
  assert.equal(approvals.decide('old-1', 'approved', 'op', undefined, at(1)).approval_hash, approvalHash('old-1', old.plan_hash));

  const fresh = create(approvals, at(2));
  assert.deepEqual(approvals.heldEvent(fresh.approval_id), held);
});

test("leaseRefusal: an approval runs only while its lease's epoch is current and the lease lives; a plan without them is refused", () => {
  const exp = T0.getTime() / 1000 + 60;
  const withLease = (lease) => ({ ...plan(), session: { ...plan().session, ...lease } });
  assert.equal(leaseRefusal(withLease({ lease_epoch: 2, lease_expires_at: exp }), 2, at(59)), null);
  assert.deepEqual(
    [leaseRefusal(withLease({ lease_epoch: 2, lease_expires_at: exp }), 3, at(1)), leaseRefusal(withLease({ lease_epoch: 2, lease_expires_at: exp }), 2, at(60)), leaseRefusal(plan(), 0, at(1)), leaseRefusal(null, 0, at(1))].map((r) => [r?.code, r?.cause]),
    [['approval_revoked', 'lease_revoked'], ['approval_lease_expired', 'lease_expired'], ['approval_revoked', 'lease_unknown'], ['approval_revoked', 'lease_unknown']],
  );
});

test('an approval keeps who asked; selfApproval refuses that principal and that client-socket uid, and no one else', async (t) => {
  const { selfApproval } = await import('../../dist/gate/admin.js');
  const { approvals } = approvalsOn(t);
  const a = create(approvals);
  assert.deepEqual(approvals.get(a.approval_id).requester, { transport: 'unix', uid: 1000 });
  const op = (over) => ({ principal: 'operator:bob', scopes: [], uid: 2000, operator: 'bob', transport: 'unix', ...over });
  assert.equal(selfApproval(op(), a), null, 'another uid, another principal: may approve');
  assert.match(selfApproval(op({ uid: 1000 }), a), /uid 1000 asked for it on the client socket/);
  assert.match(selfApproval(op({ principal: 'alice' }), a), /the principal alice asked for it/);
  assert.match(selfApproval(op({ operator: 'alice', principal: 'operator:alice' }), a), /the principal alice asked for it/);
  const fromBox = { ...a, requester: { transport: 'box' } };
  assert.equal(selfApproval(op({ uid: 1000 }), fromBox), null, "a box's request: the user who started it approves from the host");
  assert.equal(selfApproval(op({ uid: 1000 }), { ...a, requester: null }), null, 'an approval stored before requesters were: the principal rule alone');
});
