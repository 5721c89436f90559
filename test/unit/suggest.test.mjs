// Edit distance and "did you mean" for unknown names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closest, didYouMean, levenshtein, nearest } from '../../dist/config/suggest.js';
import { prng } from '../fixtures/unit/helpers.mjs';

test('levenshtein: known distances', () => {
  assert.equal(levenshtein('', ''), 0);
  assert.equal(levenshtein('', 'abc'), 3);
  assert.equal(levenshtein('abc', ''), 3);
  assert.equal(levenshtein('abc', 'abc'), 0);
  assert.equal(levenshtein('kitten', 'sitting'), 3);
  assert.equal(levenshtein('flaw', 'lawn'), 2);
  assert.equal(levenshtein('ro_mount', 'ro_mounts'), 1);
  assert.equal(levenshtein('agnet', 'agent'), 2);
  assert.equal(levenshtein('a', 'b'), 1);
  assert.equal(levenshtein('ab', 'ba'), 2);
  assert.equal(levenshtein('Agent', 'agent'), 1, 'case-sensitive by itself');
});

test('levenshtein: a metric on random strings (symmetry, bounds, triangle inequality)', () => {
  const r = prng(7);
  const word = () => Array.from({ length: r.below(8) }, () => r.pick([...'abcd_'])).join('');
  for (let i = 0; i < 300; i++) {
    const [a, b, c] = [word(), word(), word()];
    const ab = levenshtein(a, b);
    assert.equal(ab, levenshtein(b, a), `${a} ${b}`);
    assert.ok(ab >= Math.abs(a.length - b.length) && ab <= Math.max(a.length, b.length), `${a} ${b}`);
    assert.equal(ab === 0, a === b);
    assert.ok(levenshtein(a, c) <= ab + levenshtein(b, c), `${a} ${b} ${c}`);
  }
});

test('nearest: the closest known name, case-insensitively, within a threshold', () => {
  const known = ['workspace', 'allow_hosts', 'ro_mounts', 'rw_mounts', 'pass_env'];
  assert.equal(nearest('ro_mount', known), 'ro_mounts');
  assert.equal(nearest('RO_MOUNTS', known), 'ro_mounts');
  assert.equal(nearest('rw_mount', known), 'rw_mounts');
  assert.equal(nearest('workspce', known), 'workspace');
  assert.equal(nearest('passenv', known), 'pass_env');
  assert.equal(nearest('agnet', ['agent', 'limits', 'network']), 'agent');
  assert.equal(nearest('zzzzzzzzzz', known), undefined);
  assert.equal(nearest('anything', []), undefined);
  // Threshold: max(2, floor(len/3)) of the suggestion.
  assert.equal(nearest('xy', ['ab']), 'ab');
  assert.equal(nearest('xyz', ['abc']), undefined);
  assert.equal(nearest('abcdefXYZ', ['abcdefghi']), 'abcdefghi');
  assert.equal(nearest('abcdeWXYZ', ['abcdefghi']), undefined);
  // Ties go to the first known name.
  assert.equal(nearest('ab', ['aa', 'bb']), 'aa');
});

test('closest: the known names within the threshold, nearest first, at most max', () => {
  const known = ['lease_issued', 'lease_denied', 'action_call', 'egress'];
  assert.deepEqual(closest('lease_issue', known), ['lease_issued']);
  assert.deepEqual(closest('lease_isued', known), ['lease_issued', 'lease_denied'], 'distance 1, then 4');
  assert.deepEqual(closest('lease_xxxxed', known), ['lease_issued', 'lease_denied'], 'a tie keeps the order given');
  assert.deepEqual(closest('lease_xxxxed', known, 1), ['lease_issued']);
  assert.deepEqual(closest('EGRES', known), ['egress']);
  assert.deepEqual(closest('zzzzzzzz', known), []);
  // The first of them is what nearest() gives.
  for (const name of ['lease_isued', 'acton_cal', 'egres', 'zzzz']) assert.equal(closest(name, known)[0], nearest(name, known), name);
});

test('didYouMean: a suggestion, or the whole list', () => {
  assert.equal(didYouMean('ro_mount', ['ro_mounts', 'rw_mounts']), 'did you mean "ro_mounts"?');
  assert.equal(didYouMean('qqqqqqqq', ['ro_mounts', 'rw_mounts']), 'expected one of: ro_mounts, rw_mounts');
});
