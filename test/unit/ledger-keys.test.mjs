// KeyStore: file modes, refusal of unsafe key files, kid format, rotation
// with an append-only history, sign/verify; grant signatures; and the shared
// Ed25519 vectors (Wycheproof, speccheck) through verifyEd25519.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chmodSync, existsSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { KeyStore, KeyStoreError, verifyEd25519, kidOf, rawPublicKey } from '../../dist/ledger/keys.js';
import { signGrant, verifyGrantSignature, grantSigningBytes } from '../../dist/ledger/verify.js';
import { canonicalize } from '../../dist/crypto/jcs.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const TESTDATA = fileURLToPath(new URL('../../../shared/testdata/ed25519/', import.meta.url));
const haveTestdata = existsSync(join(TESTDATA, 'SOURCE.md'));
const skipNoData = haveTestdata ? {} : { skip: 'shared testdata not present' };

const mode = (p) => statSync(p).mode & 0o777;

test('first use creates each kind of key with mode 0600 in a 0700 directory, plus its JWKS history', (t) => {
  const dir = join(tempDir(t), 'keys');
  const ks = new KeyStore(dir);
  for (const kind of ['grant', 'receipt']) {
    const k = ks.current(kind);
    assert.match(k.kid, /^[0-9a-f]{16}$/);
    assert.equal(k.kid, createHash('sha256').update(rawPublicKey(k.publicKey)).digest('hex').slice(0, 16));
    assert.equal(k.kid, kidOf(k.publicKey));
    assert.equal(k.privateKey.asymmetricKeyType, 'ed25519');
    assert.equal(mode(join(dir, `${kind}.key`)), 0o600);
    assert.match(readFileSync(join(dir, `${kind}.key`), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
    const jwks = JSON.parse(readFileSync(join(dir, `${kind}-keys.jwks`), 'utf8'));
    assert.equal(jwks.keys.length, 1);
    const [e] = jwks.keys;
    assert.deepEqual(Object.keys(e).sort(), ['alg', 'created_at', 'crv', 'kid', 'kty', 'use', 'x']);
    assert.equal(e.kid, k.kid);
    assert.equal(e.kty, 'OKP');
    assert.equal(e.crv, 'Ed25519');
    assert.equal(e.alg, 'EdDSA');
    assert.equal(e.use, 'sig');
    assert.equal(Buffer.from(e.x, 'base64url').length, 32);
    assert.deepEqual(createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: e.x }, format: 'jwk' }).export({ format: 'der', type: 'spki' }), k.publicKey.export({ format: 'der', type: 'spki' }));
  }
  assert.equal(mode(dir), 0o700);
  const kids = new Set(['grant', 'receipt'].map((k) => ks.current(k).kid));
  assert.equal(kids.size, 2, 'separate keys per purpose');
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp') || n.endsWith('.lock')), [], 'no temporary files left behind');
  // a second store over the same directory (a restart) loads the same keys
  const again = new KeyStore(dir);
  assert.equal(again.current('receipt').kid, ks.current('receipt').kid);
  assert.equal(JSON.parse(readFileSync(join(dir, 'receipt-keys.jwks'), 'utf8')).keys.length, 1);
});

test('a key file readable by group or others is refused, with the chmod fix in the message', (t) => {
  const dir = tempDir(t);
  new KeyStore(dir).current('grant');
  const path = join(dir, 'grant.key');
  for (const m of [0o644, 0o640, 0o604, 0o620]) {
    chmodSync(path, m);
    assert.throws(
      () => new KeyStore(dir).current('grant'),
      (e) => e instanceof KeyStoreError && e.message.includes(path) && e.message.includes(`mode ${m.toString(8).padStart(4, '0')}`) && e.message.includes(`Fix: chmod 600 ${path}`),
    );
  }
  chmodSync(path, 0o600);
  assert.match(new KeyStore(dir).current('grant').kid, /^[0-9a-f]{16}$/, 'the legitimate path still works after the fix');
  chmodSync(path, 0o400);
  assert.match(new KeyStore(dir).current('grant').kid, /^[0-9a-f]{16}$/, 'read-only for the owner is fine');
});

test('a symlinked, non-Ed25519 or garbage key file is refused', (t) => {
  const dir = tempDir(t);
  const elsewhere = new KeyStore(tempDir(t));
  elsewhere.current('grant'); // a valid 0600 key, reached through a symlink
  symlinkSync(elsewhere.keyPath('grant'), join(dir, 'grant.key'));
  assert.throws(() => new KeyStore(dir).current('grant'), /not a regular file/);
  writeFileSync(join(dir, 'receipt.key'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  assert.throws(() => new KeyStore(dir).current('receipt'), /not Ed25519/);
  rmSync(join(dir, 'grant.key'));
  writeFileSync(join(dir, 'grant.key'), 'garbage', { mode: 0o600 });
  assert.throws(() => new KeyStore(dir).current('grant'), /not a PKCS8 PEM private key/);
  assert.throws(() => new KeyStore(dir).current('lease'), /unknown key kind/);
});

test('sign/verify: right kid verifies; wrong kid, wrong kind, altered bytes or signature, and malformed input fail', (t) => {
  const ks = new KeyStore(tempDir(t));
  const msg = Buffer.from('result hash goes here');
  const { kid, signature } = ks.sign('receipt', msg);
  assert.match(signature, /^[0-9a-f]{128}$/);
  assert.equal(ks.verify('receipt', kid, msg, signature), true);
  assert.equal(ks.verify('receipt', ks.current('grant').kid, msg, signature), false, 'wrong kid');
  assert.equal(ks.verify('grant', kid, msg, signature), false, 'a receipt key is not a grant key');
  assert.equal(ks.verify('receipt', kid, Buffer.from('result hash goes hera'), signature), false);
  assert.equal(ks.verify('receipt', kid, msg, (signature[0] === '0' ? '1' : '0') + signature.slice(1)), false);
  assert.equal(ks.verify('receipt', '0000000000000000', msg, signature), false, 'unknown kid');
  assert.equal(ks.verify('receipt', kid, msg, signature.slice(2)), false, 'truncated');
  assert.equal(ks.verify('receipt', kid, msg, `${signature}00`), false, 'appended garbage');
  assert.equal(ks.verify('receipt', kid, msg, 'zz'.repeat(64)), false, 'not hex');
  assert.equal(ks.verify('receipt', kid, msg, undefined), false);
  assert.equal(ks.hasKey('receipt', kid), true);
  assert.equal(ks.hasKey('receipt', '0000000000000000'), false);
});

test('rotation: a new kid, the old one kept (retired_at) so its signatures still verify, also from another process', (t) => {
  const dir = tempDir(t);
  const ks = new KeyStore(dir);
  const msg = Buffer.from('old receipt');
  const old = ks.sign('receipt', msg);
  const grantKid = ks.current('grant').kid;
  const kid2 = ks.rotate('receipt');
  assert.notEqual(kid2, old.kid);
  assert.match(kid2, /^[0-9a-f]{16}$/);
  assert.equal(ks.current('receipt').kid, kid2);
  assert.equal(ks.current('grant').kid, grantKid, 'rotating one kind leaves the others alone');
  assert.equal(mode(join(dir, 'receipt.key')), 0o600);
  const kid3 = ks.rotate('receipt');
  const jwks = ks.jwks('receipt');
  assert.deepEqual(jwks.keys.map((k) => k.kid), [old.kid, kid2, kid3], 'append-only, in order');
  assert.ok(jwks.keys[0].retired_at && jwks.keys[1].retired_at && !jwks.keys[2].retired_at);
  assert.ok(jwks.keys[0].retired_at <= jwks.keys[1].retired_at);
  const fresh = new KeyStore(dir); // a restarted gate, or `latchgate verify`
  assert.equal(fresh.verify('receipt', old.kid, msg, old.signature), true);
  const now = fresh.sign('receipt', msg);
  assert.equal(now.kid, kid3);
  assert.equal(ks.verify('receipt', kid3, msg, now.signature), true);
  // a store that cached the history before the rotation still learns new kids
  const stale = new KeyStore(dir);
  stale.jwks('receipt');
  const kid4 = fresh.rotate('receipt');
  const sig4 = fresh.sign('receipt', msg);
  assert.equal(sig4.kid, kid4);
  assert.equal(stale.verify('receipt', kid4, msg, sig4.signature), true);
});

test('a key whose history entry was lost is put back into the history on load', (t) => {
  const dir = tempDir(t);
  const kid = new KeyStore(dir).current('grant').kid;
  writeFileSync(join(dir, 'grant-keys.jwks'), '{"keys":[]}\n');
  const ks = new KeyStore(dir);
  assert.equal(ks.current('grant').kid, kid);
  assert.deepEqual(ks.jwks('grant').keys.map((k) => k.kid), [kid]);
  writeFileSync(join(dir, 'grant-keys.jwks'), 'not json');
  assert.throws(() => new KeyStore(dir).current('grant'), /unreadable[\s\S]*Fix:/);
});

test('grant signatures: over the JCS of the grant without its signature fields; any change breaks them', (t) => {
  const ks = new KeyStore(tempDir(t));
  const grant = {
    grant_id: 'g-1',
    subject: { principal: 'agent', session_id: 's' },
    sender_binding: 'jkt',
    core: {
      action_id: 'http_fetch',
      action_version: '1.0.0',
      action_digest: 'sha256:aa',
      provider_module_digest: 'builtin:http_api',
      request_hash: 'sha256:bb',
      policy_version: 'p1',
      approved_targets: ['api.example.com'],
      approved_secrets: [],
      approved_egress: 'proxy_allowlist',
      expires_at: '2025-01-01T00:01:00.000Z',
    },
    budget_reservation: { calls_before: 10, calls_after: 9 },
    issued_at: '2025-01-01T00:00:00.000Z',
    revocation_epoch: 0,
  };
  const signed = signGrant(ks, grant);
  assert.equal(signed.grant_signing_key_id, ks.current('grant').kid);
  assert.match(signed.grant_signature, /^[0-9a-f]{128}$/);
  assert.equal('grant_signature' in grant, false, 'the input is not mutated');
  assert.deepEqual(grantSigningBytes(signed), Buffer.from(canonicalize(grant)));
  assert.equal(verifyGrantSignature(ks, signed), true);
  assert.equal(verifyGrantSignature(ks, { ...signed, core: { ...signed.core, approved_targets: ['evil.example.com'] } }), false);
  assert.equal(verifyGrantSignature(ks, { ...signed, approved_by: 'mallory' }), false);
  assert.equal(verifyGrantSignature(ks, { ...signed, budget_reservation: { calls_before: 10, calls_after: 10 } }), false);
  assert.equal(verifyGrantSignature(ks, grant), false, 'unsigned');
  assert.equal(verifyGrantSignature(ks, { ...signed, grant_signing_key_id: ks.current('receipt').kid }), false);
  // a receipt key cannot sign grants: same bytes signed with the receipt key fail as a grant
  const forged = ks.sign('receipt', grantSigningBytes(signed));
  assert.equal(verifyGrantSignature(ks, { ...signed, grant_signature: forged.signature, grant_signing_key_id: forged.kid }), false);
  // after rotation the old grant still verifies (history), new grants use the new kid
  ks.rotate('grant');
  assert.equal(verifyGrantSignature(ks, signed), true);
  assert.notEqual(signGrant(ks, grant).grant_signing_key_id, signed.grant_signing_key_id);
});

test('verifyEd25519: basic behaviour without a KeyStore', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = rawPublicKey(publicKey);
  const msg = Buffer.from('hello');
  const sig = sign(null, msg, privateKey);
  assert.equal(verifyEd25519(raw, msg, sig), true);
  assert.equal(verifyEd25519(raw, Buffer.from('hellO'), sig), false);
  assert.equal(verifyEd25519(raw.subarray(1), msg, sig), false);
  assert.equal(verifyEd25519(raw, msg, sig.subarray(1)), false);
  assert.equal(verifyEd25519(raw, msg, Buffer.concat([sig, Buffer.alloc(1)])), false);
});

test('Wycheproof Ed25519 vectors (all EddsaVerify groups): accepted iff result is "valid"', skipNoData, () => {
  const data = JSON.parse(readFileSync(join(TESTDATA, 'wycheproof', 'ed25519_test.json'), 'utf8'));
  assert.equal(data.algorithm, 'EDDSA');
  let n = 0;
  let valid = 0;
  for (const group of data.testGroups) {
    assert.equal(group.type, 'EddsaVerify');
    const pk = Buffer.from(group.publicKey.pk, 'hex');
    for (const tc of group.tests) {
      assert.ok(tc.result === 'valid' || tc.result === 'invalid', `tcId ${tc.tcId}: unexpected result ${tc.result}`);
      const got = verifyEd25519(pk, Buffer.from(tc.msg, 'hex'), Buffer.from(tc.sig, 'hex'));
      assert.equal(got, tc.result === 'valid', `tcId ${tc.tcId} (${tc.comment}; ${tc.flags.join(',')})`);
      n++;
      if (got) valid++;
    }
  }
  assert.equal(n, data.numberOfTests);
  assert.equal(n, 151);
  assert.equal(valid, 88);
});

test('ed25519-speccheck vectors: pinned policy = OpenSSL 3.0 (cofactorless, S >= L rejected, non-canonical R rejected)', skipNoData, () => {
  // Our keys come from our own key files and history, so small-order public
  // keys (vectors 0-3, 11) are not an attacker's choice; what must hold is
  // RFC 8032 §5.1.7's S < L (vectors 6, 7) and no malleable non-canonical R.
  const cases = JSON.parse(readFileSync(join(TESTDATA, 'speccheck', 'cases.json'), 'utf8'));
  assert.equal(cases.length, 12);
  const expected = 'V V V V X X X X X X X V'.split(' ').map((v) => v === 'V');
  const got = cases.map((c) => verifyEd25519(Buffer.from(c.pub_key, 'hex'), Buffer.from(c.message, 'hex'), Buffer.from(c.signature, 'hex')));
  assert.deepEqual(got, expected);
  assert.equal(got[6], false, 'S > L rejected');
  assert.equal(got[7], false, 'S >> L rejected');
});

test('four processes creating the keys of a fresh directory at once agree on one key and one history entry', async (t) => {
  const { spawn } = await import('node:child_process');
  const dir = join(tempDir(t), 'keys');
  const keysJs = fileURLToPath(new URL('../../dist/ledger/keys.js', import.meta.url));
  const startAt = Date.now() + 300;
  const script = `
    import { KeyStore } from ${JSON.stringify(keysJs)};
    const [dir, startAt] = process.argv.slice(1);
    while (Date.now() < Number(startAt)) {}
    process.stdout.write(new KeyStore(dir).current('receipt').kid);
  `;
  const run = () =>
    new Promise((resolve, reject) => {
      const p = spawn(process.execPath, ['--input-type=module', '-e', script, dir, String(startAt)]);
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(err))));
    });
  const kids = await Promise.all([run(), run(), run(), run()]);
  assert.equal(new Set(kids).size, 1, `kids: ${kids}`);
  const ks = new KeyStore(dir);
  assert.equal(ks.current('receipt').kid, kids[0]);
  assert.deepEqual(ks.jwks('receipt').keys.map((k) => k.kid), [kids[0]]);
  assert.deepEqual(readdirSync(dir).sort(), ['receipt-keys.jwks', 'receipt.key']);
});
