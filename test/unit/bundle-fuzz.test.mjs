// Fuzzing the bundle's trust boundary (seeded, deterministic, bounded): the
// strict JSON reader against JSON.parse, and verifyBundle on mutated bundles:
// it never throws, and nothing but a change that leaves the document the
// same (or touches only what no check relies on) passes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyBundle } from '../../dist/verify/bundle.js';
import { JsonSyntaxError, parseJson } from '../../dist/verify/json.js';
import { makeBundle } from '../helpers/bundle-fixture.mjs';

function prng(seed) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

const STRICTER = /appears twice|lone surrogate|nesting deeper|beyond a double/;

/** parseJson agrees with JSON.parse, except where it is stricter on purpose. */
function differential(text) {
  let mine;
  let theirs;
  let mineErr;
  let theirsErr;
  try {
    mine = parseJson(text);
  } catch (e) {
    assert.ok(e instanceof JsonSyntaxError, `parseJson threw ${e} on ${JSON.stringify(text)}`);
    mineErr = e;
  }
  try {
    theirs = JSON.parse(text);
  } catch (e) {
    theirsErr = e;
  }
  if (!mineErr) {
    assert.equal(theirsErr, undefined, `parseJson accepted what JSON.parse refuses: ${JSON.stringify(text)}`);
    assert.deepEqual(mine, theirs, JSON.stringify(text));
  } else if (!theirsErr) {
    assert.match(mineErr.message, STRICTER, `parseJson refused ${JSON.stringify(text)}: ${mineErr.message}`);
  }
  return !mineErr;
}

test('strict JSON reader: differential against JSON.parse over seeded random and mutated texts', () => {
  const r = prng(20250601);
  const pick = (s) => s[Math.floor(r() * s.length)];
  const seeds = ['{"a":[1,2.5e3,-0,true,null],"b":{"c":"d\\u00e9\\n"}}', '[{"x":"\\ud83d\\ude00"},[],{}]', '{"n":-12.5E-3,"s":"\\"\\\\\\/\\b\\f\\r\\t"}', '"x"', '0', '{"a":1,"b":{"a":2}}'];
  const alphabet = ['{', '}', '[', ']', ',', ':', '"', '\\', 'u', 'd', '8', '0', '1', '-', '.', 'e', 'E', '+', ' ', '\n', 't', 'r', 'n', 'a', 'l', 'x', '\u00e9', '\ud800'];
  let accepted = 0;
  for (let i = 0; i < 20000; i++) {
    let t = pick(seeds);
    const edits = 1 + Math.floor(r() * 3);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(r() * (t.length + 1));
      const k = r();
      if (k < 0.4) t = t.slice(0, at) + pick(alphabet) + t.slice(at);
      else if (k < 0.7) t = t.slice(0, at) + t.slice(at + 1);
      else t = t.slice(0, at) + pick(alphabet) + t.slice(at + 1);
    }
    if (differential(t)) accepted++;
  }
  assert.ok(accepted > 500, `only ${accepted} mutated texts were JSON: the fuzzer is not reaching the reader's accepting paths`);
  // The stricter rules, each shown.
  for (const t of ['{"a":1,"a":1}', '"\\udc00"', '[1e400]', '['.repeat(65) + ']'.repeat(65)]) {
    assert.doesNotThrow(() => JSON.parse(t));
    assert.throws(() => parseJson(t), (e) => e instanceof JsonSyntaxError && STRICTER.test(e.message), t);
  }
  // A member called __proto__ is a member, not the prototype.
  const o = parseJson('{"__proto__":{"polluted":1}}');
  assert.equal(Object.getPrototypeOf(o), Object.prototype);
  assert.deepEqual(Object.keys(o), ['__proto__']);
  assert.equal({}.polluted, undefined);
});

/** The document as far as the checks rely on it: the receipt key's informational members left out. */
function relied(doc) {
  const { receipt_key: k, ...rest } = doc;
  return { ...rest, receipt_key: { kty: k?.kty, crv: k?.crv, x: k?.x, kid: k?.kid, retired_at: k?.retired_at } };
}

test('verifyBundle on 400 seeded mutations of a good bundle: never throws, and only document-preserving changes pass', () => {
  const f = makeBundle({ size: 6, leaf: 4, newerSize: 9 });
  const text = JSON.stringify(f.bundle);
  const original = relied(JSON.parse(text));
  const r = prng(7);
  const chars = '0123456789abcdefABCDEF"{}[],:\\ -+/=.xzZT';
  let passed = 0;
  let reachedChecks = 0;
  for (let i = 0; i < 400; i++) {
    let t = text;
    const at = Math.floor(r() * t.length);
    const k = r();
    if (k < 0.5) t = t.slice(0, at) + chars[Math.floor(r() * chars.length)] + t.slice(at + 1);
    else if (k < 0.7) t = t.slice(0, at) + t.slice(at + 1);
    else if (k < 0.9) t = t.slice(0, at) + chars[Math.floor(r() * chars.length)] + t.slice(at);
    else t = t.slice(0, at);
    const report = verifyBundle(t);
    assert.ok(['verified', 'unauthenticated', 'failed'].includes(report.verdict));
    if (report.checks[0].status === 'ok') reachedChecks++;
    if (report.verdict !== 'failed') {
      passed++;
      assert.deepEqual(relied(JSON.parse(t)), original, `a mutation at ${at} passed: ${t.slice(Math.max(0, at - 30), at + 30)}`);
    }
  }
  assert.ok(reachedChecks > 60, `only ${reachedChecks} mutations got past the form check`);
  assert.ok(passed < 400);
});
