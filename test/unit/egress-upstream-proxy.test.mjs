// The host's upstream proxy (src/egress/upstream-proxy.ts) and the two exits
// that go through it: its URL and no_proxy parsers (with a seeded fuzz), the
// precedence of config over environment, the CONNECT client against a local
// recording proxy (tests/helpers/upstream-proxy.mjs), and the CONNECT proxy
// and credential proxy tunnelling through it. Loopback only: every target the
// recording proxy reaches is on 127.0.0.1.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { ConnectProxy } from '../../dist/egress/connect-proxy.js';
import { CredentialProxy } from '../../dist/egress/credential-proxy.js';
import { HostAllowlist } from '../../dist/egress/allowlist.js';
import { LaunchError } from '../../dist/core/errors.js';
import { NoProxy, openTunnel, parseProxyUrl, upstreamProxyFrom, UpstreamProxyError } from '../../dist/egress/upstream-proxy.js';
import { closedPort, upstreamProxy } from '../helpers/upstream-proxy.mjs';
import { createHttpHost } from '../../dist/providers/host-http.js';
import { EnvSecretSource } from '../../dist/providers/secret-source.js';
import { tempDir, prng } from '../fixtures/unit/helpers.mjs';
import { makePki, haveOpenssl } from '../fixtures/egress-cred/pki.mjs';

const SECRET = 'pa55-w0rd-never-shown';
const SECTION = 'latchgate.toml: [sandbox.network]';

// ------------------------------------------------------------- parsing

test('parseProxyUrl: host, port and a Basic credential; the display never holds the credentials', () => {
  const p = parseProxyUrl(`http://alice:${SECRET}@proxy.corp.example:3128/`, 'HTTPS_PROXY');
  assert.equal(p.host, 'proxy.corp.example');
  assert.equal(p.port, 3128);
  assert.equal(p.authorization, `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`);
  assert.equal(p.display, 'http://***@proxy.corp.example:3128');
  const bare = parseProxyUrl('proxy.corp.example:8080', 'HTTPS_PROXY');
  assert.deepEqual([bare.host, bare.port, bare.authorization, bare.display], ['proxy.corp.example', 8080, null, 'http://proxy.corp.example:8080']);
  const v6 = parseProxyUrl('http://[::1]:80', 'x');
  assert.deepEqual([v6.host, v6.port, v6.display], ['::1', 80, 'http://[::1]:80']);
  const enc = parseProxyUrl('http://a%40b:p%3Ass@h:1', 'x');
  assert.equal(Buffer.from(enc.authorization.slice(6), 'base64').toString(), 'a@b:p:ss');
});

for (const [value, why] of [
  ['', /is empty/],
  [`https://u:${SECRET}@proxy:443`, /https:\/\/ proxy .* not supported/],
  [`socks5://u:${SECRET}@proxy:1080`, /scheme "socks5" is not supported/],
  [`http://u:${SECRET}@proxy`, /has no port/],
  [`http://u:${SECRET}@proxy:3128/path`, /path, query or fragment/],
  [`http://u:${SECRET}@proxy:3128?x`, /path, query or fragment/],
  [`http://u:${SECRET} @proxy:3128`, /spaces or control/],
  [`http://u:${SECRET}@:3128`, /not a URL|no host/],
]) {
  test(`parseProxyUrl refuses ${JSON.stringify(value.replace(SECRET, '<secret>'))} naming the field, never quoting the value`, () => {
    assert.throws(() => parseProxyUrl(value, `${SECTION} upstream_proxy`), (e) => {
      assert.ok(e instanceof LaunchError);
      assert.match(e.message, /^latchgate\.toml: \[sandbox\.network\] upstream_proxy: /);
      assert.match(e.message, why);
      assert.ok(!e.message.includes(SECRET), e.message);
      return true;
    });
  });
}

test('NoProxy: curl rules (suffix match, leading dot or *., ports, "*", addresses and CIDR against a literal or pinned address)', () => {
  const n = NoProxy.fromList('internal.example, .corp.example  *.dev.example,mirror.example:8443,10.0.0.0/8,[fd00::1],192.168.1.5:443', 'NO_PROXY');
  const yes = [
    ['internal.example', 443], ['a.b.internal.example', 443], ['corp.example', 443], ['x.corp.example', 443], ['dev.example', 1],
    ['y.dev.example', 443], ['mirror.example', 8443], ['MIRROR.example.', 8443],
  ];
  for (const [h, p] of yes) assert.equal(n.bypasses(h, p), true, `${h}:${p}`);
  const no = [['notinternal.example', 443], ['internal.example.com', 443], ['mirror.example', 443], ['example', 443], ['corp.example.evil', 443]];
  for (const [h, p] of no) assert.equal(n.bypasses(h, p), false, `${h}:${p}`);
  assert.equal(n.bypasses('pinned.example', 443, '10.9.8.7'), true, 'a pinned address in 10/8');
  assert.equal(n.bypasses('pinned.example', 443, '11.0.0.1'), false);
  assert.equal(n.bypasses('10.1.1.1', 443), true, 'an upstream written as an address');
  assert.equal(n.bypasses('fd00::1', 443), true);
  assert.equal(n.bypasses('x', 443, '192.168.1.5'), true);
  assert.equal(n.bypasses('x', 80, '192.168.1.5'), false, 'the port narrows an address entry');
  assert.equal(NoProxy.fromList('*', 'NO_PROXY').bypasses('anything.example', 443), true);
  assert.equal(NoProxy.fromList('', 'NO_PROXY').bypasses('anything.example', 443), false);
  assert.deepEqual(NoProxy.fromList(' a.example ,, b.example ', 'x').entries, ['a.example', 'b.example']);
});

for (const bad of ['a..b', 'exa mple', '10.0.0.0/33', 'fd00::/129', 'host:0', 'host:99999', '*.*.example', 'a/b', '[::1', '1.2.3.4/8/9', 'http://x.example']) {
  test(`NoProxy refuses ${JSON.stringify(bad)} naming the field and the entry`, () => {
    assert.throws(() => new NoProxy(['ok.example', bad], `${SECTION} no_proxy`), (e) => {
      assert.ok(e instanceof LaunchError, String(e));
      assert.ok(e.message.startsWith(`${SECTION} no_proxy[1] `), e.message);
      return true;
    });
  });
}

test('NoProxy and parseProxyUrl, fuzzed (seeded): any text is parsed or refused with a LaunchError, never another error, never echoing a password', () => {
  const rnd = prng(0x17e);
  const alphabet = ['a', 'b', '.', '*', ':', '/', '[', ']', '1', '0', '9', ',', ' ', '-', '@', '%', 'f', 'd', '\t', 'é', '\u0000', 'x', 'http://', 'user:pw@'];
  for (let i = 0; i < 3000; i++) {
    const s = Array.from({ length: 1 + rnd.below(24) }, () => rnd.pick(alphabet)).join('');
    try {
      const n = NoProxy.fromList(s, 'NO_PROXY');
      n.bypasses('a.b', 443, '10.0.0.1');
    } catch (e) {
      assert.ok(e instanceof LaunchError, `NoProxy ${JSON.stringify(s)}: ${e}`);
    }
    const url = `http://u:${SECRET}@${s}`;
    try {
      const p = parseProxyUrl(url, 'HTTPS_PROXY');
      assert.ok(!p.display.includes(SECRET));
    } catch (e) {
      assert.ok(e instanceof LaunchError, `parseProxyUrl ${JSON.stringify(url)}: ${e}`);
      assert.ok(!e.message.includes(SECRET), e.message);
    }
  }
});

test('upstreamProxyFrom: the config wins over the environment, "none" turns it off, https_proxy before HTTPS_PROXY; each says its source', () => {
  const env = { HTTPS_PROXY: 'http://env-upper:3128', https_proxy: 'http://env-lower:3128', NO_PROXY: 'upper.example', no_proxy: 'lower.example' };
  const fromCfg = upstreamProxyFrom({ upstreamProxy: 'http://cfg:8080', noProxy: ['cfg.example'], section: SECTION }, env);
  assert.deepEqual([fromCfg.host, fromCfg.source, fromCfg.noProxy.entries, fromCfg.noProxy.source], ['cfg', `${SECTION} upstream_proxy`, ['cfg.example'], `${SECTION} no_proxy`]);
  const fromEnv = upstreamProxyFrom({ section: SECTION }, env);
  assert.deepEqual([fromEnv.host, fromEnv.source, fromEnv.noProxy.entries], ['env-lower', "https_proxy (the launcher's environment)", ['lower.example']]);
  const upper = upstreamProxyFrom({ section: SECTION }, { HTTPS_PROXY: 'http://env-upper:3128', NO_PROXY: 'upper.example' });
  assert.deepEqual([upper.host, upper.source, upper.noProxy.source], ['env-upper', "HTTPS_PROXY (the launcher's environment)", "NO_PROXY (the launcher's environment)"]);
  const cfgNoProxyOnly = upstreamProxyFrom({ noProxy: [], section: SECTION }, env);
  assert.deepEqual(cfgNoProxyOnly.noProxy.entries, [], 'an empty no_proxy in the config replaces the environment\'s');
  assert.equal(upstreamProxyFrom({ upstreamProxy: 'none', section: SECTION }, env), null);
  assert.equal(upstreamProxyFrom({ section: SECTION }, {}), null);
  assert.equal(upstreamProxyFrom({ section: SECTION }, { https_proxy: '  ' }), null);
  assert.throws(() => upstreamProxyFrom({ section: SECTION }, { https_proxy: `http://u:${SECRET}@nowhere` }), (e) => /^https_proxy \(the launcher's environment\): has no port/.test(e.message) && !e.message.includes(SECRET));
});

// ------------------------------------------------------------- the CONNECT client

const proxyOf = (url, noProxy = []) => upstreamProxyFrom({ upstreamProxy: url, noProxy, section: SECTION }, {});

/** A TCP server on 127.0.0.1 that greets, then echoes. */
async function echoServer(t) {
  const sockets = new Set();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.write('hello from upstream\n');
    s.pipe(s);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return srv.address().port;
}

async function withProxy(t, opts) {
  const p = await upstreamProxy(opts);
  t.after(() => p.close());
  return p;
}

/** A server that accepts and answers with `answer` (or never, for null). */
async function rawServer(t, answer) {
  const sockets = new Set();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('data', () => answer !== null && s.write(answer));
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return srv.address().port;
}

test('openTunnel: CONNECT with the credential, then the tunnel carries bytes both ways', async (t) => {
  const echo = await echoServer(t);
  const up = await withProxy(t, { auth: `alice:${SECRET}` });
  const sock = await openTunnel(proxyOf(up.url()), '127.0.0.1', echo, { timeoutMs: 5000 });
  sock.resume();
  sock.write('ping\n');
  let got = '';
  for await (const c of sock) {
    got += c;
    if (got.includes('ping\n')) break;
  }
  sock.destroy();
  assert.equal(got, 'hello from upstream\nping\n');
  assert.deepEqual(up.seen, [{ method: 'CONNECT', target: `127.0.0.1:${echo}`, authorization: `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}` }]);
});

test('openTunnel: refused (407, 403), unreachable, silent and non-HTTP proxies each reject with their reason and the redacted proxy', async (t) => {
  const up = await withProxy(t, { auth: 'alice:right' });
  const cases = [
    [proxyOf(up.url(`alice:${SECRET}`)), 'upstream_proxy_refused', /refused CONNECT 127\.0\.0\.1:9 with 407 .*did not accept the credentials/],
    [proxyOf(up.url('')), 'upstream_proxy_refused', /407 .*wants credentials/],
    [proxyOf(`http://u:${SECRET}@127.0.0.1:${await rawServer(t, 'HTTP/1.1 403 Forbidden\r\n\r\n')}`), 'upstream_proxy_refused', /403 Forbidden/],
    [proxyOf(`http://u:${SECRET}@127.0.0.1:${await closedPort()}`), 'upstream_proxy_unreachable', /is unreachable \(ECONNREFUSED\)/],
    [proxyOf(`http://u:${SECRET}@127.0.0.1:${await rawServer(t, null)}`), 'upstream_proxy_timeout', /did not answer CONNECT within 300 ms/],
    [proxyOf(`http://u:${SECRET}@127.0.0.1:${await rawServer(t, 'SSH-2.0-OpenSSH\r\n\r\n')}`), 'upstream_proxy_bad_answer', /other than HTTP/],
  ];
  for (const [p, reason, message] of cases) {
    await assert.rejects(openTunnel(p, '127.0.0.1', 9, { timeoutMs: 300 }), (e) => {
      assert.ok(e instanceof UpstreamProxyError, String(e));
      assert.equal(e.reason, reason);
      assert.match(e.message, message);
      assert.match(e.message, /http:\/\/(\*\*\*@)?127\.0\.0\.1:\d+/);
      assert.ok(!e.message.includes(SECRET) && !e.message.includes('right'), e.message);
      return true;
    });
  }
});

// ------------------------------------------------------------- the CONNECT proxy through it

/** Sends CONNECT target and resolves { status, body } of the answer (the first bytes after a 200). */
function connectThrough(port, target) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = Number(buf.split(' ')[1]);
      if (status !== 200 || buf.length > end + 4) {
        s.destroy();
        resolve({ status, head: buf.slice(0, end), body: buf.slice(end + 4) });
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve({ status: Number(buf.split(' ')[1]), head: buf, body: '' }));
    setTimeout(() => s.destroy(), 5000);
  });
}

async function connectProxy(t, proxy, { lookup, pins = [] } = {}) {
  const events = [];
  const cp = new ConnectProxy({
    allowlist: new HostAllowlist(['api.test.example', '*.dns.test.example', 'direct.test.example']),
    pinned: new Map(pins),
    lookup: lookup ?? (async (name) => {
      if (name === 'private.dns.test.example') return [{ address: '10.0.0.1', family: 4 }];
      if (name === 'public.dns.test.example') return [{ address: '93.184.216.34', family: 4 }];
      throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
    }),
    record: (e) => events.push(e),
    upstreamProxy: proxy,
  });
  const { port } = await cp.listenTcp('127.0.0.1', 0);
  t.after(() => cp.close());
  return { port, events };
}

const settle = () => new Promise((r) => setTimeout(r, 100));

test('ConnectProxy with an upstream proxy: an allowed host goes through it with its credential; a refused one never reaches it; no_proxy goes direct', async (t) => {
  const echo = await echoServer(t);
  const up = await withProxy(t, { auth: `alice:${SECRET}`, names: { 'unresolved.dns.test.example': echo } });
  const proxy = proxyOf(up.url(), ['direct.test.example']);
  const { port, events } = await connectProxy(t, proxy, {
    pins: [['api.test.example', { ip: '127.0.0.1', port: echo }], ['direct.test.example', { ip: '127.0.0.1', port: echo }]],
  });

  const pinned = await connectThrough(port, 'api.test.example:443');
  assert.equal(pinned.status, 200, pinned.head);
  assert.equal(pinned.body, 'hello from upstream\n');
  assert.deepEqual(up.seen.map((s) => [s.target, s.authorization]), [[`127.0.0.1:${echo}`, `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`]], 'a pinned name: its pinned address, through the proxy');

  const byName = await connectThrough(port, 'unresolved.dns.test.example:443');
  assert.equal(byName.status, 200, 'a name the launcher cannot resolve is the proxy\'s to resolve');
  assert.equal(up.seen.at(-1).target, 'unresolved.dns.test.example:443');

  for (const refused of ['denied.example:443', 'api.test.example:8443', '127.0.0.1:443', 'private.dns.test.example:443']) {
    const r = await connectThrough(port, refused);
    assert.equal(r.status, 403, `${refused}: ${r.head}`);
  }
  assert.equal(up.seen.length, 2, 'no refused host reached the upstream proxy');

  const direct = await connectThrough(port, 'direct.test.example:443');
  assert.equal(direct.status, 200);
  assert.equal(direct.body, 'hello from upstream\n');
  assert.equal(up.seen.length, 2, 'a no_proxy host went direct');

  await settle();
  const allowed = events.filter((e) => e.decision === 'allow');
  const via = allowed.filter((e) => e.details.upstream_proxy);
  assert.equal(via.length, 2);
  for (const e of via) assert.deepEqual(e.details.upstream_proxy, { url: `http://***@127.0.0.1:${up.port}`, source: `${SECTION} upstream_proxy` });
  assert.deepEqual(via.map((e) => [e.details.host, e.details.proxy_target, e.details.resolved_address]).sort(), [
    ['api.test.example', `127.0.0.1:${echo}`, '127.0.0.1'],
    ['unresolved.dns.test.example', 'unresolved.dns.test.example:443', null],
  ]);
  assert.equal(allowed.find((e) => e.details.host === 'direct.test.example').details.upstream_proxy, undefined);
  const denied = events.filter((e) => e.decision === 'deny').map((e) => e.details.reason).sort();
  assert.deepEqual(denied, ['address_not_allowed', 'host_not_allowed', 'literal_ip', 'port_not_allowed']);
  assert.ok(!JSON.stringify(events).includes(SECRET));
});

test('ConnectProxy: an unreachable or refusing upstream proxy is a denial that says so (502), recorded with the redacted proxy', async (t) => {
  const dead = proxyOf(`http://alice:${SECRET}@127.0.0.1:${await closedPort()}`);
  const a = await connectProxy(t, dead, { pins: [['api.test.example', { ip: '127.0.0.1', port: 9 }]] });
  const r = await connectThrough(a.port, 'api.test.example:443');
  assert.equal(r.status, 502);
  assert.match(r.head, /x-latchgate-reason: upstream_proxy_unreachable/i);
  assert.match(r.body + r.head, /upstream proxy could not be reached/);
  assert.ok(!(r.head + r.body).includes(SECRET) && !(r.head + r.body).includes('127.0.0.1:'), 'the box is not told where the host\'s proxy is');
  const e = a.events.find((x) => x.decision === 'deny');
  assert.equal(e.details.reason, 'upstream_proxy_unreachable');
  assert.match(e.details.detail, /ECONNREFUSED/);
  assert.equal(e.details.upstream_proxy.url, `http://***@127.0.0.1:${dead.port}`);
  assert.ok(!JSON.stringify(a.events).includes(SECRET));

  const up = await withProxy(t, { auth: 'alice:other' });
  const b = await connectProxy(t, proxyOf(up.url(`alice:${SECRET}`)), { pins: [['api.test.example', { ip: '127.0.0.1', port: 9 }]] });
  const r2 = await connectThrough(b.port, 'api.test.example:443');
  assert.equal(r2.status, 502);
  assert.match(r2.head, /x-latchgate-reason: upstream_proxy_refused/i);
  assert.match(b.events.find((x) => x.decision === 'deny').details.detail, /407/);
});

// ------------------------------------------------------------- the credential proxy through it

describe('credential proxy through an upstream proxy', { skip: !haveOpenssl() && 'openssl CLI not found' }, () => {
  const KEY = `sk-route-key-${process.pid}-abcdef0123`;
  let pki;
  let server;
  let upPort;
  const got = [];
  before(async () => {
    pki = makePki(tempDir({ after }, 'latchgate-upstream-cred-'), 'DNS:named.example.test');
    server = https.createServer({ key: pki.server.key, cert: pki.server.cert }, (req, res) => {
      got.push({ url: req.url, key: req.headers['x-api-key'] });
      res.end(`upstream saw ${req.url}`);
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    upPort = server.address().port;
  });
  after(() => server?.close());

  async function credProxy(t, proxy, pinPort = upPort) {
    const events = [];
    const cp = new CredentialProxy({
      routes: [{ name: 'fake', upstream: 'https://api.example.test/v1', header: 'x-api-key', format: '{}', key: KEY }],
      record: (e) => events.push(e),
      extraCaCerts: [pki.caPem],
      resolve: (h) => (h === 'api.example.test' ? { host: '127.0.0.1', port: pinPort } : undefined),
      upstreamProxy: proxy,
    });
    const port = await cp.listenTcp('127.0.0.1', 0);
    t.after(() => cp.close());
    return { port, events };
  }

  const get = (port, path) =>
    new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      }).on('error', reject);
    });

  test('the route is reached through the proxy (TLS verified end to end inside the tunnel); the event names the proxy, never its credential', async (t) => {
    const up = await withProxy(t, { auth: `alice:${SECRET}` });
    const { port, events } = await credProxy(t, proxyOf(up.url()));
    got.length = 0;
    const r = await get(port, '/fake/chat');
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /upstream saw \/v1\/chat$/);
    assert.deepEqual(got, [{ url: '/v1/chat', key: KEY }]);
    assert.deepEqual(up.seen.map((s) => s.target), [`127.0.0.1:${upPort}`]);
    await settle();
    assert.deepEqual(events[0].details.upstream_proxy, { url: `http://***@127.0.0.1:${up.port}`, source: `${SECTION} upstream_proxy` });
    assert.ok(!JSON.stringify(events).includes(SECRET) && !JSON.stringify(events).includes(KEY));
  });

  test('a proxy that presents a certificate of its own (a MITM) inside the tunnel is refused: TLS is checked against the upstream name', async (t) => {
    const rogue = tls.createServer({ key: pki.rogue.key, cert: pki.rogue.cert }, (s) => s.end());
    await new Promise((r) => rogue.listen(0, '127.0.0.1', r));
    t.after(() => rogue.close());
    // The tunnel leads to a server with another CA's certificate, as an intercepting proxy's would.
    const up = await withProxy(t, {});
    const { port, events } = await credProxy(t, proxyOf(up.url('')), rogue.address().port);
    got.length = 0;
    const r = await get(port, '/fake/x');
    assert.equal(r.status, 502, r.text);
    assert.equal(up.seen.length, 1);
    assert.equal(got.length, 0);
    await settle();
    assert.equal(events[0].details.reason, 'upstream_tls_failed');
  });

  test('an unreachable proxy: 502 upstream_proxy_unreachable, the box told the host must fix it, the event names the proxy', async (t) => {
    const dead = proxyOf(`http://alice:${SECRET}@127.0.0.1:${await closedPort()}`);
    const { port, events } = await credProxy(t, dead);
    const r = await get(port, '/fake/chat');
    assert.equal(r.status, 502, r.text);
    assert.match(r.text, /"error":"upstream_proxy_unreachable"/);
    assert.match(r.text, /the host's upstream proxy failed/);
    assert.ok(!r.text.includes(SECRET) && !r.text.includes(String(dead.port)));
    await settle();
    assert.equal(events[0].details.reason, 'upstream_proxy_unreachable');
    assert.equal(events[0].details.upstream_proxy.url, `http://***@127.0.0.1:${dead.port}`);
  });

  /** The providers' HTTP host of an action allowed api/named/private.example.test, through proxy. */
  function httpHost(proxy) {
    return createHttpHost({
      allowed_domains: ['api.example.test', 'named.example.test', 'private.example.test'],
      allowed_methods: ['GET'],
      pins: new Map([['api.example.test', { ip: '127.0.0.1', port: upPort }]]),
      ca: [pki.caPem],
      timeout_ms: 5000,
      max_response_bytes: 4096,
      max_request_bytes: 4096,
      secrets: new EnvSecretSource({}),
      declared_secrets: [],
      upstream_proxy: proxy,
      lookup: async (name) => {
        if (name === 'private.example.test') return [{ address: '10.0.0.1', family: 4 }];
        throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
      },
    });
  }
  const text = (r) => Buffer.from(r.body).toString('utf8');

  test("the gate's providers' HTTP host goes through it too: a pinned name by its address, an unresolvable one by name; a private one is refused before it", async (t) => {
    const up = await withProxy(t, { auth: `alice:${SECRET}`, names: { 'named.example.test': upPort } });
    const host = httpHost(proxyOf(up.url()));
    got.length = 0;
    assert.equal(text(await host({ method: 'GET', url: 'https://api.example.test/pinned', headers: [] })), 'upstream saw /pinned');
    assert.equal(text(await host({ method: 'GET', url: 'https://named.example.test/named', headers: [] })), 'upstream saw /named');
    await assert.rejects(host({ method: 'GET', url: 'https://private.example.test/x', headers: [] }), (e) => e.code === 'address_not_allowed');
    await assert.rejects(host({ method: 'GET', url: 'https://elsewhere.example.test/x', headers: [] }), (e) => e.code === 'host_not_allowed');
    assert.deepEqual(up.seen.map((s) => s.target), [`127.0.0.1:${upPort}`, 'named.example.test:443']);
    assert.ok(up.seen.every((s) => s.authorization === `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`));
    assert.deepEqual(host.evidence.slice(0, 2).map((e) => [e.upstream_proxy, e.address, e.pinned]), [
      [`http://***@127.0.0.1:${up.port}`, '127.0.0.1', true],
      [`http://***@127.0.0.1:${up.port}`, null, false],
    ]);
    assert.ok(!JSON.stringify(host.evidence).includes(SECRET));
  });

  test("the providers' HTTP host: an unreachable proxy is the provider's upstream_proxy_unreachable, naming neither the proxy nor its credential; a MITM inside the tunnel fails TLS", async (t) => {
    const dead = proxyOf(`http://alice:${SECRET}@127.0.0.1:${await closedPort()}`);
    await assert.rejects(httpHost(dead)({ method: 'GET', url: 'https://api.example.test/x', headers: [] }), (e) => {
      assert.equal(e.code, 'upstream_proxy_unreachable');
      assert.ok(!e.message.includes(SECRET) && !e.message.includes(String(dead.port)), e.message);
      return true;
    });
    const rogue = tls.createServer({ key: pki.rogue.key, cert: pki.rogue.cert }, (s) => s.end());
    await new Promise((r) => rogue.listen(0, '127.0.0.1', r));
    t.after(() => rogue.close());
    const up = await withProxy(t, { names: { 'named.example.test': rogue.address().port } });
    await assert.rejects(httpHost(proxyOf(up.url('')))({ method: 'GET', url: 'https://named.example.test/x', headers: [] }), (e) => e.code === 'tls_failed');
    assert.equal(up.seen.length, 1);
  });

  test("the providers' HTTP host: the call's end cuts a tunnel still waiting for the proxy's answer, and nothing goes into it; after the end no CONNECT is sent", async (t) => {
    /** A proxy that reads CONNECT and answers only when told; what each connection sent, and whether it closed. */
    const conns = [];
    const srv = net.createServer((s) => {
      const c = { text: '', closed: false, answer: () => s.write('HTTP/1.1 200 Connection established\r\n\r\n') };
      conns.push(c);
      s.on('data', (d) => (c.text += d.toString('latin1')));
      s.on('close', () => (c.closed = true));
      s.on('error', () => undefined);
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => srv.close());
    const waitFor = async (cond, what) => {
      for (let i = 0; i < 300 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(cond(), what);
    };
    const host = httpHost(proxyOf(`http://127.0.0.1:${srv.address().port}`));
    const pending = host({ method: 'GET', url: 'https://api.example.test/held', headers: [] }, async () => undefined);
    await waitFor(() => conns[0]?.text.endsWith('\r\n\r\n'), 'no CONNECT reached the proxy');
    const sentBefore = conns[0].text;
    host.close();
    await assert.rejects(pending, (e) => ['call_cut', 'call_ended'].includes(e.code));
    await waitFor(() => conns[0].closed, 'the tunnel was left open after the call ended');
    conns[0].answer();
    await settle();
    assert.equal(conns[0].text, sentBefore, 'bytes went into the tunnel after the call ended');
    await assert.rejects(host({ method: 'GET', url: 'https://api.example.test/later', headers: [] }, async () => undefined), (e) => e.code === 'call_ended');
    await settle();
    assert.equal(conns.length, 1, 'a CONNECT was sent after the call ended');
  });

  test('a route no_proxy names goes direct', async (t) => {
    const up = await withProxy(t, {});
    const { port, events } = await credProxy(t, proxyOf(up.url(''), ['.example.test']));
    const r = await get(port, '/fake/direct');
    assert.equal(r.status, 200, r.text);
    assert.equal(up.seen.length, 0);
    await settle();
    assert.equal(events[0].details.upstream_proxy, undefined);
  });
});

// ------------------------------------------------------------- the user's summary

test('DenialSummary: a failed upstream proxy (a CONNECT denial, a credential route error) is said with the fix naming the proxy and its source', async () => {
  const { DenialSummary } = await import('../../dist/sandbox/denials.js');
  const sum = new DenialSummary({ allowPorts: [443], proxied: true });
  const via = { url: 'http://***@proxy.corp.example:3128', source: "HTTPS_PROXY (the launcher's environment)" };
  const n1 = sum.add({ event_type: 'egress', decision: 'deny', details: { host: 'api.example.com', port: 443, reason: 'upstream_proxy_unreachable', upstream_proxy: via } });
  assert.equal(n1.reason, 'upstream_proxy_unreachable');
  assert.match(n1.fix, /upstream proxy http:\/\/\*\*\*@proxy\.corp\.example:3128 \(from HTTPS_PROXY \(the launcher's environment\)\) is reachable/);
  const n2 = sum.add({ event_type: 'credential_proxy', decision: 'error', details: { route: 'openai', path: '/openai/v1', reason: 'upstream_proxy_refused', upstream_proxy: via } });
  assert.equal(n2.host, 'credential route openai');
  assert.match(n2.fix, /upstream proxy/);
  assert.equal(sum.add({ event_type: 'credential_proxy', decision: 'error', details: { route: 'openai', path: '/openai/v1', reason: 'upstream_timeout' } }), null, 'other upstream errors are not refusals');
  assert.equal(sum.report().total, 2);
  assert.match(sum.lines('p').join('\n'), /api\.example\.com: CONNECT :443 upstream_proxy_unreachable x1; fix: check that the upstream proxy/);
});

test('a config granting an upstream proxy is shown for trust without its credentials', async () => {
  const { grantsOf } = await import('../../dist/config/grants.js');
  const doc = { sandbox: { network: { upstream_proxy: `http://alice:${SECRET}@proxy.corp.example:3128`, no_proxy: ['.corp.example'] } }, gate: { upstream_proxy: `bob:${SECRET}@gw.corp.example:8080` } };
  const lines = grantsOf(doc, 'latchgate.toml', { file: '/etc/latchgate/latchgate.toml', cwd: '/' });
  assert.deepEqual(lines, ['upstream_proxy: http://***@proxy.corp.example:3128', 'no_proxy: .corp.example', 'gate.upstream_proxy: ***@gw.corp.example:8080']);
});
