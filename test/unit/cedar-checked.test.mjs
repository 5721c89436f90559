// The build's record of the Cedar policy set it loaded (src/policy/cedar-checked.ts):
// a box's gate leaves Cedar to its first decision only for exactly those
// texts under the same Cedar, and gets the texts as read; any other set is
// loaded at start, which says what is wrong with it. (A Cedar package
// changed in place: test/gate/box-gate-policy.test.mjs.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CEDAR_CHECKED_FILE, cedarCheckedAtBuild, cedarPackageDigest, cedarSetDigest, readPolicySet } from '../../dist/policy/cedar-checked.js';
import { DEFAULT_POLICY_DIR } from '../../dist/policy/engine.js';

test('the shipped policy set is the one the build loaded; an edited text, another Cedar or no set is not', (t) => {
  const shipped = readPolicySet();
  assert.deepEqual(cedarCheckedAtBuild(), shipped);
  const dir = mkdtempSync(join(tmpdir(), 'latchgate-cedar-checked-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const copy = (name) => {
    const d = join(dir, name);
    cpSync(DEFAULT_POLICY_DIR, d, { recursive: true });
    return d;
  };
  // The digest is of the texts, wherever they are.
  assert.deepEqual(cedarCheckedAtBuild(copy('same')), shipped);
  const policy = copy('policy');
  appendFileSync(join(policy, 'latchgate.cedar'), '\n// one more line\n');
  assert.equal(cedarCheckedAtBuild(policy), undefined, 'an edited policy text');
  const schema = copy('schema');
  appendFileSync(join(schema, 'latchgate.cedarschema'), ' ');
  assert.equal(cedarCheckedAtBuild(schema), undefined, 'an edited schema');
  assert.equal(cedarCheckedAtBuild(join(dir, 'none')), undefined, 'no policy set');

  const { digest } = JSON.parse(readFileSync(CEDAR_CHECKED_FILE, 'utf8'));
  assert.equal(digest, cedarSetDigest(shipped, cedarPackageDigest()));
  assert.notEqual(digest, cedarSetDigest(shipped, 'another Cedar'), 'another Cedar is another set');
});
