#!/usr/bin/env node
// make bench-providers: what one provider call costs, for the two guest
// toolchains docs/PROVIDERS.md compares: the built-in http_api
// (AssemblyScript, ~30 KB component) and an equivalent JavaScript provider
// (componentize-js, ~12 MB). Per toolchain: p50/p90 of a whole
// ProviderRuntime.run (worker hop, fresh instance, one HTTP host call,
// fuel metering; calls back to back, so a call may wait for the instance its
// worker makes ahead), the instantiate and guest parts (instantiate counted
// whether or not it was made ahead), and the RSS a call in
// flight adds (4 calls held inside their HTTP call at once) and what the
// runtime with 4 warm workers holds. Run with --expose-gc for steadier RSS.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProviderRuntime } from '../dist/providers/runtime.js';
import { buildProviders } from '../scripts/build-providers.mjs';
import { buildJs, LIMITS } from '../test/helpers/providers.mjs';

const N = Number(process.env.BENCH_CALLS ?? 300);
const LIM = { ...LIMITS, memory_mb: 64, fuel: 10_000_000, required_imports: ['latchgate:io/http', 'latchgate:io/log'] };
const body = Buffer.from('one two three four five six seven eight nine ten');
const http = async () => ({ status: 200, headers: [['content-type', 'text/plain']], body });
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const ms = (x) => `${x.toFixed(2)} ms`;

async function measure(name, provider, task) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lg-bench-prov-'));
  // Compiled once beforehand, so the numbers below are of a gate loading from its cache.
  const first = new ProviderRuntime({ cacheDir: dir });
  await first.load(provider.file, provider.digest);
  await first.close();
  global.gc?.();
  const start = process.memoryUsage().rss;
  const rt = new ProviderRuntime({ cacheDir: dir, poolSize: 4 });
  try {
    await rt.load(provider.file, provider.digest);
    for (let i = 0; i < 20; i++) await rt.run(provider.digest, task, LIM, { http });
    const total = [];
    const inst = [];
    const guest = [];
    const both = [];
    let ahead = 0;
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      const r = await rt.run(provider.digest, task, LIM, { http });
      total.push(performance.now() - t);
      if (!r.ok) throw new Error(`${name}: ${r.error}`);
      inst.push(r.timings.instantiate_ms);
      guest.push(r.timings.guest_ms);
      both.push(r.timings.instantiate_ms + r.timings.guest_ms);
      if (r.timings.made_ahead) ahead++;
    }
    // RSS added per call in flight: warm 4 workers, then hold 4 calls inside their HTTP call.
    await Promise.all([0, 1, 2, 3].map(() => rt.run(provider.digest, task, LIM, { http })));
    global.gc?.();
    const before = process.memoryUsage().rss;
    const warm = (before - start) / 2 ** 20;
    let release;
    const held = new Promise((r) => (release = r));
    let inside = 0;
    let allInside;
    const entered = new Promise((r) => (allInside = r));
    const holding = async () => {
      if (++inside === 4) allInside();
      await held;
      return http();
    };
    const calls = [0, 1, 2, 3].map(() => rt.run(provider.digest, task, LIM, { http: holding }));
    await entered;
    const during = process.memoryUsage().rss;
    release();
    await Promise.all(calls);
    console.log(
      `${name.padEnd(34)} run p50 ${ms(pct(total, 0.5))}  p90 ${ms(pct(total, 0.9))}  instantiate p50 ${ms(pct(inst, 0.5))}  guest p50 ${ms(pct(guest, 0.5))}  instantiate+call p50 ${ms(pct(both, 0.5))} (instance made ahead in ${ahead} of ${N})  RSS per call in flight ${((during - before) / 4 / 2 ** 20).toFixed(1)} MiB  (4 warm workers: ${warm.toFixed(0)} MiB)`,
    );
  } finally {
    await rt.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const built = await buildProviders({ quiet: true });
const js = await buildJs(fileURLToPath(new URL('../test/fixtures/providers/custom-js/provider.js', import.meta.url)), 'http-provider');
console.log(`provider calls: ${N} sequential per toolchain, after 20 warm-up calls; goal: instantiate+call p50 <= 2 ms, <= 30 MiB per call in flight`);
await measure('http_api (AssemblyScript)', built.http_api, { call: { method: 'GET', url: 'https://example.test/', headers: {} } });
await measure('custom-js (componentize-js)', js, { url: 'https://example.test/' });
