// The upstream DPoP scenario list (../shared/testdata/latchgate-vectors/dpop,
// read in place): every scenario is generated fresh (random P-256 key, live
// timestamps), mutated as described, and run through verifyRequest; the htu
// normalisation pairs are checked directly and end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import {
  AuthError,
  ReplayCache,
  IAT_MAX_AGE_SECONDS,
  IAT_MAX_SKEW_SECONDS,
  createDpopKey,
  issueLease,
  makeProof,
  normalizeHtu,
  verifyRequest,
  accessTokenHash,
} from '../../dist/gate/auth/index.js';
import { KeyStore } from '../../dist/keys/store.js';
import { openDb } from '../../dist/ledger/db.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';
import { testdata } from '../helpers/testdata.mjs';

const VECTORS = testdata('latchgate-vectors', 'dpop', 'test_cases.json');
const present = existsSync(VECTORS);
const skip = present ? false : `shared testdata not present (${VECTORS}; set LATCHGATE_TESTDATA)`;
const doc = present ? JSON.parse(readFileSync(VECTORS, 'utf8')) : { test_cases: [], htu_normalisation_cases: [] };

const BASE = 'http://localhost:3000';
const PATH = '/v1/actions/demo.echo/execute';
const URL_ = BASE + PATH;

// Upstream's verifier reports every failure as InvalidDPoP; at its API layer
// a key-binding failure is its own code, which is what verifyRequest throws.
const CODE_FOR = { InvalidDPoP: 'invalid_dpop' };
const CODE_OVERRIDE = { wrong_key_binding: 'key_binding_failed' };

const appendChar = (jwt, segment) => {
  const parts = jwt.split('.');
  parts[segment] += 'A';
  return parts.join('.');
};

async function setup(t) {
  const dir = tempDir(t, 'latchgate-auth-vec-');
  const keys = new KeyStore(join(dir, 'keys'));
  const db = openDb(join(dir, 'ledger.db'));
  t.after(() => db.close());
  const replay = new ReplayCache(db);
  const key = await createDpopKey();
  const newLease = (jwk = key.jwk) =>
    issueLease(
      { principal: 'alice', allowedScopes: ['tools:call'], requestedScopes: ['tools:call'], dpopJwk: jwk, ttlSeconds: 300 },
      { keys, currentEpoch: 0 },
    );
  return { ctx: { keys, replay, currentEpoch: 0 }, key, newLease };
}

/** Builds {lease, proof, method, url} for one scenario id, or undefined for an unknown id. */
const SCENARIOS = {
  async valid_proof(s) {
    const { lease_jwt } = await s.newLease();
    return { lease: lease_jwt, proof: await makeProof({ key: s.key, method: 'POST', url: URL_, leaseJwt: lease_jwt }) };
  },
  async wrong_method(s) {
    const { lease_jwt } = await s.newLease();
    return { lease: lease_jwt, method: 'GET', proof: await makeProof({ key: s.key, method: 'POST', url: URL_, leaseJwt: lease_jwt }) };
  },
  async wrong_url(s) {
    const { lease_jwt } = await s.newLease();
    const proof = await makeProof({ key: s.key, method: 'POST', url: `${BASE}/v1/actions/other/execute`, leaseJwt: lease_jwt });
    return { lease: lease_jwt, proof };
  },
  async expired_iat(s) {
    const { lease_jwt } = await s.newLease();
    const iat = Math.floor(Date.now() / 1000) - IAT_MAX_AGE_SECONDS - 2;
    return { lease: lease_jwt, proof: await makeProof({ key: s.key, method: 'POST', url: URL_, leaseJwt: lease_jwt, iat }) };
  },
  async future_iat(s) {
    const { lease_jwt } = await s.newLease();
    const iat = Math.floor(Date.now() / 1000) + IAT_MAX_SKEW_SECONDS + 2;
    return { lease: lease_jwt, proof: await makeProof({ key: s.key, method: 'POST', url: URL_, leaseJwt: lease_jwt, iat }) };
  },
  async wrong_key_binding(s) {
    const other = await createDpopKey();
    const { lease_jwt } = await s.newLease(other.jwk); // cnf.jkt of another key
    return { lease: lease_jwt, proof: await makeProof({ key: s.key, method: 'POST', url: URL_, leaseJwt: lease_jwt }) };
  },
  async wrong_ath(s) {
    const a = await s.newLease();
    const b = await s.newLease();
    return { lease: b.lease_jwt, proof: await makeProof({ key: s.key, method: 'POST', url: URL_, leaseJwt: a.lease_jwt }) };
  },
  async tampered_header(s) {
    const { lease_jwt } = await s.newLease();
    const proof = await makeProof({ key: s.key, method: 'POST', url: URL_, leaseJwt: lease_jwt });
    return { lease: lease_jwt, proof: appendChar(proof, 0) };
  },
  async tampered_payload(s) {
    const { lease_jwt } = await s.newLease();
    const proof = await makeProof({ key: s.key, method: 'POST', url: URL_, leaseJwt: lease_jwt });
    return { lease: lease_jwt, proof: appendChar(proof, 1) };
  },
  async header_key_vs_signing_key_mismatch(s) {
    const other = await createDpopKey();
    const { lease_jwt } = await s.newLease();
    // Signed with `other`, embedding the lease's key: signature fails against the embedded key.
    const proof = await makeProof({ key: other.privateKey, jwk: s.key.jwk, method: 'POST', url: URL_, leaseJwt: lease_jwt });
    return { lease: lease_jwt, proof };
  },
  async missing_jwk_header(s) {
    const { lease_jwt } = await s.newLease();
    const proof = await new SignJWT({ jti: crypto.randomUUID(), htm: 'POST', htu: URL_, iat: Math.floor(Date.now() / 1000), ath: accessTokenHash(lease_jwt) })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256' })
      .sign(s.key.privateKey);
    return { lease: lease_jwt, proof };
  },
  async wrong_typ(s) {
    const { lease_jwt } = await s.newLease();
    const proof = await new SignJWT({ jti: crypto.randomUUID(), htm: 'POST', htu: URL_, iat: Math.floor(Date.now() / 1000), ath: accessTokenHash(lease_jwt) })
      .setProtectedHeader({ typ: 'JWT', alg: 'ES256', jwk: s.key.jwk })
      .sign(s.key.privateKey);
    return { lease: lease_jwt, proof };
  },
  async two_part_token(s) {
    const { lease_jwt } = await s.newLease();
    const proof = await makeProof({ key: s.key, method: 'POST', url: URL_, leaseJwt: lease_jwt });
    return { lease: lease_jwt, proof: proof.split('.').slice(0, 2).join('.') };
  },
};

test('vector file declares the windows and algorithm we implement', { skip }, () => {
  assert.equal(doc.iat_window_secs.max_age, IAT_MAX_AGE_SECONDS);
  assert.equal(doc.iat_window_secs.clock_skew, IAT_MAX_SKEW_SECONDS);
  assert.match(doc.algorithm, /^ES256/);
  assert.ok(doc.test_cases.length > 0 && doc.htu_normalisation_cases.length > 0, 'empty vector lists');
  for (const c of doc.test_cases) assert.ok(SCENARIOS[c.id], `no generator for scenario ${c.id}`);
});

for (const c of doc.test_cases) {
  test(`scenario ${c.id}: ${c.expected}`, { skip }, async (t) => {
    const build = SCENARIOS[c.id];
    assert.ok(build, `no generator for scenario ${JSON.stringify(c.id)}: add one to this file`);
    const s = await setup(t);
    const r = await build(s);
    const run = () =>
      verifyRequest({ authorization: `DPoP ${r.lease}`, dpop: r.proof, method: r.method ?? 'POST', url: URL_ }, s.ctx);
    if (c.expected === 'ALLOW') {
      const v = await run();
      assert.equal(v.principal, 'alice');
      return;
    }
    assert.equal(c.expected, 'DENY');
    const code = CODE_OVERRIDE[c.id] ?? CODE_FOR[c.error_variant];
    assert.ok(code, `unknown error_variant ${c.error_variant}`);
    await assert.rejects(run, (e) => {
      assert.ok(e instanceof AuthError, `expected AuthError, got ${e}`);
      assert.equal(e.code, code, `${c.id}: ${e.message}`);
      if (c.error_contains) {
        assert.ok(
          e.message.toLowerCase().includes(c.error_contains.toLowerCase()),
          `${c.id}: message ${JSON.stringify(e.message)} should contain ${JSON.stringify(c.error_contains)}`,
        );
      }
      return true;
    });
  });
}

for (const h of doc.htu_normalisation_cases) {
  test(`htu normalisation: ${h.note}`, { skip }, async (t) => {
    assert.equal(normalizeHtu(h.input), h.normalised);
    assert.equal(normalizeHtu(h.normalised), h.normalised, 'idempotent');
    // End to end: a proof for the raw form is accepted on the normalised URL, and vice versa.
    const s = await setup(t);
    const { lease_jwt } = await s.newLease();
    for (const [proofUrl, requestUrl] of [
      [h.input, h.normalised],
      [h.normalised, h.input],
    ]) {
      const proof = await makeProof({ key: s.key, method: 'GET', url: proofUrl, leaseJwt: lease_jwt });
      const v = await verifyRequest({ authorization: `DPoP ${lease_jwt}`, dpop: proof, method: 'GET', url: requestUrl }, s.ctx);
      assert.equal(v.principal, 'alice');
    }
  });
}
