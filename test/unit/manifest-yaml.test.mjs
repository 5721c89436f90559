// src/gate/manifest-yaml.ts: the shipped manifests' YAML values made by the
// build, used only for exactly the text they were made from, each read a
// fresh copy, with the lines a parse would give.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { PREPARED_FILE, parseManifestYaml, prepareManifestYaml, readManifestYaml, textDigest } from '../../dist/gate/manifest-yaml.js';
import { BUILTIN_MANIFEST_DIR } from '../../dist/gate/registry.js';

const shipped = readdirSync(BUILTIN_MANIFEST_DIR)
  .filter((n) => /\.ya?ml$/.test(n))
  .map((n) => ({ name: n, text: readFileSync(join(BUILTIN_MANIFEST_DIR, n), 'utf8') }));
const table = JSON.parse(readFileSync(PREPARED_FILE, 'utf8'));

test('every shipped manifest has the build\'s value, the same as a parse gives, with the same lines', () => {
  assert.ok(shipped.length >= 10, shipped.map((s) => s.name).join(' '));
  for (const { name, text } of shipped) {
    assert.ok(Object.hasOwn(table, textDigest(text)), `${name}: no value in ${PREPARED_FILE.pathname} (build-validators not run since it changed?)`);
    const read = readManifestYaml(text);
    const parsed = parseManifestYaml(text);
    assert.deepEqual(read.value, parsed.value, name);
    for (const path of [['version'], ['action_id'], ['io', 'request_schema'], ['egress', 'allowed_domains', 0], ['no_such_field']]) {
      assert.equal(read.lines.line(path), parsed.lines.line(path), `${name}: line of ${path.join('.')}`);
    }
  }
});

test('each read is a fresh copy: changing one changes no later read', () => {
  const { text } = shipped[0];
  const first = readManifestYaml(text).value;
  first.action_id = 'changed';
  first.io = null;
  assert.deepEqual(readManifestYaml(text).value, parseManifestYaml(text).value);
});

test('a text the build did not see is parsed: a shipped manifest with a line more reads as that text says', () => {
  const { name, text } = shipped.find((s) => s.name === 'http_fetch.yaml');
  const changed = `# an operator's copy\n${text.replace(/^version: .*$/m, 'version: 9.9.9')}`;
  assert.ok(!Object.hasOwn(table, textDigest(changed)));
  const r = readManifestYaml(changed);
  assert.equal(r.value.version, '9.9.9', name);
  assert.equal(r.lines.line(['version']), readManifestYaml(text).lines.line(['version']) + 1);
  // Broken YAML is an issue with its line, as before.
  const broken = readManifestYaml(`${text}\n  : : bad\n`);
  assert.ok('issues' in broken && broken.issues.length > 0 && broken.issues.every((i) => i.line > 1 && /^YAML: /.test(i.message)), JSON.stringify(broken));
});

test('the build refuses to keep a value JSON would change, or a text that does not parse', () => {
  assert.equal(prepareManifestYaml('action_id: x\nlimit: .inf\n', isDeepStrictEqual), undefined);
  assert.equal(prepareManifestYaml('action_id: x\nzero: -0.0\n', isDeepStrictEqual), undefined);
  assert.equal(prepareManifestYaml('action_id: [x\n', isDeepStrictEqual), undefined);
  assert.equal(prepareManifestYaml('- a list\n', isDeepStrictEqual), undefined);
  const [digest, p] = prepareManifestYaml('action_id: x\nversion: 1.0.0\n', isDeepStrictEqual);
  assert.equal(digest, textDigest('action_id: x\nversion: 1.0.0\n'));
  assert.deepEqual(p, { value: { action_id: 'x', version: '1.0.0' }, versionLine: 2 });
});
