// Issue 4 D, end to end with the real Claude Code: `latchgate sandbox
// --profile claude-code -- claude -p "say hi"` with ANTHROPIC_API_KEY set
// only on the host. api.anthropic.com is pinned to a local fake Messages API
// over TLS (a test CA given as extra_ca_certs); the box reaches it only
// through the credential route, which adds the host key. Asserts on what the
// fake received (agents exit 0 even when things break), that the key is
// nowhere inside the box, and that the ledger holds the proxy events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox } from '../helpers/sandbox.mjs';
import { PLACEHOLDER, agentHome, auditEvents, haveOpenssl, installAgent } from '../helpers/agents.mjs';
import { FAKE_TEXT, makeAnthropicPki, startFakeAnthropic } from '../fixtures/e2e-claude/fake-anthropic.mjs';

const VERSION = '2.1.197';
const KEY = `sk-ant-host-only-${process.pid}-${Date.now()}-e2e0123456789`;

const dirs = [];
let setupError;
let binDir;
let pki;
let fake;

before(async () => {
  if (!haveOpenssl()) return void (setupError = 'openssl is missing: cannot make the test certificates (make setup installs it)');
  try {
    binDir = installAgent({ name: 'claude-code', pkg: '@anthropic-ai/claude-code', version: VERSION, bin: 'claude' });
  } catch (e) {
    return void (setupError = e.message);
  }
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
  // agents-e2e.md §1: without CLAUDE_CODE_MAX_RETRIES=0 a failing request is retried for minutes.
  const h = agentHome(mode, { prefix: 'claude', caFile: pki.caFile, pins: { 'api.anthropic.com': fake.port }, binDir, env: { ANTHROPIC_API_KEY: KEY, CLAUDE_CODE_MAX_RETRIES: '0' }, dirs });
  return { ...h, args: ['--config', h.cfg, '--profile', 'claude-code', '--pass-env', 'CLAUDE_CODE_MAX_RETRIES'] };
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
    const { events, text } = auditEvents(mode, s.cfg, s.env, 'credential_proxy');
    const total = fake.requests.length - from;
    assert.equal(events.length, total, `ledger events vs requests the fake saw: ${text.slice(0, 2000)}`);
    assert.ok(events.every((e) => e.details?.route === 'anthropic'), text.slice(0, 2000));
    assert.ok(events.some((e) => /\/v1\/messages/.test(JSON.stringify(e.details))), text.slice(0, 2000));
    assert.ok(!text.includes(KEY), 'the key is in the ledger');
    t.diagnostic(`requests at the fake: ${fake.requests.slice(from).map((q) => `${q.method} ${q.url}`).join(', ')}`);
    t.diagnostic(`credential_proxy events: ${events.map((e) => `${e.decision} ${JSON.stringify(e.details)}`).join('; ')}`);

    // The profile switches off Claude Code's nonessential traffic (agents-e2e.md §1):
    // nothing went out through the CONNECT proxy, allowed or not.
    const g = auditEvents(mode, s.cfg, s.env, 'egress');
    assert.deepEqual(g.events.map((e) => `${e.decision} ${e.details?.host}:${e.details?.port}`), [], 'CONNECT egress from Claude Code');
    assert.ok(!g.text.includes(KEY), 'the key is in the ledger');
  });
}
