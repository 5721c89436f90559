// The tree recomputed from the events (src/ledger/tree-recompute.ts), which
// `latchgate verify` checks checkpoints against: at every stop its root, and
// between stops its consistency proof, are those of the stored tree
// (src/ledger/merkle-store.ts, itself checked against published vectors), for
// seeded random sizes; and the proofs verify (RFC 9162 2.1.4.2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Ledger } from '../../dist/ledger/ledger.js';
import { immediate } from '../../dist/ledger/db.js';
import { TreeRecompute, consistencyRanges } from '../../dist/ledger/tree-recompute.js';
import { nodeMerkle } from '../../dist/crypto/merkle.js';
import { prng, tempDir } from '../fixtures/unit/helpers.mjs';

const N = 300;

function ledgerOf(t, n) {
  const ledger = Ledger.open(join(tempDir(t), 'l.sqlite3'));
  t.after(() => ledger.db.close());
  immediate(ledger.db, () => {
    for (let i = 0; i < n; i++) ledger.appendInTransaction({ event_type: 'admin_drain', decision: 'allow', operator: { name: 'op' }, subject: { principal: 'op' }, details: { i } });
  });
  return ledger;
}

const events = (ledger) => ledger.db.prepare('SELECT event_json FROM audit_events ORDER BY id').pluck().all();

test('every stop gives the stored root, and the proof from the stop before is the stored consistency proof', (t) => {
  const ledger = ledgerOf(t, N);
  const rows = events(ledger);
  for (let seed = 1; seed <= 40; seed++) {
    const rnd = prng(seed);
    const sizes = [...new Set(Array.from({ length: 1 + rnd.below(8) }, () => rnd.below(N + 1)))].sort((a, b) => a - b);
    const tree = new TreeRecompute(sizes);
    for (const json of rows.slice(0, sizes.at(-1))) tree.push(json);
    const stops = tree.results();
    assert.deepEqual(stops.map((s) => s.size), sizes, `seed ${seed}`);
    stops.forEach((s, i) => {
      assert.deepEqual(Buffer.from(s.root), Buffer.from(ledger.merkle.merkleRoot(s.size)), `seed ${seed}: root at ${s.size}`);
      const from = sizes[i - 1];
      if (i === 0 || from === 0) return assert.equal(s.proofFromPrevious, undefined);
      const want = ledger.merkle.consistencyProof(from, s.size).map((h) => Buffer.from(h).toString('hex'));
      assert.deepEqual(s.proofFromPrevious.proof.map((h) => Buffer.from(h).toString('hex')), want, `seed ${seed}: proof ${from} -> ${s.size}`);
      nodeMerkle.verifyConsistency(from, s.size, s.proofFromPrevious.proof, stops[i - 1].root, s.root);
    });
  }
});

test('every pair of sizes up to 70: the proof verifies, and fails against another root', (t) => {
  const ledger = ledgerOf(t, 70);
  const rows = events(ledger);
  const other = nodeMerkle.leafHash(Buffer.from('not the root'));
  for (let m = 1; m <= 70; m++) {
    for (let n = m + 1; n <= 70; n++) {
      const tree = new TreeRecompute([m, n]);
      for (const json of rows.slice(0, n)) tree.push(json);
      const [a, b] = tree.results();
      nodeMerkle.verifyConsistency(m, n, b.proofFromPrevious.proof, a.root, b.root);
      assert.throws(() => nodeMerkle.verifyConsistency(m, n, b.proofFromPrevious.proof, other, b.root), (e) => e.reason === 'root_mismatch', `${m} -> ${n}`);
      assert.equal(consistencyRanges(m, n).length, b.proofFromPrevious.proof.length);
    }
  }
});

test('sizes must ascend; size 0 stops at the empty root', () => {
  assert.throws(() => new TreeRecompute([3, 3]), /ascending/);
  assert.throws(() => new TreeRecompute([4, 2]), /ascending/);
  const t = new TreeRecompute([0]);
  assert.deepEqual(Buffer.from(t.results()[0].root), Buffer.from(nodeMerkle.emptyRoot()));
});
