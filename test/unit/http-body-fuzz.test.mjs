// Property test of the body filler (src/providers/http-body.ts), the parser
// a provider's request body meets: 1500 seeded random JSON documents whose
// strings hold {{secret:NAME}} placeholders next to quotes, backslashes,
// escapes and braces (keys too). Filled, each still parses, to the same document with
// every placeholder replaced by the value (which has a quote and a
// backslash): a value never leaves its string. A failure prints its seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fillBodySecrets } from '../../dist/providers/http-body.js';
import { HostIoError } from '../../dist/providers/host-error.js';
import { prng } from '../fixtures/unit/helpers.mjs';

const VALUES = { A: 'va"l\\ue-0123456789', B: 'zz"}{"x":1,"y":"9876' };
const source = { get: async (n) => VALUES[n] };
const declared = new Set(Object.keys(VALUES));
const JSON_CT = [['Content-Type', 'application/json']];
const PIECES = ['{{secret:A}}', '{{secret:B}}', '"', '\\', '{', '}', '{{', '}}', 'secret:', 'x', ' ', '\u00e9', '\u2028', '{{secret:A}', '{{secret:C'];

function randomString(rnd) {
  let s = '';
  for (let i = rnd.below(6); i > 0; i--) s += rnd.pick(PIECES);
  return s;
}

function randomDoc(rnd, depth = 0) {
  const k = depth > 3 ? rnd.below(3) : rnd.below(5);
  if (k === 0) return randomString(rnd);
  if (k === 1) return rnd.below(100);
  if (k === 2) return rnd.pick([null, true, false]);
  if (k === 3) return Array.from({ length: rnd.below(4) }, () => randomDoc(rnd, depth + 1));
  const o = {};
  for (let i = rnd.below(4); i > 0; i--) o[randomString(rnd)] = randomDoc(rnd, depth + 1);
  return o;
}

const fill = (s) => s.replace(/\{\{secret:([AB])\}\}/g, (_, n) => VALUES[n]);
function filled(doc) {
  if (typeof doc === 'string') return fill(doc);
  if (Array.isArray(doc)) return doc.map(filled);
  if (doc && typeof doc === 'object') return Object.fromEntries(Object.entries(doc).map(([k, v]) => [fill(k), filled(v)]));
  return doc;
}

test('a filled JSON body parses to the document with its placeholders replaced, never more', async () => {
  const seed = 0x5eC7e7;
  const rnd = prng(seed);
  for (let i = 0; i < 1500; i++) {
    const doc = randomDoc(rnd);
    const text = JSON.stringify(doc, null, rnd.chance(0.3) ? 1 : undefined);
    const where = `seed ${seed}, case ${i}: ${text}`;
    const body = new TextEncoder().encode(text);
    if (/\{\{secret:C\w*\}\}/.test(text)) {
      await assert.rejects(fillBodySecrets(body, JSON_CT, declared, source), (e) => e instanceof HostIoError && e.code === 'secret_not_declared', where);
      continue;
    }
    const r = await fillBodySecrets(body, JSON_CT, declared, source);
    const out = Buffer.from(r.body).toString('utf8');
    assert.deepEqual(JSON.parse(out), filled(doc), where);
    for (const v of r.values) assert.ok(Object.values(VALUES).includes(v), where);
  }
});

test('a placeholder outside every string is refused, whatever surrounds it', async () => {
  const rnd = prng(7);
  for (let i = 0; i < 300; i++) {
    const inner = JSON.stringify(randomDoc(rnd));
    const text = rnd.chance(0.5) ? `[${inner},{{secret:A}}]` : `{{secret:A}}${inner}`;
    await assert.rejects(fillBodySecrets(new TextEncoder().encode(text), JSON_CT, declared, source), (e) => e instanceof HostIoError && e.code === 'secret_placement', text);
  }
});
