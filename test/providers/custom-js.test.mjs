// A custom provider written in JavaScript, built with componentize-js as an
// operator would (docs/PROVIDERS.md), loaded by its digest and run through
// the runtime: its host calls, its fresh instance per call, its fuel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProviderRuntime } from '../../dist/providers/runtime.js';
import { HostIoError } from '../../dist/providers/host-error.js';
import { buildJs, LIMITS, digestOf } from '../helpers/providers.mjs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const SOURCE = fileURLToPath(new URL('../fixtures/providers/custom-js/provider.js', import.meta.url));
const LIM = { ...LIMITS, memory_mb: 64, required_imports: ['latchgate:io/http', 'latchgate:io/log'] };
let rt;
let p;

before(async () => {
  p = await buildJs(SOURCE, 'http-provider');
  assert.equal(digestOf(readFileSync(p.file)), p.digest);
  // The compile cache is shared between runs too (entries are verified on load).
  rt = new ProviderRuntime({ cacheDir: join(tmpdir(), 'latchgate-test-providers', 'runtime-cache') });
  await rt.load(p.file, p.digest);
});
after(async () => {
  await rt.close();
});

test('a JavaScript provider runs by digest, reaches HTTP through the host and starts fresh every call', async () => {
  const seen = [];
  const lines = [];
  const hosts = {
    http: async (req) => (seen.push(req), { status: 200, headers: [], body: Buffer.from('one two  three\nfour') }),
    log: (level, message, fields) => lines.push([level, message, fields]),
  };
  for (let i = 0; i < 2; i++) {
    const r = await rt.run(p.digest, { url: 'https://example.test/words' }, LIM, hosts);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual(r.output, { status: 200, words: 4, calls: 1 }, 'globalThis.calls starts at 1 in each call');
    assert.deepEqual(r.provider_receipt, { fetched: 'https://example.test/words' });
    assert.ok(r.fuel_used > 0 && r.fuel_used < LIM.fuel);
  }
  assert.equal(seen.length, 2);
  assert.equal(seen[0].url, 'https://example.test/words');
  assert.equal(seen[0].timeout_ms, 5000);
  assert.deepEqual(lines[0], ['info', 'fetched', [['status', '200']]]);
});

test('a JavaScript provider sees host refusals, and an endless loop in it runs out of fuel', async () => {
  const refused = await rt.run(p.digest, { url: 'https://evil.test/' }, LIM, { http: async () => { throw new HostIoError('egress_denied', 'evil.test is not allowed'); } });
  assert.equal(refused.failure_class, 'provider_error');
  assert.match(refused.error, /egress_denied: evil\.test is not allowed/);
  const spin = await rt.run(p.digest, { mode: 'spin' }, LIM, {});
  assert.equal(spin.failure_class, 'fuel_exhausted', JSON.stringify(spin));
  const again = await rt.run(p.digest, { url: 'https://example.test/' }, LIM, { http: async () => ({ status: 204, headers: [], body: new Uint8Array() }) });
  assert.deepEqual(again.output, { status: 204, words: 0, calls: 1 });
});
