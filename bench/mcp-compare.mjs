#!/usr/bin/env node
// make bench-mcp-compare: bench-mcp's call of this checkout against an
// earlier commit's, side by side at the same time. Whole bench-mcp runs
// minutes apart cannot compare two versions on a shared machine (its speed
// drifts by more than most changes give); here one upstream serves both, each
// side runs its own gate and its own latchgate-mcp (bench/http-fetch-setup.mjs's
// processes, from its own checkout), and one client calls them in pairs, the
// order swapped every pair: first the gate's socket, then MCP tools/call.
// Per side: p50 and p90; the median of the paired differences; the gate
// process's CPU time per call. BENCH_BASE: the commit to compare with
// (default HEAD^), built once in a worktree (bench/base-checkout.mjs), or
// BENCH_BASE_DIR: a built checkout; BENCH_COMPARE_N pairs (default 600).
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Agent, BASE_URL } from '../test/helpers/gate.mjs';
import { baseCheckout, cpuOf, git, here } from './base-checkout.mjs';
import { child, HOST, ms, pct, URL_BENCH } from './http-fetch-setup.mjs';

const BASE = process.env.BENCH_BASE ?? 'HEAD^';
const N = Number(process.env.BENCH_COMPARE_N ?? 600);
const WARM = 400;

/** One side: the gate and latchgate-mcp of checkout `dir`, an agent on the gate's socket and an MCP client. */
async function side(name, dir, port, caFile) {
  const gate = await child('http-fetch-gate.mjs', [String(port), caFile, HOST], [], dir);
  const agent = new Agent(gate.line);
  await agent.lease();
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [path.join(dir, 'dist', 'cli', 'latchgate-mcp.js'), '--socket', gate.line, '--public-url', BASE_URL],
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' },
    stderr: 'ignore',
  });
  const client = new Client({ name: 'latchgate-bench-compare', version: '1.0.0' });
  await client.connect(transport);
  await client.listTools();
  const timed = async (f) => {
    const t = performance.now();
    await f();
    return performance.now() - t;
  };
  return {
    name,
    gate,
    client,
    socket: () => timed(async () => {
      const r = await agent.execute('http_fetch', { url: URL_BENCH });
      if (r.status !== 200) throw new Error(`${name}: http_fetch: ${r.status} ${r.text}`);
    }),
    mcp: () => timed(async () => {
      const r = await client.callTool({ name: 'http_fetch', arguments: { url: URL_BENCH } });
      if (r.isError) throw new Error(`${name}: tools/call http_fetch: ${JSON.stringify(r)}`);
    }),
  };
}

/** n calls of `kind` on each side in pairs, the order swapped every pair; each side's times and its gate's CPU ms per call. */
async function pairs(a, b, kind, n) {
  const times = new Map([[a, []], [b, []]]);
  const cpu0 = new Map([a, b].map((s) => [s, cpuOf(s.gate.p.pid)]));
  for (let i = 0; i < n; i++) for (const s of i % 2 ? [b, a] : [a, b]) times.get(s).push(await s[kind]());
  const cpu = new Map([a, b].map((s) => [s, ((cpuOf(s.gate.p.pid) - cpu0.get(s)) * 1000) / n]));
  return { times, cpu };
}

const baseDir = baseCheckout(BASE);
const upstream = await child('http-fetch-upstream.mjs', [HOST]);
const { port, caFile } = JSON.parse(upstream.line);
const head = await side('this checkout', here, port, caFile);
const base = await side(`base ${process.env.BENCH_BASE_DIR ? baseDir : git('rev-parse', '--short', BASE)}`, baseDir, port, caFile);
for (let i = 0; i < WARM; i++) for (const s of [head, base]) await s.socket(), await s.mcp();

console.log(`bench-mcp-compare: http_fetch, this checkout (${git('rev-parse', '--short', 'HEAD')}) against ${base.name}, side by side: ${N} pairs of each call after ${WARM} warm-up`);
for (const kind of ['socket', 'mcp']) {
  const { times, cpu } = await pairs(head, base, kind, N);
  const h = times.get(head);
  const b = times.get(base);
  const diff = h.map((x, i) => x - b[i]);
  console.log(kind === 'socket' ? "the gate's socket, without MCP" : 'MCP tools/call end to end');
  for (const s of [head, base]) console.log(`  ${s.name.padEnd(24)} p50 ${ms(pct(times.get(s), 0.5))}  p90 ${ms(pct(times.get(s), 0.9))}  gate CPU ${ms(cpu.get(s))} per call`);
  console.log(`  this checkout less the base: p50 ${ms(pct(h, 0.5) - pct(b, 0.5))}, median of the paired differences ${ms(pct(diff, 0.5))}`);
}
for (const s of [head, base]) {
  await s.client.close();
  s.gate.p.disconnect();
}
upstream.p.disconnect();
