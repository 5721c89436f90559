#!/usr/bin/env node
// make bench-providers (second part): one http_fetch execution through the
// gate's socket (lease, DPoP, schema, policy, budget, grant, the WebAssembly
// provider on a fresh instance, its HTTP host on a fresh TLS connection to a
// local upstream, receipt in the ledger) against the same request made
// directly with Node's https on a fresh TLS connection: the floor. The gate
// and the upstream run in processes of their own (bench/http-fetch-setup.mjs).
// p50 and p99 of each, the execution split into instantiate, guest, host I/O
// and the rest (the gate's own work), and the RSS 4 executions in flight add
// to the gate's process. An instance made ahead (while its worker was idle)
// is not on the call's path: its time is shown, and not subtracted from the
// rest.
import { readFileSync } from 'node:fs';
import { Agent } from '../test/helpers/gate.mjs';
import { httpFetchSetup, ms, pct, URL_BENCH } from './http-fetch-setup.mjs';

const N = Number(process.env.BENCH_CALLS ?? 200);
// The gate is a long-running daemon: it is measured warmed up, as it serves
// (V8 has tiered up the policy engine's and the pipeline's code by then),
// and the direct request gets the same warm-up.
const WARMUP = Number(process.env.BENCH_WARMUP ?? 500);

const { up, g, direct, close } = await httpFetchSetup();
/** The gate process's resident set, in bytes. */
const gateRss = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${g.pid}/status`, 'utf8'))[1]) * 1024;
const a = new Agent(g.socket);
await a.lease({ budgets: undefined });
const url = URL_BENCH;

for (let i = 0; i < WARMUP; i++) {
  await direct();
  const r = await a.execute('http_fetch', { url });
  if (r.status !== 200) throw new Error(`http_fetch: ${r.status} ${r.text}`);
}
const d = [];
const e = [];
const inst = [];
const guest = [];
const io = [];
const rest = [];
let ahead = 0;
for (let i = 0; i < N; i++) {
  let t = performance.now();
  await direct();
  d.push(performance.now() - t);
  t = performance.now();
  const r = await a.execute('http_fetch', { url });
  const total = performance.now() - t;
  e.push(total);
  const rt = r.body.runtime;
  inst.push(rt.instantiate_ms);
  if (rt.made_ahead) ahead++;
  guest.push(rt.guest_ms);
  io.push(rt.host_io_ms);
  rest.push(total - (rt.made_ahead ? 0 : rt.instantiate_ms) - rt.guest_ms - rt.host_io_ms);
}
// RSS: 4 executions held inside their HTTP call at once. (The gate's last
// call has just ended: its heap is as after any call.)
await g.gc();
const before = gateRss();
const agents = await Promise.all([0, 1, 2, 3].map(async () => {
  const x = new Agent(g.socket);
  await x.lease();
  return x;
}));
const calls = agents.map((x) => x.execute('http_fetch', { url: 'https://api.github.com/slow' }));
while (up.slowSeen() < 4) await new Promise((r) => setTimeout(r, 10));
const during = gateRss();
up.release();
await Promise.all(calls);

console.log(`http_fetch through the gate vs the same request direct (fresh TLS each), ${N} sequential after ${WARMUP} warm-up`);
console.log(`direct https          p50 ${ms(pct(d, 0.5))}  p99 ${ms(pct(d, 0.99))}`);
console.log(`gate execution        p50 ${ms(pct(e, 0.5))}  p99 ${ms(pct(e, 0.99))}  ratio p50 ${(pct(e, 0.5) / pct(d, 0.5)).toFixed(2)}x (goal <= 3x)`);
console.log(`  instantiate         p50 ${ms(pct(inst, 0.5))}  p99 ${ms(pct(inst, 0.99))}  (made ahead, off the call's path, in ${ahead} of ${N} calls)`);
console.log(`  guest               p50 ${ms(pct(guest, 0.5))}  p99 ${ms(pct(guest, 0.99))}`);
console.log(`  host I/O            p50 ${ms(pct(io, 0.5))}  p99 ${ms(pct(io, 0.99))}`);
console.log(`  gate (the rest)     p50 ${ms(pct(rest, 0.5))}  p99 ${ms(pct(rest, 0.99))}`);
console.log(`RSS added by 4 executions in flight: ${((during - before) / 4 / 2 ** 20).toFixed(1)} MiB each (goal <= 30 MiB)`);
await close();
