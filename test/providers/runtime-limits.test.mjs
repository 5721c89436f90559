// The provider runtime under attack: a test provider (test/fixtures/providers/
// limits.wat) breaks one limit per mode; each call must end with the right
// failure class, and the runtime must go on serving ordinary calls after it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ProviderRuntime } from '../../dist/providers/runtime.js';
import { HostIoError } from '../../dist/providers/host-error.js';
import { buildWat, LIMITS } from '../helpers/providers.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'lg-prov-limits-'));
let rt;
let p;

/** Hosts that count their calls. */
function hosts({ body = new Uint8Array(3), file = 'hello world', httpError } = {}) {
  const seen = { http: 0, fs: 0, log: 0 };
  return {
    seen,
    http: async () => {
      seen.http++;
      if (httpError) throw httpError;
      return { status: 200, headers: [['content-type', 'text/plain']], body };
    },
    fs: {
      read: async () => {
        seen.fs++;
        return new TextEncoder().encode(file);
      },
    },
    log: () => void seen.log++,
  };
}

/** An ordinary call: proves the runtime still serves after a failure. */
async function stillServes() {
  const r = await rt.run(p.digest, { mode: 'g' }, LIMITS, hosts());
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.deepEqual(r.output, { calls: 1 });
}

before(async () => {
  p = await buildWat('limits', dir);
  rt = new ProviderRuntime({ cacheDir: join(dir, 'cache'), poolSize: 2 });
  await rt.load(p.file, p.digest);
});
after(async () => {
  await rt.close();
  rmSync(dir, { recursive: true, force: true });
});

test('every call gets a fresh instance: a global set in one call is unset in the next', async () => {
  const ahead = [];
  for (let i = 0; i < 8; i++) {
    const r = await rt.run(p.digest, { mode: 'g' }, LIMITS, hosts());
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual(r.output, { calls: 1 }, 'the instance counter would read 2, 3 if an instance were reused');
    ahead.push(r.timings.made_ahead);
  }
  // The instances made ahead (while the worker was idle, once its instances were quick to make) are fresh too.
  assert.ok(ahead.filter(Boolean).length >= 2, `instances made ahead: ${ahead}`);
});

test('the next instance is made once the caller is done with the call (spareAfter), never before', async (t) => {
  const one = new ProviderRuntime({ cacheDir: join(dir, 'cache'), poolSize: 1 });
  t.after(() => one.close());
  await one.load(p.file, p.digest);
  const settle = () => new Promise((r) => setTimeout(r, 150));
  const call = async (spareAfter) => {
    const r = await one.run(p.digest, { mode: 'g' }, LIMITS, hosts(), undefined, spareAfter);
    assert.equal(r.ok, true, JSON.stringify(r));
    await settle();
    return r.timings.made_ahead;
  };
  // The first call makes its own, and loads the code (on a busy machine that can take longer than
  // an instance worth making ahead may); after a quick one, the next is made at once (no spareAfter).
  await call();
  await call();
  assert.equal(await call(new Promise(() => {})), true, 'made ahead after a call without spareAfter');
  // spareAfter never settles: the worker waits, and the next call makes its own.
  let done;
  assert.equal(await call(new Promise((r) => (done = r))), false, 'an instance was made before the caller was done');
  done();
  await settle();
  assert.equal(await call(), true, 'no instance made once the caller was done');
});

test('an instance made ahead counts like one made in the call: the same fuel, and only for the same memory cap', async () => {
  const used = [];
  for (let i = 0; i < 3; i++) {
    const r = await rt.run(p.digest, { mode: 'g' }, { ...LIMITS, fuel: 1_000 + i }, hosts());
    assert.equal(r.ok, true, JSON.stringify(r));
    used.push(r.fuel_used);
  }
  assert.equal(new Set(used).size, 1, `fuel used differs: ${used}`);
  // The instance made ahead for one memory cap never serves a call with another.
  for (const memory_mb of [16, 8, 8, 16, 16]) {
    const r = await rt.run(p.digest, { mode: 'm' }, { ...LIMITS, memory_mb }, hosts());
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual(r.output, { pages: memory_mb * 16 }, `memory_mb ${memory_mb} (made ahead: ${r.timings.made_ahead})`);
  }
});

test('an endless loop runs out of fuel deterministically; a call within its fuel passes', async () => {
  const r = await rt.run(p.digest, { mode: 'l' }, { ...LIMITS, fuel: 50_000 }, hosts());
  assert.equal(r.ok, false);
  assert.equal(r.failure_class, 'fuel_exhausted', JSON.stringify(r));
  assert.equal(r.fuel_used, 50_000);
  const ok = await rt.run(p.digest, { mode: 'g' }, { ...LIMITS, fuel: 1_000 }, hosts());
  assert.equal(ok.ok, true, JSON.stringify(ok));
  assert.ok(ok.fuel_used > 0 && ok.fuel_used < 1_000);
  await stillServes();
});

test('a bulk memory instruction spends fuel by its length: fill, copy and init in a loop run out of fuel, not on to the timeout', async () => {
  // Each loop would be 100000 (50000) units if an instruction cost one whatever its length: well
  // within this fuel, while filling and copying 100 GB and 50 GB until the timeout stopped them.
  for (const mode of ['f', 'c', 'i']) {
    const r = await rt.run(p.digest, { mode }, { ...LIMITS, fuel: 200_000, timeout_seconds: 10 }, hosts());
    assert.equal(r.ok, false, `${mode}: ${JSON.stringify(r)}`);
    assert.equal(r.failure_class, 'fuel_exhausted', `${mode}: ${JSON.stringify(r)}`);
    assert.equal(r.fuel_used, 200_000);
  }
  await stillServes();
});

test('a bulk memory instruction within the fuel runs, charged one unit plus one per 64 bytes', async () => {
  const plain = await rt.run(p.digest, { mode: 'g' }, LIMITS, hosts());
  const fill = await rt.run(p.digest, { mode: 'k' }, LIMITS, hosts());
  assert.equal(fill.ok, true, JSON.stringify(fill));
  assert.deepEqual(fill.output, plain.output);
  // k is g after one memory.fill of 128 KiB: that, and the few instructions of its branch.
  const extra = fill.fuel_used - plain.fuel_used - (1 + 131072 / 64);
  assert.ok(extra >= 0 && extra <= 2, `fuel beyond the fill's: ${extra}`);
});

test('a provider whose code holds table.fill (work by a length the meter cannot charge) is refused at load, naming it', async (t) => {
  const tf = await buildWat('table-fill', dir);
  const own = new ProviderRuntime({ cacheDir: join(dir, 'cache-table-fill'), poolSize: 1 });
  t.after(() => own.close());
  await assert.rejects(own.load(tf.file, tf.digest), /table\.fill instruction, which the fuel meter cannot charge/);
});

test("a host import's arguments spend fuel by their length: 1 MiB log lines or request bodies in a loop run out of fuel", async () => {
  // Without the charge, each line or request costs the guest one loop iteration, while the glue
  // copies 1 MiB out of its memory and the request is posted to the gate's thread.
  const h = hosts();
  const lines = await rt.run(p.digest, { mode: 'b' }, { ...LIMITS, memory_mb: 16 }, h);
  assert.equal(lines.failure_class, 'fuel_exhausted', JSON.stringify(lines));
  assert.equal(lines.fuel_used, LIMITS.fuel);
  assert.ok(h.seen.log <= 1, `log lines past the byte cap are dropped (${h.seen.log} arrived)`);
  const posts = hosts();
  const r = await rt.run(p.digest, { mode: 'a' }, { ...LIMITS, memory_mb: 16, max_io_calls: 1000 }, posts);
  assert.equal(r.failure_class, 'fuel_exhausted', JSON.stringify(r));
  // 1 MiB is 16385 units: the fuel (1,000,000) lets about 61 requests through, not 1000.
  assert.ok(posts.seen.http > 0 && posts.seen.http <= Math.ceil(LIMITS.fuel / 16385), `requests that reached the host: ${posts.seen.http}`);
  await stillServes();
});

test('I/O calls a provider goes on making past max_io_calls are refused in its worker: nothing more is posted to the gate', async () => {
  const h = hosts();
  const r = await rt.run(p.digest, { mode: 'a' }, { ...LIMITS, memory_mb: 16, max_io_calls: 3, fuel: 100_000_000 }, h);
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.deepEqual(r.output, { ok: 3 });
  assert.equal(h.seen.http, 3);
  // The gate's bridge counted the three and refused the fourth; the other 996 never left the worker.
  assert.equal(r.io_calls, 4);
  await stillServes();
});

test('memory growth stops at memory_mb inside the guest', async () => {
  for (const memory_mb of [8, 16]) {
    const r = await rt.run(p.digest, { mode: 'm' }, { ...LIMITS, memory_mb }, hosts());
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual(r.output, { pages: memory_mb * 16 }, 'memory.grow must fail at the limit');
  }
  await stillServes();
});

test('a provider that never yields is stopped at timeout_seconds', async () => {
  const r = await rt.run(p.digest, { mode: 'l' }, { ...LIMITS, fuel: Number.MAX_SAFE_INTEGER, timeout_seconds: 1 }, hosts());
  assert.equal(r.ok, false);
  assert.equal(r.failure_class, 'timeout', JSON.stringify(r));
  await stillServes();
});

test('an aborted call stops its provider', async () => {
  const ac = new AbortController();
  const running = rt.run(p.digest, { mode: 'l' }, { ...LIMITS, fuel: Number.MAX_SAFE_INTEGER }, hosts(), ac.signal);
  setImmediate(() => ac.abort());
  const r = await running;
  assert.equal(r.failure_class, 'aborted', JSON.stringify(r));
  await stillServes();
});

test('I/O calls past max_io_calls are refused to the provider and never reach the host', async () => {
  const h = hosts();
  const r = await rt.run(p.digest, { mode: 'h' }, { ...LIMITS, max_io_calls: 3 }, h);
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.deepEqual(r.output, { ok: 3 });
  assert.equal(h.seen.http, 3);
  assert.equal(r.io_calls, 4, 'the refused fourth call counts');
  assert.equal(h.seen.log, 4, 'log lines are not I/O calls');
  const wide = hosts();
  const all = await rt.run(p.digest, { mode: 'h' }, { ...LIMITS, max_io_calls: 8 }, wide);
  assert.deepEqual(all.output, { ok: 8 });
  assert.equal(wide.seen.http, 8);
});

test('a host refusal goes back to the provider as its error code', async () => {
  const h = hosts({ httpError: new HostIoError('egress_denied', 'example.test is not allowed') });
  const r = await rt.run(p.digest, { mode: 'h' }, LIMITS, h);
  assert.deepEqual(r.output, { ok: 0 });
  assert.equal(r.io_calls, 1);
  const fsDenied = await rt.run(p.digest, { mode: 'r' }, { ...LIMITS, max_host_response_bytes: 4 }, hosts({ file: 'more than four bytes' }));
  assert.equal(fsDenied.failure_class, 'provider_error');
  assert.match(fsDenied.error, /^host_response_too_large: /);
  const read = await rt.run(p.digest, { mode: 'r' }, LIMITS, hosts({ file: 'twelve bytes' }));
  assert.deepEqual(read.output, { size: 12 });
});

test('output over max_response_bytes is refused; within it passes', async () => {
  const r = await rt.run(p.digest, { mode: 'o' }, { ...LIMITS, max_response_bytes: 1000 }, hosts());
  assert.equal(r.failure_class, 'response_too_large', JSON.stringify(r));
  const ok = await rt.run(p.digest, { mode: 'o' }, { ...LIMITS, max_response_bytes: 200_000 }, hosts());
  assert.equal(ok.ok, true);
  assert.equal(ok.output.length, 99_989);
  await stillServes();
});

test('a task over max_request_bytes never reaches the provider', async () => {
  const h = hosts();
  const r = await rt.run(p.digest, { mode: 'h', pad: 'x'.repeat(2000) }, { ...LIMITS, max_request_bytes: 1024 }, h);
  assert.equal(r.failure_class, 'request_too_large', JSON.stringify(r));
  assert.equal(h.seen.http + h.seen.log, 0);
});

test('output that is not {"output": ...} JSON is invalid_output; a trap is a trap', async () => {
  const j = await rt.run(p.digest, { mode: 'j' }, LIMITS, hosts());
  assert.equal(j.failure_class, 'invalid_output', JSON.stringify(j));
  const t = await rt.run(p.digest, { mode: 't' }, LIMITS, hosts());
  assert.equal(t.failure_class, 'trap', JSON.stringify(t));
  const e = await rt.run(p.digest, { mode: 'e' }, LIMITS, hosts());
  assert.equal(e.failure_class, 'provider_error');
  assert.equal(e.error, 'boom');
  await stillServes();
});

test('a provider that traps because its memory is at memory_mb fails as memory_exhausted', async () => {
  // The 2 MiB task does not fit in 1 MiB: the guest's allocator traps when memory.grow fails.
  const task = { mode: 'g', pad: 'x'.repeat(2 << 20) };
  const r = await rt.run(p.digest, task, { ...LIMITS, memory_mb: 1, max_request_bytes: 4 << 20 }, hosts());
  assert.equal(r.failure_class, 'memory_exhausted', JSON.stringify(r));
  const fits = await rt.run(p.digest, task, { ...LIMITS, memory_mb: 8, max_request_bytes: 4 << 20 }, hosts());
  assert.equal(fits.ok, true, JSON.stringify(fits));
  await stillServes();
});

test('a host call that never answers is cut off at timeout_seconds', async () => {
  let calls = 0;
  const stuck = { http: () => (calls++, new Promise(() => {})), log: () => {} };
  const r = await rt.run(p.digest, { mode: 'h' }, { ...LIMITS, timeout_seconds: 1 }, stuck);
  assert.equal(r.failure_class, 'timeout', JSON.stringify(r));
  assert.equal(calls, 1);
  assert.equal(r.io_calls, 1);
  await stillServes();
});

test('log lines are capped in bytes too: 300 lines of 1 MiB reach the gate as at most MAX_LOG_BYTES; a few short lines all arrive', async () => {
  const { MAX_LOG_BYTES, MAX_LOG_LINES } = await import('../../dist/providers/runtime-protocol.js');
  let bytes = 0;
  let lines = 0;
  const h = { ...hosts(), log: (level, message, fields) => {
    lines++;
    bytes += message.length + fields.reduce((n, [k, v]) => n + k.length + v.length, 0);
  } };
  // Posted without waiting, each line would be copied to the gate's thread: 300 MiB in one call.
  // (Each line's text is charged to the fuel: 300 lines of 1 MiB need about 4.9 million units.)
  const r = await rt.run(p.digest, { mode: 'b' }, { ...LIMITS, memory_mb: 16, fuel: 10_000_000 }, h);
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.deepEqual(r.output, { ok: 300 }, 'the provider wrote every line (the ones past the cap are dropped, not failed)');
  assert.ok(bytes <= MAX_LOG_BYTES, `the gate received ${bytes} bytes of log lines, over ${MAX_LOG_BYTES}`);
  assert.ok(lines <= MAX_LOG_LINES);
  // Short lines (mode h logs "hello" before each request) are all kept.
  const ok = hosts();
  const r2 = await rt.run(p.digest, { mode: 'h' }, { ...LIMITS, max_io_calls: 8 }, ok);
  assert.equal(r2.ok, true, JSON.stringify(r2));
  assert.equal(ok.seen.log, 9);
  await stillServes();
});
