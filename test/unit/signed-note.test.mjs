// Signed notes and checkpoints (src/verify/note.ts, checkpoint.ts, base64.ts):
// the published example of the signed-note format verifies, every kind of
// change to a note or key is refused by name, and checkpoints round-trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { decodeBase64, encodeBase64 } from '../../dist/verify/base64.js';
import { assembleNote, ed25519KeyId, formatVerifierKey, NoteError, openNote, parseNote, parseVerifierKey, signatureLine } from '../../dist/verify/note.js';
import { CheckpointError, formatCheckpoint, openCheckpoint, parseCheckpoint } from '../../dist/verify/checkpoint.js';

const sha256 = (...chunks) => createHash('sha256').update(Buffer.concat(chunks)).digest();
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ed25519Verify = (pub, msg, sig) => verify(null, msg, createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pub]), format: 'der', type: 'spki' }), sig);
const fails = (reason, re) => (e) => e instanceof NoteError && e.reason === reason && re.test(e.message);

// The example key and note of the signed-note format's reference implementation (golang.org/x/mod/sumdb/note).
const VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const SIG = '\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
const NOTE = `${TEXT}\n${SIG}`;

function keyPair(name) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
  return { name, raw, privateKey, id: ed25519KeyId(sha256, name, raw), vkey: formatVerifierKey(sha256, name, raw) };
}
const signNote = (text, ...keys) => assembleNote(text, keys.map((k) => signatureLine(k.name, k.id, sign(null, Buffer.from(text), k.privateKey))));

test('the published example note verifies with its published key', () => {
  const v = parseVerifierKey(VKEY, sha256, ed25519Verify);
  assert.equal(v.name, 'PeterNeumann');
  assert.equal(v.keyId, 0xc74f20a3);
  const opened = openNote(NOTE, [v]);
  assert.equal(opened.text, TEXT);
  assert.deepEqual(opened.verifiedBy, [v]);
  // The key's string is rebuilt from its name and raw key.
  assert.equal(formatVerifierKey(sha256, v.name, v.publicKey), VKEY);
});

test('every one-character change to the example note or its key is refused', () => {
  const v = parseVerifierKey(VKEY, sha256, ed25519Verify);
  let refused = 0;
  for (let i = 0; i < NOTE.length; i++) {
    const changed = NOTE.slice(0, i) + (NOTE[i] === 'x' ? 'y' : 'x') + NOTE.slice(i + 1);
    assert.throws(() => openNote(changed, [v]), (e) => e instanceof NoteError, `change at ${i} accepted`);
    refused++;
  }
  assert.equal(refused, NOTE.length);
  for (let i = 0; i < VKEY.length; i++) {
    const changed = VKEY.slice(0, i) + (VKEY[i] === 'A' ? 'B' : 'A') + VKEY.slice(i + 1);
    let accepted = false;
    try {
      accepted = openNote(NOTE, [parseVerifierKey(changed, sha256, ed25519Verify)]).text === TEXT;
    } catch (e) {
      assert.ok(e instanceof NoteError, String(e));
    }
    assert.equal(accepted, false, `key changed at ${i} still verifies`);
  }
});

test('a note signed by a key of the same name but another ID is not verified; one with the same name and ID but a bad signature is rejected', () => {
  const a = keyPair('example.org/log');
  const b = keyPair('example.org/log');
  const va = parseVerifierKey(a.vkey, sha256, ed25519Verify);
  assert.throws(() => openNote(signNote('t\n', b), [va]), fails('unverified', /none of them a trusted key/));
  // Unknown signatures beside a good one are ignored (that is how a key is rotated).
  assert.equal(openNote(signNote('t\n', b, a), [va]).text, 't\n');
  // A known name and ID with a signature that does not verify rejects the whole note, even beside a good one.
  const good = signNote('t\n', a);
  const forged = assembleNote('t\n', [signatureLine(a.name, a.id, sign(null, Buffer.from('t\n'), b.privateKey)), good.split('\n\n')[1]]);
  assert.throws(() => openNote(forged, [va]), fails('bad_signature', /does not verify/));
  assert.throws(() => openNote(good, []), fails('unverified', /none given/));
});

test('malformed notes are refused by name', () => {
  const v = parseVerifierKey(VKEY, sha256, ed25519Verify);
  const cases = [
    [NOTE.slice(0, -1), /does not end in a newline/],
    [NOTE.replace('\n\n', '\n'), /no blank line/],
    [NOTE.replace('\u2014', '-'), /em dash/],
    [NOTE.replace('PeterNeumann x', 'Peter+Neumann x'), /key name/],
    [NOTE.replace('=\n', '\n'), /canonical base64/],
    [NOTE.replace('problem,', 'problem,\t'), /control character/],
    [NOTE.replace('\n\n', '\r\n\n'), /control character/],
    [`${TEXT}\n`, /em dash/],
    [`${TEXT}\n${SIG.repeat(101)}`, /over 100 signatures/],
  ];
  for (const [note, re] of cases) assert.throws(() => openNote(note, [v]), fails('malformed', re), JSON.stringify(note.slice(-40)));
});

test('verifier keys are checked: form, name, type byte, length, and the key ID against name and key', () => {
  const bad = [
    'PeterNeumann+c74f20a3',
    'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW+x',
    'Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW',
    'PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW',
    'PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW',
    'PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW',
    'PeterNeumann+c74f20a3+AhpcNkBxQ8ODhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW',
    'Pete+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW',
  ];
  for (const k of bad) assert.throws(() => parseVerifierKey(k, sha256, ed25519Verify), (e) => e instanceof NoteError && e.reason === 'bad_key', k);
});

test('strict base64: round trip for every length, and every non-canonical text is refused', () => {
  for (let n = 0; n < 70; n++) {
    const bytes = new Uint8Array(n).map((_, i) => (i * 37 + n) & 0xff);
    const text = encodeBase64(bytes);
    assert.equal(text, Buffer.from(bytes).toString('base64'));
    assert.deepEqual(decodeBase64(text), bytes);
  }
  for (const t of ['QQ', 'QQ=', 'QR==', 'QUI=x', ' QQ==', 'QQ==\n', 'Q===', '=QQ=', 'QUJD-A==', 'QUJD_A==', 'QQ==QQ==']) assert.equal(decodeBase64(t), null, t);
  // Seeded random texts: whatever decodes must re-encode to the same text.
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const chars = 'AQgw+/=Zz9a ';
  for (let i = 0; i < 20000; i++) {
    let t = '';
    const len = Math.floor(rand() * 13);
    for (let j = 0; j < len; j++) t += chars[Math.floor(rand() * chars.length)];
    const d = decodeBase64(t);
    if (d !== null) assert.equal(encodeBase64(d), t, JSON.stringify(t));
  }
});

test('a checkpoint round-trips through a signed note, and its origin is checked', () => {
  const k = keyPair('latchgate.example/ledger');
  const v = parseVerifierKey(k.vkey, sha256, ed25519Verify);
  const c = { origin: k.name, size: 20852163, rootHash: sha256(Buffer.from('root')), extensions: [] };
  const text = formatCheckpoint(c);
  assert.equal(text, `latchgate.example/ledger\n20852163\n${sha256(Buffer.from('root')).toString('base64')}\n`);
  const opened = openCheckpoint(signNote(text, k), [v], k.name);
  assert.equal(opened.size, 20852163);
  assert.deepEqual(Buffer.from(opened.rootHash), sha256(Buffer.from('root')));
  assert.throws(() => openCheckpoint(signNote(text, k), [v], 'another/log'), (e) => e instanceof CheckpointError && /not "another\/log"/.test(e.message));
  assert.deepEqual(parseCheckpoint(formatCheckpoint({ ...c, size: 0 })).size, 0);
});

test('malformed checkpoints are refused, naming the line', () => {
  const root = sha256(Buffer.from('r')).toString('base64');
  const cases = [
    ['o\n12\n', /at least three lines/],
    [`\n12\n${root}\n`, /line 1/],
    [`o\n012\n${root}\n`, /line 2.*leading zeros/],
    [`o\n-1\n${root}\n`, /line 2/],
    [`o\n9007199254740993\n${root}\n`, /beyond 2\^53/],
    [`o\n1\n${root.slice(0, -4)}\n`, /line 3/],
    [`o\n1\n${root}\n\n`, /line 4/],
    [`o\n1\n${root}`, /newline/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseCheckpoint(text), (e) => e instanceof CheckpointError && re.test(e.message), JSON.stringify(text));
  assert.throws(() => formatCheckpoint({ origin: 'a b', size: 1, rootHash: new Uint8Array(32), extensions: [] }), CheckpointError);
  assert.throws(() => formatCheckpoint({ origin: 'o', size: 1.5, rootHash: new Uint8Array(32), extensions: [] }), CheckpointError);
});

test('parseNote keeps a text that itself holds blank lines whole: the last blank line separates', () => {
  const k = keyPair('n');
  const note = signNote('a\n\nb\n', k);
  assert.equal(parseNote(note).text, 'a\n\nb\n');
  assert.equal(openNote(note, [parseVerifierKey(k.vkey, sha256, ed25519Verify)]).text, 'a\n\nb\n');
});
