// The build's record of the Cedar policy set it loaded (src/policy/cedar-checked.ts):
// a box's gate leaves Cedar to its first decision only for exactly those
// texts under the same Cedar; any other set is loaded at start, which says
// what is wrong with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CEDAR_CHECKED_FILE, cedarCheckedAtBuild, cedarPackageVersion, cedarSetDigest, readPolicySet } from '../../dist/policy/cedar-checked.js';
import { CedarEngine } from '../../dist/policy/cedar.js';
import { DEFAULT_POLICY_DIR } from '../../dist/policy/engine.js';

test('the shipped policy set is the one the build loaded; an edited text, another Cedar or no set is not', (t) => {
  assert.equal(cedarCheckedAtBuild(), true);
  const dir = mkdtempSync(join(tmpdir(), 'latchgate-cedar-checked-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const copy = (name) => {
    const d = join(dir, name);
    cpSync(DEFAULT_POLICY_DIR, d, { recursive: true });
    return d;
  };
  // The digest is of the texts, wherever they are.
  assert.equal(cedarCheckedAtBuild(copy('same')), true);
  const policy = copy('policy');
  appendFileSync(join(policy, 'latchgate.cedar'), '\n// one more line\n');
  assert.equal(cedarCheckedAtBuild(policy), false, 'an edited policy text');
  const schema = copy('schema');
  appendFileSync(join(schema, 'latchgate.cedarschema'), ' ');
  assert.equal(cedarCheckedAtBuild(schema), false, 'an edited schema');
  assert.equal(cedarCheckedAtBuild(join(dir, 'none')), false, 'no policy set');

  const { policyText, schemaText } = readPolicySet();
  const { digest } = JSON.parse(readFileSync(CEDAR_CHECKED_FILE, 'utf8'));
  assert.equal(digest, cedarSetDigest(policyText, schemaText, cedarPackageVersion()));
  assert.notEqual(digest, cedarSetDigest(policyText, schemaText, `${cedarPackageVersion()}-other`), 'another Cedar version is another set');
  // The version read from the package is the one its WebAssembly reports.
  assert.equal(CedarEngine.load().cedarVersion, cedarPackageVersion());
});
