// End to end with the real opencode (npm opencode-ai, a Bun
// binary): `latchgate sandbox --profile opencode -- opencode run -m
// openai/gpt-4o-mini "say hi"` against the fake OpenAI Responses API (TLS, a
// test CA, api.openai.com pinned to it). opencode takes base URLs from its
// config, not the environment: the profile generates /run/latchgate/
// opencode.json (OPENCODE_CONFIG) with the credential route as the openai
// provider's baseURL. Asserts on what the fake received; the key is never
// inside the box nor in the ledger.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox } from '../helpers/sandbox.mjs';
import { PLACEHOLDER, agentHome, auditEvents, filesHolding, installAgent, needOpenssl, keyProbe } from '../helpers/agents.mjs';
import { REPLY, makeCerts, startFakeResponses } from '../fixtures/e2e-codex/fake-responses.mjs';

const KEY = `sk-opencode-host-only-${process.pid}-${Date.now()}-0123456789`;
const dirs = [];
let binDir;
let certs;
let fake;

before(async () => {
  needOpenssl();
  binDir = installAgent('opencode');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-e2e-opencode-pki-'));
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

for (const mode of MODES) {
  test(`[${mode}] opencode run in the box reaches the fake API through the credential route its generated config names; the key stays outside`, { skip: skipReason(mode), timeout: 600_000 }, async (t) => {
    const h = agentHome(mode, { prefix: 'opencode', caFile: certs.caFile, pins: { 'api.openai.com': fake.port }, binDir, env: { OPENAI_API_KEY: KEY }, dirs });
    const ws = makeWorkspace('e2e-opencode');
    const args = ['--config', h.cfg, '--profile', 'opencode'];
    const from = fake.requests.length;
    const t0 = Date.now();
    // opencode reads a piped stdin to its end: runBox closes it.
    const r = await runBox(mode, { workspace: ws, env: h.env, args, cmd: ['opencode', 'run', '-m', 'openai/gpt-4o-mini', 'say hi'], timeoutMs: 180_000 });
    const got = fake.requests.slice(from);
    const diag = `exit ${r.code ?? r.signal} in ${Date.now() - t0} ms\nfake saw: ${got.map((q) => `${q.method} ${q.url}`).join('; ') || 'nothing'}\nstdout: ${r.stdout}\nstderr: ${r.stderr.slice(-3000)}`;
    t.diagnostic(`opencode run in the box: exit ${r.code ?? r.signal}, ${Date.now() - t0} ms`);

    const turns = got.filter((q) => q.method === 'POST' && q.url.split('?')[0] === '/v1/responses');
    assert.ok(turns.length >= 1, `the fake Responses API got no POST /v1/responses\n${diag}`);
    for (const q of got) {
      assert.equal(q.headers.authorization, `Bearer ${KEY}`, `every request carries the host key, never the placeholder\n${diag}`);
      assert.ok(!JSON.stringify(q.headers).includes(PLACEHOLDER), `the placeholder leaked upstream\n${diag}`);
    }
    assert.ok(turns.some((q) => /say hi/.test(q.body)), `the prompt reached the API\n${diag}`);
    assert.match(turns[0].headers['user-agent'] ?? '', /opencode/i, `the real opencode made the call\n${diag}`);
    assert.match(r.stdout, new RegExp(`^${REPLY}$`, 'm'), `opencode printed the fake API's reply\n${diag}`);
    assert.equal(r.code, 0, diag);
    assert.ok(!r.stdout.includes(KEY) && !r.stderr.includes(KEY), 'the key reached the agent output');
    assert.deepEqual(filesHolding(ws, KEY), [], 'the key is in a workspace file');

    // Inside the box: the generated config, read-only, and the key nowhere.
    const p = await runBox(mode, { workspace: ws, env: h.env, args, cmd: ['/bin/sh', '-c', `cat "$OPENCODE_CONFIG"; echo; (: > "$OPENCODE_CONFIG") 2>/dev/null && echo CONFIG-WRITABLE; ${keyProbe(KEY)}`], timeoutMs: 60_000 });
    assert.equal(p.code, 0, p.stderr);
    assert.ok(!p.stdout.includes(KEY) && !p.stderr.includes(KEY), `the key is visible inside the box:\n${p.stdout}`);
    assert.match(p.stdout, /"baseURL": "http:\/\/127\.0\.0\.1:3129\/openai"/, p.stdout);
    assert.doesNotMatch(p.stdout, /CONFIG-WRITABLE/);
    assert.match(p.stdout, new RegExp(`^OPENAI_API_KEY=${PLACEHOLDER}$`, 'm'));
    assert.match(p.stdout, /^home-hits=0$/m, p.stdout);

    // The ledger: the route's calls, never the key.
    const cred = auditEvents(mode, h.cfg, h.env, 'credential_proxy');
    assert.ok(cred.events.some((e) => e.details?.route === 'openai' && /\/responses/.test(e.details?.path ?? '') && e.details.status === 200), cred.text.slice(0, 2000));
    assert.ok(!cred.text.includes(KEY), 'the key is in the ledger');
  });
}
