// The whole loop with real agents: `latchgate sandbox --profile P` hands the
// agent the gate's actions as MCP tools with no setup, the agent (scripted
// by a local fake model API) calls `http_fetch` for a URL on a local HTTPS
// upstream (pinned for the gate, trusted through a test CA), and the gate
// runs it. Asserted: the upstream saw exactly one request, the gate's (the
// box has no route to it), the model got the upstream's body back in the
// tool result, the receipt is signed, in the ledger and verifies, and the
// model API key reached the fake only through the credential route, never
// the box. With Claude Code also a high-risk action: held for an approval,
// approved on the host with `latchgate approvals approve`, and the retried
// call gets the gate's run with a verified receipt.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, distDir, testUser } from '../helpers/sandbox.mjs';
import { PLACEHOLDER, SYS_PATH, agentHome, auditEvents, cliAs, installAgent, keyProbe, needOpenssl, withTestUserClaudeState } from '../helpers/agents.mjs';
import { receiptIdIn, toolResults, toolStep } from '../helpers/agent-scripts.mjs';
import { tlsUpstream } from '../helpers/tls-upstream.mjs';
import { makeAnthropicPki, startFakeAnthropic } from '../fixtures/e2e-claude/fake-anthropic.mjs';
import { makeCerts, startFakeResponses } from '../fixtures/e2e-codex/fake-responses.mjs';

/** The model API each agent speaks. */
const API = { 'claude-code': 'anthropic', codex: 'openai', opencode: 'openai' };
const KEY = `sk-host-only-${process.pid}-${Date.now()}-gate0123456789`;
const GITHUB_TOKEN = `ghp_host_only_${process.pid}_0123456789abcdef`;

const dirs = [];
const bins = {};
let upstream;
let anthropic;
let openai;
let pki;
let certs;

before(async () => {
  needOpenssl();
  for (const name of Object.keys(API)) bins[name] = installAgent(name);
  // One directory each: both write ca.pem.
  const [a, o] = ['anthropic', 'openai'].map((n) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), `latchgate-e2e-gate-${n}-`));
    dirs.push(dir);
    chmodSync(dir, 0o755);
    return dir;
  });
  pki = makeAnthropicPki(a);
  chmodSync(pki.caFile, 0o644);
  certs = makeCerts(o, ['api.openai.com']);
  anthropic = await startFakeAnthropic(pki);
  openai = await startFakeResponses(certs);
  // The upstream the gate's http_api provider reaches; an issue "created" answers 201 with its number.
  upstream = await tlsUpstream(['httpbin.org', 'api.github.com'], (req, res) => {
    if (req.method !== 'POST') return false;
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 1, number: 42, html_url: 'https://github.com/o/r/issues/42' }));
  });
  chmodSync(path.dirname(upstream.caFile), 0o755);
  chmodSync(upstream.caFile, 0o644);
});

after(async () => {
  await anthropic?.close();
  await openai?.close();
  upstream?.close();
  cleanupWorkspaces();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The agent's config: its model API pinned to the fake, the gate's upstream pinned and trusted; the box's principal granted the actions. */
function setup(mode, agent) {
  const anthropicApi = API[agent] === 'anthropic';
  const fake = anthropicApi ? anthropic : openai;
  const host = anthropicApi ? 'api.anthropic.com' : 'api.openai.com';
  const keyVar = anthropicApi ? 'ANTHROPIC_API_KEY' : 'OPENAI_API_KEY';
  const h = agentHome(mode, { prefix: `gate-${agent}`, caFile: anthropicApi ? pki.caFile : certs.caFile, pins: { [host]: fake.port }, binDir: bins[agent], env: { [keyVar]: KEY, CLAUDE_CODE_MAX_RETRIES: '0' }, dirs });
  appendFileSync(h.cfg, ['[gate]', `extra_ca_certs = [${JSON.stringify(upstream.caFile)}]`, '[gate.resolve]', ...[...upstream.pins()].map(([n, v]) => `${JSON.stringify(n)} = ${JSON.stringify(v)}`), ''].join('\n'));
  const grant = cliAs(mode, ['policy', 'grant', `sandbox-${agent}`, 'http_fetch,github_create_issue', '--config', h.cfg], h.env);
  assert.equal(grant.status, 0, grant.stderr);
  return { ...h, fake, args: ['--config', h.cfg, '--profile', agent, ...(agent === 'claude-code' ? ['--pass-env', 'CLAUDE_CODE_MAX_RETRIES'] : [])] };
}

/** cliAs without blocking this process. */
function cliAsync(mode, args, env) {
  const opts = { encoding: 'utf8', env: { PATH: SYS_PATH, ...env } };
  if (mode === 'user' && process.getuid() === 0) Object.assign(opts, { uid: testUser().uid, gid: testUser().gid });
  return new Promise((resolve) => execFile(process.execPath, [path.join(distDir(mode), 'cli', 'main.js'), ...args], opts, (e, stdout, stderr) => resolve({ status: e ? (e.code ?? 1) : 0, stdout, stderr })));
}

const COMMAND = {
  codex: (prompt) => ['codex', 'exec', '--skip-git-repo-check', prompt],
  'claude-code': (prompt) => ['claude', '-p', prompt],
  opencode: (prompt) => ['opencode', 'run', '-m', 'openai/gpt-4o-mini', prompt],
};

/** Inside a box of the same profile: a direct connection to the upstream, and the key probe. */
const PROBE = (port) => `if (exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null; then echo reach=yes; else echo reach=no; fi
${keyProbe(KEY)}`;

/**
 * The agent as the box's command (argv[0] is the agent: the profile's arguments apply), then the probe box.
 * Boxes of the claude-code profile write the home's Claude Code state: not while test/e2e/claude-code.test.mjs checks it.
 */
async function runAgent(mode, agent, s, ws, prompt) {
  const boxes = async () => [
    await runBox(mode, { workspace: ws, env: s.env, args: s.args, cmd: COMMAND[agent](prompt), timeoutMs: 240_000 }),
    await runBox(mode, { workspace: ws, env: s.env, args: s.args, cmd: ['/bin/bash', '-c', PROBE(upstream.port)], timeoutMs: 120_000 }),
  ];
  const [r, p] = agent === 'claude-code' ? await withTestUserClaudeState(boxes) : await boxes();
  return { code: r.code, stdout: `${r.stdout}\nagent-exit=${r.code}\n${p.stdout}`, stderr: `${r.stderr}\n${p.stderr}` };
}

function assertKeyOutside(s, r, from, diag) {
  const got = s.fake.requests.slice(from).filter((q) => q.method === 'POST');
  assert.ok(got.length >= 2, `the fake got the turn and the tool result: ${diag}`);
  for (const q of got) {
    const sent = q.headers['x-api-key'] ?? q.headers.authorization;
    assert.ok(sent === KEY || sent === `Bearer ${KEY}`, `${q.url} did not carry the host key (only the credential route adds it): ${diag}`);
    assert.ok(!JSON.stringify(q.body ?? '').includes(KEY), 'the key is in a request body');
  }
  assert.ok(!r.stdout.includes(KEY) && !r.stderr.includes(KEY), `the key is visible in the box: ${diag}`);
  assert.match(r.stdout, /^home-hits=0$/m, diag);
  assert.ok(r.stdout.includes(`=${PLACEHOLDER}`), `the box has the placeholder: ${diag}`);
}

/**
 * The receipt of the agent's call in the ledger, signed, and `latchgate
 * verify` over the whole ledger. Claude Code hands the model only a tool's
 * structured output, so the receipt is found by its action when the text
 * does not name it.
 */
function assertReceipt(mode, s, text, actionId, diag) {
  const { events, text: all } = auditEvents(mode, s.cfg, s.env, 'action_call');
  const named = receiptIdIn(text);
  const ev = named ? events.find((e) => JSON.stringify(e).includes(named)) : events.find((e) => JSON.stringify(e).includes(`"${actionId}"`) && /"receipt_id"/.test(JSON.stringify(e)));
  assert.ok(ev, `no action_call event of ${actionId} with ${named ?? 'a'} receipt: ${all.slice(0, 2000)} ${diag}`);
  const receiptId = named ?? /"receipt_id":"([^"]+)"/.exec(JSON.stringify(ev))[1];
  const v = cliAs(mode, ['verify', '--config', s.cfg, '--json'], s.env);
  assert.equal(v.status, 0, `latchgate verify: ${v.stdout} ${v.stderr}`);
  return { receiptId, event: ev };
}

for (const mode of MODES) {
  for (const agent of Object.keys(API)) {
    test(`[${mode}] ${agent} in its box calls the gate's http_fetch through the MCP tools it was given; the gate alone reaches the upstream`, { skip: skipReason(mode), timeout: 600_000 }, async (t) => {
      const s = setup(mode, agent);
      const ws = makeWorkspace(`e2e-gate-${agent}`);
      const probe = `/get?probe=${agent}-${mode}-${Date.now()}`;
      const url = `https://httpbin.org${probe}`;
      s.fake.script([toolStep(agent, 'http_fetch', { url }), { text: 'fetched' }]);
      const from = s.fake.requests.length;
      const r = await runAgent(mode, agent, s, ws, 'fetch the probe URL');
      const results = toolResults(agent, s.fake.requests, { from });
      const offered = s.fake.requests.slice(from).filter((q) => q.method === 'POST').map((q) => JSON.stringify((q.body?.tools ?? []).map((x) => x.name ?? x.type)).slice(0, 600));
      const diag = `exit ${r.code}\ntools offered: ${offered.join(' | ')}\nstdout: ${r.stdout.slice(0, 4000)}\nstderr: ${r.stderr.slice(-3000)}\ntool results: ${JSON.stringify(results).slice(0, 3000)}`;
      assert.match(r.stdout, /^agent-exit=0$/m, diag);
      assert.equal(s.fake.pending(), 0, `the agent took every scripted step: ${diag}`);
      // The upstream: one request, the gate's.
      const hits = upstream.seen.filter((q) => q.url === probe);
      assert.equal(hits.length, 1, `the upstream saw ${hits.length} requests for ${probe}: ${diag}`);
      assert.match(r.stdout, /^reach=no$/m, `the box reached the upstream's port directly: ${diag}`);
      // The model got the upstream's body back, with the receipt.
      assert.equal(results.length, 1, diag);
      assert.ok(results[0].text.includes(`hello from ${probe}`), `the tool result lacks the upstream's body: ${diag}`);
      assert.notEqual(results[0].isError, true, diag);
      assertReceipt(mode, s, results[0].text, 'http_fetch', diag);
      assertKeyOutside(s, r, from, diag);
    });
  }

  test(`[${mode}] claude-code: a high-risk action is held, approved on the host, and the retried call gets the gate's run`, { skip: skipReason(mode), timeout: 600_000 }, async (t) => {
    const agent = 'claude-code';
    const s = setup(mode, agent);
    const ws = makeWorkspace('e2e-gate-approval');
    const input = { owner: 'o', repo: 'r', title: `from the box ${mode}`, body: 'filed by the agent', labels: [] };
    const before = upstream.seen.length;
    const from = s.fake.requests.length;
    let approvalId;
    let approved;
    // The retry is answered only after the operator approved the first call's approval on the host.
    const approveOnHost = async () => {
      const first = toolResults(agent, s.fake.requests, { from })[0];
      approvalId = /Approval id: (\S+)/.exec(first?.text ?? '')?.[1];
      if (!approvalId) return;
      // Not spawnSync: this process serves the upstream the approved run calls.
      approved = await cliAsync(mode, ['approvals', 'approve', approvalId, '--config', s.cfg, '--json'], { ...s.env, LATCHGATE_SECRET_GITHUB_TOKEN: GITHUB_TOKEN });
    };
    s.fake.script([toolStep(agent, 'github_create_issue', input), { ...toolStep(agent, 'github_create_issue', input), after: approveOnHost }, { text: 'filed' }]);
    const r = await runAgent(mode, agent, s, ws, 'file the issue');
    const results = toolResults(agent, s.fake.requests, { from });
    const diag = `exit ${r.code}\nstdout: ${r.stdout.slice(0, 3000)}\nstderr: ${r.stderr.slice(-3000)}\napprove: ${approved?.status} ${approved?.stdout} ${approved?.stderr}\ntool results: ${JSON.stringify(results).slice(0, 3000)}`;
    assert.match(r.stdout, /^agent-exit=0$/m, diag);
    assert.equal(results.length, 2, diag);
    assert.match(results[0].text, /approval_required/, diag);
    assert.ok(approvalId, diag);
    assert.match(results[0].text, new RegExp(`latchgate approvals approve ${approvalId}`), diag);
    assert.equal(approved.status, 0, diag);
    // The issue was created once, by the run of the approved request, with the host's token.
    const posts = upstream.seen.slice(before).filter((q) => q.method === 'POST' && q.url === '/repos/o/r/issues');
    assert.equal(posts.length, 1, diag);
    assert.equal(posts[0].headers.authorization, `Bearer ${GITHUB_TOKEN}`);
    assert.equal(JSON.parse(posts[0].body).title, input.title);
    // The retry got that run: its output and receipt, naming the approval.
    assert.match(results[1].text, /"number":\s*42/, diag);
    assert.notEqual(results[1].isError, true, diag);
    assertReceipt(mode, s, results[1].text, 'github_create_issue', diag);
    assert.ok(!r.stdout.includes(GITHUB_TOKEN) && !r.stderr.includes(GITHUB_TOKEN), 'the token reached the box');
    assertKeyOutside(s, r, from, diag);
  });
}
