// The real agents (Claude Code, Codex, opencode) calling latchgate's MCP
// tools on the host, no box: each agent, run with a clean environment (only
// what is listed here) and a fresh HOME, starts `latchgate-mcp` (this
// checkout's dist) with the wiring of test/helpers/agent-scripts.mjs, which
// finds a real in-process gate through LATCHGATE_URL as a box would set it.
// The model is a scripted fake on 127.0.0.1 (plain HTTP) that calls
// t_http_honest (a write: not read-only, so Codex's approval applies), then
// t_fail (an error result), then answers. Asserts on what the fake received
// (the tool results the agent sent back: the action's output and receipt id,
// the error) and on the gate (the receipt exists, verifies, and its
// action_call event names the agent principal), never on the exit status
// alone: the agents exit 0 when a tool was refused. The agents come from
// test/helpers/agents.mjs installAgent, pinned there (AGENTS); a failed
// install fails the tests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LatchGateClient } from 'latchgate';
import { AGENT, BASE_URL, FIXTURE_MANIFESTS, grantAll, startGate } from '../helpers/gate.mjs';
import { MCP_BIN } from '../helpers/mcp.mjs';
import { AGENTS, SYS_PATH, installAgent } from '../helpers/agents.mjs';
import { mcpWiring, outputIn, receiptIdIn, scriptToolCall, toolResults, toolStep } from '../helpers/agent-scripts.mjs';
import { startFakeAnthropic } from '../fixtures/e2e-claude/fake-anthropic.mjs';
import { startFakeResponses } from '../fixtures/e2e-codex/fake-responses.mjs';

const MCP_MANIFESTS = fileURLToPath(new URL('../fixtures/mcp-manifests', import.meta.url));
const FINAL = 'done: the gate answered';

const dirs = [];
let g;
let claudeFake;
let responsesFake;

/** Each agent's .bin directory. */
const bins = {};

before(async () => {
  for (const name of Object.keys(AGENTS)) bins[name] = installAgent(name);
  g = await startGate({ config: { manifestDirs: [FIXTURE_MANIFESTS, MCP_MANIFESTS] } });
  grantAll(g);
  claudeFake = await startFakeAnthropic();
  responsesFake = await startFakeResponses();
});

after(async () => {
  await claudeFake?.close();
  await responsesFake?.close();
  await g?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const fresh = (prefix, base = os.tmpdir()) => {
  const d = mkdtempSync(path.join(base, prefix));
  dirs.push(d);
  return d;
};

/** What a box gives the agent for latchgate-mcp (docs/MCP.md): the gate's socket and public URL. */
const gateEnv = () => ({ LATCHGATE_URL: `unix://${g.agentSocket}`, LATCHGATE_PUBLIC_URL: BASE_URL });

/** Runs the agent with exactly `env` (as env -i would) in `cwd`; killed after timeoutMs. Never rejects. */
function runAgent(cmd, args, { env, cwd, timeoutMs = 120_000 }) {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', (e) => (stderr += `\nspawn: ${e.message}`));
    c.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * The two calls every agent makes, and what the tool results it sent back
 * must hold: t_http_honest's output and a receipt that verifies; t_fail's
 * error (isError where the API has the flag) with its failure receipt.
 */
const CALLS = (agent) => [
  { tool: 't_http_honest', input: { id: 'item-1', note: `from ${agent}` } },
  { tool: 't_fail', input: { n: 1 } },
];

async function checkResults(t, agent, results, diag) {
  assert.ok(results.length >= 2, `the agent sent back ${results.length} tool results, not 2\n${diag}`);
  const [ok, failed] = results;
  assert.notEqual(ok.isError, true, `the t_http_honest result is an error: ${ok.text}\n${diag}`);
  assert.deepEqual(outputIn(ok.text), { status_code: 200, body: '{"ok":true}' }, `the tool result carries the action's output\n${diag}`);
  const receiptId = receiptIdIn(ok.text);
  assert.ok(receiptId, `no receipt id in the tool result\n${diag}`);
  assert.match(ok.text, /verification verified/, diag);

  // The gate: the receipt is in the ledger, verifies, and its event is the agent principal's call.
  const c = new LatchGateClient({ socket: g.agentSocket, publicBaseUrl: BASE_URL });
  try {
    const receipt = await c.getReceipt(receiptId);
    assert.equal(receipt.receipt_id, receiptId);
    assert.deepEqual(await c.verifyReceipt(receipt), { ok: true, kid: receipt.signing_key_id });
  } finally {
    c.close();
  }
  const event = g.ctx.ledger.query({ event_type: 'action_call', limit: 1000 }).find((e) => e.execution?.receipt_id === receiptId);
  assert.ok(event, `no action_call event names receipt ${receiptId}`);
  assert.equal(event.action.action_id, 't_http_honest');
  assert.equal(event.subject.principal, AGENT);
  assert.equal(event.decision, 'allow');
  assert.equal(event.execution.verification_outcome, 'verified');

  // The error result: the gate's code and message, with the failed run's receipt.
  if (agent === 'claude-code') assert.equal(failed.isError, true, `the t_fail result is not is_error\n${diag}`);
  assert.match(failed.text, /action_execution_failed: upstream refused/, diag);
  const failedId = receiptIdIn(failed.text);
  assert.ok(failedId && g.ctx.ledger.getReceipt(failedId)?.failure_class, `the failed run's receipt is in the ledger\n${diag}`);
  t.diagnostic(`${agent}: receipt ${receiptId} (verified), failure receipt ${failedId}`);
}

/** POST body as JSON to the fake over plain HTTP; resolves the response text. */
async function post(fake, urlPath, body) {
  const r = await fetch(`${fake.url}${urlPath}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return r.text();
}
/** The data of each SSE event. */
const events = (text) => text.split('\n\n').filter(Boolean).map((e) => JSON.parse(e.split('\n').find((l) => l.startsWith('data: ')).slice(6)));

test('the fakes play a script: a tool call, then a text, to requests that offer tools; the fixed reply otherwise and after it', async () => {
  const a = await startFakeAnthropic({ script: [{ tool: 'mcp__latchgate__t_ok', input: { n: 7 } }, { text: 'after the call' }] });
  const r = await startFakeResponses({ script: [{ tool: 't_ok', namespace: 'mcp__latchgate', input: { n: 7 } }, { text: 'after the call' }] });
  try {
    // Messages API: no tools, the fixed text; then the tool_use streamed; then the text, unstreamed; then the fixed text.
    const plain = events(await post(a, '/v1/messages', { stream: true, messages: [] }));
    assert.equal(plain.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join(''), 'hi from the fake API');
    assert.equal(a.pending(), 2, 'a request without tools takes no step');
    const ev = events(await post(a, '/v1/messages', { stream: true, tools: [{ name: 'x' }], messages: [] }));
    const block = ev.find((e) => e.type === 'content_block_start').content_block;
    assert.match(block.id, /^toolu_/);
    assert.deepEqual({ ...block, id: undefined }, { type: 'tool_use', id: undefined, name: 'mcp__latchgate__t_ok', input: {} });
    assert.deepEqual(JSON.parse(ev.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.partial_json).join('')), { n: 7 });
    assert.equal(ev.find((e) => e.type === 'message_delta').delta.stop_reason, 'tool_use');
    const text = JSON.parse(await post(a, '/v1/messages', { tools: [{ name: 'x' }], messages: [] }));
    assert.deepEqual([text.content, text.stop_reason], [[{ type: 'text', text: 'after the call' }], 'end_turn']);
    assert.equal(JSON.parse(await post(a, '/v1/messages', { tools: [{ name: 'x' }], messages: [] })).content[0].text, 'hi from the fake API');
    // Responses API: the function_call with its namespace, arguments in pieces; the text; then the fixed reply.
    const call = events(await post(r, '/v1/responses', { tools: [{ type: 'function', name: 'x' }], input: [] }));
    const item = call.find((e) => e.type === 'response.output_item.done').item;
    assert.deepEqual({ ...item, call_id: undefined, id: undefined }, { type: 'function_call', status: 'completed', namespace: 'mcp__latchgate', name: 't_ok', arguments: '{"n":7}', call_id: undefined, id: undefined });
    assert.equal(call.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta).join(''), '{"n":7}');
    assert.deepEqual(call.at(-1).response.output, [item]);
    // The "responses-lite" shape: tools in an additional_tools input item.
    const said = events(await post(r, '/v1/responses', { input: [{ type: 'additional_tools', tools: [] }] }));
    assert.equal(said.find((e) => e.type === 'response.output_text.done').text, 'after the call');
    assert.equal(events(await post(r, '/v1/responses', { tools: [{ type: 'function', name: 'x' }], input: [] })).find((e) => e.type === 'response.output_text.done').text, 'hi from the fake API');
    assert.equal(r.pending(), 0);
  } finally {
    await a.close();
    await r.close();
  }
});

test('toolResults: each result once, in order, from either API; receiptIdIn and outputIn read latchgate-mcp\'s text', () => {
  const id = '0b5e2f3c-1d2e-4f5a-8b9c-0d1e2f3a4b5c';
  const okText = `{\n  "done": true\n}`;
  const claude = [
    { method: 'HEAD', url: '/', body: undefined },
    { method: 'POST', url: '/v1/messages', body: { messages: [{ role: 'user', content: 'hi' }] } },
    { method: 'POST', url: '/v1/messages', body: { messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'a', content: [{ type: 'text', text: okText }, { type: 'text', text: `receipt ${id}; verification verified; trace x` }] }] }] } },
    { method: 'POST', url: '/v1/messages', body: { messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'a', content: [] }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'b', is_error: true, content: 'schema_violation: /n: must be >= 0' }] }] } },
  ];
  const c = toolResults('claude-code', claude);
  assert.deepEqual(c.map((x) => [x.id, x.isError]), [['a', false], ['b', true]]);
  assert.equal(receiptIdIn(c[0].text), id);
  assert.deepEqual(outputIn(c[0].text), { done: true });
  assert.equal(c[1].text, 'schema_violation: /n: must be >= 0');
  const codex = [{ method: 'POST', url: '/v1/responses', body: JSON.stringify({ input: [{ type: 'function_call_output', call_id: 'c', output: [{ type: 'input_text', text: 'Wall time: 0.1 seconds\nOutput:' }, { type: 'input_text', text: okText }, { type: 'input_text', text: `receipt ${id}; verification verified` }] }] }) }];
  const x = toolResults('codex', codex);
  assert.deepEqual([x.length, x[0].isError, receiptIdIn(x[0].text), outputIn(x[0].text)], [1, undefined, id, { done: true }]);
  const oc = toolResults('opencode', [{ method: 'POST', url: '/v1/responses', body: JSON.stringify({ input: [{ type: 'function_call_output', call_id: 'd', output: `${okText}\n\nreceipt ${id}; verification verified` }] }) }]);
  assert.deepEqual([oc.length, receiptIdIn(oc[0].text), outputIn(oc[0].text)], [1, id, { done: true }]);
  assert.equal(receiptIdIn('no receipt here'), undefined);
});

const diagOf = (r, requests, ms) => `exit ${r.code ?? r.signal} in ${ms} ms\nfake saw: ${requests.map((q) => `${q.method} ${q.url}`).join('; ') || 'nothing'}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-3000)}`;

test('Claude Code: --mcp-config (inline JSON), --strict-mcp-config and --allowedTools mcp__latchgate call latchgate\'s tools without a prompt; Bash stays refused', { timeout: 300_000 }, async (t) => {
  const binDir = bins['claude-code'];
  const home = fresh('latchgate-e2e-mcp-claude-home-');
  const ws = fresh('latchgate-e2e-mcp-claude-ws-');
  const fake = claudeFake;
  const from = fake.requests.length;
  // Not allowed by the wiring: a Bash command that writes (only latchgate's tools are allowed).
  const marker = path.join(ws, 'bash-was-allowed');
  fake.script([
    ...CALLS('claude-code').map((c) => toolStep('claude-code', c.tool, c.input)),
    { tool: 'Bash', input: { command: `touch ${marker}` } },
    { text: FINAL },
  ]);
  // No "env" in the server's entry: the server inherits LATCHGATE_URL from Claude Code.
  const w = mcpWiring('claude-code', { command: process.execPath, args: [MCP_BIN] });
  const env = {
    PATH: `${binDir}:${SYS_PATH}`, HOME: home,
    ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: 'sk-ant-test-key',
    // No traffic but the model API, and a failed request fails at once instead of retrying for minutes.
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', CLAUDE_CODE_MAX_RETRIES: '0',
    ...w.env,
    ...gateEnv(),
  };
  const t0 = Date.now();
  // The prompt comes before the wiring: --mcp-config and --allowedTools take several values.
  const r = await runAgent(path.join(binDir, 'claude'), ['-p', 'call the latchgate tools', ...w.args], { env, cwd: ws });
  const got = fake.requests.slice(from);
  const diag = diagOf(r, got, Date.now() - t0);
  const turns = got.filter((q) => q.method === 'POST' && q.url.startsWith('/v1/messages'));
  assert.ok(turns.some((q) => (q.body?.tools ?? []).some((x) => x.name === 'mcp__latchgate__t_http_honest')), `latchgate's tools were not offered to the model\n${diag}`);
  const results = toolResults('claude-code', got);
  await checkResults(t, 'claude-code', results, diag);
  const bash = results[2];
  assert.ok(bash?.isError, `the Bash call was not refused\n${diag}`);
  assert.ok(!existsSync(marker), 'Bash ran: the wiring allowed more than latchgate\'s tools');
  assert.equal(fake.pending(), 0, `the script was not played to its end\n${diag}`);
  assert.match(r.stdout, new RegExp(`^${FINAL}$`, 'm'), diag);
  assert.equal(r.code, 0, diag);
});

for (const model of ['fake-model', undefined]) {
  const which = model ? `model "${model}": MCP tools in a namespace in tools` : 'its default model: tools as additional_tools, MCP as a deferred namespace';
  test(`Codex (${which}): -c mcp_servers.latchgate.{command,args,env_vars,default_tools_approval_mode,required} call latchgate's tools under the read-only sandbox`, { timeout: 300_000 }, async (t) => {
    const binDir = bins.codex;
    const home = fresh('latchgate-e2e-mcp-codex-home-');
    const ws = fresh('latchgate-e2e-mcp-codex-ws-');
    // Codex refuses to put its sandbox helper under the temp dir: CODEX_HOME lives outside it.
    mkdirSync(path.join(os.homedir(), '.cache'), { recursive: true });
    const codexHome = fresh('latchgate-e2e-codex-home-', path.join(os.homedir(), '.cache'));
    const fake = responsesFake;
    const from = fake.requests.length;
    scriptToolCall(fake, { agent: 'codex', calls: CALLS('codex'), thenText: FINAL });
    const q = JSON.stringify;
    // The model API: a custom provider (0.169 ignores OPENAI_BASE_URL), no retries, no plugins,
    // analytics or update check (nothing else contacted).
    const provider = [
      ...(model ? ['-c', `model=${q(model)}`] : []),
      '-c', 'model_provider="fake"', '-c', 'model_providers.fake.name="fake"',
      '-c', `model_providers.fake.base_url=${q(`${fake.url}/v1`)}`, '-c', 'model_providers.fake.env_key="OPENAI_API_KEY"',
      '-c', 'model_providers.fake.wire_api="responses"', '-c', 'model_providers.fake.request_max_retries=0', '-c', 'model_providers.fake.stream_max_retries=0',
      '-c', 'check_for_update_on_startup=false', '-c', 'features.plugins=false', '-c', 'analytics.enabled=false',
    ];
    // LATCHGATE_URL reaches the server only because env_vars names it.
    const w = mcpWiring('codex', { command: process.execPath, args: [MCP_BIN] });
    const env = { PATH: `${binDir}:${SYS_PATH}`, HOME: home, CODEX_HOME: codexHome, OPENAI_API_KEY: 'sk-test-key', ...gateEnv() };
    const t0 = Date.now();
    // exec's default sandbox (read-only): t_http_honest needs the approval mode.
    const r = await runAgent(path.join(binDir, 'codex'), [...provider, ...w.args, 'exec', '--skip-git-repo-check', '--ephemeral', 'call the latchgate tools'], { env, cwd: ws });
    const got = fake.requests.slice(from);
    const diag = diagOf(r, got, Date.now() - t0);
    const first = got.find((x) => x.method === 'POST' && /\/responses$/.test(x.url.split('?')[0]));
    assert.ok(first, `the fake got no POST /v1/responses\n${diag}`);
    assert.ok(first.body.includes('mcp__latchgate'), `latchgate's tools were not offered to the model\n${diag}`);
    await checkResults(t, 'codex', toolResults('codex', got), diag);
    assert.equal(fake.pending(), 0, `the script was not played to its end\n${diag}`);
    assert.match(r.stdout, new RegExp(`^${FINAL}$`, 'm'), diag);
    assert.equal(r.code, 0, diag);
  });
}

test('opencode: OPENCODE_CONFIG_CONTENT with mcp.latchgate and "latchgate_*": "allow" calls latchgate\'s tools in run mode, even where the user\'s config asks for everything', { timeout: 300_000 }, async (t) => {
  const binDir = bins.opencode;
  const home = fresh('latchgate-e2e-mcp-opencode-home-');
  const ws = fresh('latchgate-e2e-mcp-opencode-ws-');
  const fake = responsesFake;
  const from = fake.requests.length;
  scriptToolCall(fake, { agent: 'opencode', calls: CALLS('opencode'), thenText: FINAL });
  // The user's config: the openai provider at the fake, and every tool asks
  // (run mode rejects what asks): the wiring must allow latchgate's tools itself.
  const userCfg = path.join(home, 'user-opencode.json');
  writeFileSync(userCfg, JSON.stringify({
    $schema: 'https://opencode.ai/config.json', autoupdate: false, share: 'disabled', snapshot: false,
    provider: { openai: { options: { baseURL: `${fake.url}/v1` } } },
    permission: { '*': 'ask' },
  }));
  // No "environment": the server inherits LATCHGATE_URL from opencode.
  const w = mcpWiring('opencode', { command: process.execPath, args: [MCP_BIN] });
  const env = {
    PATH: `${binDir}:${SYS_PATH}`, HOME: home, OPENCODE_CONFIG: userCfg, OPENAI_API_KEY: 'sk-test-key',
    // No fetch of the models list from models.opencode.ai, no self-update.
    OPENCODE_DISABLE_MODELS_FETCH: '1', OPENCODE_DISABLE_AUTOUPDATE: '1',
    ...w.env, ...gateEnv(),
  };
  const t0 = Date.now();
  const r = await runAgent(path.join(binDir, 'opencode'), ['run', '-m', 'openai/gpt-4o-mini', 'call the latchgate tools'], { env, cwd: ws, timeoutMs: 180_000 });
  const got = fake.requests.slice(from);
  const diag = diagOf(r, got, Date.now() - t0);
  const offered = got.filter((x) => x.method === 'POST').some((x) => (JSON.parse(x.body).tools ?? []).some((tool) => tool.name === 'latchgate_t_http_honest'));
  assert.ok(offered, `latchgate's tools were not offered to the model\n${diag}`);
  assert.doesNotMatch(r.stderr, /auto-rejecting/, diag);
  await checkResults(t, 'opencode', toolResults('opencode', got), diag);
  assert.equal(fake.pending(), 0, `the script was not played to its end\n${diag}`);
  assert.match(r.stdout, new RegExp(`^${FINAL}$`, 'm'), diag);
  assert.equal(r.code, 0, diag);
});
