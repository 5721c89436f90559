#!/usr/bin/env node
// make bench-gate-compare: bench-gate's execute of this checkout against the
// commit before the evidence (the Merkle tree, signed checkpoints, receipt
// format 2, the recorded policy input): what an execute costs now, the
// evidence and every change since included.
// The gate of this checkout and the gate of the commit before the tree
// (BASE_COMMIT, in a worktree of its own, built once) run side by side, each
// its own bench/gate-server.mjs process, and one client drives them
// interleaved: sequential executes in pairs (one on each, the order swapped
// every pair), then 16-client bursts on each in turn. Whatever else the
// machine does meanwhile lands on both sides alike, which whole runs one
// after the other cannot give on a shared machine (they disagreed by more
// than the 5% aimed at). Per round (fresh gates): the sequential p50 and p99,
// the 16-client throughput, and each gate process's CPU time per execute;
// then the median over the rounds of each cost.
// BENCH_COMPARE_ROUNDS rounds (default 3); BENCH_COMPARE_N sequential pairs
// per round (default 1000); BENCH_BASE_DIR: an already built checkout to
// compare with instead.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createDpopKey, makeProof } from '../dist/gate/auth/client.js';
import { baseCheckout, cpuOf, git, here } from './base-checkout.mjs';

const BASE_COMMIT = '6f27a58^';
const ROUNDS = Number(process.env.BENCH_COMPARE_ROUNDS ?? 3);
const N = Number(process.env.BENCH_COMPARE_N ?? 1000);
const WARMUP = 1000; // executes per side before anything is timed: V8 and the Wasm engine optimise meanwhile
const CLIENTS = 16;
const BURST = 320; // executes per 16-client burst
const BURSTS = 12; // bursts per side and round
const BASE_URL = 'http://latchgate.local';
const ACTION_PATH = '/v1/actions/t_noop/execute';
const GOAL = 5;

/** One side: the gate of checkout `dir` in its own process, on a fresh state directory, with a lease. */
async function startSide(name, dir) {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), `latchgate-bench-compare-${name}-`));
  const proc = spawn(process.execPath, [path.join(dir, 'bench', 'gate-server.mjs'), stateDir], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
  const sock = await new Promise((resolve, reject) => {
    proc.stdout.once('data', (d) => resolve(d.toString().trim()));
    proc.once('exit', (code) => reject(new Error(`${dir}/bench/gate-server.mjs exited (${code}) before it listened`)));
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const side = { name, dir, proc, sock, agent, stateDir, key: await createDpopKey(), lease: '' };
  const r = await post(side, '/v1/leases', { scopes: ['tools:call'], dpop_jwk: side.key.jwk });
  if (r.status !== 201) throw new Error(`${name}: lease refused: ${r.status} ${r.text}`);
  side.lease = JSON.parse(r.text).lease_jwt;
  return side;
}

async function stopSide(s) {
  s.proc.kill('SIGTERM');
  s.agent.destroy();
  await new Promise((r) => (s.proc.exitCode !== null ? r() : s.proc.once('exit', r)));
  rmSync(s.stateDir, { recursive: true, force: true });
}

function post(side, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const r = http.request({ socketPath: side.sock, method: 'POST', path: p, agent: side.agent, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve({ status: res.statusCode, text: t }));
    });
    r.on('error', reject);
    r.end(JSON.stringify(body));
  });
}

/** Proofs made before timing (the client's signing is not the gate's latency), and within their 60 s. */
const proofsFor = (side, n) => Promise.all(Array.from({ length: n }, () => makeProof({ key: side.key, method: 'POST', url: BASE_URL + ACTION_PATH, leaseJwt: side.lease })));

async function execute(side, proof) {
  const t0 = performance.now();
  const r = await post(side, ACTION_PATH, { n: 1 }, { authorization: `DPoP ${side.lease}`, dpop: proof });
  const ms = performance.now() - t0;
  if (r.status !== 200) throw new Error(`${side.name}: execute failed: ${r.status} ${r.text}`);
  return ms;
}

/** n executes on each side in pairs, the order swapped every pair; the latencies of each side. */
async function pairs(a, b, n) {
  const out = new Map([[a, []], [b, []]]);
  for (let done = 0; done < n; done += 500) {
    const k = Math.min(500, n - done);
    const proofs = new Map([[a, await proofsFor(a, k)], [b, await proofsFor(b, k)]]);
    for (let i = 0; i < k; i++) {
      for (const s of i % 2 ? [b, a] : [a, b]) out.get(s).push(await execute(s, proofs.get(s)[i]));
    }
  }
  return out;
}

/** One burst: BURST executes from CLIENTS concurrent clients; its wall time in seconds. */
async function burst(side) {
  const proofs = await proofsFor(side, BURST);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < BURST) await execute(side, proofs[next++]);
  }));
  return (performance.now() - t0) / 1000;
}

const pct = (xs, p) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cost = (worse) => `${((worse - 1) * 100).toFixed(1)}%`;

async function round(baseDir) {
  const base = await startSide('base', baseDir);
  const head = await startSide('head', here);
  try {
    await pairs(base, head, WARMUP);
    const cpu0 = new Map([[base, cpuOf(base.proc.pid)], [head, cpuOf(head.proc.pid)]]);
    const lat = await pairs(base, head, N);
    const secs = new Map([[base, 0], [head, 0]]);
    for (let i = 0; i < BURSTS; i++) {
      for (const s of i % 2 ? [head, base] : [base, head]) secs.set(s, secs.get(s) + (await burst(s)));
    }
    const executes = N + BURSTS * BURST;
    const side = (s) => ({
      p50: pct(lat.get(s), 0.5),
      p99: pct(lat.get(s), 0.99),
      tput: (BURSTS * BURST) / secs.get(s),
      cpu: ((cpuOf(s.proc.pid) - cpu0.get(s)) * 1000) / executes,
    });
    return { base: side(base), head: side(head) };
  } finally {
    await stopSide(base);
    await stopSide(head);
  }
}

const baseDir = baseCheckout(BASE_COMMIT);
const KINDS = [
  ['p50', 'sequential p50', (b, h) => h.p50 / b.p50, (x) => `${x.p50.toFixed(3)} ms`, '(goal: <= 5%)'],
  ['p99', 'sequential p99', (b, h) => h.p99 / b.p99, (x) => `${x.p99.toFixed(3)} ms`, "(informative: the tail is the machine's)"],
  ['tput', '16 clients throughput', (b, h) => b.tput / h.tput, (x) => `${x.tput.toFixed(0)} /s`, '(goal: <= 5%)'],
  ['cpu', 'gate CPU per execute', (b, h) => h.cpu / b.cpu, (x) => `${x.cpu.toFixed(3)} ms`, '(all its threads: the steadiest figure)'],
];
const costs = Object.fromEntries(KINDS.map(([k]) => [k, []]));
console.log(`bench-gate-compare: before the tree (${git('rev-parse', '--short', BASE_COMMIT)}, ${baseDir}) against this checkout (${git('rev-parse', '--short', 'HEAD')}), side by side`);
console.log(`per round: ${WARMUP} warm-up and ${N} timed sequential executes on each, in pairs; ${BURSTS} bursts of ${BURST} executes from ${CLIENTS} clients on each, in turn`);
for (let i = 0; i < ROUNDS; i++) {
  const r = await round(baseDir);
  const parts = KINDS.map(([k, name, worse, show]) => {
    const w = worse(r.base, r.head);
    costs[k].push(w);
    return `${name} ${show(r.base)} -> ${show(r.head)} (${cost(w)})`;
  });
  console.log(`round ${i + 1}: ${parts.join('; ')}`);
}
console.log(`\nthis checkout against the commit before the tree (the evidence and every change since), median of ${ROUNDS} rounds; positive: this checkout is slower:`);
for (const [k, name, , , note] of KINDS) {
  const m = median(costs[k]);
  const judged = note.startsWith('(goal') ? ` ${(m - 1) * 100 <= GOAL ? 'met' : 'NOT met'}` : '';
  console.log(`  ${name.padEnd(24)} ${cost(m).padStart(7)}   ${note}${judged}`);
}
