// End to end with the real OpenAI Codex CLI: `latchgate sandbox
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
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox } from '../helpers/sandbox.mjs';
import { AGENTS, PLACEHOLDER, agentHome, auditEvents, cliAs, filesHolding, installAgent, keyProbe, needOpenssl } from '../helpers/agents.mjs';
import { REPLY, makeCerts, startFakeResponses } from '../fixtures/e2e-codex/fake-responses.mjs';

const { version: VERSION } = AGENTS.codex;
const KEY = `sk-codex-host-only-${process.pid}-${Date.now()}-fedcba9876543210`;
const dirs = [];
let binDir;
let certs;
let fake;

before(async () => {
  needOpenssl();
  binDir = installAgent('codex');
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
const home = (mode) => agentHome(mode, { prefix: 'codex', caFile: certs.caFile, pins: { 'api.openai.com': fake.port }, binDir, env: { OPENAI_API_KEY: KEY }, dirs });
const PROBE = keyProbe(KEY);

for (const mode of MODES) {
  const skip = skipReason(mode);
  test(`[${mode}] codex exec in the box reaches the fake Responses API only through the credential route; the key stays outside`, { skip, timeout: 900000 }, async (t) => {
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
    const { events: cred, text: credText } = auditEvents(mode, h.cfg, h.env, 'credential_proxy', 100);
    const calls = cred.filter((e) => e.details?.route === 'openai' && /\/responses/.test(e.details?.path ?? ''));
    assert.ok(calls.length >= turns.length, `the ledger holds the route's calls: ${JSON.stringify(cred)}`);
    assert.ok(calls.some((e) => e.details.status === 200), JSON.stringify(calls));
    // With plugins and analytics off (the profile's -c flags) Codex opens no
    // CONNECT tunnel at all: github.com, chatgpt.com, ab.chatgpt.com stay quiet.
    // (--event-type egress is every exit's events: the CONNECT proxy's are those of type egress.)
    const { events: egress } = auditEvents(mode, h.cfg, h.env, 'egress', 100);
    assert.deepEqual(egress.filter((e) => e.event_type === 'egress').map((e) => `${e.decision} ${e.details?.host}:${e.details?.port}`), [], 'codex tried to reach the outside through the CONNECT proxy');
    const all = cliAs(mode, ['audit', '--config', h.cfg, '--json', '-l', '1000'], h.env);
    assert.equal(all.status, 0, all.stderr);
    assert.ok(!all.stdout.includes(KEY) && !credText.includes(KEY), 'the key is in the ledger');
  });
}
