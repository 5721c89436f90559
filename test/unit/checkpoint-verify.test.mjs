// The checkpoint checks of `latchgate verify` (src/ledger/tree-verify.ts) at
// their trust boundary: checkpoints.log and a --checkpoint file are read
// from wherever they were kept, so seeded random damage to either never
// crashes verification and is never taken for a checkpoint of the ledger;
// a log entry passes only when it is a validly signed checkpoint the table
// holds. Bounded: a few hundred cases on a small ledger.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ledger } from '../../dist/ledger/ledger.js';
import { KeyStore } from '../../dist/keys/store.js';
import { TreeCheckpoints } from '../../dist/ledger/tree-checkpoints.js';
import { CheckpointPublisher, LogSink } from '../../dist/ledger/checkpoint-sinks.js';
import { checkCheckpoints, splitNotes } from '../../dist/ledger/tree-verify.js';
import { openCheckpoint } from '../../dist/verify/checkpoint.js';
import { noteVerifier } from '../../dist/crypto/signed-note.js';
import { prng, tempDir } from '../fixtures/unit/helpers.mjs';

const ev = { event_type: 'admin_drain', decision: 'allow', operator: { name: 'op' }, subject: { principal: 'op' }, details: {} };

async function setup(t) {
  const dir = tempDir(t, 'latchgate-cp-verify-');
  const ledger = Ledger.open(join(dir, 'ledger.sqlite3'));
  t.after(() => ledger.db.close());
  const keys = new KeyStore(join(dir, 'keys'));
  const store = new TreeCheckpoints(ledger, keys);
  const logPath = join(dir, 'checkpoints.log');
  const publisher = new CheckpointPublisher(store, [new LogSink(logPath)]);
  for (const n of [5, 9, 13]) {
    for (let i = 0; i < n; i++) ledger.append(ev);
    store.signCheckpoint();
    await publisher.publish();
    if (n === 9) keys.rotate('checkpoint');
  }
  const check = (inputs) => ledger.db.transaction(() => checkCheckpoints(ledger.db, keys, inputs))();
  const verifiers = store.verifierKeys().map((k) => noteVerifier(k.vkey));
  return { ledger, store, logPath, log: readFileSync(logPath, 'utf8'), check, verifiers };
}

/** One random change to a text: a character flipped, a range cut, copied or moved, or bytes inserted. */
function mutate(rnd, text) {
  const at = rnd.below(text.length + 1);
  const len = 1 + rnd.below(40);
  switch (rnd.below(6)) {
    case 0:
      return text.slice(0, at) + String.fromCharCode(32 + rnd.below(95)) + text.slice(at + 1);
    case 1:
      return text.slice(0, at) + text.slice(at + len);
    case 2:
      return text.slice(0, at) + text.slice(at, at + len) + text.slice(at);
    case 3:
      return text.slice(0, at) + rnd.pick(['\n', '\n\n', '\u2014 ', '=', '+', '\u0000', '\ud800', '\r\n', ' ']) + text.slice(at);
    case 4: {
      const cut = text.slice(at, at + len);
      const rest = text.slice(0, at) + text.slice(at + len);
      const to = rnd.below(rest.length + 1);
      return rest.slice(0, to) + cut + rest.slice(to);
    }
    default:
      return text.slice(0, at) + String.fromCharCode(rnd.below(0x3000)) + text.slice(at);
  }
}

test('seeded damage to checkpoints.log: never a crash; it passes exactly when every entry is a validly signed checkpoint the table holds', async (t) => {
  const s = await setup(t);
  assert.equal(s.check({ log: { path: s.logPath, text: s.log } }).ok, true);
  const table = new Map(s.store.listCheckpoints().map((c) => [c.size, Buffer.from(c.root).toString('hex')]));
  let refused = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const rnd = prng(seed);
    let text = s.log;
    for (let k = 1 + rnd.below(3); k > 0; k--) text = mutate(rnd, text);
    const report = s.check({ log: { path: s.logPath, text } });
    // The oracle: the standalone verifier (src/verify/) on each entry.
    const expected = splitNotes(text).every((e) => {
      if (!('note' in e)) return false;
      try {
        const c = openCheckpoint(e.note, s.verifiers, s.store.origin);
        return table.get(c.size) === Buffer.from(c.rootHash).toString('hex');
      } catch {
        return false;
      }
    });
    assert.equal(report.ok, expected, `seed ${seed}: ${JSON.stringify(report.problems.map((p) => p.message))}\n${JSON.stringify(text)}`);
    if (!report.ok) refused++;
  }
  assert.ok(refused > 200, `only ${refused} of 300 damaged logs refused: the damage is too mild to test anything`);
});

test('every one-character change to a checkpoint kept elsewhere is refused; the checkpoint itself passes', async (t) => {
  const s = await setup(t);
  const note = s.store.listCheckpoints()[1].note;
  const key = s.store.verifierKeys()[0].vkey; // the key that signed it, before the rotation
  assert.equal(s.check({ external: { file: 'kept', note, trustedKey: key } }).external.extended, true);
  for (let i = 0; i < note.length; i++) {
    const changed = note.slice(0, i) + (note[i] === 'A' ? 'B' : 'A') + note.slice(i + 1);
    const report = s.check({ external: { file: 'kept', note: changed, trustedKey: key } });
    assert.equal(report.external?.extended ?? false, false, `change at ${i} accepted`);
    assert.equal(report.ok, false, `change at ${i}`);
  }
});
