// The gate's command line: `latchgate up` on first run with no
// prompt, and status, actions, audit, verify, revoke, approvals, policy and
// keys rotate, each with --json, all on the one shared state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { Agent, relayAs } from '../helpers/gate.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const manifests = fileURLToPath(new URL('../fixtures/cli-manifests', import.meta.url));
const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-cli-'));
const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'config') };
const cfgDir = path.join(home, 'config', 'latchgate');
let up;
let info;
const HTTP_PORT = 20000 + (process.pid % 20000);

function lg(...args) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) };
}

before(async () => {
  // Discovered config ($XDG_CONFIG_HOME/latchgate/latchgate.toml): only extra manifests.
  spawnSync('mkdir', ['-p', cfgDir]);
  const me = process.getuid();
  writeFileSync(
    path.join(cfgDir, 'latchgate.toml'),
    `[gate]\nmanifest_dirs = [${JSON.stringify(manifests)}]\n\n[identity.principals.${me}]\nname = "${os.userInfo().username}"\nscopes = ["tools:call"]\n\n[identity.principals.65534]\nname = "nobody-agent"\nscopes = ["tools:call"]\n\n[operators.${os.userInfo().username}]\nuid = ${me}\n`,
  );
  chmodSync(home, 0o755);
  up = spawn(process.execPath, [CLI, 'up', '--json', '--expose-http', `127.0.0.1:${HTTP_PORT}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  up.stdout.on('data', (d) => (out += d));
  // A generous bound: the machine may be busy; an `up` that exits ends the wait.
  for (let i = 0; i < 2400 && !out.includes('\n') && up.exitCode === null; i++) await sleep(25);
  info = JSON.parse(out.trim());
});

after(async () => {
  up?.kill('SIGTERM');
  await new Promise((r) => (up.exitCode !== null ? r() : up.once('exit', r)));
  rmSync(home, { recursive: true, force: true });
});

test('up: first run with no prompt (stdin is not a terminal), sockets under XDG_RUNTIME_DIR, state under XDG_STATE_HOME', () => {
  assert.equal(info.status, 'ready');
  assert.equal(info.client_socket, path.join(home, 'run', 'latchgate', 'gate.sock'));
  assert.equal(info.admin_socket, path.join(home, 'run', 'latchgate', 'gate-admin.sock'));
  assert.equal(info.state_dir, path.join(home, 'state', 'latchgate'));
  assert.ok(existsSync(path.join(info.state_dir, 'ledger.sqlite3')));
  const st = lg('status', '--json').json();
  assert.equal(st.gate_running, true);
  assert.equal(st.config_file, path.join(cfgDir, 'latchgate.toml'));
  assert.ok(st.actions >= 8);
});

test('peer uids decide: a mapped principal may lease but not administer; an unmapped uid is refused; loopback HTTP serves clients', { skip: process.getuid() !== 0 ? 'needs root to connect as another uid' : undefined }, async () => {
  const probe = `
    const http = require('http');
    const go = (socketPath, method, path) => new Promise((r) => { const q = http.request({ socketPath, method, path, headers: { 'content-type': 'application/json' } }, (s) => { let t = ''; s.on('data', (d) => (t += d)); s.on('end', () => r(s.statusCode + ' ' + (JSON.parse(t).error || 'ok'))); }); q.on('error', (e) => r('ERR ' + e.code)); q.end(method === 'POST' ? '{}' : undefined); });
    (async () => { console.log(await go(process.argv[1], 'GET', '/v1/actions')); console.log(await go(process.argv[2], 'POST', '/v1/admin/revoke-all')); })();`;
  // A gate shared by several users lives in a directory they can all reach.
  chmodSync(path.join(home, 'run'), 0o755);
  chmodSync(path.dirname(info.client_socket), 0o755);
  const asNobody = spawnSync(process.execPath, ['-e', probe, info.client_socket, info.admin_socket], { encoding: 'utf8', uid: 65534, gid: 65534 });
  assert.deepEqual(asNobody.stdout.trim().split('\n'), ['200 ok', '403 operator_required'], asNobody.stderr);
  const asStranger = spawnSync(process.execPath, ['-e', probe, info.client_socket, info.admin_socket], { encoding: 'utf8', uid: 4242, gid: 4242 });
  assert.deepEqual(asStranger.stdout.trim().split('\n'), ['401 identity_unauthenticated', '401 identity_unauthenticated'], asStranger.stderr);
  // Over TCP there is no peer uid: a client token, never the owner (test/gate/expose-http.test.mjs).
  const anonymous = await fetch(`http://127.0.0.1:${HTTP_PORT}/v1/actions`);
  assert.equal(anonymous.status, 401);
  const token = lg('tokens', 'create', '--principal', 'http-client', '--json').json().token;
  const res = await fetch(`http://127.0.0.1:${HTTP_PORT}/v1/actions`, { headers: { 'latchgate-token': token } });
  assert.equal(res.status, 200);
  assert.ok((await res.json()).actions.length >= 8);
  assert.equal((await fetch(`http://127.0.0.1:${HTTP_PORT}/v1/admin/epoch`, { headers: { 'latchgate-token': token } })).status, 404, 'admin routes are not on the HTTP port');
  const refused = lg('audit', '--json', '--event-type', 'request_refused').json();
  assert.ok(refused.some((e) => e.error.code === 'operator_required'));
  assert.ok(refused.some((e) => e.error.code === 'identity_unauthenticated'));
});

test('actions lists and shows; an unknown one is an error', () => {
  const list = lg('actions', '--json').json();
  assert.ok(list.some((a) => a.action_id === 't_noop_high' && a.risk_level === 'high'));
  assert.equal(lg('actions', 't_noop', '--json').json().provider_module_digest, 'builtin:noop');
  // For a person: the provider and the component digest it is trusted by, limits, egress, secret names only.
  const shown = lg('actions', 'github_create_issue');
  assert.equal(shown.code, 0, shown.err);
  assert.match(shown.out, /^provider +builtin:http_api: component sha256:[0-9a-f]{64}$/m);
  assert.match(shown.out, /^imports +latchgate:io\/http, latchgate:io\/log$/m);
  assert.match(shown.out, /^limits +fuel 5000000, memory 128 MB, 30 s, 3 I\/O calls/m);
  assert.match(shown.out, /^egress +api\.github\.com \(POST\)$/m);
  assert.match(shown.out, /^secrets +GITHUB_TOKEN \(required\)$/m);
  const bad = lg('actions', 'nope');
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /action_not_found/);
});

test('policy grant/show/list/revoke edit the policy data and are recorded with the operator', () => {
  const me = os.userInfo().username;
  assert.equal(lg('policy', 'grant', me, 't_noop,t_noop_high').code, 0);
  const show = lg('policy', 'show', me, '--json').json();
  assert.ok(JSON.stringify(show).includes('t_noop_high'));
  assert.equal(lg('policy', 'revoke', me, 't_noop_high').code, 0);
  assert.ok(!JSON.stringify(lg('policy', 'show', me, '--json').json()).includes('t_noop_high'));
  assert.equal(lg('policy', 'grant', me, 't_noop_high').code, 0);
  const events = lg('audit', '--json', '--event-type', 'policy_grant').json();
  assert.ok(events.length >= 2);
  assert.equal(events.at(-1).operator.name, me);
  assert.match(lg('policy', 'grant', me, 'no_such_action').err, /no action no_such_action/);
});

const NEEDS_ROOT = { skip: process.getuid() !== 0 ? 'needs root to run an agent as another uid' : undefined };

/** An agent under a uid of its own (nobody-agent), as the README advises: the operator approves what it asks. */
async function otherAgent(t) {
  chmodSync(path.join(home, 'run'), 0o755);
  chmodSync(path.dirname(info.client_socket), 0o755);
  const relay = await relayAs(info.client_socket, { uid: 65534, gid: 65534 });
  t.after(() => relay.close());
  assert.equal(lg('policy', 'grant', 'nobody-agent', 't_noop,t_noop_high').code, 0);
  return new Agent(relay.socket);
}

test('an approval: 202 to the agent, approved by the CLI, executed once, visible to the agent', NEEDS_ROOT, async (t) => {
  const a = await otherAgent(t);
  await a.lease();
  const r = await a.execute('t_noop_high', { n: 7 });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const pending = lg('approvals', 'list', '--json').json();
  assert.ok(pending.some((p) => p.approval_id === r.body.approval_id && p.status === 'pending'));
  assert.equal(lg('approvals', 'show', r.body.approval_id, '--json').json().plan_hash.startsWith('sha256:'), true);
  const ok = lg('approvals', 'approve', r.body.approval_id, '--json');
  assert.equal(ok.code, 0, ok.err);
  assert.equal(ok.json().http_status, 200);
  const again = lg('approvals', 'approve', r.body.approval_id);
  assert.notEqual(again.code, 0);
  assert.match(again.err, /approval_not_pending/);
  const poll = await a.signed('GET', `/v1/approvals/${r.body.approval_id}/poll`);
  assert.equal(poll.body.status, 'approved');
  assert.ok(poll.body.receipt_id);
  // A second request is denied by the CLI with a reason the agent sees.
  const r2 = await a.execute('t_noop_high', { n: 8 });
  assert.equal(lg('approvals', 'deny', r2.body.approval_id, '--reason', 'not today').code, 0);
  const poll2 = await a.signed('GET', `/v1/approvals/${r2.body.approval_id}/poll`);
  assert.equal(poll2.body.status, 'denied');
  assert.equal(poll2.body.reason, 'not today');
});

test('audit formats and filters', () => {
  const table = lg('audit');
  assert.match(table.out.split('\n')[0], /^TIMESTAMP\s+EVENT_TYPE\s+DECISION\s+PRINCIPAL\s+ACTION_ID\s+HOST\s+REASON\s+ERROR\s+TRACE_ID$/);
  const jsonl = lg('audit', '--format', 'jsonl', '-l', '5').out.trim().split('\n');
  assert.equal(jsonl.length, 5);
  for (const l of jsonl) assert.ok(JSON.parse(l).trace_id);
  const csv = lg('audit', '--format', 'csv', '--decision', 'pending_approval').out.trim().split('\n');
  assert.match(csv[0], /^timestamp,/);
  assert.equal(csv.length - 1, 2);
  assert.equal(lg('audit', '--json', '--action', 't_noop_high', '--event-type', 'action_call').json().length, 3);
  assert.match(lg('audit', '--after', 'yesterday-ish').err, /not a time/);
});

/** Characters a terminal acts on or hides: a bidi override, a zero-width space, an ANSI colour, a C1 CSI. */
const HIDDEN = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/;

test('approvals list/show/approve print no hidden characters from the agent: escapes instead, and the exact canonical request', NEEDS_ROOT, async (t) => {
  const a = await otherAgent(t);
  await a.lease();
  // Read naively, "note" would look like "rm -rf ok" in red with the tail reversed.
  const request = { n: 9, note: 'safe \u202edm- fr- mr\u202c ok\u200b \u001b[31mred\u001b[0m \u009b2J end \\u{202e}', ['k\u202eey']: 'v\u2066x\u2069' };
  const r = await a.execute('t_noop_high', request);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const id = r.body.approval_id;

  const show = lg('approvals', 'show', id);
  assert.equal(show.code, 0, show.err);
  assert.doesNotMatch(show.out, HIDDEN, 'no hidden character reaches the terminal');
  // C0 is in JSON's own escape (\u001b), the rest in \u{hex}: both visible, neither acted on.
  for (const esc of ['\\u{202e}', '\\u{202c}', '\\u{200b}', '\\u001b[31m', '\\u{9b}2J', '\\u{2066}']) assert.ok(show.out.includes(esc), `${esc} is shown: ${show.out}`);
  assert.ok(show.out.includes('\\\\u{202e}'), 'a literal backslash-u the agent typed stays distinguishable from an escape');
  // The canonical form shown is the exact RFC 8785 text, hidden characters escaped, and its hash is the plan's.
  const { canonicalize } = await import('../../dist/crypto/jcs.js');
  const shownCanon = canonicalize(request).replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
  assert.ok(show.out.includes(`  ${shownCanon}\n`), `the canonical request is shown: ${show.out}`);
  assert.match(show.out, /canonical request \(RFC 8785; sha256:[0-9a-f]{64}, matches the plan's request_hash\)/);

  const json = lg('approvals', 'show', id, '--json');
  assert.doesNotMatch(json.out, HIDDEN, '--json escapes them too (\\uXXXX)');
  assert.match(json.out, /\\u202e/);
  assert.match(json.out, /\\u009b/);
  assert.deepEqual(json.json().plan.request, request, '--json is still the exact value');

  const list = lg('approvals', 'list');
  assert.ok(list.out.includes(id), list.out);
  assert.doesNotMatch(list.out, HIDDEN);
  const listJson = lg('approvals', 'list', '--json');
  assert.doesNotMatch(listJson.out, HIDDEN);

  const deny = lg('approvals', 'deny', id, '--reason', 'no \u202etxet\u202c \u001b[2J');
  assert.equal(deny.code, 0, deny.err);
  assert.doesNotMatch(deny.out, HIDDEN);
  assert.ok(deny.out.includes('\\u{202e}txet\\u{202c} \\u{1b}[2J'), deny.out);
  const audit = lg('audit', '--limit', '50');
  assert.doesNotMatch(audit.out, HIDDEN, 'the audit table is escaped too');
});

test('an agent running as the operator\'s own uid cannot approve what it asked: approver_is_requester, recorded, still pending', async () => {
  const a = new Agent(info.client_socket);
  await a.lease();
  const r = await a.execute('t_noop_high', { n: 11 });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const self = lg('approvals', 'approve', r.body.approval_id);
  assert.equal(self.code, 1);
  assert.match(self.err, /approver_is_requester: .*the principal \S+ asked for it, and the approver must not be the requester\. Fix: run the agent in `latchgate sandbox`/);
  assert.equal(lg('approvals', 'show', r.body.approval_id, '--json').json().status, 'pending');
  const refused = lg('audit', '--json', '--event-type', 'request_refused').json();
  assert.ok(refused.some((e) => e.error.code === 'approver_is_requester'), 'the refusal is recorded');
  assert.equal((await a.signed('GET', `/v1/approvals/${r.body.approval_id}/poll`)).body.status, 'pending', 'nothing ran');
  assert.equal(lg('approvals', 'deny', r.body.approval_id, '--reason', 'asked by the operator itself').code, 0, 'denying is still possible');
});

test('keys rotate: a new kid, old receipts still verify; revoke advances the epoch', () => {
  const before = lg('verify', '--json').json();
  const r = lg('keys', 'rotate', '--kind', 'receipt', '--json').json();
  assert.match(r.kid, /^[A-Za-z0-9_-]{43}$/, 'an RFC 7638 thumbprint');
  const v = lg('verify', '--json');
  assert.equal(v.code, 0);
  assert.equal(v.json().receipts.total, before.receipts.total);
  const epoch = lg('revoke', '--json').json().epoch;
  assert.equal(lg('status', '--json').json().revocation_epoch, epoch);
});

test('verify exits 2 and names the first bad event when a row was edited', () => {
  const db = path.join(info.state_dir, 'ledger.sqlite3');
  const ok = lg('verify');
  assert.equal(ok.code, 0, ok.out);
  const d = new Database(db);
  const row = d.prepare('SELECT id, trace_id, event_json FROM audit_events ORDER BY id LIMIT 1 OFFSET 2').get();
  d.prepare('UPDATE audit_events SET event_json = ? WHERE id = ?').run(row.event_json.replace('"timestamp":"2', '"timestamp":"1'), row.id);
  d.close();
  const bad = lg('verify', '--json');
  assert.equal(bad.code, 2);
  assert.equal(bad.json().first_bad.id, row.id);
  assert.match(lg('verify').out, new RegExp(`BROKEN at id=${row.id}`));
});

test('configuration errors name the file, the key and the nearest valid name', () => {
  const f = path.join(home, 'bad.toml');
  writeFileSync(f, '[gate]\nmanifest_dir = ["x"]\n');
  const r = lg('status', '--config', f);
  assert.equal(r.code, 125);
  assert.match(r.err, new RegExp(`${f}: \\[gate\\] key "manifest_dir": unknown key; did you mean "manifest_dirs"\\?`));
});

test('a non-operator uid cannot administer', { skip: process.getuid() !== 0 ? 'needs root to act as another uid' : undefined }, () => {
  const other = mkdtempSync(path.join(os.tmpdir(), 'latchgate-cli-other-'));
  chmodSync(other, 0o777);
  const f = path.join(other, 'latchgate.toml');
  writeFileSync(f, '[operators.admin]\nuid = 0\n\n[state]\ndir = "state"\n');
  chmodSync(f, 0o644);
  const as65534 = (...args) => spawnSync(process.execPath, [CLI, ...args], { env: { PATH: '/usr/bin:/bin', HOME: other }, encoding: 'utf8', uid: 65534, gid: 65534 });
  // [operators] and [state] are grants: that user trusts the file first.
  assert.equal(as65534('trust', f).status, 0);
  const r = as65534('revoke', '--config', f);
  rmSync(other, { recursive: true, force: true });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /uid 65534 is not an operator; add \[operators.<name>\] uid = 65534/);
});
