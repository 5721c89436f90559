// Issue 4 D, end to end with the real OpenAI Codex CLI: `latchgate sandbox
// --profile codex -- codex exec "say hi"` against a fake OpenAI Responses API
// (TLS, a test CA, api.openai.com pinned to it). Codex talks plain HTTP to the
// credential route (the profile's -c provider flags: 0.169 ignores
// OPENAI_BASE_URL), the route adds the host's key and goes to the pinned
// upstream. Asserts on what the fake received, never on the exit status
// alone (agents exit 0 when things break); the key is never inside the box
// and never in the ledger. @openai/codex is installed from npm at test time
// into a cache outside the repo, reused when present.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, distDir, testUser } from '../helpers/sandbox.mjs';
import { haveOpenssl } from '../fixtures/egress-cred/pki.mjs';
import { REPLY, makeCerts, startFakeResponses } from '../fixtures/e2e-codex/fake-responses.mjs';

const VERSION = '0.169.0';
const CACHE = path.join(os.tmpdir(), 'latchgate-agents', `codex-${VERSION}`);
const BIN = path.join(CACHE, 'node_modules', '.bin');
const KEY = `sk-codex-host-only-${process.pid}-${Date.now()}-fedcba9876543210`;
const PLACEHOLDER = 'latchgate-placeholder';
const isRoot = process.getuid() === 0;
const dirs = [];
let certs;
let fake;
let installError;

/** npm install into the cache (once), world-readable so the test user can run it. */
function installCodex() {
  const have = () => {
    const r = spawnSync(path.join(BIN, 'codex'), ['--version'], { encoding: 'utf8', timeout: 30000 });
    return r.status === 0 && r.stdout.includes(VERSION);
  };
  if (existsSync(path.join(BIN, 'codex')) && have()) return;
  mkdirSync(CACHE, { recursive: true });
  const r = spawnSync('npm', ['install', '--prefix', CACHE, '--no-audit', '--no-fund', `@openai/codex@${VERSION}`], { encoding: 'utf8', timeout: 600000 });
  if (r.status !== 0 || !have()) throw new Error(`npm install @openai/codex@${VERSION} into ${CACHE} failed (${r.status ?? r.signal}): ${r.stderr || r.error}`);
}

function makeReadable() {
  // Every directory from the cache up to tmpdir must be traversable.
  spawnSync('chmod', ['-R', 'a+rX', path.dirname(CACHE)]);
}

before(async () => {
  if (!haveOpenssl()) return;
  try {
    installCodex();
    makeReadable();
  } catch (e) {
    installError = e;
    return;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-e2e-codex-pki-'));
  dirs.push(dir);
  chmodSync(dir, 0o755);
  certs = makeCerts(dir, ['api.openai.com']);
  fake = await startFakeResponses(certs);
});

after(async () => {
  await fake?.close();
  cleanupWorkspaces();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** latchgate.toml pinning api.openai.com to the fake and trusting its CA; its own XDG dirs. */
function home(mode) {
  const h = mkdtempSync(path.join(os.tmpdir(), 'latchgate-e2e-codex-home-'));
  dirs.push(h);
  const cfg = path.join(h, 'latchgate.toml');
  writeFileSync(cfg, [
    '[sandbox.network]',
    `extra_ca_certs = [${JSON.stringify(certs.caFile)}]`,
    '',
    '[sandbox.network.resolve]',
    `"api.openai.com" = "127.0.0.1:${fake.port}"`,
    '',
  ].join('\n'));
  chmodSync(h, 0o755);
  if (mode === 'user' && isRoot) spawnSync('chown', ['-R', `${testUser().uid}:${testUser().gid}`, h]);
  return {
    cfg,
    env: {
      PATH: `${BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      XDG_STATE_HOME: path.join(h, 'state'),
      XDG_RUNTIME_DIR: path.join(h, 'run'),
      XDG_CONFIG_HOME: path.join(h, 'cfg'),
      OPENAI_API_KEY: KEY,
    },
  };
}

function cli(mode, args, env) {
  const u = testUser();
  const opts = { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', ...env } };
  if (mode === 'user' && isRoot) Object.assign(opts, { uid: u.uid, gid: u.gid });
  return spawnSync(process.execPath, [path.join(distDir(mode), 'cli', 'main.js'), ...args], opts);
}

/** Files under dir (bounded) whose contents hold s. */
function filesHolding(dir, s, limit = 20000) {
  const hits = [];
  const walk = (d) => {
    let names;
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      if (limit-- <= 0) return;
      const p = path.join(d, n);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size < 50e6 && readFileSync(p).includes(s)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

// The key split in two, so that the probe's own command line never holds it whole.
const half = Math.floor(KEY.length / 2);
const PROBE = `
echo '--- env'; env
echo '--- environ'; for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < "$f" 2>/dev/null; done
echo '--- grep'
a='${KEY.slice(0, half)}'; b='${KEY.slice(half)}'
echo "home-hits=$(grep -rlF -- "$a$b" "$HOME" "$PWD" /tmp 2>/dev/null | wc -l)"
echo "home=$HOME"
`;

for (const mode of MODES) {
  const skip = skipReason(mode)
    ?? (haveOpenssl() ? undefined : 'openssl is missing: cannot make the test certificates (make setup installs it)');
  test(`[${mode}] codex exec in the box reaches the fake Responses API only through the credential route; the key stays outside`, { skip, timeout: 900000 }, async (t) => {
    if (installError) throw installError;
    const h = home(mode);
    const ws = makeWorkspace('e2e-codex');
    fake.requests.length = 0;
    const t0 = Date.now();
    const r = await runBox(mode, {
      workspace: ws,
      env: h.env,
      args: ['--config', h.cfg, '--profile', 'codex', '--json'],
      cmd: ['codex', 'exec', '--skip-git-repo-check', 'say hi'],
      timeoutMs: 120000,
    });
    const ms = Date.now() - t0;
    const seen = fake.requests.map((q) => `${q.method} ${q.url} auth=${q.headers.authorization === `Bearer ${KEY}` ? '<host key>' : q.headers.authorization}`);
    const diag = `exit ${r.code ?? r.signal} in ${ms} ms\nfake saw: ${seen.join('; ') || 'nothing'}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
    t.diagnostic(`codex exec in the box: exit ${r.code ?? r.signal}, ${ms} ms; fake saw: ${seen.join('; ') || 'nothing'}`);

    // What the fake API received: the turn, with the host's key.
    const turns = fake.requests.filter((q) => q.method === 'POST' && q.url.split('?')[0] === '/v1/responses');
    assert.ok(turns.length >= 1, `the fake Responses API got no POST /v1/responses\n${diag}`);
    for (const q of fake.requests) {
      assert.equal(q.headers.authorization, `Bearer ${KEY}`, `every request carries the host key, never the placeholder\n${diag}`);
      assert.ok(!JSON.stringify(q.headers).includes(PLACEHOLDER), `the placeholder leaked upstream\n${diag}`);
    }
    assert.match(turns[0].body, /say hi/, 'the prompt reached the API');
    assert.match(turns[0].headers['user-agent'] ?? '', new RegExp(`codex_exec/${VERSION.replaceAll('.', '\\.')}`), 'the real codex exec made the call');
    // The reply Codex printed is the fake's.
    assert.match(r.stdout, new RegExp(`^${REPLY}$`, 'm'), `codex printed the fake API's reply\n${diag}`);
    assert.equal(r.code, 0, diag);
    assert.ok(!r.stdout.includes(KEY) && !r.stderr.includes(KEY), 'the key reached the agent output');
    assert.deepEqual(filesHolding(ws, KEY), [], 'the key is in a workspace file');

    // Inside the box (same profile and config) the key appears nowhere.
    const p = await runBox(mode, { workspace: ws, env: h.env, args: ['--config', h.cfg, '--profile', 'codex'], cmd: ['/bin/sh', '-c', PROBE], timeoutMs: 60000 });
    assert.equal(p.code, 0, p.stderr);
    assert.ok(!p.stdout.includes(KEY) && !p.stderr.includes(KEY), `the key is visible inside the box:\n${p.stdout}`);
    assert.match(p.stdout, new RegExp(`^OPENAI_API_KEY=${PLACEHOLDER}$`, 'm'), 'the box has the placeholder key');
    assert.match(p.stdout, /^home-hits=0$/m, p.stdout);

    // The ledger: the credential route's events, never the key.
    const a = cli(mode, ['audit', '--config', h.cfg, '--json', '--event-type', 'credential_proxy', '-l', '100'], h.env);
    assert.equal(a.status, 0, a.stderr);
    const cred = JSON.parse(a.stdout);
    const calls = cred.filter((e) => e.details?.route === 'openai' && /\/responses/.test(e.details?.path ?? ''));
    assert.ok(calls.length >= turns.length, `the ledger holds the route's calls: ${JSON.stringify(cred)}`);
    assert.ok(calls.some((e) => e.details.status === 200), JSON.stringify(calls));
    // With plugins and analytics off (the profile's -c flags) Codex opens no
    // CONNECT tunnel at all: github.com, chatgpt.com, ab.chatgpt.com stay quiet.
    const eg = cli(mode, ['audit', '--config', h.cfg, '--json', '--event-type', 'egress', '-l', '100'], h.env);
    assert.equal(eg.status, 0, eg.stderr);
    const egress = JSON.parse(eg.stdout);
    assert.deepEqual(egress.map((e) => `${e.decision} ${e.details?.host}:${e.details?.port}`), [], 'codex tried to reach the outside through the CONNECT proxy');
    const all = cli(mode, ['audit', '--config', h.cfg, '--json', '-l', '1000'], h.env);
    assert.equal(all.status, 0, all.stderr);
    assert.ok(!all.stdout.includes(KEY) && !a.stdout.includes(KEY), 'the key is in the ledger');
  });
}
