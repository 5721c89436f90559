// The bounded pool: poolSize calls run at once, queueLimit wait, and a call
// past that is refused with provider_busy at once; the queued ones still run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ProviderRuntime } from '../../dist/providers/runtime.js';
import { buildWat, LIMITS, tempDir } from '../helpers/providers.mjs';

test('past poolSize running and queueLimit waiting, a call is refused with provider_busy', async (t) => {
  const dir = tempDir(t);
  const p = await buildWat('limits', dir);
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
