// `latchgate receipts verify`: exit 0 only for a bundle verified with trusted
// keys (or the bundle's own, asked for by name), 2 naming the first failed
// check, 125 for usage errors; --json gives the whole report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBundle, REQUEST } from '../helpers/bundle-fixture.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const run = (...args) => spawnSync(process.execPath, [CLI, 'receipts', 'verify', ...args], { encoding: 'utf8' });

function setup(t) {
  const dir = mkdtempSync(join(tmpdir(), 'lg-receipts-verify-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = makeBundle({ newerSize: 9 });
  const file = (name, content) => {
    const p = join(dir, name);
    writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
    return p;
  };
  return { f, dir, file, bundle: file('bundle.json', f.bundle), jwks: file('receipt-keys.json', { keys: [f.receiptKey.jwk] }), vkey: f.bundle.checkpoint.vkey };
}

test('a good bundle with the trusted keys (a JWKS file and an inline verifier key): exit 0, every check ok', (t) => {
  const s = setup(t);
  const r = run(s.bundle, '--trusted-key', s.jwks, '--trusted-key', s.vkey, '--request', s.file('request.json', REQUEST));
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^verified: receipt /m);
  assert.doesNotMatch(r.stdout, /FAILED|not checked/);
  const j = run(s.bundle, '--trusted-key', s.jwks, '--trusted-key', s.vkey, '--json');
  assert.equal(j.status, 0);
  const report = JSON.parse(j.stdout);
  assert.equal(report.verdict, 'verified');
  assert.equal(report.accepted, true);
  assert.equal(report.checks.find((c) => c.id === 'request').status, 'not_checked');
});

test('without trusted keys: exit 2 and the fix; --trust-bundle-keys accepts the bundle\'s own keys, and says so', (t) => {
  const s = setup(t);
  const r = run(s.bundle);
  assert.equal(r.status, 2);
  assert.match(r.stdout, /UNAUTHENTICATED/);
  assert.match(r.stdout, /not accepted: give the trusted keys \(--trusted-key\), or --trust-bundle-keys/);
  const own = run(s.bundle, '--trust-bundle-keys', '--json');
  assert.equal(own.status, 0);
  const report = JSON.parse(own.stdout);
  assert.equal(report.verdict, 'unauthenticated');
  assert.equal(report.trust_bundle_keys, true);
  // A key that is not the signer's: refused.
  const other = makeBundle();
  const r2 = run(s.bundle, '--trusted-key', JSON.stringify(other.receiptKey.jwk), '--trusted-key', s.vkey);
  assert.equal(r2.status, 2);
  assert.match(r2.stdout, /NOT VERIFIED: receipt_key_trust failed/);
});

test('a tampered bundle: exit 2 naming the first failed check', (t) => {
  const s = setup(t);
  const b = structuredClone(s.f.bundle);
  b.inclusion_proof[0] = Buffer.alloc(32, 3).toString('base64');
  const r = run(s.file('tampered.json', b), '--trusted-key', s.jwks, '--trusted-key', s.vkey);
  assert.equal(r.status, 2);
  assert.match(r.stdout, /FAILED +event included in the checkpoint: root_mismatch/);
  assert.match(r.stdout, /^NOT VERIFIED: inclusion failed/m);
  const wrongRequest = run(s.bundle, '--trusted-key', s.jwks, '--trusted-key', s.vkey, '--request', s.file('other.json', { ...REQUEST, body: {} }));
  assert.equal(wrongRequest.status, 2);
  assert.match(wrongRequest.stdout, /NOT VERIFIED: request failed/);
  const notJson = run(s.file('garbage.json', 'not json'));
  assert.equal(notJson.status, 2);
  assert.match(notJson.stdout, /NOT VERIFIED: bundle failed: \$: not a JSON document: expected a value, found "n" at line 1 column 1/);
});

test('usage errors exit 125 with the problem named', (t) => {
  const s = setup(t);
  for (const [args, re] of [
    [[], /needs the bundle file/],
    [[join(s.dir, 'missing.json')], /cannot read bundle .*missing\.json: ENOENT/],
    [[s.bundle, '--trusted-key', join(s.dir, 'nokeys')], /cannot read trusted key file .*nokeys/],
    [[s.bundle, '--trusted-key', s.file('bad-keys.json', { keys: [{ kty: 'RSA' }] })], /--trusted-key .*bad-keys\.json \$\.keys\[0\]\.kty: expected "OKP"/],
    [[s.bundle, '--request', s.file('req.txt', '{"a":1,"a":2}')], /--request .* is not a JSON document: the member "a" appears twice/],
    [[s.bundle, '--trust-bundle-keys', '--trusted-key', s.vkey], /exclude each other/],
    [[s.bundle, '--no-such-option'], /unknown option/],
  ]) {
    const r = run(...args);
    assert.equal(r.status, 125, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test('--print-page-path prints where the built verify page is', () => {
  const r = run('--print-page-path');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout.trim(), /\/dist\/verify\.html$/);
  assert.ok(existsSync(r.stdout.trim()));
});

test('a bundle cannot forge report lines: a key id with a newline is refused, and every detail stays on its own line', (t) => {
  const s = setup(t);
  const forged = `verified: receipt ${s.f.receipt.receipt_id} is signed by a trusted key and its event is in the log ${s.f.origin} at size 7`;
  const lines = (out) => out.split('\n');
  // The receipt's signing_key_id and the bundle key's kid carry a newline and a line that reads as the verdict.
  const b = structuredClone(s.f.bundle);
  b.receipt.signing_key_id = b.receipt_key.kid = `x\n${forged}`;
  const r = run(s.file('kid.json', b), '--trusted-key', s.jwks, '--trusted-key', s.vkey);
  assert.equal(r.status, 2);
  assert.match(r.stdout, /^NOT VERIFIED: bundle failed: \$\.receipt\.signing_key_id: expected a key id/m);
  assert.ok(!lines(r.stdout).some((l) => l.startsWith('verified:')), r.stdout);
  // Whatever else reaches a line (here the file's own name) is escaped, not laid out.
  const named = s.file(`b\n${forged.replaceAll('/', '_')}.json`, s.f.bundle);
  const r2 = run(named, '--trusted-key', s.jwks, '--trusted-key', s.vkey);
  assert.equal(r2.status, 0, r2.stdout + r2.stderr);
  assert.equal(lines(r2.stdout).filter((l) => l.startsWith('verified:')).length, 1, r2.stdout);
  assert.match(r2.stdout, /^receipt bundle .*b\\u\{a\}verified: receipt/m);
});
