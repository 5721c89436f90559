// The validators the build generates (src/core/fixed-validators.ts,
// scripts/build-validators.mjs) are current, are used, and decide exactly as
// ajv compiling the same schema at run time: the manifest shape on every
// fixture manifest, the meta-schema check on the JSON Schema Test Suite's
// schemas (draft 2020-12, read in place), whose instances the registry's
// request validation then decides as the suite says wherever strict mode
// takes the schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { compileFixed, fixedDigest, generatedValidator, META_2020_12 } from '../../dist/core/fixed-validators.js';
import { actionSchema, compileActionSchema, createSchemaAjv, Registry, REGISTRY_SCHEMAS } from '../../dist/gate/registry.js';
import { decisionSchemas } from '../../dist/policy/engine.js';
import { openDb } from '../../dist/ledger/db.js';
import { testdata } from '../helpers/testdata.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SUITE = testdata('json-schema', 'tests', 'draft2020-12');
const skipSuite = existsSync(SUITE) ? false : `JSON Schema Test Suite not present at ${SUITE} (set LATCHGATE_TESTDATA to the shared testdata folder)`;

function builtinActionSchemas() {
  const db = openDb(':memory:');
  const r = new Registry(db, [], { builtin: true });
  r.migrate();
  r.load();
  const out = r.list().flatMap(({ manifest }) => [manifest.io.request_schema, manifest.io.response_schema].filter(Boolean));
  db.close();
  return out;
}

test('the build generated a current validator for every schema latchgate ships (the manifest shape, the meta-schema, the decision documents, the built-in actions\' schemas); a digest that does not match is not used', () => {
  const fixed = [...REGISTRY_SCHEMAS, ...decisionSchemas(), ...builtinActionSchemas().map((s) => actionSchema(s)?.spec)];
  assert.ok(fixed.length >= 20, `${fixed.length} schemas`);
  for (const s of fixed) assert.equal(typeof generatedValidator(s.name, fixedDigest(s)), 'function', `${s.name}: run npm run build (scripts/build-validators.mjs)`);
  assert.equal(generatedValidator('manifest-shape', '0'.repeat(64)), undefined, 'made from another schema: not used');
  assert.equal(generatedValidator('no-such-validator', '0'.repeat(64)), undefined);
  // A schema JSON.stringify would write as another (NaN, Infinity and a Date become null or a string) has no digest: it is compiled.
  const [builtin] = builtinActionSchemas();
  assert.ok(actionSchema(structuredClone(builtin)));
  for (const odd of [Number.NaN, Number.POSITIVE_INFINITY, new Date(0)]) assert.equal(actionSchema({ ...builtin, $comment: odd }), undefined, String(odd));
});

test('the generated manifest-shape validator answers as the compiled one, errors and all, on every fixture and shipped manifest', () => {
  const shape = REGISTRY_SCHEMAS.find((s) => s.name === 'manifest-shape');
  const generated = generatedValidator(shape.name, fixedDigest(shape));
  const { validate: compiled } = compileFixed(shape);
  const files = [];
  const walk = (d) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(n)) files.push(p);
    }
  };
  for (const d of ['definitions/manifests', 'test/fixtures']) walk(join(root, d));
  let compared = 0;
  let invalid = 0;
  for (const f of files) {
    let doc;
    try {
      doc = YAML.parse(readFileSync(f, 'utf8'));
    } catch {
      continue;
    }
    const a = compiled(doc);
    const b = generated(doc);
    assert.equal(b, a, f);
    assert.deepEqual(generated.errors, compiled.errors, f);
    compared++;
    if (!a) invalid++;
  }
  assert.ok(compared >= 30 && invalid >= 3, `${compared} manifests compared, ${invalid} invalid`);
});

test('a request schema the meta-schema refuses gets ajv\'s own message; one strict mode refuses, ajv\'s strict error', () => {
  const ajvOwn = (schema) => {
    const { ajv } = compileFixed({ name: '', options: REGISTRY_SCHEMAS.find((s) => s.schema === META_2020_12).options, schema: META_2020_12 });
    try {
      ajv.compile(schema);
      return 'compiled';
    } catch (e) {
      return e.message;
    }
  };
  const ours = (schema) => {
    try {
      compileActionSchema(createSchemaAjv(), schema);
      return 'compiled';
    } catch (e) {
      return e.message;
    }
  };
  for (const schema of [
    { type: 5 },
    { type: 'object', properties: { a: { minLength: -1 } } },
    { $schema: META_2020_12, type: 'object', required: 'a' },
    { type: 'object', properties: { a: { type: 'string', frobnicate: true } } },
    { type: 'object', required: ['b'], properties: { a: { type: 'string' } } },
    { type: 'object', properties: { a: { type: 'string' } } },
  ]) {
    const expected = ajvOwn(schema);
    assert.equal(ours(schema), expected, JSON.stringify(schema));
  }
  assert.match(ours({ type: 5 }), /^schema is invalid: data\/type/);
  // ajv's $dynamicRef misjudges documents and can recurse without end (the suite's dynamicRef.json): refused.
  assert.match(ours({ type: 'object', $defs: { a: { $dynamicAnchor: 'a', type: 'string' } }, properties: { x: { $dynamicRef: '#a' } } }), /\$dynamicAnchor is not supported: .*use \$ref to \$defs$/);
});

test('a request schema is refused at load when it could not judge a document: a $ref cycle on one value (by pointer, $anchor, $id or a shared object), a $ref that cannot be followed within it (into a meta-schema, a value, across an $id, spelt otherwise), another dialect; recursion through the data is taken ("#" too); inherited fields never meet required', () => {
  const refused = (schema, why) => assert.throws(() => compileActionSchema(createSchemaAjv(), schema), why, JSON.stringify(schema));
  const cycle = /\$ref cycle .* applies the schema to the same value without end/;
  refused({ type: 'object', $defs: { a: { allOf: [{ $ref: '#/$defs/a' }] } }, properties: { x: { $ref: '#/$defs/a' } } }, cycle);
  refused({ type: 'object', not: { $ref: '#' } }, cycle);
  refused({ type: 'object', $defs: { a: { $anchor: 'here', anyOf: [{ $ref: '#here' }] } } }, cycle);
  refused({ type: 'object', $defs: { a: { if: { $ref: '#/$defs/b' } }, b: { oneOf: [{ $ref: '#/$defs/a' }] } } }, cycle);
  refused({ $id: 'https://example.test/root', type: 'object', $defs: { a: { $id: 'inner', dependentSchemas: { x: { $ref: 'inner' } } } } }, cycle);
  const unfollowable = /\$ref .* does not lead to a subschema of this schema/;
  refused({ type: 'object', properties: { a: { $ref: 'https://json-schema.org/draft/2020-12/meta/applicator#/properties/not' } } }, unfollowable);
  refused({ type: 'object', $ref: '#/$defs/a/const', $defs: { a: { const: { allOf: [{ $ref: '#/$defs/a/const' }] } } } }, unfollowable);
  refused({ $id: 'http://x.test/r', type: 'object', $ref: 'http://x.test/r#/$defs/a/allOf/0', $defs: { a: { $id: 'http://x.test/a', allOf: [{ $ref: 'http://x.test/r#/$defs/a/allOf/0' }] } } }, unfollowable);
  refused({ $id: 'http://x.test/%7Ea', type: 'object', $ref: 'http://x.test/~a#/$defs/b', $defs: { b: { allOf: [{ $ref: 'http://x.test/~a#/$defs/b' }] } } }, unfollowable);
  refused({ $id: 's.json', type: 'object', $defs: { a: { $id: 'inner.json', not: { $ref: 'inner.json' } } } }, cycle);
  const shared = { allOf: [{ $ref: '#/$defs/b' }] }; // one object at two paths, as a YAML alias makes
  refused({ type: 'object', $defs: { a: shared, b: shared } }, cycle);
  refused({ $id: 'latchgate:schema-root', type: 'object', $defs: { a: { not: { $ref: '#/$defs/a' } } } }, cycle);
  // A reference to true or false is followed, and ends there.
  assert.equal(typeof compileActionSchema(createSchemaAjv(), { type: 'object', properties: { a: { $ref: '#/$defs/yes' } }, $defs: { yes: true } }), 'function');
  refused({ $schema: 'https://json-schema.org/draft/2020-12/meta/meta-data#/properties/default', type: 'object', properties: { a: 5 } }, /\$schema must be "https:\/\/json-schema.org\/draft\/2020-12\/schema" or left out/);
  refused({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'object' }, /\$schema must be/);
  // Recursion that steps into the data ends with the data: a tree.
  const tree = { $ref: '#/$defs/node', $defs: { node: { type: 'object', properties: { children: { type: 'array', items: { $ref: '#/$defs/node' } } } } } };
  const v = compileActionSchema(createSchemaAjv(), tree);
  assert.equal(v({ children: [{ children: [] }, { children: [{}] }] }), true);
  assert.equal(v({ children: [5] }), false);
  assert.equal(typeof compileActionSchema(createSchemaAjv(), { $schema: `${META_2020_12}#`, type: 'object' }), 'function');
  // "#" is the whole schema, with or without an $id of its own.
  for (const base of [{}, { $id: 'https://example.test/tree.json' }]) {
    const self = compileActionSchema(createSchemaAjv(), { ...base, type: 'object', properties: { child: { $ref: '#' }, n: { type: 'integer' } } });
    assert.equal(self({ child: { child: { n: 1 } } }), true);
    assert.equal(self({ child: { n: 'x' } }), false);
    assert.equal(self.errors[0].instancePath, '/child/n');
  }
  // A field is there only when it is the document's own.
  const own = compileActionSchema(createSchemaAjv(), { type: 'object', properties: { toString: {}, constructor: {} }, required: ['toString', 'constructor'] });
  assert.equal(own({}), false);
  assert.equal(own({ toString: 1, constructor: 2 }), true);
});

test('JSON Schema Test Suite (draft 2020-12): every schema gets the same meta-schema verdict and errors from the generated validator as from ajv; the registry\'s request validation decides every instance as the suite says where strict mode takes the schema', { skip: skipSuite }, () => {
  const meta = REGISTRY_SCHEMAS.find((s) => s.schema === META_2020_12);
  const generated = generatedValidator(meta.name, fixedDigest(meta));
  const { ajv } = compileFixed(meta);
  let schemas = 0;
  let metaChecked = 0;
  let taken = 0;
  let instances = 0;
  for (const f of readdirSync(SUITE).filter((n) => n.endsWith('.json'))) {
    for (const c of JSON.parse(readFileSync(join(SUITE, f), 'utf8'))) {
      if (typeof c.schema !== 'object' || c.schema === null) continue; // boolean schemas: never a request schema
      schemas++;
      const where = `${f}: ${c.description}`;
      // The generated check stands in for ajv's where the schema names no other dialect (compileActionSchema).
      if (c.schema.$schema === undefined || c.schema.$schema === META_2020_12) {
        const own = ajv.validateSchema(c.schema);
        assert.equal(generated(c.schema), own, where);
        assert.deepEqual(generated.errors, ajv.errors, where);
        metaChecked++;
      }
      let validate;
      try {
        validate = compileActionSchema(createSchemaAjv(), c.schema);
      } catch {
        continue; // strict mode, a remote $ref, $dynamicRef: refused at load, as the registry does
      }
      taken++;
      for (const t of c.tests) {
        assert.equal(validate(t.data), t.valid, `${where} / ${t.description}`);
        instances++;
      }
    }
  }
  assert.ok(metaChecked > 350 && taken > 90 && instances > 280, `${schemas} schemas (${metaChecked} meta-checked), ${taken} taken under strict mode, ${instances} instances`);
});
