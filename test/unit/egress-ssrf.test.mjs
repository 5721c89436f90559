// SSRF guard (src/egress/ssrf.ts): which addresses the CONNECT proxy may reach,
// the resolver that checks every answer and returns the one to connect to,
// and operator pins. Boundary tables for every range, embedded-IPv4 forms,
// odd spellings, then seeded property tests against reference classifiers
// written here (integer ranges for IPv4, node:net BlockList for IPv6).
// Every lookup is injected: no test touches real DNS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { classifyAddress, resolveAndCheck, parsePin, parseIPv4, parseIPv6, formatIPv6, addressFamily } from '../../dist/egress/ssrf.js';
import { LaunchError } from '../../dist/core/errors.js';
import { prng } from '../fixtures/unit/helpers.mjs';

// ---------------------------------------------------------------------------
// IPv4 boundaries: [address, allowed, reason pattern when refused]

const V4_TABLE = [
  ['0.0.0.0', false, /unspecified/],
  ['0.0.0.1', false, /unspecified/],
  ['0.255.255.255', false, /unspecified/],
  ['1.0.0.0', true],
  ['9.255.255.255', true],
  ['10.0.0.0', false, /RFC 1918/],
  ['10.255.255.255', false, /RFC 1918/],
  ['11.0.0.0', true],
  ['100.63.255.255', true],
  ['100.64.0.0', false, /carrier-grade NAT/],
  ['100.127.255.255', false, /carrier-grade NAT/],
  ['100.128.0.0', true],
  ['126.255.255.255', true],
  ['127.0.0.0', false, /loopback/],
  ['127.0.0.1', false, /loopback/],
  ['127.255.255.255', false, /loopback/],
  ['128.0.0.0', true],
  ['169.253.255.255', true],
  ['169.254.0.0', false, /link-local/],
  ['169.254.169.254', false, /metadata/],
  ['169.254.169.253', false, /link-local \(/],
  ['169.254.255.255', false, /link-local/],
  ['169.255.0.0', true],
  ['172.15.255.255', true],
  ['172.16.0.0', false, /RFC 1918/],
  ['172.31.255.255', false, /RFC 1918/],
  ['172.32.0.0', true],
  ['191.255.255.255', true],
  ['192.0.0.0', false, /IETF protocol/],
  ['192.0.0.8', false, /IETF protocol/],
  ['192.0.0.255', false, /IETF protocol/],
  ['192.0.1.0', true],
  ['192.0.1.255', true],
  ['192.0.2.0', false, /TEST-NET-1/],
  ['192.0.2.255', false, /TEST-NET-1/],
  ['192.0.3.0', true],
  ['192.88.98.255', true],
  ['192.88.99.0', false, /6to4 relay/],
  ['192.88.99.255', false, /6to4 relay/],
  ['192.88.100.0', true],
  ['192.167.255.255', true],
  ['192.168.0.0', false, /RFC 1918/],
  ['192.168.1.1', false, /RFC 1918/],
  ['192.168.255.255', false, /RFC 1918/],
  ['192.169.0.0', true],
  ['198.17.255.255', true],
  ['198.18.0.0', false, /benchmarking/],
  ['198.19.255.255', false, /benchmarking/],
  ['198.20.0.0', true],
  ['198.51.99.255', true],
  ['198.51.100.0', false, /TEST-NET-2/],
  ['198.51.100.255', false, /TEST-NET-2/],
  ['198.51.101.0', true],
  ['203.0.112.255', true],
  ['203.0.113.0', false, /TEST-NET-3/],
  ['203.0.113.255', false, /TEST-NET-3/],
  ['203.0.114.0', true],
  ['223.255.255.255', true],
  ['224.0.0.0', false, /multicast/],
  ['224.0.0.251', false, /multicast/],
  ['239.255.255.255', false, /multicast/],
  ['240.0.0.0', false, /reserved/],
  ['250.1.2.3', false, /reserved/],
  ['255.255.255.254', false, /reserved/],
  ['255.255.255.255', false, /broadcast/],
  ['8.8.8.8', true],
  ['1.1.1.1', true],
  ['93.184.216.34', true],
  ['151.101.1.69', true],
];

// ---------------------------------------------------------------------------
// IPv6 boundaries and embedded forms.

const V6_TABLE = [
  ['::', false, /unspecified/],
  ['::1', false, /loopback/],
  ['0:0:0:0:0:0:0:1', false, /loopback/],
  ['0000:0000:0000:0000:0000:0000:0000:0001', false, /loopback/],
  ['::0:1', false, /loopback/],
  // IPv4-compatible ::/96 (checked on the embedded address)
  ['::2', false, /IPv4-compatible.*0\.0\.0\.2/],
  ['::0.0.0.2', false, /IPv4-compatible/],
  ['::127.0.0.1', false, /IPv4-compatible.*loopback/],
  ['::a00:1', false, /IPv4-compatible.*10\.0\.0\.1/],
  ['::8.8.8.8', true],
  ['::ffff:ffff', false, /IPv4-compatible.*broadcast/], // ::255.255.255.255, not the mapped prefix
  // IPv4-mapped ::ffff:0:0/96
  ['::ffff:0:0', false, /IPv4-mapped.*0\.0\.0\.0/],
  ['::ffff:0.0.0.0', false, /IPv4-mapped/],
  ['::ffff:127.0.0.1', false, /IPv4-mapped.*127\.0\.0\.1.*loopback/],
  ['::FFFF:127.0.0.1', false, /IPv4-mapped.*loopback/],
  ['::ffff:7f00:1', false, /IPv4-mapped.*loopback/],
  ['0:0:0:0:0:ffff:7f00:0001', false, /IPv4-mapped.*loopback/],
  ['0:0:0:0:0:FFFF:127.0.0.1', false, /IPv4-mapped.*loopback/],
  ['::ffff:10.0.0.1', false, /IPv4-mapped.*RFC 1918/],
  ['::ffff:169.254.169.254', false, /IPv4-mapped.*metadata/],
  ['::ffff:a9fe:a9fe', false, /IPv4-mapped.*metadata/],
  ['::ffff:100.64.0.1', false, /IPv4-mapped.*carrier-grade/],
  ['::ffff:224.0.0.1', false, /IPv4-mapped.*multicast/],
  ['::ffff:255.255.255.255', false, /IPv4-mapped.*broadcast/],
  ['::ffff:8.8.8.8', true],
  ['::ffff:808:808', true],
  // just outside mapped and compat: reserved
  ['::1:0:0', false, /reserved/],
  ['::fffe:ffff:ffff', false, /reserved/],
  ['::1:ffff:7f00:1', false, /reserved/],
  ['::ffff:0:7f00:1', false, /reserved/], // SIIT ::ffff:0:a.b.c.d is not the mapped prefix
  ['0:0:0:1::', false, /reserved/],
  // NAT64 64:ff9b::/96 (embedded) and 64:ff9b:1::/48 (local use)
  ['64:ff9b::', false, /NAT64.*0\.0\.0\.0/],
  ['64:ff9b::8.8.8.8', true],
  ['64:ff9b::808:808', true],
  ['64:ff9b::7f00:1', false, /NAT64.*loopback/],
  ['64:ff9b::10.1.2.3', false, /NAT64.*RFC 1918/],
  ['64:ff9b::a9fe:a9fe', false, /NAT64.*metadata/],
  ['64:ff9b::ffff:ffff', false, /NAT64.*broadcast/],
  ['64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff', false, /reserved/],
  ['64:ff9b:0:0:0:1::', false, /reserved/],
  ['64:ff9b:1::', false, /NAT64 local-use/],
  ['64:ff9b:1:ffff:ffff:ffff:ffff:ffff', false, /NAT64 local-use/],
  ['64:ff9b:2::', false, /reserved/],
  // discard-only 100::/64
  ['100::', false, /discard/],
  ['100::ffff:ffff:ffff:ffff', false, /discard/],
  ['100:0:0:1::', false, /reserved/],
  // global unicast 2000::/3 edges
  ['1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', false, /reserved/],
  ['2000::', true],
  ['3fff:1000::', true],
  ['3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true],
  ['4000::', false, /reserved/],
  // Teredo 2001::/32
  ['2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true],
  ['2001::', false, /Teredo/],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', false, /Teredo/],
  ['2001:0:ffff:ffff:ffff:ffff:ffff:ffff', false, /Teredo/],
  ['2001:1::', true],
  // benchmarking 2001:2::/48
  ['2001:1:ffff:ffff:ffff:ffff:ffff:ffff', true],
  ['2001:2::', false, /benchmarking/],
  ['2001:2:0:ffff:ffff:ffff:ffff:ffff', false, /benchmarking/],
  ['2001:2:1::', true],
  // documentation 2001:db8::/32 and 3fff::/20
  ['2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', true],
  ['2001:db8::', false, /documentation/],
  ['2001:DB8::1', false, /documentation/],
  ['2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', false, /documentation/],
  ['2001:db9::', true],
  ['3ffe:ffff::', true],
  ['3fff::', false, /documentation/],
  ['3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff', false, /documentation/],
  // 6to4 2002::/16 (embedded IPv4 in bits 16-47)
  ['2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true],
  ['2002::', false, /6to4.*0\.0\.0\.0/],
  ['2002:808:808::1', true],
  ['2002:0808:0808:0:0:0:0:1', true],
  ['2002:7f00:1::', false, /6to4.*loopback/],
  ['2002:a00:1::1', false, /6to4.*RFC 1918/],
  ['2002:c0a8:101::1', false, /6to4.*192\.168\.1\.1/],
  ['2002:a9fe:a9fe::1', false, /6to4.*metadata/],
  ['2002:6440:1::', false, /6to4.*carrier-grade/],
  ['2002:e000:1::', false, /6to4.*multicast/],
  ['2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff', false, /6to4.*broadcast/],
  ['2003::', true],
  // ULA fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8
  ['fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', false, /reserved/],
  ['fc00::', false, /unique local/],
  ['fd00::1', false, /unique local/],
  ['fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', false, /unique local/],
  ['fe00::', false, /reserved/],
  ['fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff', false, /reserved/],
  ['fe80::', false, /link-local/],
  ['FE80::1', false, /link-local/],
  ['febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff', false, /link-local/],
  ['fec0::', false, /site-local/],
  ['feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', false, /site-local/],
  ['ff00::', false, /multicast/],
  ['ff02::1', false, /multicast/],
  ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', false, /multicast/],
  // public
  ['2606:4700:4700::1111', true],
  ['2a00:1450:4001:80b::200e', true],
  ['2600::', true],
];

// Not addresses at all (the resolver never returns these; refuse them).
const NOT_ADDRESSES = [
  '', ' ', '8.8.8.8 ', ' 8.8.8.8', '8.8.8.8\n', '8.8.8', '8.8.8.8.', '8.8.8.8.8', '1.2.3.04', '01.2.3.4', '256.1.1.1', '1.2.3.-1',
  '127.1', '0x7f000001', '2130706433', '0177.0.0.1', '1e2.0.0.1', '１.２.３.４', '8.8.8.8/32', 'localhost', 'example.com',
  '[::1]', '::1%lo', 'fe80::1%eth0', 'fe80::1%25eth0', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '::1:2:3:4:5:6:7:8',
  '12345::', 'g::', ':1::', '1::2:', '::ffff:1.2.3', '::ffff:1.2.3.4.5', '::ffff:01.2.3.4', '1.2.3.4::', '::1.2.3.4:5', ':',
  '1:2:3:4:5:6:7:8::', '::ffff:256.1.1.1',
];

test('classifyAddress: IPv4 boundary table', () => {
  const failures = [];
  for (const [ip, allowed, why] of V4_TABLE) {
    const v = classifyAddress(ip);
    if (v.allowed !== allowed) failures.push(`${ip}: allowed=${v.allowed}, expected ${allowed} (${v.reason})`);
    else if (!allowed && !why.test(v.reason ?? '')) failures.push(`${ip}: reason ${JSON.stringify(v.reason)} does not match ${why}`);
    else if (allowed && v.reason !== undefined) failures.push(`${ip}: allowed but has a reason`);
  }
  assert.deepEqual(failures, []);
});

test('classifyAddress: IPv6 boundary table, embedded and mapped forms', () => {
  const failures = [];
  for (const [ip, allowed, why] of V6_TABLE) {
    const v = classifyAddress(ip);
    if (v.allowed !== allowed) failures.push(`${ip}: allowed=${v.allowed}, expected ${allowed} (${v.reason})`);
    else if (!allowed && !why.test(v.reason ?? '')) failures.push(`${ip}: reason ${JSON.stringify(v.reason)} does not match ${why}`);
  }
  assert.deepEqual(failures, []);
});

test('classifyAddress: anything that is not an address is refused', () => {
  const failures = [];
  for (const s of NOT_ADDRESSES) {
    const v = classifyAddress(s);
    if (v.allowed) failures.push(`${JSON.stringify(s)} allowed`);
    else if (!/not an IP address|zone/.test(v.reason ?? '')) failures.push(`${JSON.stringify(s)}: reason ${v.reason}`);
  }
  for (const v of [undefined, null, 1, {}, ['8.8.8.8']]) assert.equal(classifyAddress(v).allowed, false);
  assert.deepEqual(failures, []);
});

test('parseIPv6 agrees with node:net on validity and with the URL parser on the canonical text', async () => {
  const { isIP } = await import('node:net');
  for (const [ip] of V6_TABLE) {
    const g = parseIPv6(ip);
    assert.ok(g !== null, ip);
    assert.equal(formatIPv6(g), new URL(`http://[${ip}]/`).hostname.slice(1, -1), ip);
  }
  for (const s of NOT_ADDRESSES) if (!s.includes('%')) assert.equal(parseIPv6(s) !== null, isIP(s) === 6, JSON.stringify(s));
  assert.equal(addressFamily('8.8.8.8'), 4);
  assert.equal(addressFamily('::1'), 6);
  assert.equal(addressFamily('fe80::1%eth0'), 0);
  assert.equal(addressFamily('127.1'), 0);
});

test('property: parseIPv6 accepts exactly what node:net accepts as IPv6, and formats as the URL parser does', async () => {
  const { isIP } = await import('node:net');
  const seed = 0x1b6;
  const r = prng(seed);
  const failures = [];
  let valid = 0;
  const piece = () => {
    const k = r.below(10);
    if (k < 6) return Array.from({ length: r.below(6) }, () => r.pick([...'0123456789abcdefABCDEFg'])).join('');
    if (k < 8) return Array.from({ length: 4 }, () => r.pick(['0', '1', '10', '255', '256', '01', '00', '9', ''])).join('.');
    return r.pick(['', ':', '.', '::']);
  };
  for (let i = 0; i < 20000; i++) {
    const n = r.below(10);
    let s = '';
    for (let j = 0; j < n; j++) s += (j === 0 ? '' : r.pick([':', ':', ':', '::', '.'])) + piece();
    if (r.chance(0.2)) s = `::${s}`;
    if (r.chance(0.1)) s = `${s}::`;
    const mine = parseIPv6(s);
    const node = isIP(s) === 6;
    if ((mine !== null) !== node) failures.push(`${JSON.stringify(s)}: parseIPv6 ${mine !== null}, node:net ${node}`);
    if (mine !== null && node) {
      valid++;
      const canon = new URL(`http://[${s}]/`).hostname.slice(1, -1);
      if (formatIPv6(mine) !== canon) failures.push(`${JSON.stringify(s)}: ${formatIPv6(mine)} vs URL ${canon}`);
    }
  }
  assert.ok(valid > 300, `some strings are addresses (got ${valid})`);
  assert.deepEqual(failures.slice(0, 10), [], `seed ${seed}: ${failures.length} disagreements`);
});

// ---------------------------------------------------------------------------
// Reference classifiers, written independently of the module.

const REF_V4 = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
].map(([a, len]) => {
  const [w, x, y, z] = a.split('.').map(Number);
  const lo = ((w * 256 + x) * 256 + y) * 256 + z;
  return { lo, hi: lo + 2 ** (32 - len) - 1 };
});

function refV4Allowed(n) {
  return !REF_V4.some((r) => n >= r.lo && n <= r.hi);
}

const ipText = (n) => `${Math.floor(n / 2 ** 24)}.${Math.floor(n / 2 ** 16) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;

test('property: random IPv4 addresses are classified as the integer-range reference says', () => {
  const seed = 0x55_2f;
  const r = prng(seed);
  const failures = [];
  let allowed = 0;
  const check = (n) => {
    const ip = ipText(n);
    const got = classifyAddress(ip).allowed;
    if (got) allowed++;
    if (got !== refV4Allowed(n)) failures.push(`${ip}: got ${got}, reference ${refV4Allowed(n)}`);
  };
  for (let i = 0; i < 20000; i++) check(r.u32());
  // Biased towards the edges of every range.
  for (let i = 0; i < 5000; i++) {
    const range = r.pick(REF_V4);
    const edge = r.chance(0.5) ? range.lo : range.hi;
    const n = edge + r.below(9) - 4;
    if (n >= 0 && n < 2 ** 32) check(n);
  }
  for (const { lo, hi } of REF_V4) for (const n of [lo - 1, lo, hi, hi + 1]) if (n >= 0 && n < 2 ** 32) check(n);
  assert.ok(allowed > 10000, `most random addresses are public (got ${allowed})`);
  assert.deepEqual(failures.slice(0, 10), [], `seed ${seed}: ${failures.length} disagreements`);
});

// IPv6 reference: node:net's BlockList for the prefixes; the embedded-IPv4
// rule for the mapped, compatible, NAT64 and 6to4 prefixes.
const refV6Deny = new BlockList();
for (const [net, len] of [
  ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 32], ['2001:2::', 48], ['2001:db8::', 32], ['3fff::', 20],
  ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
]) refV6Deny.addSubnet(net, len, 'ipv6');
const refGlobal = new BlockList();
refGlobal.addSubnet('2000::', 3, 'ipv6');
const refEmbedded = [
  ['::ffff:0:0', 96, 96], ['::', 96, 96], ['64:ff9b::', 96, 96], ['2002::', 16, 16],
].map(([net, len, at]) => {
  const b = new BlockList();
  b.addSubnet(net, len, 'ipv6');
  return { b, at };
});

function groupsOf(text) {
  // Independent expansion through the URL parser's canonical form.
  const canon = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const [head, tail] = canon.includes('::') ? canon.split('::') : [canon, undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((x) => parseInt(x, 16));
}

function refV6Allowed(text) {
  const g = groupsOf(text);
  if (g.every((x) => x === 0)) return false;
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return false;
  for (const { b, at } of refEmbedded) {
    if (at === 96 && b.check(text, 'ipv6')) return refV4Allowed(g[6] * 65536 + g[7]);
  }
  if (refV6Deny.check(text, 'ipv6')) return false;
  if (refEmbedded[3].b.check(text, 'ipv6')) return refV4Allowed(g[1] * 65536 + g[2]);
  return refGlobal.check(text, 'ipv6');
}

const V6_PREFIXES = [
  [0, 0, 0, 0, 0, 0xffff], [0, 0, 0, 0, 0, 0], [0x64, 0xff9b, 0, 0, 0, 0], [0x64, 0xff9b, 1], [0x100, 0, 0, 0], [0x2001, 0], [0x2001, 2, 0],
  [0x2001, 0xdb8], [0x2002], [0x3fff], [0xfc00], [0xfd12], [0xfe80], [0xfebf], [0xfec0], [0xff02], [0x2606, 0x4700], [0x2a00], [0x1fff], [0x4000], [],
];

function randomV6(r) {
  const g = Array.from({ length: 8 }, () => r.below(0x10000));
  const p = r.pick(V6_PREFIXES);
  p.forEach((x, i) => { g[i] = r.chance(0.9) ? x : g[i]; });
  if (r.chance(0.3)) {
    // an embedded IPv4 near a range edge
    const range = r.pick(REF_V4);
    const n = Math.min(2 ** 32 - 1, Math.max(0, (r.chance(0.5) ? range.lo : range.hi) + r.below(5) - 2));
    const at = p[0] === 0x2002 ? 1 : 6;
    g[at] = Math.floor(n / 65536);
    g[at + 1] = n % 65536;
  }
  return g;
}

function spellings(r, g) {
  const full = g.map((x) => x.toString(16)).join(':');
  const padded = g.map((x) => x.toString(16).padStart(4, '0')).join(':');
  const out = [full, padded.toUpperCase(), formatIPv6(g)];
  if (g.slice(0, 5).every((x) => x === 0)) out.push(`::${g[5].toString(16)}:${ipText(g[6] * 65536 + g[7])}`.replace(/^::0:/, '::'));
  out.push(`${g.slice(0, 6).map((x) => x.toString(16)).join(':')}:${ipText(g[6] * 65536 + g[7])}`);
  return out;
}

test('property: random IPv6 addresses (biased to special prefixes) agree with the BlockList reference in every spelling', () => {
  const seed = 0x6_6666;
  const r = prng(seed);
  const failures = [];
  let allowed = 0;
  for (let i = 0; i < 6000; i++) {
    const g = randomV6(r);
    const canon = formatIPv6(g);
    const want = refV6Allowed(canon);
    for (const s of spellings(r, g)) {
      const got = classifyAddress(s).allowed;
      if (got !== want) failures.push(`${s} (${canon}): got ${got}, reference ${want}`);
    }
    if (want) allowed++;
  }
  assert.ok(allowed > 500, `some addresses are public (got ${allowed})`);
  assert.deepEqual(failures.slice(0, 10), [], `seed ${seed}: ${failures.length} disagreements`);
});

test('property: the mapped, compatible, NAT64 and 6to4 forms of an IPv4 address are judged as the address itself', () => {
  const seed = 0x4_6;
  const r = prng(seed);
  const failures = [];
  for (let i = 0; i < 5000; i++) {
    const n = r.chance(0.5) ? r.u32() : Math.max(0, Math.min(2 ** 32 - 1, r.pick(REF_V4).lo + r.below(3) - 1));
    const v4 = ipText(n);
    const want = classifyAddress(v4).allowed;
    const hi = Math.floor(n / 65536).toString(16);
    const lo = (n % 65536).toString(16);
    const forms = [`::ffff:${v4}`, `::ffff:${hi}:${lo}`, `64:ff9b::${v4}`, `64:ff9b::${hi}:${lo}`, `2002:${hi}:${lo}::1`, `2002:${hi}:${lo}:ffff::`];
    if (n > 1) forms.push(`::${v4}`, `::${hi}:${lo}`); // ::0.0.0.0 and ::0.0.0.1 are :: and ::1
    for (const f of forms) {
      const got = classifyAddress(f).allowed;
      if (got !== want) failures.push(`${f}: got ${got}, ${v4} is ${want}`);
    }
  }
  assert.deepEqual(failures.slice(0, 10), [], `seed ${seed}: ${failures.length} disagreements`);
});

// ---------------------------------------------------------------------------
// resolveAndCheck with an injected lookup.

function fakeLookup(answers) {
  const calls = [];
  const fn = async (name, options) => {
    calls.push({ name, options });
    const a = typeof answers === 'function' ? answers(calls.length, name) : answers;
    if (a instanceof Error) throw a;
    return a;
  };
  return { fn, calls };
}
const A = (address) => ({ address, family: address.includes(':') ? 6 : 4 });
const dnsError = (code) => Object.assign(new Error(`getaddrinfo ${code} x`), { code });

test('resolveAndCheck: a public answer is returned with its family, the port, and one lookup of the normalised name', async () => {
  const { fn, calls } = fakeLookup([A('93.184.216.34')]);
  const r = await resolveAndCheck('API.Example.COM.', 443, { lookup: fn });
  assert.deepEqual(r, { ok: true, address: '93.184.216.34', family: 4, port: 443, pinned: false });
  assert.deepEqual(calls, [{ name: 'api.example.com', options: { all: true, verbatim: true } }]);
  const v6 = await resolveAndCheck('api.example.com', 8443, { lookup: fakeLookup([A('2606:4700::1'), A('93.184.216.34')]).fn });
  assert.deepEqual(v6, { ok: true, address: '2606:4700::1', family: 6, port: 8443, pinned: false });
  const idn = fakeLookup([A('8.8.8.8')]);
  await resolveAndCheck('bücher.example', 443, { lookup: idn.fn });
  assert.equal(idn.calls[0].name, 'xn--bcher-kva.example');
});

test('resolveAndCheck: one refused address refuses the name, whatever its position', async () => {
  const cases = [
    [['8.8.8.8', '127.0.0.1'], '127.0.0.1', /loopback/],
    [['127.0.0.1', '8.8.8.8'], '127.0.0.1', /loopback/],
    [['8.8.8.8', '10.0.0.5', '1.1.1.1'], '10.0.0.5', /RFC 1918/],
    [['2606:4700::1', '::1'], '::1', /loopback/],
    [['8.8.8.8', '169.254.169.254'], '169.254.169.254', /metadata/],
    [['8.8.8.8', '::ffff:169.254.169.254'], '::ffff:169.254.169.254', /IPv4-mapped/],
    [['8.8.8.8', 'fd00::1'], 'fd00::1', /unique local/],
    [['8.8.8.8', 'fe80::1%eth0'], 'fe80::1%eth0', /zone/],
    [['8.8.8.8', '2002:a00:1::1'], '2002:a00:1::1', /6to4/],
    [['0.0.0.0'], '0.0.0.0', /unspecified/],
    [['100.100.100.100'], '100.100.100.100', /carrier-grade/],
    [['8.8.8.8', 'localhost'], 'localhost', /not an IP/],
  ];
  for (const [addrs, bad, why] of cases) {
    const r = await resolveAndCheck('api.example.com', 443, { lookup: fakeLookup(addrs.map(A)).fn });
    assert.equal(r.ok, false, addrs.join(','));
    assert.match(r.reason, new RegExp(`api\\.example\\.com resolves to ${bad.replace(/[.%]/g, '\\$&')}`));
    assert.match(r.reason, why);
    assert.deepEqual(r.addresses, addrs);
  }
});

test('resolveAndCheck: DNS rebinding cannot turn a checked name private, because it resolves once and returns the address', async () => {
  // First answer public, every later answer private: a resolver that looked
  // up again when connecting would reach 127.0.0.1.
  const { fn, calls } = fakeLookup((n) => (n === 1 ? [A('93.184.216.34')] : [A('127.0.0.1')]));
  const r = await resolveAndCheck('rebind.example.com', 443, { lookup: fn });
  assert.deepEqual(r, { ok: true, address: '93.184.216.34', family: 4, port: 443, pinned: false });
  assert.equal(calls.length, 1);
  // A rebinding answer that mixes both in one response is refused.
  const mixed = await resolveAndCheck('rebind.example.com', 443, { lookup: fakeLookup([A('93.184.216.34'), A('127.0.0.1')]).fn });
  assert.equal(mixed.ok, false);
  // The next resolution (a new connection) sees the private answer and is refused.
  const second = await resolveAndCheck('rebind.example.com', 443, { lookup: fn });
  assert.equal(second.ok, false);
  assert.match(second.reason, /127\.0\.0\.1, loopback/);
});

test('resolveAndCheck: duplicates are collapsed; the first address is the one returned', async () => {
  const r = await resolveAndCheck('a.example.com', 443, { lookup: fakeLookup([A('8.8.4.4'), A('8.8.4.4'), A('8.8.8.8')]).fn });
  assert.equal(r.address, '8.8.4.4');
  const bad = await resolveAndCheck('a.example.com', 443, { lookup: fakeLookup([A('10.0.0.1'), A('10.0.0.1')]).fn });
  assert.deepEqual(bad.addresses, ['10.0.0.1']);
});

test('resolveAndCheck: operator pins bypass the lookup and the address check, and set the port', async () => {
  const pinned = new Map([['api.example.com', { ip: '127.0.0.1', port: 8443 }], ['v6.example.com', { ip: '::1', port: 9443 }]]);
  const { fn, calls } = fakeLookup([A('10.0.0.1')]);
  assert.deepEqual(await resolveAndCheck('api.example.com', 443, { lookup: fn, pinned }), { ok: true, address: '127.0.0.1', family: 4, port: 8443, pinned: true });
  assert.deepEqual(await resolveAndCheck('API.EXAMPLE.COM.', 443, { lookup: fn, pinned }), { ok: true, address: '127.0.0.1', family: 4, port: 8443, pinned: true });
  assert.deepEqual(await resolveAndCheck('v6.example.com', 443, { lookup: fn, pinned }), { ok: true, address: '::1', family: 6, port: 9443, pinned: true });
  assert.equal(calls.length, 0, 'a pinned name is not looked up');
  // A pin is for its name only: a subdomain or another name is resolved and checked.
  const other = await resolveAndCheck('x.api.example.com', 443, { lookup: fn, pinned });
  assert.equal(other.ok, false);
  assert.equal(calls.length, 1);
  // A malformed pin (not built by parsePin) is refused rather than trusted.
  const broken = new Map([['a.example.com', { ip: 'localhost', port: 1 }], ['b.example.com', { ip: '127.0.0.1', port: 0 }]]);
  assert.match((await resolveAndCheck('a.example.com', 443, { lookup: fn, pinned: broken })).reason, /pin .* not an IP/);
  assert.match((await resolveAndCheck('b.example.com', 443, { lookup: fn, pinned: broken })).reason, /pin .* bad port/);
});

test('resolveAndCheck: lookup failures give a reason and no address', async () => {
  const cases = [
    [dnsError('ENOTFOUND'), /DNS lookup for api\.example\.com failed: ENOTFOUND/],
    [dnsError('EAI_AGAIN'), /EAI_AGAIN/],
    [new Error('boom'), /failed: boom/],
    [[], /returned no addresses/],
    [null, /no address list/],
    [{ address: '8.8.8.8', family: 4 }, /no address list/],
  ];
  for (const [answer, why] of cases) {
    const r = await resolveAndCheck('api.example.com', 443, { lookup: fakeLookup(answer).fn });
    assert.equal(r.ok, false);
    assert.match(r.reason, why);
    assert.deepEqual(r.addresses, []);
  }
  const thrower = await resolveAndCheck('api.example.com', 443, {
    lookup: () => {
      throw 'not an error'; // eslint-disable-line no-throw-literal
    },
  });
  assert.match(thrower.reason, /failed: not an error/);
});

test('resolveAndCheck: a lookup that never answers times out', async () => {
  const started = Date.now();
  const r = await resolveAndCheck('slow.example.com', 443, { lookup: () => new Promise(() => {}), timeoutMs: 40 });
  assert.equal(r.ok, false);
  assert.match(r.reason, /timed out after 40 ms/);
  assert.ok(Date.now() - started < 2000);
});

test('resolveAndCheck: literal IPs, bad names and bad ports are refused before any lookup', async () => {
  const { fn, calls } = fakeLookup([A('8.8.8.8')]);
  for (const host of ['8.8.8.8', '127.0.0.1', '::1', '[::1]', '2130706433', '0x7f000001', '127.1']) {
    const r = await resolveAndCheck(host, 443, { lookup: fn });
    assert.equal(r.ok, false);
    assert.match(r.reason, /literal IP/, host);
  }
  for (const host of ['', 'a..b', '*.example.com', 'a b.com', 'a_b.com', 'a.com:443', undefined]) {
    const r = await resolveAndCheck(host, 443, { lookup: fn });
    assert.equal(r.ok, false, String(host));
  }
  for (const port of [0, -1, 65536, 1.5, NaN, '443']) {
    const r = await resolveAndCheck('a.example.com', port, { lookup: fn });
    assert.equal(r.ok, false);
    assert.match(r.reason, /bad port/);
  }
  assert.equal(calls.length, 0);
});

// ---------------------------------------------------------------------------
// parsePin

test('parsePin: accepted forms', () => {
  const T = [
    ['127.0.0.1:8443', { ip: '127.0.0.1', port: 8443 }],
    ['10.1.2.3:443', { ip: '10.1.2.3', port: 443 }],
    ['  192.168.0.10:1  ', { ip: '192.168.0.10', port: 1 }],
    ['8.8.8.8:65535', { ip: '8.8.8.8', port: 65535 }],
    ['[::1]:8443', { ip: '::1', port: 8443 }],
    ['[0:0:0:0:0:0:0:1]:8443', { ip: '::1', port: 8443 }],
    ['[2001:DB8::1]:443', { ip: '2001:db8::1', port: 443 }],
    ['[fd00::a]:9000', { ip: 'fd00::a', port: 9000 }],
  ];
  for (const [spec, want] of T) assert.deepEqual(parsePin(spec), want, spec);
});

test('parsePin: refused forms name the source, the value and the expected form', () => {
  const T = [
    ['', /empty/],
    ['127.0.0.1', /missing ":port"/],
    ['127.0.0.1:', /bad port/],
    ['127.0.0.1:0', /bad port/],
    ['127.0.0.1:65536', /bad port/],
    ['127.0.0.1:08443', /bad port/],
    ['127.0.0.1:https', /bad port/],
    ['::1:8443', /must be in brackets/],
    ['[::1]', /missing ":port"/],
    ['[::1]8443', /missing ":port"/],
    ['[::1:8443', /without "\]"/],
    ['[127.0.0.1]:443', /not an IPv6/],
    ['[fe80::1%eth0]:443', /zone/],
    ['localhost:8443', /not an IP address.*not to another name/],
    ['api.example.com:443', /not an IP address/],
    ['127.1:443', /dotted-decimal/],
    ['0x7f000001:443', /dotted-decimal/],
    ['2130706433:443', /dotted-decimal/],
    ['0.0.0.0:443', /unspecified/],
    ['[::]:443', /unspecified/],
    ['1.2.3.4:443:443', /not an IP address|dotted|brackets/],
  ];
  const failures = [];
  for (const [spec, why] of T) {
    try {
      const got = parsePin(spec, 'latchgate.toml [sandbox.network.resolve] api.example.com');
      failures.push(`${JSON.stringify(spec)} accepted as ${JSON.stringify(got)}`);
    } catch (e) {
      if (!(e instanceof LaunchError)) failures.push(`${JSON.stringify(spec)}: ${e?.name} instead of LaunchError`);
      else if (!why.test(e.message)) failures.push(`${JSON.stringify(spec)}: ${e.message} does not match ${why}`);
      else if (!e.message.includes('latchgate.toml [sandbox.network.resolve] api.example.com') || !e.message.includes(JSON.stringify(spec)) || !/expected "ip:port"/.test(e.message)) {
        failures.push(`${JSON.stringify(spec)}: message lacks the source, value or expected form: ${e.message}`);
      }
    }
  }
  assert.deepEqual(failures, []);
  assert.throws(() => parsePin(undefined), LaunchError);
});

test('parsePin output round-trips through resolveAndCheck as a pin', async () => {
  const pinned = new Map([['mirror.example.com', parsePin('[::FFFF:7F00:1]:8443')]]);
  const r = await resolveAndCheck('mirror.example.com', 443, { pinned, lookup: async () => assert.fail('no lookup for a pinned name') });
  assert.deepEqual(r, { ok: true, address: '::ffff:7f00:1', family: 6, port: 8443, pinned: true });
});

test('parseIPv4 is strict dotted decimal', () => {
  assert.equal(parseIPv4('0.0.0.0'), 0);
  assert.equal(parseIPv4('255.255.255.255'), 2 ** 32 - 1);
  assert.equal(parseIPv4('1.2.3.4'), 0x01020304);
  for (const s of ['1.2.3', '1.2.3.4.', '01.2.3.4', '1.2.3.256', '1.2.3.+4', '1.2.3. 4', '0x1.2.3.4', '', '1..3.4']) assert.equal(parseIPv4(s), null, s);
});
