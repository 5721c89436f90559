// Issue 4 D, end to end with the real Claude Code: `latchgate sandbox
// --profile claude-code -- claude -p "say hi"` with ANTHROPIC_API_KEY set
// only on the host. api.anthropic.com is pinned to a local fake Messages API
// over TLS (a test CA given as extra_ca_certs); the box reaches it only
// through the credential route, which adds the host key. Asserts on what the
// fake received (agents exit 0 even when things break), that the key is
// nowhere inside the box, and that the ledger holds the proxy events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, distDir, testUser } from '../helpers/sandbox.mjs';
import { FAKE_TEXT, makeAnthropicPki, startFakeAnthropic } from '../fixtures/e2e-claude/fake-anthropic.mjs';

const VERSION = '2.1.197';
const INSTALL = path.join(os.tmpdir(), 'latchgate-agents', `claude-code-${VERSION}`);
const CLAUDE_BIN = path.join(INSTALL, 'node_modules', '.bin');
const KEY = `sk-ant-host-only-${process.pid}-${Date.now()}-e2e0123456789`;
const PLACEHOLDER = 'latchgate-placeholder';
const SYS_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const isRoot = process.getuid() === 0;

const dirs = [];
let setupError;
let pki;
let fake;

function haveOpenssl() {
  return spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
}

/** npm install of the pinned Claude Code into a cache outside the repo, reused when present. */
function installClaude() {
  if (existsSync(path.join(CLAUDE_BIN, 'claude'))) return;
  mkdirSync(path.dirname(INSTALL), { recursive: true });
  const tmp = `${INSTALL}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const r = spawnSync('npm', ['install', '--prefix', tmp, '--no-audit', '--no-fund', `@anthropic-ai/claude-code@${VERSION}`], { encoding: 'utf8', timeout: 15 * 60_000 });
  if (r.status !== 0 || !existsSync(path.join(tmp, 'node_modules', '.bin', 'claude'))) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`npm install @anthropic-ai/claude-code@${VERSION} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr?.slice(-2000)}`);
  }
  try {
    renameSync(tmp, INSTALL);
  } catch (e) {
    // Another run installed it meanwhile: use theirs.
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(path.join(CLAUDE_BIN, 'claude'))) throw e;
  }
}

before(async () => {
  if (!haveOpenssl()) return void (setupError = 'openssl is missing: cannot make the test certificates (make setup installs it)');
  try {
    installClaude();
  } catch (e) {
    return void (setupError = e.message);
  }
  // The test user (the agent in both modes) must read and run the install.
  chmodSync(path.dirname(INSTALL), 0o755);
  spawnSync('chmod', ['-R', 'a+rX', INSTALL]);
  const v = spawnSync(path.join(CLAUDE_BIN, 'claude'), ['--version'], { encoding: 'utf8', timeout: 60_000 });
  if (!v.stdout?.includes(VERSION)) return void (setupError = `claude --version on the host: ${v.stdout} ${v.stderr} ${v.error?.message ?? ''}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-e2e-claude-pki-'));
  dirs.push(dir);
  pki = makeAnthropicPki(dir);
  chmodSync(dir, 0o755);
  chmodSync(pki.caFile, 0o644);
  fake = await startFakeAnthropic(pki);
});

after(async () => {
  await fake?.close();
  cleanupWorkspaces();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A latchgate.toml pinning api.anthropic.com to the fake, and the launcher's environment. */
function setup(mode) {
  const h = mkdtempSync(path.join(os.tmpdir(), 'latchgate-e2e-claude-'));
  dirs.push(h);
  const cfg = path.join(h, 'latchgate.toml');
  writeFileSync(cfg, [
    '[sandbox.network]',
    `extra_ca_certs = [${JSON.stringify(pki.caFile)}]`,
    '',
    '[sandbox.network.resolve]',
    `"api.anthropic.com" = "127.0.0.1:${fake.port}"`,
    '',
  ].join('\n'));
  if (mode === 'user' && isRoot) spawnSync('chown', ['-R', `${testUser().uid}:${testUser().gid}`, h]);
  const env = {
    PATH: `${CLAUDE_BIN}:${SYS_PATH}`,
    XDG_STATE_HOME: path.join(h, 'state'),
    XDG_RUNTIME_DIR: path.join(h, 'run'),
    XDG_CONFIG_HOME: path.join(h, 'cfg'),
    ANTHROPIC_API_KEY: KEY,
    // agents-e2e.md §1: without it a failing request is retried for minutes.
    CLAUDE_CODE_MAX_RETRIES: '0',
  };
  return { cfg, env, args: ['--config', cfg, '--profile', 'claude-code', '--pass-env', 'CLAUDE_CODE_MAX_RETRIES'] };
}

function cli(mode, args, env) {
  const u = testUser();
  const opts = { encoding: 'utf8', env: { PATH: SYS_PATH, ...env } };
  if (mode === 'user' && isRoot) Object.assign(opts, { uid: u.uid, gid: u.gid });
  return spawnSync(process.execPath, [path.join(distDir(mode), 'cli', 'main.js'), ...args], opts);
}

// Everything the box can see of itself: its environment, every process's,
// and every file under HOME after Claude Code has run and written its state.
const INSPECT = `
claude -p "say hi" >/dev/null 2>&1; echo "claude2=$?"
echo "--- env"; env
echo "--- environ"; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'
echo "--- home $HOME"; grep -r -a -I . "$HOME" 2>/dev/null
echo "--- files"; find "$HOME" -type f 2>/dev/null
`;

for (const mode of MODES) {
  test(`[${mode}] claude -p runs in the box against the fake API; the host key stays outside`, { skip: skipReason(mode), timeout: 600_000 }, async (t) => {
    if (setupError) return t.skip(setupError);
    const s = setup(mode);
    const ws = makeWorkspace('e2e-claude');
    const from = fake.requests.length;

    const t0 = Date.now();
    const r = await runBox(mode, { workspace: ws, env: s.env, args: s.args, cmd: ['claude', '-p', 'say hi'], timeoutMs: 120_000 });
    t.diagnostic(`claude -p in the box: ${Date.now() - t0} ms, exit ${r.code}`);
    const got = fake.requests.slice(from);
    const diag = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nfake saw: ${got.map((q) => `${q.method} ${q.url}`).join(', ')}`;

    // What the fake received decides, not the exit status.
    const messages = got.filter((q) => q.method === 'POST' && q.url.startsWith('/v1/messages'));
    assert.ok(messages.length >= 1, `the fake API got no /v1/messages request: ${diag}`);
    assert.ok(messages.some((q) => q.body?.stream === true), `no streaming request: ${diag}`);
    for (const q of got) {
      assert.equal(q.headers['x-api-key'], KEY, `${q.method} ${q.url} did not carry the host key: ${diag}`);
      assert.equal(q.headers.authorization, undefined, `${q.method} ${q.url} carried an Authorization header`);
      assert.ok(!JSON.stringify(q).includes(PLACEHOLDER), `${q.method} ${q.url} carried the placeholder`);
    }
    assert.match(messages[0].headers['user-agent'] ?? '', new RegExp(`claude-cli/${VERSION.replace(/\./g, '\\.')}`), 'the real Claude Code made the request');
    assert.equal(r.stdout.trim(), FAKE_TEXT, diag);
    assert.equal(r.code, 0, diag);
    assert.ok(!r.stdout.includes(KEY) && !r.stderr.includes(KEY), 'the key reached the box output');

    // Inside the box the key appears nowhere; the placeholder is what it has.
    const seen = fake.requests.length;
    const i = await runBox(mode, { workspace: ws, env: s.env, args: s.args, cmd: ['/bin/sh', '-c', INSPECT], timeoutMs: 120_000 });
    const idiag = `exit ${i.code}\nstderr: ${i.stderr}\nstdout (head): ${i.stdout.slice(0, 3000)}`;
    assert.equal(i.code, 0, idiag);
    assert.match(i.stdout, /^claude2=0$/m, idiag);
    assert.ok(fake.requests.length > seen, 'the second run reached the fake too');
    assert.ok(!i.stdout.includes(KEY) && !i.stderr.includes(KEY), 'the host key is visible inside the box');
    const [envPart, rest] = i.stdout.split('--- environ');
    assert.match(envPart, new RegExp(`^ANTHROPIC_API_KEY=${PLACEHOLDER}$`, 'm'), idiag);
    assert.match(envPart, /^ANTHROPIC_BASE_URL=http:\/\/127\.0\.0\.1:3129\/anthropic$/m, idiag);
    assert.match(rest, new RegExp(`^ANTHROPIC_API_KEY=${PLACEHOLDER}$`, 'm'), 'the environ dump covers the box processes');
    assert.match(i.stdout, /\.claude\.json/, `Claude Code wrote its state under HOME and the scan covered it: ${idiag}`);

    // The ledger: one credential_proxy event per request the fake saw, none with the key.
    const a = cli(mode, ['audit', '--config', s.cfg, '--json', '--event-type', 'credential_proxy', '-l', '500'], s.env);
    assert.equal(a.status, 0, a.stderr);
    const events = JSON.parse(a.stdout);
    const total = fake.requests.length - from;
    assert.equal(events.length, total, `ledger events vs requests the fake saw: ${a.stdout.slice(0, 2000)}`);
    assert.ok(events.every((e) => e.details?.route === 'anthropic'), a.stdout.slice(0, 2000));
    assert.ok(events.some((e) => /\/v1\/messages/.test(JSON.stringify(e.details))), a.stdout.slice(0, 2000));
    assert.ok(!a.stdout.includes(KEY), 'the key is in the ledger');
    t.diagnostic(`requests at the fake: ${fake.requests.slice(from).map((q) => `${q.method} ${q.url}`).join(', ')}`);
    t.diagnostic(`credential_proxy events: ${events.map((e) => `${e.decision} ${JSON.stringify(e.details)}`).join('; ')}`);

    // The profile switches off Claude Code's nonessential traffic (agents-e2e.md §1):
    // nothing went out through the CONNECT proxy, allowed or not.
    const g = cli(mode, ['audit', '--config', s.cfg, '--json', '--event-type', 'egress', '-l', '500'], s.env);
    assert.equal(g.status, 0, g.stderr);
    assert.deepEqual(JSON.parse(g.stdout).map((e) => `${e.decision} ${e.details?.host}:${e.details?.port}`), [], 'CONNECT egress from Claude Code');
    assert.ok(!g.stdout.includes(KEY), 'the key is in the ledger');
  });
}
