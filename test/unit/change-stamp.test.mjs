// ChangeStamp (src/ledger/db.ts) lets the gate's checks of its plain tables
// (the revocation epoch, the policy data) skip their probe while nothing was
// written. Here: it moves when another connection commits, also one that
// edits a table behind the gate's back, and when this connection records a
// state change; the epoch and the policy data read through it see every
// such write, and refuse an edit made through another connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ChangeStamp, openDb } from '../../dist/ledger/db.js';
import { advanceEpochOnly, AGENT, operatorCaller, startGate } from '../helpers/gate.mjs';

function tempDb(t) {
  const dir = mkdtempSync(path.join(tmpdir(), 'latchgate-stamp-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'x.sqlite3');
}

test('ChangeStamp: stands while nothing is written; moves on another connection\'s commit and on noteOwnWrite', (t) => {
  const file = tempDb(t);
  const db = openDb(file);
  t.after(() => db.close());
  db.exec('CREATE TABLE t (x)');
  const s = ChangeStamp.of(db);
  assert.equal(ChangeStamp.of(db), s, 'one per connection');
  const a = s.current();
  assert.equal(s.current(), a);
  db.prepare('INSERT INTO t VALUES (1)').run();
  assert.equal(s.current(), a, 'a write of its own connection is not seen unless noted (data_version counts other connections)');
  s.noteOwnWrite();
  const b = s.current();
  assert.notEqual(b, a);
  const other = new Database(file);
  t.after(() => other.close());
  other.prepare('INSERT INTO t VALUES (2)').run();
  assert.notEqual(s.current(), b, 'another connection committed');
  const c = s.current();
  other.prepare('SELECT count(*) FROM t').get();
  assert.equal(s.current(), c, 'a read moves nothing');
});

test('the epoch and the policy data read through the stamp: every legitimate change seen, an edit from another connection refused', async (t) => {
  const g = await startGate();
  t.after(() => g.close());
  const ctx = g.ctx;
  const e0 = ctx.state.epoch;
  assert.equal(ctx.state.epoch, e0);
  // This process's own revoke (the same connection): seen at once.
  advanceEpochOnly(g);
  assert.equal(ctx.state.epoch, e0 + 1);
  // This process's own policy change: seen at once.
  const before = ctx.policyData.data();
  g.gate.admin.policyGrant(operatorCaller(), { principal: AGENT, actions: ['t_ok'], sinks: [] });
  const after = ctx.policyData.data();
  assert.notEqual(after, before);
  assert.equal(ctx.policyData.data(), after, 'unchanged data is the same object: nothing was read again');
  // An edit through another connection, as a local user with write access makes it: refused on the next read.
  const other = new Database(g.db.name);
  t.after(() => other.close());
  other.prepare("UPDATE gate_state SET value = '0' WHERE key = 'revocation_epoch'").run();
  assert.throws(() => ctx.state.epoch, (e) => e.code === 'state_tampered');
  other.transaction(() => {
    other.prepare("INSERT INTO policy_acl (principal, action_id) VALUES ('agent', 't_noop')").run();
    other.prepare("UPDATE policy_meta SET value = value + 1 WHERE key = 'version'").run();
  })();
  assert.throws(() => ctx.policyData.data(), (e) => e.code === 'state_tampered');
});
