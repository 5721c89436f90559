// The verify page (dist/verify.html, scripts/build-verify-page.mjs) opened
// from disk in headless Chromium: a good bundle shows verified, each kind of
// tampering shows the check that fails, and the page connects nowhere, even
// when its own script tries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { verifyBundle } from '../../dist/verify/bundle.js';
import { makeBundle, REQUEST } from '../helpers/bundle-fixture.mjs';
import { openVerifyPage, verifyInPage } from '../helpers/verify-page.mjs';

const tamper = (bundle, change) => {
  const b = structuredClone(bundle);
  change(b);
  return JSON.stringify(b);
};

test('verify page in Chromium: verified, unauthenticated, each tampering named; no network request', async (t) => {
  const { browser, page, requests, errors } = await openVerifyPage();
  t.after(() => browser.close());
  const f = makeBundle({ newerSize: 10 });
  const keys = { receiptKeys: JSON.stringify({ keys: [f.receiptKey.jwk] }), checkpointKeys: f.bundle.checkpoint.vkey };
  const good = JSON.stringify(f.bundle);

  const ok = await verifyInPage(page, good, { ...keys, request: JSON.stringify(REQUEST) });
  assert.equal(ok.verdict, 'verified', ok.summary);
  assert.equal(Object.keys(ok.checks).length, 11);
  for (const [id, s] of Object.entries(ok.checks)) assert.equal(s, 'ok', id);
  // The page's report is the CLI's: the same code.
  assert.equal(ok.summary, verifyBundle(good, { trusted: { receiptKeys: [f.receiptKey.jwk], checkpointKeys: [f.bundle.checkpoint.vkey] }, request: { value: REQUEST } }).summary);

  const bare = await verifyInPage(page, good);
  assert.equal(bare.verdict, 'unauthenticated');
  assert.match(bare.summary, /UNAUTHENTICATED/);
  assert.equal(bare.checks.receipt_key_trust, 'not_checked');

  for (const [what, text, check] of [
    ['a receipt field', tamper(f.bundle, (b) => (b.receipt.normalized_result.summary = 'other')), 'receipt_hash'],
    ['an event byte', tamper(f.bundle, (b) => (b.event.canonical_json = b.event.canonical_json.replace('"allow"', '"allox"'))), 'inclusion'],
    ['a proof hash', tamper(f.bundle, (b) => (b.inclusion_proof[0] = Buffer.alloc(32, 9).toString('base64'))), 'inclusion'],
    ['the checkpoint', tamper(f.bundle, (b) => (b.checkpoint.note = b.checkpoint.note.replace('\n7\n', '\n6\n'))), 'checkpoint'],
    ['the consistency proof', tamper(f.bundle, (b) => (b.newer_checkpoint.consistency_proof[0] = Buffer.alloc(32).toString('base64'))), 'consistency'],
    ['the form', tamper(f.bundle, (b) => delete b.receipt_key), 'bundle'],
  ]) {
    const r = await verifyInPage(page, text, keys);
    assert.equal(r.verdict, 'failed', what);
    assert.equal(r.checks[check], 'failed', `${what}: ${r.summary}`);
    assert.match(r.summary, new RegExp(`^NOT VERIFIED: ${check} failed`), what);
  }
  const wrongRequest = await verifyInPage(page, good, { ...keys, request: JSON.stringify({ ...REQUEST, url: 'https://other.example/' }) });
  assert.equal(wrongRequest.checks.request, 'failed');
  const badKey = await verifyInPage(page, good, { ...keys, checkpointKeys: 'not a key' });
  assert.equal(badKey.verdict, 'input-error');
  assert.match(badKey.summary, /trusted checkpoint keys line 1/);

  assert.deepEqual(errors, []);
  // The page itself and the blob: modules it makes from its own text, nothing else.
  assert.ok(requests[0].startsWith('file://'), requests[0]);
  assert.ok(requests.some((u) => u.startsWith('blob:')), 'the module loads are seen as requests');
  assert.deepEqual(requests.filter((u) => !u.startsWith('file://') && !u.startsWith('blob:')), []);
});

test('verify page: its security policy stops any connection, even one its own script attempts (a loopback server sees none)', async (t) => {
  let connections = 0;
  const server = createServer((_, res) => res.end('x'));
  server.on('connection', () => connections++);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const { browser, page } = await openVerifyPage();
  t.after(() => browser.close());
  const url = `http://127.0.0.1:${server.address().port}/`;
  const outcomes = await page.evaluate(async (u) => {
    const tries = {
      fetch: () => fetch(u),
      image: () => new Promise((resolve, reject) => Object.assign(new Image(), { onload: resolve, onerror: reject, src: u })),
      module: () => import(u),
    };
    const out = {};
    for (const [k, f] of Object.entries(tries)) out[k] = await f().then(() => 'connected', () => 'blocked');
    return out;
  }, url);
  assert.deepEqual(outcomes, { fetch: 'blocked', image: 'blocked', module: 'blocked' });
  assert.equal(connections, 0);
  // A page without that policy does reach the server: the count would show a connection.
  const plain = await browser.newPage();
  await plain.goto(url);
  assert.ok(connections > 0);
});
