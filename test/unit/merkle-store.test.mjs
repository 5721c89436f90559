// The ledger's Merkle tree (src/ledger/merkle-store.ts) on real SQLite files:
// roots against a naive recomputation over the stored event bytes, every
// proof the store gives checked by the standalone verifier, the tree built
// once for a ledger from before it, and edits of the events caught by proofs
// against roots taken before them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ledger } from '../../dist/ledger/ledger.js';
import { immediate, openDb } from '../../dist/ledger/db.js';
import { MerkleStoreError, leafPos, nodePos } from '../../dist/ledger/merkle-store.js';
import { MerkleProofError } from '../../dist/verify/merkle.js';
import { nodeMerkle } from '../../dist/crypto/merkle.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { copyStateV1, prng, tempDir } from '../fixtures/unit/helpers.mjs';

const LEDGER_JS = fileURLToPath(new URL('../../dist/ledger/ledger.js', import.meta.url));

// The tree written out from RFC 9162 2.1.1 with node:crypto, independent of the code under test.
const sha = (...parts) => createHash('sha256').update(Buffer.concat(parts)).digest();
const naiveLeaf = (bytes) => sha(Buffer.of(0), bytes);
function naiveRoot(leafHashes) {
  const n = leafHashes.length;
  if (n === 0) return sha();
  if (n === 1) return leafHashes[0];
  let k = 1;
  while (k * 2 < n) k *= 2;
  return sha(Buffer.of(1), naiveRoot(leafHashes.slice(0, k)), naiveRoot(leafHashes.slice(k)));
}

const storedLeafHashes = (ledger) => ledger.db.prepare('SELECT event_json FROM audit_events ORDER BY id').pluck().all().map((j) => naiveLeaf(Buffer.from(j, 'utf8')));

const ev = (i) => ({ event_type: 'admin_drain', decision: 'allow', subject: { principal: 'root' }, operator: { name: 'root', uid: 0 }, details: { n: i } });

function fresh(t, name = 'ledger.db') {
  const dir = tempDir(t, 'latchgate-merkle-');
  const path = join(dir, name);
  const ledger = Ledger.open(path);
  t.after(() => ledger.db.open && ledger.db.close());
  return { dir, path, ledger };
}

/** n real appends, `batch` per transaction (the gate's several events per call). */
function appendMany(ledger, n, batch = 50, from = ledger.count()) {
  for (let i = 0; i < n; i += batch) {
    immediate(ledger.db, () => {
      for (let j = i; j < Math.min(n, i + batch); j++) ledger.appendInTransaction(ev(from + j));
    });
  }
}

function reopen(t, path) {
  const ledger = Ledger.open(path);
  t.after(() => ledger.db.open && ledger.db.close());
  return ledger;
}

const reasonOf = (fn) => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (!(e instanceof MerkleProofError)) throw e;
    return e.reason;
  }
};

test('post-order positions: each leaf, then the nodes it completes, numbered in the order appends write them', () => {
  // Leaves 0..3: 0 1 (1,0) 3 4 (1,1) (2,0); then leaf 4 at 7.
  assert.deepEqual([leafPos(0), leafPos(1), nodePos(1, 0), leafPos(2), leafPos(3), nodePos(1, 1), nodePos(2, 0), leafPos(4)], [0, 1, 2, 3, 4, 5, 6, 7]);
  // Past 32 bits (JS bit operators would wrap): leaf 2^40 has 2^41 - 1 nodes before it.
  assert.equal(leafPos(2 ** 40), 2 ** 41 - 1);
  assert.equal(nodePos(40, 0), 2 ** 41 - 2);
});

test('property (seeded): roots equal a naive recomputation; every proof the store gives verifies, and fails against another root', (t) => {
  const { ledger } = fresh(t);
  const r = prng(0x5eed_4d1);
  assert.equal(ledger.merkle.treeSize(), 0);
  assert.deepEqual(ledger.merkle.merkleRoot(), sha());
  // Grow to ~3000 in random steps, recording each root as it was then.
  const seen = new Map([[0, ledger.merkle.merkleRoot()]]);
  while (ledger.count() < 3000) {
    appendMany(ledger, 1 + r.below(200), 1 + r.below(8));
    const head = ledger.merkle.head();
    assert.equal(head.size, ledger.count());
    seen.set(head.size, head.root);
  }
  const n = ledger.merkle.treeSize();
  const leaves = storedLeafHashes(ledger);
  assert.equal(leaves.length, n);
  // Historic roots are unchanged by later appends, and are the naive roots.
  for (const [size, root] of seen) {
    assert.deepEqual(ledger.merkle.merkleRoot(size), root, `root(${size})`);
    assert.deepEqual(root, naiveRoot(leaves.slice(0, size)), `naive root(${size})`);
  }
  const sizes = [1, 2, 3, 4, 5, 7, 8, 9, 1023, 1024, 1025, n, ...Array.from({ length: 25 }, () => 1 + r.below(n))];
  const rootOf = new Map(sizes.map((s) => [s, ledger.merkle.merkleRoot(s)]));
  for (const s of sizes) assert.deepEqual(rootOf.get(s), naiveRoot(leaves.slice(0, s)), `root(${s})`);
  // Every leaf of some sizes; random leaves of the others.
  for (const s of sizes) {
    const indices = s <= 1025 || s === n ? [...Array(s).keys()] : Array.from({ length: 30 }, () => r.below(s));
    for (const i of indices) {
      const proof = ledger.merkle.inclusionProof(i, s);
      nodeMerkle.verifyInclusion(i, s, leaves[i], proof, rootOf.get(s));
      assert.deepEqual(ledger.merkle.leaf(i).hash, leaves[i]);
    }
  }
  // A proof does not verify for another leaf, another index or another size.
  const proof = ledger.merkle.inclusionProof(700, 1025);
  assert.equal(reasonOf(() => nodeMerkle.verifyInclusion(700, 1025, leaves[701], proof, rootOf.get(1025))), 'root_mismatch');
  assert.equal(reasonOf(() => nodeMerkle.verifyInclusion(701, 1025, leaves[700], proof, rootOf.get(1025))), 'root_mismatch');
  assert.notEqual(reasonOf(() => nodeMerkle.verifyInclusion(700, 1024, leaves[700], proof, rootOf.get(1024))), 'ok');
  // Consistency between random pairs, both ways round.
  for (let k = 0; k < 300; k++) {
    const a = 1 + r.below(n);
    const b = 1 + r.below(n);
    const [m, s] = a <= b ? [a, b] : [b, a];
    const cp = ledger.merkle.consistencyProof(m, s);
    const [rm, rs] = [ledger.merkle.merkleRoot(m), ledger.merkle.merkleRoot(s)];
    nodeMerkle.verifyConsistency(m, s, cp, rm, rs);
    if (m < s) {
      assert.equal(reasonOf(() => nodeMerkle.verifyConsistency(m, s, cp, rs, rm)), 'root_mismatch');
      assert.equal(reasonOf(() => nodeMerkle.verifyConsistency(m, s, cp, ledger.merkle.merkleRoot(m === 1 ? 2 : m - 1), rs)), 'root_mismatch');
    }
  }
});

test('an append rolled back leaves the tree as it was; the next append grows it from there', (t) => {
  const { ledger } = fresh(t);
  appendMany(ledger, 5);
  const before = ledger.merkle.head();
  assert.throws(() =>
    immediate(ledger.db, () => {
      ledger.appendInTransaction(ev(100));
      ledger.appendInTransaction(ev(101));
      throw new Error('the receipt could not be stored');
    }),
  );
  assert.deepEqual(ledger.merkle.head(), before);
  ledger.append(ev(102));
  assert.equal(ledger.merkle.treeSize(), 6);
  assert.deepEqual(ledger.merkle.merkleRoot(), naiveRoot(storedLeafHashes(ledger)));
});

test('a ledger from before the tree: built once at open (in chunks of 10000 events), to the root the appends gave', (t) => {
  const { path, ledger } = fresh(t);
  appendMany(ledger, 23_456, 2000);
  const head = ledger.merkle.head();
  // The ledger as an older latchgate left it: no tree, no tree state.
  ledger.db.exec(`DROP TABLE merkle_nodes; DELETE FROM ledger_metadata WHERE key = 'merkle_tree'`);
  ledger.db.close();
  const again = reopen(t, path);
  assert.deepEqual(again.merkle.head(), head);
  assert.equal(again.db.prepare('SELECT count(*) FROM merkle_nodes').pluck().get(), 2 * 23_456 - 7); // popcount(23456) = 7
  // Opened again: nothing more to build.
  assert.equal(again.merkle.catchUp(), 0);
  again.append(ev(-1));
  assert.deepEqual(again.merkle.merkleRoot(), naiveRoot(storedLeafHashes(again)));
  nodeMerkle.verifyConsistency(head.size, head.size + 1, again.merkle.consistencyProof(head.size, head.size + 1), head.root, again.merkle.merkleRoot());
});

test('the ledger an older latchgate wrote (test/fixtures/state-v1): the tree is built at open, its chain still verifies, appends go on', (t) => {
  const dir = copyStateV1(tempDir(t));
  const ledger = reopen(t, join(dir, 'ledger.sqlite3'));
  const leaves = storedLeafHashes(ledger);
  assert.equal(leaves.length, 8);
  assert.equal(ledger.merkle.treeSize(), 8);
  assert.deepEqual(ledger.merkle.merkleRoot(), naiveRoot(leaves));
  ledger.append(ev(8));
  assert.deepEqual(ledger.merkle.merkleRoot(), naiveRoot(storedLeafHashes(ledger)));
  const report = verifyLedger(ledger.db, new KeyStore(join(dir, 'keys')));
  assert.equal(report.intact, true, JSON.stringify(report.first_bad));
  assert.equal(report.total_events, 9);
});

test('events an older latchgate appended without the tree are folded in, in id order, before the next leaf', (t) => {
  const { ledger } = fresh(t);
  appendMany(ledger, 10);
  // Two rows written as an older writer would: the event's columns, no tree.
  const last = ledger.db.prepare('SELECT * FROM audit_events ORDER BY id DESC LIMIT 1').get();
  const raw = ledger.db.prepare('INSERT INTO audit_events(trace_id, timestamp, event_type, principal, event_json, hash) VALUES (?, ?, ?, ?, ?, ?)');
  for (const k of [1, 2]) raw.run(`old-${k}`, last.timestamp, last.event_type, last.principal, last.event_json.replace(last.trace_id, `old-${k}`), 'sha256:00');
  assert.equal(ledger.merkle.treeSize(), 10);
  ledger.append(ev(11));
  assert.equal(ledger.merkle.treeSize(), 13);
  assert.deepEqual(ledger.merkle.merkleRoot(), naiveRoot(storedLeafHashes(ledger)));
  assert.deepEqual([10, 11, 12].map((i) => ledger.merkle.leaf(i).eventId), [11, 12, 13]);
});

test('two processes appending to one file at once: one tree holding every event, in id order', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'shared.db');
  Ledger.open(path).db.close();
  const startAt = Date.now() + 400;
  const script = `
    import { Ledger } from ${JSON.stringify(LEDGER_JS)};
    const [path, who, startAt] = process.argv.slice(1);
    const ledger = Ledger.open(path);
    while (Date.now() < Number(startAt)) {}
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 150; i++) {
      ledger.append({ event_type: 'admin_drain', decision: 'allow', subject: { principal: who }, operator: { name: who, uid: 0 }, details: { i } });
      Atomics.wait(pause, 0, 0, 1);
    }
    ledger.db.close();
  `;
  const run = (who) =>
    new Promise((resolve, reject) => {
      const p = spawn(process.execPath, ['--input-type=module', '-e', script, path, who, String(startAt)], { stdio: ['ignore', 'inherit', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d) => (err += d));
      p.on('error', reject);
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child ${who} exited ${code}: ${err}`))));
    });
  await Promise.all([run('A'), run('B')]);
  const ledger = reopen(t, path);
  assert.equal(ledger.merkle.treeSize(), 300);
  assert.deepEqual(ledger.merkle.merkleRoot(), naiveRoot(storedLeafHashes(ledger)));
  const ids = ledger.db.prepare('SELECT id FROM audit_events ORDER BY id').pluck().all();
  assert.deepEqual(ids.map((_, i) => ledger.merkle.leaf(i).eventId), ids);
});

test('tampering: an event edited in SQLite, tree left alone: its bytes no longer prove against a root taken before; the others still do', (t) => {
  const { ledger } = fresh(t);
  appendMany(ledger, 300);
  const checkpoint = ledger.merkle.head();
  const row = ledger.db.prepare('SELECT id, event_json FROM audit_events WHERE id = 150').get();
  const edited = row.event_json.replace('"n":149', '"n":9149');
  assert.notEqual(edited, row.event_json);
  ledger.db.prepare('UPDATE audit_events SET event_json = ? WHERE id = 150').run(edited);
  const proof = ledger.merkle.inclusionProof(149, checkpoint.size);
  assert.equal(reasonOf(() => nodeMerkle.verifyInclusion(149, checkpoint.size, naiveLeaf(Buffer.from(edited)), proof, checkpoint.root)), 'root_mismatch');
  // The untouched neighbour still proves, as does the original.
  const next = ledger.db.prepare('SELECT event_json FROM audit_events WHERE id = 151').pluck().get();
  nodeMerkle.verifyInclusion(150, checkpoint.size, naiveLeaf(Buffer.from(next)), ledger.merkle.inclusionProof(150, checkpoint.size), checkpoint.root);
  nodeMerkle.verifyInclusion(149, checkpoint.size, naiveLeaf(Buffer.from(row.event_json)), proof, checkpoint.root);
});

test('tampering: an event edited and the tree rebuilt from the edited events: no proof links the new root to one taken before', (t) => {
  const { path, ledger } = fresh(t);
  appendMany(ledger, 200);
  const early = ledger.merkle.head(); // a root published at 200
  appendMany(ledger, 100);
  const checkpoint = ledger.merkle.head(); // and one at 300
  nodeMerkle.verifyConsistency(early.size, checkpoint.size, ledger.merkle.consistencyProof(early.size, checkpoint.size), early.root, checkpoint.root);
  const row = ledger.db.prepare('SELECT event_json FROM audit_events WHERE id = 150').get();
  const edited = row.event_json.replace('"n":149', '"n":9149');
  ledger.db.prepare('UPDATE audit_events SET event_json = ? WHERE id = 150').run(edited);
  ledger.db.exec(`DROP TABLE merkle_nodes; DELETE FROM ledger_metadata WHERE key = 'merkle_tree'`);
  ledger.db.close();
  const rebuilt = reopen(t, path);
  const now = rebuilt.merkle.head();
  assert.equal(now.size, 300);
  assert.notDeepEqual(now.root, checkpoint.root);
  // The edited event proves against the new root only.
  const leaf = naiveLeaf(Buffer.from(edited));
  const proof = rebuilt.merkle.inclusionProof(149, 300);
  nodeMerkle.verifyInclusion(149, 300, leaf, proof, now.root);
  assert.equal(reasonOf(() => nodeMerkle.verifyInclusion(149, 300, leaf, proof, checkpoint.root)), 'root_mismatch');
  // The earlier published root does not extend to the new one, nor does the same-size one equal it.
  assert.equal(reasonOf(() => nodeMerkle.verifyConsistency(early.size, 300, rebuilt.merkle.consistencyProof(early.size, 300), early.root, now.root)), 'root_mismatch');
  assert.equal(reasonOf(() => nodeMerkle.verifyConsistency(300, 300, [], checkpoint.root, now.root)), 'root_mismatch');
});

test('tampering: the newest events deleted and the tree rebuilt: the tree is smaller than a size published before', (t) => {
  const { path, ledger } = fresh(t);
  appendMany(ledger, 120);
  const checkpoint = ledger.merkle.head();
  ledger.db.exec(`DELETE FROM audit_events WHERE id > 110; DROP TABLE merkle_nodes; DELETE FROM ledger_metadata WHERE key = 'merkle_tree'`);
  ledger.db.close();
  const rebuilt = reopen(t, path);
  assert.equal(rebuilt.merkle.treeSize(), 110);
  assert.throws(() => rebuilt.merkle.consistencyProof(110, checkpoint.size), (e) => e instanceof MerkleStoreError && e.code === 'bad_tree_size');
  assert.equal(reasonOf(() => nodeMerkle.verifyConsistency(checkpoint.size, 110, [], checkpoint.root, rebuilt.merkle.merkleRoot())), 'sizes_out_of_order');
});

test('a damaged tree is refused at open with the fix; the tree state must match its nodes', (t) => {
  const { path, ledger } = fresh(t);
  appendMany(ledger, 40);
  const setState = (value) => {
    const db = openDb(path);
    db.prepare(`UPDATE ledger_metadata SET value = ? WHERE key = 'merkle_tree'`).run(value);
    db.close();
  };
  ledger.db.close();
  const damaged = (re) => (e) => e instanceof MerkleStoreError && e.code === 'merkle_damaged' && re.test(e.message) && /Fix: restore the state directory/.test(e.message);
  setState('{"size":39,"last_event_id":40}');
  assert.throws(() => Ledger.open(path), damaged(/its size is 39, so the last node should be at position 73, but it is at 77/));
  setState('{"size":40}');
  assert.throws(() => Ledger.open(path), damaged(/merkle_tree is "\{\\"size\\":40\}", expected/));
  setState('40');
  assert.throws(() => Ledger.open(path), damaged(/expected \{"size":N,"last_event_id":N\}/));
  setState('{"size":40,"last_event_id":40}');
  const ok = reopen(t, path);
  assert.equal(ok.merkle.treeSize(), 40);
  // A node deleted (leaves 32..39, the root's right part): what needs it fails loudly, the rest is still given.
  ok.db.prepare('DELETE FROM merkle_nodes WHERE pos = ?').run(nodePos(3, 4));
  assert.throws(() => ok.merkle.merkleRoot(), damaged(new RegExp(`no node at position ${nodePos(3, 4)}`)));
  assert.throws(() => ok.merkle.inclusionProof(20, 40), damaged(/no node/));
  nodeMerkle.verifyInclusion(3, 8, ok.merkle.leaf(3).hash, ok.merkle.inclusionProof(3, 8), naiveRoot(storedLeafHashes(ok).slice(0, 8)));
});

test('an append whose event id is not after the tree is refused, and nothing is written', (t) => {
  const { ledger } = fresh(t);
  appendMany(ledger, 10);
  const head = ledger.merkle.head();
  // The last two events deleted and the id counter wound back: the next event would get id 9, below the tree's last (10).
  ledger.db.exec(`DELETE FROM audit_events WHERE id > 8; UPDATE sqlite_sequence SET seq = 8 WHERE name = 'audit_events'`);
  assert.throws(() => ledger.append(ev(99)), (e) => e instanceof MerkleStoreError && e.code === 'merkle_out_of_order' && /event id 9 is not after .* \(id 10\)/.test(e.message));
  assert.equal(ledger.count(), 8);
  assert.deepEqual(ledger.merkle.head(), head);
});

test('bad sizes and indices are refused with the range expected', (t) => {
  const { ledger } = fresh(t);
  appendMany(ledger, 10);
  const bad = (code, re) => (e) => e instanceof MerkleStoreError && e.code === code && re.test(e.message);
  assert.throws(() => ledger.merkle.inclusionProof(10, 10), bad('bad_leaf_index', /from 0 to 9/));
  assert.throws(() => ledger.merkle.inclusionProof(-1, 10), bad('bad_leaf_index', /got -1/));
  assert.throws(() => ledger.merkle.inclusionProof(0, 11), bad('bad_tree_size', /from 1 to the tree's size \(10\), got 11/));
  assert.throws(() => ledger.merkle.inclusionProof(0, 0), bad('bad_tree_size', /got 0/));
  assert.throws(() => ledger.merkle.inclusionProof(1.5, 4), bad('bad_leaf_index', /got 1.5/));
  assert.throws(() => ledger.merkle.consistencyProof(0, 10), bad('bad_tree_size', /size1 must be an integer from 1/));
  assert.throws(() => ledger.merkle.consistencyProof(5, 4), bad('bad_tree_size', /size1 \(5\) is above size2 \(4\)/));
  assert.throws(() => ledger.merkle.merkleRoot(11), bad('bad_tree_size', /got 11/));
  assert.throws(() => ledger.merkle.leaf(10), bad('bad_leaf_index', /got 10/));
  // The legitimate edges; a Ledger not yet migrated migrates first, as for its other reads.
  assert.deepEqual(ledger.merkle.merkleRoot(0), sha());
  assert.deepEqual(new Ledger(openDb(':memory:')).merkle.head(), { size: 0, root: sha() });
  assert.deepEqual(ledger.merkle.consistencyProof(10, 10), []);
  assert.deepEqual(ledger.merkle.inclusionProof(0, 1), []);
});
