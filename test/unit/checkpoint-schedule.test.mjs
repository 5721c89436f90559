// When checkpoints are signed (src/ledger/checkpoint-schedule.ts) and what
// signing refuses (src/ledger/tree-checkpoints.ts): every N appends, after
// the append's transaction and never inside it; on a timer; at stop; a head
// that did not move is not signed again; a tree that no longer extends the
// latest checkpoint is refused, once loudly and once in the ledger.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Ledger } from '../../dist/ledger/ledger.js';
import { immediate } from '../../dist/ledger/db.js';
import { KeyStore } from '../../dist/keys/store.js';
import { CheckpointRefusedError, TreeCheckpoints, ledgerOrigin } from '../../dist/ledger/tree-checkpoints.js';
import { CheckpointPublisher, LogSink } from '../../dist/ledger/checkpoint-sinks.js';
import { CheckpointSchedule } from '../../dist/ledger/checkpoint-schedule.js';
import { openCheckpoint } from '../../dist/verify/checkpoint.js';
import { noteVerifier } from '../../dist/crypto/signed-note.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const ev = { event_type: 'admin_drain', decision: 'allow', operator: { name: 'op' }, subject: { principal: 'op' }, details: {} };

function setup(t, o = {}) {
  const dir = tempDir(t, 'latchgate-schedule-');
  const ledger = Ledger.open(join(dir, 'ledger.sqlite3'));
  const keys = new KeyStore(join(dir, 'keys'));
  const store = new TreeCheckpoints(ledger, keys);
  const warnings = [];
  const publisher = new CheckpointPublisher(store, [new LogSink(join(dir, 'checkpoints.log'))], undefined, (m) => warnings.push(m));
  const schedule = new CheckpointSchedule(store, publisher, { everyEvents: 0, everySeconds: 0, warn: (m) => warnings.push(m), ...o });
  t.after(() => {
    schedule.halt();
    ledger.db.close();
  });
  return { dir, ledger, keys, store, schedule, warnings };
}

async function until(what, fn) {
  for (let i = 0; i < 400; i++) {
    if (fn()) return;
    await sleep(25);
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('the store: a signed C2SP checkpoint of the head, verified by the printed key; the same head is not signed again; covering and listing', (t) => {
  const { ledger, store } = setup(t);
  for (let i = 0; i < 5; i++) ledger.append(ev);
  const a = store.signCheckpoint();
  assert.equal(a.size, 5);
  assert.match(a.origin, /^latchgate\.local\/ledger\/[0-9a-f]{32}$/);
  assert.equal(a.origin, ledgerOrigin(ledger.db.prepare(`SELECT value FROM ledger_metadata WHERE key = 'ledger_id'`).pluck().get()));
  assert.deepEqual(Buffer.from(a.root), Buffer.from(ledger.merkle.merkleRoot(5)));
  const opened = openCheckpoint(a.note, [noteVerifier(store.currentVerifierKey())], a.origin);
  assert.equal(opened.size, 5);
  assert.equal(a.vkey, store.currentVerifierKey());
  assert.equal(store.signCheckpoint().note, a.note, 'the head did not move: the same checkpoint');
  for (let i = 0; i < 3; i++) ledger.append(ev);
  const b = store.signCheckpoint();
  assert.equal(b.size, 8);
  assert.deepEqual(store.listCheckpoints().map((c) => c.size), [5, 8]);
  assert.equal(store.checkpointCovering(0).size, 5);
  assert.equal(store.checkpointCovering(4).size, 5);
  assert.equal(store.checkpointCovering(5).size, 8);
  assert.equal(store.checkpointCovering(8), undefined);
  assert.equal(store.latestCheckpoint().size, 8);
  assert.throws(() => store.checkpointCovering(-1), RangeError);
});

test('every N appends: signed after the transaction that made the Nth, never inside it', async (t) => {
  const { ledger, store, schedule, warnings } = setup(t, { everyEvents: 4 });
  schedule.start();
  let inside;
  immediate(ledger.db, () => {
    for (let i = 0; i < 6; i++) ledger.appendInTransaction(ev);
    inside = store.listCheckpoints().length;
  });
  assert.equal(inside, 0, 'nothing signed inside the append transaction');
  await until('the checkpoint', () => store.listCheckpoints().length === 1);
  assert.equal(store.latestCheckpoint().size, 6, 'signed after the commit: the whole transaction');
  for (let i = 0; i < 3; i++) ledger.append(ev);
  await sleep(50);
  const seen = () => `checkpoints ${JSON.stringify(store.listCheckpoints().map((c) => c.size))}, events ${ledger.query({ limit: 50 }).map((e) => e.event_type).join(',')}, warnings ${warnings.join(' | ')}`;
  assert.equal(store.listCheckpoints().length, 1, `three more appends: below the count; ${seen()}`);
  ledger.append(ev);
  await until('the second checkpoint', () => store.listCheckpoints().length === 2);
  assert.equal(store.latestCheckpoint().size, 10, seen());
});

test('on a timer, only when the ledger grew; and a last one at stop', async (t) => {
  const { ledger, store, schedule } = setup(t, { everySeconds: 1 });
  ledger.append(ev);
  schedule.start();
  await until('the timed checkpoint', () => store.listCheckpoints().length === 1);
  ledger.append(ev);
  ledger.append(ev);
  await schedule.stop();
  assert.deepEqual(store.listCheckpoints().map((c) => c.size), [1, 3]);
  ledger.append(ev);
  await schedule.run();
  assert.equal(store.listCheckpoints().length, 2, 'a stopped schedule signs nothing');
});

test('a tree cut below the latest checkpoint: refused; reported once and recorded once, however often it is tried', async (t) => {
  const { ledger, store, schedule, warnings } = setup(t);
  for (let i = 0; i < 8; i++) ledger.append(ev);
  store.signCheckpoint();
  const db = ledger.db;
  // The last four events and their leaves removed, the tree's state made to fit (the chain_head too).
  db.exec(`DELETE FROM audit_events WHERE id > 4; DELETE FROM merkle_nodes WHERE pos >= 7; UPDATE ledger_metadata SET value = '{"size":4,"last_event_id":4}' WHERE key = 'merkle_tree'`);
  assert.throws(() => store.signCheckpoint(), (e) => e instanceof CheckpointRefusedError && e.code === 'checkpoint_truncated' && /holds 4 events, fewer than the latest checkpoint \(size 8\)/.test(e.message));
  await schedule.run();
  await schedule.run();
  assert.equal(warnings.filter((w) => /no checkpoint signed: .*fewer than the latest checkpoint/.test(w)).length, 1);
  assert.deepEqual(ledger.query({ event_type: 'checkpoint_refused' }).map((e) => e.details.reason), ['checkpoint_truncated']);
});

test('a stored tree rewritten under the latest checkpoint, or another ledger id: refused', (t) => {
  const { ledger, store } = setup(t);
  for (let i = 0; i < 4; i++) ledger.append(ev);
  store.signCheckpoint();
  ledger.append(ev);
  // The root of the first four leaves is the stored node at post-order position 6.
  const node = ledger.db.prepare('SELECT hash FROM merkle_nodes WHERE pos = 6').pluck().get();
  ledger.db.prepare('UPDATE merkle_nodes SET hash = randomblob(32) WHERE pos = 6').run();
  assert.throws(() => store.signCheckpoint(), (e) => e.code === 'checkpoint_rewritten' && /at size 4 has root .*not the latest checkpoint's/.test(e.message));
  ledger.db.prepare('UPDATE merkle_nodes SET hash = ? WHERE pos = 6').run(node);
  ledger.db.prepare(`UPDATE ledger_metadata SET value = ? WHERE key = 'ledger_id'`).run('f'.repeat(32));
  assert.throws(() => store.signCheckpoint(), (e) => e.code === 'checkpoint_origin' && /is of latchgate\.local\/ledger\/[0-9a-f]{32}, but this ledger is latchgate\.local\/ledger\/f{32}/.test(e.message));
  ledger.db.prepare(`UPDATE ledger_metadata SET value = 'x' WHERE key = 'ledger_id'`).run();
  assert.throws(() => store.signCheckpoint(), (e) => e.code === 'checkpoint_origin' && /ledger's id in ledger_metadata is "x"/.test(e.message));
});

test('a ledger from before checkpoints gets its id at open, once', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'l.sqlite3');
  const l = Ledger.open(file);
  l.append(ev);
  l.db.exec(`DROP TABLE checkpoints; DROP TABLE checkpoint_sinks; DELETE FROM ledger_metadata WHERE key = 'ledger_id'`);
  l.db.close();
  const readId = (ledger) => ledger.db.prepare(`SELECT value FROM ledger_metadata WHERE key = 'ledger_id'`).pluck().get();
  const again = Ledger.open(file);
  const id = readId(again);
  assert.match(id, /^[0-9a-f]{32}$/);
  assert.equal(new TreeCheckpoints(again, new KeyStore(join(dir, 'k'))).signCheckpoint().size, 1);
  again.db.close();
  const third = Ledger.open(file);
  t.after(() => third.db.close());
  assert.equal(readId(third), id, 'kept');
});
