// A secret used through the gate never comes back out of it. A real
// `latchgate up` holds PROBE_TOKEN; the secret_probe action (builtin:http_api)
// sends it in a header and inside its JSON body to a local HTTPS upstream
// (pinned with [gate.resolve], its CA in [gate] extra_ca_certs), which echoes
// the request back: as JSON, base64, and in a 500 error. Afterwards the value
// is searched for, plain, base64 (standard and url), hex and JSON-escaped, in
// every answer the agent got, the receipts, the ledger's SQLite file and WAL,
// `latchgate audit` in every format, `latchgate verify`, and everything the
// gate wrote on stdout and stderr. A required secret without a value ends its
// run before any connection, the event naming the secret.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from '../helpers/gate.mjs';
import { NO_OPENSSL, tlsUpstream } from '../helpers/tls-upstream.mjs';

const skip = NO_OPENSSL;
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const MANIFESTS = fileURLToPath(new URL('../fixtures/secrets-manifests', import.meta.url));
/** With a quote and a backslash: its JSON-escaped form differs from the plain one. */
const SECRET = `Lg"Sec\\${randomBytes(16).toString('hex')}`;

/** Every form the value must not appear in. */
export function forms(v) {
  const b = Buffer.from(v);
  return {
    plain: v,
    json: JSON.stringify(v).slice(1, -1),
    hex: b.toString('hex'),
    HEX: b.toString('hex').toUpperCase(),
    base64: b.toString('base64').replace(/=+$/, ''),
    base64url: b.toString('base64url'),
    percent: encodeURIComponent(v),
  };
}

/** Asserts no form of SECRET is in `what` (a string or bytes). */
function clean(what, label) {
  const text = Buffer.isBuffer(what) ? what.toString('latin1') : String(what);
  for (const [kind, f] of Object.entries(forms(SECRET))) assert.ok(!text.includes(f), `${label} holds the secret (${kind})`);
}

let home;
let env;
let up;
let upstream;
let stdout = '';
let stderr = '';
let info;

const lg = (...args) => spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

before(async () => {
  if (skip) return;
  upstream = await tlsUpstream(['probe.example.com'], (req, res, body) => {
    const echo = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body });
    if (req.url === '/ok') {
      res.writeHead(200, { 'content-type': 'application/json', 'x-echo-auth': String(req.headers.authorization) });
      res.end(echo);
    } else if (req.url === '/fail') {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`upstream failed on this request: ${echo}`);
    } else if (req.url === '/echo-b64') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(Buffer.from(echo).toString('base64'));
    } else return false;
    return true;
  });
  home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-secleak-'));
  chmodSync(home, 0o755);
  const cfgDir = path.join(home, 'config', 'latchgate');
  mkdirSync(cfgDir, { recursive: true });
  const me = process.getuid();
  const user = os.userInfo().username;
  writeFileSync(
    path.join(cfgDir, 'latchgate.toml'),
    [
      '[gate]',
      `manifest_dirs = [${JSON.stringify(MANIFESTS)}]`,
      `extra_ca_certs = [${JSON.stringify(upstream.caFile)}]`,
      '[gate.resolve]',
      `"probe.example.com" = "127.0.0.1:${upstream.port}"`,
      `[identity.principals.${me}]`,
      `name = "${user}"`,
      'scopes = ["tools:call", "audit:read"]',
      `[operators.${user}]`,
      `uid = ${me}`,
      '',
    ].join('\n'),
  );
  env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'config') };
  up = spawn(process.execPath, [CLI, 'up', '--json'], { env: { ...env, LATCHGATE_SECRET_PROBE_TOKEN: SECRET }, stdio: ['ignore', 'pipe', 'pipe'] });
  up.stdout.on('data', (d) => (stdout += d));
  up.stderr.on('data', (d) => (stderr += d));
  for (let i = 0; i < 2400 && !stdout.includes('\n') && up.exitCode === null; i++) await sleep(25);
  assert.ok(stdout.includes("\n"), `latchgate up did not start: ${stderr}`);
  info = JSON.parse(stdout.split("\n")[0]);
  assert.equal(lg('policy', 'grant', user, 'secret_probe,secret_required_probe').status, 0);
});

after(async () => {
  if (skip) return;
  if (up && up.exitCode === null) {
    up.kill('SIGTERM');
    await new Promise((r) => up.once('exit', r));
  }
  upstream?.close();
  rmSync(home, { recursive: true, force: true });
});

test('a secret sent in a header and a JSON body reaches the upstream, and appears nowhere the gate writes or answers', { skip }, async () => {
  const a = new Agent(info.client_socket);
  await a.lease();
  const seen = upstream.seen.length;
  const ok = await a.execute('secret_probe', { mode: 'ok', text: 'hello' });
  assert.equal(ok.status, 200, ok.text);
  // The upstream got the value, in the header and inside the JSON string, intact.
  const got = upstream.seen[seen];
  assert.equal(got.headers.authorization, `Bearer ${SECRET}`);
  assert.deepEqual(JSON.parse(got.body), { text: 'hello', auth: `token=${SECRET}` });
  // Its echo (the value in a header, in JSON, escaped) came back redacted.
  assert.match(ok.text, /\[redacted\]/);
  clean(ok.text, 'the answer to the agent');
  const b64 = await a.execute('secret_probe', { mode: 'echo-b64', text: 'hello' });
  assert.equal(b64.status, 200, b64.text);
  clean(b64.text, 'the answer with the echo in base64');
  // A failing upstream that echoes the request: the error the agent gets does not hold it either.
  const fail = await a.execute('secret_probe', { mode: 'fail', text: 'hello' });
  assert.ok(fail.status >= 400 || fail.body?.verification?.outcome !== 'verified', fail.text);
  clean(fail.text, 'the answer to a failed call');
  for (const r of [ok, b64, fail]) {
    const id = r.body?.receipt_id ?? r.body?.result?.receipt_id;
    if (!id) continue;
    const receipt = await a.signed('GET', `/v1/receipts/${id}`);
    assert.equal(receipt.status, 200, receipt.text);
    clean(receipt.text, `receipt ${id}`);
  }
  assert.equal(upstream.seen.length - seen, 3);
});

test('a required secret without a value: 503 secret_missing before any connection, the event naming it, never a value', { skip }, async () => {
  const a = new Agent(info.client_socket);
  await a.lease();
  const conns = upstream.connections;
  const seen = upstream.seen.length;
  const r = await a.execute('secret_required_probe', { mode: 'ok', text: 'x' });
  assert.equal(r.status, 503, r.text);
  assert.equal(r.body.error, 'secret_missing');
  assert.match(r.body.message, /PROBE_ABSENT/);
  assert.match(r.body.message, /latchgate secrets set PROBE_ABSENT/);
  await sleep(200);
  assert.equal(upstream.connections, conns, 'a connection was opened');
  assert.equal(upstream.seen.length, seen);
  const events = JSON.parse(lg('audit', '--json', '--action', 'secret_required_probe', '-l', '10').stdout);
  const e = events.find((x) => x.error?.code === 'secret_missing');
  assert.ok(e, JSON.stringify(events));
  assert.match(e.error.message, /PROBE_ABSENT/);
});

test('after the runs: the ledger file and WAL, audit in every format, verify, and the gate\'s own output hold no form of the secret', { skip }, async () => {
  const stateDir = info.state_dir;
  for (const format of ['table', 'json', 'jsonl', 'csv']) {
    const r = lg('audit', '--format', format, '-l', '1000');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /secret_probe/);
    clean(r.stdout + r.stderr, `latchgate audit --format ${format}`);
  }
  const v = lg('verify', '--json');
  clean(v.stdout + v.stderr, 'latchgate verify');
  const ledger = path.join(stateDir, 'ledger.sqlite3');
  for (const f of [ledger, `${ledger}-wal`]) if (existsSync(f)) clean(readFileSync(f), f);
  up.kill('SIGTERM');
  await new Promise((r) => (up.exitCode !== null ? r() : up.once('exit', r)));
  for (const f of [ledger, `${ledger}-wal`]) if (existsSync(f)) clean(readFileSync(f), `${f} after the gate stopped`);
  clean(stdout, "the gate's stdout");
  clean(stderr, "the gate's stderr");
});
