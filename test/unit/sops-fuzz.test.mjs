// The parsers at the secrets file's trust boundary, fed seeded random
// mutations (flips, insertions, deletions, cuts, repeated lines): the age
// header, the ASCII armor, an ENC[...] value, and whole dotenv and YAML
// files. Each input either gives exactly the right value or throws a
// SecretsError: no other exception, no wrong value, no hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ageDecrypt, ageEncrypt, armor, dearmor, generateAgeIdentity, parseAgeIdentity } from '../../dist/secrets/age.js';
import { decryptSopsText } from '../../dist/secrets/sops-read.js';
import { encryptSopsYaml } from '../../dist/secrets/sops-encrypt.js';
import { parseStore } from '../../dist/secrets/sops-stores.js';
import { decryptEnc, encryptEnc } from '../../dist/secrets/sops-value.js';
import { SecretsError } from '../../dist/secrets/secret-values.js';
import { prng } from '../fixtures/unit/helpers.mjs';

const id = generateAgeIdentity();
const identities = [parseAgeIdentity(id.secretKey, 'fuzz')];
const CHARS = '\n\r\t :=#-"\'[],{}|>&*!%@`\\/+ENC0aZ\u0000\u00ff\u2028';

function mutate(r, input) {
  let s = input;
  const rounds = 1 + r.below(3);
  for (let i = 0; i < rounds; i++) {
    const at = r.below(s.length + 1);
    switch (r.below(6)) {
      case 0: s = s.slice(0, at) + String.fromCharCode(s.charCodeAt(at) ^ (1 << r.below(8))) + s.slice(at + 1); break;
      case 1: s = s.slice(0, at) + r.pick([...CHARS]) + s.slice(at); break;
      case 2: s = s.slice(0, at) + s.slice(at + 1 + r.below(8)); break;
      case 3: s = s.slice(0, at); break;
      case 4: { const lines = s.split('\n'); const j = r.below(lines.length); lines.splice(j, 0, lines[j]); s = lines.join('\n'); break; }
      default: { const lines = s.split('\n'); const j = r.below(lines.length); lines.splice(j, 1); s = lines.join('\n'); }
    }
  }
  return s;
}

/** Runs fn on count mutations of input; fn returns what it read, compared with want. */
function fuzz(seed, count, input, want, fn) {
  const r = prng(seed);
  const codes = new Map();
  for (let i = 0; i < count; i++) {
    const m = mutate(r, input);
    try {
      assert.deepEqual(fn(m), want, `mutation ${i} read a wrong value: ${JSON.stringify(m.slice(0, 200))}`);
      codes.set('ok', (codes.get('ok') ?? 0) + 1);
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      assert.ok(e instanceof SecretsError, `mutation ${i} threw ${e?.stack}\ninput: ${JSON.stringify(m.slice(0, 300))}`);
      codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
    }
  }
  assert.ok([...codes.keys()].some((k) => k !== 'ok'), 'no mutation was refused: the fuzzer is not reaching the parser');
  return codes;
}

test('age: mutated binary files (header and payload) decrypt right or throw SecretsError', () => {
  const pt = Buffer.from('the data key, 32 bytes long....!');
  const file = ageEncrypt(pt, [generateAgeIdentity().recipient, id.recipient]).toString('latin1');
  fuzz(0xa9e1, 600, file, pt.toString('latin1'), (m) => ageDecrypt(Buffer.from(m, 'latin1'), identities).toString('latin1'));
});

test('armor: mutated ASCII armor gives, through age, the right plaintext or a SecretsError', () => {
  // The armor itself authenticates nothing (a repeated line is still base64): the age file inside does.
  const pt = Buffer.alloc(100, 3);
  const text = armor(ageEncrypt(pt, [id.recipient]));
  fuzz(0xa9e2, 600, text, pt.toString('hex'), (m) => ageDecrypt(dearmor(m), identities).toString('hex'));
});

test('ENC[...] values: mutated strings decrypt right or throw SecretsError', () => {
  const key = Buffer.alloc(32, 9);
  for (const [seed, v] of [[1, 'a secret value'], [2, 42n], [3, true]]) {
    const enc = encryptEnc(v, key, 'PATH:');
    fuzz(0xa9e3 + seed, 400, enc, v === true ? 'True' : v.toString(), (m) => decryptEnc(m, key, 'PATH:', { file: 'fuzz' }).bytes.toString());
  }
});

test('whole files: mutated dotenv and YAML SOPS files give the right tree or throw SecretsError', () => {
  const tree = new Map([['API_KEY', 'sk-1'], ['OTHER', 'two\nlines']]);
  const yaml = encryptSopsYaml(tree, { recipients: [id.recipient] });
  const want = { API_KEY: 'sk-1', OTHER: 'two\nlines' };
  const read = (format) => (m) => decryptSopsText(m, { file: `fuzz.${format}`, format, identities }).document.tree;
  fuzz(0xa9e4, 500, yaml, want, read('yaml'));
  // The same file in the dotenv store's layout: metadata flattened into sops_ keys, newlines escaped.
  const { data, metadata } = parseStore('yaml', yaml, 'fuzz.yaml');
  const esc = (s) => s.replaceAll('\n', '\\n');
  const lines = [...data].map(([k, v]) => `${k}=${esc(v)}`);
  metadata.get('age').forEach((a, i) => {
    lines.push(`sops_age__list_${i}__map_enc=${esc(a.get('enc'))}`, `sops_age__list_${i}__map_recipient=${a.get('recipient')}`);
  });
  for (const k of ['lastmodified', 'mac', 'unencrypted_suffix', 'version']) lines.push(`sops_${k}=${metadata.get(k)}`);
  const env = `${lines.join('\n')}\n`;
  assert.deepEqual(read('dotenv')(env), want, 'the unmutated dotenv file reads');
  fuzz(0xa9e5, 500, env, want, read('dotenv'));
});
