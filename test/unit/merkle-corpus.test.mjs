// The transparency-dev Merkle proof vectors (RFC 6962 / RFC 9162), read in
// place from the shared test data (LATCHGATE_TESTDATA overrides the folder):
// every inclusion and consistency probe must fail exactly when it says it
// should, with sizes passed as numbers and again as bigints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MerkleProofError } from '../../dist/verify/merkle.js';
import { nodeMerkle } from '../../dist/crypto/merkle.js';
import { testdata } from '../helpers/testdata.mjs';

const CORPUS = testdata('merkle', 'testdata');
const skip = existsSync(CORPUS) ? false : `Merkle corpus not present at ${CORPUS} (set LATCHGATE_TESTDATA to the shared testdata folder)`;

function* jsonFiles(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* jsonFiles(p);
    else if (name.endsWith('.json')) yield p;
  }
}

// Go's []byte in JSON: standard base64; null or "" is empty.
const b64 = (s) => new Uint8Array(Buffer.from(s ?? '', 'base64'));
// Sizes up to 2^64-1 (a wrapped 0-1 is among the probes): read from the text, not through a double.
const bigField = (text, name) => BigInt(new RegExp(`"${name}"\\s*:\\s*(\\d+)`).exec(text)[1]);
const asNumber = (v) => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);

function outcome(fn) {
  try {
    fn();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof MerkleProofError, `expected a MerkleProofError, got ${e}`);
    assert.ok(e.message.length > 10);
    return e.reason;
  }
}

function probes(kind) {
  const files = [...jsonFiles(join(CORPUS, kind))];
  return files.map((file) => {
    const text = readFileSync(file, 'utf8');
    return { file: file.slice(CORPUS.length + 1), text, p: JSON.parse(text) };
  });
}

test('inclusion probes: an error exactly when wantErr', { skip }, () => {
  const all = probes('inclusion');
  assert.equal(all.length, 98, 'SOURCE.md lists 98 inclusion probes');
  let passing = 0;
  for (const { file, text, p } of all) {
    const idx = bigField(text, 'leafIdx');
    const size = bigField(text, 'treeSize');
    const args = [b64(p.leafHash), (p.proof ?? []).map(b64), b64(p.root)];
    for (const [i, s] of [[asNumber(idx), asNumber(size)], [idx, size]]) {
      const got = outcome(() => nodeMerkle.verifyInclusion(i, s, ...args));
      assert.equal(got !== 'ok', p.wantErr, `${file} (${p.desc}): got ${got}`);
    }
    if (!p.wantErr) passing++;
  }
  assert.equal(passing, 6);
});

test('consistency probes: an error exactly when wantErr', { skip }, () => {
  const all = probes('consistency');
  assert.equal(all.length, 98, 'SOURCE.md lists 98 consistency probes');
  let passing = 0;
  for (const { file, text, p } of all) {
    const m = bigField(text, 'size1');
    const n = bigField(text, 'size2');
    const args = [(p.proof ?? []).map(b64), b64(p.root1), b64(p.root2)];
    for (const [a, b] of [[asNumber(m), asNumber(n)], [m, n]]) {
      const got = outcome(() => nodeMerkle.verifyConsistency(a, b, ...args));
      assert.equal(got !== 'ok', p.wantErr, `${file} (${p.desc}): got ${got}`);
    }
    if (!p.wantErr) passing++;
  }
  assert.equal(passing, 6);
});

test('happy paths: rootFromInclusionProof gives the probe root; a flipped bit in the leaf or any proof hash is a root mismatch', { skip }, () => {
  for (const { file, p } of probes('inclusion').filter((x) => x.file.endsWith('happy-path.json') && x.p.treeSize > 1)) {
    const proof = (p.proof ?? []).map(b64);
    const root = nodeMerkle.rootFromInclusionProof(p.leafIdx, p.treeSize, b64(p.leafHash), proof);
    assert.deepEqual(new Uint8Array(root), b64(p.root), file);
    const leaf = b64(p.leafHash);
    leaf[5] ^= 1;
    assert.equal(outcome(() => nodeMerkle.verifyInclusion(p.leafIdx, p.treeSize, leaf, proof, b64(p.root))), 'root_mismatch', file);
    for (let k = 0; k < proof.length; k++) {
      const bad = proof.map((h) => new Uint8Array(h));
      bad[k][31] ^= 0x80;
      assert.equal(outcome(() => nodeMerkle.verifyInclusion(p.leafIdx, p.treeSize, b64(p.leafHash), bad, b64(p.root))), 'root_mismatch', `${file} proof[${k}]`);
    }
  }
});
