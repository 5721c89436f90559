// The key store (src/keys/) for every kind: file modes, the file rules
// (symlinks, modes, owners, the directory), kid = RFC 7638 thumbprint,
// rotation with an append-only history, sign/verify, the lock, grant
// signatures; and the shared Ed25519 vectors (Wycheproof, speccheck)
// through verifyEd25519, which the store's verify() uses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chmodSync, chownSync, existsSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { calculateJwkThumbprint } from 'jose';
import { KeyStore, latestTime } from '../../dist/keys/store.js';
import { KeyStoreError, jwkThumbprint, rawPublicKey, verifyEd25519 } from '../../dist/keys/ed25519.js';
import { KEY_KINDS } from '../../dist/keys/history.js';
import { signGrant, verifyGrantSignature, grantSigningBytes } from '../../dist/gate/grant.js';
import { canonicalize } from '../../dist/crypto/jcs.js';
import { isRoot, runNode, tempDir } from '../fixtures/unit/helpers.mjs';
import { testdata } from '../helpers/testdata.mjs';

const TESTDATA = testdata('ed25519');
const skipNoData = existsSync(join(TESTDATA, 'SOURCE.md')) ? {} : { skip: `no Ed25519 corpus at ${TESTDATA}` };
const rootOnly = isRoot ? {} : { skip: 'giving a file to another uid needs root' };

const mode = (p) => statSync(p).mode & 0o777;
const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;
const refused = (pattern) => (e) => e instanceof KeyStoreError && pattern.test(e.message);

test('first use creates the key of each kind (0600, in a 0700 directory) and its history; a restart loads the same key', async (t) => {
  const dir = join(tempDir(t), 'keys');
  const ks = new KeyStore(dir);
  assert.deepEqual(KEY_KINDS, ['lease', 'grant', 'receipt', 'checkpoint']);
  for (const kind of KEY_KINDS) {
    const k = ks.current(kind);
    assert.match(k.kid, THUMBPRINT);
    assert.equal(k.privateKey.asymmetricKeyType, 'ed25519');
    assert.equal(mode(join(dir, `${kind}.key`)), 0o600);
    assert.match(readFileSync(join(dir, `${kind}.key`), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
    const jwks = JSON.parse(readFileSync(join(dir, `${kind}-keys.jwks`), 'utf8'));
    assert.equal(jwks.keys.length, 1);
    const [e] = jwks.keys;
    assert.deepEqual(Object.keys(e), ['kty', 'crv', 'x', 'kid', 'use', 'alg', 'created_at', 'endorsement']);
    assert.equal(e.endorsement.by, k.kid, 'the first key is the root of the chain: endorsed by itself');
    assert.equal(ks.chain(kind).root, k.kid);
    assert.deepEqual([e.kty, e.crv, e.use, e.alg, e.kid], ['OKP', 'Ed25519', 'sig', 'EdDSA', k.kid]);
    assert.equal(Buffer.from(e.x, 'base64url').toString('hex'), rawPublicKey(k.publicKey).toString('hex'));
    assert.equal(k.kid, await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: e.x }, 'sha256'), 'kid = RFC 7638 thumbprint');
    assert.ok(Date.parse(e.created_at) <= Date.now());
  }
  assert.equal(mode(dir), 0o700);
  assert.equal(new Set(KEY_KINDS.map((k) => ks.current(k).kid)).size, KEY_KINDS.length, 'one key per kind');
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp') || n.endsWith('.lock')), [], 'no temporary or lock files left behind');
  const again = new KeyStore(dir);
  for (const kind of KEY_KINDS) assert.equal(again.current(kind).kid, ks.current(kind).kid);
  assert.equal(JSON.parse(readFileSync(join(dir, 'receipt-keys.jwks'), 'utf8')).keys.length, 1);
});

test('kid: the RFC 8037 appendix A.3 thumbprint example, and agreement with jose for fresh keys', async () => {
  assert.equal(jwkThumbprint(Buffer.from('11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', 'base64url')), 'kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k');
  for (let i = 0; i < 20; i++) {
    const { publicKey } = generateKeyPairSync('ed25519');
    assert.equal(jwkThumbprint(publicKey), await calculateJwkThumbprint(publicKey.export({ format: 'jwk' }), 'sha256'));
  }
});

test('a key file readable or writable by group or others is refused with the chmod fix, also by a store that already loaded it', (t) => {
  const dir = tempDir(t);
  const loaded = new KeyStore(dir);
  loaded.current('grant');
  const path = join(dir, 'grant.key');
  for (const m of [0o644, 0o640, 0o604, 0o620, 0o602]) {
    chmodSync(path, m);
    for (const ks of [new KeyStore(dir), loaded]) {
      assert.throws(() => ks.current('grant'), (e) => refused(/readable or writable by group or others/)(e) && e.message.includes(`mode ${m.toString(8).padStart(4, '0')}`) && e.message.includes(`Fix: chmod 600 ${path}`));
    }
  }
  chmodSync(path, 0o600);
  assert.match(new KeyStore(dir).current('grant').kid, THUMBPRINT, 'the fix works');
  chmodSync(path, 0o400);
  assert.match(new KeyStore(dir).current('grant').kid, THUMBPRINT, 'read-only for the owner is fine');
});

test('a history or key directory others can write is refused with the fix', (t) => {
  const dir = tempDir(t);
  new KeyStore(dir).current('receipt');
  const history = join(dir, 'receipt-keys.jwks');
  chmodSync(history, 0o664);
  // Verifying (publicKey, verify, jwks) refuses them as signing does.
  for (const use of [(ks) => ks.current('receipt'), (ks) => ks.publicKey('receipt', 'x'), (ks) => ks.jwks('receipt')]) {
    assert.throws(() => use(new KeyStore(dir)), (e) => refused(/writable by group or others/)(e) && e.message.includes(`Fix: chmod 644 ${history}`));
  }
  chmodSync(history, 0o644);
  chmodSync(dir, 0o777);
  for (const use of [(ks) => ks.current('receipt'), (ks) => ks.verify('receipt', 'x', Buffer.alloc(1), '0'.repeat(128)), (ks) => ks.jwks('receipt')]) {
    assert.throws(() => use(new KeyStore(dir)), (e) => refused(/key directory .* writable by group or others/)(e) && e.message.includes(`Fix: chmod 700 ${dir}`));
  }
  chmodSync(dir, 0o755);
  assert.match(new KeyStore(dir).current('receipt').kid, THUMBPRINT);
});

test('a key file, history or key directory owned by another user is refused, root included, with the chown fix', rootOnly, (t) => {
  const dir = join(tempDir(t), 'keys');
  new KeyStore(dir).current('checkpoint');
  for (const path of [join(dir, 'checkpoint.key'), join(dir, 'checkpoint-keys.jwks'), dir]) {
    chownSync(path, 4321, 4321);
    assert.throws(() => new KeyStore(dir).current('checkpoint'), (e) => refused(/owned by uid 4321, not by this user \(uid 0\)/)(e) && e.message.includes(`Fix: chown 0 ${path}`), path);
    if (path !== join(dir, 'checkpoint.key')) {
      assert.throws(() => new KeyStore(dir).publicKey('checkpoint', 'x'), (e) => refused(/owned by uid 4321/)(e) && e.message.includes(`Fix: chown 0 ${path}`), `reading ${path}`);
    }
    chownSync(path, 0, 0);
  }
  assert.match(new KeyStore(dir).current('checkpoint').kid, THUMBPRINT);
});

test('symlinks (key file, history, key directory), non-Ed25519 and garbage key files, private parts in a history, and unknown kinds are refused', (t) => {
  const base = tempDir(t);
  const elsewhere = new KeyStore(join(base, 'elsewhere'));
  elsewhere.current('grant'); // a valid 0600 key, reached through a symlink
  elsewhere.current('receipt');
  const dir = join(base, 'keys');
  new KeyStore(dir).current('receipt');
  symlinkSync(elsewhere.keyPath('grant'), join(dir, 'grant.key'));
  assert.throws(() => new KeyStore(dir).current('grant'), refused(/grant\.key is a symlink; refusing to follow it\. Fix:/));
  rmSync(join(dir, 'receipt-keys.jwks'));
  symlinkSync(elsewhere.jwksPath('receipt'), join(dir, 'receipt-keys.jwks'));
  assert.throws(() => new KeyStore(dir).current('receipt'), refused(/receipt-keys\.jwks is a symlink/));
  assert.throws(() => new KeyStore(dir).publicKey('receipt', 'x'), refused(/receipt-keys\.jwks is a symlink/), 'reading too');
  symlinkSync(join(base, 'elsewhere'), join(base, 'linked'));
  assert.throws(() => new KeyStore(join(base, 'linked')).current('grant'), refused(/not a directory \(a symlink or a file\)/));
  assert.throws(() => new KeyStore(join(base, 'linked')).jwks('grant'), refused(/not a directory \(a symlink or a file\)/), 'reading too');

  const other = tempDir(t);
  writeFileSync(join(other, 'receipt.key'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  assert.throws(() => new KeyStore(other).current('receipt'), refused(/not Ed25519\. Fix:/));
  writeFileSync(join(other, 'grant.key'), 'garbage', { mode: 0o600 });
  assert.throws(() => new KeyStore(other).current('grant'), refused(/not a PKCS8 PEM private key[\s\S]*Fix:/));
  writeFileSync(join(other, 'lease-keys.jwks'), JSON.stringify({ keys: [{ ...elsewhere.jwks('grant').keys[0], d: 'c2VjcmV0' }] }));
  assert.throws(() => new KeyStore(other).current('lease'), refused(/holds private key material/));
  assert.throws(() => new KeyStore(other).current('signing'), refused(/unknown key kind "signing"; expected one of lease, grant, receipt, checkpoint/));
  assert.throws(() => new KeyStore(other).verify('signing', 'x', Buffer.alloc(1), '0'.repeat(128)), refused(/unknown key kind "signing"/));
  assert.throws(() => new KeyStore(other).jwks('signing'), refused(/unknown key kind "signing"/));
});

test('a history entry that does not hold together is refused: a kid not derived from its key, a wrong legacy_kid, one key twice, no created_at', (t) => {
  const dir = tempDir(t);
  const ks = new KeyStore(dir);
  ks.current('grant');
  const [good] = ks.jwks('grant').keys;
  const elsewhere = new KeyStore(tempDir(t));
  elsewhere.current('grant');
  const other = elsewhere.jwks('grant').keys[0];
  const path = join(dir, 'grant-keys.jwks');
  const cases = [
    [{ ...good, kid: other.kid }, /kid .* is not derived from its key/],
    [{ ...good, kid: 'deadbeefdeadbeef' }, /kid "deadbeefdeadbeef" is not derived from its key/],
    [{ ...good, legacy_kid: 'deadbeefdeadbeef' }, /legacy_kid "deadbeefdeadbeef" is not derived from its key/],
    [[good, good], /lists the key .* twice/],
    [{ ...good, created_at: undefined }, /without created_at/],
    [{ ...good, x: 'short' }, /not an Ed25519 public key with a kid/],
  ];
  for (const [entry, pattern] of cases) {
    writeFileSync(path, JSON.stringify({ keys: [entry].flat() }));
    assert.throws(() => new KeyStore(dir).current('grant'), (e) => refused(pattern)(e) && /Fix: restore it from a backup/.test(e.message), String(pattern));
  }
  writeFileSync(path, 'not json');
  assert.throws(() => new KeyStore(dir).current('grant'), refused(/is not valid JSON[\s\S]*Fix:/));
  writeFileSync(path, '{}');
  assert.throws(() => new KeyStore(dir).current('grant'), refused(/has no "keys" array/));
});

test('sign/verify: right kid verifies; wrong kid, wrong kind, unknown kid, altered bytes or signature, and malformed input fail', (t) => {
  const ks = new KeyStore(tempDir(t));
  const msg = Buffer.from('result hash goes here');
  const { kid, signature } = ks.sign('receipt', msg);
  assert.match(signature, /^[0-9a-f]{128}$/);
  assert.equal(ks.verify('receipt', kid, msg, signature), true);
  assert.equal(ks.verify('receipt', ks.current('grant').kid, msg, signature), false, 'wrong kid');
  assert.equal(ks.verify('grant', kid, msg, signature), false, 'a receipt key is not a grant key');
  assert.equal(ks.verify('checkpoint', kid, msg, signature), false, 'nor a checkpoint key');
  assert.equal(ks.verify('receipt', kid, Buffer.from('result hash goes hera'), signature), false);
  assert.equal(ks.verify('receipt', kid, msg, (signature[0] === '0' ? '1' : '0') + signature.slice(1)), false);
  assert.equal(ks.verify('receipt', 'A'.repeat(43), msg, signature), false, 'unknown kid');
  assert.equal(ks.publicKey('receipt', 'A'.repeat(43)), undefined);
  assert.equal(ks.verify('receipt', kid, msg, signature.slice(2)), false, 'truncated');
  assert.equal(ks.verify('receipt', kid, msg, `${signature}00`), false, 'appended garbage');
  assert.equal(ks.verify('receipt', kid, msg, 'zz'.repeat(64)), false, 'not hex');
  assert.equal(ks.verify('receipt', kid, msg, undefined), false);
  assert.equal(ks.verify('receipt', undefined, msg, signature), false);
  const cp = ks.sign('checkpoint', msg);
  assert.notEqual(cp.kid, kid);
  assert.equal(ks.verify('checkpoint', cp.kid, msg, cp.signature), true, 'the checkpoint key signs and verifies like the others');
});

test("a store's own signatures (remembered, so verifying them again is cheap) verify only over the bytes, kind and kid they were made with", (t) => {
  const ks = new KeyStore(tempDir(t));
  const bytes = Buffer.from('a grant, as JCS');
  const { kid, signature } = ks.sign('grant', bytes);
  const original = Buffer.from(bytes);
  bytes[0] ^= 1; // the caller's buffer changed after signing: the store kept a copy
  assert.equal(ks.verify('grant', kid, bytes, signature), false, 'the bytes as changed');
  assert.equal(ks.verify('grant', kid, original, signature), true, 'the bytes signed');
  assert.equal(ks.verify('grant', kid, original.subarray(1), signature), false, 'a part of them');
  assert.equal(ks.verify('receipt', kid, original, signature), false, 'another kind');
  assert.equal(ks.verify('grant', ks.current('receipt').kid, original, signature), false, 'another kid');
  const rotated = ks.rotate('grant');
  assert.equal(ks.verify('grant', rotated.kid, original, signature), false, 'the new key of the kind');
  assert.equal(ks.verify('grant', kid, original, signature, { signedAt: Date.now() + 60_000 }), false, 'made after the key retired (keyAt still decides)');
  // Past the ones remembered, the same answers come from the signature itself.
  for (let i = 0; i < 100; i++) ks.sign('grant', Buffer.from(`other ${i}`));
  assert.equal(ks.verify('grant', kid, original, signature, { signedAt: 0 }), true);
  assert.equal(ks.verify('grant', kid, bytes, signature, { signedAt: 0 }), false);
});

test('rotation: a new kid, every earlier one kept (retired_at) so its signatures verify, also from another store', (t) => {
  const dir = tempDir(t);
  const ks = new KeyStore(dir);
  const msg = Buffer.from('old receipt');
  const signedAt = new Date().toISOString();
  const old = ks.sign('receipt', msg);
  const grantKid = ks.current('grant').kid;
  const r2 = ks.rotate('receipt');
  assert.equal(r2.previous_kid, old.kid);
  assert.notEqual(r2.kid, old.kid);
  assert.match(r2.kid, THUMBPRINT);
  assert.equal(ks.current('receipt').kid, r2.kid);
  assert.equal(ks.current('grant').kid, grantKid, 'rotating one kind leaves the others alone');
  assert.equal(mode(join(dir, 'receipt.key')), 0o600);
  const r3 = ks.rotate('receipt');
  const jwks = ks.jwks('receipt');
  assert.deepEqual(jwks.keys.map((k) => k.kid), [old.kid, r2.kid, r3.kid], 'append-only, in order');
  assert.ok(jwks.keys[0].retired_at && jwks.keys[1].retired_at && !jwks.keys[2].retired_at);
  assert.ok(jwks.keys[0].retired_at <= jwks.keys[1].retired_at);
  const fresh = new KeyStore(dir); // a restarted gate, or `latchgate verify`
  assert.equal(fresh.verify('receipt', old.kid, msg, old.signature, { signedAt }), true);
  assert.equal(fresh.sign('receipt', msg).kid, r3.kid);
  // A store that read the history before a rotation by another store finds the new kid, and signs with the new key.
  const stale = new KeyStore(dir);
  stale.jwks('receipt');
  const r4 = fresh.rotate('receipt');
  const sig4 = fresh.sign('receipt', msg);
  assert.equal(stale.verify('receipt', r4.kid, msg, sig4.signature), true);
  assert.equal(stale.sign('receipt', msg).kid, r4.kid);
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp') || n.endsWith('.lock')), []);
});

test('reading creates nothing and waits for no lock: publicKey, verify and jwks of a kind with no key, and of a missing directory', (t) => {
  const base = tempDir(t);
  const dir = join(base, 'state', 'keys');
  const ks = new KeyStore(dir);
  for (const kind of KEY_KINDS) {
    assert.equal(ks.publicKey(kind, 'A'.repeat(43)), undefined);
    assert.equal(ks.verify(kind, 'A'.repeat(43), Buffer.from('x'), '0'.repeat(128)), false);
    assert.deepEqual(ks.jwks(kind), { keys: [] });
  }
  assert.deepEqual(readdirSync(base), [], 'no directory made');
  const kid = new KeyStore(dir).current('receipt').kid;
  const before = readdirSync(dir).sort();
  // Another process holds the lock (rotating): a reader neither waits nor takes it.
  const lock = join(dir, 'receipt-keys.jwks.lock');
  writeFileSync(lock, '');
  const started = Date.now();
  for (const kind of KEY_KINDS) new KeyStore(dir).jwks(kind);
  assert.ok(new KeyStore(dir).publicKey('receipt', kid));
  assert.ok(Date.now() - started < 1000, 'no wait for the lock');
  rmSync(lock);
  assert.deepEqual(readdirSync(dir).sort(), before, 'no key made for the other kinds');
});

test('a key the history does not list signs nothing (a key file from a backup, or swapped in): refused with the fix, the history unchanged', (t) => {
  const dir = tempDir(t);
  new KeyStore(dir).current('grant');
  writeFileSync(join(dir, 'grant-keys.jwks'), '{"keys":[]}\n');
  assert.throws(() => new KeyStore(dir).sign('grant', Buffer.from('x')), /private key .*grant\.key is key \S+, which the grant key history does not list\. Fix: restore/);
  assert.equal(readFileSync(join(dir, 'grant-keys.jwks'), 'utf8'), '{"keys":[]}\n');
});

test('a lock left by a process that died is taken over; a held one is waited for', async (t) => {
  const dir = tempDir(t);
  const lock = join(dir, 'grant-keys.jwks.lock');
  writeFileSync(lock, '');
  const old = Date.now() / 1000 - 60;
  utimesSync(lock, old, old);
  const first = new KeyStore(dir).current('grant').kid;
  assert.equal(existsSync(lock), false);
  writeFileSync(lock, ''); // held by "another process" for 400 ms
  const storeJs = fileURLToPath(new URL('../../dist/keys/store.js', import.meta.url));
  const started = Date.now();
  const rotated = runNode(`import { KeyStore } from ${JSON.stringify(storeJs)}; process.stdout.write(JSON.stringify(new KeyStore(process.argv[1]).rotate('grant')));`, [dir]);
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(new KeyStore(dir).current('grant').kid, first, 'nothing changed while the lock was held');
  rmSync(lock);
  const r = JSON.parse(await rotated);
  assert.ok(Date.now() - started >= 400);
  assert.equal(r.previous_kid, first);
  assert.deepEqual(new KeyStore(dir).jwks('grant').keys.map((k) => k.kid), [first, r.kid]);
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
  // A receipt key cannot sign grants: the same bytes signed with the receipt key fail as a grant.
  const forged = ks.sign('receipt', grantSigningBytes(signed));
  assert.equal(verifyGrantSignature(ks, { ...signed, grant_signature: forged.signature, grant_signing_key_id: forged.kid }), false);
  // After a rotation the old grant still verifies (history); new grants carry the new kid.
  ks.rotate('grant');
  assert.equal(verifyGrantSignature(ks, signed), true);
  assert.notEqual(signGrant(ks, grant).grant_signing_key_id, signed.grant_signing_key_id);
});

test('verifyEd25519: raw keys and KeyObjects, wrong lengths are simply invalid', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = rawPublicKey(publicKey);
  const msg = Buffer.from('hello');
  const sig = sign(null, msg, privateKey);
  assert.equal(verifyEd25519(raw, msg, sig), true);
  assert.equal(verifyEd25519(publicKey, msg, sig), true);
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

test('ed25519-speccheck vectors: one pinned policy on every OpenSSL (cofactorless, S >= L, non-canonical R, small-order key or R, unreduced key rejected)', skipNoData, () => {
  // OpenSSL 3.0 (Node 20, 22) accepts a small-order key or R (vectors 0-2)
  // and an unreduced key (11), 3.5 (Node 24) refuses them: refused here on
  // every Node. Mixed-order points (3) verify as the equation says.
  const cases = JSON.parse(readFileSync(join(TESTDATA, 'speccheck', 'cases.json'), 'utf8'));
  assert.equal(cases.length, 12);
  const expected = 'X X X V X X X X X X X X'.split(' ').map((v) => v === 'V');
  const got = cases.map((c) => verifyEd25519(Buffer.from(c.pub_key, 'hex'), Buffer.from(c.message, 'hex'), Buffer.from(c.signature, 'hex')));
  assert.deepEqual(got, expected);
  assert.equal(got[6], false, 'S > L rejected');
  assert.equal(got[7], false, 'S >> L rejected');
});

test('four processes creating the keys of a fresh directory at once agree on one key and one history entry', async (t) => {
  const dir = join(tempDir(t), 'keys');
  const storeJs = fileURLToPath(new URL('../../dist/keys/store.js', import.meta.url));
  const startAt = Date.now() + 300;
  const script = `
    import { KeyStore } from ${JSON.stringify(storeJs)};
    const [dir, startAt] = process.argv.slice(1);
    while (Date.now() < Number(startAt)) {}
    process.stdout.write(new KeyStore(dir).current('receipt').kid);
  `;
  const kids = await Promise.all([1, 2, 3, 4].map(() => runNode(script, [dir, String(startAt)])));
  assert.equal(new Set(kids).size, 1, `kids: ${kids}`);
  const ks = new KeyStore(dir);
  assert.equal(ks.current('receipt').kid, kids[0]);
  assert.deepEqual(ks.jwks('receipt').keys.map((k) => k.kid), [kids[0]]);
  assert.deepEqual(readdirSync(dir).sort(), ['receipt-keys.jwks', 'receipt.key']);
});

test('a retired key verifies only what is dated up to its retired_at; the current key, whatever the time', (t) => {
  const dir = tempDir(t);
  const ks = new KeyStore(dir);
  const msg = Buffer.from('result hash');
  const old = ks.sign('receipt', msg);
  const stale = new KeyStore(dir); // has read the history before the rotation, by another store
  assert.equal(stale.verify('receipt', old.kid, msg, old.signature, { signedAt: Date.now() + 60_000 }), true, 'the current key');
  const stolen = createPrivateKey(readFileSync(ks.keyPath('receipt'), 'utf8'));
  const later = Buffer.from('a result hash after the rotation');
  ks.rotate('receipt');
  const retiredAt = ks.jwks('receipt').keys.find((k) => k.kid === old.kid).retired_at;
  const at = Date.parse(retiredAt);
  // A copy of the old key signs something new after the rotation.
  const copySig = sign(null, later, stolen).toString('hex');
  for (const store of [ks, new KeyStore(dir), stale]) {
    for (const [bytes, sig] of [[msg, old.signature], [later, copySig]]) {
      assert.equal(store.verify('receipt', old.kid, bytes, sig, { signedAt: retiredAt }), true, 'at its retirement');
      assert.equal(store.verify('receipt', old.kid, bytes, sig, { signedAt: at - 60_000 }), true, 'before it');
      assert.equal(store.verify('receipt', old.kid, bytes, sig, { signedAt: new Date(at + 1) }), false, 'a millisecond after');
      assert.equal(store.verify('receipt', old.kid, bytes, sig, { signedAt: new Date(at + 1000).toISOString() }), false, 'a second after');
      for (const signedAt of [NaN, 'yesterday', undefined, null]) assert.equal(store.verify('receipt', old.kid, bytes, sig, { signedAt }), false, `no time: ${signedAt}`);
      assert.equal(store.verify('receipt', old.kid, bytes, sig), false, 'no time given at all');
    }
    assert.equal(store.publicKey('receipt', old.kid, at + 1), undefined);
    assert.ok(store.publicKey('receipt', old.kid, at));
    assert.deepEqual(store.keyAt('receipt', old.kid, at + 1000), {
      reason: `key ${old.kid} was retired at ${retiredAt}; the signed receipt is dated ${new Date(at + 1000).toISOString()}, after that: a retired key signs nothing after its retirement`,
    });
    assert.match(store.keyAt('receipt', 'A'.repeat(43), at).reason, /is not in the receipt key history/);
    const fresh = ks.sign('receipt', msg);
    for (const signedAt of [0, at + 86_400_000, new Date().toISOString()]) assert.equal(store.verify('receipt', fresh.kid, msg, fresh.signature, { signedAt }), true);
  }
  // The rule holds for grants too: a grant signed with the old grant key and issued after its retirement is refused.
  const grant = { grant_id: 'g-1', subject: { principal: 'a', session_id: 's' }, sender_binding: 'x', core: {}, budget_reservation: { calls_before: 1, calls_after: 0 }, issued_at: new Date().toISOString(), revocation_epoch: 0 };
  const signed = signGrant(ks, grant);
  const grantKey = createPrivateKey(readFileSync(ks.keyPath('grant'), 'utf8'));
  assert.equal(verifyGrantSignature(ks, signed), true);
  ks.rotate('grant');
  assert.equal(verifyGrantSignature(new KeyStore(dir), signed), true, 'issued before the rotation');
  const after = { ...grant, issued_at: new Date(Date.now() + 1000).toISOString() };
  const forged = { ...after, grant_signature: sign(null, grantSigningBytes(after), grantKey).toString('hex'), grant_signing_key_id: signed.grant_signing_key_id };
  assert.equal(verifyGrantSignature(new KeyStore(dir), forged), false, 'issued after it, by a copy of the old key');
  const undated = { ...grant, issued_at: 'later' };
  const undatedSig = sign(null, grantSigningBytes(undated), grantKey).toString('hex');
  assert.equal(verifyGrantSignature(new KeyStore(dir), { ...undated, grant_signature: undatedSig, grant_signing_key_id: signed.grant_signing_key_id }), false, 'an issued_at that is no time');
});

test('latestTime: the latest of the times given, NaN when one is missing or not a time', () => {
  assert.equal(latestTime('2026-01-01T00:00:00.000Z', 1_800_000_000_000, new Date(0)), 1_800_000_000_000);
  assert.equal(latestTime('2026-01-01T00:00:00.000Z'), Date.parse('2026-01-01T00:00:00.000Z'));
  for (const bad of [[], [undefined], ['2026-01-01T00:00:00.000Z', null], ['not a date'], [{}]]) assert.ok(Number.isNaN(latestTime(...bad)), JSON.stringify(bad));
});
