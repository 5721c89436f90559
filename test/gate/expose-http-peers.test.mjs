// The loopback TCP port (`latchgate up --expose-http`) cannot tell its callers
// apart by connection: every connection comes from 127.0.0.1. A request that
// carries a valid client token moves its connection to that token's own
// connection count and request bucket; connections that proved nothing share
// one pool, whose oldest idle member a new connection pushes out once it is
// full. So a local user without a token, holding unfinished connections or
// flooding requests, cannot lock out the token holders. Also here: the TCP
// port refuses a second Host header and a request target in absolute form,
// and a connection that pipelines requests is closed after its first answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { buildGateApp } from '../../dist/gate/app.js';
import { tcpHosts, tokenIdentity, tokenPeer } from '../../dist/gate/transport.js';
import { operatorCaller, startGate } from '../helpers/gate.mjs';
import { waitFor } from '../helpers/gate-faults.mjs';

const CAP = 20;
// Slow refill so that a flood empties a bucket for the whole test; long header timeouts so held connections stay held.
const LIMITS = { maxConnectionsPerPeer: CAP, requestsPerSecond: 1, requestBurst: 60, headersTimeoutMs: 120_000, requestTimeoutMs: 120_000, idleTimeoutMs: 120_000, keepAliveTimeoutMs: 120_000 };

let g;
let app;
let port;
let token;

before(async () => {
  g = await startGate({ config: LIMITS });
  ({ token } = g.gate.admin.tokensCreate(operatorCaller(), { principal: 'tcp-agent' }));
  const hosts = new Set(); // filled once the port is known
  app = buildGateApp({
    service: g.gate,
    role: 'client',
    identify: tokenIdentity({ hosts, origins: new Set(), tokens: g.ctx.tokens }),
    identifyEveryRequest: true,
    peer: () => 'http',
    prove: tokenPeer(g.ctx.tokens),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = app.server.address().port;
  for (const h of tcpHosts({ host: '127.0.0.1', port })) hosts.add(h);
});

after(async () => {
  await app?.close();
  await g?.close();
});

/** One request on a fresh connection (or the agent given); resolves {status, error}. */
function get(path, { headers = {}, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent, headers: { host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let error;
        try {
          error = JSON.parse(text).error;
        } catch {
          error = undefined;
        }
        resolve({ status: res.statusCode, error });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const withToken = (t = token) => ({ 'latchgate-token': t });

/** Opens n connections that send half a request and never finish it; resolves the sockets once all are connected. */
async function holdHalfSent(n) {
  const sockets = [];
  await Promise.all(
    Array.from({ length: n }, () => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write(`GET /v1/actions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `);
        resolve();
      });
      s.on('error', () => resolve());
      s.closedByServer = false;
      s.on('close', () => (s.closedByServer = true));
      sockets.push(s);
    })),
  );
  return sockets;
}

/** One raw request; resolves the status line's code and the error code of the body. */
function raw(bytes) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let text = '';
    s.on('data', (d) => (text += d));
    s.on('error', () => {});
    s.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]) || undefined;
      const m = /"error":"([a-z_]+)"/.exec(text);
      resolve({ status, error: m?.[1] });
    });
    setTimeout(() => s.end(), 500);
  });
}

test('a token holder is served while a tokenless caller holds three times the connection cap half-sent', async () => {
  const held = await holdHalfSent(3 * CAP);
  try {
    // The pool of unproven connections stays at its cap: the rest were pushed out.
    const open = () => held.filter((s) => !s.closedByServer).length;
    await waitFor(() => open() <= CAP, { timeoutMs: 60_000, what: `at most ${CAP} unproven connections open` }).catch(() => {});
    assert.ok(open() <= CAP, `${open()} unproven connections still open; the pool's cap is ${CAP}`);
    for (let i = 0; i < 10; i++) {
      const r = await get('/v1/actions', { headers: withToken() });
      assert.equal(r.status, 200, `request ${i} of the token holder: ${r.status} ${r.error}`);
    }
  } finally {
    for (const s of held) s.destroy();
  }
});

test("a tokenless request flood drains only the tokenless bucket; the token holder's requests are served", async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  // Every request with a different token that this gate never issued: none proves anything, so all share one bucket.
  const bogus = (i) => ({ 'latchgate-token': `lgt_${i.toString(16).padStart(16, '0')}_${'A'.repeat(43)}` });
  const flood = await Promise.all(Array.from({ length: 200 }, (_, i) => get('/v1/actions', { agent, headers: bogus(i) })));
  agent.destroy();
  const served = flood.filter((r) => r.status !== 429).length;
  // One bucket of 60 (refilling at 1/s while the flood lasts); a bucket per presented token would let all 200 through.
  assert.ok(served < 150, `${served} of 200 tokenless requests got past the rate limit`);
  assert.ok(flood.some((r) => r.status === 429 && r.error === 'rate_limited'));
  for (let i = 0; i < 10; i++) {
    const r = await get('/v1/actions', { headers: withToken() });
    assert.equal(r.status, 200, `request ${i} of the token holder: ${r.status} ${r.error}`);
  }
});

test("connections that proved a token are never pushed out by unproven ones, and a token's own connections are capped", async () => {
  const { token: other } = g.gate.admin.tokensCreate(operatorCaller(), { principal: 'tcp-agent' });
  const agent = new http.Agent({ keepAlive: true, maxSockets: CAP, maxFreeSockets: CAP });
  // CAP requests at once: CAP proven connections of this token.
  const first = await Promise.all(Array.from({ length: CAP }, () => get('/v1/actions', { agent, headers: withToken(other) })));
  assert.deepEqual(first.map((r) => r.status), first.map(() => 200));
  const held = await holdHalfSent(3 * CAP);
  try {
    // The same kept-alive connections serve again: none was pushed out.
    const second = await Promise.all(Array.from({ length: CAP }, () => get('/v1/actions', { agent, headers: withToken(other) })));
    assert.deepEqual(second.map((r) => r.status), second.map(() => 200));
    // One more connection of the same token is over its own cap.
    const over = await get('/v1/actions', { headers: withToken(other) });
    assert.equal(over.status, 429);
    assert.equal(over.error, 'too_many_connections');
  } finally {
    agent.destroy();
    for (const s of held) s.destroy();
  }
});

test('the TCP port refuses a second Host header and a request target in absolute form', async () => {
  const host = `127.0.0.1:${port}`;
  const legit = await raw(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nLatchGate-Token: ${token}\r\nConnection: close\r\n\r\n`);
  assert.equal(legit.status, 200);
  const twice = await raw(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nHost: evil.example\r\nLatchGate-Token: ${token}\r\nConnection: close\r\n\r\n`);
  assert.deepEqual(twice, { status: 400, error: 'duplicate_header' });
  const absolute = await raw(`GET http://evil.example/healthz HTTP/1.1\r\nHost: ${host}\r\nLatchGate-Token: ${token}\r\nConnection: close\r\n\r\n`);
  assert.deepEqual(absolute, { status: 400, error: 'invalid_request' });
});

test('a connection that pipelines requests gets one answer and is closed; the token holder is served meanwhile', async () => {
  const PIPELINED = 300;
  const one = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`;
  const answers = await Promise.all(
    Array.from({ length: 10 }, () => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(one.repeat(PIPELINED)));
      let text = '';
      s.on('data', (d) => (text += d));
      s.on('error', () => {});
      s.on('close', () => resolve(text.split('HTTP/1.1 ').length - 1));
    })),
  );
  for (const n of answers) assert.ok(n <= 2, `a pipelining connection got ${n} answers of ${PIPELINED}`);
  const r = await get('/v1/actions', { headers: withToken() });
  assert.equal(r.status, 200, `${r.status} ${r.error}`);
  // An ordinary kept-alive client, one request after another on one connection, is served throughout.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 5; i++) assert.equal((await get('/v1/actions', { agent, headers: withToken() })).status, 200);
  agent.destroy();
});
