// `latchgate-mcp` driven by the MCP Inspector's CLI mode
// (@modelcontextprotocol/inspector, a pinned version installed from npm at
// test time into a cache outside the repo, reused when present; the tests
// skip, naming npm's error, when it cannot be installed), against a real
// in-process gate: tools/list prints the tools the agent principal may call,
// a tools/call prints the structured output and a receipt the gate signed,
// and a call the gate's policy denies (the day's call budget spent,
// policies/latchgate.cedar rule 4) prints the gate's error code as a tool
// error, which the Inspector turns into a failing exit. (The package declares
// node >= 22.19; npm installs it on older Node with a warning, and its CLI
// mode runs there.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LatchGateClient } from 'latchgate';
import { parseConfig } from '../../dist/config/latchgate-toml.js';
import { installAgent } from '../helpers/agents.mjs';
import { BASE_URL, FIXTURE_MANIFESTS, grantAll, startGate } from '../helpers/gate.mjs';
import { MCP_BIN } from '../helpers/mcp.mjs';

const VERSION = '2.12.0';
const MCP_MANIFESTS = fileURLToPath(new URL('../fixtures/mcp-manifests', import.meta.url));
const T = { timeout: 300_000 };

let binDir;
let skip;
let g;
let home;
before(async () => {
  try {
    binDir = installAgent({ name: 'mcp-inspector', pkg: '@modelcontextprotocol/inspector', version: VERSION, bin: 'mcp-inspector' });
  } catch (e) {
    skip = `the MCP Inspector ${VERSION} could not be installed from npm: ${e.message}`;
    return;
  }
  // The agent principal may call t_ok once a day: the second call is denied by policy while t_ok is still listed.
  const { budgets } = parseConfig('inspector-test.toml', '[budgets.agent.actions.t_ok]\ncalls_per_day = 1\n').gate;
  g = await startGate({ config: { manifestDirs: [FIXTURE_MANIFESTS, MCP_MANIFESTS], budgets } });
  grantAll(g);
  home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-inspector-home-'));
});
after(async () => {
  await g?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

/**
 * `mcp-inspector --cli <latchgate-mcp --socket ...> ...args`, spawned
 * asynchronously (the gate runs in this process). Resolves { code, stdout,
 * stderr, json } (json: stdout parsed, when it is JSON).
 */
function inspector(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(path.join(binDir, 'mcp-inspector'), ['--cli', process.execPath, MCP_BIN, '--socket', g.agentSocket, '--public-url', BASE_URL, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      let json;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code, signal, stdout, stderr, json });
    });
  });
}

const sdk = () => new LatchGateClient({ socket: g.agentSocket, publicBaseUrl: BASE_URL });
const manifest = (id) => g.ctx.registry.get(id).manifest;

test('inspector --method tools/list: the actions the agent may call, with the manifests\' schemas', T, async (t) => {
  if (skip) return t.skip(skip);
  const r = await inspector(['--method', 'tools/list']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const by = new Map(r.json.tools.map((x) => [x.name, x]));
  const c = sdk();
  const callable = (await c.listActions()).filter((a) => a.callable).map((a) => a.action_id).sort();
  c.close();
  assert.deepEqual([...by.keys()].sort(), callable);
  for (const id of ['t_ok', 't_typed', 'http_fetch']) assert.ok(by.has(id), id);
  assert.deepEqual(by.get('t_typed').inputSchema, manifest('t_typed').io.request_schema);
  assert.deepEqual(by.get('t_typed').outputSchema, manifest('t_typed').io.response_schema);
  assert.equal(by.get('t_ok').annotations.readOnlyHint, true);
});

test('inspector --method tools/call: the structured output and a receipt the gate signed for this call', T, async (t) => {
  if (skip) return t.skip(skip);
  const r = await inspector(['--method', 'tools/call', '--tool-name', 't_typed', '--tool-arg', 'n=3']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.json.isError, undefined);
  assert.deepEqual(r.json.structuredContent, { done: true, echo: { n: 3 } });
  const meta = r.json._meta['latchgate/receipt'];
  assert.match(meta.receipt_id, /^[0-9a-f-]{36}$/);
  assert.equal(meta.decision, 'allow');
  assert.match(r.json.content.map((x) => x.text).join('\n'), new RegExp(`receipt ${meta.receipt_id}`));
  // The receipt is the gate's, for this request, and verifies against its keys.
  const c = sdk();
  const receipt = await c.getReceipt(meta.receipt_id);
  assert.equal(receipt.trace_id, meta.trace_id);
  assert.deepEqual(await c.verifyReceipt(receipt), { ok: true, kid: receipt.signing_key_id });
  c.close();
});

test('inspector --method tools/call: a call the policy denies (the day\'s budget spent) prints budget_exhausted and fails', T, async (t) => {
  if (skip) return t.skip(skip);
  // The legitimate call first: the one call of the day.
  const ok = await inspector(['--method', 'tools/call', '--tool-name', 't_ok', '--tool-arg', 'n=1']);
  assert.equal(ok.code, 0, `${ok.stdout}\n${ok.stderr}`);
  assert.deepEqual(JSON.parse(ok.json.content[0].text), { done: true, echo: { n: 1 } });
  assert.match(ok.json._meta['latchgate/receipt'].receipt_id, /^[0-9a-f-]{36}$/);
  // The next one: t_ok is still offered (budgets are decided per call), and the gate refuses it.
  const list = await inspector(['--method', 'tools/list']);
  assert.ok(list.json.tools.some((x) => x.name === 't_ok'));
  const denied = await inspector(['--method', 'tools/call', '--tool-name', 't_ok', '--tool-arg', 'n=2']);
  assert.notEqual(denied.code, 0, 'the Inspector exits non-zero on a tool error');
  assert.equal(denied.json.isError, true);
  const err = denied.json._meta['latchgate/error'];
  assert.equal(err.code, 'budget_exhausted');
  assert.equal(err.status, 403);
  assert.match(denied.json.content[0].text, /^budget_exhausted: deny-budget-calls-exhausted: /);
  assert.equal(denied.json._meta['latchgate/receipt'], undefined, 'nothing ran: no receipt');
  assert.match(denied.stderr, /tool_is_error/);
});
