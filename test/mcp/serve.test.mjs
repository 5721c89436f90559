// `latchgate mcp serve` against a real in-process gate, through a real MCP
// client (the SDK's Client over stdio, spawning the built CLI): the handshake;
// tools/list offering what the agent principal may call, with the manifests'
// schemas and annotations; calls that succeed (receipt that verifies), break
// the schema, are denied by policy, or need an approval (answered at once, or
// waited for with progress and completed when the operator approves, or
// cancelled, or timed out); a policy change announced with list_changed;
// protocol misuse as JSON-RPC errors; and a gate that went away.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CallToolResultSchema, ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import { LatchGateClient } from 'latchgate';
import { AGENT, BASE_URL, FIXTURE_MANIFESTS, grantAll, operatorCaller, startGate } from '../helpers/gate.mjs';
import { admin, waitFor } from '../helpers/gate-faults.mjs';
import { CLI, mcpClient, MCP_BIN, textOf } from '../helpers/mcp.mjs';

const MCP_MANIFESTS = fileURLToPath(new URL('../fixtures/mcp-manifests', import.meta.url));

/** Every test: a notification that never comes fails it instead of hanging the suite. */
const T = { timeout: 60_000 };

let g;
before(async () => {
  g = await startGate({ config: { manifestDirs: [FIXTURE_MANIFESTS, MCP_MANIFESTS] } });
  grantAll(g);
});
after(async () => g?.close());

const manifest = (id) => g.ctx.registry.get(id).manifest;
const sdk = () => new LatchGateClient({ socket: g.agentSocket, publicBaseUrl: BASE_URL });
const revoke = (actions) => g.gate.admin.policyRevoke(operatorCaller(), { principal: AGENT, actions });
const grant = (actions) => g.gate.admin.policyGrant(operatorCaller(), { principal: AGENT, actions, sinks: ['http_read'] });
/** The id a pending-approval result names, checked against the command it tells the operator to run. */
function approvalOf(r) {
  const a = r._meta['latchgate/approval'];
  assert.equal(a.status, 'pending');
  assert.match(textOf(r), new RegExp(`latchgate approvals approve ${a.approval_id}`));
  assert.equal(a.command, `latchgate approvals approve ${a.approval_id}`);
  return a.approval_id;
}

test('initialize: the server names itself and offers tools with list_changed; the bin serves the same; LATCHGATE_URL as a box sets it', T, async (t) => {
  for (const o of [{}, { command: [MCP_BIN] }, { command: [MCP_BIN, 'serve'] }, { viaEnv: true }]) {
    const { client } = await mcpClient(t, g.agentSocket, [], o);
    assert.equal(client.getServerVersion().name, 'latchgate');
    assert.deepEqual(client.getServerCapabilities().tools, { listChanged: true });
    assert.ok((await client.listTools()).tools.some((x) => x.name === 't_ok'));
  }
});

test('tools/list: one tool per callable action, the request schema as inputSchema, annotations from risk and side effects', T, async (t) => {
  const { client } = await mcpClient(t, g.agentSocket);
  const { tools } = await client.listTools();
  const by = new Map(tools.map((x) => [x.name, x]));
  const listed = (await sdk().listActions()).filter((a) => a.callable).map((a) => a.action_id).sort();
  assert.deepEqual([...by.keys()].sort(), listed);
  for (const id of ['t_ok', 't_high', 't_fail', 't_hang', 't_typed']) assert.deepEqual(by.get(id).inputSchema, manifest(id).io.request_schema, id);
  // t_hang's schema has no additionalProperties etc.: passed on as the manifest has it.
  assert.equal(by.get('t_ok').outputSchema, undefined, 'no response schema, no outputSchema');
  assert.deepEqual(by.get('t_typed').outputSchema, manifest('t_typed').io.response_schema);
  assert.match(by.get('t_high').description, /Risk: high/);
  assert.match(by.get('t_high').description, /Side effects: http_read/);
  assert.deepEqual(by.get('t_ok').annotations, { title: 'T ok', readOnlyHint: true, destructiveHint: false, openWorldHint: true });
  assert.equal(by.get('t_high').annotations.destructiveHint, true, 'high risk');
  // The built-in manifests: a write that overwrites, a delete, a local read, an HTTP write.
  assert.deepEqual(by.get('fs_write').annotations, { title: 'Fs write', readOnlyHint: false, destructiveHint: true, openWorldHint: false });
  assert.deepEqual(by.get('fs_delete').annotations, { title: 'Fs delete', readOnlyHint: false, destructiveHint: true, openWorldHint: false });
  assert.deepEqual(by.get('fs_read').annotations, { title: 'Fs read', readOnlyHint: true, destructiveHint: false, openWorldHint: false });
  assert.equal(by.get('http_post').annotations.readOnlyHint, false);
  assert.equal(by.get('http_post').annotations.openWorldHint, true);
});

test('tools/call: the output, structuredContent where an outputSchema is declared, and a receipt the SDK verifies', T, async (t) => {
  const { client } = await mcpClient(t, g.agentSocket);
  await client.listTools(); // the client validates structuredContent against the listed outputSchema
  const r = await client.callTool({ name: 't_typed', arguments: { n: 3 } });
  assert.equal(r.isError, undefined);
  assert.deepEqual(r.structuredContent, { done: true, echo: { n: 3 } });
  assert.deepEqual(JSON.parse(r.content[0].text), { done: true, echo: { n: 3 } });
  const meta = r._meta['latchgate/receipt'];
  assert.match(meta.receipt_id, /^[0-9a-f-]{36}$/);
  assert.ok(meta.trace_id);
  assert.equal(meta.verification, 'unverifiable_declared');
  assert.match(textOf(r), new RegExp(`receipt ${meta.receipt_id}`));
  const c = sdk();
  const receipt = await c.getReceipt(meta.receipt_id);
  assert.deepEqual(await c.verifyReceipt(receipt), { ok: true, kid: receipt.signing_key_id });
  c.close();
  const plain = await client.callTool({ name: 't_ok', arguments: { n: 1 } });
  assert.equal(plain.structuredContent, undefined, 'no outputSchema, no structuredContent');
  assert.deepEqual(JSON.parse(plain.content[0].text), { done: true, echo: { n: 1 } });
});

test('tools/call: a schema violation and a failed run are tool errors with the gate\'s code; misuse is a JSON-RPC error', T, async (t) => {
  const { client } = await mcpClient(t, g.agentSocket);
  const bad = await client.callTool({ name: 't_ok', arguments: { n: -1 } });
  assert.equal(bad.isError, true);
  assert.match(textOf(bad), /^schema_violation: /);
  assert.equal(bad._meta['latchgate/error'].code, 'schema_violation');
  const failed = await client.callTool({ name: 't_fail', arguments: { n: 1 } });
  assert.equal(failed.isError, true);
  assert.equal(failed._meta['latchgate/error'].code, 'action_execution_failed');
  assert.match(failed._meta['latchgate/error'].receipt_id, /^[0-9a-f-]{36}$/);
  await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }), (e) => e.code === ErrorCode.InvalidParams && /unknown tool "no_such_tool"/.test(e.message));
  await assert.rejects(client.request({ method: 'tools/call', params: { name: 't_ok', arguments: [1, 2] } }, CallToolResultSchema), (e) => e.code === ErrorCode.InvalidParams);
  await assert.rejects(client.request({ method: 'tools/call', params: { name: 't_ok', arguments: 'n=1' } }, CallToolResultSchema), (e) => e.code === ErrorCode.InvalidParams);
  // Still serving after the misuse.
  assert.equal((await client.callTool({ name: 't_ok', arguments: { n: 2 } })).isError, undefined);
});

test('policy: a revoked action is denied (policy_denied), then announced with list_changed and gone from tools/list', T, async (t) => {
  const { client, listChanged } = await mcpClient(t, g.agentSocket, ['--refresh', '3600']);
  t.after(() => grant(['t_fail']));
  assert.ok((await client.listTools()).tools.some((x) => x.name === 't_fail'));
  revoke(['t_fail']);
  const seen = listChanged.count;
  const r = await client.callTool({ name: 't_fail', arguments: { n: 1 } });
  assert.equal(r.isError, true);
  assert.equal(r._meta['latchgate/error'].code, 'policy_denied');
  assert.match(textOf(r), /^policy_denied: /);
  await listChanged.after(seen); // the denial made the server list again
  assert.ok(!(await client.listTools()).tools.some((x) => x.name === 't_fail'));
  // No longer a tool: calling it is a protocol error, and nothing reaches the gate's executor.
  await assert.rejects(client.callTool({ name: 't_fail', arguments: { n: 1 } }), (e) => e.code === ErrorCode.InvalidParams);
});

test('policy: a grant shows up by itself (the server re-lists while connected) with list_changed', T, async (t) => {
  revoke(['t_fail']);
  t.after(() => grant(['t_fail']));
  const { client, listChanged } = await mcpClient(t, g.agentSocket, ['--refresh', '0.2']);
  assert.ok(!(await client.listTools()).tools.some((x) => x.name === 't_fail'));
  const seen = listChanged.count;
  grant(['t_fail']);
  await listChanged.after(seen);
  assert.ok((await client.listTools()).tools.some((x) => x.name === 't_fail'));
  // Unchanged sets are not announced again: two more refresh periods, no new notification.
  const now = listChanged.count;
  await client.listTools();
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(listChanged.count, now);
  // Revoked (announced), granted again before the client re-listed (it holds that set: nothing to
  // announce), revoked again: a change from what the client holds, announced again.
  revoke(['t_fail']);
  await listChanged.after(now);
  grant(['t_fail']);
  await new Promise((r) => setTimeout(r, 2000)); // ten listing periods: the server has seen the grant
  const again = listChanged.count;
  revoke(['t_fail']);
  await listChanged.after(again);
  assert.ok(!(await client.listTools()).tools.some((x) => x.name === 't_fail'));
});

test('callable is per principal: a principal with no grant is offered no tools; another principal\'s grant changes nothing; its own grant adds the tool', T, async (t) => {
  const g2 = await startGate();
  t.after(() => g2.close());
  const { client, listChanged } = await mcpClient(t, g2.agentSocket, ['--refresh', '0.2']);
  assert.deepEqual((await client.listTools()).tools, []);
  g2.gate.admin.policyGrant(operatorCaller(), { principal: 'tester', actions: ['t_ok'], sinks: ['http_read'] });
  const seen = listChanged.count;
  // The agent's own grant: its listing changes (and only then is list_changed sent).
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(listChanged.count, seen, 'another principal\'s grant is not this principal\'s change');
  assert.deepEqual((await client.listTools()).tools, []);
  // GET /v1/actions says it per caller: the tester's socket sees its grant, the agent's does not.
  const callable = async (socket) => (await new LatchGateClient({ socket, publicBaseUrl: BASE_URL }).listActions()).filter((a) => a.callable).map((a) => a.action_id);
  assert.deepEqual(await callable(g2.socket), ['t_ok']);
  assert.deepEqual(await callable(g2.agentSocket), []);
  // An executing call is still the gate's decision: the tool is not offered, and nothing runs.
  await assert.rejects(client.callTool({ name: 't_ok', arguments: { n: 1 } }), (e) => e.code === ErrorCode.InvalidParams);
  g2.gate.admin.policyGrant(operatorCaller(), { principal: AGENT, actions: ['t_ok'], sinks: ['http_read'] });
  await listChanged.after(seen);
  assert.deepEqual((await client.listTools()).tools.map((x) => x.name), ['t_ok']);
  // A sink the principal lacks: the action is not offered (the gate would deny it).
  g2.gate.admin.policyGrant(operatorCaller(), { principal: AGENT, actions: ['http_post'], sinks: [] });
  await new Promise((r) => setTimeout(r, 600));
  assert.deepEqual((await client.listTools()).tools.map((x) => x.name), ['t_ok']);
});

test('approval, --wait-approval 0: answered at once, naming the approval id and the operator\'s command; the operator\'s approval runs it', T, async (t) => {
  const { client } = await mcpClient(t, g.agentSocket);
  const r = await client.callTool({ name: 't_high', arguments: { n: 5 } });
  assert.equal(r.isError, undefined, 'a pending approval is not an error of the tool');
  const id = approvalOf(r);
  const pending = await admin(g, 'GET', `/v1/approvals/${id}`);
  assert.equal(pending.body.status, 'pending');
  const approved = await admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
  assert.equal(approved.status, 200, approved.text);
});

test('approval, a retry of the held call: the same approval while pending, the gate\'s run once approved, the denial once denied; then a new approval', T, async (t) => {
  const { client } = await mcpClient(t, g.agentSocket);
  const call = (n) => client.callTool({ name: 't_high', arguments: { n } });
  const id = approvalOf(await call(11));
  assert.equal(approvalOf(await call(11)), id, 'still pending: the same approval, no second one');
  assert.notEqual(approvalOf(await call(12)), id, 'other arguments are another request');
  assert.equal((await admin(g, 'POST', `/v1/approvals/${id}/approve`, {})).status, 200);
  const done = await call(11);
  assert.equal(done.isError, undefined);
  assert.deepEqual(JSON.parse(done.content[0].text), { done: true, echo: { n: 11 } });
  assert.equal(done._meta['latchgate/receipt'].approval_id, id);
  const c = sdk();
  assert.equal((await c.verifyReceipt(await c.getReceipt(done._meta['latchgate/receipt'].receipt_id))).ok, true);
  c.close();
  // The run was answered once: the same call now is a new request, held anew.
  const again = approvalOf(await call(11));
  assert.notEqual(again, id);
  assert.equal((await admin(g, 'POST', `/v1/approvals/${again}/deny`, {})).status, 200);
  const denied = await call(11);
  assert.equal(denied.isError, true);
  assert.match(textOf(denied), /approval_denied/);
  assert.notEqual(approvalOf(await call(11)), again, 'after a denial the next call asks anew');
});

test('approval, --wait-approval: progress while waiting, the operator approves, the call completes with the gate\'s run', T, async (t) => {
  const { client } = await mcpClient(t, g.agentSocket, ['--wait-approval', '60']);
  const progress = [];
  let approving;
  const call = client.callTool({ name: 't_high', arguments: { n: 7 } }, undefined, {
    onprogress: (p) => {
      progress.push(p);
      const id = /approve (\S+)/.exec(p.message ?? '')?.[1];
      if (id && !approving) approving = admin(g, 'POST', `/v1/approvals/${id}/approve`, {});
    },
  });
  const r = await call;
  assert.equal((await approving).status, 200);
  assert.ok(progress.length >= 1, 'at least one progress notification');
  assert.ok(progress.every((p, i) => i === 0 || p.progress > progress[i - 1].progress), 'progress increases');
  assert.equal(r.isError, undefined);
  assert.deepEqual(JSON.parse(r.content[0].text), { done: true, echo: { n: 7 } });
  assert.equal(r._meta['latchgate/receipt'].approval_id, /approve (\S+)/.exec(progress[0].message)[1]);
  const c = sdk();
  assert.equal((await c.verifyReceipt(await c.getReceipt(r._meta['latchgate/receipt'].receipt_id))).ok, true);
  c.close();
});

test('approval, --wait-approval: the client cancels the waiting call; the server stops waiting and keeps serving', T, async (t) => {
  const m = await mcpClient(t, g.agentSocket, ['--wait-approval', '600']);
  const ac = new AbortController();
  let id;
  const call = m.client.callTool({ name: 't_high', arguments: { n: 8 } }, undefined, {
    signal: ac.signal,
    onprogress: (p) => {
      id ??= /approve (\S+)/.exec(p.message ?? '')?.[1];
      ac.abort('the user gave up');
    },
  });
  await assert.rejects(call);
  assert.ok(id);
  await waitFor(() => m.stderr().includes(`stopped waiting for approval ${id}: the client cancelled the call`), { timeoutMs: 20_000, what: 'the server to log the cancellation' });
  // The approval stands (a cancelled wait is no denial), and the server answers the next call.
  assert.equal((await admin(g, 'GET', `/v1/approvals/${id}`)).body.status, 'pending');
  assert.equal((await m.client.callTool({ name: 't_ok', arguments: { n: 1 } })).isError, undefined);
  await admin(g, 'POST', `/v1/approvals/${id}/deny`, {});
});

test('approval, --wait-approval N: nobody decides within N seconds, the approval-pending result', T, async (t) => {
  const { client } = await mcpClient(t, g.agentSocket, ['--wait-approval', '1']);
  const r = await client.callTool({ name: 't_high', arguments: { n: 9 } });
  assert.equal(r.isError, undefined);
  const id = approvalOf(r);
  assert.match(textOf(r), /Waited 1 s; it is still pending/);
  await admin(g, 'POST', `/v1/approvals/${id}/deny`, {});
});

test('approval, --wait-approval: a denial ends the wait with a tool error approval_denied', T, async (t) => {
  const { client } = await mcpClient(t, g.agentSocket, ['--wait-approval', '60']);
  let denying;
  const r = await client.callTool({ name: 't_high', arguments: { n: 10 } }, undefined, {
    onprogress: (p) => {
      const id = /approve (\S+)/.exec(p.message ?? '')?.[1];
      if (id && !denying) denying = admin(g, 'POST', `/v1/approvals/${id}/deny`, { reason: 'not today' });
    },
  });
  assert.equal((await denying).status, 200);
  assert.equal(r.isError, true);
  assert.equal(r._meta['latchgate/error'].code, 'approval_denied');
});

test('gate down: a call is a tool error gate_unreachable with the fix, tools/list a JSON-RPC error; neither hangs', { timeout: 60_000 }, async (t) => {
  const g2 = await startGate();
  grantAll(g2);
  let closed = false;
  t.after(() => (closed ? undefined : g2.close()));
  const { client } = await mcpClient(t, g2.agentSocket);
  assert.ok((await client.listTools()).tools.length > 0);
  await g2.close();
  closed = true;
  const r = await client.callTool({ name: 't_ok', arguments: { n: 1 } });
  assert.equal(r.isError, true);
  assert.equal(r._meta['latchgate/error'].code, 'gate_unreachable');
  assert.match(textOf(r), /latchgate up/);
  await assert.rejects(client.listTools(), (e) => e.code === ErrorCode.InternalError && /gate_unreachable/.test(e.message) && /latchgate up/.test(e.message));
});

test('nothing but JSON-RPC on stdout: every line the server writes is a JSON-RPC message; diagnostics go to stderr', T, async (t) => {
  const child = spawn(process.execPath, [CLI, 'mcp', 'serve', '--socket', g.agentSocket, '--public-url', BASE_URL], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill());
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const send = (m) => child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...m })}\n`);
  send({ id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
  send({ method: 'notifications/initialized' });
  send({ id: 2, method: 'tools/list' });
  send({ id: 3, method: 'tools/call', params: { name: 't_ok', arguments: { n: 1 } } });
  await waitFor(() => out.split('\n').filter(Boolean).length >= 3, { timeoutMs: 30_000, what: 'three answers' });
  child.stdin.end(); // the client closes: the server exits
  const code = await new Promise((r) => child.once('exit', r));
  assert.equal(code, 0);
  const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.ok(lines.every((m) => m.jsonrpc === '2.0'));
  assert.deepEqual(lines.map((m) => m.id), [1, 2, 3]);
  assert.match(err, /latchgate mcp: serving the gate at unix:\/\//);
});

test('the client goes away while a call waits for its approval: the server exits at once, not after --wait-approval', { timeout: 60_000 }, async (t) => {
  const child = spawn(process.execPath, [CLI, 'mcp', 'serve', '--socket', g.agentSocket, '--public-url', BASE_URL, '--wait-approval', '600'], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill());
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const send = (m) => child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...m })}\n`);
  send({ id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
  send({ method: 'notifications/initialized' });
  send({ id: 2, method: 'tools/call', params: { name: 't_high', arguments: { n: 11 }, _meta: { progressToken: 'p1' } } });
  const progress = await waitFor(() => out.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((m) => m.method === 'notifications/progress'), { timeoutMs: 30_000, what: 'a progress notification' });
  assert.equal(progress.params.progressToken, 'p1');
  const exited = new Promise((r) => child.once('exit', r));
  child.stdin.end();
  assert.equal(await exited, 0);
  const id = /approve (\S+)/.exec(progress.params.message)[1];
  await admin(g, 'POST', `/v1/approvals/${id}/deny`, {});
});
