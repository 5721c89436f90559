// Public vectors through the SDK (../shared/testdata/latchgate-vectors, read
// in place; skipped, and said so, where that folder is absent):
//   - DPoP htu normalisation: a gate configured with one spelling of its
//     public base URL accepts the SDK's proofs made with the other spelling,
//     end to end (the proof is signed by the SDK, checked by the gate);
//   - RFC 8785 golden canonical forms: a receipt whose provider_receipt is a
//     golden input verifies with the SDK only if the SDK hashes exactly the
//     golden canonical text (the expected result_hash is assembled from it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LatchGateClient, verifyReceiptWith } from 'latchgate';
import { grantAll, startGate } from '../helpers/gate.mjs';
import { testdata } from '../helpers/testdata.mjs';

const VECTORS = testdata('latchgate-vectors');
const present = existsSync(VECTORS);
const skip = present ? false : `shared testdata not present (${VECTORS}; set LATCHGATE_TESTDATA)`;
const read = (f) => JSON.parse(readFileSync(resolve(VECTORS, f), 'utf8'));

test('DPoP htu normalisation: the SDK\'s proofs pass a gate whose public base URL is spelled the other way', { skip }, async () => {
  // A base URL carries no query or fragment: those cases are covered by the gate's own normalisation tests.
  const cases = read('dpop/test_cases.json').htu_normalisation_cases.filter((c) => !/[?#]/.test(c.input));
  assert.ok(cases.length >= 5);
  for (const c of cases) {
    for (const [gateBase, clientBase] of [[c.input, c.normalised], [c.normalised, c.input]]) {
      const g = await startGate({ config: { publicBaseUrl: gateBase } });
      try {
        grantAll(g);
        const client = new LatchGateClient({ socket: g.socket, publicBaseUrl: clientBase, env: {} });
        const r = await client.execute('t_ok', { n: 1 });
        assert.equal(r.decision, 'allow', `${c.note}: gate ${gateBase}, client ${clientBase}`);
        client.close();
      } finally {
        await g.close();
      }
    }
  }
});

test('RFC 8785 golden vectors: the SDK verifies a receipt exactly when it hashes the golden canonical text', { skip }, () => {
  const golden = read('jcs/golden.json');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1' };
  const keys = new Map([['k1', jwk]]);
  const base = {
    receipt_id: 'r-1',
    grant_id: 'g-1',
    provider_module_digest: 'builtin:test',
    normalized_result: { kind: 'success', summary: 'completed' },
    verification_outcome: { status: 'verified' },
    effect_evidence: [],
    started_at: '2026-01-01T00:00:00.000Z',
    finished_at: '2026-01-01T00:00:01.000Z',
    failure_class: null,
  };
  // Every field but provider_receipt is plain ASCII with sorted keys: JSON.stringify is its canonical form.
  const sorted = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v);
  for (const v of golden) {
    const fields = { ...base, provider_receipt: null };
    const text = `{${Object.keys(fields).sort().map((k) => `${JSON.stringify(k)}:${k === 'provider_receipt' ? v.canonical : JSON.stringify(sorted(fields[k]))}`).join(',')}}`;
    const resultHash = createHash('sha256').update(text, 'utf8').digest('hex');
    const receipt = { ...base, provider_receipt: v.input, result_hash: resultHash, signing_key_id: 'k1', receipt_signature: sign(null, Buffer.from(resultHash, 'ascii'), privateKey).toString('hex') };
    assert.deepEqual(verifyReceiptWith(keys, receipt), { ok: true, kid: 'k1' }, v.description);
    // The golden digest of the canonical text itself, as the vector states it.
    assert.equal(`sha256:${createHash('sha256').update(v.canonical, 'utf8').digest('hex')}`, v.sha256, v.description);
  }
});
