// Slow clients on the gate's client socket: one uid keeps 600 connections
// coming that send their headers a byte at a time (and reopens each one the
// gate closes). With the timeouts shortened for the test, the gate closes the
// drip-fed ones (408 request_timeout) and refuses the ones over the per-uid
// connection cap at once (429 too_many_connections); another uid (a system
// user) takes a lease and executes an action during the flood; every
// refusal is in the ledger, counted per peer; the chain verifies. Then the
// other slow shapes: a silent connection, a drip-fed body, and an execution
// slower than every timeout, which must not be cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { KeyStore } from '../../dist/keys/store.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { BoxGate } from '../../dist/sandbox/box-gate.js';
import { Agent, gateConfig, grantAll, request, startGate, TEST_PROVIDERS } from '../helpers/gate.mjs';
import { lastEventId, sleep, tempDir, waitFor } from '../helpers/gate-faults.mjs';
import { NEEDS_ROOT, openSocketDir, runAs, systemUser } from '../helpers/other-uid.mjs';

const FLOOD = 600;
const CAP = 100;
const LIMITS = { headersTimeoutMs: 1000, requestTimeoutMs: 2000, maxConnectionsPerPeer: CAP };
const counted = (events) => events.reduce((n, e) => n + (e.details?.coalesced?.count ?? 1), 0);

/**
 * A slow client: connects, then sends `bytes` one byte every `everyMs` and
 * never finishes. Resolves {status, error, byServer} when the connection ends.
 */
function dripper(socket, bytes, everyMs, { stop }) {
  return new Promise((resolve) => {
    const s = net.connect(socket);
    let text = '';
    let i = 0;
    let timer;
    const drip = () => {
      if (stop.now) return s.destroy();
      if (i < bytes.length && s.writable) s.write(bytes[i++]);
      timer = setTimeout(drip, everyMs);
    };
    s.on('connect', drip);
    s.on('data', (d) => (text += d));
    let failed;
    s.on('error', (e) => (failed = e.code));
    s.on('close', () => {
      clearTimeout(timer);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]) || undefined;
      let error;
      try {
        error = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)).error;
      } catch {
        error = undefined;
      }
      resolve({ status, error, failed, connected: i > 0, byServer: !stop.now || status !== undefined });
    });
  });
}

const SLOW_HEADERS = `POST /v1/actions/t_ok/execute HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(4000)}`;

test('slowloris from one uid: drip-fed connections closed, over-cap ones refused at once, another uid served during the flood', { skip: NEEDS_ROOT }, async (t) => {
  const alice = systemUser('lgalice');
  const g = await startGate({ config: { ...LIMITS, principals: new Map([[0, { name: 'tester', scopes: ['tools:call'] }], [alice.uid, { name: 'alice', scopes: ['tools:call'] }]]) } });
  let closed = false;
  t.after(() => (closed ? rmSync(g.stateDir, { recursive: true, force: true }) : g.close()));
  grantAll(g, 'alice');
  openSocketDir(g.socket);
  const start = lastEventId(g);

  // The flood: FLOOD connections at a time, each reopened shortly after the gate closes it, until
  // stopped (a slow client keeps its count up; reconnecting in a tight loop would be a connect flood,
  // which fills the socket's accept queue for every uid alike: no per-uid limit can stand before accept).
  const stop = { now: false };
  t.after(() => (stop.now = true)); // also when an assertion fails before the flood is stopped
  const ends = [];
  let maxOpen = 0;
  const lane = async () => {
    while (!stop.now) {
      ends.push(await dripper(g.socket, SLOW_HEADERS, 100, { stop }));
      await sleep(250);
    }
  };
  const lanes = Array.from({ length: FLOOD }, lane);
  const openNow = () => g.gate.guard?.connections.of('uid:0') ?? Infinity;
  // The most flood connections open at once while the other uid is served (sampled, not one instant: drip-fed ones time out together).
  let during = false;
  let openDuring = 0;
  const watch = setInterval(() => {
    const n = openNow();
    maxOpen = Math.max(maxOpen, n);
    if (during) openDuring = Math.max(openDuring, n);
  }, 20);
  t.after(() => clearInterval(watch));

  // Let the flood fill the cap and the first drip-fed ones time out, then the other uid calls.
  await waitFor(() => ends.some((e) => e.status === 408) && ends.filter((e) => e.status === 429).length >= FLOOD - CAP, { timeoutMs: 20000, what: 'the gate to close drip-fed connections and refuse the ones over the cap' });
  const endsBefore = ends.length;
  during = true;
  const served = await runAs(alice, 'agent-once.mjs', [g.socket, 't_ok']);
  during = false;
  const endedDuring = ends.length - endsBefore;
  stop.now = true;
  await Promise.all(lanes);
  clearInterval(watch);

  assert.equal(served.lease, 201, `another uid takes a lease during the flood: ${JSON.stringify(served)}`);
  assert.equal(served.status, 200, `and executes: ${JSON.stringify(served)}`);
  assert.ok(openDuring > CAP / 2 && endedDuring > 0, `the flood held up to ${openDuring} connections while the other uid was served, and ${endedDuring} ended while it was served`);
  assert.ok(maxOpen <= CAP, `at most ${CAP} connections of the flooding uid open at once (saw ${maxOpen})`);

  const refused = ends.filter((e) => e.status === 429);
  const timedOut = ends.filter((e) => e.status === 408);
  assert.ok(refused.length >= FLOOD - CAP && refused.every((e) => e.error === 'too_many_connections'), `${refused.length} over-cap connections refused`);
  assert.ok(timedOut.length >= 1 && timedOut.every((e) => e.error === 'request_timeout'), `${timedOut.length} drip-fed connections closed`);
  // A burst of connects past the socket's accept queue is refused by the kernel (EAGAIN) before the gate
  // sees it; a client that drips its next byte as the gate closes fails that write (EPIPE, ECONNRESET)
  // before it reads the answer.
  const kernel = ends.filter((e) => e.failed === 'EAGAIN' && !e.connected);
  const raced = ends.filter((e) => e.status === undefined && e.connected && ['EPIPE', 'ECONNRESET'].includes(e.failed));
  const other = ends.filter((e) => e.status !== 408 && e.status !== 429 && !kernel.includes(e) && !raced.includes(e));
  assert.ok(other.every((e) => !e.byServer), `every connection the test did not stop itself was answered 408 or 429: ${JSON.stringify(other.filter((e) => e.byServer).slice(0, 3))} of ${other.filter((e) => e.byServer).length}`);

  await g.close({ keepState: true }); // writes what is still counted
  closed = true;
  const ledger = Ledger.open(path.join(g.stateDir, 'ledger.sqlite3'));
  t.after(() => ledger.db.close());
  const events = ledger.db.prepare('SELECT event_json FROM audit_events WHERE id > ? ORDER BY id').all(start).map((r) => JSON.parse(r.event_json));
  t.diagnostic(`${events.length} events for ${refused.length} refused and ${timedOut.length} timed-out connections (${kernel.length} connects refused by the kernel, accept queue full; ${raced.length} closed as they wrote)`);
  const mine = (code) => events.filter((e) => e.details?.peer === 'uid:0' && e.error?.code === code);
  // Every refusal seen is in the ledger; the ledger holds no more than the connections the gate accepted.
  const overCap = counted(mine('too_many_connections'));
  const late = counted(mine('request_timeout'));
  assert.ok(overCap >= refused.length, `${overCap} over-cap refusals recorded, ${refused.length} seen`);
  assert.ok(late >= timedOut.length, `${late} timed-out connections recorded, ${timedOut.length} seen`);
  assert.ok(overCap + late <= ends.length - kernel.length, `${overCap} + ${late} refusals recorded for ${ends.length - kernel.length} connections`);
  assert.ok(events.length < 60, `${events.length} events`);
  assert.ok(events.some((e) => e.event_type === 'action_call' && e.decision === 'allow' && e.subject?.principal === 'alice'), "the other uid's execution in full");
  const r = verifyLedger(ledger.db, new KeyStore(path.join(g.stateDir, 'keys')));
  assert.equal(r.first_bad, null, JSON.stringify(r.first_bad));
});

test('a silent connection and a drip-fed body are closed with 408; a fast request on the same gate is served', async (t) => {
  const g = await startGate({ config: LIMITS });
  t.after(() => g.close());
  const stop = { now: false };
  t.after(() => (stop.now = true));
  const silent = dripper(g.socket, '', 100, { stop });
  const body = `POST /v1/leases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n${'{"scopes":'.padEnd(4096, ' ')}`;
  // The headers arrive at once, then the body a byte at a time.
  const slowBody = new Promise((resolve) => {
    const s = net.connect(g.socket);
    let text = '';
    let i = body.indexOf('\r\n\r\n') + 4;
    let timer;
    s.on('connect', () => {
      s.write(body.slice(0, i));
      const drip = () => {
        if (stop.now) return s.destroy();
        if (s.writable) s.write(body[i++]);
        timer = setTimeout(drip, 100);
      };
      drip();
    });
    s.on('data', (d) => (text += d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
  const ok = await request(g.socket, 'GET', '/v1/actions');
  assert.equal(ok.status, 200, ok.text);
  const [quiet, dripped] = await Promise.all([
    Promise.race([silent, sleep(20000).then(() => ({ status: 'still open after 20 s' }))]),
    Promise.race([slowBody, sleep(20000).then(() => 'still open after 20 s')]),
  ]);
  assert.equal(quiet.status, 408, 'a connection that sends nothing is closed');
  assert.equal(quiet.error, 'request_timeout');
  assert.match(dripped, /^HTTP\/1\.1 408 /, 'a body sent a byte at a time is cut');
  assert.match(dripped, /"error":"request_timeout"/);
});

test('an execution slower than every timeout is not cut: the timeouts cover receiving the request, not the answer', async (t) => {
  const slow = {
    async execute(task) {
      await sleep(3000);
      return { ok: true, output: { done: true, echo: task.request }, provider_receipt: { claimed: 'slow' } };
    },
  };
  const g = await startGate({ config: { headersTimeoutMs: 300, requestTimeoutMs: 500, keepAliveTimeoutMs: 300, idleTimeoutMs: 500 }, providers: { ...TEST_PROVIDERS, 'builtin:test_success': slow } });
  t.after(() => g.close());
  grantAll(g);
  const agent = new Agent(g.socket);
  await agent.lease();
  const r = await agent.execute('t_ok', { n: 1 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.output?.echo?.n, 1, r.text);
  // And the connection may be used again after a pause shorter than the keep-alive timeout... or a new one is made: both are served.
  const again = await agent.execute('t_ok', { n: 2 });
  assert.equal(again.status, 200, again.text);
});

test("the box's socket (connections handed over by the launcher's own server): capped per box and timed like the others", async (t) => {
  const box = new BoxGate({ stateDir: tempDir(t), gate: gateConfig({ ...LIMITS, maxConnectionsPerPeer: 3 }), config: {}, configFiles: [], trustedPaths: [], runtimeDir: tempDir(t) }, 'box-agent', { uid: process.getuid(), gid: process.getgid() });
  await box.listen();
  t.after(() => box.close());
  const stop = { now: false };
  t.after(() => (stop.now = true));
  const ends = await Promise.race([
    Promise.all(Array.from({ length: 6 }, () => dripper(box.socketPath, '', 100, { stop }))),
    sleep(20000).then(() => 'still open after 20 s'),
  ]);
  assert.notEqual(ends, 'still open after 20 s', 'silent connections to the box socket are closed');
  const by = (status) => ends.filter((e) => e.status === status).length;
  assert.equal(by(429), 3, `over the cap of 3: refused at once (${JSON.stringify(ends)})`);
  assert.equal(by(408), 3, 'within the cap: closed when their headers do not come');
  // Their places free as the gate sees them close: the box is served again.
  const ok = await waitFor(async () => {
    const r = await request(box.socketPath, 'GET', '/v1/actions').catch(() => undefined);
    return r?.status === 200 && r;
  }, { timeoutMs: 10000, what: 'the box to be served again' });
  assert.ok(Array.isArray(ok.body.actions), ok.text);
});
