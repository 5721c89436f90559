// The key history as a chain (src/keys/chain.ts): whoever can write the
// state directory but holds no current private key cannot add a key that
// verifies, move a key's dates, or slip an entry in between; the legitimate
// path (creation, rotations, an older latchgate's history sealed, a crash
// halfway through a rotation) keeps every signature verifying.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, sign } from 'node:crypto';
import { KeyStore } from '../../dist/keys/store.js';
import { KeyStoreError, jwkThumbprint, rawPublicKey } from '../../dist/keys/ed25519.js';
import { endorse } from '../../dist/keys/chain.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const MSG = Buffer.from('a receipt');
const history = (dir, kind = 'receipt') => JSON.parse(readFileSync(join(dir, `${kind}-keys.jwks`), 'utf8'));
const writeHistory = (dir, h, kind = 'receipt') => writeFileSync(join(dir, `${kind}-keys.jwks`), `${JSON.stringify(h, null, 2)}\n`);

/** A key of the attacker's, as a history entry, and a signature of MSG by it. */
function forgedKey(createdAt) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = rawPublicKey(publicKey);
  const e = { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url'), kid: jwkThumbprint(raw), use: 'sig', alg: 'EdDSA', created_at: createdAt };
  return { e, privateKey, sig: sign(null, MSG, privateKey).toString('hex') };
}

/** A store with a receipt key rotated `rotations` times; the dir and each key's signature of MSG (made while it was current). */
function rotated(t, rotations = 2) {
  const dir = tempDir(t);
  const ks = new KeyStore(dir);
  const signed = [ks.sign('receipt', MSG)];
  for (let i = 0; i < rotations; i++) {
    ks.rotate('receipt');
    signed.push(ks.sign('receipt', MSG));
  }
  return { dir, ks, signed };
}

test('legitimate: the first key is the root, each rotation endorsed by the key before; every key verifies what it signed while current', (t) => {
  const { dir, signed } = rotated(t, 3);
  const h = history(dir);
  assert.equal(h.keys.length, 4);
  assert.equal(h.keys[0].endorsement.by, h.keys[0].kid, 'the root endorses itself');
  for (let i = 1; i < 4; i++) assert.equal(h.keys[i].endorsement.by, h.keys[i - 1].kid, `entry ${i} endorsed by entry ${i - 1}`);
  const fresh = new KeyStore(dir);
  assert.deepEqual(fresh.chain('receipt'), { root: h.keys[0].kid, unchained: [], untrusted: new Map() });
  signed.forEach((s, i) => {
    const at = i < 3 ? h.keys[i].retired_at : new Date().toISOString();
    assert.equal(fresh.verify('receipt', s.kid, MSG, s.signature, { signedAt: at }), true, `key ${i}`);
  });
  assert.equal(fresh.jwks('receipt').keys.length, 4, 'all published');
});

test('attack: a key appended to the history by hand verifies nothing, however it is endorsed, and the store refuses to sign on', (t) => {
  for (const how of ['none', 'itself', 'names the current key, signature made by the attacker', 'names the current key, signature copied from another entry']) {
    const { dir, signed } = rotated(t, 1);
    const h = history(dir);
    const last = h.keys.at(-1);
    const f = forgedKey(new Date(Date.parse(last.created_at) - 1000).toISOString());
    if (how === 'itself') f.e.endorsement = endorse('receipt', h.keys, f.e, f.privateKey, f.e.kid);
    if (how.startsWith('names the current key, signature made')) f.e.endorsement = endorse('receipt', h.keys, f.e, f.privateKey, last.kid);
    if (how.endsWith('copied from another entry')) f.e.endorsement = { by: last.kid, sig: last.endorsement.sig };
    // The attacker retires the real key "before" its own, to look like a rotation.
    writeHistory(dir, { keys: [...h.keys.map((e) => ({ ...e, retired_at: e.retired_at ?? f.e.created_at })), f.e] });
    const ks = new KeyStore(dir);
    const look = ks.keyAt('receipt', f.e.kid, new Date());
    assert.equal(look.key, undefined, how);
    assert.match(look.reason, /key \S+ \(entry 2 of the receipt key history\) (is not endorsed|endorses itself|carries an endorsement by \S+ that does not verify)/, how);
    assert.equal(ks.verify('receipt', f.e.kid, MSG, f.sig, { signedAt: new Date() }), false, `${how}: the forged receipt does not verify`);
    assert.ok(!ks.jwks('receipt').keys.some((k) => k.kid === f.e.kid), `${how}: not published`);
    // The entries before the break may be what was edited (dates): none of them is trusted either, loudly.
    assert.equal(ks.verify('receipt', signed[0].kid, MSG, signed[0].signature, { signedAt: h.keys[0].retired_at }), false, `${how}: the whole history is distrusted`);
    assert.match(ks.keyAt('receipt', signed[0].kid, h.keys[0].retired_at).reason, /entry 2 of the receipt key history/);
    assert.throws(() => ks.sign('receipt', MSG), (e) => e instanceof KeyStoreError && /the receipt key history cannot be trusted to sign with: .*Fix: restore/.test(e.message), how);
  }
});

test('attack: moving a retired key\'s retired_at later breaks the endorsement after it, and then no key of the history verifies; so does an entry slipped in between', (t) => {
  const { dir, signed } = rotated(t, 2);
  const h = history(dir);
  const later = { keys: h.keys.map((e, i) => (i === 0 ? { ...e, retired_at: '2999-01-01T00:00:00.000Z' } : e)) };
  writeHistory(dir, later);
  let ks = new KeyStore(dir);
  // A signature by the first key dated long after its real retirement (what a stolen copy would make).
  assert.equal(ks.verify('receipt', signed[0].kid, MSG, signed[0].signature, { signedAt: '2100-01-01T00:00:00.000Z' }), false);
  assert.deepEqual([...ks.chain('receipt').untrusted.keys()].sort(), h.keys.map((e) => e.kid).sort());
  assert.match(ks.chain('receipt').untrusted.get(h.keys[0].kid), /entry 1 of the receipt key history\) carries an endorsement by \S+ that does not verify/);
  assert.equal(ks.verify('receipt', signed[2].kid, MSG, signed[2].signature, { signedAt: new Date() }), false, 'the keys after the edit verify nothing');

  // An entry slipped in between two real ones.
  const f = forgedKey(h.keys[1].created_at);
  writeHistory(dir, { keys: [h.keys[0], { ...f.e, retired_at: h.keys[1].created_at }, ...h.keys.slice(1)] });
  ks = new KeyStore(dir);
  assert.ok(ks.chain('receipt').untrusted.has(f.e.kid));
  assert.equal(ks.verify('receipt', f.e.kid, MSG, f.sig, { signedAt: h.keys[0].created_at }), false);
});

test('attack: a history replaced as a whole has another root (what the ledger keeps is compared: key-roots)', (t) => {
  const { dir } = rotated(t, 1);
  const root = new KeyStore(dir).chain('receipt').root;
  const f = forgedKey(new Date().toISOString());
  f.e.endorsement = endorse('receipt', [], f.e, f.privateKey, f.e.kid);
  writeHistory(dir, { keys: [f.e] });
  const chain = new KeyStore(dir).chain('receipt');
  assert.equal(chain.untrusted.size, 0, 'a chain of its own holds together');
  assert.notEqual(chain.root, root, 'but its root is not the one the ledger recorded');
});

test('an older latchgate\'s history (no endorsements) is sealed by its current key on the next write; an entry prepended after that breaks the seal', (t) => {
  const { dir, signed } = rotated(t, 2);
  const old = history(dir);
  writeHistory(dir, { keys: old.keys.map(({ endorsement: _, ...e }) => e) });
  const reader = new KeyStore(dir);
  assert.deepEqual(reader.chain('receipt'), { unchained: old.keys.map((e) => e.kid), untrusted: new Map() }, 'read as it stands, nothing written');
  assert.equal(history(dir).keys[2].endorsement, undefined);
  const ks = new KeyStore(dir);
  ks.sign('receipt', MSG);
  const sealed = history(dir);
  assert.equal(sealed.keys[2].endorsement.by, sealed.keys[2].kid, 'the current key seals');
  assert.deepEqual(new KeyStore(dir).chain('receipt').unchained, [old.keys[0].kid, old.keys[1].kid]);
  assert.equal(new KeyStore(dir).verify('receipt', signed[0].kid, MSG, signed[0].signature, { signedAt: old.keys[0].retired_at }), true);
  const f = forgedKey('2020-01-01T00:00:00.000Z');
  writeHistory(dir, { keys: [{ ...f.e, retired_at: '2020-01-02T00:00:00.000Z' }, ...sealed.keys] });
  const after = new KeyStore(dir);
  assert.equal(after.verify('receipt', f.e.kid, MSG, f.sig, { signedAt: '2020-01-01T12:00:00.000Z' }), false, 'the prepended key is not trusted');
  assert.match(after.chain('receipt').untrusted.get(sealed.keys[2].kid), /endorsement by \S+ that does not verify/, 'the seal no longer verifies');
});

test('a crash halfway through a rotation: the new key written aside is put in place when the history lists it, and dropped when not', (t) => {
  const { dir, ks } = rotated(t, 0);
  const first = ks.current('receipt').kid;
  // After the history was written, before the key file was replaced.
  ks.rotate('receipt');
  const h = history(dir);
  const pem = readFileSync(join(dir, 'receipt.key'), 'utf8');
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'receipt.key.next'), pem, { mode: 0o600 });
  writeFileSync(join(dir, 'receipt.key'), privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  const resumed = new KeyStore(dir);
  assert.equal(resumed.sign('receipt', MSG).kid, h.keys[1].kid, 'the rotation is finished: the new key signs');
  assert.equal(existsSync(join(dir, 'receipt.key.next')), false);
  // Before the history was written: the key aside is not listed, so it goes.
  writeFileSync(join(dir, 'receipt.key.next'), privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  const again = new KeyStore(dir);
  assert.equal(again.sign('receipt', MSG).kid, h.keys[1].kid);
  assert.equal(existsSync(join(dir, 'receipt.key.next')), false);
  assert.notEqual(first, h.keys[1].kid);
});

test('a missing key file with a history that lists keys is refused, not replaced by a new root', (t) => {
  const { dir } = rotated(t, 1);
  rmSync(join(dir, 'receipt.key'));
  assert.throws(() => new KeyStore(dir).sign('receipt', MSG), (e) => e instanceof KeyStoreError && /receipt\.key is missing, but .*receipt-keys\.jwks lists 2 key\(s\)/.test(e.message));
  assert.equal(history(dir).keys.length, 2, 'the history unchanged');
});
