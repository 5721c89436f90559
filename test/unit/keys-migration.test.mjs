// State written before there was one key store (test/fixtures/state-v1/,
// made by test/fixtures/make-state-v1.mjs) keeps verifying with today's
// code: the ledger and every receipt, the grants, a lease signed by the old
// lease key until it expires, every old kid; the old lease files are moved
// and the histories rewritten without losing an entry, even when a move was
// cut short; a rotation afterwards works; tampering and wrong keys still fail.
// Verifying it writes nothing: the old forms are read in memory, with the
// answers the migration (on the first signature) then makes durable.
// Each test works on its own copy of the fixture.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, createHash } from 'node:crypto';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { AuthError, verifyLease } from '../../dist/gate/auth/index.js';
import { verifyGrantSignature } from '../../dist/gate/grant.js';
import { KeyStore } from '../../dist/keys/store.js';
import { KeyStoreError, jwkThumbprint } from '../../dist/keys/ed25519.js';
import { KEY_KINDS } from '../../dist/keys/history.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { signReceipt, verifyReceipt } from '../../dist/ledger/receipt.js';
import { verifyLedger, verifyLedgerFile } from '../../dist/ledger/verify.js';
import { copyStateV1, STATE_V1 as FIXTURE, tempDir, treeSnapshot } from '../fixtures/unit/helpers.mjs';

const expected = JSON.parse(readFileSync(join(FIXTURE, 'expected.json'), 'utf8'));
const fixtureHistory = (name) => JSON.parse(readFileSync(join(FIXTURE, 'keys', name), 'utf8')).keys;

/** A copy of the fixture, its ledger opened (and so migrated). */
function copy(t) {
  const dir = copyStateV1(join(tempDir(t, 'latchgate-state-v1-'), 'state'));
  const ledger = Ledger.open(join(dir, 'ledger.sqlite3'));
  t.after(() => ledger.db.close());
  return { dir, keysDir: join(dir, 'keys'), keys: new KeyStore(join(dir, 'keys')), ledger };
}

/** A time at which the fixture's first keys were all still current: when its first lease was issued. */
const FIXTURE_START = decodeJwt(expected.leases.before.lease_jwt).iat * 1000;

const history = (keysDir, kind) => JSON.parse(readFileSync(join(keysDir, `${kind}-keys.jwks`), 'utf8')).keys;

test('the ledger and every receipt verify; the old kids they name resolve', (t) => {
  const s = copy(t);
  const report = verifyLedger(s.ledger.db, s.keys);
  assert.equal(report.intact, true, JSON.stringify(report));
  assert.deepEqual(report.receipts, { total: 6, bad: [] });
  assert.equal(report.first_bad, null);
  for (const { receipt_id, signing_key_id } of expected.receipts) {
    const r = s.ledger.getReceipt(receipt_id);
    assert.equal(r.signing_key_id, signing_key_id);
    assert.deepEqual(verifyReceipt(s.keys, r), { ok: true }, receipt_id);
  }
  for (const kind of ['grant', 'receipt', 'lease']) {
    for (const kid of expected.kids[kind]) assert.ok(s.keys.publicKey(kind, kid, FIXTURE_START), `${kind} ${kid} resolves`);
  }
  assert.equal(s.keys.publicKey('grant', expected.kids.receipt[0], FIXTURE_START), undefined, 'an old receipt kid is no grant kid');
});

test('verifying the old state writes nothing, and answers as after the migration that the first signature then writes', async (t) => {
  const dir = copyStateV1(join(tempDir(t, 'latchgate-state-v1-'), 'state'));
  const keysDir = join(dir, 'keys');
  const untouched = treeSnapshot(dir);
  const keys = new KeyStore(keysDir);
  const report = verifyLedgerFile(join(dir, 'ledger.sqlite3'), keys);
  assert.equal(report.intact, true, JSON.stringify(report));
  assert.deepEqual(report.receipts, { total: 6, bad: [] });
  for (const kind of ['grant', 'receipt', 'lease']) {
    for (const kid of expected.kids[kind]) assert.ok(keys.publicKey(kind, kid, FIXTURE_START), `${kind} ${kid} resolves`);
  }
  for (const g of expected.grants) assert.equal(verifyGrantSignature(keys, g), true, g.grant_id);
  for (const lease of [expected.leases.before, expected.leases.after]) {
    assert.equal((await verifyLease(lease.lease_jwt, { keys, currentEpoch: 0 }, decodeJwt(lease.lease_jwt).iat + 1)).sub, 'agent');
  }
  const read = Object.fromEntries(KEY_KINDS.map((kind) => [kind, keys.jwks(kind)]));
  assert.deepEqual(read.checkpoint, { keys: [] }, 'a kind without a key gets none made');
  assert.deepEqual(treeSnapshot(dir), untouched, 'no file created, moved, changed or re-moded, no lock taken');
  // The first signature of each kind migrates, durably; what was read is what it wrote.
  const signer = new KeyStore(keysDir);
  for (const kind of ['grant', 'receipt', 'lease']) signer.sign(kind, Buffer.from('x'));
  assert.deepEqual(readdirSync(keysDir).sort(), ['grant-keys.jwks', 'grant.key', 'lease-keys.jwks', 'lease.key', 'receipt-keys.jwks', 'receipt.key']);
  const migrated = new KeyStore(keysDir);
  // The same keys and dates; the current key now last and endorsing the older ones (sealed: chain.ts).
  const unsealed = (jwks) => jwks.keys.map(({ endorsement: _, ...e }) => e).sort((a, b) => a.kid.localeCompare(b.kid));
  for (const kind of ['grant', 'receipt', 'lease']) {
    assert.deepEqual(unsealed(migrated.jwks(kind)), unsealed(read[kind]), kind);
    const chain = migrated.chain(kind);
    assert.equal(chain.root, signer.current(kind).kid, `${kind}: sealed by its current key`);
    assert.equal(chain.untrusted.size, 0);
    assert.equal(migrated.jwks(kind).keys.at(-1).endorsement.by, chain.root);
  }
  const ledger = Ledger.open(join(dir, 'ledger.sqlite3'));
  t.after(() => ledger.db.close());
  // The same report, but that opening the ledger gave it its id (the origin of its checkpoints).
  const after = verifyLedger(ledger.db, migrated);
  assert.equal(report.checkpoints.origin, null);
  assert.match(after.checkpoints.origin, /^latchgate\.local\/ledger\/[0-9a-f]{32}$/);
  assert.deepEqual({ ...after, checkpoints: { ...after.checkpoints, origin: null } }, report, 'the same report from the migrated state');
});

test('grants signed before and after the rotation verify by their old kids', (t) => {
  const s = copy(t);
  assert.deepEqual(expected.grants.map((g) => g.grant_signing_key_id), [0, 0, 0, 1, 1, 1].map((i) => expected.kids.grant[i]));
  for (const g of expected.grants) assert.equal(verifyGrantSignature(s.keys, g), true, g.grant_id);
  assert.equal(verifyGrantSignature(s.keys, { ...expected.grants[0], revocation_epoch: 1 }), false, 'a changed grant fails');
});

test('leases signed by the old and by the current lease key verify until they expire (a fixed clock)', async (t) => {
  const s = copy(t);
  const { before, after } = expected.leases;
  for (const [lease, kid] of [[before, expected.kids.lease[0]], [after, expected.kids.lease[1]]]) {
    const { iat, exp } = decodeJwt(lease.lease_jwt);
    assert.equal(JSON.parse(Buffer.from(lease.lease_jwt.split('.')[0], 'base64url')).kid, kid);
    const claims = await verifyLease(lease.lease_jwt, { keys: s.keys, currentEpoch: 0 }, iat + 1);
    assert.equal(claims.sub, 'agent');
    await assert.rejects(verifyLease(lease.lease_jwt, { keys: s.keys, currentEpoch: 0 }, exp), (e) => e instanceof AuthError && e.code === 'lease_expired');
  }
});

test('the old histories are carried over in place, every entry kept with its dates, the old kid beside the thumbprint', (t) => {
  const s = copy(t);
  s.keys.current('lease');
  s.keys.current('grant');
  s.keys.current('receipt');
  const files = readdirSync(s.keysDir).sort();
  assert.deepEqual(files, ['grant-keys.jwks', 'grant.key', 'lease-keys.jwks', 'lease.key', 'receipt-keys.jwks', 'receipt.key']);
  assert.equal(readFileSync(join(s.keysDir, 'lease.key'), 'utf8'), readFileSync(join(FIXTURE, 'keys', 'lease-signing-key.pem'), 'utf8'), 'the same lease key signs on');
  for (const [kind, file] of [['grant', 'grant-keys.jwks'], ['receipt', 'receipt-keys.jwks'], ['lease', 'lease-jwks.json']]) {
    const before = fixtureHistory(file);
    const after = history(s.keysDir, kind);
    assert.deepEqual(after.map((e) => e.x), before.map((e) => e.x), `${kind}: every entry, in order`);
    assert.deepEqual(after.map((e) => e.legacy_kid), expected.kids[kind]);
    assert.deepEqual(after.map((e) => e.kid), before.map((e) => jwkThumbprint(Buffer.from(e.x, 'base64url'))));
    assert.ok(after.every((e) => typeof e.created_at === 'string'));
    assert.ok(after[0].retired_at && !after[1].retired_at, `${kind}: the old key is retired, the current one is not`);
    if (kind !== 'lease') {
      assert.deepEqual(after.map((e) => [e.created_at, e.retired_at]), before.map((e) => [e.created_at, e.retired_at]), `${kind}: dates kept`);
    }
    // Published: each key under its thumbprint and, for old artifacts, under its old kid.
    const published = s.keys.jwks(kind).keys.map((k) => k.kid);
    assert.deepEqual(published, after.flatMap((e) => [e.kid, e.legacy_kid]));
  }
  // A second store over the carried-over directory reads it as it is.
  const again = new KeyStore(s.keysDir);
  assert.deepEqual(again.jwks('lease').keys.map((k) => k.kid), s.keys.jwks('lease').keys.map((k) => k.kid));
});

test('a move of the lease files cut short (history written, old files still there, no lease.key) finishes without losing or doubling an entry', async (t) => {
  const s = copy(t);
  s.keys.current('lease');
  const carried = history(s.keysDir, 'lease');
  // The state a crash after the history write leaves behind.
  rmSync(join(s.keysDir, 'lease.key'));
  for (const f of ['lease-signing-key.pem', 'lease-jwks.json']) copyFileSync(join(FIXTURE, 'keys', f), join(s.keysDir, f));
  chmodSync(join(s.keysDir, 'lease-signing-key.pem'), 0o600);
  // Reading that state moves nothing and sees the history the move ends with.
  const halfway = treeSnapshot(s.keysDir);
  const reader = new KeyStore(s.keysDir);
  const read = reader.jwks('lease');
  assert.ok(reader.publicKey('lease', expected.kids.lease[0], FIXTURE_START));
  assert.deepEqual(treeSnapshot(s.keysDir), halfway);
  const store = new KeyStore(s.keysDir);
  assert.equal(store.current('lease').kid, carried[1].kid);
  assert.deepEqual(new KeyStore(s.keysDir).jwks('lease'), read);
  assert.deepEqual(history(s.keysDir, 'lease'), carried);
  assert.equal(existsSync(join(s.keysDir, 'lease-signing-key.pem')), false);
  assert.equal(existsSync(join(s.keysDir, 'lease-jwks.json')), false);
  const { iat } = decodeJwt(expected.leases.before.lease_jwt);
  assert.equal((await verifyLease(expected.leases.before.lease_jwt, { keys: store, currentEpoch: 0 }, iat + 2)).sub, 'agent');
});

test('an unsafe old lease key file is refused before anything is moved', (t) => {
  const s = copy(t);
  const pem = join(s.keysDir, 'lease-signing-key.pem');
  chmodSync(pem, 0o644);
  assert.throws(() => s.keys.current('lease'), (e) => e instanceof KeyStoreError && e.message.includes(`Fix: chmod 600 ${pem}`));
  assert.ok(existsSync(pem) && existsSync(join(s.keysDir, 'lease-jwks.json')));
  assert.equal(existsSync(join(s.keysDir, 'lease.key')), false);
});

test('after the migration a rotation of every kind works: new thumbprint kids, old and new signatures verify', async (t) => {
  const s = copy(t);
  const rotated = {};
  for (const kind of ['grant', 'receipt', 'lease', 'checkpoint']) {
    const before = s.keys.current(kind).kid;
    rotated[kind] = s.keys.rotate(kind);
    assert.equal(rotated[kind].previous_kid, before);
    assert.match(rotated[kind].kid, /^[A-Za-z0-9_-]{43}$/);
  }
  for (const kind of ['grant', 'receipt', 'lease']) {
    const h = history(s.keysDir, kind);
    assert.equal(h.length, 3, kind);
    assert.deepEqual(h.map((e) => e.legacy_kid), [...expected.kids[kind], undefined]);
    assert.ok(h[0].retired_at && h[1].retired_at && !h[2].retired_at);
  }
  const fresh = signReceipt(s.keys, { ...s.ledger.getReceipt('r-6'), receipt_id: 'r-7', grant_id: 'g-7', trace_id: 't-7' });
  assert.equal(fresh.signing_key_id, rotated.receipt.kid);
  s.ledger.commitEvidence(fresh, { event_type: 'action_call', trace_id: 't-7', decision: 'allow', subject: { principal: 'agent' }, action: { action_id: 'noop' } });
  const report = verifyLedger(s.ledger.db, new KeyStore(s.keysDir));
  assert.equal(report.intact, true, JSON.stringify(report));
  assert.equal(report.receipts.total, 7);
  const { iat } = decodeJwt(expected.leases.before.lease_jwt);
  assert.equal((await verifyLease(expected.leases.before.lease_jwt, { keys: new KeyStore(s.keysDir), currentEpoch: 0 }, iat + 3)).sub, 'agent');
});

test('tampered receipts and wrong keys in the old state still fail', (t) => {
  const s = copy(t);
  const edit = (id, change) => {
    const row = s.ledger.db.prepare('SELECT receipt_json FROM receipts WHERE receipt_id = ?').get(id);
    s.ledger.db.prepare('UPDATE receipts SET receipt_json = ? WHERE receipt_id = ?').run(JSON.stringify(change(JSON.parse(row.receipt_json))), id);
  };
  edit('r-1', (r) => ({ ...r, normalized_result: { kind: 'success', summary: 'nothing happened' } }));
  edit('r-2', (r) => ({ ...r, receipt_signature: `${r.receipt_signature.slice(0, -2)}${r.receipt_signature.endsWith('00') ? '11' : '00'}` }));
  edit('r-4', (r) => ({ ...r, signing_key_id: expected.kids.receipt[0] })); // the other receipt key, retired before r-4
  edit('r-5', (r) => ({ ...r, signing_key_id: expected.kids.grant[1] })); // a grant key
  const bad = Object.fromEntries(verifyLedger(s.ledger.db, s.keys).receipts.bad.map((b) => [b.receipt_id, b.reason]));
  assert.deepEqual(Object.keys(bad).sort(), ['r-1', 'r-2', 'r-4', 'r-5']);
  assert.match(bad['r-1'], /result_hash does not match/);
  assert.match(bad['r-2'], /signature does not verify/);
  const retired = fixtureHistory('receipt-keys.jwks')[0].retired_at;
  const r4 = s.ledger.getReceipt('r-4');
  assert.equal(bad['r-4'], `key ${expected.kids.receipt[0]} was retired at ${retired}; the signed receipt is dated ${r4.finished_at}, after that: a retired key signs nothing after its retirement`);
  assert.match(bad['r-5'], /not in the receipt key history/);
});

test('an old history whose key was swapped for another is refused or no longer verifies what the old key signed', (t) => {
  const s = copy(t);
  const path = join(s.keysDir, 'receipt-keys.jwks');
  const entries = fixtureHistory('receipt-keys.jwks');
  const other = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x;
  // Another key under the old kid: the kid is not derived from that key.
  writeFileSync(path, JSON.stringify({ keys: [{ ...entries[0], x: other }, entries[1]] }));
  assert.throws(() => verifyLedger(s.ledger.db, new KeyStore(s.keysDir)), (e) => e instanceof KeyStoreError && e.message.includes(`kid "${entries[0].kid}" is not derived from its key`) && /Fix:/.test(e.message));
  // Another key with its own old-style kid: consistent, but the receipts of the replaced key fail.
  const otherKid = createHash('sha256').update(Buffer.from(other, 'base64url')).digest('hex').slice(0, 16);
  writeFileSync(path, JSON.stringify({ keys: [{ ...entries[0], x: other, kid: otherKid }, entries[1]] }));
  const report = verifyLedger(s.ledger.db, new KeyStore(s.keysDir));
  assert.equal(report.intact, false);
  assert.deepEqual(report.receipts.bad.map((b) => b.receipt_id), ['r-1', 'r-2', 'r-3']);
  assert.ok(report.receipts.bad.every((b) => /not in the receipt key history/.test(b.reason)));
});
