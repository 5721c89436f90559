// RFC 8785 canonicalisation against the public corpora (read in place from
// ../shared/testdata), upstream's golden vectors, and property tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalize, canonicalHash, CanonicalizationError, isCanonicalText } from '../../dist/crypto/jcs.js';
import * as standalone from '../../dist/verify/jcs.js';
import { testdata } from '../helpers/testdata.mjs';

const shared = testdata('/');

test('one implementation: src/crypto/jcs.ts re-exports the standalone src/verify/jcs.ts (the bundle verifier hashes the same bytes)', () => {
  assert.equal(canonicalize, standalone.canonicalize);
  assert.equal(CanonicalizationError, standalone.CanonicalizationError);
});
const jcsDir = `${shared}jcs/testdata`;
const missing = (p) => (existsSync(p) ? false : `shared testdata not present (${p})`);

test('cyberphone RFC 8785 corpus: byte-exact output for every case', { skip: missing(jcsDir) }, () => {
  const names = readdirSync(`${jcsDir}/input`).filter((n) => n.endsWith('.json'));
  assert.ok(names.length >= 6);
  for (const n of names) {
    const input = JSON.parse(readFileSync(`${jcsDir}/input/${n}`, 'utf8'));
    const expected = readFileSync(`${jcsDir}/output/${n}`);
    const got = Buffer.from(canonicalize(input), 'utf8');
    assert.ok(got.equals(expected), `${n}: got ${got.toString()} expected ${expected.toString()}`);
    const hex = readFileSync(`${jcsDir}/outhex/${n.replace(/\.json$/, '.txt')}`, 'utf8').replace(/\s+/g, '');
    assert.equal(got.toString('hex'), hex, n);
  }
});

const es6 = `${shared}jcs/es6numbers/es6testfile-first10000.txt`;
test('ES6 number serialisation: first 10,000 lines of the reference file', { skip: missing(es6) }, () => {
  const buf = Buffer.alloc(8);
  let n = 0;
  for (const line of readFileSync(es6, 'utf8').split('\n')) {
    if (!line) continue;
    const [hex, expected] = line.split(',');
    buf.writeBigUInt64BE(BigInt(`0x${hex}`));
    assert.equal(canonicalize(buf.readDoubleBE(0)), expected, `0x${hex}`);
    n++;
  }
  assert.equal(n, 10000);
});

const golden = `${shared}latchgate-vectors/jcs/golden.json`;
test('upstream latchgate golden vectors: canonical form, hex and sha256', { skip: missing(golden) }, () => {
  const cases = JSON.parse(readFileSync(golden, 'utf8'));
  assert.equal(cases.length, 8);
  for (const c of cases) {
    const got = canonicalize(c.input);
    assert.equal(got, c.canonical, c.description);
    if (c.canonical_hex) assert.equal(Buffer.from(got).toString('hex'), c.canonical_hex, c.description);
    assert.equal(canonicalHash(c.input), c.sha256, c.description);
  }
});

test('values with no JSON form are refused with their JSON pointer', () => {
  for (const [v, path] of [[{ a: [1, NaN] }, '/a/1'], [{ 'x/y': Infinity }, '/x~1y'], [{ f: () => 1 }, '/f'], [{ b: 1n }, '/b'], [{ m: new Map() }, '/m']]) {
    assert.throws(() => canonicalize(v), (e) => e instanceof CanonicalizationError && e.path === path, JSON.stringify(path));
  }
  assert.throws(() => canonicalize(JSON.parse('['.repeat(70) + ']'.repeat(70))), CanonicalizationError);
  assert.throws(() => canonicalize('x'.repeat(100), { maxBytes: 50 }), /exceeds 50 bytes/);
  assert.equal(canonicalize({ d: new Date(0) }), '{"d":"1970-01-01T00:00:00.000Z"}');
  assert.equal(canonicalize({ u: undefined, a: [undefined] }), '{"a":[null]}');
  assert.equal(canonicalize(-0), '0');
});

// A seeded PRNG keeps failures reproducible.
function prng(seed) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}
function randomValue(r, depth = 0) {
  const k = Math.floor(r() * (depth > 4 ? 4 : 7));
  const str = () => Array.from({ length: Math.floor(r() * 8) }, () => String.fromCharCode(Math.floor(r() * (r() < 0.2 ? 0xffff : 0x80)))).join('');
  switch (k) {
    case 0: return null;
    case 1: return r() < 0.5;
    case 2: return (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20);
    case 3: return str();
    case 4: return Math.floor(r() * 1e6) - 5e5;
    case 5: return Array.from({ length: Math.floor(r() * 5) }, () => randomValue(r, depth + 1));
    default: return Object.fromEntries(Array.from({ length: Math.floor(r() * 5) }, () => [str(), randomValue(r, depth + 1)]));
  }
}

test('property: canonical form is valid JSON, parses back to the same value, and is a fixed point', () => {
  const r = prng(20261122);
  for (let i = 0; i < 3000; i++) {
    const v = randomValue(r);
    const c = canonicalize(v);
    const back = JSON.parse(c);
    assert.deepEqual(back, JSON.parse(JSON.stringify(v)), c);
    assert.equal(canonicalize(back), c);
    // Key order and whitespace never change the canonical form.
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const shuffled = Object.fromEntries(Object.entries(v).reverse());
      assert.equal(canonicalize(JSON.parse(JSON.stringify(shuffled, null, 2))), c);
    }
  }
});

/** What isCanonicalText's true must imply: canonicalize(JSON.parse(text)) === text (false where canonicalize refuses). */
const canonicalBySlowRoad = (text, parsed) => {
  try {
    return canonicalize(parsed) === text;
  } catch (e) {
    if (e instanceof CanonicalizationError) return false;
    throw e;
  }
};

/** Texts of one value: canonical, as JSON.stringify writes it (own key order), members reversed, spaced, and key order shuffled only deep inside. */
function spellings(v) {
  const reverse = (x) => (Array.isArray(x) ? x.map(reverse) : x && typeof x === 'object' ? Object.fromEntries(Object.entries(x).reverse().map(([k, y]) => [k, reverse(y)])) : x);
  return [canonicalize(v), JSON.stringify(v), JSON.stringify(reverse(v)), JSON.stringify(v, null, 1), JSON.stringify({ a: 1, z: [reverse(v)] })];
}

test('property: isCanonicalText(text, JSON.parse(text)) only when canonicalize(JSON.parse(text)) === text (RFC 8785 corpus, random values, the edge cases)', { skip: missing(jcsDir) }, () => {
  const texts = [];
  for (const n of readdirSync(`${jcsDir}/input`).filter((x) => x.endsWith('.json'))) {
    const input = readFileSync(`${jcsDir}/input/${n}`, 'utf8');
    texts.push(input, readFileSync(`${jcsDir}/output/${n}`, 'utf8'), ...spellings(JSON.parse(input)));
  }
  const r = prng(20261204);
  for (let i = 0; i < 3000; i++) texts.push(...spellings(randomValue(r)));
  // Integer-like keys (JavaScript orders them first, numerically), duplicate keys, number and string spellings JCS writes otherwise,
  // and the limits: nesting of 64 and 65, a text past 4 MiB.
  texts.push(
    '{"1":1,"10":2,"9":3}', '{"10":1,"9":2}', '{"9":1,"10":2}', '{"a":1,"a":1}', '{"a":1,"b":2,"a":1}', '{"b":1,"a":2}',
    '[1.0]', '[1e2]', '[1e999]', '[-1e999]', '[100]', '[-0]', '[0]', '[1E+2]', '["\\u0041"]', '["A"]', '["\\/"]', '["\\ud800"]', '["\\u001f"]', '["\\u007f"]',
    '{"__proto__":1,"a":2}', '{"toJSON":"x"}', '{"":1,"a":{"":[]}}',
    `${'['.repeat(64)}1${']'.repeat(64)}`, `${'['.repeat(65)}1${']'.repeat(65)}`, `${'['.repeat(66)}${']'.repeat(66)}`,
    JSON.stringify(['x'.repeat(4 * 1024 * 1024 - 4)]), JSON.stringify(['x'.repeat(4 * 1024 * 1024 - 3)]),
  );
  let fast = 0;
  for (const text of texts) {
    const parsed = JSON.parse(text);
    // false only sends the caller to canonicalize (integer-like keys, which JavaScript orders apart, take that road).
    if (!isCanonicalText(text, parsed)) continue;
    assert.ok(canonicalBySlowRoad(text, parsed), `isCanonicalText took for canonical what canonicalize does not: ${text.slice(0, 200)}`);
    fast++;
  }
  // The quick road is taken (not only refused): every canonical text without integer-like keys takes it.
  assert.ok(fast >= 3000, `only ${fast} texts took the quick road`);
});
