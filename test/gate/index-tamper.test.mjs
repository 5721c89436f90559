// SQLite's indexes are not covered by the chain's hashes: someone who can
// write the state directory can make an index disagree with its table (here
// through writable_schema, as an attacker would), so that a look-up by
// event_type no longer finds a row while every event, hash and the chain
// head stay byte-identical. The gate's checks of the state outside the chain
// read the table itself, so a hidden revocation or a hidden debit is still
// found; `latchgate verify` runs SQLite's integrity check and reports the
// edited index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { parseConfig } from '../../dist/config/latchgate-toml.js';
import { checkChainedState } from '../../dist/gate/state-check.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyLedgerFile } from '../../dist/ledger/verify.js';
import { Agent, grantAll, startGate } from '../helpers/gate.mjs';
import { admin, tempDir } from '../helpers/gate-faults.mjs';

const ledgerFile = (stateDir) => path.join(stateDir, 'ledger.sqlite3');
const verify = (stateDir) => verifyLedgerFile(ledgerFile(stateDir), new KeyStore(path.join(stateDir, 'keys')), checkChainedState);
const INDEX = 'audit_events_event_type';

/** Hides the rows of these event types from the event_type index; the rows themselves end byte-identical. Then runs `after` SQL. */
function hideFromIndex(stateDir, types, after = []) {
  const db = new Database(ledgerFile(stateDir));
  try {
    db.unsafeMode(true);
    const q = types.map(() => '?').join(',');
    const rows = db.prepare(`SELECT id, event_type FROM audit_events WHERE event_type IN (${q})`).all(...types);
    assert.ok(rows.length > 0, `no ${types} rows to hide`);
    const orig = db.prepare('SELECT sql FROM sqlite_master WHERE name = ?').pluck().get(INDEX);
    const setSchema = (sql) => {
      const v = db.pragma('schema_version', { simple: true });
      db.pragma('writable_schema = ON');
      db.prepare('UPDATE sqlite_master SET sql = ? WHERE name = ?').run(sql, INDEX);
      db.pragma(`schema_version = ${v + 1}`);
      db.pragma('writable_schema = OFF');
    };
    db.prepare(`UPDATE audit_events SET event_type = '~hidden~' WHERE id IN (${rows.map(() => '?').join(',')})`).run(...rows.map((r) => r.id));
    setSchema(orig.replace('(event_type)', '(event_type) WHERE 0')); // the index stops being maintained
    db.close();
    const db2 = new Database(ledgerFile(stateDir));
    db2.unsafeMode(true);
    for (const r of rows) db2.prepare('UPDATE audit_events SET event_type = ? WHERE id = ?').run(r.event_type, r.id);
    const v = db2.pragma('schema_version', { simple: true });
    db2.pragma('writable_schema = ON');
    db2.prepare('UPDATE sqlite_master SET sql = ? WHERE name = ?').run(orig, INDEX);
    db2.pragma(`schema_version = ${v + 1}`);
    db2.pragma('writable_schema = OFF');
    for (const sql of after) db2.exec(sql);
    db2.pragma('wal_checkpoint(TRUNCATE)');
    // The look-up by event_type no longer sees them.
    assert.equal(db2.prepare(`SELECT count(*) FROM audit_events WHERE event_type IN (${q})`).pluck().get(...types), 0);
    db2.close();
  } finally {
    if (db.open) db.close();
  }
}

const BUDGETS = parseConfig('b.toml', '[budgets.tester]\ncalls_per_day = 2\n').gate.budgets;

/** A state directory whose principal used its whole day budget (2 calls). */
async function usedUpDay(t) {
  const stateDir = tempDir(t);
  const g = await startGate({ stateDir, config: { budgets: BUDGETS } });
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  for (let i = 0; i < 2; i++) assert.equal((await a.execute('t_ok', { n: i })).status, 200);
  await g.close({ keepState: true });
  return stateDir;
}

test('a revocation hidden from the event_type index (and the epoch set back) is still found; verify reports the edited index', async (t) => {
  const stateDir = tempDir(t);
  const g = await startGate({ stateDir });
  grantAll(g);
  assert.equal((await admin(g, 'POST', '/v1/admin/revoke-all', {})).status, 200);
  await g.close({ keepState: true });
  assert.equal(verify(stateDir).intact, true);

  hideFromIndex(stateDir, ['admin_revoke_all'], ["UPDATE gate_state SET value = '0' WHERE key = 'revocation_epoch'"]);
  const v = verify(stateDir);
  assert.equal(v.intact, false);
  assert.equal(v.database.ok, false);
  assert.ok(v.database.problems.some((p) => /missing from index|wrong # of entries/.test(p)), v.database.problems.join('\n'));
  assert.deepEqual(v.state.mismatches.map((m) => [m.table, m.found, m.recorded]), [['gate_state.revocation_epoch', 0, 1]]);

  // The gate refuses leases while the epoch differs from the chain's.
  const again = await startGate({ stateDir });
  t.after(() => again.close({ keepState: true }).catch(() => {}));
  assert.equal(again.tampered.length, 1);
  const a = new Agent(again.socket);
  await assert.rejects(a.lease(), /503.*state_tampered/);
});

test('debits hidden from the event_type index (and the day row zeroed) are still counted: the next gate puts the count back and refuses', async (t) => {
  const stateDir = await usedUpDay(t);

  hideFromIndex(stateDir, ['action_call'], ['UPDATE budget_windows SET calls_used = 0, cost_used = 0']);
  assert.ok(verify(stateDir).state.mismatches.some((m) => m.table === 'budget_windows' && m.recorded === 2));

  const again = await startGate({ stateDir, config: { budgets: BUDGETS } });
  t.after(() => again.close({ keepState: true }).catch(() => {}));
  const b = new Agent(again.socket);
  await b.lease();
  const r = await b.execute('t_ok', { n: 9 });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.body.error, 'budget_exhausted');
});

test('an action_call whose event_type column was changed is no debit the gate restores from: verify and the gate report the edited row', async (t) => {
  const stateDir = await usedUpDay(t);

  const db = new Database(ledgerFile(stateDir));
  db.exec("UPDATE audit_events SET event_type = 'admin_drain' WHERE event_type = 'action_call'; UPDATE budget_windows SET calls_used = 0");
  db.close();
  const edited = verify(stateDir).state.mismatches.filter((m) => m.table === 'budget_windows' && /no longer matches its hash, or its event_type column was changed/.test(m.message));
  assert.ok(edited.length >= 2, JSON.stringify(verify(stateDir).state.mismatches.map((m) => m.message)));
  const again = await startGate({ stateDir, config: { budgets: BUDGETS } });
  t.after(() => again.close({ keepState: true }).catch(() => {}));
  assert.ok(again.tampered.some((m) => m.table === 'budget_windows'), 'latchgate up would refuse to start');
});
