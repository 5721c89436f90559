// Agents' text printed for an operator: nothing a terminal acts on or hides
// gets through, and --json stays the exact value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { displayText, displayLines, safeJson } from '../../dist/cli/safe-text.js';

const NASTY = 'a\u202eb\u200bc\u001b[31md\u009be\u2028f\ufeffg\u{e0041}h\\u{202e}\n';

test('displayText: hidden characters as \\u{hex}, a literal backslash doubled', () => {
  assert.equal(displayText(NASTY), 'a\\u{202e}b\\u{200b}c\\u{1b}[31md\\u{9b}e\\u{2028}f\\u{feff}g\\u{e0041}h\\\\u{202e}\\u{a}');
});

test('displayLines keeps the newlines between lines and escapes everything else hidden', () => {
  assert.equal(displayLines('x\u202e\ny\u0007'), 'x\\u{202e}\ny\\u{7}');
});

test('safeJson: the exact value once parsed, with no hidden character in the text', () => {
  const v = { [NASTY]: [NASTY, 1], lone: '\ud800' };
  const s = safeJson(v, 2);
  assert.deepEqual(JSON.parse(s), v);
  assert.doesNotMatch(s, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]/);
  assert.match(s, /\\u202e/);
  assert.match(s, /\\udb40\\udc41/, 'an astral tag character as its surrogate pair');
});
