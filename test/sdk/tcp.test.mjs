// The SDK over loopback TCP (a gate served with --expose-http): baseUrl and a
// client token (LATCHGATE_URL, LATCHGATE_TOKEN), the same calls as over the
// socket; no token is refused with the fix; and an Idempotency-Key belongs to
// its token: another token of the same principal gets no answer of it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LatchGateAuthError, LatchGateClient } from 'latchgate';
import { buildGateApp } from '../../dist/gate/app.js';
import { tcpHosts, tokenIdentity, tokenPeer } from '../../dist/gate/transport.js';
import { BASE_URL, grantAll, operatorCaller, startGate } from '../helpers/gate.mjs';

let g;
let app;
let url;
const tokens = [];

before(async () => {
  g = await startGate();
  grantAll(g, 'tcp-agent');
  for (let i = 0; i < 2; i++) tokens.push(g.gate.admin.tokensCreate(operatorCaller(), { principal: 'tcp-agent' }).token);
  const hosts = new Set();
  app = buildGateApp({ service: g.gate, role: 'client', identify: tokenIdentity({ hosts, origins: new Set(), tokens: g.ctx.tokens }), identifyEveryRequest: true, peer: () => 'http', prove: tokenPeer(g.ctx.tokens) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = app.server.address().port;
  for (const h of tcpHosts({ host: '127.0.0.1', port })) hosts.add(h);
  url = `http://127.0.0.1:${port}`;
});

after(async () => {
  await app?.close();
  await g?.close();
});

test('LATCHGATE_URL=http://... with LATCHGATE_TOKEN: execute, receipt, verification, as over the socket', async () => {
  const c = new LatchGateClient({ env: { LATCHGATE_URL: url, LATCHGATE_TOKEN: tokens[0], LATCHGATE_PUBLIC_URL: BASE_URL } });
  assert.deepEqual(c.endpoint, { baseUrl: url, publicBaseUrl: BASE_URL });
  const r = await c.execute('t_ok', { n: 1 });
  assert.equal(r.decision, 'allow');
  assert.equal((await c.verifyReceipt(await c.getReceipt(r.receiptId))).ok, true);
  c.close();
});

test('without a token the TCP gate refuses the caller: LatchGateAuthError naming the fix', async () => {
  const c = new LatchGateClient({ baseUrl: url, publicBaseUrl: BASE_URL, env: {} });
  await assert.rejects(c.execute('t_ok', { n: 1 }), (e) => e instanceof LatchGateAuthError && e.status === 401 && /token/i.test(e.message));
  c.close();
});

test("attack: an Idempotency-Key is its token's: another token of the same principal does not get its answer", async () => {
  const [a, b] = tokens.map((token) => new LatchGateClient({ baseUrl: url, token, publicBaseUrl: BASE_URL, env: {} }));
  const first = await a.execute('t_ok', { n: 42 }, { idempotencyKey: 'tcp-key' });
  const mine = await a.execute('t_ok', { n: 42 }, { idempotencyKey: 'tcp-key' });
  assert.equal(mine.replayed, true);
  assert.equal(mine.receiptId, first.receiptId);
  const theirs = await b.execute('t_ok', { n: 42 }, { idempotencyKey: 'tcp-key' });
  assert.equal(theirs.replayed, false, "another token's caller got the first caller's answer");
  assert.notEqual(theirs.receiptId, first.receiptId);
  a.close();
  b.close();
});
