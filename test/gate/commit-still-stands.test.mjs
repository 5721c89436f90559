// What a call was allowed on is checked again where it commits (the budget
// debit, the grant, the intent), not only when the request arrived: the run
// may wait between the two (the policy engine, a provider's first compile,
// the connection opened ahead), and an operator's change that lands
// meanwhile must stop it with nothing done. These tests hold a call in that
// window (its provider's preparation, as a first compile would) and, while
// it waits, revoke every lease (revoke-all; the agent's own call and an
// approved one) or take the action from the principal's policy grant. Beside
// each, the same call held the same way goes through when nothing changed,
// or when called again under a policy that still allows it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LatchGateClient } from '../../dist/sdk/index.js';
import { Agent, BASE_URL, grantAll } from '../helpers/gate.mjs';
import { admin, gateFor } from '../helpers/gate-faults.mjs';
import { fakeTransport } from '../fixtures/providers.mjs';

/** A provider whose every request goes out through the gate's HostIo (the effect the test watches), and whose preparation the test holds. */
function heldProvider() {
  const p = {
    reached: undefined,
    release: undefined,
    hold() {
      let entered;
      p.reached = new Promise((r) => (entered = r));
      const gate = new Promise((r) => (p.release = r));
      p.prepare = async () => {
        p.prepare = undefined;
        entered();
        await gate;
        return undefined;
      };
    },
    async execute(task, io) {
      const r = await io.http({ method: 'GET', url: 'https://upstream.test/effect', headers: {} });
      return { ok: true, output: { status: r.status, echo: task.request } };
    },
  };
  return p;
}

async function heldGate(t) {
  const transport = fakeTransport(200);
  const provider = heldProvider();
  const g = await gateFor(t, { transport, providers: { 'builtin:test_success': provider } });
  grantAll(g);
  return { g, provider, transport };
}

/** A gate, and an agent's call of t_ok (five calls in its lease) waiting in its provider's preparation. */
async function heldCall(t, body) {
  const held = await heldGate(t);
  const a = new Agent(held.g.socket);
  await a.lease({ budgets: { max_calls: 5 } });
  held.provider.hold();
  const pending = a.execute('t_ok', body);
  await held.provider.reached;
  return { ...held, a, pending };
}

const intents = (g) => g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n;

for (const revoke of [true, false]) {
  test(`a call waiting to commit when every lease is revoked: ${revoke ? '401 lease_revoked, nothing sent, nothing debited' : 'not revoked, it runs'}`, async (t) => {
    const { g, provider, transport, a, pending } = await heldCall(t, { n: 1 });
    if (revoke) assert.equal((await admin(g, 'POST', '/v1/admin/revoke-all')).status, 200);
    provider.release();
    const r = await pending;
    if (revoke) {
      assert.equal(r.status, 401, r.text);
      assert.equal(r.body.error, 'lease_revoked');
      assert.match(r.body.message, /revoked \(issued in epoch 0, current epoch 1\).*nothing was done/);
      assert.equal(transport.calls.length, 0, 'the provider reached the outside under a revoked lease');
      assert.equal(intents(g), 0, 'an intent was written under a revoked lease');
      assert.equal(g.ctx.budgets.snapshot(a.session_id).calls_remaining, 5, 'the refused call was debited');
    } else {
      assert.equal(r.status, 200, r.text);
      assert.equal(transport.calls.length, 1);
      assert.equal(g.ctx.budgets.snapshot(a.session_id).calls_remaining, 4);
    }
  });
}

for (const revoke of [true, false]) {
  test(`an approved call waiting to commit when every lease is revoked: ${revoke ? 'approval_revoked, nothing sent' : 'not revoked, it runs'}`, async (t) => {
    const { g, provider, transport } = await heldGate(t);
    const a = new Agent(g.agentSocket);
    await a.lease();
    const held = await a.execute('t_high', { n: 2 });
    assert.equal(held.status, 202, held.text);
    provider.hold();
    // The operator's approval resumes the run; it waits in the provider's preparation.
    const approving = admin(g, 'POST', `/v1/approvals/${held.body.approval_id}/approve`, {});
    await provider.reached;
    if (revoke) assert.equal((await admin(g, 'POST', '/v1/admin/revoke-all')).status, 200);
    provider.release();
    const ap = await approving;
    const poll = await a.signed('GET', `/v1/approvals/${held.body.approval_id}/poll`);
    if (revoke) {
      assert.notEqual(ap.body?.http_status, 200, ap.text);
      assert.equal(transport.calls.length, 0, 'the approved call reached the outside under a revoked lease');
      assert.equal(intents(g), 0);
      assert.match(JSON.stringify(ap.body), /approval_revoked/, ap.text);
      assert.notEqual(poll.body?.http_status, 200, poll.text);
    } else {
      assert.equal(ap.status, 200, ap.text);
      assert.equal(ap.body.http_status, 200, ap.text);
      assert.equal(transport.calls.length, 1);
    }
  });
}

for (const change of ['revoke', 'unrelated']) {
  test(`a call waiting to commit when the policy changes (${change === 'revoke' ? 'the action taken from the principal: 409 policy_changed, nothing sent; called again, 403' : 'another principal granted: 409 policy_changed; called again, it runs'})`, async (t) => {
    const { g, provider, transport, a, pending } = await heldCall(t, { n: 4 });
    const body = change === 'revoke' ? { principal: 'tester', actions: ['t_ok'] } : { principal: 'someone-else', actions: ['t_ok'] };
    const changed = await admin(g, 'POST', `/v1/admin/policy/${change === 'revoke' ? 'revoke' : 'grant'}`, body);
    assert.equal(changed.status, 200, changed.text);
    provider.release();
    const r = await pending;
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.error, 'policy_changed');
    assert.match(r.body.message, /nothing was done: call again/);
    assert.equal(transport.calls.length, 0, 'the call ran on a policy decision the operator had changed');
    assert.equal(intents(g), 0);
    assert.equal(g.ctx.budgets.snapshot(a.session_id).calls_remaining, 5, 'the refused call was debited');
    const again = await a.execute('t_ok', { n: 4 });
    if (change === 'revoke') {
      assert.equal(again.status, 403, again.text);
      assert.equal(again.body.error, 'policy_denied');
      assert.equal(transport.calls.length, 0);
    } else {
      assert.equal(again.status, 200, again.text);
      assert.equal(transport.calls.length, 1);
    }
  });
}

test('the SDK sends a call refused with policy_changed once more (nothing was done), and it runs once', async (t) => {
  const { g, provider, transport } = await heldGate(t);
  const c = new LatchGateClient({ socket: g.socket, publicBaseUrl: BASE_URL });
  provider.hold();
  const pending = c.execute('t_ok', { n: 5 });
  await provider.reached;
  const changed = await admin(g, 'POST', '/v1/admin/policy/grant', { principal: 'someone-else', actions: ['t_ok'] });
  assert.equal(changed.status, 200, changed.text);
  provider.release();
  const r = await pending;
  assert.deepEqual(r.output, { status: 200, echo: { n: 5 } });
  assert.equal(transport.calls.length, 1, 'the call ran exactly once');
  assert.equal(intents(g), 1);
});
