// A kept-alive connection the gate closed while the agent's event loop was
// held up (a synchronous wait longer than the gate's keep_alive_timeout_ms):
// the next call must not fail as gate_unreachable (EPIPE, ECONNRESET), and
// must not run twice. The agent is a child process (the gate runs in this
// one, so that it can close the connection while the agent is blocked).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { BASE_URL, grantAll, startGate } from '../helpers/gate.mjs';

const SDK = new URL('../../dist/sdk/index.js', import.meta.url).href;
let g;
before(async () => {
  g = await startGate({ config: { keepAliveTimeoutMs: 2000 } });
  grantAll(g);
});
after(async () => g?.close());

/** Runs the agent: two calls, between them a wait of blockMs that holds its event loop. Resolves what it printed. */
function agent(blockMs) {
  const code = `
import http from 'node:http';
import { LatchGateClient } from ${JSON.stringify(SDK)};
let connections = 0;
const open = http.Agent.prototype.createConnection;
http.Agent.prototype.createConnection = function (...a) { connections++; return open.apply(this, a); };
const c = new LatchGateClient({ socket: process.argv[1], publicBaseUrl: ${JSON.stringify(BASE_URL)} });
const out = { receipts: [] };
out.receipts.push((await c.execute('t_ok', { n: 1 })).receiptId);
out.before = connections;

Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${blockMs});
try {
  out.receipts.push((await c.execute('t_ok', { n: 2 })).receiptId);
} catch (e) {
  out.error = e.code + ': ' + e.message;
}
out.after = connections;
c.close();
process.stdout.write(JSON.stringify(out));
`;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', code, g.socket], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (status) => (status === 0 ? resolve(JSON.parse(stdout)) : reject(new Error(`agent exited ${status}: ${stderr}`))));
  });
}

/** The action_call events recorded for t_ok so far. */
const calls = () => g.ctx.db.prepare("SELECT count(*) AS n FROM audit_events WHERE event_type = 'action_call' AND action_id = 't_ok'").get().n;
const receipt = (id) => g.ctx.db.prepare('SELECT receipt_id FROM receipts WHERE receipt_id = ?').get(id);

test('a call after the gate closed the idle kept-alive connection (the agent blocked meanwhile) goes through once, on a new connection', { timeout: 60_000 }, async () => {
  const before = calls();
  const r = await agent(3500);
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.receipts.length, 2);
  assert.notEqual(r.receipts[0], r.receipts[1]);
  assert.equal(r.after, r.before + 1, 'the second call opened one new connection: it found the kept one closed');
  assert.equal(calls() - before, 2, 'two calls recorded: the second ran once');
  for (const id of r.receipts) assert.ok(receipt(id), id);
});

test('calls in a row, no wait between: both go through, each recorded once', { timeout: 60_000 }, async () => {
  const before = calls();
  const r = await agent(0);
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.receipts.length, 2);
  assert.equal(calls() - before, 2);
});
