// Receipt bundles (src/verify/bundle.ts, bundle-format.ts): a good bundle
// verifies, with trusted keys as "verified" and without them only as
// "unauthenticated"; each kind of tampering fails the check that names it;
// a bad bundle is refused with the JSON path of the fault.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyBundle } from '../../dist/verify/bundle.js';
import { parseBundle } from '../../dist/verify/bundle-format.js';
import { mergeTrustedKeys, parseTrustedKeys } from '../../dist/verify/trusted-keys.js';
import { actionCallEvent, ed25519Key, makeBundle, receipt2, REQUEST, signReceipt2 } from '../helpers/bundle-fixture.mjs';

const status = (r) => Object.fromEntries(r.checks.map((c) => [c.id, c.status]));
const trustOf = (f) => mergeTrustedKeys(parseTrustedKeys(JSON.stringify({ keys: [f.receiptKey.jwk] }), 'receipt keys'), parseTrustedKeys(f.bundle.checkpoint.vkey, 'checkpoint key'));
const verify = (bundle, options) => verifyBundle(JSON.stringify(bundle), options);
const clone = (v) => structuredClone(v);

/** The report fails, first at `id`, with a detail matching `re`. */
function failsAt(r, id, re) {
  assert.equal(r.verdict, 'failed', r.summary);
  assert.equal(r.first_failure.id, id, `${r.first_failure.id}: ${r.first_failure.detail}`);
  assert.match(r.first_failure.detail, re);
  assert.match(r.summary, new RegExp(`^NOT VERIFIED: ${id} failed`));
}

test('a good bundle with trusted keys and its request: verified, every check ok', () => {
  const f = makeBundle({ newerSize: 12 });
  const r = verify(f.bundle, { trusted: trustOf(f), request: { value: REQUEST } });
  assert.equal(r.verdict, 'verified', r.summary);
  for (const c of r.checks) assert.equal(c.status, 'ok', `${c.id}: ${c.detail}`);
  assert.equal(r.receipt_id, f.receipt.receipt_id);
  assert.deepEqual({ ...r.checkpoint, root: undefined }, { origin: f.origin, size: 7, root: undefined });
  assert.equal(r.leaf_index, 3);
});

test('without trusted keys the bundle is only "unauthenticated", and the report says which keys are the bundle\'s own; optional checks say not_checked', () => {
  const f = makeBundle();
  const r = verify(f.bundle);
  assert.equal(r.verdict, 'unauthenticated');
  assert.match(r.summary, /UNAUTHENTICATED: receipt_key and checkpoint_key only the bundle's own/);
  assert.match(r.summary, /not checked: consistency, request/);
  const s = status(r);
  assert.equal(s.receipt_key_trust, 'not_checked');
  assert.equal(s.checkpoint_key_trust, 'not_checked');
  assert.equal(s.consistency, 'not_checked');
  assert.equal(s.request, 'not_checked');
  for (const id of ['bundle', 'receipt_hash', 'receipt_signature', 'receipt_key_validity', 'event', 'checkpoint', 'inclusion']) assert.equal(s[id], 'ok', id);
  // Only one of the two keys trusted: still not verified.
  const onlyReceipt = verify(f.bundle, { trusted: parseTrustedKeys(JSON.stringify(f.receiptKey.jwk), 'k') });
  assert.equal(onlyReceipt.verdict, 'unauthenticated');
  assert.match(onlyReceipt.summary, /checkpoint_key only/);
});

test('every leaf position and tree size verifies (the proof is RFC 9162 for each)', () => {
  const receiptKey = ed25519Key();
  const checkpointKey = ed25519Key();
  for (const size of [1, 2, 3, 5, 8, 13]) {
    for (let leaf = 0; leaf < size; leaf++) {
      const f = makeBundle({ size, leaf, receiptKey, checkpointKey, newerSize: size + 3 });
      const r = verify(f.bundle, { trusted: trustOf(f) });
      assert.equal(r.verdict, 'verified', `size ${size} leaf ${leaf}: ${r.summary}`);
    }
  }
});

test('tampering with the receipt fails receipt_hash (any covered member), or receipt_signature', () => {
  const f = makeBundle();
  const t = trustOf(f);
  for (const [what, change] of [
    ['the result', (b) => (b.receipt.normalized_result.summary = 'failed')],
    ['the principal', (b) => (b.receipt.principal = 'agent-2')],
    ['the finish time', (b) => (b.receipt.finished_at = '2025-06-01T10:00:01.501Z')],
    ['a new member', (b) => (b.receipt.extra = true)],
    ['a removed member', (b) => delete b.receipt.action_digest],
  ]) {
    const b = clone(f.bundle);
    change(b);
    failsAt(verify(b, { trusted: t }), 'receipt_hash', /the receipt was changed after it was signed/);
  }
  const b = clone(f.bundle);
  b.receipt.receipt_signature = b.receipt.receipt_signature.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  failsAt(verify(b, { trusted: t }), 'receipt_signature', /does not verify with key/);
});

test('a receipt re-signed by another key: unauthenticated without trusted keys, refused with them; its event then no longer matches either', () => {
  const f = makeBundle();
  const mallory = ed25519Key();
  const b = clone(f.bundle);
  b.receipt = signReceipt2({ ...b.receipt, normalized_result: { kind: 'success', summary: 'transferred 1000000' } }, mallory);
  b.receipt_key = mallory.jwk;
  const r = verify(b, { trusted: trustOf(f) });
  assert.equal(status(r).receipt_signature, 'ok'); // by Mallory's key, which the bundle carries
  assert.equal(status(r).receipt_key_trust, 'failed');
  assert.match(r.checks.find((c) => c.id === 'receipt_key_trust').detail, /not among the 1 trusted receipt key/);
  assert.equal(status(r).event, 'failed'); // the ledger's event names the original result_hash
  assert.equal(verify(b).verdict, 'failed');
  // And with the event rewritten to match, its leaf is no longer in the signed tree.
  b.event.canonical_json = actionCallEvent(b.receipt);
  const r2 = verify(b);
  assert.equal(status(r2).event, 'ok');
  failsAt(r2, 'inclusion', /root_mismatch/);
});

test('the receipt key: its kid must be its thumbprint and the receipt\'s signing_key_id; a key retired before the receipt signs nothing', () => {
  const f = makeBundle();
  const other = ed25519Key();
  let b = clone(f.bundle);
  b.receipt_key = { ...b.receipt_key, x: other.x };
  failsAt(verify(b), 'receipt_signature', /thumbprint is .*: the key was replaced/);
  b = clone(f.bundle);
  b.receipt_key = other.jwk;
  failsAt(verify(b), 'receipt_signature', /the receipt names key .* but the bundle carries key/);
  b = clone(f.bundle);
  b.receipt_key.retired_at = '2025-06-01T10:00:01.000Z'; // between started_at and finished_at
  failsAt(verify(b), 'receipt_key_validity', /retired at 2025-06-01T10:00:01.000Z, before the receipt's time 2025-06-01T10:00:01.500Z/);
  b.receipt_key.retired_at = '2025-06-01T10:00:01.500Z';
  assert.equal(verify(b).verdict, 'unauthenticated');
  // With trusted keys, the trusted entry's retired_at is the one that counts, whatever the bundle says.
  const trusted = trustOf(f);
  trusted.receiptKeys = [{ ...f.receiptKey.jwk, retired_at: '2025-05-01T00:00:00.000Z' }];
  failsAt(verify(f.bundle, { trusted }), 'receipt_key_validity', /retired at 2025-05-01/);
});

test('the event: a changed byte, bytes not in RFC 8785 form, or an event of another receipt each fail', () => {
  const f = makeBundle();
  const t = trustOf(f);
  let b = clone(f.bundle);
  b.event.canonical_json = b.event.canonical_json.replace('"decision":"allow"', '"decision":"deny"');
  failsAt(verify(b, { trusted: t }), 'inclusion', /root_mismatch/);
  b = clone(f.bundle);
  b.event.canonical_json = JSON.stringify(JSON.parse(b.event.canonical_json), null, 1);
  failsAt(verify(b, { trusted: t }), 'event', /not in RFC 8785 form/);
  b = clone(f.bundle);
  b.event.canonical_json = b.event.canonical_json.replace('"event_type":"action_call"', '"event_type":"admin_reload"');
  failsAt(verify(b, { trusted: t }), 'event', /not the action_call/);
  // The event, proof and checkpoint of another receipt, all genuine.
  const g = makeBundle({ receiptKey: f.receiptKey, checkpointKey: f.checkpointKey });
  b = { ...clone(g.bundle), receipt: f.bundle.receipt };
  failsAt(verify(b, { trusted: t }), 'event', /execution.receipt_id is .*, not this receipt's/);
  // The same receipt id with another hash in the event (a re-signed receipt).
  b = clone(f.bundle);
  const x = JSON.parse(b.event.canonical_json);
  x.execution.receipt_hash = 'ab'.repeat(32);
  b.event.canonical_json = JSON.stringify(x);
  failsAt(verify(b, { trusted: t }), 'event', /execution.receipt_hash is "abab.*not this receipt's result_hash/);
});

test('the proof and the checkpoint: a changed proof hash, leaf index, root or size, or a checkpoint by another key each fail', () => {
  const f = makeBundle({ newerSize: 11 });
  const t = trustOf(f);
  let b = clone(f.bundle);
  b.inclusion_proof[1] = Buffer.alloc(32, 7).toString('base64');
  failsAt(verify(b, { trusted: t }), 'inclusion', /root_mismatch/);
  b = clone(f.bundle);
  b.inclusion_proof.pop();
  failsAt(verify(b, { trusted: t }), 'inclusion', /wrong_proof_length/);
  b = clone(f.bundle);
  b.event.leaf_index = 2;
  failsAt(verify(b, { trusted: t }), 'inclusion', /root_mismatch/);
  b = clone(f.bundle);
  b.event.leaf_index = 7;
  failsAt(verify(b, { trusted: t }), 'inclusion', /index_out_of_range/);
  b = clone(f.bundle);
  b.checkpoint.note = b.checkpoint.note.replace(/\n7\n/, '\n8\n');
  failsAt(verify(b, { trusted: t }), 'checkpoint', /does not verify/);
  b = clone(f.bundle);
  const lines = b.checkpoint.note.split('\n');
  lines[2] = Buffer.alloc(32, 1).toString('base64');
  b.checkpoint.note = lines.join('\n');
  failsAt(verify(b, { trusted: t }), 'checkpoint', /does not verify/);
  // A checkpoint signed by another key of the same name: consistent on its own, refused against the trusted key.
  const forged = makeBundle({ receipt: f.receipt, receiptKey: f.receiptKey, origin: f.origin });
  const r = verify(forged.bundle, { trusted: t });
  assert.equal(status(r).checkpoint, 'ok');
  failsAt(r, 'checkpoint_key_trust', /not signed by any of the 1 trusted checkpoint key/);
  assert.equal(verify(forged.bundle).verdict, 'unauthenticated');
  // A checkpoint whose origin is not its key's name.
  const misnamed = makeBundle({ checkpointKey: f.checkpointKey, origin: 'other.log' });
  misnamed.bundle.checkpoint.note = f.bundle.checkpoint.note.replace(f.origin, 'other.log');
  assert.equal(verify(misnamed.bundle).verdict, 'failed');
});

test('the newer checkpoint: a bad consistency proof, another log, or a smaller tree fail consistency', () => {
  const f = makeBundle({ newerSize: 11 });
  const t = trustOf(f);
  let b = clone(f.bundle);
  b.newer_checkpoint.consistency_proof[0] = Buffer.alloc(32).toString('base64');
  failsAt(verify(b, { trusted: t }), 'consistency', /root_mismatch/);
  b = clone(f.bundle);
  b.newer_checkpoint.consistency_proof = [];
  failsAt(verify(b, { trusted: t }), 'consistency', /wrong_proof_length/);
  b = clone(f.bundle);
  const older = makeBundle({ size: 5, leaf: 3, receiptKey: f.receiptKey, checkpointKey: f.checkpointKey, receipt: f.receipt });
  b.newer_checkpoint = { ...older.bundle.checkpoint, consistency_proof: [] };
  failsAt(verify(b, { trusted: t }), 'consistency', /sizes_out_of_order/);
  const equal = clone(f.bundle);
  equal.newer_checkpoint = { ...f.bundle.checkpoint, consistency_proof: [] };
  assert.equal(verify(equal, { trusted: t }).verdict, 'verified');
});

test('the request: the body the receipt was for matches request_hash; another body does not', () => {
  const f = makeBundle();
  const t = trustOf(f);
  assert.equal(status(verify(f.bundle, { trusted: t, request: { value: REQUEST } })).request, 'ok');
  // Key order and number spelling do not matter (RFC 8785); content does.
  assert.equal(status(verify(f.bundle, { trusted: t, request: { value: JSON.parse('{"body":{"n":15e20,"name":"caf\\u00e9 ✓"},"url":"https://api.example.com/v1/items"}') } })).request, 'ok');
  failsAt(verify(f.bundle, { trusted: t, request: { value: { ...REQUEST, url: 'https://evil.example/' } } }), 'request', /not to the receipt's request_hash/);
  const noHash = makeBundle({ receipt: receipt2(f.receiptKey, { request_hash: undefined }), receiptKey: f.receiptKey });
  failsAt(verify(noHash.bundle, { request: { value: REQUEST } }), 'request', /no request_hash/);
});

test('bad bundles are refused by the bundle check, naming the JSON path and what was expected', () => {
  const f = makeBundle({ newerSize: 9 });
  const { receipt_format: _, ...format1 } = f.receipt;
  const cases = [
    [(b) => (b.bundle_format = 'latchgate-receipt-bundle/2'), /^\$\.bundle_format: expected "latchgate-receipt-bundle\/1"/],
    [(b) => (b.receipt = format1), /^\$\.receipt\.receipt_format: missing: this is a format-1 receipt.*export needs a receipt written by a latchgate that writes receipt_format 2/],
    [(b) => (b.receipt.receipt_format = 3), /^\$\.receipt\.receipt_format: expected 2, got number 3/],
    [(b) => (b.receipt.result_hash = b.receipt.result_hash.toUpperCase()), /^\$\.receipt\.result_hash: expected a SHA-256 in 64 lowercase hex/],
    [(b) => (b.receipt.finished_at = 'yesterday'), /^\$\.receipt\.finished_at: expected an RFC 3339 date-time/],
    [(b) => (b.receipt.started_at = '2025-02-30T00:00:00Z'), /^\$\.receipt\.started_at: .*not a real date-time|expected/],
    [(b) => (b.receipt_key.d = 'secret'), /^\$\.receipt_key\.d: a private key member/],
    [(b) => (b.receipt_key.x = b.receipt_key.x + 'A'), /^\$\.receipt_key\.x: expected unpadded base64url of 32 bytes/],
    [(b) => (b.receipt_key.crv = 'X25519'), /^\$\.receipt_key\.crv: expected "Ed25519"/],
    [(b) => (b.event.leaf_index = -1), /^\$\.event\.leaf_index: expected a leaf index/],
    [(b) => (b.event.leaf_index = 1.5), /^\$\.event\.leaf_index/],
    [(b) => (b.event.leaf_index = '3'), /^\$\.event\.leaf_index: .*got the string "3"/],
    [(b) => delete b.event.canonical_json, /^\$\.event\.canonical_json: missing/],
    [(b) => (b.event.extra = 1), /^\$\.event\.extra: unknown member \(expected only leaf_index, canonical_json\)/],
    [(b) => (b.inclusion_proof[0] = 'AAAA'), /^\$\.inclusion_proof\[0\]: expected canonical base64 of 32 bytes/],
    [(b) => (b.inclusion_proof = Array(65).fill(b.inclusion_proof[0])), /^\$\.inclusion_proof: 65 hashes: a proof has at most 64/],
    [(b) => (b.checkpoint.vkey = 'name+00000000+AAAA'), /^\$\.checkpoint\.vkey: /],
    [(b) => (b.newer_checkpoint.consistency_proof = 'x'), /^\$\.newer_checkpoint\.consistency_proof: expected an array/],
    [(b) => delete b.newer_checkpoint.consistency_proof, /^\$\.newer_checkpoint\.consistency_proof: missing/],
    [(b) => (b.signature = 'x'), /^\$\.signature: unknown member/],
    [(b) => delete b.checkpoint, /^\$\.checkpoint: missing/],
  ];
  for (const [change, re] of cases) {
    const b = clone(f.bundle);
    change(b);
    const r = verify(b);
    assert.equal(r.verdict, 'failed');
    assert.equal(r.first_failure.id, 'bundle');
    assert.match(r.first_failure.detail, re);
    for (const c of r.checks.slice(1)) assert.equal(c.status, 'not_checked');
    assert.throws(() => parseBundle(JSON.stringify(b)), (e) => e.name === 'BundleFormatError' && re.test(e.message));
  }
  const text = JSON.stringify(f.bundle);
  for (const [bad, re] of [
    [text.replace('{"bundle_format"', '{"bundle_format":"x","bundle_format"'), /member "bundle_format" appears twice/],
    [text.slice(0, -1), /not a JSON document: expected ',' or '}' in an object, found the end of the document at line 1/],
    [`${text}x`, /unexpected "x" after the document/],
    [text.replace('"receipt_id":"', '"receipt_id":"\\ud800'), /lone surrogate/],
    ['', /expected a value/],
    ['[]', /^\$: expected an object, got an array/],
  ]) {
    const r = verifyBundle(bad);
    assert.equal(r.first_failure?.id, 'bundle', bad.slice(0, 50));
    assert.match(r.first_failure.detail, re);
  }
});

test('trusted keys are read from a JWK, a JWKS or verifier key lines, and bad ones are refused by name', () => {
  const f = makeBundle();
  assert.equal(parseTrustedKeys(JSON.stringify({ keys: [f.receiptKey.jwk, ed25519Key().jwk] }), 'f').receiptKeys.length, 2);
  assert.deepEqual(parseTrustedKeys(`# the log\n${f.bundle.checkpoint.vkey}\n\n`, 'f').checkpointKeys, [f.bundle.checkpoint.vkey]);
  for (const [text, re] of [
    ['', /^k: empty/],
    ['{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA","kid":"a"}]}', /^k \$\.keys\[0\]\.x: expected unpadded base64url/],
    ['{"keys":{}}', /^k \$\.keys: expected an array/],
    ['{"keys":[]}', /^k \$\.keys: empty/],
    [`${f.bundle.checkpoint.vkey}\nnot a key`, /^k line 2: .*expected a checkpoint verifier key/],
    ['{"kty":"OKP"', /^k: not a JSON document/],
  ]) assert.throws(() => parseTrustedKeys(text, 'k'), (e) => e.name === 'BundleFormatError' && re.test(e.message), text);
});
