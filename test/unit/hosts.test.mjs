// normalizeAllowHost: what --allow-host and allow_hosts accept, and that
// nothing hostile gets through as something other than a plain host name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeAllowHost } from '../../dist/config/hosts.js';
import { LaunchError } from '../../dist/core/errors.js';
import { assertLaunchError, prng } from '../fixtures/unit/helpers.mjs';

const SHAPE = /^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/;

test('accepts host names and normalizes them', () => {
  assert.equal(normalizeAllowHost('api.example.com'), 'api.example.com');
  assert.equal(normalizeAllowHost('API.Example.COM.'), 'api.example.com');
  assert.equal(normalizeAllowHost('  api.example.com  '), 'api.example.com');
  assert.equal(normalizeAllowHost('*.example.com'), '*.example.com');
  assert.equal(normalizeAllowHost('*.Example.COM.'), '*.example.com');
  assert.equal(normalizeAllowHost('localhost'), 'localhost');
  assert.equal(normalizeAllowHost('a-b.c-d.example'), 'a-b.c-d.example');
  assert.equal(normalizeAllowHost('bücher.example'), 'xn--bcher-kva.example');
  assert.equal(normalizeAllowHost('*.bücher.example'), '*.xn--bcher-kva.example');
  assert.equal(normalizeAllowHost('xn--bcher-kva.example'), 'xn--bcher-kva.example');
  assert.equal(normalizeAllowHost('XN--BCHER-KVA.example'), 'xn--bcher-kva.example');
  assert.equal(normalizeAllowHost('*.xn--nxasmq6b.example'), '*.xn--nxasmq6b.example');
  const label63 = 'a'.repeat(63);
  assert.equal(normalizeAllowHost(`${label63}.com`), `${label63}.com`);
});

const REFUSED = [
  ['', /empty/],
  ['   ', /empty/],
  ['https://x.com', /scheme/],
  ['x.com/path', /path/],
  ['x.com:443', /port/],
  ['[::1]', /port|host name/],
  ['::1', /port|host name/],
  ['1.2.3.4', /IP address/],
  ['1.2.3.4.', /IP address/],
  ['*.1.2.3.4', /IP address/],
  ['127.1', /IP address/],
  ['0177.0.0.1', /IP address/],
  ['2130706433', /IP address/],
  ['*.', /not a valid host name/],
  ['*', /not a valid host name/],
  ['.', /./],
  ['a..b', /not a valid host name/],
  ['.a.com', /not a valid host name/],
  ['-a.com', /not a valid host name/],
  ['a-.com', /not a valid host name/],
  ['*.*.com', /not a valid host name/],
  ['a.*.com', /not a valid host name/],
  ['*com', /not a valid host name/],
  [`${'a'.repeat(64)}.com`, /not a valid host name/],
  [`x.${'b'.repeat(64)}`, /not a valid host name/],
  ['exa mple.com', /not a valid host name/],
  ['a_b.com', /not a valid host name/],
  // "xn--" labels that are no label's punycode, whatever the Node version's URL parser lets through.
  ['xn--zz.example.com', /not a valid host name/],
  ['*.xn--zz.example.com', /not a valid host name/],
  ['xn--.example.com', /not a valid host name/],
];

for (const [input, why] of REFUSED) {
  test(`refuses ${JSON.stringify(input)} naming the flag and the input`, () => {
    const e = assertLaunchError(() => normalizeAllowHost(input), LaunchError, '--allow-host', JSON.stringify(input), why);
    assert.match(e.message, /expected a host name such as api\.example\.com/);
  });
}

test('the source named in the message is the one given', () => {
  assertLaunchError(() => normalizeAllowHost('x.com:1', 'latchgate.toml [sandbox.agent] allow_hosts'), LaunchError,
    'latchgate.toml [sandbox.agent] allow_hosts "x.com:1"');
});

// WHATWG URL parsing reads other numeric forms as IPv4 and maps full-width
// digits and ideographic dots to ASCII: the result would be an IP address.
for (const input of ['0x7f000001', '0x7f.1', '１.２.３.４', '1。2。3。4', '*.0x1']) {
  test(`refuses the IP address spelled ${JSON.stringify(input)}`, () => {
    let out;
    try {
      out = normalizeAllowHost(input);
    } catch (e) {
      assert.ok(e instanceof LaunchError, `${e}`);
      return;
    }
    assert.fail(`${JSON.stringify(input)} was accepted as ${JSON.stringify(out)}, an IP address`);
  });
}

// The URL parser drops user info, query, fragment, backslash paths and tabs:
// the allowlist would hold a different host than the text the user reviewed.
for (const input of ['api.example.com@evil.com', 'evil.com\\api.example.com', 'evil.com?api.example.com', 'evil.com#api.example.com', 'ev\til.com']) {
  test(`refuses ${JSON.stringify(input)} instead of reading another host out of it`, () => {
    let out;
    try {
      out = normalizeAllowHost(input);
    } catch (e) {
      assert.ok(e instanceof LaunchError, `${e}`);
      return;
    }
    assert.fail(`${JSON.stringify(input)} was accepted as ${JSON.stringify(out)}`);
  });
}

const ALPHABET = [
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
  ...'.-*:/[]@% ',
  'ü', 'ß', 'é', 'ı', 'İ', 'Ω', 'ж', 'א', 'ـ', '中', '。', '．', '１', 'ａ', 'Ｚ', 'ﬀ', '⁹',
  '\u00ad', '\u200d', '\u0301', '\u202e', '\ufeff', '😀', '\u0000', '\t',
];

function randomInput(r) {
  if (r.chance(0.5)) {
    // Free-form noise.
    return Array.from({ length: r.below(24) }, () => r.pick(ALPHABET)).join('');
  }
  // Host-shaped: labels of noise joined by dots, sometimes a wildcard.
  const labels = Array.from({ length: 1 + r.below(4) }, () =>
    Array.from({ length: r.below(8) }, () => (r.chance(0.7) ? r.pick([...'abcxyz0123456789-']) : r.pick(ALPHABET))).join(''));
  return (r.chance(0.2) ? '*.' : '') + labels.join(r.chance(0.9) ? '.' : r.pick(ALPHABET)) + (r.chance(0.1) ? '.' : '');
}

test('property: 2000 hostile inputs only ever yield a plain host name or a LaunchError', () => {
  const seed = 0x5eed_1234;
  const r = prng(seed);
  let accepted = 0;
  const failures = [];
  for (let i = 0; i < 2000; i++) {
    const input = randomInput(r);
    let out;
    try {
      out = normalizeAllowHost(input);
    } catch (e) {
      if (!(e instanceof LaunchError)) failures.push(`${JSON.stringify(input)} threw ${e?.name}: ${e?.message}`);
      else if (!e.message.includes(JSON.stringify(input))) failures.push(`${JSON.stringify(input)}: message does not name the input: ${e.message}`);
      continue;
    }
    accepted++;
    if (!SHAPE.test(out)) {
      failures.push(`${JSON.stringify(input)} -> ${JSON.stringify(out)} is not a plain host name`);
      continue;
    }
    let again;
    try {
      again = normalizeAllowHost(out);
    } catch (e) {
      failures.push(`${JSON.stringify(input)} -> ${JSON.stringify(out)}, which is then refused: ${e.message}`);
      continue;
    }
    if (again !== out) failures.push(`${JSON.stringify(input)} -> ${JSON.stringify(out)} -> ${JSON.stringify(again)} (not idempotent)`);
  }
  assert.ok(accepted > 100, `the generator should produce some valid names (got ${accepted})`);
  assert.deepEqual(failures.slice(0, 10), [], `seed ${seed}: ${failures.length} failures`);
});
