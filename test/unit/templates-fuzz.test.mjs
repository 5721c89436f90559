// Property test of the template engine: 2000 seeded random variable values
// (heavy in URL and header metacharacters) through expandTemplate never
// change the URL's origin or the shape of its path and query, round-trip
// exactly through percent-decoding, and never put CR, LF or NUL in a header.
// Anything refused is a TemplateError. A failure prints its seed and case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandTemplate, TemplateError } from '../../dist/gate/templates.js';
import { prng } from '../fixtures/unit/helpers.mjs';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 0x7e_3a_17;
const CASES = 2000;

const TEMPLATES = [
  {
    method: 'POST',
    url_template: 'https://api.example.test/a/{{x}}/b/{{y}}?q={{z}}&r=1',
    headers: { 'X-One': '{{x}}', 'X-Two': 'pre {{y}} post', Authorization: 'Bearer {{secret:TOKEN}}' },
    body_template: { x: '{{x}}', s: 'x={{x}}, y={{y}}' },
  },
  {
    method: 'GET',
    url_template: 'http://api.example.test:8080/{{x}}{{y}}.json?k={{z}}',
    headers: { 'X-Z': '{{z}}' },
  },
];

const PIECES = [
  '/', '?', '#', '@', ':', '.', '..', '\\', '%', '%2e', '%2F', '%00', '&', '=', '+', ';', ',', '[', ']', '{{', '}}', '{', '}',
  ' ', '\t', '\r', '\n', '\r\n', '\0', '\x7f', '\x1b', '\u0085', '\u2028', '\uFEFF', '\uD800', '\uDC00', 'é', 'ü', '😀', '\u3002',
  'evil.com', '@evil.com', 'evil.com/../', '//evil.com', 'http://evil.com', 'user:pw@', 'localhost', '127.0.0.1', '[::1]',
  'javascript:', 'a', 'b', 'xyz', '0', '-1', 'null', 'true', '%252e', 'HTTP/1.1', 'Host: evil.com', 'secret:TOKEN',
];

function randomValue(rnd) {
  switch (rnd.below(10)) {
    case 0:
      return rnd.below(1000) - 500;
    case 1:
      return rnd.chance(0.5);
    case 2:
      return rnd.chance(0.5) ? null : { a: 1 };
    case 3:
      return rnd.pick(['.', '..', '', '%2e%2e', '.%2e']);
    default: {
      let s = '';
      const n = 1 + rnd.below(6);
      for (let i = 0; i < n; i++) s += rnd.pick(PIECES);
      return s;
    }
  }
}

test(`2000 random variable values never change the URL origin nor put CR/LF in headers (seed ${SEED})`, () => {
  const rnd = prng(SEED);
  let expanded = 0;
  let refused = 0;
  for (let c = 0; c < CASES; c++) {
    const t = TEMPLATES[c % TEMPLATES.length];
    const vars = { x: randomValue(rnd), y: randomValue(rnd), z: randomValue(rnd) };
    const templateUrl = new URL(t.url_template.replace(/\{\{[^{}]*\}\}/g, 'v'));
    let r;
    try {
      r = expandTemplate(t, vars, ['TOKEN']);
    } catch (e) {
      if (e instanceof TemplateError) {
        refused++;
        continue;
      }
      assert.fail(`case ${c} (seed ${SEED}) ${JSON.stringify(vars)}: ${e?.name}: ${e?.message}`);
    }
    expanded++;
    const where = `case ${c} (seed ${SEED}) ${JSON.stringify(vars)} -> ${r.url}`;
    const u = new URL(r.url);
    assert.equal(u.origin, templateUrl.origin, where);
    assert.equal(u.username, '', where);
    assert.equal(u.password, '', where);
    assert.equal(u.hash, '', where);
    assert.equal(u.href, r.url, `${where}: the URL is in its parsed form`);
    // The path keeps the template's number of segments; the query its keys.
    assert.equal(u.pathname.split('/').length, templateUrl.pathname.split('/').length, where);
    assert.deepEqual([...u.searchParams.keys()].length, [...templateUrl.searchParams.keys()].length, where);
    if (c % TEMPLATES.length === 0) {
      // Each value comes back exactly through percent-decoding.
      const segs = u.pathname.split('/');
      assert.equal(decodeURIComponent(segs[2]), String(vars.x), where);
      assert.equal(decodeURIComponent(segs[4]), String(vars.y), where);
      assert.equal(u.searchParams.get('q'), String(vars.z), where);
      assert.equal(u.searchParams.get('r'), '1', where);
      assert.deepEqual(r.body.x, vars.x, where);
    }
    for (const [name, value] of Object.entries(r.headers)) {
      assert.doesNotMatch(value, /[\r\n\0]/, `${where}: header ${name}`);
      assert.doesNotMatch(value, /[^\t\x20-\x7e\x80-\xff]/, `${where}: header ${name}`);
    }
    // Only the template's own secret reference survives in the headers.
    const refs = Object.values(r.headers).join(' ').match(/\{\{[^}]*\}\}/g) ?? [];
    assert.deepEqual(refs, t.headers.Authorization ? ['{{secret:TOKEN}}'] : [], where);
  }
  assert.ok(expanded > 300 && refused > 300, `expanded ${expanded}, refused ${refused}`);
});
