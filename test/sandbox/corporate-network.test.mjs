// A box on a corporate network, end to end: the launcher's HTTPS_PROXY (with
// a password) names a local recording CONNECT proxy (test/helpers/
// upstream-proxy.mjs), and extra_ca_certs a test CA. Inside the box curl,
// git, Node and Python reach an allowlisted name (pinned to a local TLS
// server the test CA signed) through the box's CONNECT proxy and then the
// upstream proxy, trusting the CA through the generated bundle with no flag
// of their own; the credential route goes through the upstream proxy too; a
// refused host never reaches it; a NO_PROXY host goes direct; the password
// never enters the box, the plan or the ledger. An unreachable upstream
// proxy is said with the fix, and a missing CA file stops the launch (125).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, testUser } from '../helpers/sandbox.mjs';
import { boxUpstream, cliAs as cli, haveOpenssl } from '../helpers/box-upstream.mjs';
import { closedPort, upstreamProxy } from '../helpers/upstream-proxy.mjs';

const KEY = `sk-host-only-${process.pid}-0123456789abcdef`;
const PROXY_PASSWORD = `pr0xy-pw-${process.pid}`;
const PROXY_AUTH = `alice:${PROXY_PASSWORD}`;
const dirs = [];
const seen = [];
let upstream;
let proxy;

before(async () => {
  upstream = await boxUpstream('corpnet', (req, res) => {
    seen.push({ url: req.url, key: req.headers['x-api-key'], agent: req.headers['user-agent'] ?? '' });
    if (req.url.startsWith('/repo.git/')) {
      res.writeHead(404);
      res.end('no such repository\n');
      return;
    }
    res.setHeader('content-type', 'text/plain');
    res.end(`hello from upstream ${req.url}\n`);
  }, 'DNS:direct.example.test');
  proxy = await upstreamProxy({ auth: PROXY_AUTH });
});

after(() => {
  upstream?.close();
  proxy?.close();
  cleanupWorkspaces();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A config home whose latchgate.toml allowlists the names, pins them to the upstream, routes "fake" to it and trusts caFile. */
function home(mode, caFile = upstream.pki.caFile, network = []) {
  const h = mkdtempSync(path.join(os.tmpdir(), 'latchgate-corpnet-home-'));
  dirs.push(h);
  const cfgDir = path.join(h, 'cfg', 'latchgate');
  mkdirSync(cfgDir, { recursive: true });
  const cfg = path.join(cfgDir, 'latchgate.toml');
  const pin = `"127.0.0.1:${upstream.port}"`;
  writeFileSync(cfg, [
    '[sandbox.agent]',
    'allow_hosts = ["api.example.test", "direct.example.test"]',
    '',
    '[sandbox.agent.credentials.fake]',
    'upstream = "https://api.example.test/v1"',
    'header = "x-api-key"',
    'key_source = "env:FAKE_API_KEY"',
    '',
    '[sandbox.network]',
    `extra_ca_certs = [${JSON.stringify(caFile)}]`,
    ...network,
    '',
    '[sandbox.network.resolve]',
    `"api.example.test" = ${pin}`,
    `"direct.example.test" = ${pin}`,
    '',
  ].join('\n'));
  if (mode === 'user' && process.getuid() === 0) spawnSync('chown', ['-R', `${testUser().uid}:${testUser().gid}`, h]);
  const env = { XDG_STATE_HOME: path.join(h, 'state'), XDG_RUNTIME_DIR: path.join(h, 'run'), XDG_CONFIG_HOME: path.join(h, 'cfg'), FAKE_API_KEY: KEY };
  return { cfg, env };
}

const corporate = (h, proxyUrl = proxy.url()) => ({ ...h.env, HTTPS_PROXY: proxyUrl, NO_PROXY: 'localhost,direct.example.test' });

// No --cacert, no proxy option: each tool finds the proxy and the bundle in its environment.
const SCRIPT = `
curl -sS --max-time 10 https://api.example.test/curl; echo "curl=$?"
curl -sS --max-time 10 https://denied.example.test/ 2>&1; echo "denied=$?"
curl -sS --max-time 10 https://direct.example.test/direct; echo "direct=$?"
curl -sS --max-time 10 "$FAKE_BASE_URL/route"; echo "route=$?"
git ls-remote https://api.example.test/repo.git 2>&1 | tr '\\n' ' '; echo "git=$?"
/usr/bin/python3 -c 'import urllib.request; print(urllib.request.urlopen("https://api.example.test/python", timeout=10).read().decode().strip())' 2>&1 | tail -1
/usr/bin/node -e '
const http = require("http"), tls = require("tls");
http.request({ host: "127.0.0.1", port: 3128, method: "CONNECT", path: "api.example.test:443" }).on("connect", (res, socket) => {
  const t = tls.connect({ socket, servername: "api.example.test" }, () => t.write("GET /node HTTP/1.1\\r\\nHost: api.example.test\\r\\nConnection: close\\r\\n\\r\\n"));
  let body = ""; t.on("data", (d) => (body += d)); t.on("end", () => console.log("node", body.split("\\r\\n\\r\\n")[1].trim()));
  t.on("error", (e) => console.log("node", e.code));
}).end();'
echo "env-secret=$(env | grep -c "${PROXY_PASSWORD}")"
echo "proxy-var=$HTTPS_PROXY"
`;

const SKIP_OPENSSL = haveOpenssl() ? undefined : 'openssl is missing: cannot make the test certificates (make setup installs it)';

for (const mode of MODES) {
  test(`[${mode}] behind an upstream proxy: curl, git, python and node in the box go through it and trust extra_ca_certs; refused hosts never reach it; NO_PROXY goes direct`, { skip: skipReason(mode) ?? SKIP_OPENSSL }, async () => {
    const h = home(mode);
    const ws = makeWorkspace('corpnet');
    seen.length = 0;
    proxy.seen.length = 0;
    const env = corporate(h);
    const r = await runBox(mode, { workspace: ws, env, args: ['--config', h.cfg], cmd: ['/bin/sh', '-c', SCRIPT], timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    assert.match(out, /^hello from upstream \/curl$/m, out);
    assert.match(out, /^curl=0$/m);
    assert.match(out, /403/, 'a name off the allowlist is refused by the box\'s proxy');
    assert.doesNotMatch(out, /^denied=0$/m);
    assert.match(out, /^hello from upstream \/direct$/m);
    assert.match(out, /^hello from upstream \/v1\/route$/m, 'the credential route');
    assert.match(out, /repository .* not found.*git=/, `git verified the upstream with the bundle and got its 404: ${out}`);
    assert.doesNotMatch(out, /certificate|SSL/i, out);
    assert.match(out, /^hello from upstream \/python$/m, out);
    assert.match(out, /^node hello from upstream \/node$/m, out);
    assert.match(out, /^env-secret=0$/m, 'the proxy password is not in the box');
    assert.match(out, /^proxy-var=http:\/\/127\.0\.0\.1:3128$/m, "the box's HTTPS_PROXY is its own exit");
    assert.ok(!(out + r.stderr).includes(PROXY_PASSWORD));

    // What the upstream proxy saw: every tunnel to the pinned upstream, each with the credential; nothing for the refused or the NO_PROXY host.
    const auth = `Basic ${Buffer.from(PROXY_AUTH).toString('base64')}`;
    assert.ok(proxy.seen.length >= 5, JSON.stringify(proxy.seen));
    for (const s of proxy.seen) assert.deepEqual(s, { method: 'CONNECT', target: `127.0.0.1:${upstream.port}`, authorization: auth });
    const urls = seen.map((s) => s.url);
    for (const u of ['/curl', '/direct', '/v1/route', '/python', '/node']) assert.ok(urls.includes(u), `${u} reached the upstream: ${urls}`);
    assert.ok(seen.some((s) => s.url.startsWith('/repo.git/') && /^git\//.test(s.agent)), 'git reached the upstream');
    assert.deepEqual(seen.filter((s) => s.key !== undefined).map((s) => s.key), [KEY], 'the key on the route only');

    const events = JSON.parse(cli(mode, ['audit', '--config', h.cfg, '--json', '--event-type', 'egress', '-l', '100'], h.env).stdout);
    const via = { url: `http://***@127.0.0.1:${proxy.port}`, source: "HTTPS_PROXY (the launcher's environment)" };
    const api = events.filter((e) => e.event_type === 'egress' && e.decision === 'allow' && e.details.host === 'api.example.test');
    assert.ok(api.length >= 4, 'curl, git, python and node tunnels');
    for (const e of api) assert.deepEqual([e.details.upstream_proxy, e.details.proxy_target], [via, `127.0.0.1:${upstream.port}`]);
    const direct = events.find((e) => e.event_type === 'egress' && e.details.host === 'direct.example.test');
    assert.equal(direct.decision, 'allow');
    assert.equal(direct.details.upstream_proxy, undefined, 'the NO_PROXY host went direct');
    assert.ok(events.some((e) => e.event_type === 'egress' && e.decision === 'deny' && e.details.host === 'denied.example.test'));
    const route = events.find((e) => e.event_type === 'credential_proxy');
    assert.deepEqual(route.details.upstream_proxy, via);
    assert.ok(!JSON.stringify(events).includes(PROXY_PASSWORD) && !JSON.stringify(events).includes(KEY));
  });

  test(`[${mode}] an unreachable upstream proxy: the box is refused, the summary says so with the fix; the password is never printed`, { skip: skipReason(mode) ?? SKIP_OPENSSL }, async () => {
    const h = home(mode);
    const ws = makeWorkspace('corpnet');
    const dead = `http://${PROXY_AUTH}@127.0.0.1:${await closedPort()}`;
    const script = 'curl -sS --max-time 10 https://api.example.test/ 2>&1; echo "curl=$?"; curl -sS --max-time 10 "$FAKE_BASE_URL/x"; echo; echo "route=$?"';
    const r = await runBox(mode, { workspace: ws, env: corporate(h, dead), args: ['--config', h.cfg, '--json'], cmd: ['/bin/sh', '-c', script], timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /^curl=0$/m);
    assert.match(r.stdout, /upstream_proxy_unreachable/, r.stdout);
    assert.match(r.stderr, /api\.example\.test: CONNECT :443 upstream_proxy_unreachable x1; fix: check that the upstream proxy http:\/\/\*\*\*@127\.0\.0\.1:\d+ \(from HTTPS_PROXY \(the launcher's environment\)\) is reachable/, r.stderr);
    assert.match(r.stderr, /credential route fake: credential proxy upstream_proxy_unreachable/, r.stderr);
    assert.ok(!(r.stdout + r.stderr).includes(PROXY_PASSWORD));
  });

  test(`[${mode}] --dry-run shows the upstream proxy (redacted, with its source) and the CA bundle; a missing CA file stops the launch naming the field`, { skip: skipReason(mode) ?? SKIP_OPENSSL }, async () => {
    const h = home(mode);
    const ws = makeWorkspace('corpnet');
    const r = await runBox(mode, { workspace: ws, env: corporate(h), args: ['--config', h.cfg, '--dry-run'], cmd: ['true'] });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(PROXY_PASSWORD), 'the password is in the plan');
    const plan = JSON.parse(r.stdout);
    assert.deepEqual(plan.network.egress.upstream_proxy, { url: `http://***@127.0.0.1:${proxy.port}`, source: "HTTPS_PROXY (the launcher's environment)", no_proxy: ['localhost', 'direct.example.test'], no_proxy_source: "NO_PROXY (the launcher's environment)" });
    assert.equal(plan.network.egress.ca_bundle.path, '/run/latchgate/ca-bundle.pem');
    assert.deepEqual(plan.network.egress.ca_bundle.extra_ca_certs, [upstream.pki.caFile]);
    for (const v of ['SSL_CERT_FILE', 'NODE_EXTRA_CA_CERTS', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO']) assert.equal(plan.env[v], '/run/latchgate/ca-bundle.pem', v);
    assert.equal(plan.env.HTTPS_PROXY, 'http://127.0.0.1:3128');

    // The config's upstream_proxy wins over the environment's, and the plan says so.
    const c = home(mode, undefined, [`upstream_proxy = ${JSON.stringify(proxy.url())}`, 'no_proxy = [".corp.example"]']);
    const r3 = await runBox(mode, { workspace: ws, env: corporate(c, 'http://other:secret@127.0.0.1:1'), args: ['--config', c.cfg, '--dry-run'], cmd: ['true'] });
    assert.equal(r3.code, 0, r3.stderr);
    assert.deepEqual(JSON.parse(r3.stdout).network.egress.upstream_proxy, { url: `http://***@127.0.0.1:${proxy.port}`, source: `${c.cfg}: [sandbox.network] upstream_proxy`, no_proxy: ['.corp.example'], no_proxy_source: `${c.cfg}: [sandbox.network] no_proxy` });
    assert.ok(!r3.stdout.includes(PROXY_PASSWORD));

    const missing = path.join(path.dirname(upstream.pki.caFile), 'no-such-ca.pem');
    const m = home(mode, missing);
    const r2 = await runBox(mode, { workspace: ws, env: corporate(m), args: ['--config', m.cfg], cmd: ['true'] });
    assert.equal(r2.code, 125, r2.stderr);
    assert.match(r2.stderr, /\[sandbox\.network\] extra_ca_certs\[0\]: .*no-such-ca\.pem cannot be read \(ENOENT\)/);
  });
}
