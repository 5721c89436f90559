// The lease key: the store's 'lease' kind, which signs lease JWTs with jose.
// Creation and modes, the file rules, two processes creating it at once,
// rotation keeping the history, verification by an old kid until the lease
// expires, no lease after the rotation by a copy of the old key, unknown
// kids, and kid = RFC 7638 thumbprint as jose computes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { createPrivateKey, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT, calculateJwkThumbprint, createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { AuthError, createDpopKey, issueLease, verifyLease } from '../../dist/gate/auth/index.js';
import { KeyStore } from '../../dist/keys/store.js';
import { KeyStoreError } from '../../dist/keys/ed25519.js';
import { isRoot, runNode, tempDir } from '../fixtures/unit/helpers.mjs';

const STORE_JS = fileURLToPath(new URL('../../dist/keys/store.js', import.meta.url));
const mode = (p) => statSync(p).mode & 0o777;

async function setup(t) {
  const dir = join(tempDir(t, 'latchgate-lease-key-'), 'keys');
  const keys = new KeyStore(dir);
  const dpop = await createDpopKey();
  const lease = (over = {}) =>
    issueLease({ principal: 'alice', allowedScopes: ['tools:call'], requestedScopes: ['tools:call'], dpopJwk: dpop.jwk, ttlSeconds: 300 }, { keys, currentEpoch: 0, ...over });
  return { dir, keys, lease };
}

const kidOf = (jwt) => decodeProtectedHeader(jwt).kid;

async function rejectsWith(p, code, pattern) {
  await assert.rejects(p, (e) => e instanceof AuthError && e.code === code && pattern.test(e.message));
}

test('first use creates lease.key (0600) and lease-keys.jwks in a 0700 directory; leases carry its kid, the RFC 7638 thumbprint', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const key = s.keys.current('lease');
  assert.equal(mode(join(s.dir, 'lease.key')), 0o600);
  assert.equal(mode(s.dir), 0o700);
  assert.match(readFileSync(join(s.dir, 'lease.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
  const history = JSON.parse(readFileSync(join(s.dir, 'lease-keys.jwks'), 'utf8'));
  assert.deepEqual(history.keys.map((k) => k.kid), [key.kid]);
  assert.equal(key.kid, await calculateJwkThumbprint(key.publicKey.export({ format: 'jwk' }), 'sha256'));
  assert.deepEqual(decodeProtectedHeader(lease_jwt), { alg: 'EdDSA', typ: 'at+jwt', kid: key.kid });
  assert.equal(existsSync(join(s.dir, 'lease-signing-key.pem')), false, 'no file of the older layout is made');
  assert.equal(new KeyStore(s.dir).current('lease').kid, key.kid, 'a restart reads the same key');
  // A verifier outside latchgate finds the key in the published JWKS by kid.
  const { payload } = await jwtVerify(lease_jwt, createLocalJWKSet(s.keys.jwks('lease')), { typ: 'at+jwt', issuer: 'latchgate', audience: 'latchgate' });
  assert.equal(payload.sub, 'alice');
});

test('a lease key reached through a symlink, readable by others, or owned by another user is refused with the fix', async (t) => {
  const s = await setup(t);
  s.keys.current('lease');
  const path = join(s.dir, 'lease.key');
  for (const m of [0o644, 0o640, 0o604]) {
    chmodSync(path, m);
    assert.throws(() => new KeyStore(s.dir).current('lease'), (e) => e instanceof KeyStoreError && e.message.includes(`Fix: chmod 600 ${path}`));
    await assert.rejects(s.lease(), /Fix: chmod 600/, 'the same store refuses to sign once the mode changed');
  }
  chmodSync(path, 0o600);
  if (isRoot) {
    chownSync(path, 1234, 1234);
    assert.throws(() => new KeyStore(s.dir).current('lease'), (e) => e instanceof KeyStoreError && /owned by uid 1234/.test(e.message) && e.message.includes(`Fix: chown 0 ${path}`));
    chownSync(path, 0, 0);
  }
  const elsewhere = new KeyStore(join(s.dir, '..', 'elsewhere'));
  elsewhere.current('lease');
  rmSync(path);
  symlinkSync(elsewhere.keyPath('lease'), path);
  assert.throws(() => new KeyStore(s.dir).current('lease'), (e) => e instanceof KeyStoreError && /is a symlink; refusing to follow it\. Fix:/.test(e.message));
  await assert.rejects(s.lease(), /symlink/);
});

test('two processes creating the lease key at once: one key wins, both sign with it, one history entry', async (t) => {
  const dir = join(tempDir(t), 'keys');
  const startAt = Date.now() + 300;
  const script = `
    import { KeyStore } from ${JSON.stringify(STORE_JS)};
    const [dir, startAt] = process.argv.slice(1);
    while (Date.now() < Number(startAt)) {}
    const ks = new KeyStore(dir);
    const s = ks.sign('lease', Buffer.from(String(process.pid)));
    process.stdout.write(JSON.stringify({ ...s, pid: String(process.pid) }));
  `;
  const [a, b] = (await Promise.all([runNode(script, [dir, String(startAt)]), runNode(script, [dir, String(startAt)])])).map((out) => JSON.parse(out));
  assert.equal(a.kid, b.kid);
  const ks = new KeyStore(dir);
  assert.equal(ks.current('lease').kid, a.kid);
  for (const r of [a, b]) assert.equal(ks.verify('lease', r.kid, Buffer.from(r.pid), r.signature), true);
  assert.deepEqual(ks.jwks('lease').keys.map((k) => k.kid), [a.kid]);
  assert.deepEqual(readdirSync(dir).sort(), ['lease-keys.jwks', 'lease.key']);
});

test('rotation keeps the history: a lease signed before verifies by its old kid until it expires, also in another store', async (t) => {
  const s = await setup(t);
  const before = await s.lease();
  const old = s.keys.current('lease').kid;
  const r = s.keys.rotate('lease');
  assert.equal(r.previous_kid, old);
  assert.notEqual(r.kid, old);
  const after = await s.lease();
  assert.deepEqual([kidOf(before.lease_jwt), kidOf(after.lease_jwt)], [old, r.kid]);
  const history = s.keys.jwks('lease').keys;
  assert.deepEqual(history.map((k) => k.kid), [old, r.kid]);
  assert.ok(history[0].retired_at && !history[1].retired_at);
  for (const k of history) assert.equal('d' in k, false);
  const restarted = new KeyStore(s.dir);
  const { exp } = decodeJwt(before.lease_jwt);
  for (const keys of [s.keys, restarted]) {
    assert.equal((await verifyLease(before.lease_jwt, { keys, currentEpoch: 0 }, exp - 1)).sub, 'alice');
    await rejectsWith(verifyLease(before.lease_jwt, { keys, currentEpoch: 0 }, exp), 'lease_expired', /expired/);
  }
  assert.equal((await verifyLease(after.lease_jwt, { keys: restarted, currentEpoch: 0 })).sub, 'alice');
  // The old private key is gone: only the public half remains, in the history.
  assert.equal(restarted.current('lease').kid, r.kid);
});

test('a lease whose kid no history entry names is refused, as is one signed by another kind of key under the lease kid', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const claims = decodeJwt(lease_jwt);
  const grantKey = s.keys.current('grant');
  assert.equal(s.keys.publicKey('lease', grantKey.kid), undefined, 'a grant kid does not resolve as a lease kid');
  const byGrantKey = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: grantKey.kid }).sign(grantKey.privateKey);
  await rejectsWith(verifyLease(byGrantKey, { keys: s.keys, currentEpoch: 0 }), 'invalid_lease', /unknown key/);
  const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: s.keys.current('lease').kid }).sign(grantKey.privateKey);
  await rejectsWith(verifyLease(forged, { keys: s.keys, currentEpoch: 0 }), 'invalid_lease', /signature/);
  const unknown = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: 'A'.repeat(43) }).sign(s.keys.current('lease').privateKey);
  await rejectsWith(verifyLease(unknown, { keys: s.keys, currentEpoch: 0 }), 'invalid_lease', /unknown key/);
});

test("a lease one gate's keys verified is refused by another gate's keys in the same process, and a header edit is never taken for the verified lease", async (t) => {
  const a = await setup(t);
  const b = await setup(t);
  const { lease_jwt } = await a.lease();
  assert.equal((await verifyLease(lease_jwt, { keys: a.keys, currentEpoch: 0 })).sub, 'alice');
  assert.equal((await verifyLease(lease_jwt, { keys: a.keys, currentEpoch: 0 })).sub, 'alice', 'verified again (remembered)');
  await rejectsWith(verifyLease(lease_jwt, { keys: b.keys, currentEpoch: 0 }), 'invalid_lease', /unknown key/);
  // The same claims and signature under another header are other bytes: checked in full, not remembered.
  const [, payload, sig] = lease_jwt.split('.');
  const header = Buffer.from(JSON.stringify({ ...decodeProtectedHeader(lease_jwt), typ: 'JWT' })).toString('base64url');
  await rejectsWith(verifyLease(`${header}.${payload}.${sig}`, { keys: a.keys, currentEpoch: 0 }), 'invalid_lease', /typ/);
});

test('a lease verified before is looked up in the key history again at each use: a history moved away, or one this gate no longer trusts, refuses it', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  assert.equal((await verifyLease(lease_jwt, { keys: s.keys, currentEpoch: 0 })).sub, 'alice');
  // The operator moves the key files away: another process starts a new history.
  renameSync(s.dir, `${s.dir}.old`);
  new KeyStore(s.dir).current('lease');
  await rejectsWith(verifyLease(lease_jwt, { keys: s.keys, currentEpoch: 0 }), 'invalid_lease', /unknown key/);
  // A history whose root is not the one this gate holds to (src/ledger/key-roots.ts): none of its keys verifies.
  const p = await setup(t);
  const pinned = (await p.lease()).lease_jwt;
  assert.equal((await verifyLease(pinned, { keys: p.keys, currentEpoch: 0 })).sub, 'alice');
  p.keys.pin('lease', 'A'.repeat(43));
  await rejectsWith(verifyLease(pinned, { keys: p.keys, currentEpoch: 0 }), 'invalid_lease', /refused/);
});

test('a store that read the lease history before another store rotated finds the new kid on disk', async (t) => {
  const s = await setup(t);
  const early = new KeyStore(s.dir);
  early.jwks('lease');
  s.keys.rotate('lease');
  const { lease_jwt } = await s.lease();
  assert.equal((await verifyLease(lease_jwt, { keys: early, currentEpoch: 0 })).sub, 'alice');
  assert.equal(early.current('lease').kid, kidOf(lease_jwt), 'and signs with the new key');
});

test('a lease made with a stolen lease key to outlive revocation is refused: an epoch still to come, or a life longer than any lease gets', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const claims = decodeJwt(lease_jwt);
  const key = s.keys.current('lease');
  const sign = (c) => new SignJWT(c).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: key.kid }).sign(key.privateKey);
  // The honest lease verifies in its epoch and is revoked in the next.
  assert.equal((await verifyLease(lease_jwt, { keys: s.keys, currentEpoch: 0 })).sub, 'alice');
  await rejectsWith(verifyLease(lease_jwt, { keys: s.keys, currentEpoch: 1 }), 'lease_revoked', /revoked/);
  const ahead = await sign({ ...claims, epoch: Number.MAX_SAFE_INTEGER });
  await rejectsWith(verifyLease(ahead, { keys: s.keys, currentEpoch: 1 }), 'invalid_lease', /after the current epoch 1/);
  const decade = await sign({ ...claims, exp: claims.iat + 10 * 365 * 86400 });
  await rejectsWith(verifyLease(decade, { keys: s.keys, currentEpoch: 0 }), 'invalid_lease', /no lease lives longer than 3600 s/);
});

test('a copy of the lease key taken before a rotation signs no lease after it; leases the old key signed before still verify', async (t) => {
  const s = await setup(t);
  const before = await s.lease();
  const stolen = createPrivateKey(readFileSync(join(s.dir, 'lease.key'), 'utf8'));
  const oldKid = s.keys.current('lease').kid;
  s.keys.rotate('lease');
  const retiredAt = s.keys.jwks('lease').keys.find((k) => k.kid === oldKid).retired_at;
  const claims = decodeJwt(before.lease_jwt);
  const forge = (iat, nbf = iat, exp = iat + 300) =>
    new SignJWT({ ...claims, jti: randomUUID(), iat, nbf, exp }).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: oldKid }).sign(stolen);
  // Issued now, after the rotation, by the old key: refused, in this store and in a restarted one.
  const now = Math.floor(Date.parse(retiredAt) / 1000) + 1;
  const forged = await forge(now);
  for (const keys of [s.keys, new KeyStore(s.dir)]) {
    await rejectsWith(
      verifyLease(forged, { keys, currentEpoch: 0 }, now + 1),
      'invalid_lease',
      new RegExp(`^lease refused: key ${oldKid} was retired at ${retiredAt.replace(/\./g, '\\.')}; the signed lease is dated ${new Date(now * 1000).toISOString().replace(/\./g, '\\.')}, after that`),
    );
  }
  // Only nbf after the retirement (iat dated back): the latest time the lease claims counts.
  await rejectsWith(verifyLease(await forge(now - 60, now), { keys: s.keys, currentEpoch: 0 }, now + 1), 'invalid_lease', /was retired at/);
  // Dated back entirely, time cannot tell it from a lease signed before the rotation; it is bounded
  // by the longest TTL from its iat (and the current epoch): it expires within the hour after the rotation.
  const back = Math.floor(Date.parse(retiredAt) / 1000) - 1;
  await rejectsWith(verifyLease(await forge(back, back, back + 3600), { keys: s.keys, currentEpoch: 0 }, back + 3600), 'lease_expired', /expired/);
  await rejectsWith(verifyLease(await forge(back, back, back + 3601), { keys: s.keys, currentEpoch: 0 }, back + 1), 'invalid_lease', /no lease lives longer/);
  // The legitimate lease signed before the rotation, and a new one by the current key, verify.
  assert.equal((await verifyLease(before.lease_jwt, { keys: new KeyStore(s.dir), currentEpoch: 0 }, claims.iat + 1)).sub, 'alice');
  assert.equal((await verifyLease((await s.lease()).lease_jwt, { keys: new KeyStore(s.dir), currentEpoch: 0 })).sub, 'alice');
});
