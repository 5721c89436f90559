// Reading SOPS files (src/secrets/sops-read.ts): every real sops file of the
// corpus decrypts to exactly the plaintext sops gave, and each check the
// reader makes refuses its own attack with its own error code, naming the
// file and the key path, never returning a value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { generateAgeIdentity, parseAgeIdentity } from '../../dist/secrets/age.js';
import { readSopsFile, decryptSopsText } from '../../dist/secrets/sops-read.js';
import { encryptSopsYaml } from '../../dist/secrets/sops-encrypt.js';
import { secretEntries, secretValues, SecretsError } from '../../dist/secrets/secret-values.js';
import { GoFloat } from '../../dist/secrets/sops-value.js';
import { corpusEntries, corpusIdentities, corpusMissing, corpusPath, sopsFiles } from '../helpers/sops-corpus.mjs';

const skip = corpusMissing ?? false;
const dir = mkdtempSync(join(tmpdir(), 'lg-sops-read-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let n = 0;
/** text written to a new file with the given name's extension. */
const put = (name, text) => {
  const f = join(dir, `${n++}-${name}`);
  writeFileSync(f, text);
  return f;
};
const corpusText = (rel) => readFileSync(corpusPath(rel), 'utf8');
const KC = 'kustomize-controller/keys/age.txt';

async function refused(file, identities, code, re) {
  let doc;
  try {
    doc = await readSopsFile({ file, identities });
  } catch (e) {
    assert.ok(e instanceof SecretsError, `not a SecretsError: ${e?.stack}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    assert.ok(e.message.includes(file), `the message names the file: ${e.message}`);
    return e;
  }
  assert.fail(`read a value instead of ${code}: ${JSON.stringify(doc.tree)}`);
}

test('every sops file of the corpus decrypts to exactly the plaintext sops gave', { skip }, async () => {
  const files = sopsFiles();
  assert.ok(files.length >= 8, `only ${files.length} corpus files`);
  // Every entry of expected.json is read here or by the two tests below: a new kind of entry is not passed over.
  const read = new Set(files.map((e) => e.file));
  assert.deepEqual(corpusEntries().filter((e) => !read.has(e.file)).map((e) => e.file).sort(), ['kustomize-controller/algorithms/age-pq.yaml', 'kustomize-controller/inside/secret.yaml']);
  for (const e of files) {
    const doc = await readSopsFile({ file: corpusPath(e.file), identities: corpusIdentities(e.age_identity_file) });
    assert.deepEqual(doc.tree, e.plaintext, e.file);
    assert.ok(doc.recipients.includes(e.recipient), e.file);
    assert.equal(doc.format, e.format.startsWith('binary') ? 'binary' : e.format, e.file);
    assert.match(doc.lastModified, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  }
});

test('the JSON store: each YAML corpus file, written as JSON with the same keys in the same order, decrypts the same; a value moved is refused', { skip }, async () => {
  const yamlFiles = sopsFiles().filter((e) => e.format === 'yaml');
  assert.ok(yamlFiles.length >= 5);
  for (const e of yamlFiles) {
    const tree = parseYaml(corpusText(e.file));
    assert.ok(!Object.keys(tree).some((k) => /^\d+$/.test(k)), `${e.file}: an integer-like key would change order in JSON`);
    const f = put('c.json', JSON.stringify(tree, null, 2));
    const doc = await readSopsFile({ file: f, identities: corpusIdentities(e.age_identity_file) });
    assert.equal(doc.format, 'json', e.file);
    assert.deepEqual(doc.tree, e.plaintext, e.file);
  }
  const nix = parseYaml(corpusText('sops-nix/secrets.yaml'));
  nix.other_key = nix.test_key;
  delete nix.test_key;
  await refused(put('n.json', JSON.stringify(nix)), corpusIdentities('sops-nix/age-keys.txt'), 'value_auth_failed', /moved from another key path/);
});

test('the SOPS document embedded base64 in a Kubernetes Secret (inside/secret.yaml) decrypts with the binary store', { skip }, () => {
  const e = corpusEntries().find((x) => x.file.startsWith('kustomize-controller/inside/'));
  const secret = parseYaml(corpusText(e.file));
  const inner = Buffer.from(secret.data.key, 'base64').toString('utf8');
  const { document } = decryptSopsText(inner, { file: `${e.file} data.key`, format: 'binary', identities: corpusIdentities(e.age_identity_file) });
  assert.deepEqual(document.tree, Object.values(e.plaintext)[0]);
  // The Secret itself is not a SOPS file: refused, not read as an empty one.
  return refused(corpusPath(e.file), corpusIdentities(e.age_identity_file), 'missing_metadata', /not encrypted with sops, or it is truncated/);
});

test('a post-quantum (mlkem768x25519) file and key are refused as an unsupported recipient type', { skip }, async () => {
  const pq = corpusEntries().find((e) => e.file.endsWith('age-pq.yaml'));
  assert.throws(() => corpusIdentities(pq.age_identity_file), (e) => e instanceof SecretsError && e.code === 'unsupported_recipient' && /unsupported recipient type mlkem768x25519/.test(e.message));
  // With an X25519 key, the file's only stanza is still the post-quantum one.
  await refused(corpusPath(pq.file), corpusIdentities(KC), 'unsupported_recipient', /unsupported recipient type mlkem768x25519/);
  assert.throws(() => parseAgeIdentity('AGE-SECRET-KEY-PQ-1Z8QMHKS77CVF95LF38SMLT0MEFR00HVMW58DJGD5USLGCVXTJCSQNRKCNK', 'x'), /unsupported recipient type mlkem768x25519/);
});

test('the wrong key names the file\'s recipients and the identities\' public keys; the right one reads', { skip }, async () => {
  const ids = corpusIdentities(KC);
  const e = await refused(corpusPath('helm-secrets/secrets.age.yaml'), ids, 'no_matching_identity', /wrong key/);
  assert.ok(e.message.includes('age1rh2xsjg8avja92j3jhtttuczgmqkz89lezxt4e3mmp5ukl5j4f9smvteju'), e.message);
  assert.ok(e.message.includes(ids[0].publicKey), e.message);
  const ok = await readSopsFile({ file: corpusPath('helm-secrets/secrets.age.yaml'), identities: corpusIdentities('helm-secrets/key.txt') });
  assert.equal(ok.tree.global_secret, 'global_age');
});

test('a value changed, added or moved without sops is refused: MAC mismatch, plaintext where encryption is due, AAD', { skip }, async () => {
  const ids = corpusIdentities(KC);
  const age = corpusText('kustomize-controller/algorithms/age.yaml');
  // An unencrypted value (outside encrypted_regex) changed: the MAC covers it.
  const e1 = await refused(put('a.yaml', age.replace('  name: age\n', '  name: evil\n')), ids, 'mac_mismatch', /MAC mismatch/);
  assert.equal(e1.keyPath, 'sops.mac');
  // A plaintext value where encrypted_regex says it must be encrypted.
  const e2 = await refused(put('a.yaml', age.replace(/  key: ENC\[[^\n]*\n/, '  key: injected\n')), ids, 'unencrypted_value', /encrypted_regex/);
  assert.equal(e2.keyPath, '["stringData"]["key"]');
  await refused(put('a.yaml', age.replace('stringData:\n', 'stringData:\n  extra: injected\n')), ids, 'unencrypted_value');
  // With no rule set (sops-nix: unencrypted_suffix), a new plaintext key is refused...
  const nix = corpusText('sops-nix/secrets.yaml');
  const nixIds = corpusIdentities('sops-nix/age-keys.txt');
  const e3 = await refused(put('n.yaml', `extra: injected\n${nix}`), nixIds, 'unencrypted_value');
  assert.equal(e3.keyPath, '["extra"]');
  // ...and one the suffix allows is still not in the MAC.
  await refused(put('n.yaml', `extra_unencrypted: injected\n${nix}`), nixIds, 'mac_mismatch');
  // An encrypted value moved to another key: its key path is its associated data.
  const line = nix.match(/^test_key: (ENC\[[^\n]*)$/m)[1];
  const e4 = await refused(put('n.yaml', nix.replace(/^test_key: /m, 'other_key: ')), nixIds, 'value_auth_failed', /moved from another key path/);
  assert.equal(e4.keyPath, '["other_key"]');
  await refused(put('n.yaml', nix.replace(/(        file: )ENC\[[^\n]*/, `$1${line}`)), nixIds, 'value_auth_failed');
  // Removing a value: the MAC no longer matches.
  await refused(put('n.yaml', nix.replace(/^test_key: [^\n]*\n/m, '')), nixIds, 'mac_mismatch');
});

test('a changed lastmodified shows as a MAC that does not authenticate, and says lastmodified is its associated data', { skip }, async () => {
  const age = corpusText('kustomize-controller/algorithms/age.yaml');
  const e = await refused(put('a.yaml', age.replace('2024-11-12T13:33:42Z', '2024-11-12T13:33:43Z')), corpusIdentities(KC), 'mac_auth_failed', /lastmodified/);
  assert.equal(e.keyPath, 'sops.mac');
  // Written in another RFC 3339 spelling of the same instant it still reads: Go re-prints it before using it.
  const doc = await readSopsFile({ file: put('a.yaml', age.replace('"2024-11-12T13:33:42Z"', '"2024-11-12T13:33:42.000+00:00"')), identities: corpusIdentities(KC) });
  assert.equal(doc.tree.stringData.key, 'value');
  await refused(put('a.yaml', age.replace('"2024-11-12T13:33:42Z"', '"yesterday"')), corpusIdentities(KC), 'bad_metadata', /lastmodified/);
});

test('a dotenv and a binary-store file are checked the same way', { skip }, async () => {
  const ids = corpusIdentities(KC);
  const env = corpusText('kustomize-controller/envs/env.env');
  await refused(put('e.env', env.replace(/^key=ENC[^\n]*/m, 'key=injected')), ids, 'unencrypted_value');
  await refused(put('e.env', `${env}other=ENC[AES256_GCM,data:3PTvx6o=,iv:74ni7B2QMB6aygdd3R7IEzNCwo1W+TpPWMJLfYCCG4U=,tag:mK2Tu7JWDdEmZUrXz3uRzw==,type:str]\n`), ids, 'value_auth_failed');
  await refused(put('e.env', env.replace('sops_lastmodified=2024-11-12T13:33:42Z', 'sops_lastmodified=2024-11-12T13:33:41Z')), ids, 'mac_auth_failed');
  await refused(put('e.env', env.replace(/^sops_mac=[^\n]*\n/m, '')), ids, 'missing_metadata', /truncated/);
  const bin = corpusText('kustomize-controller/files/file.txt');
  await refused(put('f.txt', bin.replace('"data": "ENC', '"data2": "ENC')), ids, 'malformed_file', /exactly one string/);
  await refused(put('f.txt', bin.replace('"2024-11-12T13:33:42Z"', '"2023-11-12T13:33:42Z"')), ids, 'mac_auth_failed');
  await refused(put('f.txt', bin.slice(0, 200)), ids, 'malformed_file', /truncated/);
});

test('mac_only_encrypted: refused while the file has values the MAC does not cover; accepted when every value is encrypted', async () => {
  const id = generateAgeIdentity();
  const identities = [parseAgeIdentity(id.secretKey, 'test')];
  const tree = new Map([['meta', new Map([['name', 'x']])], ['data', new Map([['TOKEN', 's3cret']])]]);
  const f = put('m.yaml', encryptSopsYaml(tree, { recipients: [id.recipient], rule: { kind: 'encrypted_regex', value: '^data$' }, macOnlyEncrypted: true }));
  const e = await refused(f, identities, 'mac_only_encrypted', /covered by no MAC/);
  assert.equal(e.keyPath, '["meta"]["name"]');
  const all = put('m.yaml', encryptSopsYaml(new Map([['TOKEN', 's3cret']]), { recipients: [id.recipient], macOnlyEncrypted: true }));
  assert.deepEqual((await readSopsFile({ file: all, identities })).tree, { TOKEN: 's3cret' });
  // Without the flag the same rule reads: the MAC covers the plaintext too.
  const plain = put('m.yaml', encryptSopsYaml(tree, { recipients: [id.recipient], rule: { kind: 'encrypted_regex', value: '^data$' } }));
  assert.deepEqual((await readSopsFile({ file: plain, identities })).tree, { meta: { name: 'x' }, data: { TOKEN: 's3cret' } });
});

test('files latchgate cannot honour are refused by name: key groups, comment rules, no age recipient, two rules', { skip }, async () => {
  const ids = corpusIdentities(KC);
  const age = corpusText('kustomize-controller/algorithms/age.yaml');
  await refused(put('k.yaml', age.replace('  pgp: []\n', '  pgp: []\n  key_groups:\n    - age: []\n')), ids, 'unsupported_key_groups', /Shamir/);
  await refused(put('k.yaml', age.replace('  pgp: []\n', '  pgp: []\n  unencrypted_comment_regex: x\n')), ids, 'bad_metadata', /comment/);
  await refused(put('k.yaml', age.replace('  pgp: []\n', '  pgp: []\n  unencrypted_suffix: _u\n')), ids, 'bad_metadata', /more than one/);
  await refused(put('k.yaml', age.replace(/  age:\n(    [^\n]*\n|        [^\n]*\n)*/, '  age: []\n')), ids, 'no_age_recipient', /age/);
  await refused(put('k.yaml', age.replace('^(data|stringData)$', '^(data|stringData$')), ids, 'bad_metadata', /regular expression/);
  await refused(put('k.yaml', `${age}---\nmore: doc\n`), ids, 'malformed_file', /more than one YAML document/);
  await refused(put('k.yaml', age.replace('metadata:\n  name: age\n', 'metadata: &m\n  name: age\nalias: *m\n')), ids, 'malformed_file', /aliases/);
  await refused(put('k.ini', age), ids, 'unsupported_format', /INI/);
});

test('secretValues: top-level encrypted scalars as sops prints them; nested, unencrypted and binary values are not secrets', { skip }, async () => {
  const helm = await readSopsFile({ file: corpusPath('helm-secrets/secrets.age.yaml'), identities: corpusIdentities('helm-secrets/key.txt') });
  assert.deepEqual([...secretValues(helm).keys()], ['global_secret', 'key']);
  assert.equal(secretValues(helm).get('global_secret'), 'global_age');
  const kc = await readSopsFile({ file: corpusPath('kustomize-controller/algorithms/age.yaml'), identities: corpusIdentities(KC) });
  assert.deepEqual(secretValues(kc), new Map(), 'apiVersion and kind are stored unencrypted: not secrets');
  const bin = await readSopsFile({ file: corpusPath('kustomize-controller/files/file.txt'), identities: corpusIdentities(KC) });
  assert.deepEqual(secretValues(bin), new Map());
  const env = await readSopsFile({ file: corpusPath('kustomize-controller/envs/env.env'), identities: corpusIdentities(KC) });
  assert.deepEqual(secretValues(env), new Map([['key', 'value']]));
  assert.throws(() => secretValues({ ...env }), (e) => e instanceof SecretsError);
});

test('secretValues holds the str values only; every other top-level name is in secretEntries with why it is no secret', async () => {
  const id = generateAgeIdentity();
  const tree = new Map([
    ['INT', 42n], ['BIG', 9007199254740993n], ['F', new GoFloat(2)], ['F2', new GoFloat(1.5)], ['F3', new GoFloat(1e21)], ['F4', new GoFloat(0.00001)],
    ['T', true], ['N', false], ['E', ''], ['S', 'x'], ['NESTED', new Map([['A', 'b']])], ['LIST', ['a']], ['NULL', null],
  ]);
  const doc = await readSopsFile({ file: put('t.yaml', encryptSopsYaml(tree, { recipients: [id.recipient] })), identities: [parseAgeIdentity(id.secretKey, 't')] });
  assert.deepEqual(Object.fromEntries(secretValues(doc)), { S: 'x' });
  const why = Object.fromEntries([...secretEntries(doc)].map(([k, v]) => [k, typeof v === 'string' ? v : v.why.split(' (')[0]]));
  assert.deepEqual(why, {
    INT: 'its value is not of type str', BIG: 'its value is not of type str', F: 'its value is not of type str', F2: 'its value is not of type str',
    F3: 'its value is not of type str', F4: 'its value is not of type str', T: 'its value is not of type str', N: 'its value is not of type str',
    E: 'its value is empty', S: 'x', NESTED: 'its value is a map, not a string', LIST: 'its value is a list, not a string', NULL: 'its value is null',
  });
  assert.equal(doc.tree.BIG, 9007199254740993n, 'ints past 2^53 stay exact');
  assert.equal(doc.tree.INT, 42);
});
