// The box's network exits, end to end: curl inside
// the box reaches an allowlisted name (pinned to a local TLS server) only
// through the CONNECT proxy, is refused anything else, and calls a
// credential route whose key is added outside and never seen inside; every
// decision is in the ledger.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox } from '../helpers/sandbox.mjs';
import { boxUpstream, cliAs as cli, credentialHome, haveOpenssl } from '../helpers/box-upstream.mjs';

const KEY = `sk-host-only-${process.pid}-0123456789abcdef`;
const dirs = [];
let pki;
let upstream;
let port;
const seen = [];

before(async () => {
  upstream = await boxUpstream('egress', (req, res) => {
    seen.push({ url: req.url, key: req.headers['x-api-key'] });
    res.setHeader('content-type', 'text/plain');
    // An upstream that echoes what it got: the key must still not reach the box.
    res.end(`hello from upstream ${req.url} key=${req.headers['x-api-key'] ?? '-'}\n`);
  });
  ({ pki, port } = upstream ?? {});
});

after(() => {
  upstream?.close();
  cleanupWorkspaces();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function home(mode) {
  // The user-level config of this XDG_CONFIG_HOME: its pins and CA are grants.
  // localhost: allowlisted, but it resolves (host /etc/hosts) to loopback.
  const h = credentialHome(mode, 'egress', upstream, { keySource: 'env:FAKE_API_KEY', head: ['[sandbox.agent]', 'allow_hosts = ["api.example.test", "localhost"]', ''], dirs });
  return { cfg: h.cfg, env: { ...h.env, FAKE_API_KEY: KEY } };
}

const SCRIPT = (ca) => `
curl -sS --max-time 10 --cacert ${ca} https://api.example.test/ok; echo "allowed=$?"
curl -sS --max-time 10 --cacert ${ca} https://denied.example.test/ 2>&1; echo "denied=$?"
curl -sS --max-time 10 --cacert ${ca} https://api.example.test:8443/ 2>&1; echo "port=$?"
curl -sS --max-time 10 --noproxy '*' --cacert ${ca} https://api.example.test/ 2>&1; echo "noproxy=$?"
curl -sS --max-time 10 "$FAKE_BASE_URL/chat?x=1" -H 'x-api-key: placeholder'; echo "route=$?"
curl -sS --max-time 10 -o /dev/null -w 'plain=%{http_code}\n' http://api.example.test/plain 2>&1
curl -sS --max-time 5 --noproxy '*' https://192.0.2.1/ 2>&1; echo "direct-ip=$?"
curl -sS --max-time 5 --noproxy '*' --cacert ${ca} https://127.0.0.1:${port}/ 2>&1; echo "direct-host-port=$?"
python3 - <<'PY'
import socket
for target in ("api.example.test:443", "denied.example.test:443"):
    s = socket.socket(socket.AF_UNIX); s.connect("/run/latchgate/proxy.sock")
    s.sendall(("CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n" % (target, target)).encode())
    print("unix", target, s.recv(64).split(b"\\r\\n")[0].decode()); s.close()
for target in ("192.0.2.1:443", "[2001:db8::1]:443", "localhost:443"):
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(("CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n" % (target, target)).encode())
    print("tcp", target, s.recv(64).split(b"\\r\\n")[0].decode()); s.close()
PY
/usr/bin/node -e '
const http = require("http"), tls = require("tls"), https = require("https"), fs = require("fs");
const ca = fs.readFileSync(process.argv[1]);
const r = http.request({ host: "127.0.0.1", port: 3128, method: "CONNECT", path: "api.example.test:443" });
r.on("connect", (res, socket) => {
  if (res.statusCode !== 200) { console.log("node-tunnel", res.statusCode); return direct(); }
  const t = tls.connect({ socket, servername: "api.example.test", ca }, () => t.write("GET /node HTTP/1.1\\r\\nHost: api.example.test\\r\\nConnection: close\\r\\n\\r\\n"));
  let body = ""; t.on("data", (d) => (body += d)); t.on("end", () => { console.log("node-tunnel", body.split("\\r\\n\\r\\n")[1].trim()); direct(); });
});
r.end();
function direct() {
  https.get({ host: "api.example.test", path: "/", ca, timeout: 3000 }, () => console.log("node-direct OK")).on("error", (e) => console.log("node-direct", e.code));
}' ${ca}
env | grep -c "${KEY}"; grep -rl "${KEY}" /proc/*/environ "$HOME" 2>/dev/null | wc -l
`;

for (const mode of MODES) {
  test(`[${mode}] egress only through the exits; the key stays outside; decisions in the ledger`, { skip: skipReason(mode) ?? (haveOpenssl() ? undefined : 'openssl is missing: cannot make the test certificates (make setup installs it)') }, async () => {
    const h = home(mode);
    const ws = makeWorkspace('egress');
    seen.length = 0;
    const r = await runBox(mode, { workspace: ws, env: h.env, args: ['--config', h.cfg, '--ro', path.dirname(pki.caFile)], cmd: ['/bin/sh', '-c', SCRIPT(pki.caFile)], timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    assert.match(out, /^hello from upstream \/ok key=-$/m, out);
    assert.match(out, /^allowed=0$/m);
    assert.match(out, /403/, 'the proxy refuses a name off the allowlist');
    assert.doesNotMatch(out, /^denied=0$/m);
    assert.doesNotMatch(out, /^port=0$/m);
    assert.doesNotMatch(out, /^noproxy=0$/m, 'without the proxy there is no way out');
    assert.match(out, /^hello from upstream \/v1\/chat\?x=1 key=\[redacted\]$/m, 'the route works and the echoed key is redacted');
    assert.match(out, /^route=0$/m);
    assert.match(out, /^plain=403$/m, 'plain HTTP through the proxy is refused');
    assert.doesNotMatch(out, /^direct-ip=0$/m, 'no route to any address but through the exits');
    assert.doesNotMatch(out, /^direct-host-port=0$/m, "the host's loopback is not the box's");
    assert.match(out, /^tcp 192\.0\.2\.1:443 HTTP\/1\.1 403 /m, 'a literal IPv4 target is refused');
    assert.match(out, /^tcp \[2001:db8::1\]:443 HTTP\/1\.1 403 /m, 'a literal IPv6 target is refused');
    assert.match(out, /^tcp localhost:443 HTTP\/1\.1 403 /m, 'an allowlisted name that resolves to loopback is refused');
    assert.match(out, /^node-tunnel hello from upstream \/node key=-$/m, 'Node through the CONNECT tunnel');
    assert.match(out, /^node-direct (ENOTFOUND|EAI_AGAIN)$/m, 'Node without the proxy cannot even resolve the name');
    assert.match(out, /^unix api\.example\.test:443 HTTP\/1\.1 200 /m, `the CONNECT proxy also answers on /run/latchgate/proxy.sock: ${r.stderr}`);
    assert.match(out, /^unix denied\.example\.test:443 HTTP\/1\.1 403 /m);
    assert.ok(!out.includes(KEY) && !r.stderr.includes(KEY), 'the key reached the box');
    const [envCount, fileCount] = out.trim().split('\n').slice(-2).map(Number);
    assert.equal(envCount, 0);
    assert.equal(fileCount, 0);
    assert.deepEqual(seen.map((s) => s.key), [undefined, KEY, undefined], 'the upstream got the host key on the route only (curl, route, node)');

    const egress = JSON.parse(cli(mode, ['audit', '--config', h.cfg, '--json', '--event-type', 'egress', '-l', '50'], h.env).stdout);
    const decided = egress.map((e) => `${e.decision} ${e.details.host}:${e.details.port}`);
    assert.ok(decided.includes('allow api.example.test:443'), decided.join('; '));
    assert.ok(decided.includes('deny denied.example.test:443'), decided.join('; '));
    assert.ok(decided.includes('deny api.example.test:8443'), decided.join('; '));
    const reasons = egress.filter((e) => e.decision === 'deny').map((e) => e.details.reason);
    for (const r of ['literal_ip', 'address_not_allowed', 'plain_http_refused', 'host_not_allowed', 'port_not_allowed']) assert.ok(reasons.includes(r), `a ${r} event: ${reasons.join(', ')}`);
    const cred = JSON.parse(cli(mode, ['audit', '--config', h.cfg, '--json', '--event-type', 'credential_proxy'], h.env).stdout);
    assert.equal(cred.length, 1);
    assert.equal(cred[0].details.route, 'fake');
    assert.ok(!JSON.stringify([...egress, ...cred]).includes(KEY), 'the key is in the ledger');
  });
}

// A flood from inside the box: 1500 refused CONNECTs (with one to another
// host in the middle), then 600 slow-header connections (more than the
// listener's 512-socket budget) held open. The launcher stays responsive
// meanwhile (the gate answers, the proxy's other listener tunnels), the slow
// sockets are cut after the header timeout, and the flooded listener tunnels
// again afterwards. The ledger does not grow with the flood: the first
// refusal of each kind is in full, the repeats are counted into summaries
// (src/ledger/coalesce.ts) whose counts add up to exactly the refusals.
const FLOOD = (ca) => `/usr/bin/node -e '
const net = require("net"), tls = require("tls"), http = require("http"), fs = require("fs");
const ca = fs.readFileSync(process.argv[1]);
const t0 = Date.now();
const log = (...a) => console.log(...a, "t=" + (Date.now() - t0));
function connectStatus(opts, target = "denied.example.test:443") {
  return new Promise((resolve) => {
    const s = net.connect(opts, () => s.write("CONNECT " + target + " HTTP/1.1\\r\\nHost: " + target + "\\r\\n\\r\\n"));
    let head = "";
    s.setTimeout(15000, () => { s.destroy(); resolve("timeout"); });
    s.on("data", (d) => { head += d; if (head.includes("\\r\\n")) { s.destroy(); resolve(head.split(" ")[1]); } });
    s.on("error", (e) => resolve(e.code)); s.on("close", () => resolve(head ? head.split(" ")[1] : "closed"));
  });
}
function tunnel(opts, path) {
  return new Promise((resolve) => {
    const r = http.request({ ...opts, method: "CONNECT", path: "api.example.test:443", timeout: 10000 });
    r.on("timeout", () => { r.destroy(); resolve("timeout"); });
    r.on("error", (e) => resolve(e.code));
    r.on("connect", (res, socket) => {
      if (res.statusCode !== 200) return resolve(String(res.statusCode));
      const t = tls.connect({ socket, servername: "api.example.test", ca }, () => t.write("GET " + path + " HTTP/1.1\\r\\nHost: api.example.test\\r\\nConnection: close\\r\\n\\r\\n"));
      let body = ""; t.on("data", (d) => (body += d)); t.on("end", () => resolve(body.split("\\r\\n\\r\\n")[1].trim())); t.on("error", (e) => resolve(e.code));
    });
    r.end();
  });
}
function healthz() {
  return new Promise((resolve) => {
    http.get({ socketPath: "/run/latchgate/gate.sock", path: "/healthz", timeout: 5000 }, (res) => { res.resume(); resolve(res.statusCode); }).on("error", (e) => resolve(e.code));
  });
}
(async () => {
  const counts = {};
  let next = 0;
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (next++ < 1500) {
      if (next === 750) log("different", await connectStatus({ host: "127.0.0.1", port: 3128 }, "other.example.test:443"));
      const st = await connectStatus({ host: "127.0.0.1", port: 3128 }); counts[st] = (counts[st] || 0) + 1;
    }
  }));
  log("refused", JSON.stringify(counts));
  const slow = [];
  let cut = 0, answered = 0;
  for (let i = 0; i < 600; i++) {
    const s = net.connect({ host: "127.0.0.1", port: 3128 }, () => s.write("CONNECT api.example.test:443 HTTP/1.1\\r\\nX-Slow: "));
    let head = "";
    s.on("data", (d) => { if (!head && (head += d).startsWith("HTTP/1.1 408 ")) answered++; });
    s.on("error", () => {}); s.on("close", () => cut++);
    slow.push(s);
  }
  await new Promise((r) => setTimeout(r, 1000));
  log("during-healthz", await healthz());
  log("during-unix", await tunnel({ socketPath: "/run/latchgate/proxy.sock" }, "/during"));
  const deadline = Date.now() + 20000;
  while (cut < 600 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  log("slow-cut", cut, "answered-408", answered);
  log("after-tcp", await tunnel({ host: "127.0.0.1", port: 3128 }, "/after"));
})();
' ${ca}`;

for (const mode of MODES) {
  test(`[${mode}] a flood from inside the box: refused at once, slow headers cut, the gate and the proxy keep answering, the ledger bounded`, { skip: skipReason(mode) ?? (haveOpenssl() ? undefined : 'openssl is missing: cannot make the test certificates (make setup installs it)') }, async (t) => {
    const h = home(mode);
    const ws = makeWorkspace('egress-flood');
    const r = await runBox(mode, { workspace: ws, env: h.env, args: ['--config', h.cfg, '--ro', path.dirname(pki.caFile)], cmd: ['/bin/sh', '-c', FLOOD(pki.caFile)], timeoutMs: 120000 });
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    assert.match(out, /^refused \{"403":1500\} /m, `every refused CONNECT got its 403, none hung or was dropped:\n${out}`);
    assert.match(out, /^during-healthz 200 /m, `the gate answers during the flood:\n${out}`);
    assert.match(out, /^during-unix hello from upstream \/during key=- /m, `the proxy's other listener tunnels during the flood:\n${out}`);
    assert.match(out, /^slow-cut 600 /m, `every slow-header connection was cut (the excess at once, the rest at the header timeout):\n${out}`);
    assert.match(out, /^after-tcp hello from upstream \/after key=- /m, `the flooded listener tunnels again afterwards:\n${out}`);
    assert.match(out, /^different 403 /m, out);
    const egress = JSON.parse(cli(mode, ['audit', '--config', h.cfg, '--json', '--event-type', 'egress', '-l', '5000'], h.env).stdout);
    const bytes = egress.reduce((n, e) => n + JSON.stringify(e).length, 0);
    t.diagnostic(`${egress.length} egress events, ${bytes} bytes in the ledger`);
    assert.ok(egress.length <= 40 && bytes < 64 * 1024, `the ledger grew by ${egress.length} egress events, ${bytes} bytes for about 2100 refusals`);
    const counted = (evs) => evs.reduce((n, e) => n + (e.details.coalesced?.count ?? 1), 0);
    const flood = egress.filter((e) => e.details.host === 'denied.example.test' && e.details.reason === 'host_not_allowed');
    assert.equal(counted(flood), 1500, 'the full event plus the summaries count every refused CONNECT');
    assert.equal(flood[0].details.coalesced, undefined, 'the first refusal is in full');
    assert.equal(typeof flood[0].details.duration_ms, 'number');
    assert.equal(flood.filter((e) => !e.details.coalesced).length, 1, 'the repeats are counted, not written');
    for (const e of flood.slice(1)) {
      assert.equal(e.decision, 'deny');
      assert.deepEqual(e.subject, flood[0].subject);
      assert.ok(e.details.coalesced.count >= 1 && e.details.coalesced.first_at <= e.details.coalesced.last_at, JSON.stringify(e.details));
    }
    const different = egress.filter((e) => e.details.host === 'other.example.test');
    assert.equal(different.length, 1, 'the CONNECT to another host during the flood is one event');
    assert.equal(different[0].details.coalesced, undefined, 'in full');
    assert.ok(egress.indexOf(different[0]) < egress.indexOf(flood.at(-1)), 'written before the summary of the flood around it');
    const answered = Number(/^slow-cut 600 answered-408 (\d+) /m.exec(out)?.[1]);
    const slow = egress.filter((e) => e.details.reason === 'header_timeout');
    assert.ok(answered > 0);
    assert.equal(counted(slow), answered, 'every slow-header connection cut with a 408 is counted');
    assert.equal(slow[0].details.coalesced, undefined);
    const tunnels = egress.filter((e) => e.decision === 'allow');
    assert.equal(tunnels.length, 2, 'the tunnels (during, after) are in full, never counted');
    const v = cli(mode, ['verify', '--config', h.cfg], h.env);
    assert.equal(v.status, 0, `the ledger verifies: ${v.stdout}${v.stderr}`);
  });
}
