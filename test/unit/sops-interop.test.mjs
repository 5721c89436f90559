// Interoperability of what latchgate writes and reads with independent
// implementations: Debian's `age` CLI (scripts/setup.sh installs it) and the
// `sops-age` npm package (a decryptor written apart from ours; it checks no
// MAC, so the MAC is recomputed here from its values and the data key
// Debian age gives, as sops defines it, without any of our code).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createDecipheriv, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decryptSops } from 'sops-age';
import { ageDecrypt, ageEncrypt, armor, dearmor, generateAgeIdentity, parseAgeIdentities } from '../../dist/secrets/age.js';
import { openSopsFile } from '../../dist/secrets/sops-read.js';
import { addRecipient, initSecrets, rotateDataKey, setSecret } from '../../dist/secrets/secrets-file.js';
import { loadAgeIdentities } from '../../dist/secrets/identities.js';
import { parseStore } from '../../dist/secrets/sops-stores.js';
import { SecretsError } from '../../dist/secrets/secret-values.js';
import { corpusIdentities, corpusMissing, corpusPath, sopsFiles } from '../helpers/sops-corpus.mjs';

const dir = mkdtempSync(join(tmpdir(), 'lg-sops-interop-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const ageCli = (...args) => execFileSync('age', args, { maxBuffer: 1 << 24 });

async function ourFile() {
  const sopsFile = join(dir, `s${Math.random().toString(36).slice(2)}.enc.yaml`);
  const ageKeyFile = `${sopsFile}.key`;
  await initSecrets({ sopsFile, ageKeyFile });
  const ref = { sopsFile, identities: loadAgeIdentities({ ageKeyFile, env: {} }) };
  await setSecret(ref, 'OPENAI_API_KEY', 'sk-test-123');
  await setSecret(ref, 'MULTI_LINE', 'line one\nline two: "quoted" #not a comment');
  await setSecret(ref, 'UNICODE', 'clé ✓');
  return { sopsFile, ageKeyFile, ref };
}

test('Debian age decrypts the data key from the sops.age[].enc latchgate writes: the key our reader uses, also for a recipient added and after rotate', async () => {
  const { sopsFile, ageKeyFile, ref } = await ourFile();
  const { dataKey, metadata } = await openSopsFile({ file: sopsFile, identities: ref.identities });
  const enc = join(dir, 'enc.age');
  writeFileSync(enc, metadata.age[0].enc);
  const key = ageCli('-d', '-i', ageKeyFile, enc);
  assert.equal(key.length, 32);
  assert.ok(key.equals(dataKey));
  // After `recipients add` and `rotate`, each entry opens with its own recipient's key, to the new data key.
  const other = generateAgeIdentity();
  const otherKeyFile = join(dir, 'other-key.txt');
  writeFileSync(otherKeyFile, `${other.secretKey}\n`, { mode: 0o600 });
  await addRecipient(ref, other.recipient);
  await rotateDataKey(ref);
  const after = await openSopsFile({ file: sopsFile, identities: ref.identities });
  assert.ok(!after.dataKey.equals(dataKey));
  assert.deepEqual(after.metadata.age.map((e) => e.recipient), [ref.identities[0].publicKey, other.recipient]);
  after.metadata.age.forEach((e, i) => {
    writeFileSync(enc, e.enc);
    assert.ok(ageCli('-d', '-i', [ageKeyFile, otherKeyFile][i], enc).equals(after.dataKey), `entry ${i}`);
  });
});

test('the sops-age package decrypts latchgate\'s files to the same values, and our MAC check accepts them', async () => {
  const { sopsFile, ageKeyFile, ref } = await ourFile();
  const secretKey = readFileSync(ageKeyFile, 'utf8').split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'));
  const theirs = await decryptSops({ path: sopsFile, secretKey });
  const ours = await openSopsFile({ file: sopsFile, identities: ref.identities });
  assert.deepEqual(theirs, ours.document.tree);
  assert.equal(theirs.MULTI_LINE, 'line one\nline two: "quoted" #not a comment');
  assert.equal(theirs.UNICODE, 'clé ✓');
  // What sops-age lets through, ours refuses: a value removed (the MAC no longer matches).
  const cut = readFileSync(sopsFile, 'utf8').replace(/^UNICODE: .*\n/m, '');
  const tampered = join(dir, 'tampered.enc.yaml');
  writeFileSync(tampered, cut);
  assert.equal((await decryptSops({ path: tampered, secretKey })).UNICODE, undefined);
  await assert.rejects(openSopsFile({ file: tampered, identities: ref.identities }), (e) => e instanceof SecretsError && e.code === 'mac_mismatch');
});

/**
 * The MAC of a SOPS file as sops defines it (SHA-512 over every leaf's
 * plaintext in document order, upper-case hex, stored AES-256-GCM encrypted
 * under the data key with lastmodified as associated data), computed from
 * sops-age's plaintext and Debian age's data key: nothing of ours.
 */
function independentMacCheck(text, tree, dataKey) {
  const h = createHash('sha512');
  const walk = (v) => {
    if (typeof v === 'string') h.update(v, 'utf8');
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    else assert.fail(`a leaf of type ${typeof v}: latchgate writes str values only`);
  };
  walk(tree);
  const lastmodified = /^    lastmodified: "([^"]+)"$/m.exec(text)[1];
  const [, data, iv, tag] = /^    mac: ENC\[AES256_GCM,data:([^,]+),iv:([^,]+),tag:([^,]+),type:str\]$/m.exec(text);
  const d = createDecipheriv('aes-256-gcm', dataKey, Buffer.from(iv, 'base64'));
  d.setAAD(Buffer.from(lastmodified));
  d.setAuthTag(Buffer.from(tag, 'base64'));
  const stored = Buffer.concat([d.update(Buffer.from(data, 'base64')), d.final()]).toString('latin1');
  return stored === h.digest('hex').toUpperCase();
}

test('the MAC latchgate writes is the one sops defines: recomputed from sops-age\'s values and the data key Debian age gives', async () => {
  const { sopsFile, ageKeyFile } = await ourFile();
  const text = readFileSync(sopsFile, 'utf8');
  const secretKey = readFileSync(ageKeyFile, 'utf8').split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'));
  const enc = join(dir, 'mac-enc.age');
  writeFileSync(enc, parseStore('yaml', text, sopsFile).metadata.get('age')[0].get('enc'));
  const dataKey = ageCli('-d', '-i', ageKeyFile, enc);
  const theirs = await decryptSops({ path: sopsFile, secretKey });
  assert.equal(theirs.OPENAI_API_KEY, 'sk-test-123');
  assert.ok(independentMacCheck(text, theirs, dataKey), 'the MAC in the file is not the SHA-512 of its values');
  // The check can fail: the same values in another order do not give this MAC.
  const swapped = { ...theirs };
  const [first] = Object.keys(swapped);
  const v = swapped[first];
  delete swapped[first];
  swapped[first] = v;
  assert.ok(!independentMacCheck(text, swapped, dataKey));
});

test('age files made by the age CLI (binary and armored, across 64 KiB chunks) decrypt with our age code, and ours with age', () => {
  const id = generateAgeIdentity();
  const other = generateAgeIdentity();
  const keyFile = join(dir, 'age-key.txt');
  writeFileSync(keyFile, `${id.secretKey}\n`, { mode: 0o600 });
  assert.equal(execFileSync('age-keygen', ['-y', keyFile]).toString().trim(), id.recipient, 'age-keygen and we derive the same recipient');
  const identities = parseAgeIdentities(readFileSync(keyFile, 'utf8'), keyFile);
  const plain = join(dir, 'plain');
  for (const size of [0, 1, 32, 65535, 65536, 65537, 200000]) {
    const pt = Buffer.alloc(size);
    for (let i = 0; i < size; i++) pt[i] = (i * 7 + size) & 0xff;
    writeFileSync(plain, pt);
    // age -> ours (two recipients: ours is the second stanza)
    const bin = ageCli('-r', other.recipient, '-r', id.recipient, plain);
    assert.ok(ageDecrypt(bin, identities).equals(pt), `age -r, ${size} bytes`);
    const arm = ageCli('-a', '-r', id.recipient, plain).toString();
    assert.ok(ageDecrypt(dearmor(arm), identities).equals(pt), `age -a -r, ${size} bytes`);
    // ours -> age
    const mine = join(dir, 'mine.age');
    writeFileSync(mine, ageEncrypt(pt, [other.recipient, id.recipient]));
    assert.ok(ageCli('-d', '-i', keyFile, mine).equals(pt), `ours, ${size} bytes`);
    writeFileSync(mine, armor(ageEncrypt(pt, [id.recipient])));
    assert.ok(ageCli('-d', '-i', keyFile, mine).equals(pt), `ours armored, ${size} bytes`);
  }
  // A file for someone else does not open with our key, here or with age.
  writeFileSync(plain, 'x');
  assert.throws(() => ageDecrypt(ageCli('-r', other.recipient, plain), identities), (e) => e instanceof SecretsError && e.code === 'no_matching_identity');
});

test('for every corpus file, the data key age -d gives is the one our age code gives', { skip: corpusMissing ?? false }, () => {
  for (const e of sopsFiles()) {
    const { metadata } = parseStore(e.file.endsWith('.env') ? 'dotenv' : e.file.endsWith('.txt') ? 'binary' : 'yaml', readFileSync(corpusPath(e.file), 'utf8'), e.file);
    const entry = metadata.get('age').find((a) => a.get('recipient') === e.recipient);
    const enc = join(dir, 'corpus-enc.age');
    writeFileSync(enc, entry.get('enc'));
    const theirs = ageCli('-d', '-i', corpusPath(e.age_identity_file), enc);
    assert.ok(ageDecrypt(dearmor(entry.get('enc')), corpusIdentities(e.age_identity_file)).equals(theirs), e.file);
  }
});
