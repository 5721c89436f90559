// The box's CONNECT proxy: decisions, limits, ledger events.
// Loopback only: the "upstream" is a plain TCP echo server on 127.0.0.1 that an
// allowed name is pinned to (TLS is end-to-end and the proxy only relays
// bytes), and every DNS answer comes from an injected lookup.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConnectProxy } from '../../dist/egress/connect-proxy.js';
import { HostAllowlist } from '../../dist/egress/allowlist.js';
import { Ledger } from '../../dist/ledger/ledger.js';

const DIST = fileURLToPath(new URL('../../dist', import.meta.url));
const FD_FIXTURE = fileURLToPath(new URL('../fixtures/egress/proxy-on-fd.mjs', import.meta.url));

const ALLOW = ['api.test.example', '*.dns.test.example'];
const GREETING = 'hello from upstream\n';

// ---------------------------------------------------------------------------
// helpers

/** A TCP server on 127.0.0.1 that greets, then echoes every byte back. */
async function echoServer(t) {
  const sockets = new Set();
  let accepted = 0;
  const srv = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.write(GREETING);
    s.pipe(s);
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return { port: srv.address().port, accepted: () => accepted };
}

/** A lookup (dns.promises.lookup shape) answering from a table; unknown names fail with ENOTFOUND. */
function tableLookup(table, calls = []) {
  return async (name, options) => {
    calls.push({ name, options });
    const v = await (typeof table[name] === 'function' ? table[name]() : table[name]);
    if (!v) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return v.map((address) => ({ address, family: net.isIP(address) }));
  };
}

const DNS = {
  'private.dns.test.example': ['10.0.0.1'],
  'loop.dns.test.example': ['127.0.0.1'],
  'meta.dns.test.example': ['169.254.169.254'],
  'v6loop.dns.test.example': ['::1'],
  'mapped.dns.test.example': ['::ffff:127.0.0.1'],
  'mixed.dns.test.example': ['93.184.216.34', '10.0.0.1'],
};

async function startProxy(t, o = {}) {
  const events = [];
  const up = o.upstream ?? (await echoServer(t));
  const pinned = new Map([['api.test.example', { ip: '127.0.0.1', port: up.port }], ...(o.pins ?? [])]);
  const proxy = new ConnectProxy({
    allowlist: new HostAllowlist(o.allow ?? ALLOW),
    pinned,
    lookup: o.lookup ?? tableLookup(DNS),
    record: o.record ?? ((e) => events.push(e)),
    ...(o.allowPorts ? { allowPorts: o.allowPorts } : {}),
    ...(o.connect ? { connect: o.connect } : {}),
    limits: { headerTimeoutMs: 2000, ...(o.limits ?? {}) },
  });
  const { port } = await proxy.listenTcp('127.0.0.1', 0);
  t.after(() => proxy.close());
  return { proxy, port, events, up };
}

/** Sends data (a string, or an array of chunks written delayMs apart) and collects everything until the proxy closes. */
function exchange(port, data, { timeoutMs = 5000, delayMs = 0, path: sockPath, stopAt200 = false } = {}) {
  return new Promise((resolve) => {
    const sock = sockPath ? net.connect(sockPath) : net.connect(port, '127.0.0.1');
    const chunks = [];
    let timer;
    let drip;
    let finished = false;
    const finish = (timedOut) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearInterval(drip);
      sock.destroy();
      const raw = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(raw);
      const sep = raw.indexOf('\r\n\r\n');
      resolve({ status: m ? Number(m[1]) : null, raw, body: sep === -1 ? '' : raw.slice(sep + 4), timedOut });
    };
    sock.on('data', (c) => {
      chunks.push(c);
      if (stopAt200 && /^HTTP\/1\.1 200 [^\r]*\r\n\r\n/.test(Buffer.concat(chunks).toString('latin1'))) finish(false);
    });
    sock.on('error', () => undefined);
    sock.on('close', () => finish(false));
    timer = setTimeout(() => finish(true), timeoutMs);
    sock.on('connect', () => {
      if (!Array.isArray(data)) {
        sock.write(data);
        return;
      }
      const parts = [...data];
      const next = () => {
        const p = parts.shift();
        if (p === undefined) return clearInterval(drip);
        if (!sock.destroyed) sock.write(p);
      };
      next();
      drip = setInterval(next, delayMs);
    });
  });
}

/** CONNECTs to target; resolves with the socket (positioned after the 200 head) or with the refusal. */
function openTunnel(port, target, { path: sockPath, headers = '' } = {}) {
  return new Promise((resolve, reject) => {
    const sock = sockPath ? net.connect(sockPath) : net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const onData = (c) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buf.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      if (status === 200) {
        sock.off('data', onData);
        resolve({ status, sock, pending: buf.subarray(end + 4), head });
      }
    };
    sock.on('data', onData);
    sock.on('error', (e) => reject(e));
    sock.on('close', () => {
      const raw = buf.toString('latin1');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0), raw, sock: null });
    });
    sock.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${headers}\r\n`);
  });
}

/** Reads from a tunnel socket until n bytes arrived (including pending ones). */
function readBytes(sock, n, pending = Buffer.alloc(0), timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    let buf = pending;
    if (buf.length >= n) return resolve(buf);
    const timer = setTimeout(() => reject(new Error(`timed out after ${buf.length}/${n} bytes`)), timeoutMs);
    const onData = (c) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= n) {
        clearTimeout(timer);
        sock.off('data', onData);
        resolve(buf);
      }
    };
    sock.on('data', onData);
  });
}

async function waitFor(pred, what, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Asserts the single new event since `before` and returns it. */
function onlyNewEvent(events, before, decision, reason) {
  assert.equal(events.length, before + 1, `exactly one event for ${reason}: ${JSON.stringify(events.slice(before))}`);
  const e = events[before];
  assert.equal(e.event_type, 'egress');
  assert.equal(e.decision, decision);
  assert.equal(e.details.reason, reason);
  return e;
}

/** Opens a tunnel, sends payload, checks the echo, closes, and returns the recorded event. */
async function roundTrip(port, events, target = 'api.test.example:443', payload = 'ping through the tunnel', opts = {}) {
  const before = events.length;
  const r = await openTunnel(port, target, opts);
  assert.equal(r.status, 200, `CONNECT ${target}: ${r.raw ?? r.head}`);
  r.sock.write(payload);
  const got = await readBytes(r.sock, GREETING.length + payload.length, r.pending);
  assert.equal(got.toString(), GREETING + payload);
  r.sock.end();
  await waitFor(() => events.length > before, 'the tunnel event');
  return onlyNewEvent(events, before, 'allow', 'client_closed');
}

// ---------------------------------------------------------------------------
// allowed

test('allowed CONNECT to a pinned name: 200, bytes flow both ways, one allow event with bytes and duration', async (t) => {
  const { port, events } = await startProxy(t);
  const payload = 'x'.repeat(100_000);
  const before = events.length;
  const r = await openTunnel(port, 'api.test.example:443');
  assert.equal(r.status, 200);
  assert.match(r.head, /^HTTP\/1\.1 200 Connection Established/);
  assert.equal(events.length, before, 'nothing recorded while the tunnel is open');
  r.sock.write(payload);
  const got = await readBytes(r.sock, GREETING.length + payload.length, r.pending);
  assert.equal(got.toString(), GREETING + payload);
  r.sock.end();
  await waitFor(() => events.length > before, 'the tunnel event');
  const e = onlyNewEvent(events, before, 'allow', 'client_closed');
  assert.deepEqual(
    { host: e.details.host, port: e.details.port, resolved_address: e.details.resolved_address, transport: e.details.transport, status: e.details.status, pinned: e.details.pinned },
    { host: 'api.test.example', port: 443, resolved_address: '127.0.0.1', transport: 'tcp', status: 200, pinned: true },
  );
  assert.equal(e.details.bytes_up, payload.length);
  assert.equal(e.details.bytes_down, GREETING.length + payload.length);
  assert.equal(typeof e.details.duration_ms, 'number');
  assert.ok(e.details.duration_ms >= 0);
});

test('host names are normalised before matching and pinning (case, trailing dot)', async (t) => {
  const { port, events } = await startProxy(t);
  const e = await roundTrip(port, events, 'API.Test.Example.:443');
  assert.equal(e.details.host, 'api.test.example');
});

test('bytes sent right behind the CONNECT head (before the 200) are relayed, not lost', async (t) => {
  const { port, events } = await startProxy(t);
  const sock = net.connect(port, '127.0.0.1');
  sock.write('CONNECT api.test.example:443 HTTP/1.1\r\nHost: api.test.example:443\r\n\r\nEARLY-CLIENT-HELLO');
  const want = 'HTTP/1.1 200 Connection Established\r\n\r\n' + GREETING + 'EARLY-CLIENT-HELLO';
  const got = await readBytes(sock, want.length);
  assert.equal(got.toString(), want);
  sock.end();
  await waitFor(() => events.length === 1, 'the tunnel event');
  assert.equal(events[0].details.bytes_up, 'EARLY-CLIENT-HELLO'.length);
});

test('the Host header never decides: only the CONNECT target does', async (t) => {
  const { port, events, up } = await startProxy(t);
  const r = await exchange(port, 'CONNECT evil.example:443 HTTP/1.1\r\nHost: api.test.example:443\r\n\r\n');
  assert.equal(r.status, 403);
  onlyNewEvent(events, 0, 'deny', 'host_not_allowed');
  const e = await roundTrip(port, events, 'api.test.example:443', 'hi', { headers: 'X-Forwarded-Host: evil.example\r\n' });
  assert.equal(e.details.host, 'api.test.example');
  assert.equal(up.accepted(), 1);
});

test('the tunnel connects to the checked address; a rebinding answer later is never looked up again', async (t) => {
  const up = await echoServer(t);
  let answer = ['93.184.216.34'];
  const calls = [];
  const connects = [];
  const { port, events } = await startProxy(t, {
    upstream: up,
    lookup: tableLookup({ 'rebind.dns.test.example': () => answer }, calls),
    // Observe where the proxy connects; redirect that public address to the loopback echo server.
    connect: (address, p, family) => {
      connects.push({ address, port: p, family });
      return net.connect({ host: '127.0.0.1', port: up.port });
    },
  });
  const r = await openTunnel(port, 'rebind.dns.test.example:443');
  assert.equal(r.status, 200);
  answer = ['127.0.0.1']; // the name now "rebinds" to loopback: too late, the tunnel is open
  r.sock.write('abc');
  await readBytes(r.sock, GREETING.length + 3, r.pending);
  r.sock.end();
  await waitFor(() => events.length === 1, 'the tunnel event');
  assert.equal(calls.length, 1, 'one lookup per CONNECT');
  assert.deepEqual(connects, [{ address: '93.184.216.34', port: 443, family: 4 }]);
  assert.equal(events[0].details.resolved_address, '93.184.216.34');
  assert.equal(events[0].details.pinned, false);

  // The next CONNECT sees the rebound answer and is refused after resolution.
  const before = events.length;
  const x = await exchange(port, 'CONNECT rebind.dns.test.example:443 HTTP/1.1\r\n\r\n');
  assert.equal(x.status, 403);
  onlyNewEvent(events, before, 'deny', 'address_not_allowed');
  assert.equal(connects.length, 1, 'no connection attempt to a refused address');
});

// ---------------------------------------------------------------------------
// denied

const REFUSALS = [
  ['evil.example:443', 403, 'host_not_allowed'],
  ['example.com.api.test.example.evil.com:443', 403, 'host_not_allowed'],
  ['evilapi.test.example:443', 403, 'host_not_allowed'],
  ['dns.test.example:443', 403, 'host_not_allowed'], // the apex of a wildcard entry
  ['api.test.example:8443', 403, 'port_not_allowed'],
  ['api.test.example:80', 403, 'port_not_allowed'],
  ['127.0.0.1:443', 403, 'literal_ip'],
  ['[::1]:443', 403, 'literal_ip'],
  ['0x7f000001:443', 403, 'literal_ip'],
  ['2130706433:443', 403, 'literal_ip'],
  ['127.1:443', 403, 'literal_ip'],
  ['[::ffff:127.0.0.1]:443', 403, 'literal_ip'],
  ['169.254.169.254:443', 403, 'literal_ip'],
  ['private.dns.test.example:443', 403, 'address_not_allowed'],
  ['loop.dns.test.example:443', 403, 'address_not_allowed'],
  ['meta.dns.test.example:443', 403, 'address_not_allowed'],
  ['v6loop.dns.test.example:443', 403, 'address_not_allowed'],
  ['mapped.dns.test.example:443', 403, 'address_not_allowed'],
  ['mixed.dns.test.example:443', 403, 'address_not_allowed'],
  ['nx.dns.test.example:443', 502, 'dns_failed'],
  ['api.test.example', 400, 'bad_target'],
  ['api.test.example:', 400, 'bad_target'],
  ['api.test.example:0443', 400, 'bad_target'],
  ['api.test.example:65536', 400, 'bad_target'],
  ['user@api.test.example:443', 400, 'bad_target'],
  ['api.test.example:443/path', 400, 'bad_target'],
  ['api%2etest.example:443', 400, 'bad_target'],
  ['api_test.example:443', 400, 'bad_target'],
  ['[::1:443', 400, 'bad_target'],
  ['::1:443', 400, 'bad_target'],
  ['<script>alert(1)</script>:443', 400, 'malformed_request'], // llhttp refuses '<' in a target
  ['bad~host.example:443', 400, 'bad_target'],
  ['a..b.example:443', 400, 'bad_target'],
  ['http://api.test.example:443', 400, 'bad_target'],
];

test('refused CONNECTs: right status, one deny event with its reason, no request data echoed', async (t) => {
  const { port, events, up } = await startProxy(t);
  for (const [target, status, reason] of REFUSALS) {
    const before = events.length;
    const r = await exchange(port, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    assert.equal(r.status, status, `${target}: ${r.raw}`);
    assert.match(r.body.split('\n')[0], new RegExp(`\\[${reason}\\]$`), `${target}: body names the reason`);
    const named = target.replace(/:[0-9]*$/, '');
    // A validated host name is named back (what would allow it names it); nothing else of the request is.
    const namesHost = ['host_not_allowed', 'address_not_allowed', 'dns_failed', 'dns_timeout'].includes(reason);
    if (!namesHost && named.length >= 4) assert.ok(!r.raw.includes(named), `${target}: the target is not echoed`);
    assert.ok(!r.raw.includes('<script>'), 'no markup echoed');
    const e = onlyNewEvent(events, before, 'deny', reason);
    assert.equal(e.details.status, status);
    assert.equal(e.details.bytes_up, 0);
    assert.equal(e.details.transport, 'tcp');
    if (reason === 'address_not_allowed') assert.ok(e.details.detail.length > 0 && e.details.addresses.length > 0, 'the resolver says why');
  }
  assert.equal(up.accepted(), 0, 'no refused CONNECT reached the upstream');
});

test('the host named in a refusal is the validated, normalised name only', async (t) => {
  const { port } = await startProxy(t);
  const r = await exchange(port, 'CONNECT Evil.Example.:443 HTTP/1.1\r\n\r\n');
  assert.equal(r.status, 403);
  assert.match(r.body, /not in the egress allowlist: evil\.example \[host_not_allowed\]/);
});

test('a refusal says what would allow it (text, or JSON when asked), and never the addresses the host resolved', async (t) => {
  const { port } = await startProxy(t);
  let r = await exchange(port, 'CONNECT denied.example:443 HTTP/1.1\r\n\r\n');
  assert.equal(r.status, 403);
  assert.match(r.raw, /\r\nx-latchgate-reason: host_not_allowed\r\n/);
  assert.match(r.raw, /\r\ncontent-type: text\/plain/);
  assert.equal(
    r.body,
    'latchgate egress proxy: this host is not in the egress allowlist: denied.example [host_not_allowed]\n' +
      'To allow it, ask the user who started this box for: --allow-host denied.example. Nothing inside the box can change it.\n',
  );

  r = await exchange(port, 'CONNECT denied.example:443 HTTP/1.1\r\nAccept: application/json\r\n\r\n');
  assert.equal(r.status, 403);
  assert.match(r.raw, /\r\ncontent-type: application\/json\r\n/);
  assert.deepEqual(JSON.parse(r.body), {
    error: 'host_not_allowed',
    message: 'this host is not in the egress allowlist: denied.example',
    host: 'denied.example',
    port: 443,
    fix: '--allow-host denied.example',
    advice: 'To allow it, ask the user who started this box for: --allow-host denied.example. Nothing inside the box can change it.',
  });

  r = await exchange(port, 'CONNECT api.test.example:8443 HTTP/1.1\r\n\r\n');
  assert.match(r.body, /^To allow it, ask the user who started this box for: allow_ports = \[443, 8443\] in \[sandbox\.network\]\./m);

  // An allowlisted name that resolves to a private address: the pin is named, the address is not (it is the host's to know).
  r = await exchange(port, 'CONNECT private.dns.test.example:443 HTTP/1.1\r\nAccept: application/json\r\n\r\n');
  const body = JSON.parse(r.body);
  assert.equal(body.error, 'address_not_allowed');
  assert.match(body.fix, /^a pin for private\.dns\.test\.example in \[sandbox\.network\.resolve\]/);
  assert.ok(!r.raw.includes('10.0.0.1'), 'the resolved address stays on the host');

  r = await exchange(port, 'CONNECT 192.0.2.1:443 HTTP/1.1\r\n\r\n');
  assert.match(r.body, /^Instead: name a host instead of an address/m);
  // A malformed request gets no advice: nothing the user sets would allow it.
  r = await exchange(port, 'CONNECT %%% HTTP/1.1\r\n\r\n');
  assert.match(r.body, /^latchgate egress proxy: [^\n]*\[bad_target\]\n$/);
});

test('an empty allowlist means no egress at all', async (t) => {
  const { port, events } = await startProxy(t, { allow: [] });
  const r = await exchange(port, 'CONNECT api.test.example:443 HTTP/1.1\r\n\r\n');
  assert.equal(r.status, 403);
  onlyNewEvent(events, 0, 'deny', 'egress_disabled');
});

test('allowPorts widens the port set', async (t) => {
  const { port, events } = await startProxy(t, { allowPorts: [443, 8443] });
  const e = await roundTrip(port, events, 'api.test.example:8443');
  assert.equal(e.details.port, 8443);
});

test('upstream failures: refused port 502, lookup timeout 504', async (t) => {
  const closed = net.createServer();
  await new Promise((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = closed.address().port;
  await new Promise((r) => closed.close(r));
  const { port, events } = await startProxy(t, {
    pins: [['dead.dns.test.example', { ip: '127.0.0.1', port: deadPort }]],
    lookup: tableLookup({ 'slow.dns.test.example': () => new Promise(() => undefined) }),
    limits: { connectTimeoutMs: 300 },
  });
  let r = await exchange(port, 'CONNECT dead.dns.test.example:443 HTTP/1.1\r\n\r\n');
  assert.equal(r.status, 502);
  let e = onlyNewEvent(events, 0, 'deny', 'upstream_connect_failed');
  assert.equal(e.details.resolved_address, '127.0.0.1');

  r = await exchange(port, 'CONNECT slow.dns.test.example:443 HTTP/1.1\r\n\r\n');
  assert.equal(r.status, 504);
  onlyNewEvent(events, 1, 'deny', 'dns_timeout');
});

test('connect timeout: 504 after connectTimeoutMs', async (t) => {
  const { port, events } = await startProxy(t, {
    pins: [['hang.dns.test.example', { ip: '127.0.0.1', port: 1 }]],
    connect: () => new net.Socket(), // never connects
    limits: { connectTimeoutMs: 300 },
  });
  const t0 = Date.now();
  const r = await exchange(port, 'CONNECT hang.dns.test.example:443 HTTP/1.1\r\n\r\n');
  assert.equal(r.status, 504);
  assert.ok(Date.now() - t0 >= 250);
  onlyNewEvent(events, 0, 'deny', 'upstream_connect_timeout');
});

// ---------------------------------------------------------------------------
// not CONNECT

test('plain-HTTP proxy requests (absolute form) are refused with 403 and a reason', async (t) => {
  const { port, events, up } = await startProxy(t);
  let r = await exchange(port, 'GET http://api.test.example/secret?q=1 HTTP/1.1\r\nHost: api.test.example\r\n\r\n');
  assert.equal(r.status, 403);
  assert.match(r.body, /plain-HTTP proxy requests are refused.*\[plain_http_refused\]/);
  assert.ok(!r.raw.includes('secret'));
  let e = onlyNewEvent(events, 0, 'deny', 'plain_http_refused');
  assert.equal(e.details.host, 'api.test.example');
  assert.equal(e.details.port, 80);
  assert.equal(e.details.method, 'GET');

  r = await exchange(port, 'POST http://evil.example:8080/x HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 3\r\n\r\nabc');
  assert.equal(r.status, 403);
  e = onlyNewEvent(events, 1, 'deny', 'plain_http_refused');
  assert.equal(e.details.port, 8080);

  r = await exchange(port, 'GET https://api.test.example/ HTTP/1.1\r\nHost: api.test.example\r\n\r\n');
  assert.equal(r.status, 403);
  onlyNewEvent(events, 2, 'deny', 'absolute_form_refused');

  r = await exchange(port, 'GET ws://api.test.example/ HTTP/1.1\r\nHost: api.test.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  assert.equal(r.status, 403);
  onlyNewEvent(events, 3, 'deny', 'absolute_form_refused');

  r = await exchange(port, 'GET / HTTP/1.1\r\nHost: api.test.example\r\n\r\n');
  assert.equal(r.status, 400);
  onlyNewEvent(events, 4, 'deny', 'not_a_proxy_request');
  assert.equal(up.accepted(), 0);
});

test('pipelined requests on one connection make one answer and one event', async (t) => {
  const { port, events } = await startProxy(t);
  const r = await exchange(port, 'GET http://a.example/ HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(100));
  assert.equal(r.status, 403);
  assert.equal(r.raw.match(/HTTP\/1\.1 /g).length, 1);
  await new Promise((res) => setTimeout(res, 50));
  onlyNewEvent(events, 0, 'deny', 'plain_http_refused');
});

// ---------------------------------------------------------------------------
// parser and limits

test('garbage request lines are refused with 400 malformed_request', async (t) => {
  const { port, events } = await startProxy(t);
  const lines = ['\x00\x01\x02garbage\r\n\r\n', 'CONNECT\r\n\r\n', 'CONNECT api.test.example:443\r\n\r\n', 'CONNECT api.test.example:443 HTTP/9.9\r\n\r\n', 'CONNECT api.test.example:443 HTTP/1.1\r\nbad header\r\n\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'];
  for (const line of lines) {
    const before = events.length;
    const r = await exchange(port, line);
    assert.equal(r.status, 400, `${JSON.stringify(line)}: ${r.raw}`);
    assert.equal(events.length, before + 1, JSON.stringify(line));
    assert.equal(events[before].decision, 'deny');
    assert.match(events[before].details.reason, /^(malformed_request|bad_target|not_a_proxy_request)$/, JSON.stringify(line));
  }
});

test('oversized headers: 64 KiB header gets 431, as does a 9 KiB one; too many header fields 431', async (t) => {
  const { port, events } = await startProxy(t);
  let r = await exchange(port, `CONNECT api.test.example:443 HTTP/1.1\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
  assert.equal(r.status, 431);
  onlyNewEvent(events, 0, 'deny', 'header_too_large');
  r = await exchange(port, `CONNECT api.test.example:443 HTTP/1.1\r\nX-Big: ${'a'.repeat(9 * 1024)}\r\n\r\n`);
  assert.equal(r.status, 431);
  onlyNewEvent(events, 1, 'deny', 'header_too_large');
  r = await exchange(port, `CONNECT api.test.example:443 HTTP/1.1\r\n${'a: b\r\n'.repeat(129)}\r\n`);
  assert.equal(r.status, 431);
  onlyNewEvent(events, 2, 'deny', 'too_many_headers');
  // Just under the limits: allowed.
  await roundTrip(port, events, 'api.test.example:443', 'ok', { headers: `X-Pad: ${'a'.repeat(6000)}\r\n${'h: v\r\n'.repeat(100)}` });
});

test('slow headers (1 byte per second) get 408 after headerTimeoutMs; so does a silent client', async (t) => {
  const { port, events } = await startProxy(t, { limits: { headerTimeoutMs: 1200 } });
  const t0 = Date.now();
  const [slow, silent] = await Promise.all([
    exchange(port, [...'CONNECT api.test.example:443 HTTP/1.1\r\n\r\n'], { delayMs: 1000, timeoutMs: 6000 }),
    exchange(port, '', { timeoutMs: 6000 }),
  ]);
  const took = Date.now() - t0;
  assert.equal(slow.status, 408, slow.raw);
  assert.equal(silent.status, 408, silent.raw);
  // Cut at the header timeout: not before it, and long before the slow client would have finished (~40 s).
  assert.ok(took >= 1100 && took < 20_000, `took ${took} ms`);
  assert.equal(events.length, 2);
  for (const e of events) assert.deepEqual([e.decision, e.details.reason, e.details.status], ['deny', 'header_timeout', 408]);
});

test('tunnel limit: maxTunnels 2 with 3 clients, the third gets 503; a slot frees when a tunnel closes', async (t) => {
  const { port, events } = await startProxy(t, { limits: { maxTunnels: 2 } });
  const a = await openTunnel(port, 'api.test.example:443');
  const b = await openTunnel(port, 'api.test.example:443');
  assert.equal(a.status, 200);
  assert.equal(b.status, 200);
  const c = await exchange(port, 'CONNECT api.test.example:443 HTTP/1.1\r\n\r\n');
  assert.equal(c.status, 503);
  onlyNewEvent(events, 0, 'deny', 'too_many_tunnels');
  a.sock.end();
  await waitFor(() => events.length === 2, 'the closed tunnel event');
  assert.equal(events[1].decision, 'allow');
  const d = await openTunnel(port, 'api.test.example:443');
  assert.equal(d.status, 200);
  b.sock.destroy();
  d.sock.destroy();
  await waitFor(() => events.length === 4, 'both tunnel events');
});

test('idle tunnels are closed after idleTimeoutMs and recorded as idle_timeout', async (t) => {
  const { port, events } = await startProxy(t, { limits: { idleTimeoutMs: 300 } });
  const r = await openTunnel(port, 'api.test.example:443');
  assert.equal(r.status, 200);
  await readBytes(r.sock, GREETING.length, r.pending);
  const closed = new Promise((res) => r.sock.on('close', res));
  const t0 = Date.now();
  await closed;
  assert.ok(Date.now() - t0 >= 200);
  await waitFor(() => events.length === 1, 'the idle event');
  const e = onlyNewEvent(events, 0, 'allow', 'idle_timeout');
  assert.equal(e.details.bytes_down, GREETING.length);
  assert.equal(e.details.bytes_up, 0);
});

test('upstream closing ends the tunnel: reason upstream_closed, data already sent still arrives', async (t) => {
  const sockets = new Set();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.end('bye'.repeat(10_000));
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  const { port, events } = await startProxy(t, { upstream: { port: srv.address().port } });
  const r = await openTunnel(port, 'api.test.example:443');
  assert.equal(r.status, 200);
  const got = await readBytes(r.sock, 30_000, r.pending);
  assert.equal(got.length, 30_000);
  await new Promise((res) => r.sock.on('close', res));
  await waitFor(() => events.length === 1, 'the tunnel event');
  const e = onlyNewEvent(events, 0, 'allow', 'upstream_closed');
  assert.equal(e.details.bytes_down, 30_000);
});

// ---------------------------------------------------------------------------
// floods and fuzz

test('a flood of 200 rapid bogus connections: the proxy keeps answering and a legit CONNECT works afterwards', async (t) => {
  const { proxy, port, events } = await startProxy(t, { limits: { headerTimeoutMs: 1000 } });
  const kinds = [
    (i) => exchange(port, `XYZ ${i}\x00\r\n\r\n`, { timeoutMs: 3000 }),
    () => exchange(port, 'CONNECT evil.example:443 HTTP/1.1\r\n\r\n', { timeoutMs: 3000 }),
    () => exchange(port, 'GET http://x.example/ HTTP/1.1\r\n\r\n', { timeoutMs: 3000 }),
    () =>
      new Promise((res) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.write('CONN');
          s.destroy();
        });
        s.on('error', () => undefined);
        s.on('close', () => res({ status: 'reset' }));
      }),
  ];
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => kinds[i % kinds.length](i)));
  const answered = results.filter((r) => typeof r.status === 'number');
  assert.equal(answered.length, 150);
  for (const r of answered) assert.ok([400, 403].includes(r.status), JSON.stringify(r));
  // Every answered one is recorded; an abrupt reset after 4 bytes may or may not be.
  await waitFor(() => events.length >= 150, 'flood events');
  assert.ok(events.length <= 200);
  assert.ok(events.every((e) => e.decision === 'deny'));
  const n = events.length;
  await roundTrip(port, events);
  assert.equal(events.length, n + 1);
  assert.equal(proxy.stats().activeTunnels, 0);
});

/** Deterministic PRNG (mulberry32) so a failure can be replayed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

test('hostile CONNECT lines (500, seeded): never crash, never tunnel, every one answered and recorded once', async (t) => {
  const seed = Number(process.env.EGRESS_FUZZ_SEED ?? 0x1a7c4);
  const rand = rng(seed);
  const pick = (xs) => xs[Math.floor(rand() * xs.length)];
  // Mostly atoms the HTTP parser lets through (so the target parser and the
  // policy see them), some that it refuses, and some raw random bytes.
  const SAFE = ['api.test.example', 'API.TEST.EXAMPLE.', 'evil.example', 'dns.test.example', 'x.dns.test.example', 'private.dns.test.example', 'xn--80ak6aa92e.com', '127.0.0.1', '[::1]', '[::ffff:10.0.0.1]', '0x7f000001', '2130706433', '127.1', '0177.0.0.1', ':', '::', '443', '0443', '65536', '8443', '@', '%', '%2e', '/', '*', '.', '..', '-', '_', '~', '!', '$', '(', 'A'.repeat(300), '9'.repeat(20)];
  const HOSTILE = [' ', '\t', '\r', '\n', '\x00', '\x7f', '\\', '#', '?', '[', ']', 'é', '\u200b', '\uff0e', 'ａｐｉ', '\r\n\r\n', 'HTTP/1.1', 'CONNECT', '<', '"'];
  const METHODS = ['connect', 'GET', 'CONNECTX', ''];
  const lines = Array.from({ length: 500 }, () => {
    const mode = rand();
    if (mode < 0.05) return Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)));
    const atoms = mode < 0.75 ? SAFE : [...SAFE, ...HOSTILE];
    const n = 1 + Math.floor(rand() * 4);
    let target = '';
    for (let i = 0; i < n; i++) target += pick(atoms);
    if (rand() < 0.7) target += `:${pick(['443', '443', '8443', '', '0', 'x', '443:443'])}`;
    const method = rand() < 0.85 ? 'CONNECT' : pick(METHODS);
    const version = rand() < 0.85 ? 'HTTP/1.1' : pick(['HTTP/1.0', 'HTTP/2', '']);
    return Buffer.from(`${method} ${target} ${version}\r\nHost: ${target}\r\n\r\n`, 'utf8');
  });
  const up = await echoServer(t);
  const { proxy, port, events } = await startProxy(t, { upstream: up, limits: { headerTimeoutMs: 400, maxHeaderBytes: 8192 } });
  const results = [];
  for (let i = 0; i < lines.length; i += 25) {
    results.push(...(await Promise.all(lines.slice(i, i + 25).map((l) => exchange(port, l, { timeoutMs: 3000, stopAt200: true })))));
  }
  await waitFor(() => events.length >= 500 && proxy.stats().activeTunnels === 0, 'one event per hostile line', 3000).catch(() => undefined);
  let tunnels = 0;
  for (const [i, r] of results.entries()) {
    const line = JSON.stringify(lines[i].toString('latin1'));
    assert.ok(!r.timedOut, `seed ${seed} line ${i} ${line}: no answer`);
    if (r.status === 200) {
      // Only a spelling of the one allowed name and port may open a tunnel.
      tunnels++;
      assert.match(lines[i].toString('latin1'), /^CONNECT api\.test\.example\.?:443 HTTP\/1\.[01]\r\n/i, `seed ${seed} line ${i}`);
      continue;
    }
    assert.ok([400, 403, 408, 431, 502].includes(r.status), `seed ${seed} line ${i} ${line}: ${r.raw.slice(0, 200)}`);
    assert.match(r.body, /^latchgate egress proxy: [^\r\n<>]* \[[a-z_]+\]\n(?:(?:To allow it, ask the user who started this box for|Instead): [^\r\n<>]*\n)?$/, `line ${i}: fixed-form body`);
  }
  assert.equal(events.length, 500, `seed ${seed}: one event per line`);
  assert.equal(events.filter((e) => e.decision === 'allow').length, tunnels);
  assert.equal(up.accepted(), tunnels, 'no refused line reached the upstream');
  await roundTrip(port, events);
  assert.equal(proxy.stats().activeTunnels, 0);
});

// ---------------------------------------------------------------------------
// listeners, ledger, lifecycle

test('listenUnix: CONNECT over a Unix socket works (proxy-chain remoteAddress patch)', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-egress-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sockPath = path.join(dir, 'proxy.sock');
  const { proxy, events } = await startProxy(t);
  await proxy.listenUnix(sockPath);
  const e = await roundTrip(0, events, 'api.test.example:443', 'via unix', { path: sockPath });
  assert.equal(e.details.transport, 'unix');
  const r = await exchange(0, 'CONNECT evil.example:443 HTTP/1.1\r\n\r\n', { path: sockPath });
  assert.equal(r.status, 403);
  assert.equal(events.at(-1).details.transport, 'unix');
  // A stale socket file is replaced.
  const again = new ConnectProxy({ allowlist: new HostAllowlist([]), record: () => undefined });
  await proxy.close();
  await again.listenUnix(sockPath);
  await again.close();
});

test('listenFd: a proxy serving an inherited listening socket (as from RunHooks.onListen)', async (t) => {
  const up = await echoServer(t);
  const listener = net.createServer();
  await new Promise((r) => listener.listen(0, '127.0.0.1', r));
  const port = listener.address().port;
  const child = spawn(process.execPath, [FD_FIXTURE, DIST, 'api.test.example', String(up.port)], { stdio: ['pipe', 'pipe', 'inherit', listener._handle.fd] });
  t.after(() => child.kill());
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  await waitFor(() => out.includes('ready\n'), 'the fd fixture');
  listener.close(); // only the child accepts from here
  const r = await openTunnel(port, 'api.test.example:443');
  assert.equal(r.status, 200);
  r.sock.write('fd!');
  assert.equal((await readBytes(r.sock, GREETING.length + 3, r.pending)).toString(), `${GREETING}fd!`);
  r.sock.end();
  await waitFor(() => out.split('\n').length >= 3, 'the child event');
  child.stdin.end();
  await new Promise((res) => child.on('exit', res));
  const ev = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  assert.equal(ev.length, 1);
  assert.equal(ev[0].decision, 'allow');
  assert.equal(ev[0].details.transport, 'fd');
  assert.equal(ev[0].details.bytes_up, 3);
});

test('events go into a real ledger through Ledger.append and read back with event_type egress', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-egress-ledger-'));
  const ledger = Ledger.open(path.join(dir, 'ledger.db'));
  t.after(() => {
    ledger.db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const { port } = await startProxy(t, { record: (e) => ledger.append(e) });
  const r = await openTunnel(port, 'api.test.example:443');
  r.sock.end('x');
  await exchange(port, 'CONNECT evil.example:443 HTTP/1.1\r\n\r\n');
  await waitFor(() => ledger.query({ event_type: 'egress' }).length === 2, 'two ledger rows');
  const rows = ledger.query({ event_type: 'egress' });
  assert.deepEqual(rows.map((e) => [e.decision, e.details.reason]).sort(), [['allow', 'client_closed'], ['deny', 'host_not_allowed']]);
  assert.ok(rows.every((e) => typeof e.trace_id === 'string' && e.timestamp));
});

test('fail closed: once record() throws, further CONNECTs are refused with 503', async (t) => {
  let fail = false;
  const events = [];
  const { port, proxy } = await startProxy(t, {
    record: (e) => {
      events.push(e);
      if (fail) throw new Error('disk full');
    },
  });
  fail = true;
  const r1 = await exchange(port, 'CONNECT evil.example:443 HTTP/1.1\r\n\r\n');
  assert.equal(r1.status, 403);
  fail = false;
  assert.equal(proxy.stats().recordFailures, 1);
  const r2 = await exchange(port, 'CONNECT api.test.example:443 HTTP/1.1\r\n\r\n');
  assert.equal(r2.status, 503);
  assert.equal(events.at(-1).details.reason, 'ledger_unavailable');
});

test('close(): open tunnels are closed and recorded as proxy_closed; listeners stop', async (t) => {
  const { proxy, port, events } = await startProxy(t);
  const r = await openTunnel(port, 'api.test.example:443');
  assert.equal(r.status, 200);
  await readBytes(r.sock, GREETING.length, r.pending);
  await proxy.close();
  assert.equal(events.length, 1);
  onlyNewEvent(events, 0, 'allow', 'proxy_closed');
  await assert.rejects(
    new Promise((res, rej) => {
      const s = net.connect(port, '127.0.0.1', res);
      s.on('error', rej);
    }),
  );
  assert.equal(proxy.stats().activeTunnels, 0);
});

test('constructor validation', () => {
  const allowlist = new HostAllowlist(['a.example']);
  assert.throws(() => new ConnectProxy({ allowlist: ['a.example'], record() {} }), /HostAllowlist/);
  assert.throws(() => new ConnectProxy({ allowlist }), /record/);
  assert.throws(() => new ConnectProxy({ allowlist, record() {}, allowPorts: [0] }), /allowPorts/);
  assert.throws(() => new ConnectProxy({ allowlist, record() {}, limits: { maxTunnels: -1 } }), /maxTunnels/);
});
