// Lease issuance (request validation, scope intersection, key binding,
// claims). The lease key itself: keys-lease.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, jwtVerify } from 'jose';
import {
  AuthError,
  BUILTIN_SCOPES,
  LEASE_MAX_TTL_SECONDS,
  accessTokenHash,
  createDpopKey,
  dpopThumbprint,
  intersectScopes,
  isValidScope,
  issueLease,
  parseLeaseRequest,
} from '../../dist/gate/auth/index.js';
import { KeyStore } from '../../dist/keys/store.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

async function setup(t) {
  const dir = tempDir(t, 'latchgate-lease-');
  const keys = new KeyStore(join(dir, 'keys'));
  const key = await createDpopKey();
  const issue = (over = {}, ctx = {}) =>
    issueLease(
      { principal: 'alice', allowedScopes: ['tools:call', 'audit:read', 'fs:read'], requestedScopes: ['tools:call'], dpopJwk: key.jwk, ttlSeconds: 300, ...over },
      { keys, currentEpoch: 0, ...ctx },
    );
  return { dir, keys, key, issue };
}

async function rejectsWith(p, code, pattern) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof AuthError, `expected AuthError(${code}), got ${e?.name}: ${e?.message}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

function throwsWith(fn, code, pattern) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof AuthError, `expected AuthError(${code}), got ${e?.name}: ${e?.message}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

test('scope syntax: built-ins and namespace:name', () => {
  assert.deepEqual([...BUILTIN_SCOPES], ['tools:call', 'audit:read']);
  for (const ok of ['tools:call', 'audit:read', 'fs:read', 'a:bc', 'gh:issues:write', 'ns-1:name_2', 'x'.repeat(31) + ':' + 'y'.repeat(32)]) {
    assert.ok(isValidScope(ok), ok);
  }
  for (const bad of ['', 'abc', 'a:b', 'tools', 'Tools:call', '1ns:name', ':ns:name', 'ns:', 'ns:name:', 'ns:na me', 'ns:naïve', 'ns.x:name', 'x'.repeat(32) + ':' + 'y'.repeat(32), 'ns:NAME', 42, null]) {
    assert.ok(!isValidScope(bad), JSON.stringify(bad));
  }
});

test('scope intersection: order of the request, no duplicates, exact match only', () => {
  assert.deepEqual(intersectScopes(['audit:read', 'tools:call'], ['tools:call', 'audit:read']), ['audit:read', 'tools:call']);
  assert.deepEqual(intersectScopes(['tools:call', 'tools:call', 'fs:write'], ['tools:call', 'fs:read']), ['tools:call']);
  assert.deepEqual(intersectScopes(['fs:write'], ['fs:read', 'fs:*']), []);
  assert.deepEqual(intersectScopes(['tools:call'], []), []);
});

test('issueLease grants requested ∩ allowed; an empty intersection is scope_not_permitted', async (t) => {
  const s = await setup(t);
  const a = await s.issue({ requestedScopes: ['tools:call', 'fs:write', 'audit:read'] });
  assert.deepEqual(decodeJwt(a.lease_jwt).scope, ['tools:call', 'audit:read']);
  await rejectsWith(s.issue({ requestedScopes: ['fs:write', 'gh:admin'] }), 'scope_not_permitted', /fs:write/);
  await rejectsWith(s.issue({ allowedScopes: [] }), 'scope_not_permitted');
  await rejectsWith(s.issue({ requestedScopes: [] }), 'invalid_request', /at least one/);
  await rejectsWith(s.issue({ requestedScopes: ['tools:call', 'Bad Scope'] }), 'invalid_request', /scopes\[1\]/);
  await rejectsWith(s.issue({ requestedScopes: 'tools:call' }), 'invalid_request');
  await rejectsWith(s.issue({ requestedScopes: Array.from({ length: 65 }, (_, i) => `ns:s${i}x`) }), 'invalid_request', /more than 64/);
});

test('the lease JWT: header, claims, key binding, ttl cap', async (t) => {
  const s = await setup(t);
  const before = Math.floor(Date.now() / 1000);
  const r = await s.issue({ budgets: { max_calls: 10, max_cost: 2.5 } }, { currentEpoch: 7 });
  const header = decodeProtectedHeader(r.lease_jwt);
  const current = s.keys.current('lease');
  assert.deepEqual(header, { alg: 'EdDSA', typ: 'at+jwt', kid: current.kid });
  const c = decodeJwt(r.lease_jwt);
  assert.equal(c.iss, 'latchgate');
  assert.equal(c.aud, 'latchgate');
  assert.equal(c.sub, 'alice');
  assert.equal(c.jti, r.lease_jti);
  assert.equal(c.session_id, r.session_id);
  assert.match(r.session_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(r.session_id, r.lease_jti);
  assert.ok(c.iat >= before && c.nbf === c.iat && c.exp === c.iat + 300);
  assert.deepEqual(c.scope, ['tools:call']);
  assert.deepEqual(c.budgets, { max_calls: 10, max_cost: 2.5 });
  assert.equal(c.epoch, 7);
  assert.deepEqual(c.cnf, { jkt: await dpopThumbprint(s.key.jwk) });
  assert.equal(r.expires_at, new Date(c.exp * 1000).toISOString().replace('.000Z', 'Z'));
  assert.match(r.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  // Verifiable with the published JWKS entry.
  const jwk = s.keys.jwks('lease').keys.find((k) => k.kid === header.kid);
  await jwtVerify(r.lease_jwt, await importJWK(jwk, 'EdDSA'), { typ: 'at+jwt', issuer: 'latchgate', audience: 'latchgate' });
  // No budgets claim when none were asked for.
  assert.equal('budgets' in decodeJwt((await s.issue()).lease_jwt), false);
  // TTL capped at one hour.
  const long = decodeJwt((await s.issue({ ttlSeconds: 86400 })).lease_jwt);
  assert.equal(long.exp - long.iat, LEASE_MAX_TTL_SECONDS);
  await assert.rejects(s.issue({ ttlSeconds: 0 }), TypeError);
  // Fresh ids every time.
  const ids = new Set();
  for (let i = 0; i < 5; i++) {
    const x = await s.issue();
    ids.add(x.session_id).add(x.lease_jti);
  }
  assert.equal(ids.size, 10);
});

test('the DPoP key: EC P-256 or OKP Ed25519, public only, a real curve point', async (t) => {
  const s = await setup(t);
  const ed = await exportJWK((await generateKeyPair('EdDSA', { crv: 'Ed25519' })).publicKey);
  const r = await s.issue({ dpopJwk: ed });
  assert.equal(decodeJwt(r.lease_jwt).cnf.jkt, await dpopThumbprint(ed));
  // Optional members are accepted and do not change the thumbprint.
  const decorated = { ...s.key.jwk, kid: 'k1', alg: 'ES256', use: 'sig', key_ops: ['verify'], ext: true };
  assert.equal(decodeJwt((await s.issue({ dpopJwk: decorated })).lease_jwt).cnf.jkt, await dpopThumbprint(s.key.jwk));

  const priv = await exportJWK((await generateKeyPair('ES256', { extractable: true })).privateKey);
  await rejectsWith(s.issue({ dpopJwk: priv }), 'invalid_request', /private key material \(d\)/);
  const rsa = await exportJWK((await generateKeyPair('RS256', { extractable: true })).publicKey);
  await rejectsWith(s.issue({ dpopJwk: rsa }), 'invalid_request', /kty/);
  const p384 = await exportJWK((await generateKeyPair('ES384')).publicKey);
  await rejectsWith(s.issue({ dpopJwk: p384 }), 'invalid_request', /P-256/);
  await rejectsWith(s.issue({ dpopJwk: { kty: 'oct', k: 'c2VjcmV0' } }), 'invalid_request', /private/);
  await rejectsWith(s.issue({ dpopJwk: { ...s.key.jwk, y: undefined } }), 'invalid_request', /\.y/);
  await rejectsWith(s.issue({ dpopJwk: { ...s.key.jwk, x: 'short' } }), 'invalid_request', /\.x/);
  await rejectsWith(s.issue({ dpopJwk: { ...s.key.jwk, surprise: 1 } }), 'invalid_request', /surprise/);
  await rejectsWith(s.issue({ dpopJwk: { ...s.key.jwk, use: 'enc' } }), 'invalid_request', /use/);
  await rejectsWith(s.issue({ dpopJwk: { ...s.key.jwk, alg: 'EdDSA' } }), 'invalid_request', /alg/);
  // Right shape, not on the curve.
  const offCurve = { ...s.key.jwk, y: s.key.jwk.x };
  await rejectsWith(s.issue({ dpopJwk: offCurve }), 'invalid_request', /not a valid public key/);
  await assert.rejects(dpopThumbprint(priv), TypeError);
});

test('dpopThumbprint and ath match the RFC 9449 examples', async () => {
  // RFC 9449 §6.1 (the key of the example proofs) and §7.1 (ath of the example token).
  const jwk = { kty: 'EC', x: 'l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs', y: '9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA', crv: 'P-256' };
  assert.equal(await dpopThumbprint(jwk), '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I');
  assert.equal(accessTokenHash('Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU'), 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo');
});

test('issueLease validates the principal and budgets', async (t) => {
  const s = await setup(t);
  await rejectsWith(s.issue({ principal: '' }), 'invalid_request', /principal/);
  await rejectsWith(s.issue({ principal: 'a\nb' }), 'invalid_request', /principal/);
  await rejectsWith(s.issue({ budgets: { max_calls: 0 } }), 'invalid_request', /max_calls/);
  await rejectsWith(s.issue({ budgets: { max_calls: 1.5 } }), 'invalid_request', /max_calls/);
  await rejectsWith(s.issue({ budgets: { max_cost: -1 } }), 'invalid_request', /max_cost/);
  await rejectsWith(s.issue({ budgets: { max_cost_usd_cents: 100 } }), 'invalid_request', /max_cost_usd_cents/);
});

test('parseLeaseRequest: strict body, unknown fields rejected at every level', async () => {
  const { jwk } = await createDpopKey();
  assert.deepEqual(parseLeaseRequest({ scopes: ['tools:call'], dpop_jwk: jwk }), { scopes: ['tools:call'], dpop_jwk: jwk });
  assert.deepEqual(parseLeaseRequest({ scopes: ['tools:call'], dpop_jwk: jwk, budgets: { max_calls: 3 } }).budgets, { max_calls: 3 });
  assert.equal(parseLeaseRequest({ scopes: ['tools:call'], dpop_jwk: jwk, budgets: null }).budgets, undefined);
  throwsWith(() => parseLeaseRequest(null), 'invalid_request', /object/);
  throwsWith(() => parseLeaseRequest([]), 'invalid_request', /object/);
  throwsWith(() => parseLeaseRequest({ dpop_jwk: jwk }), 'invalid_request', /scopes/);
  throwsWith(() => parseLeaseRequest({ scopes: ['tools:call'] }), 'invalid_request', /dpop_jwk/);
  throwsWith(() => parseLeaseRequest({ scopes: ['tools:call'], dpop_jwk: jwk, principal: 'root' }), 'invalid_request', /unknown field "principal"/);
  throwsWith(() => parseLeaseRequest({ scopes: ['tools:call'], dpop_jwk: jwk, fs_root: '/work' }), 'invalid_request', /fs_root/);
  throwsWith(() => parseLeaseRequest({ scopes: ['tools:call'], dpop_jwk: jwk, budgets: { max_calls: 1, max_cost_usd_cents: 5 } }), 'invalid_request', /max_cost_usd_cents/);
  throwsWith(() => parseLeaseRequest({ scopes: ['tools:call'], dpop_jwk: { ...jwk, d: 'x' } }), 'invalid_request', /private/);
  throwsWith(() => parseLeaseRequest({ scopes: ['TOOLS'], dpop_jwk: jwk }), 'invalid_request', /scopes\[0\]/);
  throwsWith(() => parseLeaseRequest({ scopes: [], dpop_jwk: jwk }), 'invalid_request');
  throwsWith(() => parseLeaseRequest({ scopes: ['tools:call'], dpop_jwk: 'jwk' }), 'invalid_request', /dpop_jwk/);
  // JSON.parse of a hostile body: __proto__ is an own key and is refused like any unknown field.
  throwsWith(() => parseLeaseRequest(JSON.parse(`{"scopes":["tools:call"],"dpop_jwk":${JSON.stringify(jwk)},"__proto__":{"x":1}}`)), 'invalid_request', /__proto__/);
});
