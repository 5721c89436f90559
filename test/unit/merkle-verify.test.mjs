// The standalone verifier (src/verify/merkle.ts) beyond the shared vectors:
// it stays free of Node APIs, uses the SHA-256 it is given, handles sizes
// past 2^53 as bigints, and names what is wrong with bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MerkleProofError, merkle } from '../../dist/verify/merkle.js';
import { nodeMerkle } from '../../dist/crypto/merkle.js';

const VERIFY_SRC = fileURLToPath(new URL('../../src/verify', import.meta.url));
const sha = (...parts) => createHash('sha256').update(Buffer.concat(parts)).digest();
const u8 = (b) => new Uint8Array(b);

const fails = (reason, re) => (e) => e instanceof MerkleProofError && e.reason === reason && re.test(e.message);

// The only code src/verify/ takes from outside: pure-JS SHA-256/SHA-512 and
// Ed25519, imported by primitives.ts alone (and inlined into dist/verify.html).
const NOBLE = new Set(['@noble/ed25519', '@noble/hashes/sha2']);

test('src/verify/ imports only its own files and, in primitives.ts, the two @noble modules; it uses no Node API (it must run in a browser)', () => {
  const files = readdirSync(VERIFY_SRC).filter((f) => f.endsWith('.ts'));
  assert.ok(files.includes('merkle.ts') && files.includes('primitives.ts'));
  const external = [];
  for (const f of files) {
    const text = readFileSync(join(VERIFY_SRC, f), 'utf8').replace(/\/\/.*$/gm, '');
    for (const m of text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]/gm)) {
      if (NOBLE.has(m[1])) {
        assert.equal(f, 'primitives.ts', `${f} imports ${m[1]}: only primitives.ts may`);
        external.push(m[1]);
        continue;
      }
      assert.match(m[1], /^\.\/[a-z0-9-]+\.js$/, `${f} imports ${m[1]}, which is not a file of src/verify/ nor ${[...NOBLE].join(' or ')}`);
      assert.ok(files.includes(m[1].slice(2, -3) + '.ts'), `${f} imports ${m[1]}, which is not in src/verify/`);
    }
    assert.doesNotMatch(text, /\bimport\s*\(/, `${f} imports a module at run time`);
    assert.doesNotMatch(text, /\b(require|Buffer|process|__dirname|globalThis)\b|node:/, `${f} uses a Node API`);
  }
  assert.deepEqual(external.sort(), [...NOBLE].sort());
  // Run-time dependencies of the package, so an install brings them.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  for (const name of ['@noble/ed25519', '@noble/hashes']) assert.ok(pkg.dependencies[name], `package.json dependencies lack ${name}`);
});

test('hashing is RFC 9162 2.1.1 over the SHA-256 passed in', () => {
  const leaf = Buffer.from('an event');
  assert.deepEqual(u8(nodeMerkle.leafHash(leaf)), u8(sha(Buffer.of(0), leaf)));
  const [l, r] = [sha(Buffer.from('l')), sha(Buffer.from('r'))];
  assert.deepEqual(u8(nodeMerkle.nodeHash(l, r)), u8(sha(Buffer.of(1), l, r)));
  assert.equal(Buffer.from(nodeMerkle.emptyRoot()).toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  // Another SHA-256 is used when given (here one that counts its calls).
  let calls = 0;
  const counted = merkle((...chunks) => {
    calls++;
    return sha(...chunks);
  });
  const root = counted.nodeHash(counted.leafHash(leaf), l);
  counted.verifyInclusion(0, 2, counted.leafHash(leaf), [l], root);
  assert.equal(calls, 4);
});

test('sizes past 2^53: bigints verify; a number that is not a safe integer is refused, not rounded', () => {
  const big = 2n ** 60n;
  const left = sha(Buffer.from('the first 2^60 leaves'));
  const last = nodeMerkle.leafHash(Buffer.from('leaf 2^60'));
  const root = nodeMerkle.nodeHash(left, last);
  nodeMerkle.verifyInclusion(big, big + 1n, last, [left], root);
  nodeMerkle.verifyConsistency(big, big + 1n, [last], left, root);
  assert.throws(() => nodeMerkle.verifyInclusion(big - 1n, big + 1n, last, [left], root), fails('wrong_proof_length', /has 1 hashes; it needs 61/));
  assert.throws(() => nodeMerkle.verifyInclusion(2 ** 60, 2 ** 60 + 1, last, [left], root), fails('bad_input', /leafIndex must be a non-negative safe integer \(or a bigint\)/));
  assert.throws(() => nodeMerkle.verifyInclusion(0n, 2n ** 64n, last, [left], root), fails('bad_input', /treeSize must be an integer from 0 to 2\^64-1/));
});

test('bad input is named: negative or fractional sizes, hashes that are not 32 bytes, a proof that is not an array', () => {
  const h = sha(Buffer.from('x'));
  assert.throws(() => nodeMerkle.verifyInclusion(-1, 2, h, [h], h), fails('bad_input', /leafIndex .* got -1/));
  assert.throws(() => nodeMerkle.verifyInclusion(0, 1.5, h, [], h), fails('bad_input', /treeSize .* got 1.5/));
  assert.throws(() => nodeMerkle.verifyInclusion(0, 2, h.subarray(1), [h], h), fails('bad_input', /leafHash must be a SHA-256 hash of 32 bytes, got 31/));
  assert.throws(() => nodeMerkle.verifyInclusion(0, 2, h, [Buffer.concat([h, h])], h), fails('bad_input', /proof\[0\] .* got 64 bytes/));
  assert.throws(() => nodeMerkle.verifyInclusion(0, 2, h, 'proof', h), fails('bad_input', /proof must be an array/));
  assert.throws(() => nodeMerkle.verifyInclusion(0, 2, h, [h], 'root'), fails('bad_input', /root must be a Uint8Array/));
  assert.throws(() => nodeMerkle.verifyConsistency(1, 3, [h, 'x'], h, h), fails('bad_input', /proof\[1\] must be a Uint8Array/));
});

test('proofs of the wrong length say how many hashes they need; an empty consistency proof fails (RFC 9162 2.1.4.2 step 1)', () => {
  const leaves = [0, 1, 2, 3, 4].map((i) => nodeMerkle.leafHash(Buffer.of(i)));
  const n = (a, b) => nodeMerkle.nodeHash(a, b);
  const root4 = n(n(leaves[0], leaves[1]), n(leaves[2], leaves[3]));
  const root5 = n(root4, leaves[4]);
  const proof = [leaves[3], n(leaves[0], leaves[1]), leaves[4]];
  nodeMerkle.verifyInclusion(2, 5, leaves[2], proof, root5);
  assert.throws(() => nodeMerkle.verifyInclusion(2, 5, leaves[2], proof.slice(0, 2), root5), fails('wrong_proof_length', /has 2 hashes; it needs 3/));
  assert.throws(() => nodeMerkle.verifyInclusion(2, 5, leaves[2], [...proof, leaves[0]], root5), fails('wrong_proof_length', /has 4 hashes; it needs 3/));
  // 3 -> 5: the proof is leaf 2, leaf 3, the pair (0,1), leaf 4.
  const root3 = n(n(leaves[0], leaves[1]), leaves[2]);
  const cproof = [leaves[2], leaves[3], n(leaves[0], leaves[1]), leaves[4]];
  nodeMerkle.verifyConsistency(3, 5, cproof, root3, root5);
  assert.throws(() => nodeMerkle.verifyConsistency(3, 5, [], root3, root5), fails('wrong_proof_length', /has 0 hashes; it needs 4/));
  assert.throws(() => nodeMerkle.verifyConsistency(3, 5, cproof.slice(1), root3, root5), fails('wrong_proof_length', /has 3 hashes; it needs 4/));
  assert.throws(() => nodeMerkle.verifyConsistency(4, 5, [], root4, root5), fails('wrong_proof_length', /has 0 hashes; it needs 1/));
  nodeMerkle.verifyConsistency(4, 5, [leaves[4]], root4, root5);
  assert.throws(() => nodeMerkle.verifyConsistency(5, 4, [leaves[4]], root5, root4), fails('sizes_out_of_order', /size1 \(5\) is above size2 \(4\)/));
});
