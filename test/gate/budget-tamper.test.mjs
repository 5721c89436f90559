// Budget usage lives in a plain table (budget_windows); the hash chain records
// every debit in its execution's action_call event. Someone who can write the
// SQLite file lowers the count (or deletes the rows) to get a used-up day
// budget back: `latchgate verify` reports the window, and the next gate to
// open the ledger puts the count back to the chain's (recording
// budget_counts_restored), so the calls stay refused. Next to it, the
// legitimate shapes that must not be reported: a refunded failure, a count
// above the chain's (a call in flight or cut by a crash).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { parseConfig } from '../../dist/config/latchgate-toml.js';
import { checkChainedState } from '../../dist/gate/state-check.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyLedgerFile } from '../../dist/ledger/verify.js';
import { Agent, grantAll, startGate } from '../helpers/gate.mjs';
import { tempDir } from '../helpers/gate-faults.mjs';

const budgets = parseConfig('budgets-test.toml', '[budgets.tester]\ncalls_per_day = 3\ncalls_per_lease = 100\n').gate.budgets;
const ledgerFile = (stateDir) => path.join(stateDir, 'ledger.sqlite3');
const verify = (stateDir) => verifyLedgerFile(ledgerFile(stateDir), new KeyStore(path.join(stateDir, 'keys')), checkChainedState);

function tamper(stateDir, sql) {
  const db = new Database(ledgerFile(stateDir));
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

/** A gate on stateDir (kept when it closes), with the day budget; the test's uid is granted every fixture action. */
async function gate(t, stateDir) {
  const g = await startGate({ stateDir, config: { budgets } });
  t.after(() => g.close({ keepState: true }).catch(() => {}));
  grantAll(g);
  return g;
}

async function useUpTheDay(t, stateDir) {
  const g = await gate(t, stateDir);
  const a = new Agent(g.socket);
  await a.lease();
  for (let i = 0; i < 3; i++) assert.equal((await a.execute('t_ok', { n: i })).status, 200);
  const refused = await a.execute('t_ok', { n: 3 });
  assert.equal(refused.body.error, 'budget_exhausted', refused.text);
  await g.close({ keepState: true });
}

async function nextCall(t, stateDir) {
  const g = await gate(t, stateDir);
  const a = new Agent(g.socket);
  await a.lease();
  const r = await a.execute('t_ok', { n: 99 });
  const restored = g.db.prepare("SELECT event_json FROM audit_events WHERE event_type = 'budget_counts_restored'").pluck().all().map((j) => JSON.parse(j));
  await g.close({ keepState: true });
  return { r, restored };
}

for (const [name, sql] of [
  ['lowered to zero', 'UPDATE budget_windows SET calls_used = 0, cost_used = 0'],
  ['deleted', 'DELETE FROM budget_windows'],
]) {
  test(`a used-up day budget whose rows were ${name} in SQLite: verify reports it, the next gate puts the count back and refuses the call`, async (t) => {
    const stateDir = tempDir(t);
    await useUpTheDay(t, stateDir);
    assert.deepEqual(verify(stateDir).state.mismatches, []);

    tamper(stateDir, sql);
    const v = verify(stateDir);
    const day = v.state.mismatches.filter((m) => m.table === 'budget_windows');
    assert.ok(day.length >= 1, JSON.stringify(v.state));
    assert.ok(day.some((m) => m.recorded === 3 && /day window of tester/.test(m.message)), day.map((m) => m.message).join('\n'));
    assert.match(day[0].message, /Fix: /);

    const { r, restored } = await nextCall(t, stateDir);
    assert.equal(r.status, 403, r.text);
    assert.equal(r.body.error, 'budget_exhausted');
    assert.equal(restored.length, 1);
    assert.ok(restored[0].details.windows.some((w) => w.window === 'day' && w.owner === 'tester' && w.chain.calls === 3));
    // Restored: verify is clean again, and the restore is itself in the chain.
    const after = verify(stateDir);
    assert.deepEqual(after.state.mismatches, []);
    assert.equal(after.intact, true);
  });
}

test('a refunded failure and a count above the chain (a call in flight or cut by a crash) are not reported', async (t) => {
  const stateDir = tempDir(t);
  const g = await gate(t, stateDir);
  const a = new Agent(g.socket);
  await a.lease();
  assert.equal((await a.execute('t_ok', { n: 1 })).status, 200);
  const failed = await a.execute('t_fail', { n: 2 });
  assert.equal(failed.status, 502, failed.text);
  await g.close({ keepState: true });
  assert.deepEqual(verify(stateDir).state.mismatches, []);

  tamper(stateDir, 'UPDATE budget_windows SET calls_used = calls_used + 1');
  assert.deepEqual(verify(stateDir).state.mismatches, []);
  // Two of the three calls left after the one that ran (the refunded failure gave its call back; the +1 stands).
  const { r, restored } = await nextCall(t, stateDir);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(restored, []);
});

/** A gate whose principal used its 3 calls of the day, then the day's count lowered to 0 under it (the gate keeps running). */
async function dayLoweredWhileRunning(t) {
  const stateDir = tempDir(t);
  const g = await gate(t, stateDir);
  const a = new Agent(g.socket);
  await a.lease();
  for (let i = 0; i < 3; i++) assert.equal((await a.execute('t_ok', { n: i })).status, 200);
  tamper(stateDir, "UPDATE budget_windows SET calls_used = 0 WHERE window = 'day'");
  return { stateDir, g, a };
}

test("a count lowered while the gate runs, spent, then put back to the chain's: verify shows the window was spent past the limit its debits recorded", async (t) => {
  const { stateDir, g, a } = await dayLoweredWhileRunning(t);
  // The running gate trusts its table: two more calls.
  for (let i = 3; i < 5; i++) assert.equal((await a.execute('t_ok', { n: i })).status, 200);
  tamper(stateDir, "UPDATE budget_windows SET calls_used = 5 WHERE window = 'day'");
  await g.close({ keepState: true });
  const v = verify(stateDir);
  assert.equal(v.intact, false);
  const over = v.state.mismatches.filter((m) => m.table === 'budget_windows (history)');
  assert.equal(over.length, 1, JSON.stringify(v.state.mismatches));
  assert.equal(over[0].found, 4);
  assert.equal(over[0].recorded, 3);
  assert.match(over[0].message, /day window of tester on \d{4}-\d\d-\d\d was spent past its limit: .* is call 4 .* against a limit of 3 calls/);
  // Nothing to put back: the next gate starts (and says so), the day stays used up.
  const { r } = await nextCall(t, stateDir);
  assert.equal(r.body.error, 'budget_exhausted');
});

test('the overspend stays in verify after the window expired (the whole chain is checked), and a trigger in the ledger is reported and refuses policy changes', async (t) => {
  const { budgetMismatches } = await import('../../dist/gate/budget-check.js');
  const { stateDir, g, a } = await dayLoweredWhileRunning(t);
  assert.equal((await a.execute('t_ok', { n: 3 })).status, 200);
  const later = new Date(Date.now() + 10 * 86_400_000);
  const found = budgetMismatches(g.db, later, true).filter((m) => m.table === 'budget_windows (history)');
  assert.equal(found.length, 1);
  assert.equal(found[0].found, 4);
  // A trigger that would swallow a policy revoke: reported, and the revoke is refused rather than recorded.
  tamper(stateDir, "CREATE TRIGGER keep_acl BEFORE DELETE ON policy_acl BEGIN SELECT RAISE(IGNORE); END");
  const v = verify(stateDir);
  assert.ok(v.state.mismatches.some((m) => m.table === 'sqlite_master' && m.found === 'trigger keep_acl'), JSON.stringify(v.state.mismatches));
  assert.throws(() => g.gate.admin.policyRevoke({ principal: 'operator:op', scopes: [], uid: process.getuid(), operator: 'op', transport: 'unix' }, { principal: 'tester', actions: ['t_ok'] }), /state_tampered|trigger "keep_acl"/);
});
