// `latchgate policy replay` on a ledger a real gate wrote: allowed calls,
// a denial, an approval held and approved, with grants and revokes between
// them. The same policy changes nothing; a stricter, a looser and an asking
// candidate change exactly the decisions they should; filters select; an
// event from before inputs were recorded is counted as not replayable; the
// ledger is not touched; a broken candidate is refused naming its file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, grantAll, operatorCaller, startGate } from '../helpers/gate.mjs';
import { buildFakeOpaWasm } from '../fixtures/policy/fake-opa-wasm.mjs';
import { inputOfEvent } from '../../dist/policy/recorded-input.js';
import { dataVersionOf, PolicyDataHistory } from '../../dist/policy/data-history.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { loadPolicyAt, PolicyLoadError } from '../../dist/policy/candidate.js';
import { replayLedgerFile } from '../../dist/policy/replay.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const POLICIES = fileURLToPath(new URL('../../policies', import.meta.url));
const DEFAULT_CEDAR = readFileSync(path.join(POLICIES, 'latchgate.cedar'), 'utf8');

const work = mkdtempSync(path.join(os.tmpdir(), 'latchgate-replay-'));
let ledger;
/** What the engine was given, by request_hash: the inputs and data the recorded events must give back. */
const seen = new Map();
/** The events of the scenario, by step name. */
const steps = {};

/** A candidate policy directory: the default schema and the given policy text. */
function candidate(name, cedarText, schemaText) {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'latchgate.cedar'), cedarText);
  if (schemaText === undefined) copyFileSync(path.join(POLICIES, 'latchgate.cedarschema'), path.join(dir, 'latchgate.cedarschema'));
  else if (schemaText !== null) writeFileSync(path.join(dir, 'latchgate.cedarschema'), schemaText);
  return dir;
}

/** The command, on the ledger found where the gate keeps it ($XDG_STATE_HOME/latchgate/) unless --ledger is given. */
function lg(...args) {
  const env = { PATH: '/usr/bin:/bin', HOME: work, XDG_STATE_HOME: path.join(work, 'xdg'), XDG_CONFIG_HOME: path.join(work, 'config'), XDG_RUNTIME_DIR: path.join(work, 'run') };
  const r = spawnSync(process.execPath, [CLI, 'policy', 'replay', ...args], { encoding: 'utf8', env });
  return { code: r.status, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) };
}

/** The replay the command runs, in this process (the command itself is run where its output and exit code are the point). */
async function replay(policyDir, opts = {}) {
  const p = await loadPolicyAt(policyDir);
  return replayLedgerFile(ledger, p.engine, p.files, opts);
}

before(async () => {
  const g = await startGate({ stateDir: path.join(work, 'xdg', 'latchgate') });
  ledger = path.join(g.stateDir, 'ledger.sqlite3');
  const decide = g.ctx.policy.decide.bind(g.ctx.policy);
  g.ctx.policy.decide = (input, data) => {
    seen.set(input.request_hash, { input: structuredClone(input), data: structuredClone(data) });
    return decide(input, data);
  };
  const lastCall = () => JSON.parse(g.db.prepare(`SELECT event_json FROM audit_events WHERE event_type = 'action_call' ORDER BY id DESC LIMIT 1`).get().event_json);
  try {
    grantAll(g);
    const tester = new Agent(g.socket);
    await tester.lease();
    const agent = new Agent(g.agentSocket);
    await agent.lease();
    const call = async (name, who, action, n, status) => {
      const r = await who.execute(action, { n });
      assert.equal(r.status, status, `${name}: ${r.text}`);
      steps[name] = lastCall();
      return r;
    };
    await call('tester-1', tester, 't_ok', 1, 200);
    const held = await call('agent-held', agent, 't_high', 2, 202);
    const ap = await g.gate.admin.approve(operatorCaller(), held.body.approval_id, {});
    assert.equal(ap.http_status, 200);
    steps['agent-approved'] = lastCall();
    g.gate.admin.policyRevoke(operatorCaller(), { principal: 'tester', actions: ['t_ok'] });
    await call('tester-denied', tester, 't_ok', 3, 403);
    g.gate.admin.policyGrant(operatorCaller(), { principal: 'tester', actions: ['t_ok'], sinks: ['http_read'] });
    await new Promise((r) => setTimeout(r, 5)); // a later timestamp for --since
    await call('tester-2', tester, 't_ok', 4, 200);
    await call('agent-1', agent, 't_ok', 5, 200);
    // The tables edited outside latchgate, then accepted by an operator: the chain cannot rebuild
    // that change, the policy_accepted event carries the data instead.
    g.db.prepare(`DELETE FROM policy_acl WHERE principal = 'agent' AND action_id = 't_ok'`).run();
    g.gate.admin.policyAccept(operatorCaller());
    await call('agent-after-accept', agent, 't_ok', 6, 403);
    // A decision event from before inputs were recorded: no policy.input.
    const { input: _input, ...policy } = steps['tester-1'].policy;
    g.ctx.ledger.append({ event_type: 'action_call', decision: 'allow', subject: steps['tester-1'].subject, action: steps['tester-1'].action, request: steps['tester-1'].request, policy });
    steps['old-format'] = lastCall();
    assert.equal(verifyLedger(g.db, g.ctx.keys).intact, true);
  } finally {
    await g.close({ keepState: true });
  }
});

after(() => rmSync(work, { recursive: true, force: true }));

test('each decision event records the exact input the engine got, and the chain rebuilds the exact data it was decided on', () => {
  const history = new PolicyDataHistory();
  const db = spawnSync(process.execPath, ['-e', `
    const D = require(${JSON.stringify(fileURLToPath(import.meta.resolve('better-sqlite3')))});
    const db = new D(process.argv[1], { readonly: true });
    process.stdout.write(JSON.stringify(db.prepare('SELECT event_json FROM audit_events ORDER BY id').all().map((r) => JSON.parse(r.event_json))));`, ledger], { encoding: 'utf8' });
  const events = JSON.parse(db.stdout);
  let checked = 0;
  for (const e of events) {
    history.apply(e);
    if (e.event_type !== 'action_call' || !e.policy?.input) continue;
    const want = seen.get(e.request.request_hash);
    assert.ok(want, `the engine decided ${e.request.request_hash}`);
    assert.deepEqual(inputOfEvent(e), { input: want.input }, 'the recorded input is the one decided on');
    assert.deepEqual(history.lookup(dataVersionOf(e.policy.policy_version)), { data: want.data }, 'the data rebuilt is the one decided on');
    checked++;
  }
  assert.equal(checked, 6, 'six decisions recorded their input (the approved run and the old-format event did not)');
  assert.equal(steps['agent-approved'].policy.input, undefined, 'an approved run does not repeat the held decision\'s input');
  assert.equal(steps['agent-held'].decision, 'pending_approval');
});

test('the same policy: every decision replayed, none changes; the approved run and the old-format event are counted', async () => {
  const r = await replay(POLICIES);
  assert.equal(r.decisions, 7);
  assert.equal(r.replayed, 6);
  assert.equal(r.unchanged, 6);
  assert.equal(r.changed, 0);
  assert.deepEqual(r.changes, []);
  assert.equal(r.approved_runs, 1);
  assert.equal(r.not_replayable, 1);
  assert.equal(r.not_replayable_reasons.length, 1);
  assert.match(r.not_replayable_reasons[0].reason, /^no recorded input: policy\.input is absent/);
  assert.deepEqual(r.not_replayable_reasons[0].trace_ids, [steps['old-format'].trace_id]);
  // The command says the same, in JSON and in its table.
  assert.deepEqual(lg('--policy', POLICIES, '--json').json(), JSON.parse(JSON.stringify(r)), 'the ledger of the state directory');
  const t = lg('--ledger', ledger, '--policy', POLICIES, '--fail-on-change');
  assert.equal(t.code, 0, `nothing changed: ${t.err}`);
  assert.match(t.out, /decisions: 7 selected, 6 replayed, 1 not replayable; 1 approved run/);
  assert.match(t.out, /changes: {3}none/);
});

test('a stricter candidate: exactly the allowed calls it forbids go allow -> deny, with their trace ids; the denial keeps its reason', async () => {
  const strict = candidate('strict', `${DEFAULT_CEDAR}
@id("deny-tester-t-ok")
@order("25")
@reason("deny-tester-t-ok: tester may not call t_ok")
forbid (principal == LatchGate::Principal::"tester", action, resource == LatchGate::Tool::"t_ok");
`);
  const r = await replay(strict);
  assert.equal(r.replayed, 6);
  assert.equal(r.changed, 2);
  assert.equal(r.unchanged, 4);
  assert.deepEqual(r.changes, [{
    from: 'allow', to: 'deny', action_id: 't_ok',
    reason: 'deny-tester-t-ok: tester may not call t_ok', recorded_reason: 'allow-default',
    count: 2, trace_ids: [steps['tester-1'].trace_id, steps['tester-2'].trace_id],
  }]);
  // --fail-on-change: exit 1 for CI (without a change, 0: above); the table lists the group.
  const table = lg('--policy', strict, '--fail-on-change');
  assert.equal(table.code, 1, table.err);
  assert.match(table.out, /2 decision\(s\) would change/);
  assert.match(table.out, /2 {2}allow -> deny {2}t_ok/);
  assert.ok(table.out.includes(steps['tester-1'].trace_id));
});

test('a looser candidate (no ACL rule): the denials go deny -> allow, nothing else', async () => {
  const loose = candidate('loose', DEFAULT_CEDAR.replace(/@id\("deny-not-in-acl"\)[\s\S]*?\n\};\n/, ''));
  assert.ok(!readFileSync(path.join(loose, 'latchgate.cedar'), 'utf8').includes('deny-not-in-acl"'));
  const r = await replay(loose);
  assert.equal(r.changed, 2);
  assert.deepEqual(r.changes.map((g) => [g.from, g.to, g.action_id, g.reason, g.count, g.trace_ids]), [['deny', 'allow', 't_ok', 'allow-default', 2, [steps['tester-denied'].trace_id, steps['agent-after-accept'].trace_id]]]);
  assert.match(r.changes[0].recorded_reason, /^deny-not-in-acl:/);
});

test('a candidate that asks for t_ok: allow -> pending_approval for each allowed call, grouped by action', async () => {
  const asking = candidate('asking', `${DEFAULT_CEDAR}
@id("approval-t-ok")
@approval("required")
permit (principal, action == LatchGate::Action::"execute", resource == LatchGate::Tool::"t_ok");
`);
  const r = await replay(asking);
  assert.deepEqual(r.changes.map((g) => [g.from, g.to, g.action_id, g.reason, g.count]), [['allow', 'pending_approval', 't_ok', 'approval-t-ok', 3]]);
});

test('an OPA wasm candidate (a directory holding policy.wasm, or the file): every decision re-decided by it', async () => {
  // An OPA-ABI module that answers allow without approval to everything (no opa binary here to build real Rego).
  const dir = path.join(work, 'opa');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'policy.wasm'), buildFakeOpaWasm({ result: JSON.stringify([{ result: { allow: true, requires_approval: false } }]) }));
  for (const at of [dir, path.join(dir, 'policy.wasm')]) {
    const r = await replay(at);
    assert.equal(r.policy.engine, 'opa-wasm');
    assert.equal(r.replayed, 6);
    assert.deepEqual(r.changes.map((g) => [g.from, g.to, g.action_id, g.count]), [
      ['deny', 'allow', 't_ok', 2],
      ['pending_approval', 'allow', 't_high', 1],
    ]);
  }
  // A directory holding both kinds is ambiguous: refused.
  copyFileSync(path.join(dir, 'policy.wasm'), path.join(work, 'strict', 'policy.wasm'));
  await assert.rejects(loadPolicyAt(path.join(work, 'strict')), /holds both latchgate\.cedar and policy\.wasm/);
  rmSync(path.join(work, 'strict', 'policy.wasm'));
});

test('filters: --since, --until and --action select decisions by time and action', async () => {
  const strict = path.join(work, 'strict');
  const since = steps['tester-2'].timestamp;
  const later = lg('--policy', strict, '--json', '--since', since).json();
  assert.equal(later.decisions, 4, 'tester-2, agent-1, agent-after-accept and the old-format event');
  assert.deepEqual(later.changes.map((g) => [g.count, g.trace_ids]), [[1, [steps['tester-2'].trace_id]]]);
  assert.equal(later.approved_runs, 0);
  const earlier = await replay(strict, { until: since });
  assert.equal(earlier.decisions, 3, 'tester-1, the held call and the denial');
  assert.deepEqual(earlier.changes.map((g) => [g.count, g.trace_ids]), [[1, [steps['tester-1'].trace_id]]]);
  const high = await replay(strict, { action: 't_high' });
  assert.equal(high.decisions, 1);
  assert.equal(high.replayed, 1);
  assert.equal(high.changed, 0);
  assert.equal(high.approved_runs, 1);
  assert.deepEqual(high.filters, { action: 't_high' });
  const bad = lg('--policy', strict, '--since', 'yesterday-ish');
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /--since.*ISO 8601/);
});

test('--data current decides on the data the tables hold now, and says so: the call made while revoked comes out allowed, the one made before the edit denied', async () => {
  const r = await replay(POLICIES, { data: 'current' });
  assert.equal(r.data, 'current');
  assert.deepEqual(r.changes.map((g) => [g.from, g.to, g.count, g.trace_ids]), [
    ['allow', 'deny', 1, [steps['agent-1'].trace_id]],
    ['deny', 'allow', 1, [steps['tester-denied'].trace_id]],
  ]);
});

test('replay writes nothing: the state directory is byte for byte what it was', async () => {
  const snapshot = () => Object.fromEntries(readdirSync(path.dirname(ledger)).sort().map((n) => {
    const p = path.join(path.dirname(ledger), n);
    let h = 'dir';
    try {
      h = createHash('sha256').update(readFileSync(p)).digest('hex');
    } catch {
      // a directory (the key store)
    }
    return [n, h];
  }));
  const before = snapshot();
  await replay(POLICIES);
  const current = lg('--policy', POLICIES, '--data', 'current', '--json');
  assert.equal(current.code, 0, current.err);
  assert.equal(current.json().data, 'current');
  assert.equal(current.json().changed, 2);
  assert.deepEqual(snapshot(), before);
});

test('a broken candidate is refused naming the file and the problem; the command exits 2', async () => {
  const cases = [
    ['syntax', candidate('syntax', `${DEFAULT_CEDAR}\n@id("x")\npermit (principal, action, resource) when { context.scopes.contains( };\n`), /latchgate\.cedar: .*does not parse: line \d+, column \d+/],
    ['schema violation', candidate('violation', `${DEFAULT_CEDAR}\n@id("x")\npermit (principal, action, resource) when { context.nope == 1 };\n`), /latchgate\.cedar: policies do not match the schema: x: line \d+, column \d+: .*nope/],
    ['broken schema', candidate('badschema', DEFAULT_CEDAR, 'entity Foo = { a: ;'), /latchgate\.cedarschema: schema does not parse/],
    ['no schema', candidate('noschema', DEFAULT_CEDAR, null), /latchgate\.cedarschema: missing/],
    ['no policy', (() => { const d = path.join(work, 'empty'); mkdirSync(d, { recursive: true }); return d; })(), /holds neither latchgate\.cedar .* nor policy\.wasm/],
    ['opa server', 'http://127.0.0.1:8181/v1/data/latchgate/decision', /OPA server \(engine "opa-server"\) cannot be loaded here/],
    ['missing', path.join(work, 'nowhere'), /nowhere: no such file or directory/],
  ];
  for (const [what, dir, want] of cases) {
    await assert.rejects(loadPolicyAt(dir), (e) => e instanceof PolicyLoadError && want.test(e.message), what);
  }
  for (const [what, dir, want] of cases.slice(0, 1)) {
    const r = lg('--policy', dir);
    assert.equal(r.code, 2, `${what}: ${r.err}`);
    assert.match(r.err, want, what);
    assert.equal(r.out, '', `${what}: nothing replayed`);
  }
});

test('a ledger that is not there exits 2 and names it', () => {
  const r = spawnSync(process.execPath, [CLI, 'policy', 'replay', '--policy', POLICIES, '--ledger', path.join(work, 'no-ledger.sqlite3')], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /no-ledger\.sqlite3/);
});

/** A copy of the scenario's ledger, edited by `edit(db)` with the sqlite3 library: what someone who can write the file does. */
async function hostileCopy(name, edit) {
  const { default: Database } = await import('better-sqlite3');
  const file = path.join(work, `${name}.sqlite3`);
  const src = new Database(ledger, { readonly: true });
  await src.backup(file);
  src.close();
  const db = new Database(file);
  try {
    edit(db);
  } finally {
    db.close();
  }
  return file;
}

const sha = (s) => `sha256:${createHash('sha256').update(s, 'utf8').digest('hex')}`;

test('attack: a decision edited with its own hash recomputed, or its type spelt with an escape, is counted as edited, never replayed as recorded nor dropped', async () => {
  const p = await loadPolicyAt(POLICIES);
  const t1 = steps['tester-1'].trace_id;
  const t2 = steps['tester-2'].trace_id;
  const file = await hostileCopy('edited', (db) => {
    const row = (trace) => db.prepare('SELECT id, event_json FROM audit_events WHERE trace_id = ?').get(trace);
    // tester-1's allow rewritten as a deny, its hash recomputed (the next event's prev_hash no longer links to it).
    const a = row(t1);
    const denied = a.event_json.replace('"decision":"allow"', '"decision":"deny"');
    assert.notEqual(denied, a.event_json);
    db.prepare('UPDATE audit_events SET event_json = ?, hash = ? WHERE id = ?').run(denied, sha(denied), a.id);
    // tester-2's event_type written with a JSON escape: the same event once parsed, other bytes.
    const b = row(t2);
    const escaped = b.event_json.replace('"event_type":"action_call"', '"event_type":"action\\u005fcall"');
    assert.notEqual(escaped, b.event_json);
    db.prepare('UPDATE audit_events SET event_json = ?, hash = ? WHERE id = ?').run(escaped, sha(escaped), b.id);
  });
  const r = await replayLedgerFile(file, p.engine, p.files);
  assert.equal(r.decisions, 7, 'no decision dropped');
  const edited = r.not_replayable_reasons.find((x) => /edited/.test(x.reason));
  assert.ok(edited, JSON.stringify(r.not_replayable_reasons));
  assert.deepEqual([...edited.trace_ids].sort(), [t1, t2].sort());
  assert.equal(r.changed, 0, 'an edited decision is not replayed as if the gate had recorded it');
});
