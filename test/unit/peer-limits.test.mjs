// The per-peer limits (src/gate/peer-limits.ts): [gate] values read from
// latchgate.toml, a value that would turn a limit off refused with the key
// and the fix; the token bucket per peer and the connection count per peer,
// on an injected clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../dist/config/latchgate-toml.js';
import { ConnectionCount, peerLimits, RequestRate } from '../../dist/gate/peer-limits.js';
import { LIMIT_DEFAULTS } from '../../dist/gate/defaults.js';

test('[gate] limits: read from latchgate.toml, defaults for the rest', () => {
  const c = parseConfig('latchgate.toml', '[gate]\nrequests_per_second = 5\nheaders_timeout_ms = 2000\n');
  assert.deepEqual(peerLimits(c.gate), { ...LIMIT_DEFAULTS, requestsPerSecond: 5, headersTimeoutMs: 2000 });
  assert.deepEqual(peerLimits(parseConfig('latchgate.toml', '').gate), LIMIT_DEFAULTS);
});

test('[gate] limits: zero, a negative or a wrong type is refused, naming the key', () => {
  assert.throws(() => peerLimits(parseConfig('latchgate.toml', '[gate]\nmax_connections_per_peer = 0\n').gate), /\[gate\] max_connections_per_peer = 0: expected an integer >= 1 \(the default is 64\); a limit cannot be turned off/);
  assert.throws(() => parseConfig('latchgate.toml', '[gate]\nrequest_burst = -1\n'), /request_burst/);
  assert.throws(() => parseConfig('latchgate.toml', '[gate]\nrequests_per_second = "fast"\n'), /requests_per_second/);
  assert.throws(() => peerLimits({ headersTimeoutMs: 5000, requestTimeoutMs: 1000 }), /headers_timeout_ms = 5000 is longer than request_timeout_ms = 1000/);
});

test('RequestRate: the burst at once, then the rate; one peer never drains another', () => {
  let now = 1_000_000;
  const rate = new RequestRate({ requestsPerSecond: 10, requestBurst: 3 }, () => now);
  assert.deepEqual([rate.take('uid:1'), rate.take('uid:1'), rate.take('uid:1')], [0, 0, 0]);
  assert.equal(rate.take('uid:1'), 1, 'past the burst: retry after a second (rounded up)');
  assert.equal(rate.take('uid:2'), 0, 'another peer has its own bucket');
  now += 100; // one token back
  assert.equal(rate.take('uid:1'), 0);
  assert.equal(rate.take('uid:1'), 1);
  now += 10_000;
  assert.deepEqual([rate.take('uid:1'), rate.take('uid:1'), rate.take('uid:1'), rate.take('uid:1')], [0, 0, 0, 1], 'refilled up to the burst, no more');
});

test('RequestRate: many peers do not grow the table without bound', () => {
  let now = 0;
  const rate = new RequestRate({ requestsPerSecond: 1000, requestBurst: 1 }, () => now);
  for (let i = 0; i < 20_000; i++) {
    rate.take(`uid:${i}`);
    now += 1;
  }
  assert.ok(rate.buckets.size <= 4097, `${rate.buckets.size} buckets kept`);
});

test('ConnectionCount: at most the cap per peer; a closed connection frees its place', () => {
  const c = new ConnectionCount(2);
  assert.deepEqual([c.admit('uid:1'), c.admit('uid:1'), c.admit('uid:1')], [true, true, false]);
  assert.equal(c.admit('uid:2'), true, 'another peer has its own count');
  c.release('uid:1');
  assert.equal(c.of('uid:1'), 1);
  assert.equal(c.admit('uid:1'), true);
});
