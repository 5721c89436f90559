// The kernel splice relay of the CONNECT tunnels (native/relay.cc,
// src/egress/splice-relay.ts), alone and inside the ConnectProxy.
// Every tunnel here is two real TCP (or Unix) connections over loopback:
//   c (the box's client) <-> a ==relay== b <-> s (the upstream server)
// a and b are the sockets handed to the relay; c and s are the test's ends.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spliceRelay } from '../../dist/egress/splice-relay.js';
import { loadAddon } from '../../dist/native/addon.js';
import { ConnectProxy } from '../../dist/egress/connect-proxy.js';
import { HostAllowlist } from '../../dist/egress/allowlist.js';

const MB = 1 << 20;
const RELAY_JS = fileURLToPath(new URL('../../dist/egress/splice-relay.js', import.meta.url));

// ---------------------------------------------------------------------------
// helpers

/** A connected pair: [the connecting end, the accepted end]. */
async function pair({ allowHalfOpen = false, unixPath } = {}) {
  const srv = net.createServer({ allowHalfOpen });
  await new Promise((r) => (unixPath ? srv.listen(unixPath, r) : srv.listen(0, '127.0.0.1', r)));
  const accepted = new Promise((r) => srv.once('connection', r));
  const c = unixPath ? net.connect({ path: unixPath, allowHalfOpen }) : net.connect({ port: srv.address().port, host: '127.0.0.1', allowHalfOpen });
  const connected = new Promise((r, j) => {
    c.once('connect', r);
    c.once('error', j);
  });
  const [s] = await Promise.all([accepted, connected]);
  srv.close();
  return [c, s];
}

/** c <-> a and b <-> s; the relay goes between a and b. */
async function tunnel(t, opts = {}) {
  const [c, a] = await pair({ allowHalfOpen: opts.clientHalfOpen, unixPath: opts.unixPath });
  const [b, s] = await pair({ allowHalfOpen: opts.serverHalfOpen });
  for (const x of [c, a, b, s]) x.on('error', () => undefined);
  t.after(() => {
    for (const x of [c, s]) x.destroy();
  });
  return { c, a, b, s };
}

/** Everything sock receives until its readable side ends (or it closes). */
function collect(sock) {
  return new Promise((resolve) => {
    const chunks = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    };
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', finish);
    sock.on('close', finish);
    sock.resume(); // a 'data' listener alone does not restart a socket paused on purpose
  });
}

const sha = (b) => createHash('sha256').update(b).digest('hex');

/** n bytes of a recognisable sequence: position i holds (i*31 + seed) & 255. */
function pattern(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 255;
  return b;
}

async function waitFor(pred, what, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const closed = (sock) => (sock.closed ? Promise.resolve() : new Promise((r) => sock.once('close', r)));
const fdCount = () => readdirSync('/proc/self/fd').length;
/** Relay threads only (the addon names them), so threads of V8 or libuv coming and going do not count. */
const threadCount = () =>
  readdirSync('/proc/self/task').filter((tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'lg-relay';
    } catch {
      return false; // the thread ended while we looked
    }
  }).length;

/** Starts a relay and records every onDone call. */
function relay(a, b, opts = {}) {
  const calls = [];
  const r = spliceRelay(a, b, { ...opts, onDone: (res) => calls.push(res) });
  return { ...r, calls };
}

// ---------------------------------------------------------------------------
// the relay alone

test('20 MB each way at the same time arrive byte-exact, with exact counts', async (t) => {
  const { c, a, b, s } = await tunnel(t);
  const up = randomBytes(20 * MB);
  const down = randomBytes(20 * MB);
  const r = relay(a, b, { idleMs: 60_000 });
  const atServer = collect(s);
  const atClient = collect(c);
  c.end(up); // c's FIN follows its data; s ends after it saw the end (allowHalfOpen false)
  s.write(down);
  const [gotUp, gotDown] = await Promise.all([atServer, atClient]);
  assert.equal(gotUp.length, up.length);
  assert.equal(sha(gotUp), sha(up), 'client -> server bytes');
  assert.equal(gotDown.length, down.length);
  assert.equal(sha(gotDown), sha(down), 'server -> client bytes');
  const res = await r.done;
  assert.deepEqual(r.calls, [res], 'onDone once, with the result done resolves to');
  assert.equal(res.bytesAtoB, up.length);
  assert.equal(res.bytesBtoA, down.length);
  assert.equal(res.reason, 'a_closed');
  assert.equal(res.closedFirst, 'a');
  await Promise.all([closed(a), closed(b)]);
  assert.ok(a.destroyed && b.destroyed, 'both handed-over sockets are destroyed after onDone');
});

test('bytes Node had read before the hand-off go first and in order (unshifted head, buffered part, kernel part)', async (t) => {
  const { c, a, b, s } = await tunnel(t);
  const early = pattern(300_000, 1);
  const earlyDown = pattern(200_000, 7);
  c.write(early);
  s.write(earlyDown);
  // Node reads some of it into the sockets' readable buffers; the rest waits in the kernel.
  await waitFor(() => a.readableLength > 0 && b.readableLength > 0, 'Node to buffer data');
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(a.readableLength < early.length && b.readableLength < earlyDown.length, `a part stays in the kernel (${a.readableLength}, ${b.readableLength})`);
  a.unshift(Buffer.from('HEAD:')); // as proxy-chain does with the bytes behind the CONNECT head
  const r = relay(a, b, { idleMs: 60_000 });
  const atServer = collect(s);
  const atClient = collect(c);
  const late = pattern(1 * MB, 3);
  const lateDown = pattern(1 * MB, 5);
  c.end(late);
  s.write(lateDown);
  const [gotUp, gotDown] = await Promise.all([atServer, atClient]);
  assert.ok(gotUp.equals(Buffer.concat([Buffer.from('HEAD:'), early, late])), 'upstream: head, then early, then late, nothing lost or reordered');
  assert.ok(gotDown.equals(Buffer.concat([earlyDown, lateDown])), 'client: early, then late');
  const res = await r.done;
  assert.equal(res.bytesAtoB, 5 + early.length + late.length, 'initial bytes are counted');
  assert.equal(res.bytesBtoA, earlyDown.length + lateDown.length);
});

test('the hand-off waits for Node\'s write queue: what Node wrote before the relay arrives before relayed bytes', async (t) => {
  const { c, a, b, s } = await tunnel(t);
  c.pause(); // the client does not read yet: a's kernel buffer fills and Node queues the rest
  const queued = pattern(16 * MB, 9);
  a.write(queued);
  await waitFor(() => a.writableLength > 0, 'a write queue');
  const r = relay(a, b, { idleMs: 60_000 });
  s.end(Buffer.from('AFTER-THE-QUEUE'));
  const atClient = collect(c);
  c.resume();
  const got = await atClient;
  assert.equal(got.length, queued.length + 15);
  assert.ok(got.subarray(0, queued.length).equals(queued), 'the queued bytes first');
  assert.equal(got.subarray(queued.length).toString(), 'AFTER-THE-QUEUE');
  const res = await r.done;
  assert.equal(res.bytesBtoA, 15, 'Node\'s own writes are not the relay\'s');
  assert.equal(res.reason, 'b_closed');
});

test('half-close: the client ends its side and still receives the server\'s later reply', async (t) => {
  const { c, a, b, s } = await tunnel(t, { clientHalfOpen: true, serverHalfOpen: true });
  const reply = randomBytes(3 * MB);
  const request = Buffer.from('GET /x\r\n\r\n');
  const r = relay(a, b, { idleMs: 60_000 });
  const atClient = collect(c);
  const atServer = new Promise((resolve) => {
    const chunks = [];
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => resolve(Buffer.concat(chunks)));
  });
  c.end(request);
  assert.deepEqual(await atServer, request, 'the server sees the request, then the end');
  await new Promise((res) => setTimeout(res, 200)); // the reply comes well after the client's FIN
  assert.equal(r.calls.length, 0, 'the relay is still running after one side ended');
  s.end(reply);
  const got = await atClient;
  assert.equal(sha(got), sha(reply), 'the whole reply arrived after the half-close');
  const res = await r.done;
  assert.equal(res.reason, 'a_closed');
  assert.equal(res.closedFirst, 'a');
  assert.equal(res.bytesAtoB, request.length);
  assert.equal(res.bytesBtoA, reply.length);
});

test('idle timeout: no byte either way for idleMs ends the relay; traffic in either direction keeps it alive', async (t) => {
  const { c, a, b, s } = await tunnel(t);
  s.on('data', (d) => s.write(d)); // echo
  c.resume();
  const r = relay(a, b, { idleMs: 400 });
  // 10 pings 100 ms apart: 1 s of traffic, each gap shorter than the limit.
  let lastWrite = 0;
  for (let i = 0; i < 10; i++) {
    lastWrite = Date.now(); // the relay's last byte (the echo) moves after this
    c.write('p');
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(r.calls.length, 0, `still alive after ${i + 1} pings`);
  }
  const res = await r.done;
  const idleFor = Date.now() - lastWrite;
  assert.equal(res.reason, 'idle_timeout');
  // 10 ms of slack: Date.now() and the relay's monotonic clock round apart.
  assert.ok(idleFor >= 390, `ended ${idleFor} ms after the last byte (limit 400)`);
  assert.equal(res.bytesAtoB, 10);
  assert.equal(res.bytesBtoA, 10);
  assert.equal(res.closedFirst, null);
  await Promise.all([closed(c), closed(s)]); // the relay's sockets were destroyed: both peers see it
});

test('stop(): ends a busy relay with reason stopped and the counts so far; later calls are harmless', async (t) => {
  const { c, a, b, s } = await tunnel(t);
  const chunk = Buffer.alloc(256 * 1024, 7);
  let sent = 0;
  const pump = () => {
    while (!s.destroyed && s.write(chunk)) sent += chunk.length;
  };
  s.on('drain', pump);
  let received = 0;
  c.on('data', (d) => (received += d.length));
  const r = relay(a, b);
  pump();
  await waitFor(() => received > 4 * MB, 'traffic');
  r.stop();
  const res = await r.done;
  r.stop();
  assert.equal(res.reason, 'stopped');
  assert.ok(res.bytesBtoA >= received && res.bytesBtoA > 4 * MB, `counts: ${res.bytesBtoA} delivered, ${received} seen so far`);
  await Promise.all([closed(c), closed(s)]);
  assert.equal(received, res.bytesBtoA, 'the client got exactly what the relay counted');
  assert.equal(r.calls.length, 1);
});

test('a peer that resets ends the relay with an error naming its side; no fd or thread is left behind', async (t) => {
  // Warm up once so lazily opened fds (addon, libuv) are not counted as leaks.
  {
    const w = await tunnel(t);
    const r = relay(w.a, w.b);
    w.c.end();
    w.s.end();
    await r.done;
    await Promise.all([closed(w.c), closed(w.s)]);
  }
  await waitFor(() => threadCount() === 0, `the warm-up relay's thread to end (now ${threadCount()})`);
  const fds0 = fdCount();
  const threads0 = 0;
  const { c, a, b, s } = await tunnel(t);
  const r = relay(a, b);
  const chunk = Buffer.alloc(64 * 1024, 1);
  const timer = setInterval(() => s.write(chunk), 1);
  c.resume(); // read, so bytes flow until the reset
  await waitFor(() => c.bytesRead > MB, 'traffic');
  c.resetAndDestroy(); // RST
  const res = await r.done;
  clearInterval(timer);
  assert.equal(res.reason, 'error');
  assert.equal(res.side, 'a');
  assert.ok(['ECONNRESET', 'EPIPE'].includes(res.code), `code ${res.code} (${res.message})`);
  assert.equal(typeof res.step, 'string');
  assert.equal(typeof res.errno, 'number');
  await Promise.all([closed(a), closed(b), closed(s)]);
  await waitFor(() => fdCount() === fds0, `fds back to ${fds0} (now ${fdCount()})`);
  await waitFor(() => threadCount() === threads0, `threads back to ${threads0} (now ${threadCount()})`);
});

test('60 concurrent tunnels, 1 MB each way each, all byte-exact; threads and fds return to the baseline', async (t) => {
  const fds0 = fdCount();
  const threads0 = threadCount();
  const N = 60;
  const tunnels = await Promise.all(Array.from({ length: N }, () => tunnel(t)));
  assert.ok(fdCount() >= fds0 + 4 * N);
  const runs = tunnels.map(({ c, a, b, s }, i) => {
    const up = pattern(MB + i, i);
    const down = pattern(MB + 2 * i, i + 100);
    const r = relay(a, b, { idleMs: 60_000 });
    const atServer = collect(s);
    const atClient = collect(c);
    c.end(up);
    s.write(down);
    return { r, up, down, atServer, atClient };
  });
  await waitFor(() => threadCount() > threads0, 'relay threads');
  for (const [i, x] of runs.entries()) {
    const [gotUp, gotDown] = await Promise.all([x.atServer, x.atClient]);
    assert.ok(gotUp.equals(x.up), `tunnel ${i} up`);
    assert.ok(gotDown.equals(x.down), `tunnel ${i} down`);
    const res = await x.r.done;
    assert.equal(res.bytesAtoB, x.up.length);
    assert.equal(res.bytesBtoA, x.down.length);
    assert.equal(x.r.calls.length, 1);
  }
  await waitFor(() => threadCount() === threads0, `threads back to ${threads0} (now ${threadCount()})`);
  await waitFor(() => fdCount() <= fds0, `fds back to ${fds0} (now ${fdCount()})`);
});

test('a Unix-socket client leg (listenUnix) relays like a TCP one', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-relay-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { c, a, b, s } = await tunnel(t, { unixPath: path.join(dir, 'c.sock') });
  const up = randomBytes(5 * MB);
  const down = randomBytes(5 * MB);
  const r = relay(a, b);
  const atServer = collect(s);
  const atClient = collect(c);
  c.end(up);
  s.write(down);
  const [gotUp, gotDown] = await Promise.all([atServer, atClient]);
  assert.equal(sha(gotUp), sha(up));
  assert.equal(sha(gotDown), sha(down));
  const res = await r.done;
  assert.deepEqual([res.bytesAtoB, res.bytesBtoA, res.reason], [up.length, down.length, 'a_closed']);
});

test('while relayed, Node cannot close or write the fds: destroy() stops the relay first, write() fails loudly', async (t) => {
  {
    const { c, a, b, s } = await tunnel(t);
    const r = relay(a, b);
    c.write('x');
    await waitFor(() => s.bytesRead === 1, 'one byte through');
    let closedBeforeDone = false;
    a.once('close', () => (closedBeforeDone = r.calls.length === 0));
    a.destroy(); // e.g. proxy-chain's closeConnections()
    const res = await r.done;
    await closed(a);
    assert.equal(res.reason, 'stopped');
    assert.equal(res.bytesAtoB, 1);
    assert.equal(closedBeforeDone, false, "a's fd closes only after the relay let go of it");
    c.resume(); // a paused socket never sees its end, so never closes
    s.resume();
    await Promise.all([closed(c), closed(s)]);
  }
  {
    const { a, b } = await tunnel(t);
    const r = relay(a, b);
    const err = new Promise((res) => a.once('error', res));
    a.write('stray');
    assert.equal((await err).code, 'ERR_SOCKET_RELAYED');
    assert.equal((await r.done).reason, 'stopped');
  }
});

test('argument checks: same socket, a socket without an fd, bad idleMs; the sockets stay usable', async (t) => {
  const { c, a, b, s } = await tunnel(t);
  assert.throws(() => spliceRelay(a, a), /same socket/);
  assert.throws(() => spliceRelay(a, new net.Socket()), /no handle; only kernel sockets/);
  assert.throws(() => spliceRelay(a, b, { idleMs: -1 }), /idleMs/);
  assert.throws(() => spliceRelay(a, b, { idleMs: 1.5 }), /idleMs/);
  // Nothing was taken over: Node still reads and writes them.
  a.on('data', (d) => a.write(d));
  c.write('echo?');
  const got = await new Promise((res) => c.once('data', res));
  assert.equal(got.toString(), 'echo?');
  const addon = loadAddon();
  assert.throws(() => addon.relay(3, 3, null, null, 0, () => undefined), TypeError);
  assert.throws(() => addon.relay(-1, 4, null, null, 0, () => undefined), TypeError);
  assert.throws(() => addon.relay(3, 4, 'str', null, 0, () => undefined), TypeError);
  assert.throws(() => addon.relay(3, 4, null, null, -5, () => undefined), TypeError);
  assert.throws(() => addon.relay(3, 4, null, null, 0), TypeError);
  b.destroy();
  s.destroy();
});

test('native stop(): true while running, false once done; the fds are never closed by the relay', async (t) => {
  const { c, a, b, s } = await tunnel(t);
  for (const x of [a, b]) {
    x.pause();
    x._handle.readStop();
    x._handle.reading = false;
  }
  const addon = loadAddon();
  let result;
  const h = addon.relay(a._handle.fd, b._handle.fd, Buffer.from('pre-a:'), Buffer.from('pre-b:'), 0, (r) => (result = r));
  const atServer = [];
  s.on('data', (d) => atServer.push(d));
  c.write('hello');
  await waitFor(() => Buffer.concat(atServer).toString() === 'pre-a:hello', 'initial bytes, then relayed ones');
  assert.equal(h.stop(), true);
  await waitFor(() => result !== undefined, 'onDone');
  assert.equal(h.stop(), false);
  assert.deepEqual(result, { bytesAtoB: 11, bytesBtoA: 6, reason: 'stopped', closedFirst: null });
  // Still open: Node can use them again.
  a._handle.reading = true;
  a._handle.readStart();
  a.resume();
  const got = new Promise((res) => a.once('data', res));
  c.write('after');
  assert.equal((await got).toString(), 'after');
  const back = await new Promise((res) => {
    let buf = '';
    c.on('data', (d) => {
      buf += d;
      if (buf === 'pre-b:') res(buf);
    });
  });
  assert.equal(back, 'pre-b:');
  a.destroy();
  b.destroy();
});

test('a running relay keeps the process alive; after onDone it does not', async () => {
  const script = `
    import net from 'node:net';
    import { spliceRelay } from ${JSON.stringify(RELAY_JS)};
    const pair = async () => {
      const srv = net.createServer();
      await new Promise((r) => srv.listen(0, '127.0.0.1', r));
      const acc = new Promise((r) => srv.once('connection', r));
      const c = net.connect(srv.address().port, '127.0.0.1');
      const s = await acc;
      srv.close();
      return [c, s];
    };
    const [c, a] = await pair();
    const [b, s] = await pair();
    c.unref(); s.unref(); // only the relay may hold the loop
    const t0 = Date.now();
    spliceRelay(a, b, { idleMs: 700, onDone: (r) => { console.log('done', r.reason, Date.now() - t0 >= 600); c.destroy(); s.destroy(); } });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise((res) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      res(c);
    });
  });
  assert.equal(out.trim(), 'done idle_timeout true', 'onDone arrived: the relay held the loop until then');
  assert.equal(code, 0, 'and the process then exited on its own');
});

// ---------------------------------------------------------------------------
// through the ConnectProxy

async function startProxy(t, upstreamHandler, limits = {}) {
  const up = net.createServer({ allowHalfOpen: true }, upstreamHandler);
  await new Promise((r) => up.listen(0, '127.0.0.1', r));
  const events = [];
  const proxy = new ConnectProxy({
    allowlist: new HostAllowlist(['api.test.example']),
    pinned: new Map([['api.test.example', { ip: '127.0.0.1', port: up.address().port }]]),
    lookup: async () => {
      throw new Error('no DNS in this test');
    },
    record: (e) => events.push(e),
    limits: { headerTimeoutMs: 5000, ...limits },
  });
  const { port } = await proxy.listenTcp('127.0.0.1', 0);
  t.after(async () => {
    await proxy.close();
    up.close();
  });
  return { proxy, port, events };
}

/** CONNECTs through the proxy; resolves with the socket right after the 200 head. */
function connectThrough(port, { allowHalfOpen = false } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen });
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      sock.off('data', onData);
      sock.pause();
      if (!buf.subarray(0, end).toString().startsWith('HTTP/1.1 200')) reject(new Error(buf.toString()));
      const rest = buf.subarray(end + 4);
      if (rest.length > 0) sock.unshift(rest);
      resolve(sock);
    };
    sock.on('data', onData);
    sock.on('error', reject);
    sock.write('CONNECT api.test.example:443 HTTP/1.1\r\nHost: api.test.example:443\r\n\r\n');
  });
}

test('proxy: 10 MB each way through a tunnel, byte-exact; the ledger has the relay\'s counts', async (t) => {
  const down = randomBytes(10 * MB);
  const { port, events } = await startProxy(t, (s) => {
    s.on('error', () => undefined);
    const chunks = [];
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => s.end(Buffer.from(sha(Buffer.concat(chunks)))));
    s.write(down);
  });
  const up = randomBytes(10 * MB);
  const c = await connectThrough(port, { allowHalfOpen: true });
  const got = collect(c);
  c.end(up);
  const all = await got;
  assert.equal(sha(all.subarray(0, down.length)), sha(down), 'download intact');
  assert.equal(all.subarray(down.length).toString(), sha(up), 'upload intact (the upstream hashes what it got)');
  await waitFor(() => events.length === 1, 'the tunnel event');
  const e = events[0];
  assert.equal(e.decision, 'allow');
  assert.equal(e.details.reason, 'client_closed');
  assert.equal(e.details.bytes_up, up.length);
  assert.equal(e.details.bytes_down, down.length + 64);
  assert.equal(e.details.detail, undefined);
});

test('proxy: a client that half-closes still gets the upstream\'s reply (reason client_closed)', async (t) => {
  const reply = randomBytes(2 * MB);
  const { port, events } = await startProxy(t, (s) => {
    s.on('error', () => undefined);
    s.resume();
    s.on('end', () => setTimeout(() => s.end(reply), 150));
  });
  const c = await connectThrough(port, { allowHalfOpen: true });
  const got = collect(c);
  c.end('request');
  assert.equal(sha(await got), sha(reply));
  await waitFor(() => events.length === 1, 'the tunnel event');
  assert.equal(events[0].details.reason, 'client_closed');
  assert.deepEqual([events[0].details.bytes_up, events[0].details.bytes_down], [7, reply.length]);
});

test('proxy: close() stops live relays mid-transfer; each tunnel recorded once as proxy_closed with its bytes', async (t) => {
  const chunk = Buffer.alloc(256 * 1024, 3);
  const { proxy, port, events } = await startProxy(t, (s) => {
    s.on('error', () => undefined);
    const pump = () => {
      while (!s.destroyed && s.write(chunk));
    };
    s.on('drain', pump);
    pump();
  });
  const clients = await Promise.all([connectThrough(port), connectThrough(port), connectThrough(port)]);
  const received = clients.map(() => 0);
  clients.forEach((c, i) => {
    c.on('error', () => undefined);
    c.on('data', (d) => (received[i] += d.length));
    c.resume();
  });
  await waitFor(() => received.every((n) => n > MB), 'traffic on every tunnel');
  assert.equal(proxy.stats().activeTunnels, 3);
  await proxy.close();
  assert.equal(proxy.stats().activeTunnels, 0);
  assert.equal(events.length, 3);
  for (const e of events) {
    assert.equal(e.details.reason, 'proxy_closed');
    assert.ok(e.details.bytes_down > MB, `bytes_down ${e.details.bytes_down}`);
  }
  await Promise.all(clients.map((c) => closed(c)));
  assert.deepEqual(events.map((e) => e.details.bytes_down).sort(), [...received].sort(), 'each client got what its event says');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(events.length, 3, 'no second record from the sockets\' close listeners');
});

test('proxy: a client reset is recorded as client_error with the relay\'s errno; the idle limit is the relay\'s', async (t) => {
  const { port, events } = await startProxy(
    t,
    (s) => {
      s.on('error', () => undefined);
      s.on('data', (d) => s.write(d));
    },
    { idleTimeoutMs: 500 },
  );
  const c = await connectThrough(port);
  c.resume();
  c.write('x');
  await waitFor(() => c.bytesRead >= 1, 'echo');
  c.resetAndDestroy();
  await waitFor(() => events.length === 1, 'the reset tunnel');
  assert.equal(events[0].details.reason, 'client_error');
  assert.match(events[0].details.detail, /^relay client splice\(a->pipe\): /);

  const d = await connectThrough(port);
  d.resume();
  d.write('y');
  const t0 = Date.now();
  await closed(d);
  assert.ok(Date.now() - t0 >= 400, 'closed after the idle limit, not before');
  await waitFor(() => events.length === 2, 'the idle tunnel');
  assert.equal(events[1].details.reason, 'idle_timeout');
  assert.deepEqual([events[1].details.bytes_up, events[1].details.bytes_down], [1, 1]);
});
