// Every refusal of the box's network is visible, with its fix, where each
// reader looks: the agent in the box (a CONNECT refusal's body; a DNS answer
// that comes at once, REFUSED, with the reason), the user who started the box
// (the launcher's lines on stderr, live when stderr is not the agent's
// terminal, and a summary at exit; the --json counts) and the ledger
// (`latchgate audit --event-type egress`, which is every exit's events).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, distDir, testUser } from '../helpers/sandbox.mjs';
import { boxUpstream, cliAs as cli, credentialHome, haveOpenssl } from '../helpers/box-upstream.mjs';

const dirs = [];
let upstream;

before(async () => {
  upstream = await boxUpstream('denials', (req, res) => res.end(`ok ${req.url}\n`));
});

after(() => {
  upstream?.close();
  cleanupWorkspaces();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const skip = (mode) => skipReason(mode) ?? (haveOpenssl() ? undefined : 'openssl is missing: cannot make the test certificates (make setup installs it)');

function home(mode) {
  const h = credentialHome(mode, 'denials', upstream, { keySource: 'env:FAKE_API_KEY', head: ['[sandbox.agent]', 'allow_hosts = ["api.example.test"]', ''], dirs });
  return { cfg: h.cfg, env: { ...h.env, FAKE_API_KEY: 'sk-denials-0123456789abcdef' } };
}

// In the box: curl and Node against a host off the allowlist, through the
// proxy and around it; raw DNS queries over UDP (with EDNS) and TCP; the
// credential proxy asked for a route it does not have.
const SCRIPT = `
curl -sS --max-time 20 https://denied.example.test/ 2>&1; echo "curl=$?"
curl -v -sS --max-time 20 https://denied.example.test/ 2>&1 | grep -i '^< x-latchgate-reason'
curl -sS --max-time 20 -o /dev/null -w 'route=%{http_code}\\n' "$FAKE_BASE_URL/ok"
curl -sS --max-time 20 "http://127.0.0.1:3129/nope/v1/x"; echo
/usr/bin/node -e '
const net = require("net"), dgram = require("dgram"), dns = require("dns");
const q = (name, edns) => {
  const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const opt = edns ? Buffer.from([0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]) : Buffer.alloc(0);
  return Buffer.concat([Buffer.from([0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, edns ? 1 : 0]), ...labels, Buffer.from([0, 0, 1, 0, 1]), opt]);
};
const ede = (m) => { const i = m.indexOf(Buffer.from([0, 15])); return i < 0 ? "-" : m.subarray(i + 6).toString(); };
function connect(accept) {
  return new Promise((resolve) => {
    const s = net.connect(3128, "127.0.0.1", () => s.write("CONNECT denied.example.test:443 HTTP/1.1\\r\\nHost: denied.example.test:443\\r\\n" + accept + "\\r\\n"));
    let raw = ""; s.on("data", (d) => (raw += d)); s.on("close", () => resolve(raw.split("\\r\\n\\r\\n")[1]));
  });
}
(async () => {
  for (const line of (await connect("")).trim().split("\\n")) console.log("body:", line);
  console.log("json:", (await connect("Accept: application/json\\r\\n")).trim());
  const u = dgram.createSocket("udp4");
  const timer = setTimeout(() => { console.log("udp: timeout"); u.close(); }, 20000);
  u.on("message", (m) => { clearTimeout(timer); console.log("udp: id", m.readUInt16BE(0).toString(16), "rcode", m[3] & 15, "ede", ede(m)); u.close(); });
  u.send(q("registry.npmjs.org", true), 53, "127.0.0.1");
  const t = net.connect(53, "127.0.0.1", () => { const m = q("tcp.example.test", false); t.write(Buffer.concat([Buffer.from([0, m.length]), m])); });
  t.setTimeout(20000, () => { console.log("tcp: timeout"); t.destroy(); });
  t.on("data", (d) => { console.log("tcp: rcode", d[5] & 15); t.destroy(); });
  const r = new dns.Resolver({ timeout: 20000, tries: 1 });
  r.resolve4("api.example.test", (e) => console.log("c-ares:", e ? e.code : "answered"));
  dns.lookup("registry.npmjs.org", (e, a) => console.log("getaddrinfo:", e ? e.code : a));
})();'
sleep 1
cat /etc/resolv.conf | grep -v '^#'
`;

for (const mode of MODES) {
  test(`[${mode}] a refused host: the agent reads why and the fix, DNS is refused at once, the launcher says it with the fix, --json counts it, the ledger has each`, { skip: skip(mode) }, async () => {
    const h = home(mode);
    const ws = makeWorkspace('denials');
    const r = await runBox(mode, { workspace: ws, env: h.env, args: ['--config', h.cfg, '--json'], cmd: ['/bin/sh', '-c', SCRIPT], timeoutMs: 90000 });
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;

    // The agent: curl's error, the proxy's reason header, the body with the fix (text and JSON).
    assert.match(out, /CONNECT tunnel failed, response 403/);
    assert.match(out, /^< x-latchgate-reason: host_not_allowed\r?$/m);
    assert.match(out, /^body: latchgate egress proxy: this host is not in the egress allowlist: denied\.example\.test \[host_not_allowed\]$/m);
    assert.match(out, /^body: To allow it, ask the user who started this box for: --allow-host denied\.example\.test\. Nothing inside the box can change it\.$/m);
    const json = JSON.parse(/^json: (.*)$/m.exec(out)[1]);
    assert.deepEqual([json.error, json.host, json.port, json.fix], ['host_not_allowed', 'denied.example.test', 443, '--allow-host denied.example.test']);
    assert.match(out, /^route=200$/m, 'the credential route works');
    assert.match(out, /"error":"unknown_route"/);

    // DNS: answered (not timed out), REFUSED, with the reason; c-ares and getaddrinfo fail with it at once.
    assert.match(out, /^udp: id abcd rcode 5 ede latchgate: this box resolves no names; to reach registry\.npmjs\.org, ask the user who started it for --allow-host registry\.npmjs\.org, then connect through HTTPS_PROXY by name$/m);
    assert.match(out, /^tcp: rcode 5$/m);
    assert.match(out, /^c-ares: EREFUSED$/m);
    assert.match(out, /^getaddrinfo: EAI_AGAIN$/m, 'glibc reports REFUSED as EAI_AGAIN');
    assert.match(out, /^nameserver 127\.0\.0\.1$/m);

    // The launcher: each refused host as it happens (stderr is a pipe here, not the agent's terminal), then the summary.
    const err = r.stderr;
    assert.match(err, /^latchgate: refused: denied\.example\.test: CONNECT :443 host_not_allowed; fix: --allow-host denied\.example\.test \(or "denied\.example\.test" in allow_hosts of \[sandbox\.agent\]\)$/m);
    assert.match(err, /^latchgate: refused: registry\.npmjs\.org: DNS lookup dns_refused; fix: --allow-host registry\.npmjs\.org, then connect through HTTPS_PROXY by name$/m);
    assert.match(err, /^latchgate: refused: api\.example\.test: DNS lookup dns_refused; fix: it is allowed: connect through HTTPS_PROXY by name$/m);
    assert.match(err, /^latchgate: refused: credential route nope: credential proxy unknown_route; fix: a \[sandbox\.agent\.credentials\.nope\] section in latchgate\.toml$/m);
    assert.match(err, /^latchgate: the box's network requests were refused \d+ times \(5 hosts\); each in the ledger: latchgate audit --event-type egress --principal sandbox-agent$/m);
    assert.match(err, /^latchgate: {3}denied\.example\.test: CONNECT :443 host_not_allowed x4; fix: --allow-host denied\.example\.test/m);
    assert.match(err, /^latchgate: {3}registry\.npmjs\.org: DNS lookup dns_refused x\d+; fix: --allow-host registry\.npmjs\.org/m);
    assert.match(err, /^latchgate: {3}tcp\.example\.test: DNS lookup dns_refused x1;/m);
    assert.ok(err.indexOf('latchgate: refused: denied.example.test') < err.indexOf("the box's network requests were refused"), 'live first, the summary at exit');

    const d = r.json.denials;
    assert.equal(d.connect, 4, 'two curls and two raw CONNECTs');
    assert.equal(d.credential, 1);
    assert.ok(d.dns >= 4, `the raw queries, c-ares and getaddrinfo: ${d.dns}`);
    assert.equal(d.total, d.connect + d.credential + d.dns);
    const denied = d.hosts.find((x) => x.host === 'denied.example.test');
    assert.deepEqual(denied.reasons, { host_not_allowed: 4 });
    assert.match(denied.fix[0], /^--allow-host denied\.example\.test /);

    // The ledger, with the README's command: every exit's events, host, reason and error in the table.
    const table = cli(mode, ['audit', '--event-type', 'egress'], h.env); // exactly as the README says it
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout.split('\n')[0], /^TIMESTAMP\s+EVENT_TYPE\s+DECISION\s+PRINCIPAL\s+ACTION_ID\s+HOST\s+REASON\s+ERROR\s+TRACE_ID$/);
    assert.match(table.stdout, /^\S+\s+egress\s+deny\s+sandbox-agent\s+-\s+denied\.example\.test:443\s+host_not_allowed\s/m);
    assert.match(table.stdout, /^\S+\s+egress_dns\s+deny\s+sandbox-agent\s+-\s+registry\.npmjs\.org\s+dns_refused\s/m);
    assert.match(table.stdout, /^\S+\s+credential_proxy\s+allow\s+sandbox-agent\s+-\s+route fake\s/m, "the credential proxy's events are egress events");
    const events = JSON.parse(cli(mode, ['audit', '--config', h.cfg, '--event-type', 'egress', '--json', '-l', '500'], h.env).stdout);
    assert.deepEqual([...new Set(events.map((e) => e.event_type))].sort(), ['credential_proxy', 'egress', 'egress_dns']);
    const refusals = events.filter((e) => e.decision === 'deny');
    assert.equal(refusals.reduce((n, e) => n + (e.details.coalesced?.count ?? 1), 0), d.total, 'the launcher counted exactly what the ledger holds');
    const names = new Set(events.filter((e) => e.event_type === 'egress_dns').map((e) => e.details.name));
    for (const n of ['registry.npmjs.org', 'tcp.example.test', 'api.example.test']) assert.ok(names.has(n), `${n} asked: ${[...names]}`);
    const v = cli(mode, ['verify', '--config', h.cfg], h.env);
    assert.equal(v.status, 0, `the ledger verifies: ${v.stdout}${v.stderr}`);
  });
}

// A DNS flood from inside the box: 3000 distinct names and 2000 repeats of
// one, sent as fast as UDP goes (the rate the launcher answers at is
// test/unit/box-dns.test.mjs's). The ledger gets the first of each kind in full and counts the
// others (so it stays small), the launcher's summary lists a bounded number
// of hosts, and its counts are exactly the ledger's.
const DNS_FLOOD = `/usr/bin/node -e '
const dgram = require("dgram");
const q = (name, id) => Buffer.concat([Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])]);
const u = dgram.createSocket("udp4");
let answers = 0;
u.on("message", () => answers++);
u.bind(0, "127.0.0.1", async () => {
  for (let i = 0; i < 5000; i++) {
    u.send(q(i % 5 < 2 ? "same.flood.test" : "n" + i + ".flood.test", i), 53, "127.0.0.1");
    if (i % 100 === 0) await new Promise((r) => setImmediate(r));
  }
  setTimeout(() => { console.log("answers", answers); u.close(); }, 1500);
});'`;

for (const mode of MODES) {
  test(`[${mode}] a DNS flood from the box: answered, the ledger stays small, the summary bounded, the counts add up`, { skip: skip(mode) }, async () => {
    const h = home(mode);
    const ws = makeWorkspace('denials-flood');
    const r = await runBox(mode, { workspace: ws, env: h.env, args: ['--config', h.cfg, '--json'], cmd: ['/bin/sh', '-c', DNS_FLOOD], timeoutMs: 90000 });
    assert.equal(r.code, 0, r.stderr);
    const answers = Number(/^answers (\d+)$/m.exec(r.stdout)?.[1]);
    assert.ok(answers > 0 && answers < 5000, `some answered, not all: ${answers}`);
    const d = r.json.denials;
    // (answers can be lost on their way back to a client this busy sending: the launcher's count is what was answered)
    assert.ok(d.dns >= answers, `${d.dns} answered`);
    assert.equal(d.hosts.length, 64, 'the summary lists a bounded number of hosts');
    assert.equal(d.hosts.reduce((n, x) => n + x.count, 0) + d.otherHosts, d.dns);
    const events = JSON.parse(cli(mode, ['audit', '--config', h.cfg, '--event-type', 'egress_dns', '--json', '-l', '10000'], h.env).stdout);
    const bytes = events.reduce((n, e) => n + JSON.stringify(e).length, 0);
    assert.ok(events.length <= 40 && bytes < 64 * 1024, `${events.length} events, ${bytes} bytes for ${d.dns} refusals`);
    assert.equal(events.reduce((n, e) => n + (e.details.coalesced?.count ?? 1), 0), d.dns, 'the full events and the summaries count every answered query');
    assert.ok(events.some((e) => e.details.coalesced?.over_cap), 'names beyond the cap of kinds are counted together');
  });
}

// On a terminal the agent draws on, nothing is written while it runs: the
// refusals are said at exit. With stderr elsewhere (a file), they are live.
const socketName = `lgtest-denials-${process.pid}`;
const tmux = (...args) => execFileSync('tmux', ['-L', socketName, ...args], { encoding: 'utf8' });
after(() => {
  try {
    tmux('kill-server');
  } catch {
    // never started, or already gone
  }
});

async function screenMatching(session, re, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  let screen = '';
  while (Date.now() < end) {
    screen = tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', session);
    if (re.test(screen)) return screen;
    await sleep(100);
  }
  assert.fail(`screen never matched ${re}:\n${screen}`);
}

for (const mode of MODES) {
  test(`[${mode}] on the agent's terminal the refusals wait for the exit; with stderr elsewhere they are live`, { skip: skipReason(mode) }, async () => {
    const ws = makeWorkspace('denials-tty');
    const state = makeWorkspace('denials-tty-state'); // latchgate's own directories, outside the workspace
    const u = testUser();
    const asUser = mode === 'user' && process.getuid() === 0 ? `setpriv --reuid=${u.uid} --regid=${u.gid} --clear-groups ` : '';
    const cli = path.join(distDir(mode), 'cli', 'main.js');
    const env = `XDG_STATE_HOME=${state}/state XDG_RUNTIME_DIR=${state}/run XDG_CONFIG_HOME=${state}/cfg`;
    const inBox = 'getent hosts tty.example.test; echo BOX-DONE';
    const launch = (redirect) => `${env} ${asUser}${process.execPath} ${cli} sandbox --allow-host api.example.test -- /bin/sh -c '${inBox}' ${redirect}; echo "EXITED:$?"`;
    const script = `cd ${ws} && ${launch('')} && ${launch(`2>${state}/stderr.log`)}; sleep 60`;
    execFileSync('mkdir', ['-m', '700', `${state}/run`]);
    if (mode === 'user' && process.getuid() === 0) execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, state]);
    const session = `denials-${mode}`;
    tmux('new-session', '-d', '-s', session, '-x', '200', '-y', '50', `/bin/sh -c '${script.replace(/'/g, `'"'"'`)}'`);
    const screen = await screenMatching(session, /EXITED:0[\s\S]*EXITED:0/);
    tmux('kill-session', '-t', session);
    const first = screen.slice(0, screen.indexOf('EXITED:0'));
    assert.doesNotMatch(first, /latchgate: refused:/, `nothing written on the agent's terminal while it ran:\n${first}`);
    assert.match(first, /BOX-DONE[\s\S]*latchgate: the box's network requests were refused \d+ times? \(1 host\)/, `the summary at exit:\n${first}`);
    assert.match(first, /latchgate: {3}tty\.example\.test: DNS lookup dns_refused x\d+; fix: --allow-host tty\.example\.test, then connect through HTTPS_PROXY by name/);
    const log = readFileSync(path.join(state, 'stderr.log'), 'utf8');
    assert.match(log, /^latchgate: refused: tty\.example\.test: DNS lookup dns_refused; fix: --allow-host tty\.example\.test/m, `live in the file:\n${log}`);
    assert.match(log, /^latchgate: the box's network requests were refused \d+ times? \(1 host\)/m);
  });
}
