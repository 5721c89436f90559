#!/usr/bin/env node
// Generates the validators of the JSON Schemas latchgate ships as ajv's
// standalone code in dist/generated/ (src/core/fixed-validators.ts): run
// after tsc by the build and by `prepare`. Each module records the digest
// of what it was made from; the runtime uses it only when that still holds.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { createRequire } from 'node:module';
import { compileFixed, fixedDigest, generatedFile } from '../dist/core/fixed-validators.js';
import { PREPARED_FILE, prepareManifestYaml } from '../dist/gate/manifest-yaml.js';
import { actionSchema, BUILTIN_MANIFEST_DIR, Registry, REGISTRY_SCHEMAS } from '../dist/gate/registry.js';
import { openDb } from '../dist/ledger/db.js';
import { decisionSchemas } from '../dist/policy/engine.js';
import { CedarEngine } from '../dist/policy/cedar.js';
import { CEDAR_CHECKED_FILE, cedarPackageDigest, cedarSetDigest, readPolicySet } from '../dist/policy/cedar-checked.js';

const require = createRequire(import.meta.url);
const standaloneCode = require('ajv/dist/standalone/index.js').default;

// The built-in manifests' YAML read as values (src/gate/manifest-yaml.ts), by their text's digest.
const yamlValues = {};
for (const name of readdirSync(BUILTIN_MANIFEST_DIR).filter((n) => /\.ya?ml$/.test(n)).sort()) {
  const entry = prepareManifestYaml(readFileSync(join(BUILTIN_MANIFEST_DIR, name), 'utf8'), isDeepStrictEqual);
  if (!entry) throw new Error(`build-validators: definitions/manifests/${name} does not read as a plain JSON value`);
  yamlValues[entry[0]] = entry[1];
}
const yamlFile = fileURLToPath(PREPARED_FILE);
mkdirSync(dirname(yamlFile), { recursive: true });
writeFileSync(`${yamlFile}.tmp`, `${JSON.stringify(yamlValues)}\n`);
renameSync(`${yamlFile}.tmp`, yamlFile);

// The shipped Cedar policy set, loaded as a gate loads it (this throws when it does not load), recorded by digest (src/policy/cedar-checked.ts).
const policySet = readPolicySet();
CedarEngine.load(policySet);
const cedarFile = fileURLToPath(CEDAR_CHECKED_FILE);
writeFileSync(`${cedarFile}.tmp`, `${JSON.stringify({ digest: cedarSetDigest(policySet, cedarPackageDigest()) })}\n`);
renameSync(`${cedarFile}.tmp`, cedarFile);

// The built-in manifests' request and response schemas, as the registry loads them (none left from an earlier build).
rmSync(dirname(generatedFile('schemas/-')), { recursive: true, force: true });
const db = openDb(':memory:');
const registry = new Registry(db, [], { builtin: true });
registry.migrate();
registry.load();
const actionSchemas = new Map();
for (const { manifest } of registry.list()) {
  for (const schema of [manifest.io.request_schema, manifest.io.response_schema]) {
    const fixed = schema && actionSchema(schema);
    if (fixed) actionSchemas.set(fixed.digest, fixed.spec);
  }
}
db.close();

const schemas = [...REGISTRY_SCHEMAS, ...decisionSchemas(), ...actionSchemas.values()];
for (const s of schemas) {
  const { ajv, validate } = compileFixed(s, true);
  const code = `${standaloneCode(ajv, validate)}\nmodule.exports.digest = ${JSON.stringify(fixedDigest(s))};\n`;
  const file = generatedFile(s.name);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, code);
  renameSync(`${file}.tmp`, file);
}
console.log(`build-validators: ${[...REGISTRY_SCHEMAS, ...decisionSchemas()].map((s) => s.name).join(', ')}, the built-in actions' ${actionSchemas.size} schemas and their ${Object.keys(yamlValues).length} manifests' YAML values, and the Cedar policy set's digest into dist/generated/`);
