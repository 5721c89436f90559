// Grants are signed, re-validated before dispatch, and
// one-shot (the intent is written and the grant consumed in one
// transaction). Driven through the real stages of a real gate's context.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { canonicalHash } from '../../dist/crypto/jcs.js';
import { decidePolicy } from '../../dist/gate/stages/decide-policy.js';
import { dispatch } from '../../dist/gate/stages/dispatch.js';
import { openCallHosts } from '../../dist/gate/stages/open-call-hosts.js';
import { planExecution } from '../../dist/gate/stages/plan-execution.js';
import { precheckTargets } from '../../dist/gate/stages/precheck-targets.js';
import { startProvider } from '../../dist/gate/stages/start-provider.js';
import { recordIntent } from '../../dist/gate/stages/record-intent.js';
import { reserveAndSignGrant } from '../../dist/gate/stages/reserve-and-sign-grant.js';
import { resolveAction } from '../../dist/gate/stages/resolve-action.js';
import { validateRequest } from '../../dist/gate/stages/validate-request.js';
import { verifyAndReceipt } from '../../dist/gate/stages/verify-and-receipt.js';
import { Agent, advanceEpochOnly, grantAll } from '../helpers/gate.mjs';
import { eventsWithCode, gateFor, lastEventId } from '../helpers/gate-faults.mjs';

function intent(over = {}) {
  return {
    grant_id: randomUUID(),
    trace_id: randomUUID(),
    action_id: 't_ok',
    principal: 'tester',
    provider_module_digest: 'builtin:test_success',
    request_hash: canonicalHash({ n: 1 }),
    started_at: new Date().toISOString(),
    ...over,
  };
}

const count = (g, table) => g.db.prepare(`SELECT count(*) AS n FROM ${table}`).get().n;

test('ledger.consumeGrantAndWriteIntent: the second call with the same grant id is false and writes nothing', async (t) => {
  const g = await gateFor(t);
  const i = intent();
  assert.equal(g.ctx.ledger.consumeGrantAndWriteIntent(i), true);
  assert.equal(g.ctx.ledger.consumeGrantAndWriteIntent({ ...i, trace_id: randomUUID(), request_hash: canonicalHash({ n: 2 }) }), false);
  assert.equal(count(g, 'consumed_grants'), 1);
  assert.equal(count(g, 'execution_intents'), 1);
  assert.equal(g.db.prepare('SELECT trace_id FROM execution_intents').get().trace_id, i.trace_id, 'the first intent is untouched');
  assert.equal(g.ctx.ledger.isGrantConsumed(i.grant_id), true);
});

/** An execution of t_ok {n} with a real plan and signed grant, built by the gate's own stages. */
async function grantFor(g, n, sessionId = randomUUID()) {
  // A lease of the current epoch, living an hour: reserveAndSignGrant refuses one that no longer stands.
  const session = { principal: 'tester', session_id: sessionId, lease_jti: randomUUID(), scopes: ['tools:call'], jkt: 'A'.repeat(43), lease_epoch: g.ctx.state.epoch, lease_expires_at: Math.floor(Date.now() / 1000) + 3600 };
  const x = { traceId: randomUUID(), actionId: 't_ok', request: { n }, session, event: { event_type: 'action_call', subject: { principal: 'tester' } }, onEnd: [] };
  for (const stage of [resolveAction, validateRequest, precheckTargets, decidePolicy, planExecution, openCallHosts, startProvider, reserveAndSignGrant]) await stage(g.ctx, x);
  assert.equal(x.decided.decision.allow, true, JSON.stringify(x.decided.decision));
  return x;
}

test('a grant runs once: committing the same (finished) grant again is 409 grant_consumed', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const x = await grantFor(g, 11);
  assert.match(x.grant.grant_signature, /^[0-9a-f]+$/);
  recordIntent(g.ctx, x);
  await dispatch(g.ctx, x);
  await verifyAndReceipt(g.ctx, x);
  assert.equal(x.reply.status, 200);

  assert.throws(() => recordIntent(g.ctx, { ...x, traceId: randomUUID() }), (e) => e.code === 'grant_consumed' && e.status === 409);
  assert.equal(count(g, 'execution_intents'), 1);
});

test('a grant whose first run has no receipt yet: a second commit is refused (409) and writes nothing', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const x = await grantFor(g, 12);
  recordIntent(g.ctx, x);
  assert.throws(() => recordIntent(g.ctx, { ...x, traceId: randomUUID() }), (e) => e.status === 409 && ['grant_consumed', 'previous_outcome_unknown'].includes(e.code));
  assert.equal(count(g, 'execution_intents'), 1);
});

test('an edited grant (signature no longer covers it) is refused before any intent', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const x = await grantFor(g, 13);
  const forged = { ...x.grant, core: { ...x.grant.core, request_hash: canonicalHash({ n: 99 }) } };
  assert.throws(() => recordIntent(g.ctx, { ...x, grant: forged }), (e) => e.status >= 400);
  const unsigned = { ...x.grant, grant_signature: undefined };
  assert.throws(() => recordIntent(g.ctx, { ...x, grant: unsigned }), (e) => e.status >= 400);
  assert.equal(count(g, 'execution_intents'), 0);
  assert.equal(count(g, 'consumed_grants'), 0);
});

test('a grant issued before revoke-all is refused at commit (lease_revoked)', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const x = await grantFor(g, 14);
  advanceEpochOnly(g);
  assert.throws(() => recordIntent(g.ctx, x), (e) => e.code === 'lease_revoked');
  assert.equal(count(g, 'execution_intents'), 0);
});

test('an approval is consumed by one execution only', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  const held = await a.execute('t_high', { n: 1 });
  assert.equal(held.status, 202, held.text);
  g.ctx.approvals.decide(held.body.approval_id, 'approved', 'op');
  const consume = () => g.db.transaction(() => g.ctx.approvals.consumeInTransaction(held.body.approval_id)).immediate();
  assert.equal(consume(), true);
  assert.equal(consume(), false);
  assert.equal(g.ctx.approvals.get(held.body.approval_id).status, 'consumed');
});

test('a request refused at commit (409 previous_outcome_unknown) does not use up the session budget', async (t) => {
  // An orphan intent (a run with an unknown outcome) of t_ok {n: 9} for this principal.
  const g = await gateFor(t);
  grantAll(g);
  assert.equal(g.ctx.ledger.consumeGrantAndWriteIntent(intent({ request_hash: canonicalHash({ n: 9 }) })), true);
  const a = new Agent(g.socket);
  await a.lease({ budgets: { max_calls: 1 } });
  const before = lastEventId(g);
  const r = await a.execute('t_ok', { n: 9 });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.body.error, 'previous_outcome_unknown');
  assert.equal(eventsWithCode(g, before, 'previous_outcome_unknown').length, 1);
  // Nothing was dispatched, so the one call the session has is still there.
  assert.equal(g.ctx.budgets.snapshot(a.session_id).calls_remaining, 1, 'the refused request was debited and never refunded');
  const ok = await a.execute('t_ok', { n: 10 });
  assert.equal(ok.status, 200, ok.text);
});
