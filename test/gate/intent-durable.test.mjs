// The intent is on disk before anything leaves the gate, and the receipt
// before the client hears of the outcome. Its sync runs while
// the provider is instantiated and starts, so these tests hold the sync (or
// fail it) and watch the outside: no HTTP request reaches the upstream and no
// file is written until the sync has landed, and a failed sync fails the call
// with nothing done. Beside them, the same calls go through once it lands.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, grantAll, startGate } from '../helpers/gate.mjs';
import { eventsSince, holdNextSync, lastEventId } from '../helpers/gate-faults.mjs';
import { NO_OPENSSL, tlsUpstream } from '../helpers/tls-upstream.mjs';
import { readFileSync } from 'node:fs';
import { FsHost } from '../../dist/providers/host-fs.js';
import { createHttpHost } from '../../dist/providers/host-http.js';
import { EnvSecretSource } from '../../dist/providers/secret-source.js';
import { parsePin } from '../../dist/egress/ssrf.js';
import { HostIo } from '../../dist/gate/providers.js';

const skip = NO_OPENSSL;
let dir;
let root;
let up;
let g;

before(async () => {
  if (skip) return;
  up = await tlsUpstream(['api.github.com'], () => false);
  dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-durable-'));
  root = path.join(dir, 'workspace');
  mkdirSync(path.join(root, 'src'), { recursive: true });
  g = await startGate({
    stateDir: path.join(dir, 'state'),
    config: { resolve: up.pins(), extraCaCerts: [up.caFile], providers: { fs: { root, principals: new Map(), actions: new Map() } } },
  });
  grantAll(g);
  // Each provider compiled and its worker warm, so a held call reaches its I/O at once.
  const a = await agent();
  for (const [action, body] of [
    ['http_fetch', { url: 'https://api.github.com/warm' }],
    ['fs_write', { path: 'src/warm.txt', content_base64: '', mode: 'create' }],
  ]) {
    const r = await a.execute(action, body);
    assert.equal(r.status, 200, r.text);
  }
});

after(async () => {
  if (skip) return;
  await g?.close();
  up?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function agent() {
  const a = new Agent(g.socket);
  await a.lease();
  return a;
}

const call = {
  http: { action: 'http_fetch', body: { url: 'https://api.github.com/durable' }, happened: () => up.seen.some((s) => s.url === '/durable') },
  fs: { action: 'fs_write', body: { path: 'src/durable.txt', content_base64: Buffer.from('x').toString('base64'), mode: 'create' }, happened: () => existsSync(path.join(root, 'src', 'durable.txt')) },
};

for (const [kind, c] of Object.entries(call)) {
  test(`${kind}: nothing happens while the intent's sync is pending; the call completes once it lands`, { skip }, async () => {
    const a = await agent();
    const hold = holdNextSync(g);
    try {
      const pending = a.execute(c.action, c.body);
      const connections = up.connections;
      await hold.reached;
      // Long enough for the provider to be instantiated and reach its I/O call many times over.
      await sleep(400);
      assert.equal(c.happened(), false, 'the effect happened before the intent was on disk');
      // The template's target is connected to meanwhile (no request on it yet), and that connection is the one used.
      if (kind === 'http') assert.equal(up.connections, connections + 1, 'the connection was not opened ahead');
      hold.release();
      const r = await pending;
      assert.equal(r.status, 200, r.text);
      assert.equal(c.happened(), true);
      if (kind === 'http') assert.equal(up.connections, connections + 1, 'the request did not use the connection opened ahead');
    } finally {
      hold.restore();
    }
  });
}

test('a failed intent sync fails the call with 503 store_unavailable and nothing done: no request, no file', { skip }, async () => {
  const a = await agent();
  const before = up.seen.length;
  for (const c of [
    { action: 'http_fetch', body: { url: 'https://api.github.com/never' }, happened: () => up.seen.length > before },
    { action: 'fs_write', body: { path: 'src/never.txt', content_base64: Buffer.from('x').toString('base64'), mode: 'create' }, happened: () => existsSync(path.join(root, 'src', 'never.txt')) },
  ]) {
    const hold = holdNextSync(g);
    try {
      const pending = a.execute(c.action, c.body);
      await hold.reached;
      hold.fail(new Error('EIO: simulated'));
      const r = await pending;
      assert.equal(r.status, 503, r.text);
      assert.equal(r.body.error, 'store_unavailable');
      assert.match(r.body.message, /EIO: simulated.*nothing was dispatched/);
      assert.equal(c.happened(), false);
    } finally {
      hold.restore();
    }
  }
});

test('an I/O call held for the intent is not done once its call has ended (timed out while the sync was pending)', { skip }, async () => {
  const a = await agent();
  const target = path.join(root, 'src', 'late.txt');
  const hold = holdNextSync(g);
  // Every write the file host is asked to do, to wait for them.
  const writes = [];
  const write = FsHost.prototype.write;
  FsHost.prototype.write = function (...args) {
    const p = write.apply(this, args);
    writes.push(p);
    return p;
  };
  // What the provider's call returned: it ends (at its timeout) while the sync is still held.
  const provider = g.ctx.providers.get('builtin:fs');
  const execute = provider.execute;
  let ended;
  provider.execute = function (...args) {
    provider.execute = execute;
    ended = execute.apply(this, args);
    return ended;
  };
  try {
    const pending = a.execute('fs_write', { path: 'src/late.txt', content_base64: Buffer.from('late').toString('base64'), mode: 'create' });
    await hold.reached;
    await waitUntil(() => ended !== undefined);
    // The runtime stops the provider at its timeout (fs_write: 10 s) while its write waits for the sync.
    const out = await ended;
    assert.equal(out.failure_class, 'timeout', JSON.stringify(out));
    hold.release();
    const r = await pending;
    assert.notEqual(r.status, 200, r.text);
    await Promise.allSettled(writes);
    assert.equal(writes.length, 0, 'the file host was asked to write after its call had ended');
    assert.equal(existsSync(target), false, 'the write was done after its call had ended');
  } finally {
    hold.restore();
    provider.execute = execute;
    FsHost.prototype.write = write;
  }
  // The same write in a call of its own goes through.
  const r = await a.execute('fs_write', { path: 'src/late.txt', content_base64: Buffer.from('late').toString('base64'), mode: 'create' });
  assert.equal(r.status, 200, r.text);
  assert.equal(existsSync(target), true);
});

/** HostIo as dispatch makes it, over a real HTTP host for the upstream, with the intent's sync in the test's hands. */
function heldHostIo(secrets = new EnvSecretSource({}), template) {
  const http = createHttpHost({
    allowed_domains: ['api.github.com'],
    allowed_methods: ['GET'],
    pins: new Map([['api.github.com', parsePin(`127.0.0.1:${up.port}`)]]),
    ca: [readFileSync(up.caFile, 'utf8')],
    timeout_ms: 30_000,
    max_response_bytes: 65536,
    max_request_bytes: 4096,
    secrets,
    declared_secrets: template ? ['TOKEN'] : [],
    ...(template ? { secret_template: template } : {}),
  });
  let land;
  const durable = new Promise((r) => (land = r));
  const io = new HostIo(undefined, 8, new AbortController().signal, { http, logs: [], log: () => undefined }, durable);
  return { io, http, land: () => land() };
}

/** A secret source whose reads are counted and take `ms` each. */
function slowSecrets(ms) {
  const env = new EnvSecretSource({ LATCHGATE_SECRET_TOKEN: 'tok-held-0123456789' });
  const s = { reads: 0, get: async (n) => (s.reads++, await sleep(ms), env.get(n)), redactionValues: () => env.redactionValues() };
  return s;
}

test('a call that ended gets nothing done for a later I/O call, not even its secrets read; one that ends while its request is checked sends nothing', { skip }, async () => {
  const req = { method: 'GET', url: 'https://api.github.com/held-secret', headers: [['Authorization', 'Bearer {{secret:TOKEN}}']] };
  const template = { method: 'GET', url: req.url, headers: { Authorization: 'Bearer {{secret:TOKEN}}' } };
  const sent = () => up.seen.filter((s) => s.url === '/held-secret').length;

  const refused = slowSecrets(0);
  const over = heldHostIo(refused, template);
  over.io.end();
  over.land();
  await assert.rejects(over.io.hosts().http(req), (e) => e.code === 'call_ended');
  assert.equal(refused.reads, 0, 'a secret was read for a call that had ended');

  // The intent landed; the call ends (its timeout, say) while the request's secret is still being read.
  const slow = slowSecrets(150);
  const ending = heldHostIo(slow, template);
  ending.land();
  const late = ending.io.hosts().http(req);
  late.catch(() => undefined);
  await waitUntil(() => slow.reads === 1);
  ending.io.end();
  ending.http.close();
  await assert.rejects(late, (e) => e.code === 'call_ended');
  await sleep(100);
  assert.equal(sent(), 0, 'the request reached the upstream after its call had ended');

  // Legitimate: the same request in a call that goes on is sent with its secret.
  const going = heldHostIo(slowSecrets(20), template);
  going.land();
  assert.equal((await going.io.hosts().http(req)).status, 200);
  assert.equal(sent(), 1);
  going.io.end();
});

test('an HTTP request held for the intent is not sent once its call has ended; one whose call still runs is', { skip }, async () => {
  const before = up.seen.length;
  const ended = heldHostIo();
  const late = ended.io.hosts().http({ method: 'GET', url: 'https://api.github.com/late', headers: [] });
  late.catch(() => undefined);
  ended.io.end(); // the call timed out, failed or was aborted while its request waited
  ended.land();
  await assert.rejects(late, (e) => e.code === 'call_ended');
  assert.equal(up.seen.length, before, 'the request reached the upstream after its call had ended');

  const running = heldHostIo();
  const ok = running.io.hosts().http({ method: 'GET', url: 'https://api.github.com/in-time', headers: [] });
  running.land();
  assert.equal((await ok).status, 200);
  assert.ok(up.seen.some((s) => s.url === '/in-time'));
  running.io.end();
});

test("the client hears of the outcome only once its receipt's sync has landed, as JSON of the body; a failed one answers evidence_persistence_failed, never the output", { skip }, async () => {
  const a = await agent();
  const hold = holdNextSync(g, 2); // the intent's sync runs; the receipt's is held
  try {
    let answered = false;
    const pending = a.execute('http_fetch', { url: 'https://api.github.com/receipt-held' }).finally(() => (answered = true));
    await hold.reached;
    await sleep(200);
    assert.equal(answered, false, 'the client was answered before the receipt was on disk');
    hold.release();
    const r = await pending;
    assert.equal(r.status, 200, r.text);
    // The answer made while the receipt was synced is exactly the body's JSON, typed as fastify types its own.
    assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(r.text, JSON.stringify(r.body));
    assert.equal(typeof r.body.receipt_id, 'string');
    assert.equal(r.body.output.status, 200);
  } finally {
    hold.restore();
  }

  // The receipt's sync fails (rejecting, throwing at once, rejecting with no Error): the call's one
  // event stands, written with its receipt, and no second one is tried for its trace.
  const wal = g.ctx.wal;
  const real = wal.sync;
  for (const [i, fail] of [() => Promise.reject(new Error('EIO: simulated')), () => { throw new Error('EIO: simulated'); }, () => Promise.reject(undefined)].entries()) {
    let syncs = 0;
    wal.sync = function () {
      return ++syncs === 2 ? fail() : real.call(this);
    };
    try {
      const from = lastEventId(g);
      const r = await a.execute('http_fetch', { url: `https://api.github.com/receipt-lost-${i}` });
      assert.equal(r.status, 500, r.text);
      assert.equal(r.body.error, 'evidence_persistence_failed', r.text);
      assert.match(r.body.message, /could not be made durable.*effect as unknown/);
      assert.equal(r.body.output, undefined, 'the output went out though its receipt is not on disk');
      assert.ok(up.seen.some((x) => x.url === `/receipt-lost-${i}`), 'the request was made: its effect is what the client must treat as unknown');
      const events = eventsSince(g, from);
      assert.deepEqual(events.map((e) => [e.event_type, e.decision, e.execution?.grant_id]), [['action_call', 'allow', r.body.grant_id]], 'one event for the call, the one written with its receipt');
    } finally {
      wal.sync = real;
    }
  }
});

test("the provider's worker is asked to make its next instance only after the answer is written", { skip }, async () => {
  const a = await agent();
  const order = [];
  const post = Worker.prototype.postMessage;
  const end = http.ServerResponse.prototype.end;
  Worker.prototype.postMessage = function (m, ...rest) {
    if (m?.type === 'spare') order.push('spare');
    return post.call(this, m, ...rest);
  };
  http.ServerResponse.prototype.end = function (...args) {
    if (this.req?.url?.endsWith('/execute')) order.push('answer');
    return end.apply(this, args);
  };
  try {
    const r = await a.execute('http_fetch', { url: 'https://api.github.com/spare' });
    assert.equal(r.status, 200, r.text);
    await waitUntil(() => order.includes('spare'));
    assert.deepEqual(order, ['answer', 'spare'], 'the next instance was asked for before the answer was written');
  } finally {
    Worker.prototype.postMessage = post;
    http.ServerResponse.prototype.end = end;
  }
});

async function waitUntil(cond) {
  while (!cond()) await sleep(10);
}
