// The Ed25519 verification of the standalone verifier (src/verify/primitives.ts,
// @noble/ed25519) against the shared corpora, read in place
// (LATCHGATE_TESTDATA overrides the folder), with its policy pinned: it must
// accept every valid Wycheproof signature and nothing OpenSSL (src/keys/) refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ed25519Verify, sha256 } from '../../dist/verify/primitives.js';
import { verifyEd25519 as opensslVerify } from '../../dist/keys/ed25519.js';
import { Point, utils } from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2';
import { testdata } from '../helpers/testdata.mjs';

const CORPUS = testdata('ed25519');
const skip = existsSync(join(CORPUS, 'SOURCE.md')) ? false : `Ed25519 corpus not present at ${CORPUS} (set LATCHGATE_TESTDATA to the shared testdata folder)`;
const hexBytes = (h) => new Uint8Array(Buffer.from(h, 'hex'));

test('Wycheproof Ed25519 (151 tests): accepted exactly when "valid"', { skip }, () => {
  const data = JSON.parse(readFileSync(join(CORPUS, 'wycheproof', 'ed25519_test.json'), 'utf8'));
  let n = 0;
  let valid = 0;
  for (const group of data.testGroups) {
    assert.equal(group.type, 'EddsaVerify');
    const pk = hexBytes(group.publicKey.pk);
    for (const tc of group.tests) {
      const got = ed25519Verify(pk, hexBytes(tc.msg), hexBytes(tc.sig));
      assert.equal(got, tc.result === 'valid', `tcId ${tc.tcId} (${tc.comment}; ${tc.flags.join(',')})`);
      n++;
      if (got) valid++;
    }
  }
  assert.equal(n, 151);
  assert.equal(valid, 88);
});

test('ed25519-speccheck (12 edge cases): pinned policy rejects all (small/mixed-order points, S >= L, non-canonical encodings), never accepting what OpenSSL refuses', { skip }, () => {
  // Keys and R must be canonical and in the prime-order subgroup; there the
  // cofactored and cofactorless equations agree, so this is a subset of the
  // OpenSSL policy (V V V V X X X X X X X V), and stricter on small-order keys.
  const cases = JSON.parse(readFileSync(join(CORPUS, 'speccheck', 'cases.json'), 'utf8'));
  assert.equal(cases.length, 12);
  const got = cases.map((c) => ed25519Verify(hexBytes(c.pub_key), hexBytes(c.message), hexBytes(c.signature)));
  assert.deepEqual(got.map((v) => (v ? 'V' : 'X')).join(' '), 'X X X X X X X X X X X X');
  cases.forEach((c, i) => {
    if (got[i]) assert.ok(opensslVerify(Buffer.from(c.pub_key, 'hex'), Buffer.from(c.message, 'hex'), Buffer.from(c.signature, 'hex')), `vector ${i}`);
  });
});

test('signatures made by node:crypto verify; a changed byte of key, message or signature does not; wrong lengths are false, not a throw', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
  for (let i = 0; i < 20; i++) {
    const msg = new Uint8Array(Buffer.from(`message ${i}`.repeat(i)));
    const sig = new Uint8Array(sign(null, msg, privateKey));
    assert.equal(ed25519Verify(raw, msg, sig), true);
    const flip = (b, at) => b.map((v, j) => (j === at ? v ^ 1 : v));
    assert.equal(ed25519Verify(flip(raw, i % 32), msg, sig), false);
    if (msg.length) assert.equal(ed25519Verify(raw, flip(msg, i % msg.length), sig), false);
    assert.equal(ed25519Verify(raw, msg, flip(sig, (i * 3) % 64)), false);
  }
  const sig = new Uint8Array(sign(null, Buffer.from('x'), privateKey));
  assert.equal(ed25519Verify(raw.subarray(1), Buffer.from('x'), sig), false);
  assert.equal(ed25519Verify(raw, Buffer.from('x'), sig.subarray(1)), false);
  assert.equal(ed25519Verify(raw, Buffer.from('x'), new Uint8Array(65)), false);
});

test('sha256 is SHA-256 of the chunks joined', () => {
  const parts = ['', 'a', 'bc', 'x'.repeat(1000)].map((s) => new Uint8Array(Buffer.from(s)));
  assert.equal(Buffer.from(sha256(...parts)).toString('hex'), createHash('sha256').update(Buffer.concat(parts)).digest('hex'));
  assert.equal(Buffer.from(sha256()).toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

test('a signature whose R has a small-order component (cofactored equation holds, cofactorless does not) is refused, as OpenSSL refuses it', () => {
  // Made with the private scalar: R' = rB + T with T of order 2, S = r + k'a where k' hashes R'.
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  const le = (b) => b.reduceRight((n, x) => (n << 8n) | BigInt(x), 0n);
  const toLe32 = (n) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
  const secret = new Uint8Array(32).fill(7);
  const { scalar: a, pointBytes: A } = utils.getExtendedPublicKey(secret);
  const T = Point.fromBytes(Uint8Array.from([0xec, ...new Array(30).fill(0xff), 0x7f])); // (0, -1): order 2
  assert.ok(T.multiply(2n).is0() && !T.is0());
  const msg = new Uint8Array(Buffer.from('pay 10'));
  const sigWith = (torsion) => {
    const r = 123456789n;
    const R = torsion ? Point.BASE.multiply(r).add(T) : Point.BASE.multiply(r);
    const k = le(sha512(new Uint8Array([...R.toBytes(), ...A, ...msg]))) % L;
    return new Uint8Array([...R.toBytes(), ...toLe32((r + k * a) % L)]);
  };
  assert.equal(ed25519Verify(A, msg, sigWith(false)), true, 'the same construction without T is a valid signature');
  assert.equal(opensslVerify(Buffer.from(A), msg, Buffer.from(sigWith(false))), true);
  const bad = sigWith(true);
  assert.equal(opensslVerify(Buffer.from(A), msg, Buffer.from(bad)), false, 'OpenSSL (cofactorless) refuses it');
  assert.equal(ed25519Verify(A, msg, bad), false);
});
