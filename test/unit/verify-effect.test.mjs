// Effect verification (src/gate/verify-effect.ts): "verified" only on
// host-observed evidence; the provider's own claims are checked against it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyEffect } from '../../dist/gate/verify-effect.js';

const manifest = (verifier_kind, verification_config) => ({ action_id: 'a', verifier_kind, ...(verification_config ? { verification_config } : {}) });
const http = (status, url = 'https://api.example.com/x') => ({ kind: 'http', method: 'POST', url, status, body_sha256: 'sha256:00' });
const ok = (output) => ({ ok: true, output });

test('a provider that failed, or gave nothing, is never verified', () => {
  for (const kind of ['http_status', 'none', 'fs_hash']) {
    assert.deepEqual(verifyEffect(manifest(kind), undefined, [http(200)]), { status: 'provider_failed_before_verification', reason: 'the provider did not complete' });
    assert.deepEqual(verifyEffect(manifest(kind), { ok: false, error: 'quota' }, [http(200)]), { status: 'provider_failed_before_verification', reason: 'quota' });
    assert.deepEqual(verifyEffect(manifest(kind), { ok: false }, []), { status: 'provider_failed_before_verification', reason: 'the provider did not complete' });
  }
});

test('verifier none: unverifiable as declared, whatever the output or evidence', () => {
  assert.deepEqual(verifyEffect(manifest('none'), ok({}), []), { status: 'unverifiable_declared' });
  assert.deepEqual(verifyEffect(manifest('none', { required_fields: ['id'] }), ok({}), [http(500)]), { status: 'unverifiable_declared' });
});

test('required fields missing from the output: verification_failed naming them', () => {
  const m = manifest('http_status', { required_fields: ['id', 'url', 'status_code'] });
  assert.deepEqual(verifyEffect(m, ok({ url: 'u' }), [http(200)]), { status: 'verification_failed', reason: 'the output lacks id, status_code' });
  assert.deepEqual(verifyEffect(m, ok(undefined), [http(200)]), { status: 'verification_failed', reason: 'the output lacks id, url, status_code' });
  assert.equal(verifyEffect(m, ok({ id: 1, url: 'u', status_code: 200 }), [http(200)]).status, 'verified');
  // Present with a falsy value still counts as present.
  assert.equal(verifyEffect(m, ok({ id: 0, url: '', status_code: 200 }), [http(200)]).status, 'verified');
});

test('http_status: the host must have seen an HTTP call', () => {
  assert.deepEqual(verifyEffect(manifest('http_status'), ok({ status_code: 200 }), []), { status: 'verification_failed', reason: 'no HTTP call was observed by the host' });
});

test('http_status: the last call the host saw decides, 2xx by default', () => {
  const m = manifest('http_status');
  for (const s of [200, 201, 204, 299]) assert.deepEqual(verifyEffect(m, ok({}), [http(s)]), { status: 'verified', evidence: http(s) }, String(s));
  for (const s of [199, 300, 404, 500]) assert.deepEqual(verifyEffect(m, ok({}), [http(s)]), { status: 'verification_failed', evidence: http(s), reason: `status ${s} is not a success` }, String(s));
  const calls = [http(500, 'https://a/1'), http(200, 'https://a/2')];
  assert.deepEqual(verifyEffect(m, ok({}), calls), { status: 'verified', evidence: calls[1] });
  assert.equal(verifyEffect(m, ok({}), [http(200), http(503)]).status, 'verification_failed', 'an earlier success does not cover a later failure');
});

test('http_status with expected_status: exactly those statuses succeed', () => {
  const m = manifest('http_status', { expected_status: [201, 409] });
  assert.equal(verifyEffect(m, ok({}), [http(201)]).status, 'verified');
  assert.equal(verifyEffect(m, ok({}), [http(409)]).status, 'verified');
  assert.deepEqual(verifyEffect(m, ok({}), [http(200)]), { status: 'verification_failed', evidence: http(200), reason: 'status 200 is not a success' });
});

test('http_status: a provider claiming another status than the host saw is caught, in status_code or status', () => {
  const m = manifest('http_status');
  assert.deepEqual(verifyEffect(m, ok({ status_code: 200 }), [http(500)]), { status: 'verification_failed', evidence: http(500), reason: 'the provider claimed status 200; the host observed 500' });
  assert.deepEqual(verifyEffect(m, ok({ status: 201 }), [http(200)]), { status: 'verification_failed', evidence: http(200), reason: 'the provider claimed status 201; the host observed 200' });
  // status_code wins over status when both are there.
  assert.equal(verifyEffect(m, ok({ status_code: 200, status: 500 }), [http(200)]).status, 'verified');
  // A claim that is not a number is not a status claim.
  assert.equal(verifyEffect(m, ok({ status: 'ok' }), [http(200)]).status, 'verified');
  assert.equal(verifyEffect(m, ok({ status_code: 204 }), [http(204)]).status, 'verified');
});

test('a verifier without host evidence of its kind (fs_hash): verification_failed, never verified on the provider\'s word', () => {
  assert.deepEqual(verifyEffect(manifest('fs_hash'), ok({ sha256: 'x' }), [http(200)]), { status: 'verification_failed', reason: 'no file operation was observed by the host' });
});

test('fs_hash: verified by the content hash the host observed; a provider claiming other content is caught', () => {
  const read = { kind: 'fs', op: 'read', path: 'src/a', sha256_before: 'ab', sha256_after: 'ab', bytes: 2 };
  assert.deepEqual(verifyEffect(manifest('fs_hash'), ok({ sha256: 'sha256:ab' }), [read]), { status: 'verified', evidence: read });
  assert.deepEqual(verifyEffect(manifest('fs_hash'), ok({ sha256: 'sha256:cd' }), [read]), { status: 'verification_failed', evidence: read, reason: 'the provider reported content sha256:cd; the host observed sha256:ab at src/a' });
  const del = { kind: 'fs', op: 'delete', path: 'src/b', sha256_before: 'ef', bytes: 1 };
  assert.equal(verifyEffect(manifest('fs_hash'), ok({ path: 'src/b', deleted: true }), [read, del]).status, 'verified');
});
