// Attacks on the secrets files themselves, each tried for real next to the
// legitimate path: a SOPS file's shape changed where its MAC does not look
// (a name must then never come from the environment instead), crafted age
// entries that would cost seconds of work, an age key file that is not the
// user's, and `latchgate secrets` rewrites through a symlink, a hard link,
// or of a file another user owns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { armor, generateAgeIdentity, parseAgeIdentity } from '../../dist/secrets/age.js';
import { loadAgeIdentities } from '../../dist/secrets/identities.js';
import { encryptSopsYaml } from '../../dist/secrets/sops-encrypt.js';
import { decryptSopsText } from '../../dist/secrets/sops-read.js';
import { sopsStore } from '../../dist/secrets/sops-store.js';
import { getSecret, initSecrets, setSecret } from '../../dist/secrets/secrets-file.js';
import { SecretsError } from '../../dist/secrets/secret-values.js';
import { GateSecrets } from '../../dist/gate/secret-sources.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'lg-sops-hard-'));
chmodSync(dir, 0o755);
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sub = () => {
  const d = join(dir, `d${n++}`);
  mkdirSync(d, { mode: 0o755 });
  return d;
};
const code = (c, re) => (e) => (e instanceof SecretsError || e?.name === 'HostIoError') && e.code === c && (!re || re.test(e.message));
const isRoot = process.geteuid() === 0;

// --- F5: the shape of the tree ---------------------------------------------

const id = generateAgeIdentity();
const ids = [parseAgeIdentity(id.secretKey, 'test')];
const original = encryptSopsYaml(new Map([['API_KEY', 'sk-file-value-1234'], ['LIST', ['sk-list-item']], ['TRUEISH', 'True']]), { recipients: [id.recipient] });

/** A gate's secrets over this text as the SOPS file, with env holding LATCHGATE_SECRET_<name> for every name asked. */
function gateOver(text, envNames) {
  const d = sub();
  const sopsFile = join(d, 's.enc.yaml');
  writeFileSync(sopsFile, text, { mode: 0o600 });
  const env = { SOPS_AGE_KEY: id.secretKey };
  for (const name of envNames) env[`LATCHGATE_SECRET_${name}`] = `from-env-${name}`;
  const { resolver } = sopsStore({ sopsFile, cacheSeconds: 0 }, { env });
  return new GateSecrets(resolver, undefined, env, () => {});
}

const tampers = [
  ['the real secret wrapped into a list', (t) => t.replace(/API_KEY: (ENC\[[^\n]+)/, 'API_KEY:\n    - $1'), 'API_KEY', /a list/],
  ['a name added with ""', (t) => t.replace(/^sops:/m, 'ADDED: ""\nsops:'), 'ADDED', /empty/],
  ['a name added with null', (t) => t.replace(/^sops:/m, 'ADDED: null\nsops:'), 'ADDED', /null/],
  ['a name added with a map', (t) => t.replace(/^sops:/m, 'ADDED: {}\nsops:'), 'ADDED', /a map/],
  ['the type: of a value changed from str to bool', (t) => t.replace(/(TRUEISH: ENC\[[^\]]*type:)str/, '$1bool'), 'TRUEISH', /type str/],
];

for (const [what, tamper, name, why] of tampers) {
  test(`F5: ${what}: MAC and AAD still pass, but ${name} is refused (secret_unusable), never taken from LATCHGATE_SECRET_${name}`, async () => {
    const text = tamper(original);
    assert.notEqual(text, original, 'the tamper applied');
    decryptSopsText(text, { file: 's.enc.yaml', format: 'yaml', identities: ids }); // SOPS itself accepts the file
    const gate = gateOver(text, [name]);
    await assert.rejects(gate.get(name), code('secret_unusable', why));
    await assert.rejects(gate.get(name), (e) => !e.message.includes('from-env') && !e.message.includes('sk-'));
  });
}

test('F5 legitimate: a str secret comes from the file, a name the file does not mention from the environment', async () => {
  const gate = gateOver(original, ['API_KEY', 'ELSEWHERE']);
  assert.equal(await gate.get('API_KEY'), 'sk-file-value-1234');
  assert.equal(await gate.get('ELSEWHERE'), 'from-env-ELSEWHERE');
  assert.equal(await gate.get('TRUEISH'), 'True');
});

test('F5: `latchgate secrets get` of a name whose value is a list says why, not "no such secret"', async () => {
  const d = sub();
  const sopsFile = join(d, 's.enc.yaml');
  writeFileSync(sopsFile, original, { mode: 0o600 });
  await assert.rejects(getSecret({ sopsFile, identities: ids }, 'LIST'), code('secret_unusable', /a list/));
  assert.equal(await getSecret({ sopsFile, identities: ids }, 'API_KEY'), 'sk-file-value-1234');
});

// --- F7: bounded age work ----------------------------------------------------

const MAX_STANZAS = 64; // src/secrets/age.ts
const b64 = (b) => b.toString('base64').replace(/=+$/, '');

/** An armored age file of `stanzas` random X25519 stanzas (the reviewer's generator): no identity opens any. */
function junkAge(stanzas) {
  let header = 'age-encryption.org/v1\n';
  for (let i = 0; i < stanzas; i++) header += `-> X25519 ${b64(randomBytes(32))}\n${b64(randomBytes(32))}\n`;
  header += `--- ${b64(randomBytes(32))}\n`;
  return armor(Buffer.concat([Buffer.from(header), randomBytes(64)]));
}

/** A legitimate file with its age entries replaced by these armored files. */
function withEntries(encs, recipient = 'age1x') {
  const entries = encs.map((e) => `        - recipient: ${recipient}\n          enc: |\n${e.trimEnd().split('\n').map((l) => `            ${l}`).join('\n')}\n`).join('');
  return original.replace(/    age:\n(?:        [- ].*\n|            .*\n)+/, `    age:\n${entries}`);
}

const three = [1, 2, 3].map(() => parseAgeIdentity(generateAgeIdentity().secretKey, 'other'));
const read = (text, identities) => decryptSopsText(text, { file: 's.enc.yaml', format: 'yaml', identities });

test('F7: 64 age entries of 64 junk stanzas each (under the size cap) are given up on after a bounded number of tries', () => {
  const text = withEntries(Array.from({ length: 64 }, () => junkAge(MAX_STANZAS)));
  assert.ok(text.length < 1024 * 1024);
  assert.throws(() => read(text, three), code('too_many_stanzas', /gave up after \d+ tries/));
});

test('F7: more than 64 stanzas in one entry, more than 64 entries, or an oversized enc are refused unread', () => {
  assert.throws(() => read(withEntries([junkAge(MAX_STANZAS + 1)]), three), code('too_many_stanzas', /more than 64 stanzas/));
  assert.throws(() => read(withEntries(Array.from({ length: 65 }, () => junkAge(1))), three), code('bad_metadata', /65 entries/));
  assert.throws(() => read(withEntries([junkAge(600)]), three), code('bad_metadata', /sops.age\[0\].enc is \d+ characters/));
  // The reviewer's file (52000 stanzas, 8 MB) is past the file cap.
  assert.throws(() => read(withEntries([junkAge(52_000)]), three), code('file_too_large'));
});

test('F7 legitimate: 60 recipients with ours last opens at once, and so does one whose recipient hints were all changed', () => {
  const others = Array.from({ length: 59 }, () => generateAgeIdentity().recipient);
  const many = encryptSopsYaml(new Map([['API_KEY', 'v']]), { recipients: [...others, id.recipient] });
  const mine = [...three, ...ids];
  assert.equal(read(many, mine).document.tree.API_KEY, 'v');
  const blind = encryptSopsYaml(new Map([['API_KEY', 'v']]), { recipients: [...others.slice(0, 20), id.recipient] }).replace(/recipient: age1\w+/g, 'recipient: age1unknown');
  assert.equal(read(blind, mine).document.tree.API_KEY, 'v');
});

// --- the age key file ------------------------------------------------------------

test('age key file: one owned by another user is refused even at mode 0600; the user\'s own is read', { skip: isRoot ? false : 'needs root to chown a file to another user' }, () => {
  const d = sub();
  const key = join(d, 'keys.txt');
  writeFileSync(key, `${id.secretKey}\n`, { mode: 0o600 });
  assert.equal(loadAgeIdentities({ ageKeyFile: key, env: {} })[0].publicKey, id.recipient);
  chownSync(key, 4242, 4242);
  assert.throws(() => loadAgeIdentities({ ageKeyFile: key, env: {} }), code('identity_file_permissions', /uid 4242/));
});

test('age key file: a FIFO is refused at once, not waited on', () => {
  const d = sub();
  const fifo = join(d, 'keys.txt');
  assert.equal(spawnSync('mkfifo', ['-m', '600', fifo]).status, 0);
  assert.throws(() => loadAgeIdentities({ ageKeyFile: fifo, env: {} }), code('bad_identity', /not a regular file/));
});

// --- F6: rewrites ------------------------------------------------------------------

async function fresh() {
  const d = sub();
  const sopsFile = join(d, 'real', 's.enc.yaml');
  const ageKeyFile = join(d, 'keys.txt');
  await initSecrets({ sopsFile, ageKeyFile });
  return { d, sopsFile, ageKeyFile, identities: loadAgeIdentities({ ageKeyFile, env: {} }) };
}

test('F6: set through a symlink writes the real file and keeps the link; a writer holding the link\'s name does not matter, the real file\'s lock does', async () => {
  const f = await fresh();
  const link = join(f.d, 'link.enc.yaml');
  symlinkSync('real/s.enc.yaml', link);
  writeFileSync(`${link}.lock`, `${process.pid}\n`); // a live holder under the link's name: not the file's lock
  await setSecret({ sopsFile: link, identities: f.identities }, 'A', 'value-through-link');
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link is still a link');
  assert.equal(await getSecret({ sopsFile: f.sopsFile, identities: f.identities }, 'A'), 'value-through-link');
});

test('F6: a dangling symlink and a hard-linked file are refused, the file unchanged', async () => {
  const f = await fresh();
  const dangling = join(f.d, 'dangling.enc.yaml');
  symlinkSync('real/nothing.yaml', dangling);
  await assert.rejects(setSecret({ sopsFile: dangling, identities: f.identities }, 'A', 'v'), code('write_failed', /symlink to a file that does not exist/));
  const before = readFileSync(f.sopsFile, 'utf8');
  linkSync(f.sopsFile, join(f.d, 'hard.enc.yaml'));
  await assert.rejects(setSecret({ sopsFile: f.sopsFile, identities: f.identities }, 'A', 'v'), code('write_failed', /2 hard links/));
  assert.equal(readFileSync(f.sopsFile, 'utf8'), before);
});

test('F6: root setting a secret in a file another user owns keeps its owner, group and mode', { skip: isRoot ? false : 'needs root to own a file as another user' }, async () => {
  const f = await fresh();
  chownSync(f.sopsFile, 4242, 4343);
  chmodSync(f.sopsFile, 0o640);
  await setSecret({ sopsFile: f.sopsFile, identities: f.identities }, 'A', 'set-by-root');
  const st = statSync(f.sopsFile);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [4242, 4343, 0o640]);
  assert.equal(await getSecret({ sopsFile: f.sopsFile, identities: f.identities }, 'A'), 'set-by-root');
});

test('F6: a user who cannot give the new file the old one\'s group is refused, and the file is unchanged', { skip: isRoot ? false : 'needs root to run a writer as another user' }, async () => {
  const f = await fresh();
  const uid = 4242;
  chownSync(f.d, uid, uid);
  chownSync(join(f.d, 'real'), uid, uid);
  chownSync(f.ageKeyFile, uid, uid);
  chownSync(f.sopsFile, uid, 0); // the user's file, in a group the user is not in
  const before = readFileSync(f.sopsFile, 'utf8');
  const script = `import { setSecret } from ${JSON.stringify(join(root, 'dist/secrets/secrets-file.js'))};
import { loadAgeIdentities } from ${JSON.stringify(join(root, 'dist/secrets/identities.js'))};
try { await setSecret({ sopsFile: ${JSON.stringify(f.sopsFile)}, identities: loadAgeIdentities({ ageKeyFile: ${JSON.stringify(f.ageKeyFile)}, env: {} }) }, 'A', 'v'); console.log('written'); }
catch (e) { console.log(e.code, e.message); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { uid, gid: uid, encoding: 'utf8', cwd: '/' });
  assert.match(r.stdout, /^write_failed .*belongs to 4242:0 .*nothing was written/, r.stderr);
  assert.equal(readFileSync(f.sopsFile, 'utf8'), before);
  assert.equal(statSync(f.sopsFile).gid, 0);
});
