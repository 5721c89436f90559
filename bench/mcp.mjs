#!/usr/bin/env node
// make bench-mcp: one MCP tools/call end to end: a real MCP Client (the
// TypeScript SDK over stdio) -> `latchgate-mcp` (the bin from dist/, a child
// process) -> the gate's Unix socket (lease, DPoP, schema, policy, budget,
// grant) -> the http_api WebAssembly provider of http_fetch -> a local TLS
// upstream on loopback -> back as the tool's result with its receipt. Against
// the same request made directly with Node's https (same CA, a fresh TLS
// connection, as the provider makes it), and the same http_fetch sent to the
// gate's socket without MCP (bench/provider-exec.mjs's path), in the same run.
// p50 and p99 of each, what MCP adds over direct, the goal, and where the
// added time goes: the MCP hop (MCP over the socket path), the gate's own
// work, the provider's guest and its host I/O (the gate's runtime figures of
// the socket path's calls; p50 of each part, so they need not add up), with
// the server's own part split by bench/fixtures/mcp-split.mjs (all calls,
// warm-up included). The goal (at most 5 ms added at p50) is judged, as
// every gate speed goal of this project, over this machine's floor for the
// call, measured in the same run: the direct request and the two fdatasyncs
// every execute owes its evidence (bench/sync-probe.mjs; the intent before
// dispatch, the receipt before the answer), whose cost is the disk's, not the
// gate's; what it adds over the direct request alone is printed beside. Last, the
// gate's own steps (src/gate/stage-timing.ts) in three phases: until the
// connection to the upstream starts opening; while it opens (its TLS
// handshake runs beside the grant, the intent and its sync); after the
// provider's outcome (the receipt, its sync, the answer).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Agent, BASE_URL } from '../test/helpers/gate.mjs';
import { MCP_BIN } from '../test/helpers/mcp.mjs';
import { httpFetchSetup, ms, pct, URL_BENCH } from './http-fetch-setup.mjs';
import { SyncProbe } from './sync-probe.mjs';

const N = Number(process.env.BENCH_CALLS ?? 200);
// Measured warmed up, as a long-running gate serves (see bench/provider-exec.mjs).
const WARM = Number(process.env.BENCH_WARMUP ?? 500);
const GOAL_MS = 5;

const { g, direct, close } = await httpFetchSetup();
const a = new Agent(g.socket);
await a.lease();
const transport = new StdioClientTransport({
  command: process.execPath,
  // The split of the server's own time (bench/fixtures/mcp-split.mjs), printed when it exits.
  args: ['--import', fileURLToPath(new URL('./fixtures/mcp-split.mjs', import.meta.url)), MCP_BIN, '--socket', g.socket, '--public-url', BASE_URL],
  env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' },
  stderr: 'pipe',
});
let stderr = '';
transport.stderr?.on('data', (d) => (stderr += d));
const client = new Client({ name: 'latchgate-bench', version: '1.0.0' });
await client.connect(transport);
const { tools } = await client.listTools(); // the client checks structuredContent against the listed outputSchema
if (!tools.some((t) => t.name === 'http_fetch')) throw new Error(`http_fetch is not among the tools: ${tools.map((t) => t.name).join(', ')}`);

const viaMcp = async () => {
  const r = await client.callTool({ name: 'http_fetch', arguments: { url: URL_BENCH } });
  if (r.isError || r.structuredContent?.status !== 200) throw new Error(`tools/call http_fetch: ${JSON.stringify(r)}\n${stderr}`);
};
const viaGate = async () => {
  const r = await a.execute('http_fetch', { url: URL_BENCH });
  if (r.status !== 200) throw new Error(`http_fetch: ${r.status} ${r.text}`);
  return r.body.runtime;
};

for (let i = 0; i < WARM; i++) {
  await direct();
  await viaGate();
  await viaMcp();
}
await g.timeSteps();
// On the file system of the gate's ledger (test/helpers/gate.mjs makes its state directory there).
const probeDir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-bench-mcp-'));
const probe = new SyncProbe(probeDir);
const d = [];
const e = [];
const m = [];
const syncs = [];
const guest = [];
const io = [];
const rest = [];
const time = async (f, xs) => {
  const t = performance.now();
  const r = await f();
  xs.push(performance.now() - t);
  return r;
};
for (let i = 0; i < N; i++) {
  // Interleaved, so that a noisy moment of the machine hits all three alike.
  await time(direct, d);
  const rt = await time(viaGate, e);
  guest.push(rt.guest_ms);
  io.push(rt.host_io_ms);
  rest.push(e.at(-1) - (rt.made_ahead ? 0 : rt.instantiate_ms) - rt.guest_ms - rt.host_io_ms);
  await time(viaMcp, m);
  syncs.push((await probe.once()) + (await probe.once()));
}
const steps = await g.steps();
probe.close();
rmSync(probeDir, { recursive: true, force: true });
await client.close();
for (let i = 0; i < 100 && !/^mcp-split /m.test(stderr); i++) await new Promise((r) => setTimeout(r, 50));
const inside = JSON.parse(/^mcp-split (.*)$/m.exec(stderr)?.[1] ?? '{}');
await close();

const added = pct(m, 0.5) - pct(d, 0.5);
// One floor per iteration: its direct request and its two fdatasyncs.
const floor = d.map((x, i) => x + syncs[i]);
const overFloor = pct(m, 0.5) - pct(floor, 0.5);
console.log(`MCP tools/call http_fetch end to end vs the same request direct (fresh TLS each), ${N} sequential after ${WARM} warm-up`);
console.log(`direct https          p50 ${ms(pct(d, 0.5))}  p99 ${ms(pct(d, 0.99))}`);
console.log(`floor (direct + 2 fdatasyncs) p50 ${ms(pct(floor, 0.5))}  p99 ${ms(pct(floor, 0.99))}  (the two fdatasyncs: p50 ${ms(pct(syncs, 0.5))})`);
console.log(`gate socket (no MCP)  p50 ${ms(pct(e, 0.5))}  p99 ${ms(pct(e, 0.99))}`);
console.log(`MCP tools/call        p50 ${ms(pct(m, 0.5))}  p99 ${ms(pct(m, 0.99))}  added p50 ${ms(added)}  ratio p50 ${(pct(m, 0.5) / pct(d, 0.5)).toFixed(2)}x`);
const row = (label, x) => console.log(`  ${label.padEnd(92)} ${ms(x)}`);
console.log('where the added time goes, p50 of each part (they need not add up):');
row('MCP hop: stdio both ways and latchgate-mcp (the MCP call less the socket call)', pct(m, 0.5) - pct(e, 0.5));
const part = (x) => (x === undefined ? 'n/a' : ms(x));
console.log(`    inside latchgate-mcp: read to execute ${part(inside.parse)}, lease + DPoP proof ${part(inside.proof)}, the gate's answer ${part(inside.http)} (the socket call: ${ms(pct(e, 0.5))}), answer written ${part(inside.answer)}`);
row("the gate's own work: HTTP, lease, DPoP, schema, policy, budget, grant, intent, receipt", pct(rest, 0.5));
row("the provider's guest (WebAssembly)", pct(guest, 0.5));
row(`the provider's host I/O: the HTTPS request itself (direct: ${ms(pct(d, 0.5))})`, pct(io, 0.5));
console.log(`goal: <= ${GOAL_MS} ms p50 added over the floor (the direct request and the two fdatasyncs every execute owes, measured in this run): ${ms(overFloor)}, ${overFloor <= GOAL_MS ? 'met' : 'NOT met'} (over the direct request alone: ${ms(added)})`);
printSteps(steps);

/** The gate's steps, p50 of each, with their sub-steps ("step: what") under them, in three phases. */
function printSteps(all) {
  const p50 = new Map(all.map(([step, xs]) => [step, pct(xs, 0.5)]));
  const top = all.map(([step]) => step).filter((step) => !step.includes(': '));
  const phases = [
    ['until the connection to the upstream starts opening', 0, top.indexOf('openCallHosts') + 1],
    ['while it opens (its TLS handshake runs beside these steps)', top.indexOf('openCallHosts') + 1, top.indexOf('verifyAndReceipt')],
    ["after the provider's outcome", top.indexOf('verifyAndReceipt'), top.length],
  ];
  console.log(`the gate's steps, p50 of each over its ${all[0]?.[1].length ?? 0} executions above, socket and MCP (src/gate/stage-timing.ts):`);
  for (const [label, from, to] of phases) {
    const mine = top.slice(from, to);
    row(`${label}, in all`, mine.reduce((n, step) => n + p50.get(step), 0));
    for (const step of mine) {
      row(`  ${step}`, p50.get(step));
      for (const [sub] of all) if (sub.startsWith(`${step}: `)) row(`    ${sub.slice(step.length + 2)}`, p50.get(sub));
    }
  }
}
