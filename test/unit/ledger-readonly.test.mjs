// verifyLedgerFile (what `latchgate verify` runs) reads the ledger without
// writing next to it: no -wal or -shm left behind by a closed ledger, the
// commits still in the WAL of an open one seen, a missing or foreign file
// refused with the fix, nothing created.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KeyStore } from '../../dist/keys/store.js';
import { Ledger, LedgerError } from '../../dist/ledger/ledger.js';
import { signReceipt } from '../../dist/ledger/receipt.js';
import { verifyLedgerFile } from '../../dist/ledger/verify.js';
import { tempDir, treeSnapshot } from '../fixtures/unit/helpers.mjs';

function writeLedger(dir, events) {
  const ledger = Ledger.open(join(dir, 'ledger.sqlite3'));
  const keys = new KeyStore(join(dir, 'keys'));
  ledger.db.pragma('wal_autocheckpoint = 0'); // as the gate: commits stay in the WAL until a checkpoint
  for (let i = 0; i < events; i++) ledger.append({ event_type: 'action_call', decision: 'allow', subject: { principal: 'agent' }, action: { action_id: 'noop' }, request: { request_hash: `sha256:${i}` } });
  const receipt = signReceipt(keys, {
    receipt_id: 'r-1', grant_id: 'g-1', trace_id: 't-1', provider_module_digest: 'builtin:noop', provider_receipt: {},
    normalized_result: { kind: 'success', summary: 'ok' }, verification_outcome: { status: 'verified', evidence: {} },
    effect_evidence: [], started_at: '2025-01-01T00:00:00.000Z', finished_at: '2025-01-01T00:00:00.010Z',
  });
  ledger.commitEvidence(receipt, { event_type: 'action_call', decision: 'allow', subject: { principal: 'agent' }, action: { action_id: 'noop' } });
  return { ledger, keys };
}

test('a closed ledger: intact, and no -wal, -shm or other file appears', (t) => {
  const dir = tempDir(t);
  writeLedger(dir, 5).ledger.db.close();
  assert.deepEqual(readdirSync(dir).sort(), ['keys', 'ledger.sqlite3']);
  const before = treeSnapshot(dir);
  const r = verifyLedgerFile(join(dir, 'ledger.sqlite3'), new KeyStore(join(dir, 'keys')));
  assert.equal(r.intact, true, JSON.stringify(r));
  assert.deepEqual([r.total_events, r.receipts], [6, { total: 1, bad: [] }]);
  assert.deepEqual(treeSnapshot(dir), before);
});

test('a ledger another connection has open: its commits still in the WAL are verified too', (t) => {
  const dir = tempDir(t);
  const { ledger } = writeLedger(dir, 3);
  t.after(() => ledger.db.close());
  assert.ok(existsSync(join(dir, 'ledger.sqlite3-wal')));
  const r = verifyLedgerFile(join(dir, 'ledger.sqlite3'), new KeyStore(join(dir, 'keys')));
  assert.equal(r.intact, true, JSON.stringify(r));
  assert.deepEqual([r.total_events, r.receipts.total], [4, 1]);
  ledger.append({ event_type: 'action_call', decision: 'deny', subject: { principal: 'agent' }, action: { action_id: 'noop' } });
  assert.equal(verifyLedgerFile(join(dir, 'ledger.sqlite3'), new KeyStore(join(dir, 'keys'))).total_events, 5);
});

test('a missing ledger or a file that is no ledger is refused with the fix, and nothing is created', (t) => {
  const dir = tempDir(t);
  const keys = new KeyStore(join(dir, 'keys'));
  assert.throws(() => verifyLedgerFile(join(dir, 'ledger.sqlite3'), keys), (e) => e instanceof LedgerError && e.code === 'not_a_ledger' && /^no ledger at .*Fix: /.test(e.message));
  writeFileSync(join(dir, 'ledger.sqlite3'), 'not a database, but long enough to have a header of one '.repeat(4));
  assert.throws(() => verifyLedgerFile(join(dir, 'ledger.sqlite3'), keys), (e) => e instanceof LedgerError && e.code === 'not_a_ledger');
  assert.deepEqual(readdirSync(dir), ['ledger.sqlite3']);
});

test('a -wal without its -shm (an archive, a copy that left the -shm out): its commits verified, and no -shm made beside it', (t) => {
  const live = tempDir(t);
  const { ledger } = writeLedger(live, 3);
  t.after(() => ledger.db.close());
  const dir = tempDir(t);
  for (const f of ['ledger.sqlite3', 'ledger.sqlite3-wal']) writeFileSync(join(dir, f), readFileSync(join(live, f)));
  cpSync(join(live, 'keys'), join(dir, 'keys'), { recursive: true });
  const before = treeSnapshot(dir);
  // A temporary directory of this test's own, so that other processes' copies do not count.
  const tmp = tempDir(t);
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  let r;
  try {
    r = verifyLedgerFile(join(dir, 'ledger.sqlite3'), new KeyStore(join(dir, 'keys')));
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
  assert.equal(r.intact, true, JSON.stringify(r));
  assert.deepEqual([r.total_events, r.receipts.total], [4, 1], 'the commits only in the WAL are seen');
  assert.deepEqual(treeSnapshot(dir), before);
  assert.deepEqual(readdirSync(tmp), [], 'the private copy is gone');
});
