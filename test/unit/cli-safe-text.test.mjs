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

// Characters a terminal draws as nothing, or as whatever the font has: fillers, selectors, unassigned and private-use.
const INVISIBLE = ['\u1161', '\u11a8', '\ud7b0', '\u3164', '\u115f', '\u1160', '\uffa0', '\u034f', '\u17b4', '\u180b', '\ufe0f', '\u{e0100}', '\u2065', '\u{e0080}', '\ue000', '\u{f0000}', '\u0378'];

test('default-ignorable, unassigned and private-use characters are escaped too, in text and in JSON', () => {
  for (const c of INVISIBLE) {
    const hex = c.codePointAt(0).toString(16);
    assert.equal(displayText(`a${c}b`), `a\\u{${hex}}b`, hex);
    assert.equal(displayLines(`a${c}\nb`), `a\\u{${hex}}\nb`, hex);
    const s = safeJson({ v: `a${c}b` });
    assert.ok(!s.includes(c), hex);
    assert.deepEqual(JSON.parse(s), { v: `a${c}b` });
  }
  // Text of other scripts stays as it is.
  assert.equal(displayText('héllo 日本 ✓ Ωμέγα'), 'héllo 日本 ✓ Ωμέγα');
});

test('a stack of combining marks keeps two on a character; the rest are escaped, and JSON parses back the same', () => {
  const zalgo = `e\u0301\u0302\u0303\u0304x\u0301`;
  assert.equal(displayText(zalgo), 'e\u0301\u0302\\u{303}\\u{304}x\u0301');
  const s = safeJson({ zalgo });
  assert.ok(s.includes('\u0301\u0302\\u0303\\u0304'), s);
  assert.deepEqual(JSON.parse(s), { zalgo });
});
