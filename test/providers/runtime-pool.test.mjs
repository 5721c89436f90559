// The bounded pool: poolSize calls run at once, queueLimit wait, and a call
// past that is refused with provider_busy at once; the queued ones still run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ProviderRuntime } from '../../dist/providers/runtime.js';
import { buildWat, LIMITS } from '../helpers/providers.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

// One build and one compile cache for the file: each test's runtime loads from it.
const dir = mkdtempSync(join(tmpdir(), 'lg-prov-pool-'));
let p;
before(async () => {
  p = await buildWat('limits', dir);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('past poolSize running and queueLimit waiting, a call is refused with provider_busy', async (t) => {
  const rt = new ProviderRuntime({ cacheDir: join(dir, 'cache'), poolSize: 1, queueLimit: 1 });
  t.after(() => rt.close());
  await rt.load(p.file, p.digest);

  // The first call holds the only worker inside an HTTP call until released.
  let release;
  const gate = new Promise((r) => (release = r));
  let entered;
  const inHost = new Promise((r) => (entered = r));
  const blocking = {
    http: async () => {
      entered();
      await gate;
      return { status: 200, headers: [], body: new Uint8Array() };
    },
  };
  const limits = { ...LIMITS, max_io_calls: 1 };
  const running = rt.run(p.digest, { mode: 'h' }, limits, blocking);
  await inHost;
  const queued = rt.run(p.digest, { mode: 'g' }, limits, {});
  const refused = await rt.run(p.digest, { mode: 'g' }, limits, {});
  assert.equal(refused.ok, false);
  assert.equal(refused.failure_class, 'provider_busy', JSON.stringify(refused));
  release();
  const [a, b] = await Promise.all([running, queued]);
  assert.deepEqual(a.output, { ok: 1 });
  assert.deepEqual(b.output, { calls: 1 }, 'the queued call ran once the worker was free');
  const after = await rt.run(p.digest, { mode: 'g' }, limits, {});
  assert.equal(after.ok, true, 'the pool serves again');
});

test('however calls arrive and finish, no more than poolSize run at once', async (t) => {
  const rt = new ProviderRuntime({ cacheDir: join(dir, 'cache'), poolSize: 2, queueLimit: 20 });
  t.after(() => rt.close());
  await rt.load(p.file, p.digest);
  let inside = 0;
  let most = 0;
  const waiting = [];
  const http = async () => {
    most = Math.max(most, ++inside);
    await new Promise((r) => waiting.push(r));
    inside--;
    return { status: 200, headers: [], body: new Uint8Array() };
  };
  const limits = { ...LIMITS, max_io_calls: 1 };
  const calls = Array.from({ length: 8 }, () => rt.run(p.digest, { mode: 'h' }, limits, { http }));
  // Release one call each time the pool is full (two inside their HTTP call).
  let released = 0;
  while (released < 8) {
    await new Promise((r) => setImmediate(r));
    if (waiting.length >= Math.min(2, 8 - released)) {
      waiting.shift()();
      released++;
    }
  }
  const results = await Promise.all(calls);
  assert.ok(results.every((r) => r.ok && r.output.ok === 1), JSON.stringify(results.find((r) => !r.ok)));
  assert.equal(most, 2);
});

test('limits no manifest could carry are refused loudly', async (t) => {
  const rt = new ProviderRuntime({ cacheDir: join(dir, 'cache') });
  t.after(() => rt.close());
  await rt.load(p.file, p.digest);
  await assert.rejects(rt.run(p.digest, { mode: 'g' }, { ...LIMITS, fuel: 0 }, {}), /provider limit fuel must be a positive integer/);
  await assert.rejects(rt.run(p.digest, { mode: 'g' }, { ...LIMITS, memory_mb: 5000 }, {}), /memory_mb is at most 4096/);
  assert.equal((await rt.run(p.digest, { mode: 'g' }, LIMITS, {})).ok, true);
});
