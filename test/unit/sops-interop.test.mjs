// Interoperability of what latchgate writes and reads with independent
// implementations: Debian's `age` CLI (scripts/setup.sh installs it) and the
// `sops-age` npm package (a decryptor written apart from ours; it checks no
// MAC, so our own reader is run on the same files too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decryptSops } from 'sops-age';
import { ageDecrypt, ageEncrypt, armor, dearmor, generateAgeIdentity, parseAgeIdentities } from '../../dist/secrets/age.js';
import { openSopsFile } from '../../dist/secrets/sops-read.js';
import { initSecrets, setSecret } from '../../dist/secrets/secrets-file.js';
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

test('Debian age decrypts the data key from the sops.age[].enc latchgate writes: the key our reader uses', async () => {
  const { sopsFile, ageKeyFile, ref } = await ourFile();
  const { dataKey, metadata } = await openSopsFile({ file: sopsFile, identities: ref.identities });
  const enc = join(dir, 'enc.age');
  writeFileSync(enc, metadata.age[0].enc);
  const key = ageCli('-d', '-i', ageKeyFile, enc);
  assert.equal(key.length, 32);
  assert.ok(key.equals(dataKey));
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
