// Property test of the manifest loader: 2000 seeded random mutations of the
// shipped manifests only ever yield a manifest or a RegistryError (never
// another exception), and every manifest that loads is coherent. A failure
// prints its seed and case number so it can be replayed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILTIN_DEFINITIONS_ROOT, BUILTIN_MANIFEST_DIR, createSchemaAjv, parseManifest, RegistryError } from '../../dist/gate/registry.js';
import { canonicalHash } from '../../dist/crypto/jcs.js';
import { prng } from '../fixtures/unit/helpers.mjs';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 0x5eed_3;
const CASES = 2000;

const BASES = readdirSync(BUILTIN_MANIFEST_DIR)
  .filter((n) => n.endsWith('.yaml'))
  .sort()
  .map((n) => ({ file: join(BUILTIN_MANIFEST_DIR, n), text: readFileSync(join(BUILTIN_MANIFEST_DIR, n), 'utf8') }));

const CHARS = [...'abcxyz019_-.:/ \t\n#&*!|>\'"%@`[]{},?~=+\\<', '\0', '\r', 'é', '😀', '\uD800', '\uFEFF'];
const SNIPPETS = [
  '&a ', '*a', '*nope', '!!binary ', '!!str ', '!!int ', '!!map ', '!custom ', '<<: *a', '? ', '---\n', '...\n', '%YAML 1.2\n',
  '"\\u0000"', '1e400', '-0', '0x10', '0o17', '.inf', '.nan', '~', 'null', '[]', '{}', '[[[[[[', '{{x}}', '{{secret:X}}',
  '{{ a.b }}', '"{{url}}"', '__proto__: 1', 'constructor: {}', 'prototype: 1', '"../schemas/http_api_response.json"',
  '"../../package.json"', '"/etc/passwd"', 'x'.repeat(300), '9'.repeat(40), '- - - -', ': : :', '|\n  block', '>-\n  folded',
  '"\\ud800"', "'it''s'", '$ref: "#/nope"', 'type: [object, string]', 'pattern: "("', 'minLength: -1', 'format: uri',
  'required: [nope]', 'additionalProperties: false', 'maxLength: 1e309', '"\\x41"', '0.5', 'true', 'yes', 'No',
];
const VALUES = ['0', '-1', '1.5', '"abc"', 'true', 'null', '[]', '{}', '[1, 2]', '{a: 1}', '"sha256:' + 'a'.repeat(64) + '"', '"builtin:x"', '"9.9.9"', 'high', 'none', '*a', '&a {}', '"{{x}}"', '""'];

function mutate(text, rnd) {
  let lines = text.split('\n');
  const n = 1 + rnd.below(4);
  for (let k = 0; k < n; k++) {
    const i = rnd.below(Math.max(lines.length, 1));
    const line = lines[i] ?? '';
    switch (rnd.below(10)) {
      case 0: { // replace a character
        const at = rnd.below(line.length + 1);
        lines[i] = line.slice(0, at) + rnd.pick(CHARS) + line.slice(at + 1);
        break;
      }
      case 1: // delete a line
        lines.splice(i, 1);
        break;
      case 2: // duplicate a line
        lines.splice(i, 0, line);
        break;
      case 3: { // swap two lines
        const j = rnd.below(lines.length);
        [lines[i], lines[j]] = [lines[j], lines[i]];
        break;
      }
      case 4: // indent or dedent
        lines[i] = rnd.chance(0.5) ? ` ${' '.repeat(rnd.below(4))}${line}` : line.replace(/^ {1,4}/, '');
        break;
      case 5: { // insert a snippet inside a line
        const at = rnd.below(line.length + 1);
        lines[i] = line.slice(0, at) + rnd.pick(SNIPPETS) + line.slice(at);
        break;
      }
      case 6: { // replace a value
        const m = /^(\s*-?\s*[\w"]+:\s*)(.*)$/.exec(line);
        if (m) lines[i] = m[1] + rnd.pick(VALUES);
        break;
      }
      case 7: // insert a new line
        lines.splice(i, 0, `${' '.repeat(rnd.below(3) * 2)}${rnd.pick(['foo: 1', 'cost: 5', 'tags: [a]', 'fs: {}', 'template: {}', rnd.pick(SNIPPETS)])}`);
        break;
      case 8: { // truncate the text
        const joined = lines.join('\n');
        lines = joined.slice(0, rnd.below(joined.length + 1)).split('\n');
        break;
      }
      default: { // replace a key
        const m = /^(\s*)([\w]+)(:.*)$/.exec(line);
        if (m) lines[i] = m[1] + rnd.pick(['action_id', 'version', 'io', 'risk_level', 'egress', 'fs', 'template', 'body_template', 'headers', 'request_schema', 'x_unknown', '__proto__']) + m[3];
      }
    }
  }
  return lines.join('\n');
}

test(`2000 random mutations of the shipped manifests: a manifest or a RegistryError, nothing else (seed ${SEED})`, () => {
  const rnd = prng(SEED);
  const ajv = createSchemaAjv();
  let loaded = 0;
  let refused = 0;
  for (let c = 0; c < CASES; c++) {
    const base = rnd.pick(BASES);
    const text = mutate(base.text, rnd);
    let result;
    try {
      result = parseManifest(text, base.file, { root: BUILTIN_DEFINITIONS_ROOT, ajv });
    } catch (e) {
      if (e instanceof RegistryError) {
        assert.ok(e.issues.length > 0, `case ${c}: an empty RegistryError`);
        for (const i of e.issues) {
          assert.ok(i.line === undefined || (Number.isInteger(i.line) && i.line >= 1), `case ${c}: bad line ${i.line}`);
          assert.equal(typeof i.message, 'string');
        }
        refused++;
        continue;
      }
      assert.fail(`case ${c} (seed ${SEED}): ${e?.name}: ${e?.message}\n--- text ---\n${text}`);
    }
    loaded++;
    const m = result.manifest;
    assert.match(m.action_id, /^[a-z][a-z0-9_]{1,63}$/, `case ${c}`);
    assert.match(m.provider_module_digest, /^(sha256:[0-9a-f]{64}|builtin:[a-z_]+)$/, `case ${c}`);
    assert.equal(result.action_digest, canonicalHash(m), `case ${c}`);
    assert.equal(typeof m.io.request_schema, 'object', `case ${c}`);
    assert.ok(m.resource_limits.fuel > 0 && m.resource_limits.memory_mb > 0 && m.resource_limits.max_io_calls >= 0, `case ${c}`);
  }
  // Both outcomes occur: the mutations neither all break nor all miss.
  assert.ok(loaded > 100 && refused > 100, `loaded ${loaded}, refused ${refused}`);
});
