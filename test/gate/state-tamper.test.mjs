// The gate state kept outside the hash chain (the revocation epoch in
// gate_state, the policy data in the policy_* tables), edited directly in the
// SQLite file as anyone who can write it could: with the gate running and
// with it stopped. The chain recorded every legitimate value (admin_revoke_all
// carries the epoch, every policy change the digest of the whole data, a
// state_baseline both on the first start), so the gate refuses what relies on
// the edited value (503 state_tampered, naming the table and both values),
// `latchgate up` refuses to start and `latchgate verify` reports it and exits
// 2. Next to each attack, the legitimate path: revoke, grant, revoke of a
// grant, accept, an old state directory's first start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { KeyStore } from '../../dist/keys/store.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { verifyLedgerFile } from '../../dist/ledger/verify.js';
import { checkChainedState } from '../../dist/gate/state-check.js';
import { Agent, FIXTURE_MANIFESTS, operatorCaller, startGate } from '../helpers/gate.mjs';
import { admin, gateFor, tempDir } from '../helpers/gate-faults.mjs';
import { copyStateV1 } from '../fixtures/unit/helpers.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const ledgerFile = (stateDir) => path.join(stateDir, 'ledger.sqlite3');

/** A second connection on the gate's ledger file, as an attacker with write access opens it. */
function attacker(t, stateDir) {
  const db = new Database(ledgerFile(stateDir));
  db.pragma('busy_timeout = 5000');
  t.after(() => db.close());
  return db;
}

/** Runs SQL statements in one transaction on that connection. */
function tamper(t, stateDir, ...statements) {
  const db = attacker(t, stateDir);
  db.transaction(() => {
    for (const sql of statements) db.prepare(sql).run();
  })();
}

/** `latchgate verify` as the library runs it for the CLI: chain, receipts and the state outside the chain. */
function verify(stateDir) {
  return verifyLedgerFile(ledgerFile(stateDir), new KeyStore(path.join(stateDir, 'keys')), checkChainedState);
}

/** The CLI with XDG_STATE_HOME/latchgate = stateDir (home/state/latchgate), and the test manifests in its (own, so trusted) configuration. */
function cli(home) {
  mkdirSync(path.join(home, 'config', 'latchgate'), { recursive: true });
  writeFileSync(path.join(home, 'config', 'latchgate', 'latchgate.toml'), `[gate]\nmanifest_dirs = [${JSON.stringify(FIXTURE_MANIFESTS)}]\n`);
  const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_CONFIG_HOME: path.join(home, 'config'), XDG_RUNTIME_DIR: path.join(home, 'run') };
  return (...args) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr, signal: r.signal };
  };
}

/** A home whose state directory (home/state/latchgate) the CLI finds. */
function homeState(t) {
  const home = tempDir(t, 'latchgate-chainstate-');
  const stateDir = path.join(home, 'state', 'latchgate');
  mkdirSync(stateDir, { recursive: true });
  return { home, stateDir };
}

/** A gate whose state directory is home/state/latchgate, so the CLI works on it too. */
async function gateInHome(t, opts = {}) {
  const { home, stateDir } = homeState(t);
  const g = await gateFor(t, { stateDir, keepState: true, ...opts });
  return { g, home, stateDir, lg: cli(home) };
}

const grant = (g, actions) => admin(g, 'POST', '/v1/admin/policy/grant', { principal: 'tester', actions, sinks: ['http_read'] });

function assertTampered(r, table, found, recorded) {
  assert.equal(r.status, 503, r.text);
  assert.equal(r.body.error, 'state_tampered');
  assert.ok(r.body.table.includes(table), r.text);
  assert.equal(r.body.found, found);
  assert.equal(r.body.recorded, recorded);
  assert.ok(r.body.message.includes('Fix:'), r.body.message);
}

test('epoch set back under a running gate: the revoked lease stays refused (503 state_tampered), verify reports it; `latchgate revoke` repairs', async (t) => {
  const { g, stateDir } = await gateInHome(t);
  assert.equal((await grant(g, ['t_ok'])).status, 200);
  const old = new Agent(g.socket);
  await old.lease();
  assert.equal((await old.execute('t_ok', { n: 1 })).status, 200);
  const rv = await admin(g, 'POST', '/v1/admin/revoke-all', {});
  assert.equal(rv.body.epoch, 1);
  assert.equal((await old.execute('t_ok', { n: 2 })).body.error, 'lease_revoked');

  // The attack: the epoch back to 0 would make the revoked lease valid again.
  tamper(t, stateDir, "UPDATE gate_state SET value = '0' WHERE key = 'revocation_epoch'");
  const r = await old.execute('t_ok', { n: 3 });
  assertTampered(r, 'gate_state.revocation_epoch', 0, 1);
  assert.match(r.body.message, /latchgate revoke/);
  assert.equal(g.db.prepare("SELECT count(*) FROM audit_events WHERE event_type = 'action_call' AND decision = 'allow'").pluck().get(), 1, 'nothing ran under the revoked lease');
  // New leases are refused too, and readyz says why.
  const fresh = new Agent(g.socket);
  await assert.rejects(fresh.lease(), /503.*state_tampered/);
  const ready = await admin(g, 'GET', '/readyz');
  assert.equal(ready.body.status, 'not_ready');
  assert.match(ready.body.checks.chained_state, /gate_state\.revocation_epoch is 0/);

  const v = verify(stateDir);
  assert.equal(v.intact, false);
  assert.equal(v.first_bad, null, 'the chain itself is intact');
  assert.deepEqual(v.state.mismatches.map((m) => [m.table, m.found, m.recorded]), [['gate_state.revocation_epoch', 0, 1]]);

  // The fix: revoke again. The epoch moves past both values; the old lease stays dead, a new one works.
  const fix = await admin(g, 'POST', '/v1/admin/revoke-all', {});
  assert.equal(fix.status, 200, fix.text);
  assert.equal(fix.body.epoch, 2);
  assert.equal((await old.execute('t_ok', { n: 4 })).body.error, 'lease_revoked');
  await fresh.lease();
  assert.equal((await fresh.execute('t_ok', { n: 5 })).status, 200);
  const after = verify(stateDir);
  assert.equal(after.intact, true, JSON.stringify(after.state));
  assert.deepEqual(after.state.mismatches, []);
});

test('epoch set back and the revoke event hidden (its event_type column changed) under a running gate: still refused', async (t) => {
  const { g, stateDir } = await gateInHome(t);
  assert.equal((await grant(g, ['t_ok'])).status, 200);
  const old = new Agent(g.socket);
  await old.lease();
  await admin(g, 'POST', '/v1/admin/revoke-all', {});
  assert.equal((await old.execute('t_ok', { n: 1 })).body.error, 'lease_revoked');
  tamper(t, stateDir, "UPDATE gate_state SET value = '0' WHERE key = 'revocation_epoch'", "UPDATE audit_events SET event_type = 'admin_drain' WHERE event_type = 'admin_revoke_all'");
  const r = await old.execute('t_ok', { n: 2 });
  assert.equal(r.status, 503, r.text);
  assert.equal(r.body.error, 'state_tampered');
  assert.match(r.body.message, /admin_revoke_all event id=\d+.*its event_type column was changed: the ledger was edited/);
  // verify names the edited row (its column disagrees with its event_json).
  const v = verify(stateDir);
  assert.equal(v.intact, false);
  assert.match(v.first_bad.reason, /column event_type/);
});

/** A gate run on stateDir that grants t_ok, leases an agent, revokes every lease (epoch 1) and stops: the agent holds the revoked lease. */
async function revokedLease(stateDir) {
  const g1 = await startGate({ stateDir });
  assert.equal((await grant(g1, ['t_ok'])).status, 200);
  const old = new Agent(g1.socket);
  await old.lease();
  assert.equal((await admin(g1, 'POST', '/v1/admin/revoke-all', {})).body.epoch, 1);
  await g1.close({ keepState: true });
  return old;
}

test('epoch set back while the gate is stopped: the restarted gate refuses the old lease, `latchgate up` refuses to start, `latchgate verify` exits 2', async (t) => {
  const { home, stateDir } = homeState(t);
  const lg = cli(home);
  const old = await revokedLease(stateDir);

  tamper(t, stateDir, "UPDATE gate_state SET value = '0' WHERE key = 'revocation_epoch'");

  const g2 = await gateFor(t, { stateDir, keepState: true });
  assert.deepEqual(g2.tampered.map((m) => [m.table, m.found, m.recorded]), [['gate_state.revocation_epoch', 0, 1]]);
  old.socket = g2.socket;
  assertTampered(await old.execute('t_ok', { n: 1 }), 'gate_state.revocation_epoch', 0, 1);

  const up = lg('up', '--json');
  assert.equal(up.code, 1, `up must refuse: ${up.out}${up.err}`);
  assert.match(up.err, /refusing to serve/);
  assert.match(up.err, /gate_state\.revocation_epoch is 0, but the ledger's chain recorded epoch 1 \(admin_revoke_all event id=\d+/);
  assert.match(up.err, /Fix: run `latchgate revoke`/);

  const v = lg('verify', '--json');
  assert.equal(v.code, 2, v.err);
  const report = JSON.parse(v.out);
  assert.equal(report.intact, false);
  assert.deepEqual(report.state.mismatches.map((m) => [m.table, m.found, m.recorded]), [['gate_state.revocation_epoch', 0, 1]]);
  const text = lg('verify');
  assert.equal(text.code, 2);
  assert.match(text.out, /1 table DIFFER from what the chain recorded:\n {2}gate_state\.revocation_epoch is 0/);

  // `latchgate revoke` (the CLI, on the shared state, while g2 runs) repairs it.
  const rv = lg('revoke', '--json');
  assert.equal(rv.code, 0, rv.err);
  assert.equal(JSON.parse(rv.out).epoch, 2);
  assert.equal(lg('verify').code, 0);
  assert.equal((await old.execute('t_ok', { n: 2 })).body.error, 'lease_revoked');
  const fresh = new Agent(g2.socket);
  await fresh.lease();
  assert.equal((await fresh.execute('t_ok', { n: 3 })).status, 200);
});

test('policy data widened under a running gate: the widened action is refused (503), grant refuses to launder it, verify reports; accept records it', async (t) => {
  const { g, stateDir, lg } = await gateInHome(t);
  assert.equal((await grant(g, ['t_ok'])).status, 200);
  const a = new Agent(g.socket);
  await a.lease();
  assert.equal((await a.execute('t_ok', { n: 1 })).status, 200);
  assert.equal((await a.execute('t_costly', { n: 1 })).body.error, 'policy_denied');
  const digest = checkChainedState(g.db).values.policy_digest.table;

  // The attack: t_costly added to tester's entry, and the change counter bumped so the running gate reads it.
  tamper(t, stateDir, "INSERT INTO policy_acl (principal, action_id) VALUES ('tester', 't_costly')", "UPDATE policy_meta SET value = value + 1 WHERE key = 'version'");
  const r = await a.execute('t_costly', { n: 2 });
  assert.equal(r.status, 503, r.text);
  assert.equal(r.body.error, 'state_tampered');
  assert.match(r.body.table, /policy_acl/);
  assert.equal(r.body.recorded, digest);
  assert.notEqual(r.body.found, digest);
  assert.match(r.body.message, /latchgate policy accept/);
  assert.equal(g.db.prepare("SELECT count(*) FROM receipts").pluck().get(), 1, 'nothing ran under the widened policy');

  // A policy change now would record a digest of the widened data: refused, nothing changes.
  const grants = () => g.ctx.ledger.query({ event_type: 'policy_grant' }).length;
  const count = grants();
  const laundered = await admin(g, 'POST', '/v1/admin/policy/grant', { principal: 'someone', actions: ['t_ok'], sinks: [] });
  assert.equal(laundered.status, 503, laundered.text);
  assert.equal(laundered.body.error, 'state_tampered');
  assert.equal(grants(), count, 'no policy_grant event (the refusal is recorded as one)');
  assert.equal(g.ctx.ledger.query({ event_type: 'request_refused' }).at(-1).error.code, 'state_tampered');
  assert.equal(g.ctx.policyStore.reload().acl.someone, undefined, 'no grant');

  const v = verify(stateDir);
  assert.equal(v.intact, false);
  assert.equal(v.state.mismatches.length, 1);
  assert.match(v.state.mismatches[0].table, /policy_acl/);
  assert.equal(v.state.mismatches[0].recorded, digest);
  const cv = lg('verify');
  assert.equal(cv.code, 2);
  assert.match(cv.out, /the policy data in policy_principals, policy_acl, policy_sinks, policy_allowlist has digest sha256:[0-9a-f]{64}, but the ledger's chain recorded/);

  // The operator looks and accepts the data as it is: recorded, served again.
  const acc = lg('policy', 'accept', '--json');
  assert.equal(acc.code, 0, acc.err);
  assert.equal(JSON.parse(acc.out).recorded_digest, digest);
  assert.equal((await a.execute('t_costly', { n: 3 })).status, 200);
  assert.equal(lg('verify').code, 0);
});

test('policy data widened while the gate is stopped, the change counter left alone: the restarted gate refuses policy decisions', async (t) => {
  const { home, stateDir } = homeState(t);
  const g1 = await startGate({ stateDir });
  assert.equal((await grant(g1, ['t_ok'])).status, 200);
  await g1.close({ keepState: true });
  tamper(t, stateDir, "INSERT INTO policy_acl (principal, action_id) VALUES ('tester', 't_costly')");

  const g2 = await gateFor(t, { stateDir, keepState: true });
  assert.equal(g2.tampered.length, 1);
  assert.match(g2.tampered[0].message, /policy_acl/);
  const a = new Agent(g2.socket);
  await a.lease(); // the lease does not rely on the policy data
  const r = await a.execute('t_costly', { n: 1 });
  assert.equal(r.status, 503, r.text);
  assert.equal(r.body.error, 'state_tampered');
  assert.equal((await a.execute('t_ok', { n: 1 })).body.error, 'state_tampered', 'no decision is made on the edited data');
  const up = cli(home)('up');
  assert.equal(up.code, 1);
  assert.match(up.err, /policy_acl/);
});

test('legitimate changes through the CLI and the admin socket: recorded with their digest, the gate serves, verify passes', async (t) => {
  const { g, stateDir, lg } = await gateInHome(t);
  const a = new Agent(g.socket);
  await a.lease();
  assert.equal((await a.execute('t_ok', { n: 1 })).body.error, 'policy_denied');
  const cg = lg('policy', 'grant', 'tester', 't_ok,t_costly', '--json');
  assert.equal(cg.code, 0, cg.err);
  assert.equal((await a.execute('t_costly', { n: 1 })).status, 200, 'the running gate follows a change another process recorded');
  assert.equal(lg('policy', 'revoke', 'tester', 't_costly').code, 0);
  assert.equal((await a.execute('t_costly', { n: 2 })).body.error, 'policy_denied');
  assert.equal((await admin(g, 'POST', '/v1/admin/policy/grant', { principal: 'other', actions: ['t_ok'], sinks: [] })).status, 200);
  assert.equal((await admin(g, 'POST', '/v1/admin/policy/revoke', { principal: 'other', actions: ['t_ok'] })).status, 200);
  assert.equal(lg('revoke').code, 0);
  await a.lease();
  assert.equal((await a.execute('t_ok', { n: 3 })).status, 200);

  // Every change carries the digest of the data it left, and the last one is the tables' digest.
  const changes = g.ctx.ledger.query({ limit: 1000 }).filter((e) => e.event_type.startsWith('policy_'));
  assert.equal(changes.length, 4);
  for (const e of changes) assert.match(e.details.policy_digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(changes.at(-1).details.policy_digest, checkChainedState(g.db).values.policy_digest.table);
  const revokes = g.ctx.ledger.query({ event_type: 'admin_revoke_all' });
  assert.deepEqual(revokes.map((e) => e.details.epoch), [1]);
  const v = lg('verify', '--json');
  assert.equal(v.code, 0, v.out);
  const report = JSON.parse(v.out);
  assert.equal(report.state.baseline, true);
  assert.deepEqual(report.state.mismatches, []);
  assert.equal(report.state.values['gate_state.revocation_epoch'].table, 1);
  assert.match(lg('verify').out, /State outside the chain matches the chain: gate_state\.revocation_epoch 1, policy_digest sha256:/);
  // The status command says the same.
  const st = JSON.parse(lg('status', '--json').out);
  assert.equal(st.ledger.intact, true);
  assert.deepEqual(st.state_mismatches, []);
});

test('a policy change made without its event (PolicyStore used directly) is caught like an edit', async (t) => {
  const { g } = await gateInHome(t);
  assert.equal((await grant(g, ['t_ok'])).status, 200);
  g.ctx.policyStore.grant('tester', ['t_costly'], []);
  const a = new Agent(g.socket);
  await a.lease();
  assert.equal((await a.execute('t_ok', { n: 1 })).body.error, 'state_tampered');
  // The same change with its recorder: the gate serves again.
  g.gate.admin.policyAccept(operatorCaller());
  assert.equal((await a.execute('t_costly', { n: 1 })).status, 200);
});

test('a state directory from before the chain recorded this state: verify passes without writing, the first start records one baseline, verify passes', async (t) => {
  const home = tempDir(t, 'latchgate-chainstate-v1-');
  mkdirSync(path.join(home, 'state'));
  const stateDir = copyStateV1(path.join(home, 'state', 'latchgate'));
  const lg = cli(home);
  const before = lg('verify', '--json');
  assert.equal(before.code, 0, before.out + before.err);
  const r0 = JSON.parse(before.out);
  assert.equal(r0.state.baseline, false);
  assert.deepEqual(r0.state.mismatches, []);
  assert.match(lg('verify').out, /not recorded yet/);

  const g = await startGate({ stateDir });
  const baselines = g.ctx.ledger.query({ event_type: 'state_baseline' });
  assert.equal(baselines.length, 1);
  assert.equal(baselines[0].details.epoch, 0);
  assert.equal(baselines[0].details.policy_digest, checkChainedState(g.db).values.policy_digest.table);
  assert.deepEqual(g.tampered, []);
  await g.close({ keepState: true });
  const g2 = await startGate({ stateDir });
  assert.equal(g2.ctx.ledger.query({ event_type: 'state_baseline' }).length, 1, 'one baseline, not one per start');
  assert.equal((await grant(g2, ['t_ok'])).status, 200);
  const a = new Agent(g2.socket);
  await a.lease();
  assert.equal((await a.execute('t_ok', { n: 1 })).status, 200);
  await g2.close({ keepState: true });
  const after = lg('verify', '--json');
  assert.equal(after.code, 0, after.out);
  assert.equal(JSON.parse(after.out).state.baseline, true);
});

test('an epoch lowered before the first start of this version: the baseline records the epoch of the last admin_revoke_all, and the table is caught', async (t) => {
  const stateDir = tempDir(t, 'latchgate-chainstate-old-');
  // An older gate revoked up to epoch 3 (recording each revocation); then the table was set back to 0.
  const ledger = Ledger.open(ledgerFile(stateDir));
  for (const epoch of [1, 2, 3]) ledger.append({ event_type: 'admin_revoke_all', decision: 'allow', operator: { name: 'op', uid: 0 }, subject: { principal: 'operator:op' }, details: { epoch, approvals_revoked: 0 } });
  ledger.db.exec("CREATE TABLE gate_state (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO gate_state VALUES ('revocation_epoch', '0')");
  ledger.db.close();
  const pre = verify(stateDir);
  assert.deepEqual(pre.state.mismatches.map((m) => [m.table, m.found, m.recorded]), [['gate_state.revocation_epoch', 0, 3]], 'caught before any baseline, from the revocations');

  const g = await gateFor(t, { stateDir, keepState: true });
  assert.equal(g.ctx.ledger.query({ event_type: 'state_baseline' })[0].details.epoch, 3);
  assert.equal(g.ctx.ledger.query({ event_type: 'state_baseline' })[0].details.epoch_in_table, 0);
  assert.deepEqual(g.tampered.map((m) => [m.found, m.recorded]), [[0, 3]]);
  await assert.rejects(new Agent(g.socket).lease(), /state_tampered/);
  assert.equal(g.gate.admin.revokeAll(operatorCaller()).epoch, 4);
  const a = new Agent(g.socket);
  await a.lease();
  assert.equal(verify(stateDir).intact, true);
});

test('attack: epoch set back and a record of the lower epoch appended to the chain (no key needed): the restarted gate refuses the old lease, verify names the appended record', async (t) => {
  const stateDir = tempDir(t, 'latchgate-state-');
  const old = await revokedLease(stateDir);

  tamper(t, stateDir, "UPDATE gate_state SET value = '0' WHERE key = 'revocation_epoch'");
  const ledger = Ledger.open(ledgerFile(stateDir));
  const real = ledger.query({ event_type: 'admin_revoke_all', limit: 1 })[0];
  const { event_type, decision, subject, operator, details } = real;
  ledger.append({ event_type, decision, subject, operator, details: { ...details, epoch: 0 } });
  const appended = ledger.db.prepare('SELECT max(id) AS id FROM audit_events').get().id;
  ledger.db.close();

  const v = verify(stateDir);
  assert.equal(v.first_bad, null, 'the chain itself holds: the record was appended as the ledger appends');
  assert.equal(v.intact, false);
  const m = v.state.mismatches.find((x) => x.table === 'gate_state.revocation_epoch');
  assert.ok(m, JSON.stringify(v.state.mismatches));
  assert.match(m.message, new RegExp(`recorded epoch 1 \\(event id=\\d+\\), and event id=${appended} records epoch 0 after it: an epoch never goes back.*Fix: run \`latchgate revoke\``));

  const g2 = await gateFor(t, { stateDir, keepState: true });
  assert.ok(g2.tampered.some((x) => x.table === 'gate_state.revocation_epoch'), JSON.stringify(g2.tampered));
  old.socket = g2.socket;
  assert.notEqual((await old.execute('t_ok', { n: 1 })).status, 200, 'the revoked lease stays refused');
  // The fix the message gives: a revoke past both values.
  assert.equal((await admin(g2, 'POST', '/v1/admin/revoke-all', {})).status, 200);
  assert.equal(verify(stateDir).intact, true);
});
