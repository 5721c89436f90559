// The credential reverse proxy against a real HTTPS upstream on 127.0.0.1
// (a test CA made with openssl at test time): header injection and
// stripping, redaction (echoes in every encoding src/egress/key-redaction.ts
// covers, split chunks, content and transfer codings), streaming both ways,
// aborts both ways, TLS failures, routing, and one keyless event per request.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { CredentialProxy, validateRoute } from '../../dist/egress/credential-proxy.js';
import { KeyMatcher, KeyRedactor, Redaction } from '../../dist/egress/key-redaction.js';
import { LaunchError } from '../../dist/core/errors.js';
import { tempDir, prng } from '../fixtures/unit/helpers.mjs';
import { makePki, haveOpenssl } from '../fixtures/egress-cred/pki.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = join(HERE, '../../dist');
const FIX = join(HERE, '../fixtures/egress-cred');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const KEY_A = `sk-ant-test-$&-${randomBytes(12).toString('hex')}`; // "$&" must stay literal
const KEY_O = `sk-oai-test-${randomBytes(12).toString('hex')}`;
const KEY_P = `sk-pin-test-${randomBytes(12).toString('hex')}`;
const KEYS = [KEY_A, KEY_O, KEY_P];

const randBytes = (n, rnd) => Buffer.from(Array.from({ length: n }, () => rnd.below(256)));

function assertNoKey(text, what) {
  for (const k of KEYS) assert.ok(!String(text).includes(k), `${what} contains a key: ${String(text).slice(0, 400)}`);
}

// ---------------------------------------------------------------- pure parts

const GOOD = { name: 'anthropic', upstream: 'https://api.anthropic.com', header: 'x-api-key', format: '{}', key: KEY_A };

test('validateRoute: normalises the upstream and builds the header value', () => {
  const v = validateRoute({ ...GOOD, upstream: 'https://API.Example.com:443/v1/', header: 'Authorization', format: 'Bearer {}' });
  assert.equal(v.hostname, 'api.example.com');
  assert.equal(v.port, 443);
  assert.equal(v.hostHeader, 'api.example.com');
  assert.equal(v.basePath, '/v1');
  assert.equal(v.header, 'authorization');
  assert.equal(v.value, `Bearer ${KEY_A}`); // "$&" not expanded
  const six = validateRoute({ ...GOOD, upstream: 'https://[::1]:8443' });
  assert.equal(six.hostname, '::1');
  assert.equal(six.hostHeader, '[::1]:8443');
  assert.equal(six.port, 8443);
  assert.equal(six.basePath, '');
});

const BAD_ROUTES = [
  [{ name: '' }, 'name'],
  [{ name: 'Anthropic' }, 'name'],
  [{ name: 'a/b' }, 'name'],
  [{ name: 'a b' }, 'name'],
  [{ upstream: '' }, 'upstream', /missing/],
  [{ upstream: 'http://api.anthropic.com' }, 'upstream', /https/],
  [{ upstream: 'api.anthropic.com' }, 'upstream', /not a URL/],
  [{ upstream: 'https://u:p@api.anthropic.com' }, 'upstream', /user:password/],
  [{ upstream: 'https://api.anthropic.com/v1?x=1' }, 'upstream', /query/],
  [{ header: 'x api key' }, 'header', /not a valid HTTP header name/],
  [{ header: 'Host' }, 'header', /cannot carry a key/],
  [{ header: 'content-length' }, 'header', /cannot carry a key/],
  [{ header: 'Proxy-Authorization' }, 'header', /cannot carry a key/],
  [{ format: 'Bearer' }, 'format', /exactly once/],
  [{ format: '{}{}' }, 'format', /exactly once/],
  [{ format: 'Bearer\n{}' }, 'format', /printable/],
  [{ key: '' }, 'key', /empty/],
  [{ key: 'short' }, 'key', /shorter than 8/],
  [{ key: 'k'.repeat(8193) }, 'key', /longer than 8192/],
  [{ key: `${KEY_A} x` }, 'key', /position/],
  [{ key: `${KEY_A}\r\nx-evil: 1` }, 'key', /position/],
  [{ caFile: '/nonexistent/ca.pem' }, 'ca_file', /cannot be read \(ENOENT\)/],
];

for (const [patch, field, why] of BAD_ROUTES) {
  test(`validateRoute refuses ${JSON.stringify(patch)} naming the route and ${field}, without the key`, () => {
    const r = { ...GOOD, ...patch };
    let err;
    try {
      validateRoute(r);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof LaunchError, `expected a LaunchError, got ${err}`);
    assert.match(err.message, /^credential route /);
    if (field !== 'name') assert.ok(err.message.includes('"anthropic"'), err.message);
    assert.ok(err.message.includes(` ${field} `), err.message);
    if (why) assert.match(err.message, why);
    assertNoKey(err.message, 'error message');
  });
}

test('validateRoute: a ca_file without a certificate is refused', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'x.pem'), 'not a certificate\n');
  assert.throws(() => validateRoute({ ...GOOD, caFile: join(dir, 'x.pem') }), /credential route "anthropic": ca_file .* holds no PEM certificate/);
  writeFileSync(join(dir, 'y.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  assert.throws(() => validateRoute({ ...GOOD, caFile: join(dir, 'y.pem') }), /ca_file .* malformed certificate/);
});

test('CredentialProxy refuses duplicate routes and bad extra CA certificates', () => {
  const record = () => {};
  assert.throws(() => new CredentialProxy({ routes: [GOOD, GOOD], record }), /credential route "anthropic": name is defined twice/);
  assert.throws(() => new CredentialProxy({ routes: [GOOD], record, extraCaCerts: ['nope'] }), /extra_ca_certs\[0\]: no PEM certificate/);
});

async function redactChunks(key, chunks) {
  const r = new KeyRedactor(new KeyMatcher(key));
  const out = [];
  r.on('data', (c) => out.push(c));
  for (const c of chunks) r.write(Buffer.from(c));
  r.end();
  await once(r, 'end');
  return Buffer.concat(out).toString();
}

test('KeyRedactor: any chunking gives the same output as replacing the key, in any letter case, in the whole text', async () => {
  const rnd = prng(0xc0ffee);
  const needles = [KEY_A, 'aaaaaaab', 'abababac', 'xyzxyzxy'];
  for (let round = 0; round < 400; round++) {
    const key = rnd.pick(needles);
    const parts = [];
    for (let i = 0; i < 1 + rnd.below(8); i++) {
      const kind = rnd.below(5);
      if (kind === 0) parts.push(key);
      else if (kind === 1) parts.push(key.slice(0, 1 + rnd.below(key.length - 1))); // a dangling prefix
      else if (kind === 2) parts.push(key.slice(rnd.below(key.length)));
      else if (kind === 3) parts.push('a'.repeat(rnd.below(10)) + 'b');
      else parts.push(randBytes(rnd.below(12), rnd).toString('base64'));
    }
    const text = parts.join('');
    const cuts = [];
    for (let i = 0; i < text.length; i++) if (rnd.chance(0.3)) cuts.push(i);
    const chunks = [];
    let prev = 0;
    for (const c of [...cuts, text.length]) {
      chunks.push(text.slice(prev, c));
      prev = c;
    }
    const got = await redactChunks(key, chunks.filter((c) => c.length));
    const keyAnyCase = new RegExp(key.replace(/[^\w]/g, '\\$&'), 'gi');
    assert.equal(got, text.replace(keyAnyCase, '[redacted]'), `round ${round}: ${JSON.stringify(chunks)}`);
    assert.ok(!keyAnyCase.test(got));
  }
});

test('KeyRedactor passes an SSE event on at once (holds back only a possible key start)', async () => {
  const r = new KeyRedactor(new KeyMatcher(KEY_O));
  const seen = [];
  r.on('data', (c) => seen.push(c.toString()));
  r.write('data: {"t":"hi"}\n\n');
  await sleep(5);
  assert.deepEqual(seen, ['data: {"t":"hi"}\n\n']);
  r.write(`x ${KEY_O.slice(0, 6)}`);
  await sleep(5);
  assert.deepEqual(seen.slice(1), ['x ']); // "sk-oai" might be the key: held
  r.end(`${KEY_O.slice(6)} y`);
  await once(r, 'end');
  assert.equal(seen.join(''), 'data: {"t":"hi"}\n\nx [redacted] y');
});

// ---------------------------------------------------------------- key forms

// How an upstream can hand the key back. Each takes the key and a prng, so a
// failing case replays from its seed.
const hex2 = (code) => code.toString(16).padStart(2, '0');
const anyCase = (s, rnd) => [...s].map((c) => (rnd.chance(0.5) ? c.toUpperCase() : c.toLowerCase())).join('');
const pctChar = (c, rnd) => `%${anyCase(hex2(c.charCodeAt(0)), rnd)}`;
const uChar = (c, rnd) => `\\u00${anyCase(hex2(c.charCodeAt(0)), rnd)}`;
/** One character inside a JSON string: escaped where JSON must, \u00hh or \/ where an encoder may. */
function jsonChar(c, rnd) {
  if (c === '"' || c === '\\') return rnd.chance(0.5) ? `\\${c}` : uChar(c, rnd);
  if (c === '/') return rnd.pick(['/', '\\/', uChar(c, rnd)]);
  return rnd.chance(0.5) ? uChar(c, rnd) : c;
}
/**
 * `bytes` inside a larger base64 or base64url blob: any alignment, padding
 * kept or dropped; `tail: false` ends the blob with them.
 */
function b64Blob(bytes, rnd, { alphabet = rnd.pick(['base64', 'base64url']), tail = true } = {}) {
  const blob = Buffer.concat([randBytes(rnd.below(12), rnd), bytes, randBytes(tail ? rnd.below(12) : 0, rnd)]).toString(alphabet);
  return rnd.chance(0.5) ? blob.replace(/=+$/, '') : blob;
}
/** Any subset of characters as %hh or \u00hh, mixed (one layer; percent sign and backslash always escaped, as a decoder of both needs). */
const oneLayer = (c, rnd) => rnd.pick([() => ('%\\'.includes(c) ? pctChar(c, rnd) : anyCase(c, rnd)), () => pctChar(c, rnd), () => uChar(c, rnd), () => ('/"\\'.includes(c) ? `\\${c}` : uChar(c, rnd))])();
/** A valid percent-encoding of s escaping a random subset of characters ("%" always). */
const pctSome = (s, rnd) => [...s].map((c) => (c === '%' || rnd.chance(0.5) ? pctChar(c, rnd) : c)).join('');
const FORMS = {
  verbatim: (k) => k,
  upper: (k) => k.toUpperCase(),
  lower: (k) => k.toLowerCase(),
  mixedCase: (k, rnd) => anyCase(k, rnd),
  json: (k, rnd) => [...k].map((c) => jsonChar(c, rnd)).join(''),
  jsonAll: (k, rnd) => [...k].map((c) => uChar(c, rnd)).join(''),
  percent: (k, rnd) => pctSome(k, rnd),
  percentAll: (k, rnd) => [...k].map((c) => pctChar(c, rnd)).join(''),
  percentTwice: (k, rnd) => pctSome(pctSome(k, rnd), rnd),
  formEncoded: (k) => new URLSearchParams({ k }).toString().slice(2),
  percentInJson: (k, rnd) => [...encodeURIComponent(k)].map((c) => jsonChar(c, rnd)).join(''),
  mixed: (k, rnd) => [...k].map((c) => oneLayer(c, rnd)).join(''),
  mixedInJson: (k, rnd) => [...[...k].map((c) => oneLayer(c, rnd)).join('')].map((c) => jsonChar(c, rnd)).join(''),
  mixedInPercent: (k, rnd) => pctSome([...k].map((c) => oneLayer(c, rnd)).join(''), rnd),
  hex: (k, rnd) => anyCase(Buffer.from(k).toString('hex'), rnd),
  hexUpper: (k, rnd) => anyCase(Buffer.from(k.toUpperCase()).toString('hex'), rnd),
  hexOfPercent: (k, rnd) => anyCase(Buffer.from(encodeURIComponent(k)).toString('hex'), rnd),
  base64: (k, rnd, o) => b64Blob(Buffer.from(k), rnd, o),
  base64Upper: (k, rnd, o) => b64Blob(Buffer.from(k.toUpperCase()), rnd, o),
  base64Lower: (k, rnd, o) => b64Blob(Buffer.from(k.toLowerCase()), rnd, o),
  percentBase64: (k, rnd, o) => encodeURIComponent(b64Blob(Buffer.from(k), rnd, { ...o, alphabet: 'base64' })),
  jsonBase64: (k, rnd, o) => b64Blob(Buffer.from(k), rnd, { ...o, alphabet: 'base64' }).replace(/\//g, '\\/'),
  percentInJsonBase64: (k, rnd, o) => [...encodeURIComponent(b64Blob(Buffer.from(k), rnd, { ...o, alphabet: 'base64' }))].map((c) => jsonChar(c, rnd)).join(''),
};
/** Forms that wrap the key in a document: they put other bytes right after it. */
const WRAPPED = {
  base64OfJson: (k, rnd) => b64Blob(Buffer.from(JSON.stringify({ headers: { 'x-api-key': k } })), rnd),
  base64OfJsonSlashes: (k, rnd) => b64Blob(Buffer.from(JSON.stringify({ k }).replace(/\//g, '\\/')), rnd),
  base64OfUrl: (k, rnd) => b64Blob(Buffer.from(`https://x.test/cb?key=${encodeURIComponent(k)}&x=1`), rnd),
};
const ALL_FORMS = { ...FORMS, ...WRAPPED };

// The oracle: decodes bytes every way the forms above encode, independently of
// the code under test, and says where the key shows up (any letter case).
const jsonUnescape = (s) => s.replace(/\\u([0-9a-fA-F]{4})|\\(["\\/])/g, (_, h, c) => (h ? String.fromCharCode(parseInt(h, 16)) : c));
const pctDecode = (s) => s.replace(/%([0-9a-fA-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
const mixedDecode = (s) => s.replace(/%([0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})|\\(["\\/])/g, (_, p, u, c) => (p || u ? String.fromCharCode(parseInt(p || u, 16)) : c));
function textViews(s) {
  const j = jsonUnescape(s);
  const p = pctDecode(s);
  const m = mixedDecode(s);
  return [
    ['as is', s],
    ['JSON-unescaped', j],
    ['percent-decoded', p],
    ['percent-decoded twice', pctDecode(p)],
    ['JSON-unescaped, percent-decoded', pctDecode(j)],
    ['percent-decoded, JSON-unescaped', jsonUnescape(p)],
    ['both escapes decoded', m],
    ['both escapes decoded twice', mixedDecode(m)],
    ['JSON-unescaped, both decoded', mixedDecode(j)],
    ['percent-decoded, both decoded', mixedDecode(p)],
  ];
}
function keyIn(bytes, key) {
  const want = key.toLowerCase();
  const text = Buffer.isBuffer(bytes) ? bytes.toString('latin1') : String(bytes);
  for (const [name, v] of textViews(text)) {
    if (v.toLowerCase().includes(want)) return name;
    for (const run of v.match(/[A-Za-z0-9+/_-]{8,}/g) ?? []) {
      for (let off = 0; off < 4; off++) {
        const dec = Buffer.from(run.slice(off).replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('latin1');
        for (const [inner, w] of textViews(dec)) if (w.toLowerCase().includes(want)) return `base64 (offset ${off}) of ${name}, ${inner}`;
      }
    }
    for (const run of v.match(/[0-9a-fA-F]{16,}/g) ?? []) {
      for (let off = 0; off < 2; off++) {
        const dec = Buffer.from(run.slice(off, off + ((run.length - off) & ~1)), 'hex').toString('latin1');
        for (const [inner, w] of textViews(dec)) if (w.toLowerCase().includes(want)) return `hex (offset ${off}) of ${name}, ${inner}`;
      }
    }
  }
  return null;
}
function assertKeyless(bytes, key, what) {
  const where = keyIn(bytes, key);
  assert.equal(where, null, `${what} holds the key (${where}): ${String(Buffer.isBuffer(bytes) ? bytes.toString('latin1') : bytes).slice(0, 600)}`);
}

/** Runs bytes through a fresh Redaction in the given pieces; returns the output and the count. */
function redactPieces(matcher, pieces) {
  const r = new Redaction(matcher);
  const out = pieces.map((p) => r.write(Buffer.from(p)));
  out.push(r.end());
  return { out: Buffer.concat(out), count: r.redactions };
}
function randomCuts(buf, rnd, p = 0.2) {
  const pieces = [];
  let prev = 0;
  for (let i = 1; i < buf.length; i++) {
    if (rnd.chance(p)) {
      pieces.push(buf.subarray(prev, i));
      prev = i;
    }
  }
  pieces.push(buf.subarray(prev));
  return pieces;
}
// Keys as real APIs issue them, and anything validateRoute lets through.
const KEY_ALPHABETS = ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-', Array.from({ length: 94 }, (_, i) => String.fromCharCode(0x21 + i)).join('')];
function randomKey(rnd) {
  const alphabet = rnd.chance(0.6) ? KEY_ALPHABETS[0] : KEY_ALPHABETS[1];
  const n = 8 + rnd.below(rnd.chance(0.8) ? 60 : 200);
  return (rnd.chance(0.3) ? rnd.pick(['sk-ant-api03-', 'sk-proj-', 'AKIA']) : '') + Array.from({ length: n }, () => alphabet[rnd.below(alphabet.length)]).join('');
}
/** Ordinary response text: JSON, SSE, words, numbers, escapes and base64 that are not the key. */
function ordinaryText(rnd, n) {
  const bits = [
    () => JSON.stringify({ id: `msg_${rnd.u32().toString(36)}`, type: 'message', text: 'The answer is 42 /tmp/x %d \\n' }),
    () => `event: content_block_delta\ndata: {"type":"text_delta","text":"${rnd.pick(['Hello', ' wor', 'ld', ' 100%', ' \\u00e9t\\u00e9', ' a\\/b'])}"}\n\n`,
    () => randBytes(3 + rnd.below(40), rnd).toString(rnd.pick(['base64', 'base64url', 'hex'])),
    () => `%${hex2(rnd.below(256))}`,
    () => `\\u${hex2(rnd.below(256))}${hex2(rnd.below(256))}`,
    () => rnd.pick([' ', '\n', '"', ':', ',', '/', '=', '&', '+', '\\']),
    () => String(rnd.u32()),
  ];
  let s = '';
  while (s.length < n) s += rnd.pick(bits)();
  return s;
}

test('key forms: each encoder really leaks the key (the oracle sees it), and the matcher catches it', () => {
  const rnd = prng(0x5eed01);
  for (const key of [KEY_A, KEY_O, 'abc/def"ghi\\jkl%41+mn', 'AKIAIOSFODNN7EXAMPLE/wJalrXUtnFEMI+K7MDENG']) {
    const m = new KeyMatcher(key);
    for (const [name, enc] of Object.entries(ALL_FORMS)) {
      for (let i = 0; i < 4; i++) {
        const form = enc(key, rnd);
        const text = `before ${form} after`;
        assert.ok(keyIn(text, key), `${name}: the encoder did not encode the key: ${form}`);
        const r = m.redact(text);
        assert.ok(r.count >= 1, `${name}: not redacted: ${text}`);
        assert.match(r.text, /^before .*\[redacted\].* after$/);
        assertKeyless(r.text, key, `${name} redacted`);
      }
    }
  }
});

test('key forms, property: random keys, random forms in random text, random chunk cuts: no leak, same output however cut', () => {
  const rnd = prng(0x5eed02);
  const names = Object.keys(ALL_FORMS);
  for (let round = 0; round < 60; round++) {
    const key = randomKey(rnd);
    const m = new KeyMatcher(key);
    for (let j = 0; j < 6; j++) {
      const parts = [];
      const used = [];
      for (let i = 0; i < 1 + rnd.below(3); i++) {
        const name = rnd.pick(names);
        used.push(name);
        parts.push(ordinaryText(rnd, rnd.below(80)), ALL_FORMS[name](key, rnd));
      }
      parts.push(ordinaryText(rnd, rnd.below(80)));
      const input = Buffer.from(parts.join(''), 'latin1');
      const whole = redactPieces(m, [input]);
      const cut = redactPieces(m, randomCuts(input, rnd, rnd.pick([0.02, 0.2, 0.7])));
      const what = `round ${round}.${j}, key ${JSON.stringify(key)}, forms ${used.join(',')}`;
      assert.ok(cut.out.equals(whole.out), `${what}: chunking changed the output`);
      assert.equal(cut.count, whole.count, what);
      assert.ok(whole.count >= 1, what);
      assertKeyless(cut.out, key, what);
    }
  }
});

test('key forms, property: ordinary JSON, SSE, base64 and binary without the key pass byte for byte', () => {
  const rnd = prng(0x5eed03);
  for (let round = 0; round < 40; round++) {
    const key = randomKey(rnd);
    const m = new KeyMatcher(key);
    // All of the key but its last character, in every form, each ending there.
    const near = key.slice(0, key.length - 1);
    const bodies = [
      Buffer.from(ordinaryText(rnd, 2000), 'latin1'),
      randBytes(4096, rnd),
      Buffer.from(Object.values(FORMS).map((f) => `${f(near, rnd, { tail: false })} `).join(''), 'latin1'),
    ];
    for (const body of bodies) {
      const r = redactPieces(m, randomCuts(body, rnd, rnd.pick([0.01, 0.3])));
      assert.equal(r.count, 0, `round ${round}, key ${JSON.stringify(key)}`);
      assert.ok(r.out.equals(body), `round ${round}: an ordinary body changed`);
    }
  }
});

test('key forms: a complete SSE event passes at once even with escapes, percent signs and base64 in it', () => {
  const m = new KeyMatcher(KEY_O);
  const r = new Redaction(m);
  const ev = 'data: {"text":"50% of \\u00e9 a\\/b","img":"iVBORw0KGgoAAAANSUhEUg=="}\n\n';
  assert.equal(r.write(Buffer.from(ev)).toString(), ev);
  const head = `data: ${FORMS.jsonAll(KEY_O, prng(1)).slice(0, 20)}`; // could be the key's start: held
  assert.equal(r.write(Buffer.from(head)).toString(), 'data: ');
  assert.equal(r.write(Buffer.from(' no\n\n')).toString(), `${head.slice(6)} no\n\n`);
});

test('key forms: two streams interleaved while the DFA cache starts over still agree with one-piece redaction', () => {
  const rnd = prng(0x5eed04);
  const key = Array.from({ length: 300 }, () => KEY_ALPHABETS[0][rnd.below(64)]).join(''); // long: its forms need more states than the cache holds
  const m = new KeyMatcher(key);
  const texts = [0, 1].map(() => Buffer.from(Object.values(ALL_FORMS).flatMap((f) => [ordinaryText(rnd, 50), f(key, rnd)]).join(''), 'latin1'));
  const reference = texts.map((t) => redactPieces(new KeyMatcher(key), [t]));
  const epoch = m.epoch;
  const streams = texts.map(() => new Redaction(m));
  const pieces = texts.map((t) => randomCuts(t, rnd, 0.05));
  const outs = [[], []];
  while (pieces[0].length || pieces[1].length) {
    for (const i of [0, 1]) if (pieces[i].length) outs[i].push(streams[i].write(pieces[i].shift()));
  }
  assert.ok(m.epoch > epoch, 'the cache never started over: the test does not cover it');
  for (const i of [0, 1]) {
    outs[i].push(streams[i].end());
    const out = Buffer.concat(outs[i]);
    assert.ok(out.equals(reference[i].out), `stream ${i} differs from one-piece redaction`);
    assert.equal(streams[i].redactions, reference[i].count);
    assertKeyless(out, key, `stream ${i}`);
  }
});

// ---------------------------------------------------------------- live proxy

function request(port, { method = 'GET', path, headers = {}, body, socketPath } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, socketPath, method, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, statusMessage: res.statusMessage, headers: res.headers, rawHeaders: res.rawHeaders, rawTrailers: res.rawTrailers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function assertResponseKeyless(r) {
  assertNoKey(r.statusMessage, 'status line');
  assertNoKey(r.rawHeaders.join('\n'), 'response headers');
  assertNoKey(r.body.toString('latin1'), 'response body');
}

const SSE_FIRST = 'event: message_start\ndata: {"n":1,"t":"caf\\u00e9 50% a\\/b","img":"iVBORw0KGgo="}\n\n';
/** Ordinary upstream bodies, by content type: they must reach the agent byte for byte. */
const ORDINARY = {
  'application/json': Buffer.from(JSON.stringify({ id: 'msg_01', content: [{ type: 'text', text: ordinaryText(prng(21), 20_000) }], usage: { input_tokens: 12 } })),
  'text/event-stream': Buffer.from(ordinaryText(prng(22), 30_000).replace(/\n/g, '\n\n'), 'latin1'),
  'application/octet-stream': randBytes(256 * 1024, prng(23)),
};

describe('credential proxy against an HTTPS upstream', { skip: !haveOpenssl() && 'openssl CLI not found' }, () => {
  let pki;
  let dir;
  let upstream;
  let upPort;
  let proxy;
  let port;
  const events = [];
  const seen = []; // what the upstream received: { url, method, headers, remotePort }
  const hooks = {}; // per-test hooks the upstream calls
  let sent = 0; // requests the tests made through `proxy`
  const extraServers = [];

  function upstreamHandler(req, res) {
    seen.push({ url: req.url, method: req.method, headers: req.headers, remotePort: req.socket.remotePort });
    const u = new URL(req.url, 'https://x');
    const p = u.pathname;
    if (p === '/v1/headers') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ url: req.url, headers: req.headers }));
    }
    if (p === '/v1/echo-key') {
      // An upstream that reflects the credential everywhere it can.
      const key = req.headers['x-api-key'] ?? req.headers.authorization;
      res.statusMessage = `OK ${key}`;
      res.setHeader('x-echo', `your key is ${key}`);
      res.setHeader('set-cookie', [`k=${key}`, 'plain=1']);
      res.setHeader('content-length', 0 + Buffer.byteLength(`{"key":"${key}","again":"${key}"}`));
      return res.end(`{"key":"${key}","again":"${key}"}`);
    }
    if (p === '/v1/split-key') {
      const key = req.headers['x-api-key'];
      const pieces = [`AAAAA${key.slice(0, 5)}`, key.slice(5, 9), `${key.slice(9)} mid ${key.slice(0, 3)}`, `${key.slice(3)} end ${key.slice(0, 4)}`];
      res.writeHead(200, { 'content-type': 'text/plain' });
      (async () => {
        for (const piece of pieces) {
          res.write(piece);
          await sleep(15);
        }
        res.end();
      })();
      return;
    }
    if (p === '/v1/gzip-key') {
      const body = zlib.gzipSync(`gzipped ${req.headers['x-api-key']} body`);
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': body.length });
      return res.end(body);
    }
    if (p === '/v1/echo-form') {
      // An upstream that hands the key back encoded: status line, headers, and a body cut into pieces.
      const key = req.headers['x-api-key'];
      const form = u.searchParams.get('form');
      const rnd = prng([...form].reduce((h, c) => h * 31 + c.charCodeAt(0), 7) >>> 0);
      const enc = () => ALL_FORMS[form](key, rnd);
      res.statusMessage = `OK ${enc()}`;
      res.setHeader('x-echo', `you sent ${enc()}`);
      res.setHeader('link', `<https://x.test/cb?k=${enc()}>; rel="next"`);
      res.writeHead(200, { 'content-type': 'application/json' });
      const body = Buffer.from(`{"headers":{"x-api-key":"${enc()}"},"again":"${enc()}"}`, 'latin1');
      (async () => {
        for (const piece of randomCuts(body, rnd, 0.08)) {
          res.write(piece);
          await sleep(2);
        }
        res.end();
      })();
      return;
    }
    if (p === '/v1/coded') {
      // The key (base64, in JSON) under a content coding.
      const coding = u.searchParams.get('coding');
      const plain = Buffer.from(`{"echo":"${FORMS.base64(req.headers['x-api-key'], prng(9))}"}`);
      const zip = { gzip: zlib.gzipSync, deflate: zlib.deflateSync, br: zlib.brotliCompressSync }[coding];
      const body = zip ? zip(plain) : plain;
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': coding, 'content-length': body.length });
      return res.end(body);
    }
    if (p === '/v1/ordinary') {
      res.writeHead(200, { 'content-type': u.searchParams.get('type') });
      const body = ORDINARY[u.searchParams.get('type')];
      (async () => {
        for (const piece of randomCuts(body, prng(body.length), 0.002)) {
          res.write(piece);
          await sleep(1);
        }
        res.end();
      })();
      return;
    }
    if (p === '/v1/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(SSE_FIRST);
      hooks.sseRelease.then(() => {
        hooks.sseLastSent = true;
        res.write('event: message_stop\ndata: {"n":2}\n\n');
        res.end();
      });
      return;
    }
    if (p === '/v1/hang') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
      res.on('close', () => hooks.hangClosed?.({ finished: res.writableFinished }));
      return;
    }
    if (p === '/v1/upload') {
      let n = 0;
      const h = createHash('sha256');
      req.on('data', (c) => {
        if (n === 0) hooks.firstUploadChunk?.(c.toString());
        n += c.length;
        h.update(c);
      });
      req.on('close', () => hooks.uploadClosed?.({ complete: req.complete }));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ te: req.headers['transfer-encoding'] ?? null, length: n, sha256: h.digest('hex') }));
      });
      return;
    }
    if (p === '/v1/echo-body') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
      return;
    }
    if (p === '/v1/stall') {
      // Reads the whole request, never answers (a model thinking for a long time).
      req.resume();
      req.on('end', () => hooks.stallGot?.());
      res.on('close', () => hooks.stallClosed?.({ headersSent: res.headersSent }));
      return;
    }
    if (p === '/v1/redirect') {
      res.writeHead(302, { location: 'https://elsewhere.example/login?next=/v1' });
      return res.end();
    }
    if (p === '/v1/die') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      setTimeout(() => req.socket.destroy(), 20);
      return;
    }
    res.writeHead(404);
    res.end('no such upstream path');
  }

  async function httpsServer(cert, handler = upstreamHandler) {
    const s = https.createServer({ key: cert.key, cert: cert.cert, keepAliveTimeout: 10_000 }, handler);
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    extraServers.push(s);
    return s.address().port;
  }

  const waitFor = async (pred, what, ms = 3000) => {
    const until = Date.now() + ms;
    for (;;) {
      const v = pred();
      if (v) return v;
      if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
      await sleep(10);
    }
  };
  const lastEvent = (pred) => waitFor(() => [...events].reverse().find(pred), 'the event');
  const through = (opts) => {
    sent++;
    return request(port, opts);
  };

  before(async () => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'latchgate-egress-cred-')));
    pki = makePki(dir);
    upPort = await httpsServer(pki.server);
    upstream = extraServers[0];
    const roguePort = await httpsServer(pki.rogue);
    const wrongPort = await httpsServer(pki.wrongName);
    const dead = net.createServer().listen(0, '127.0.0.1');
    await once(dead, 'listening');
    const deadPort = dead.address().port;
    dead.close();
    proxy = new CredentialProxy({
      routes: [
        { name: 'anth', upstream: `https://127.0.0.1:${upPort}`, header: 'x-api-key', format: '{}', key: KEY_A },
        { name: 'oai', upstream: `https://localhost:${upPort}/v1/`, header: 'Authorization', format: 'Bearer {}', key: KEY_O },
        { name: 'pinned', upstream: 'https://api.example.test/v1', header: 'x-custom-auth', format: 'Key {}', key: KEY_P },
        { name: 'rogue', upstream: `https://127.0.0.1:${roguePort}`, header: 'x-api-key', format: '{}', key: KEY_A },
        { name: 'wrongname', upstream: `https://127.0.0.1:${wrongPort}`, header: 'x-api-key', format: '{}', key: KEY_A },
        { name: 'dead', upstream: `https://127.0.0.1:${deadPort}`, header: 'x-api-key', format: '{}', key: KEY_A },
      ],
      extraCaCerts: [pki.caPem],
      resolve: (host, p) => (host === 'api.example.test' && p === 443 ? { host: '127.0.0.1', port: upPort } : undefined),
      record: (e) => {
        events.push(e);
      },
    });
    port = await proxy.listenTcp('127.0.0.1', 0);
  });

  after(async () => {
    await proxy?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    for (const s of extraServers) {
      s.closeAllConnections?.();
      s.close();
    }
  });

  test('injects the key, strips every client credential, keeps the query, sets Host', async () => {
    const r = await through({
      path: '/anth/v1/headers?beta=true&x=%2F',
      headers: {
        authorization: 'Bearer latchgate-placeholder',
        'x-api-key': 'latchgate-placeholder',
        cookie: 'session=abc',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        'accept-encoding': 'gzip, br',
        connection: 'keep-alive, x-hop',
        'x-hop': 'must not pass',
        'anthropic-version': '2023-06-01',
      },
    });
    assert.equal(r.status, 200);
    assertResponseKeyless(r);
    const up = seen.at(-1);
    assert.equal(up.url, '/v1/headers?beta=true&x=%2F');
    assert.equal(up.headers['x-api-key'], KEY_A);
    assert.equal(up.headers.host, `127.0.0.1:${upPort}`);
    assert.equal(up.headers['anthropic-version'], '2023-06-01');
    assert.equal(up.headers['accept-encoding'], 'identity');
    for (const h of ['authorization', 'cookie', 'proxy-authorization', 'x-hop']) assert.equal(up.headers[h], undefined, h);
    assert.ok(!JSON.stringify(up.headers).includes('latchgate-placeholder'));
  });

  test('a route with a base path, an Authorization format, and the route header sent by the client', async () => {
    const r = await through({ method: 'POST', path: '/oai/headers', headers: { Authorization: 'Bearer latchgate-placeholder', 'x-api-key': 'p', 'content-type': 'application/json' }, body: '{}' });
    assert.equal(r.status, 200);
    assertResponseKeyless(r);
    const up = seen.at(-1);
    assert.equal(up.url, '/v1/headers');
    assert.equal(up.method, 'POST');
    assert.equal(up.headers.authorization, `Bearer ${KEY_O}`);
    assert.equal(up.headers['x-api-key'], undefined);
    assert.equal(up.headers.host, `localhost:${upPort}`);
  });

  test('a pinned name: connects to the pinned address, checks the certificate against the name', async () => {
    const r = await through({ path: '/pinned/headers', headers: { 'x-custom-auth': 'Key latchgate-placeholder' } });
    assert.equal(r.status, 200, r.body.toString());
    const up = seen.at(-1);
    assert.equal(up.url, '/v1/headers');
    assert.equal(up.headers['x-custom-auth'], `Key ${KEY_P}`);
    assert.equal(up.headers.host, 'api.example.test');
  });

  test('absolute-form targets (a client going through HTTP_PROXY) are routed by their path', async () => {
    for (const host of [`127.0.0.1:${port}`, 'api.anthropic.com']) {
      const r = await through({ path: `http://${host}/anth/v1/headers?q=1`, headers: { 'x-api-key': 'placeholder' } });
      assert.equal(r.status, 200);
      assert.equal(seen.at(-1).url, '/v1/headers?q=1');
      assert.equal(seen.at(-1).headers['x-api-key'], KEY_A);
    }
  });

  test('unknown routes, bad paths and bad targets never reach an upstream', async () => {
    const before = seen.length;
    for (const path of ['/nope/v1/messages', '/', '/anthx/v1', '/ANTH/v1/headers']) {
      const r = await through({ path });
      assert.equal(r.status, 404, path);
      assert.equal(JSON.parse(r.body).error, 'unknown_route');
    }
    for (const path of ['/anth/../oai/headers', '/anth/v1/%2e%2e/x', '/anth/./v1']) {
      const r = await through({ path });
      assert.equal(r.status, 400, path);
      assert.equal(JSON.parse(r.body).error, 'bad_path');
    }
    assert.equal(seen.length, before);
    const ev = await lastEvent((e) => e.details.path === '/nope/v1/messages');
    assert.equal(ev.decision, 'deny');
    assert.equal(ev.details.reason, 'unknown_route');
    assert.equal(ev.details.status, 404);
    assert.equal(ev.details.route, null);
  });

  test('an upstream echoing the key: headers, status line and body come back redacted', async () => {
    const r = await through({ path: '/anth/v1/echo-key' });
    assert.equal(r.status, 200);
    assertResponseKeyless(r);
    assert.equal(r.statusMessage, 'OK [redacted]');
    assert.equal(r.headers['x-echo'], 'your key is [redacted]');
    assert.deepEqual(r.headers['set-cookie'], ['k=[redacted]', 'plain=1']);
    assert.equal(r.body.toString(), '{"key":"[redacted]","again":"[redacted]"}');
    assert.equal(r.headers['content-length'], undefined); // the length changed: chunked instead
    const r2 = await through({ path: '/oai/echo-key' });
    assertResponseKeyless(r2);
    assert.equal(r2.body.toString(), '{"key":"Bearer [redacted]","again":"Bearer [redacted]"}');
  });

  test('a key split across response chunks is still redacted', async () => {
    const r = await through({ path: '/anth/v1/split-key' });
    assertResponseKeyless(r);
    assert.equal(r.body.toString(), `AAAAA[redacted] mid [redacted] end ${KEY_A.slice(0, 4)}`);
  });

  test('a gzip response the upstream sent anyway is decoded and redacted', async () => {
    const r = await through({ path: '/anth/v1/gzip-key', headers: { 'accept-encoding': 'gzip' } });
    assert.equal(r.status, 200);
    assertResponseKeyless(r);
    assert.equal(r.headers['content-encoding'], undefined);
    assert.equal(r.body.toString(), 'gzipped [redacted] body');
  });

  for (const form of Object.keys(ALL_FORMS)) {
    test(`an upstream echoing the key ${form}: status line, headers and body come back without it in any form`, async () => {
      const path = `/anth/v1/echo-form?form=${form}`;
      const r = await through({ path });
      assert.equal(r.status, 200);
      assertKeyless(r.statusMessage, KEY_A, 'status line');
      assertKeyless(r.rawHeaders.join('\n'), KEY_A, 'headers');
      assertKeyless(r.body, KEY_A, 'body');
      assert.match(r.statusMessage, /^OK .*\[redacted\]/);
      assert.match(r.headers['x-echo'], /^you sent .*\[redacted\]/);
      assert.match(r.headers.link, /\[redacted\]/);
      assert.equal(r.body.toString('latin1').split('[redacted]').length - 1, 2);
      const ev = await lastEvent((e) => e.details.path === path);
      assert.equal(ev.decision, 'allow');
      assert.equal(ev.details.redactions, 5); // status line, two headers, twice in the body
    });
  }

  for (const coding of ['gzip', 'deflate', 'br']) {
    test(`a ${coding} body with the key (base64) inside is decoded and redacted`, async () => {
      const r = await through({ path: `/anth/v1/coded?coding=${coding}` });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-encoding'], undefined);
      assert.match(r.body.toString(), /^\{"echo":".*\[redacted\].*"\}$/);
      assertKeyless(r.body, KEY_A, 'body');
    });
  }

  test('a content coding that cannot be decoded is refused (502 unsupported_content_encoding)', async () => {
    const path = '/anth/v1/coded?coding=compress';
    const r = await through({ path });
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body).error, 'unsupported_content_encoding');
    assertKeyless(r.body, KEY_A, 'the refusal');
    const ev = await lastEvent((e) => e.details.path === path);
    assert.equal(ev.details.reason, 'unsupported_content_encoding');
  });

  test('HEAD on a gzip resource: no body to decode, no decoder error', async () => {
    const r = await through({ method: 'HEAD', path: '/anth/v1/gzip-key' });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
    const ev = await lastEvent((e) => e.details.path === '/anth/v1/gzip-key' && e.details.method === 'HEAD');
    assert.equal(ev.decision, 'allow');
    assert.equal(ev.details.reason, null);
  });

  for (const type of Object.keys(ORDINARY)) {
    test(`an ordinary ${type} body without the key passes byte for byte`, async () => {
      const path = `/anth/v1/ordinary?type=${encodeURIComponent(type)}`;
      const r = await through({ path });
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(ORDINARY[type]), 'the body changed');
      const ev = await lastEvent((e) => e.details.path === path);
      assert.equal(ev.details.redactions, 0);
      assert.equal(ev.details.bytes_down, ORDINARY[type].length);
    });
  }

  test('transfer codings: only chunked is accepted; gzip or any other is refused, and trailers are not passed on', async (t) => {
    // A raw TLS upstream (Node's server would not send these framings), one request per connection.
    const gz = zlib.gzipSync(`{"key":"${KEY_A}"}`);
    const chunked = (body) => Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
    const answers = {
      '/gzip-chunked': Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n'), chunked(gz)]),
      '/gzip': Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n'), gz]),
      '/deflate-chunked': Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: deflate, chunked\r\nConnection: close\r\n\r\n'), chunked(zlib.deflateSync(KEY_A))]),
      '/identity': Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nConnection: close\r\n\r\n${KEY_A}`),
      '/chunked': Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nTrailer: x-key\r\nConnection: close\r\n\r\n8\r\nkey is: \r\n${Buffer.byteLength(KEY_A).toString(16)}\r\n${KEY_A}\r\n0\r\nx-key: ${KEY_A}\r\n\r\n`),
    };
    const raw = tls.createServer({ key: pki.server.key, cert: pki.server.cert }, (sock) => {
      sock.on('error', () => {});
      let head = '';
      sock.on('data', (c) => {
        head += c.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        const path = /^GET (\S+)/.exec(head)[1];
        sock.end(answers[path]);
      });
    });
    raw.listen(0, '127.0.0.1');
    await once(raw, 'listening');
    t.after(() => raw.close());
    const evs = [];
    const p4 = new CredentialProxy({
      routes: [{ name: 'raw', upstream: `https://127.0.0.1:${raw.address().port}`, header: 'x-api-key', format: '{}', key: KEY_A }],
      extraCaCerts: [pki.caPem],
      record: (e) => evs.push(e),
    });
    t.after(() => p4.close());
    const p4port = await p4.listenTcp('127.0.0.1', 0);
    for (const path of ['/gzip-chunked', '/gzip', '/deflate-chunked', '/identity']) {
      const r = await request(p4port, { path: `/raw${path}` });
      assert.equal(r.status, 502, path);
      const j = JSON.parse(r.body);
      assert.equal(j.error, 'unsupported_transfer_encoding', path);
      assert.match(j.message, /only chunked is accepted/);
      assertKeyless(r.body, KEY_A, `${path} refusal`);
      const ev = await waitFor(() => evs.find((e) => e.details.path === `/raw${path}`), 'the event');
      assert.equal(ev.decision, 'error');
      assert.equal(ev.details.reason, 'unsupported_transfer_encoding');
    }
    const ok = await request(p4port, { path: '/raw/chunked' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.toString(), 'key is: [redacted]');
    assert.deepEqual(ok.rawTrailers, []);
    assert.equal(ok.headers.trailer, undefined);
    const ev = await waitFor(() => evs.find((e) => e.details.path === '/raw/chunked'), 'the event');
    assert.equal(ev.details.redactions, 1);
  });

  test('SSE: the first event reaches the client before the upstream sends the last', { timeout: 5000 }, async () => {
    let release;
    hooks.sseRelease = new Promise((r) => (release = r));
    hooks.sseLastSent = false;
    sent++;
    const res = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/anth/v1/sse', agent: false, headers: { accept: 'text/event-stream' } }, resolve);
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.headers['content-type'], 'text/event-stream');
    let text = '';
    for await (const c of res) {
      text += c;
      if (text.includes('"n":1') && !hooks.sseLastSent) {
        assert.ok(!text.includes('message_stop'));
        release();
      }
    }
    assert.ok(hooks.sseLastSent);
    assert.equal(text, `${SSE_FIRST}event: message_stop\ndata: {"n":2}\n\n`);
  });

  test('a chunked request body is streamed upstream as it is written', { timeout: 5000 }, async () => {
    let gotFirst;
    const first = new Promise((r) => (gotFirst = r));
    hooks.firstUploadChunk = gotFirst;
    sent++;
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/anth/v1/upload', agent: false, headers: { 'content-type': 'text/plain' } });
    const resP = once(req, 'response');
    req.write('part-one;');
    assert.equal(await first, 'part-one;'); // arrived upstream before the client wrote the rest
    req.end('part-two');
    const [res] = await resP;
    let body = '';
    for await (const c of res) body += c;
    const j = JSON.parse(body);
    assert.equal(j.te, 'chunked');
    assert.equal(j.length, 'part-one;part-two'.length);
    assert.equal(j.sha256, createHash('sha256').update('part-one;part-two').digest('hex'));
    hooks.firstUploadChunk = undefined;
  });

  test('Expect: 100-continue is answered by the proxy, not forwarded', { timeout: 5000 }, async () => {
    sent++;
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/anth/v1/upload?expect', agent: false, headers: { expect: '100-continue', 'content-length': 5 } });
    await once(req, 'continue');
    req.end('hello');
    const [res] = await once(req, 'response');
    let body = '';
    for await (const c of res) body += c;
    assert.equal(JSON.parse(body).length, 5);
    assert.equal(seen.at(-1).headers.expect, undefined);
  });

  test('an upstream that does not answer within idleTimeoutMs gives 504', { timeout: 5000 }, async (t) => {
    const evs = [];
    const p3 = new CredentialProxy({
      routes: [{ name: 'anth', upstream: `https://127.0.0.1:${upPort}`, header: 'x-api-key', format: '{}', key: KEY_A }],
      extraCaCerts: [pki.caPem],
      idleTimeoutMs: 200,
      record: (e) => evs.push(e),
    });
    t.after(() => p3.close());
    const p3port = await p3.listenTcp('127.0.0.1', 0);
    const closed = new Promise((r) => (hooks.stallClosed = r));
    const t0 = Date.now();
    const r = await request(p3port, { method: 'POST', path: '/anth/v1/stall', body: '{}' });
    assert.equal(r.status, 504);
    assert.equal(JSON.parse(r.body).error, 'upstream_timeout');
    assert.ok(Date.now() - t0 >= 190);
    await closed;
    await waitFor(() => evs.length === 1, 'the event');
    assert.equal(evs[0].decision, 'error');
    assert.equal(evs[0].details.reason, 'upstream_timeout');
    hooks.stallClosed = undefined;
  });

  test('5 MB up and 5 MB down, byte for byte', async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const r = await through({ method: 'POST', path: '/anth/v1/echo-body', body: data, headers: { 'content-type': 'application/octet-stream', 'content-length': data.length } });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, data.length);
    assert.ok(r.body.equals(data));
    const ev = await lastEvent((e) => e.details.path === '/anth/v1/echo-body');
    assert.equal(ev.details.bytes_up, data.length);
    assert.equal(ev.details.bytes_down, data.length);
  });

  test('redirects are passed back, not followed', async () => {
    const before = seen.length;
    const r = await through({ path: '/anth/v1/redirect' });
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, 'https://elsewhere.example/login?next=/v1');
    assert.equal(seen.length, before + 1);
    assertResponseKeyless(r);
  });

  test('upstream connections are kept alive between requests', async () => {
    await through({ path: '/anth/v1/headers' });
    const a = seen.at(-1).remotePort;
    await through({ path: '/anth/v1/headers' });
    assert.equal(seen.at(-1).remotePort, a);
  });

  test('a client abort mid-response closes the upstream request', { timeout: 5000 }, async () => {
    const closed = new Promise((r) => (hooks.hangClosed = r));
    sent++;
    const req = http.request({ host: '127.0.0.1', port, path: '/anth/v1/hang', agent: false });
    req.on('error', () => {});
    req.end();
    const [res] = await once(req, 'response');
    await once(res, 'data');
    req.destroy();
    const { finished } = await closed;
    assert.equal(finished, false);
    const ev = await lastEvent((e) => e.details.path === '/anth/v1/hang');
    assert.equal(ev.details.reason, 'client_aborted');
    assert.equal(ev.details.status, 200);
  });

  test('a client abort while the upstream has not answered yet closes the upstream request', { timeout: 5000 }, async () => {
    const got = new Promise((r) => (hooks.stallGot = r));
    const closed = new Promise((r) => (hooks.stallClosed = r));
    sent++;
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/anth/v1/stall', agent: false, headers: { 'content-length': 2 } });
    req.on('error', () => {});
    req.end('{}');
    await got;
    req.destroy();
    const { headersSent } = await closed;
    assert.equal(headersSent, false);
    const ev = await lastEvent((e) => e.details.path === '/anth/v1/stall');
    assert.equal(ev.details.reason, 'client_aborted');
    assert.equal(ev.details.status, null);
    assert.equal(ev.details.bytes_up, 2);
  });

  test('a client abort mid-upload closes the upstream request', { timeout: 5000 }, async () => {
    const first = new Promise((r) => (hooks.firstUploadChunk = r));
    const closed = new Promise((r) => (hooks.uploadClosed = r));
    sent++;
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/anth/v1/upload?abort', agent: false });
    req.on('error', () => {});
    req.write('some bytes');
    await first;
    req.destroy();
    const { complete } = await closed;
    assert.equal(complete, false);
    const ev = await lastEvent((e) => e.details.path === '/anth/v1/upload?abort');
    assert.equal(ev.details.reason, 'client_aborted');
    hooks.firstUploadChunk = hooks.uploadClosed = undefined;
  });

  test('an upstream abort mid-response aborts the client response (no clean end)', { timeout: 5000 }, async () => {
    sent++;
    const outcome = await new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/anth/v1/die', agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ ended: true, body }));
        res.on('error', (e) => resolve({ ended: false, body, code: e.code }));
      });
      req.on('error', (e) => resolve({ ended: false, code: e.code }));
      req.end();
    });
    assert.equal(outcome.ended, false);
    const ev = await lastEvent((e) => e.details.path === '/anth/v1/die');
    assert.equal(ev.decision, 'error');
    assert.equal(ev.details.reason, 'upstream_aborted');
  });

  for (const [route, kind] of [
    ['rogue', 'upstream_tls_failed'],
    ['wrongname', 'upstream_tls_failed'],
    ['dead', 'upstream_unreachable'],
  ]) {
    test(`${route}: fails closed with 502 ${kind}, no key in the answer`, async () => {
      const before = seen.length;
      const r = await through({ method: 'POST', path: `/${route}/v1/headers`, body: 'x', headers: { 'x-api-key': 'placeholder' } });
      assert.equal(r.status, 502);
      assertResponseKeyless(r);
      const j = JSON.parse(r.body);
      assert.equal(j.error, kind);
      assert.match(j.message, /upstream 127\.0\.0\.1:\d+/);
      if (route === 'rogue') assert.match(j.message, /certificate/i);
      if (route === 'wrongname') assert.match(j.message, /ALTNAME|altnames/);
      assert.equal(seen.length, before, 'the untrusted upstream never got an HTTP request');
      const ev = await lastEvent((e) => e.details.path === `/${route}/v1/headers`);
      assert.equal(ev.decision, 'error');
      assert.equal(ev.details.reason, kind);
      assert.equal(ev.details.status, 502);
    });
  }

  test('CONNECT and protocol upgrades are refused (and recorded)', async () => {
    for (const [head, status] of [
      [`CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com:443\r\n\r\n`, 405],
      [`GET /anth/v1/headers HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, 501],
    ]) {
      sent++;
      const s = net.connect(port, '127.0.0.1');
      s.end(head);
      let text = '';
      for await (const c of s) text += c;
      assert.match(text, new RegExp(`^HTTP/1.1 ${status} `));
    }
    const ev = await lastEvent((e) => e.details.reason === 'upgrade_not_supported');
    assert.equal(ev.decision, 'deny');
  });

  test('a unix-socket listener and a route trusting its CA through ca_file only', async (t) => {
    const events2 = [];
    const p2 = new CredentialProxy({
      routes: [
        { name: 'withca', upstream: `https://127.0.0.1:${upPort}`, header: 'x-api-key', format: '{}', key: KEY_A, caFile: pki.caFile },
        { name: 'noca', upstream: `https://127.0.0.1:${upPort}`, header: 'x-api-key', format: '{}', key: KEY_A },
      ],
      record: (e) => events2.push(e),
    });
    t.after(() => p2.close());
    const sock = join(dir, 'cred.sock');
    await p2.listenUnix(sock);
    const ok = await request(undefined, { socketPath: sock, path: '/withca/v1/headers' });
    assert.equal(ok.status, 200);
    assert.equal(seen.at(-1).headers['x-api-key'], KEY_A);
    const bad = await request(undefined, { socketPath: sock, path: '/noca/v1/headers' });
    assert.equal(bad.status, 502);
    assert.equal(JSON.parse(bad.body).error, 'upstream_tls_failed');
    await waitFor(() => events2.length === 2, 'two events');
    assertNoKey(JSON.stringify(events2), 'events');
  });

  test('listenFd: serves on an inherited listening socket', { skip: !existsSync('/usr/bin/perl') && 'perl not found', timeout: 10_000 }, async () => {
    const cfg = { routes: [{ name: 'anth', upstream: `https://127.0.0.1:${upPort}`, header: 'x-api-key', format: '{}', key: KEY_A }], extraCaCerts: [pki.caPem] };
    const child = spawn('/usr/bin/perl', [join(FIX, 'listen-fd.pl'), process.execPath, join(FIX, 'fd-child.mjs'), DIST], {
      env: { ...process.env, CRED_CONFIG: JSON.stringify(cfg) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    try {
      await waitFor(() => out.includes('ready\n'), 'the child', 8000);
      const fdPort = Number(/port (\d+)/.exec(out)[1]);
      const r = await request(fdPort, { path: '/anth/v1/headers' });
      assert.equal(r.status, 200);
      assert.equal(seen.at(-1).headers['x-api-key'], KEY_A);
      await waitFor(() => out.includes('event '), 'the event');
      assertNoKey(out, 'child output');
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });

  test('one event per request, none with the key', async () => {
    await waitFor(() => events.length >= sent, `${sent} events (have ${events.length})`);
    await sleep(50);
    assert.equal(events.length, sent);
    for (const e of events) {
      assertNoKey(JSON.stringify(e), 'an event');
      assert.equal(e.event_type, 'credential_proxy');
      assert.ok(['allow', 'deny', 'error'].includes(e.decision));
      for (const f of ['route', 'method', 'path', 'status', 'bytes_up', 'bytes_down', 'duration_ms', 'reason']) assert.ok(f in e.details, f);
    }
    const ok = events.find((e) => e.details.path === '/anth/v1/headers?beta=true&x=%2F');
    assert.equal(ok.decision, 'allow');
    assert.equal(ok.details.route, 'anth');
    assert.equal(ok.details.method, 'GET');
    assert.equal(ok.details.status, 200);
    assert.equal(ok.details.reason, null);
    assert.ok(ok.details.bytes_down > 0);
    assert.ok(ok.details.duration_ms >= 0);
    assert.equal(proxy.recordFailures, 0);
  });
});
