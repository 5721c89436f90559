// Lease + DPoP verification under attack: each forged, replayed, stale or
// misbound request must fail with its exact code, and beside them the
// legitimate request must pass (so no test can pass by breaking everything).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { SignJWT, compactVerify, exportJWK, generateKeyPair, decodeJwt } from 'jose';
import {
  AuthError,
  AUTH_ERROR_STATUS,
  ReplayCache,
  accessTokenHash,
  createDpopKey,
  dpopThumbprint,
  issueLease,
  makeProof,
  normalizeHtu,
  verifyRequest,
} from '../../dist/gate/auth/index.js';
import { verifyProof } from '../../dist/gate/auth/dpop.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyEd25519 } from '../../dist/keys/ed25519.js';
import { openDb } from '../../dist/ledger/db.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const BASE = 'http://localhost:3000';
const URL_ = `${BASE}/v1/actions/demo.echo/execute`;
const now = () => Math.floor(Date.now() / 1000);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

async function setup(t) {
  const dir = tempDir(t, 'latchgate-auth-');
  const dbPath = join(dir, 'ledger.db');
  const keys = new KeyStore(join(dir, 'keys'));
  let db = openDb(dbPath);
  t.after(() => db.open && db.close());
  const s = {
    dir,
    dbPath,
    keys,
    key: await createDpopKey(),
    ctx: { keys, replay: new ReplayCache(db), currentEpoch: 0 },
    get db() {
      return db;
    },
    /** Simulates a gate restart: closes and reopens the SQLite file and the key directory. */
    restart() {
      db.close();
      db = openDb(dbPath);
      const keys2 = new KeyStore(join(dir, 'keys'));
      s.ctx = { keys: keys2, replay: new ReplayCache(db), currentEpoch: s.ctx.currentEpoch };
    },
    lease(opts = {}, ctxOver = {}) {
      return issueLease(
        {
          principal: 'alice',
          allowedScopes: ['tools:call', 'audit:read'],
          requestedScopes: ['tools:call'],
          dpopJwk: s.key.jwk,
          ttlSeconds: 300,
          ...opts,
        },
        { keys: s.ctx.keys, currentEpoch: s.ctx.currentEpoch, ...ctxOver },
      );
    },
    proof(lease, opts = {}) {
      return makeProof({ key: s.key, method: 'POST', url: URL_, leaseJwt: lease, ...opts });
    },
    verify(lease, proof, opts = {}) {
      return verifyRequest(
        { authorization: lease === undefined ? undefined : `DPoP ${lease}`, dpop: proof, method: 'POST', url: URL_, ...opts },
        s.ctx,
      );
    },
  };
  return s;
}

async function rejectsWith(promiseOrFn, code, pattern) {
  await assert.rejects(promiseOrFn, (e) => {
    assert.ok(e instanceof AuthError, `expected AuthError(${code}), got ${e?.name}: ${e?.message}`);
    assert.equal(e.code, code, `wrong code; message: ${e.message}`);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

/** A proof with arbitrary header and payload, signed by `sign(signingInput)` (or unsigned). */
async function handProof(header, payload, sign) {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign ? await sign(input) : ''}`;
}

function proofPayload(lease, over = {}) {
  return { jti: crypto.randomUUID(), htm: 'POST', htu: URL_, iat: now(), ath: accessTokenHash(lease), ...over };
}

test('valid request: lease + proof verify and return the lease facts', async (t) => {
  const s = await setup(t);
  const issued = await s.lease({ budgets: { max_calls: 5 } });
  const v = await s.verify(issued.lease_jwt, await s.proof(issued.lease_jwt));
  assert.equal(v.principal, 'alice');
  assert.equal(v.session_id, issued.session_id);
  assert.equal(v.lease_jti, issued.lease_jti);
  assert.deepEqual(v.scopes, ['tools:call']);
  assert.deepEqual(v.budgets, { max_calls: 5 });
  assert.equal(v.jkt, await dpopThumbprint(s.key.jwk));
  assert.equal(v.lease_expires_at, decodeJwt(issued.lease_jwt).exp);
  // Each new proof (fresh jti) with the same lease works.
  for (let i = 0; i < 3; i++) await s.verify(issued.lease_jwt, await s.proof(issued.lease_jwt));
  // Lowercase method in the proof and the request, case-insensitive auth scheme.
  await verifyRequest(
    { authorization: `dpop ${issued.lease_jwt}`, dpop: await s.proof(issued.lease_jwt, { method: 'post' }), method: 'post', url: URL_ },
    s.ctx,
  );
  // Header arrays with one element (as a framework may pass them).
  await verifyRequest(
    { authorization: [`DPoP ${issued.lease_jwt}`], dpop: [await s.proof(issued.lease_jwt)], method: 'POST', url: URL_ },
    s.ctx,
  );
});

test('makeProof, ES256 signed at once: a JWS (R || S) that jose and the gate verify; a key not P-256 or not private is refused, never signed with', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const proof = await makeProof({ key: s.key, method: 'POST', url: URL_, leaseJwt: lease_jwt });
  // RFC 7515 compact form with the protected header a DPoP proof carries, verified by jose with the public key alone.
  const { payload, protectedHeader } = await compactVerify(proof, s.key.publicKey);
  assert.deepEqual(protectedHeader, { typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: s.key.jwk.x, y: s.key.jwk.y } });
  const claims = JSON.parse(Buffer.from(payload).toString('utf8'));
  assert.deepEqual(Object.keys(claims).sort(), ['ath', 'htm', 'htu', 'iat', 'jti']);
  assert.equal(claims.ath, accessTokenHash(lease_jwt));
  assert.equal(Buffer.from(proof.split('.')[2], 'base64url').length, 64, 'R || S, 32 bytes each (RFC 7518 3.4), not DER');
  await s.verify(lease_jwt, proof);
  // Another signature over the same claims does not verify: the signature covers them.
  const [h, , sig] = proof.split('.');
  const forged = `${h}.${b64({ ...claims, htu: `${BASE}/v1/actions/other/execute` })}.${sig}`;
  await assert.rejects(s.verify(lease_jwt, forged), (e) => e.code === 'invalid_dpop');
  // A P-384 key labelled ES256, and a public key: refused, as jose refuses them (no P-384 signature passed off as ES256).
  const p384 = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify']);
  await assert.rejects(makeProof({ key: p384.privateKey, jwk: s.key.jwk, alg: 'ES256', method: 'POST', url: URL_ }), /P-256/);
  await assert.rejects(makeProof({ key: s.key.publicKey, jwk: s.key.jwk, method: 'POST', url: URL_ }), TypeError);
});

test('valid request with an Ed25519 (EdDSA) DPoP key', async (t) => {
  const s = await setup(t);
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk = await exportJWK(publicKey);
  const { lease_jwt } = await s.lease({ dpopJwk: jwk });
  const proof = await makeProof({ key: privateKey, jwk, method: 'POST', url: URL_, leaseJwt: lease_jwt });
  assert.equal(JSON.parse(Buffer.from(proof.split('.')[0], 'base64url')).alg, 'EdDSA');
  const v = await s.verify(lease_jwt, proof);
  assert.equal(v.jkt, await dpopThumbprint(jwk));
});

test('replayed proof: same jti refused, also after a restart (SQLite replay cache)', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const proof = await s.proof(lease_jwt);
  await s.verify(lease_jwt, proof);
  await rejectsWith(s.verify(lease_jwt, proof), 'replay_detected');
  // A new proof (new iat, new signature) reusing the jti is a replay too.
  const { jti } = decodeJwt(proof);
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { jti, iat: now() - 1 })), 'replay_detected');
  s.restart();
  await rejectsWith(s.verify(lease_jwt, proof), 'replay_detected');
  // The lease itself survived the restart (persisted signing key): a fresh proof works.
  await s.verify(lease_jwt, await s.proof(lease_jwt));
  const rows = s.db.prepare('SELECT count(*) AS n FROM dpop_jti').get().n;
  assert.equal(rows, 2);
});

test('replay cache: two caches on one file see each other; expired entries are purged', async (t) => {
  const s = await setup(t);
  const otherDb = openDb(s.dbPath);
  t.after(() => otherDb.close());
  const other = new ReplayCache(otherDb);
  const { lease_jwt } = await s.lease();
  const proof = await s.proof(lease_jwt);
  await s.verify(lease_jwt, proof);
  await rejectsWith(verifyRequest({ authorization: `DPoP ${lease_jwt}`, dpop: proof, method: 'POST', url: URL_ }, { ...s.ctx, replay: other }), 'replay_detected');
  const t0 = now();
  s.ctx.replay.checkAndStore('jti-aaaaaaaaaaaaaaaa', t0);
  assert.throws(() => s.ctx.replay.checkAndStore('jti-aaaaaaaaaaaaaaaa', t0 + 179), (e) => e.code === 'replay_detected');
  s.ctx.replay.checkAndStore('jti-aaaaaaaaaaaaaaaa', t0 + 181); // remembered for 180 s only
  // That insert also purged opportunistically: the verified proof's row (expired) is gone.
  const count = () => s.db.prepare('SELECT count(*) AS n FROM dpop_jti').get().n;
  assert.equal(count(), 1);
  assert.equal(s.ctx.replay.purgeExpired(t0 + 10_000), 1);
  assert.equal(count(), 0);
});

test('replay cache unavailable: a database failure denies (fail closed)', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  s.db.close();
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt)), 'replay_cache_unavailable');
  assert.equal(AUTH_ERROR_STATUS.replay_cache_unavailable, 503);
});

test('a rejected request does not use up its jti', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const proof = await s.proof(lease_jwt);
  await rejectsWith(s.verify(lease_jwt, proof, { method: 'GET' }), 'invalid_dpop');
  await s.verify(lease_jwt, proof);
});

test('proof for another URL or method is refused', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { url: `${BASE}/v1/actions/other/execute` })), 'invalid_dpop', /htu mismatch/);
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { url: 'http://evil.example:3000/v1/actions/demo.echo/execute' })), 'invalid_dpop', /htu mismatch/);
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { url: 'https://localhost:3000/v1/actions/demo.echo/execute' })), 'invalid_dpop', /htu mismatch/);
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { url: `${BASE}/v1/actions/demo.echo/execute/` })), 'invalid_dpop', /htu mismatch/);
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { url: 'localhost:3000/v1/actions/demo.echo/execute' })), 'invalid_dpop', /htu/);
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { url: 'http://alice@localhost:3000/v1/actions/demo.echo/execute' })), 'invalid_dpop', /htu/);
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { method: 'GET' })), 'invalid_dpop', /htm mismatch/);
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt), { method: 'DELETE' }), 'invalid_dpop', /htm mismatch/);
});

test('URL variations that normalise equal are accepted', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const variants = [
    [`${URL_}?a=1`, URL_],
    [URL_, `${URL_}?b=2&c=3`],
    [`${URL_}?x=1#frag`, `${URL_}?y=2`],
    ['HTTP://LOCALHOST:3000/v1/actions/demo.echo/execute', URL_],
  ];
  for (const [proofUrl, requestUrl] of variants) {
    await s.verify(lease_jwt, await s.proof(lease_jwt, { url: proofUrl }), { url: requestUrl });
  }
  const dflt = 'http://gate.local/v1/actions';
  await s.verify(lease_jwt, await s.proof(lease_jwt, { url: 'http://gate.local:80/v1/actions' }), { url: dflt });
  assert.equal(normalizeHtu('http://gate.local'), 'http://gate.local/');
  assert.equal(normalizeHtu('https://Gate.Local:443?q'), 'https://gate.local/');
  assert.throws(() => normalizeHtu('ftp://gate.local/x'), TypeError);
  assert.throws(() => normalizeHtu('/v1/actions'), TypeError);
  assert.throws(() => normalizeHtu('http:\\\\gate.local\\x'), TypeError);
});

test('proof signed by another key than cnf.jkt: key_binding_failed', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const thief = await createDpopKey();
  await rejectsWith(
    s.verify(lease_jwt, await makeProof({ key: thief, method: 'POST', url: URL_, leaseJwt: lease_jwt })),
    'key_binding_failed',
    /cnf\.jkt/,
  );
});

test('proof with alg none, HS256 or another alg is refused', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const payload = proofPayload(lease_jwt);
  const none = await handProof({ typ: 'dpop+jwt', alg: 'none', jwk: s.key.jwk }, payload);
  await rejectsWith(s.verify(lease_jwt, none), 'invalid_dpop', /alg/);
  // HS256 keyed with the (public) x coordinate: the classic confusion attack.
  const hs = await new SignJWT(proofPayload(lease_jwt))
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'HS256', jwk: s.key.jwk })
    .sign(Buffer.from(s.key.jwk.x, 'base64url'));
  await rejectsWith(s.verify(lease_jwt, hs), 'invalid_dpop', /alg/);
  // ES384 / RS256 are not on the allowlist.
  for (const alg of ['ES384', 'RS256', 'PS256', 'Ed25519']) {
    const p = await handProof({ typ: 'dpop+jwt', alg, jwk: s.key.jwk }, proofPayload(lease_jwt), async () => 'AAAA');
    await rejectsWith(s.verify(lease_jwt, p), 'invalid_dpop', /alg/);
  }
  // ES256 claimed for an Ed25519 key.
  const ed = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const edJwk = await exportJWK(ed.publicKey);
  const mixed = await handProof({ typ: 'dpop+jwt', alg: 'ES256', jwk: edJwk }, proofPayload(lease_jwt), async () => 'AAAA');
  await rejectsWith(s.verify(lease_jwt, mixed), 'invalid_dpop', /alg/);
});

test('an Ed25519 key of small order is refused for a lease, and a signature forged under one is not valid (OpenSSL 3.0 takes it for any message)', async (t) => {
  const s = await setup(t);
  const identity = Buffer.alloc(32);
  identity[0] = 1; // the neutral point: [0]B = R + [k]A holds for every message with R = it and S = 0
  const forged = Buffer.concat([identity, Buffer.alloc(32)]);
  assert.equal(verifyEd25519(identity, Buffer.from('any message at all'), forged), false);
  const order8 = Buffer.from('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', 'hex');
  for (const x of [identity, order8, Buffer.from('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex')]) {
    await assert.rejects(
      async () => issueLease({ principal: 'alice', allowedScopes: ['tools:call'], requestedScopes: ['tools:call'], dpopJwk: { kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') }, ttlSeconds: 60 }, { keys: s.keys, currentEpoch: 0 }),
      /dpop_jwk\.x is a point of small order or not reduced/,
    );
  }
});

test('proof with a private jwk is refused', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const privJwk = await exportJWK(privateKey); // has d
  const owner = await issueLease(
    { principal: 'alice', allowedScopes: ['tools:call'], requestedScopes: ['tools:call'], dpopJwk: { kty: 'EC', crv: 'P-256', x: privJwk.x, y: privJwk.y }, ttlSeconds: 60 },
    { keys: s.keys, currentEpoch: 0 },
  );
  const proof = await new SignJWT(proofPayload(owner.lease_jwt))
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: privJwk })
    .sign(privateKey);
  await rejectsWith(s.verify(owner.lease_jwt, proof), 'invalid_dpop', /private/);
  void lease_jwt;
});

test('proof without ath or with a wrong ath is refused', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  await rejectsWith(s.verify(lease_jwt, await s.proof(undefined)), 'invalid_dpop', /ath/);
  const other = await s.lease();
  await rejectsWith(s.verify(lease_jwt, await s.proof(other.lease_jwt)), 'invalid_dpop', /ath/);
  const garbled = await new SignJWT(proofPayload(lease_jwt, { ath: 42 }))
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: s.key.jwk })
    .sign(s.key.privateKey);
  await rejectsWith(s.verify(lease_jwt, garbled), 'invalid_dpop', /ath/);
});

test('iat window: 120 s old and 30 s ahead refused; the edges of [-60 s, +5 s] accepted', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const n = now();
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { iat: n - 120 }), { now: n }), 'invalid_dpop', /iat too old/);
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { iat: n + 30 }), { now: n }), 'invalid_dpop', /iat too far in future/);
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { iat: n - 61 }), { now: n }), 'invalid_dpop', /iat too old/);
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt, { iat: n + 6 }), { now: n }), 'invalid_dpop', /future/);
  await s.verify(lease_jwt, await s.proof(lease_jwt, { iat: n - 60 }), { now: n });
  await s.verify(lease_jwt, await s.proof(lease_jwt, { iat: n + 5 }), { now: n });
  const noIat = await new SignJWT({ jti: crypto.randomUUID(), htm: 'POST', htu: URL_, ath: accessTokenHash(lease_jwt) })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: s.key.jwk })
    .sign(s.key.privateKey);
  await rejectsWith(s.verify(lease_jwt, noIat), 'invalid_dpop', /iat/);
});

test('proof jti: missing, too short or too long is refused', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  for (const jti of [undefined, '', 'short', 'x'.repeat(129), 'has space in it 12345', 7]) {
    const p = await new SignJWT(proofPayload(lease_jwt, { jti }))
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: s.key.jwk })
      .sign(s.key.privateKey);
    await rejectsWith(s.verify(lease_jwt, p), 'invalid_dpop', /jti/);
  }
  await s.verify(lease_jwt, await s.proof(lease_jwt, { jti: 'x'.repeat(128) }));
});

test('expired lease: lease_expired', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease({ ttlSeconds: 60 }, { now: now() - 120 });
  await rejectsWith(s.verify(lease_jwt, await s.proof(lease_jwt)), 'lease_expired');
  // and at exactly exp
  const fresh = await s.lease({ ttlSeconds: 60 });
  const exp = decodeJwt(fresh.lease_jwt).exp;
  await s.verify(fresh.lease_jwt, await s.proof(fresh.lease_jwt, { iat: exp - 1 }), { now: exp - 1 });
  await rejectsWith(s.verify(fresh.lease_jwt, await s.proof(fresh.lease_jwt, { iat: exp }), { now: exp }), 'lease_expired');
});

test('lease signed by another key: invalid_lease (unknown kid, and a forged kid)', async (t) => {
  const s = await setup(t);
  const rogue = new KeyStore(join(s.dir, 'rogue-keys'));
  const foreign = await s.lease({}, { keys: rogue });
  await rejectsWith(s.verify(foreign.lease_jwt, await s.proof(foreign.lease_jwt)), 'invalid_lease', /unknown key/);
  // Same claims signed by the rogue key but claiming our kid.
  const ours = s.ctx.keys.current('lease');
  const theirs = rogue.current('lease');
  const claims = decodeJwt(foreign.lease_jwt);
  const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: ours.kid }).sign(theirs.privateKey);
  await rejectsWith(s.verify(forged, await s.proof(forged)), 'invalid_lease', /signature/);
  // Our key signing an ES256-labelled or HS256 lease, or the wrong typ.
  const wrongTyp = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: ours.kid }).sign(ours.privateKey);
  await rejectsWith(s.verify(wrongTyp, await s.proof(wrongTyp)), 'invalid_lease', /typ/);
  const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: ours.kid }).sign(new Uint8Array(32));
  await rejectsWith(s.verify(hs, await s.proof(hs)), 'invalid_lease', /alg/);
  const noKid = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' }).sign(ours.privateKey);
  await rejectsWith(s.verify(noKid, await s.proof(noKid)), 'invalid_lease', /kid/);
  // Correctly signed but wrong audience / issuer.
  for (const over of [{ aud: 'someone-else' }, { iss: 'someone-else' }, { epoch: undefined }, { cnf: {} }, { scope: 'tools:call' }]) {
    const bad = await new SignJWT({ ...claims, ...over }).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: ours.kid }).sign(ours.privateKey);
    await rejectsWith(s.verify(bad, await s.proof(bad)), 'invalid_lease');
  }
  // The same claims properly signed by our key pass (the checks above are not vacuous).
  const good = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: ours.kid }).sign(ours.privateKey);
  await s.verify(good, await s.proof(good));
});

test('lease from before a revocation epoch: lease_revoked', async (t) => {
  const s = await setup(t);
  s.ctx.currentEpoch = 3;
  const old = await s.lease({}, { currentEpoch: 2 });
  const current = await s.lease();
  await rejectsWith(s.verify(old.lease_jwt, await s.proof(old.lease_jwt)), 'lease_revoked', /epoch 2/);
  await s.verify(current.lease_jwt, await s.proof(current.lease_jwt));
  assert.equal(decodeJwt(current.lease_jwt).epoch, 3);
  s.ctx.currentEpoch = 4; // revoke-all
  await rejectsWith(s.verify(current.lease_jwt, await s.proof(current.lease_jwt)), 'lease_revoked');
});

test('lease with a tampered payload: invalid_lease', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const [h, p, sig] = lease_jwt.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  for (const change of [
    { scope: ['tools:call', 'audit:read'] },
    { sub: 'root' },
    { exp: claims.exp + 86400 },
    { epoch: 99 },
    { cnf: { jkt: await dpopThumbprint((await createDpopKey()).jwk) } },
  ]) {
    const tampered = `${h}.${b64({ ...claims, ...change })}.${sig}`;
    // The client holds the DPoP key, so it can make a proof whose ath matches the tampered lease.
    await rejectsWith(s.verify(tampered, await s.proof(tampered)), 'invalid_lease', /signature/);
  }
  const appended = `${h}.${p}A.${sig}`;
  await rejectsWith(s.verify(appended, await s.proof(appended)), 'invalid_lease');
  const noSig = `${h}.${p}.`;
  await rejectsWith(s.verify(noSig, await s.proof(noSig)), 'invalid_lease');
  await s.verify(lease_jwt, await s.proof(lease_jwt));
});

test('missing and garbled headers get their codes', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const proof = await s.proof(lease_jwt);
  const v = (authorization, dpop) => verifyRequest({ authorization, dpop, method: 'POST', url: URL_ }, s.ctx);
  await rejectsWith(v(undefined, proof), 'missing_auth_header');
  await rejectsWith(v('', proof), 'missing_auth_header');
  await rejectsWith(v([], proof), 'missing_auth_header');
  await rejectsWith(v(`Bearer ${lease_jwt}`, proof), 'invalid_auth_scheme', /Bearer/);
  await rejectsWith(v(lease_jwt, proof), 'invalid_auth_scheme');
  await rejectsWith(v('DPoP', proof), 'invalid_auth_scheme');
  await rejectsWith(v('DPoP ', proof), 'invalid_auth_scheme');
  await rejectsWith(v(`DPoP ${lease_jwt} extra`, proof), 'invalid_auth_scheme');
  await rejectsWith(v([`DPoP ${lease_jwt}`, `DPoP ${lease_jwt}`], proof), 'invalid_auth_scheme');
  await rejectsWith(v(`DPoP ${lease_jwt}`, undefined), 'missing_dpop_header');
  await rejectsWith(v(`DPoP ${lease_jwt}`, ''), 'missing_dpop_header');
  await rejectsWith(v('DPoP not-a-jwt', proof), 'invalid_lease');
  await rejectsWith(v('DPoP a.b.c', proof), 'invalid_lease');
  await rejectsWith(v(`DPoP ${'A'.repeat(20000)}.b.c`, proof), 'invalid_lease');
  await rejectsWith(v(`DPoP ${lease_jwt}`, 'garbage'), 'invalid_dpop');
  await rejectsWith(v(`DPoP ${lease_jwt}`, 'a.b.c'), 'invalid_dpop');
  await rejectsWith(v(`DPoP ${lease_jwt}`, `${proof}, ${proof}`), 'invalid_dpop'); // duplicate headers joined
  await rejectsWith(v(`DPoP ${lease_jwt}`, [proof, proof]), 'invalid_dpop');
  await rejectsWith(v(`DPoP ${lease_jwt}`, `${'A'.repeat(9000)}.b.c`), 'invalid_dpop');
  // Token confusion: the lease as the proof, the proof as the lease.
  await rejectsWith(v(`DPoP ${lease_jwt}`, lease_jwt), 'invalid_dpop', /typ/);
  await rejectsWith(v(`DPoP ${proof}`, proof), 'invalid_lease', /typ/);
  // And the untouched pair still passes.
  await v(`DPoP ${lease_jwt}`, proof);
});

test('attacker-controlled values in messages are quoted and capped', async (t) => {
  const s = await setup(t);
  const { lease_jwt } = await s.lease();
  const p = await handProof({ typ: `dpop+jwt\n${'x'.repeat(500)}`, alg: 'ES256', jwk: s.key.jwk }, proofPayload(lease_jwt), async () => 'AAAA');
  await rejectsWith(s.verify(lease_jwt, p), 'invalid_dpop', /typ/);
  try {
    await s.verify(lease_jwt, p);
  } catch (e) {
    assert.ok(!e.message.includes('\n'));
    assert.ok(e.message.length < 300);
  }
});

test('lease key rotation: leases issued before rotate() still verify, new ones use the new kid', async (t) => {
  const s = await setup(t);
  const before = await s.lease();
  const kid0 = s.keys.current('lease').kid;
  const r = s.keys.rotate('lease');
  assert.equal(r.previous_kid, kid0);
  assert.notEqual(r.kid, kid0);
  const after = await s.lease();
  const kidOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url')).kid;
  assert.equal(kidOf(before.lease_jwt), kid0);
  assert.equal(kidOf(after.lease_jwt), r.kid);
  await s.verify(before.lease_jwt, await s.proof(before.lease_jwt));
  await s.verify(after.lease_jwt, await s.proof(after.lease_jwt));
  // Another process (a fresh KeyStore on the same directory) verifies both too.
  s.restart();
  await s.verify(before.lease_jwt, await s.proof(before.lease_jwt));
  await s.verify(after.lease_jwt, await s.proof(after.lease_jwt));
  // A verifier that loaded the history before the rotation picks the new kid up from disk.
  const early = new KeyStore(join(s.dir, 'keys'));
  early.jwks('lease');
  s.keys.rotate('lease');
  const third = await s.lease({}, { keys: s.keys });
  await verifyRequest(
    { authorization: `DPoP ${third.lease_jwt}`, dpop: await s.proof(third.lease_jwt), method: 'POST', url: URL_ },
    { ...s.ctx, keys: early },
  );
});

test('AuthError carries status and a wire body', () => {
  const e = new AuthError('invalid_dpop', 'x');
  assert.equal(e.status, 401);
  assert.deepEqual(JSON.parse(JSON.stringify(e)), { error: 'invalid_dpop', message: 'x' });
  assert.equal(new AuthError('scope_not_permitted', 'x').status, 403);
  assert.equal(new AuthError('invalid_request', 'x').status, 400);
  for (const c of ['missing_auth_header', 'invalid_auth_scheme', 'missing_dpop_header', 'invalid_dpop', 'invalid_lease', 'lease_expired', 'key_binding_failed', 'replay_detected', 'lease_revoked']) {
    assert.equal(AUTH_ERROR_STATUS[c], 401, c);
  }
});

test('proof JWS edge cases: crit, b64, DER signatures, bad time claims, a tampered payload, a non-object payload', async (t) => {
  const s = await setup(t);
  const { sign, generateKeyPairSync } = await import('node:crypto');
  // A P-256 key we can sign with by hand, bound to a lease of its own.
  const kp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = kp.publicKey.export({ format: 'jwk' });
  s.key = { ...s.key, jwk: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y } };
  const own = (await s.lease()).lease_jwt;
  const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: s.key.jwk };
  const p1363 = (input) => sign('sha256', Buffer.from(input), { key: kp.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  const der = (input) => sign('sha256', Buffer.from(input), kp.privateKey).toString('base64url');
  // The legitimate hand-made proof passes: the checks below fail for their own reason.
  await s.verify(own, await handProof(header, proofPayload(own), p1363));
  await rejectsWith(s.verify(own, await handProof({ ...header, crit: ['exp'] }, proofPayload(own), p1363)), 'invalid_dpop', /crit/);
  await rejectsWith(s.verify(own, await handProof({ ...header, b64: false }, proofPayload(own), p1363)), 'invalid_dpop', /b64/);
  await rejectsWith(s.verify(own, await handProof(header, proofPayload(own), der)), 'invalid_dpop', /signature verification failed/);
  await rejectsWith(s.verify(own, await handProof(header, proofPayload(own, { exp: now() - 1 }), p1363)), 'invalid_dpop', /"exp"/);
  await rejectsWith(s.verify(own, await handProof(header, proofPayload(own, { nbf: now() + 30 }), p1363)), 'invalid_dpop', /"nbf"/);
  await rejectsWith(s.verify(own, await handProof(header, proofPayload(own, { iat: String(now()) }), p1363)), 'invalid_dpop', /iat/);
  const good = await handProof(header, proofPayload(own), p1363);
  const [h, , sig] = good.split('.');
  const forged = `${h}.${b64(proofPayload(own))}.${sig}`;
  await rejectsWith(s.verify(own, forged), 'invalid_dpop', /signature verification failed/);
  const arrayPayload = `${b64(header)}.${Buffer.from('[1]').toString('base64url')}`;
  await rejectsWith(s.verify(own, `${arrayPayload}.${p1363(arrayPayload)}`), 'invalid_dpop', /not a JSON object/);
});

test('createDpopKey: WebCrypto will not export its private key; proofs by it and by any other key verify, and no runtime warning is emitted (Node 24 deprecates KeyObject.from of a non-extractable key)', async () => {
  const key = await createDpopKey();
  assert.equal(key.privateKey.extractable, false);
  await assert.rejects(crypto.subtle.exportKey('pkcs8', key.privateKey));
  const url = 'https://gate.test/v1/actions/a/execute';
  const now = Math.floor(Date.now() / 1000);
  const check = async (k, jwk) => {
    const proof = await makeProof({ key: k, jwk, method: 'POST', url, leaseJwt: 'lease.jwt.x' });
    const v = await verifyProof({ proof, method: 'POST', url, leaseJwt: 'lease.jwt.x', jkt: await dpopThumbprint(jwk), now });
    assert.equal(typeof v.jti, 'string');
  };
  await check(key.privateKey, key.jwk);
  // A key made elsewhere: non-extractable (signed through WebCrypto) and extractable (signed at once).
  for (const extractable of [false, true]) {
    const other = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, extractable, ['sign', 'verify']);
    const j = await crypto.subtle.exportKey('jwk', other.publicKey);
    await check(other.privateKey, { kty: 'EC', crv: 'P-256', x: j.x, y: j.y });
  }
  // A process's first use, where Node prints a deprecation (once per process): nothing on stderr.
  const client = new URL('../../dist/gate/auth/client.js', import.meta.url).href;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { createDpopKey, makeProof } from ${JSON.stringify(client)}; const k = await createDpopKey(); await makeProof({ key: k, method: 'POST', url: 'https://gate.test/x' }); await new Promise((r) => setImmediate(r)); console.log('signed');`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'signed\n');
  assert.equal(r.stderr, '', 'a warning was printed');
});
