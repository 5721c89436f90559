// End to end with the real Claude Code: `latchgate sandbox
// --profile claude-code -- claude -p "say hi"` with ANTHROPIC_API_KEY set
// only on the host. api.anthropic.com is pinned to a local fake Messages API
// over TLS (a test CA given as extra_ca_certs); the box reaches it only
// through the credential route, which adds the host key. Asserts on what the
// fake received (agents exit 0 even when things break), that the key is
// nowhere inside the box, and that the ledger holds the proxy events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, testUser } from '../helpers/sandbox.mjs';
import { AGENTS, PLACEHOLDER, agentHome, auditEvents, installAgent, needOpenssl, withTestUserClaudeState } from '../helpers/agents.mjs';
import { FAKE_TEXT, makeAnthropicPki, startFakeAnthropic } from '../fixtures/e2e-claude/fake-anthropic.mjs';

const { version: VERSION } = AGENTS['claude-code'];
const KEY = `sk-ant-host-only-${process.pid}-${Date.now()}-e2e0123456789`;

const dirs = [];
let binDir;
let pki;
let fake;

before(async () => {
  needOpenssl();
  binDir = installAgent('claude-code');
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
// and every file under HOME after Claude Code has run and written its state
// (-R: ~/.claude.json is a symlink to the box's private copy, which the scan
// must read too; Claude Code writes other files under HOME only sometimes).
const INSPECT = `
claude -p "say hi" >/dev/null 2>&1; echo "claude2=$?"
echo "--- env"; env
echo "--- environ"; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'
echo "--- home $HOME"; grep -R -a -I . "$HOME" 2>/dev/null
echo "--- files"; find "$HOME" -type f 2>/dev/null
`;

for (const mode of MODES) {
  test(`[${mode}] claude -p runs in the box against the fake API; the host key stays outside`, { skip: skipReason(mode), timeout: 600_000 }, async (t) => {
    const s = setup(mode);
    const ws = makeWorkspace('e2e-claude');
    const from = fake.requests.length;

    const t0 = Date.now();
    // Its boxes write the test user's Claude Code state, which test/sandbox/state-files.test.mjs checks.
    const r = await withTestUserClaudeState(() => runBox(mode, { workspace: ws, env: s.env, args: s.args, cmd: ['claude', '-p', 'say hi'], timeoutMs: 120_000 }));
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
    const i = await withTestUserClaudeState(() => runBox(mode, { workspace: ws, env: s.env, args: s.args, cmd: ['/bin/sh', '-c', INSPECT], timeoutMs: 120_000 }));
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
    // (--event-type egress is every exit's events: the CONNECT proxy's are those of type egress.)
    const g = auditEvents(mode, s.cfg, s.env, 'egress');
    assert.deepEqual(g.events.filter((e) => e.event_type === 'egress').map((e) => `${e.decision} ${e.details?.host}:${e.details?.port}`), [], 'CONNECT egress from Claude Code');
    assert.ok(!g.text.includes(KEY), 'the key is in the ledger');
  });
}

// ~/.claude.json is a state file (src/sandbox/state-files.ts): with the
// user's own file in the agent's home (an MCP server of their own in it),
// the real Claude Code starts in the box, its state updates persist on the
// host, and an MCP server added in the box through Claude Code's own
// `claude mcp add` (user and project scope) never reaches the host file.
// Twice per mode: without ~/.claude on the host (the box follows the
// ~/.claude.json symlink into its private copy) and with it (Claude Code
// prefers ~/.claude/.config.json, where the box sees the same copy).
const isRoot = process.getuid() === 0;
const notRoot = isRoot ? undefined : 'needs root: writes the test user\'s home (/home/lgtest), which a non-root run would take from your own';
const USER_SERVER = { type: 'stdio', command: '/nonexistent/my-own-mcp-server', args: ['--stdio'], env: {} };

for (const mode of MODES) {
  test(`[${mode}] ~/.claude.json: Claude Code's state persists on the host, servers the box adds do not`, { skip: skipReason(mode) ?? notRoot, timeout: 600_000 }, async (t) => {
    const u = testUser();
    const home = `/home/${u.name}`;
    const stateFile = `${home}/.claude.json`;
    // Other test files share this home: it is made when missing and removed only when nothing else is in it.
    const clear = () => {
      if (!existsSync(home)) {
        mkdirSync(home, { mode: 0o755 });
        chownSync(home, u.uid, u.gid);
      }
      for (const n of readdirSync(home)) if (n === '.claude.json' || n.startsWith('.claude.json.')) rmSync(`${home}/${n}`, { force: true });
      rmSync(`${home}/.claude`, { recursive: true, force: true });
    };
    // No Claude Code run of another file writes this home meanwhile (test/helpers/agents.mjs).
    await withTestUserClaudeState(async () => {
      try {
        const s = setup(mode);
        const ADD = 'claude mcp add -s user evil-user -- /bin/sh -c "touch /tmp/pwned" >/dev/null 2>&1; echo add-user=$?; claude mcp add -s local evil-local -- /bin/sh -c "touch /tmp/pwned2" >/dev/null 2>&1; echo add-local=$?; grep -c evil- "$HOME/.claude.json" | sed s/^/in-box-copy=/';
        for (const withDir of [false, true]) {
          clear();
          const orig = { numStartups: 3, hasCompletedOnboarding: true, mcpServers: { mine: USER_SERVER } };
          writeFileSync(stateFile, JSON.stringify(orig, null, 2), { mode: 0o600 });
          chownSync(stateFile, u.uid, u.gid);
          if (withDir) {
            mkdirSync(`${home}/.claude`, { mode: 0o755 });
            chownSync(`${home}/.claude`, u.uid, u.gid);
          }
          const ws = makeWorkspace('e2e-claude-state');
          const from = fake.requests.length;
          const r = await runBox(mode, { workspace: ws, env: s.env, args: s.args, cmd: ['/bin/sh', '-c', `claude -p "say hi"; echo "claude=$?"; ${ADD}`], timeoutMs: 180_000 });
          const host = readFileSync(stateFile, 'utf8');
          const diag = `${withDir ? 'with' : 'without'} ~/.claude: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nhost file: ${host.slice(0, 3000)}`;
          assert.equal(r.code, 0, diag);
          assert.match(r.stdout, new RegExp(`^${FAKE_TEXT}$`, 'm'), diag);
          assert.match(r.stdout, /^claude=0$/m, diag);
          assert.ok(fake.requests.slice(from).some((q) => q.method === 'POST' && q.url.startsWith('/v1/messages')), `Claude Code reached the fake API: ${diag}`);
          // claude mcp add succeeded inside the box, in the box's copy.
          assert.match(r.stdout, /^add-user=0$/m, diag);
          assert.match(r.stdout, /^add-local=0$/m, diag);
          assert.match(r.stdout, /^in-box-copy=[1-9]/m, diag);
          const after = JSON.parse(host);
          assert.ok(after.numStartups > orig.numStartups || Object.keys(after.projects ?? {}).length > 0, `Claude Code's state did not persist: ${diag}`);
          assert.deepEqual(after.mcpServers, orig.mcpServers, `the user's MCP servers changed: ${diag}`);
          assert.ok(!host.includes('evil-') && !host.includes('pwned'), `a server the box added reached the host: ${diag}`);
          for (const [p, entry] of Object.entries(after.projects ?? {})) {
            assert.equal(entry.mcpServers, undefined, `projects[${p}] got servers: ${diag}`);
            assert.equal(entry.allowedTools, undefined, `projects[${p}] got tools: ${diag}`);
          }
          assert.match(r.stderr, /state file .*\.claude\.json: not merged .*\/mcpServers/, diag);
          assert.ok(!existsSync(`${home}/.claude/.config.json`), `~/.claude/.config.json was left on the host: ${diag}`);
          assert.equal(lstatSync(stateFile).uid, u.uid);
          assert.equal(lstatSync(stateFile).mode & 0o777, 0o600);
          // The ledger says what was dropped, by key path only.
          const { events, text } = auditEvents(mode, s.cfg, s.env, 'state_file_merge');
          const last = events.at(-1);
          assert.ok(last && last.details?.path === stateFile && last.decision === 'deny', text.slice(0, 2000));
          assert.ok(last.details.dropped.includes('/mcpServers'), text.slice(0, 2000));
          assert.ok(last.details.dropped.some((d) => /^\/projects\/.*\/mcpServers/.test(d)), text.slice(0, 2000));
          assert.ok(!text.includes('pwned'), 'a value reached the ledger');
          t.diagnostic(`${withDir ? 'with' : 'without'} ~/.claude: host keys after: ${Object.keys(after).join(', ')}; dropped: ${last.details.dropped.join(', ')}`);
        }
      } finally {
        clear();
        try {
          rmdirSync(home);
        } catch {
          // another test's files are in it
        }
      }
    });
  });
}
