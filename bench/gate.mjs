#!/usr/bin/env node
// make bench-gate: latency of POST /v1/actions/{id}/execute for a low-risk
// action with a no-op provider, each answer after a durable receipt, over the
// Unix socket; sequential and with 16 concurrent clients; and the policy
// decision alone. Prints the goals next to the numbers, and beside them, as
// the peer measured in the same run, this machine's floor for one execute:
// two fdatasyncs (the intent before dispatch, the receipt before the answer)
// and one bare node:http round trip over a Unix socket. The goals are judged
// on a warmed-up gate (V8 and the Wasm engine still optimise during the first
// executes); those first executes after start are shown apart.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDpopKey, makeProof } from '../dist/gate/auth/client.js';
import { CedarEngine } from '../dist/policy/cedar.js';
import { SyncProbe } from './sync-probe.mjs';

const N = Number(process.env.BENCH_GATE_N ?? 600);
const WARMUP = Number(process.env.BENCH_GATE_WARMUP ?? 1000);
const BASE = 'http://latchgate.local';
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function req(sock, method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const r = http.request({ socketPath: sock, method, path: p, agent, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve({ status: res.statusCode, text: t }));
    });
    r.on('error', reject);
    r.end(JSON.stringify(body));
  });
}

const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const fmt = (x) => `${x.toFixed(3)} ms`;

/**
 * This machine's floor for one execute, probed between blocks of executes so
 * that both see the same load: two fdatasyncs (bench/sync-probe.mjs) and one
 * bare node:http POST round trip over a Unix socket (a child process
 * answers). Each sample is one such triple, summed.
 */
class Floor {
  fs = [];
  rtt = [];
  #probe;
  #child;
  #sock;

  constructor(dir) {
    this.#probe = new SyncProbe(dir);
    this.#sock = path.join(dir, 'echo.sock');
    this.#child = spawn(process.execPath, ['-e', `require('node:http').createServer((q, r) => { q.resume(); q.on('end', () => { r.setHeader('content-type', 'application/json'); r.end('{"ok":true}'); }); }).listen(${JSON.stringify(this.#sock)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  }

  async start() {
    await new Promise((resolve) => this.#child.stdout.once('data', resolve));
    for (let i = 0; i < 100; i++) await req(this.#sock, 'POST', '/x', { n: 1 }); // warm-up
  }

  async probe(n) {
    for (let i = 0; i < n; i++) {
      this.fs.push(await this.#probe.once(), await this.#probe.once());
      const t0 = performance.now();
      await req(this.#sock, 'POST', '/x', { n: 1 });
      this.rtt.push(performance.now() - t0);
    }
  }

  /** One floor per sample: its two fdatasyncs plus its round trip. */
  samples() {
    return this.rtt.map((r, i) => this.fs[2 * i] + this.fs[2 * i + 1] + r);
  }

  close() {
    this.#probe.close();
    this.#child.kill();
  }
}

const stateDir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-bench-gate-'));
const server = spawn(process.execPath, [...(process.env.BENCH_FLAGS ? process.env.BENCH_FLAGS.split(' ') : []), ...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []), fileURLToPath(new URL('./gate-server.mjs', import.meta.url)), stateDir], { stdio: ['ignore', 'pipe', 'inherit'] });
const sock = await new Promise((resolve) => server.stdout.once('data', (d) => resolve(d.toString().trim())));

try {
  const key = await createDpopKey();
  const lease = JSON.parse((await req(sock, 'POST', '/v1/leases', { scopes: ['tools:call'], dpop_jwk: key.jwk })).text);
  const p = '/v1/actions/t_noop/execute';
  // Proofs are made before timing: the client's signing is not the gate's latency.
  const proofs = await Promise.all(Array.from({ length: 2 * N + WARMUP + 100 }, () => makeProof({ key, method: 'POST', url: BASE + p, leaseJwt: lease.lease_jwt })));
  let next = 0;
  const one = async () => {
    const t0 = performance.now();
    const r = await req(sock, 'POST', p, { n: 1 }, { authorization: `DPoP ${lease.lease_jwt}`, dpop: proofs[next++] });
    const ms = performance.now() - t0;
    if (r.status !== 200) throw new Error(`execute failed: ${r.status} ${r.text}`);
    return ms;
  };
  // The first executes after start, timed apart: what a fresh gate gives.
  const cold = [];
  for (let i = 0; i < WARMUP; i++) cold.push(await one());

  const floor = new Floor(stateDir);
  await floor.start();
  const seq = [];
  for (let i = 0; i < N; i += 50) {
    for (let j = 0; j < 50 && i + j < N; j++) seq.push(await one());
    await floor.probe(25);
  }
  floor.close();

  const conc = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (conc.length < N) conc.push(await one());
  }));
  const secs = (performance.now() - t0) / 1000;

  const engine = CedarEngine.load();
  const input = { principal: 'bench', session_id: 's', scopes: ['tools:call'], required_scopes: [], action_id: 't_noop', action_version: '1.0.0', action_risk_level: 'low', action_trust_verdict: 'digest_ok', action_category: 'other', request_hash: 'sha256:' + '0'.repeat(64), requested_sinks: [], requested_secrets: [], egress_profile: 'none', budgets_before: { calls_remaining: 100 }, unresolved_domains: [], unresolved_paths: [] };
  const data = { acl: { bench: { allowed_actions: ['t_noop'], allowed_sinks: [] } }, allowlist: {} };
  // Each decision with a budget left of its own, so Cedar decides every one (CedarEngine remembers the decision of a request it saw).
  const fresh = (i) => ({ ...input, budgets_before: { calls_remaining: 1_000_000 + i } });
  for (let i = 0; i < 500; i++) await engine.decide(fresh(-1 - i), data);
  const dec = [];
  for (let i = 0; i < 5000; i++) {
    const x = fresh(i);
    const a = performance.now();
    await engine.decide(x, data);
    dec.push(performance.now() - a);
  }
  if (engine.counts.remembered !== 0) throw new Error(`the policy bench decided ${engine.counts.remembered} requests from memory, not by Cedar`);
  const remembered = [];
  for (let i = 0; i < 5000; i++) {
    const a = performance.now();
    await engine.decide(input, data);
    remembered.push(performance.now() - a);
  }

  const { fs, rtt } = floor;
  const fl = floor.samples();
  const floor50 = pct(fl, 50);
  const floor99 = pct(fl, 99);

  const row = (name, v, goal, ok) => console.log(`  ${name.padEnd(34)} ${v.padStart(14)}   goal ${goal} ${ok ? 'met' : 'NOT met'}`);
  console.log(`execute, no-op provider, durable receipt, Unix socket`);
  const coldN = Math.min(N, cold.length);
  if (coldN > 0) console.log(`  first ${coldN} after start: p50 ${fmt(pct(cold.slice(0, coldN), 50))}, p99 ${fmt(pct(cold.slice(0, coldN), 99))} (shown apart: in a fresh gate V8 and the Wasm engine are still optimising)`);
  console.log(`  after ${WARMUP} executes (${N} each):`);
  row('sequential p50', fmt(pct(seq, 50)), '<= 2 ms', pct(seq, 50) <= 2);
  row('sequential p99', fmt(pct(seq, 99)), '<= 8 ms', pct(seq, 99) <= 8);
  console.log(`  peer, same run (probed between blocks of executes): floor = 2 fdatasync + 1 bare HTTP round trip = ${fmt(floor50)} p50, ${fmt(floor99)} p99`);
  console.log(`    (fdatasync ${fmt(pct(fs, 50))} p50, ${fmt(pct(fs, 99))} p99; HTTP ${fmt(pct(rtt, 50))} p50, ${fmt(pct(rtt, 99))} p99)`);
  console.log(`    execute / floor: ${(pct(seq, 50) / floor50).toFixed(2)}x at p50, ${(pct(seq, 99) / floor99).toFixed(2)}x at p99`);
  row('16 clients p50', fmt(pct(conc, 50)), '(informative)', true);
  row('16 clients p99', fmt(pct(conc, 99)), '(informative)', true);
  row('16 clients throughput', `${(conc.length / secs).toFixed(0)} /s`, '>= 500/s', conc.length / secs >= 500);
  console.log('policy decision alone (Cedar, 5000 decisions, each request new)');
  row('p50', `${(pct(dec, 50) * 1000).toFixed(0)} µs`, '(informative)', true);
  row('p99', `${(pct(dec, 99) * 1000).toFixed(0)} µs`, '<= 200 µs', pct(dec, 99) <= 0.2);
  console.log('  the same request again (the decision remembered, as for an agent repeating a call), 5000 decisions:');
  row('p50', `${(pct(remembered, 50) * 1000).toFixed(0)} µs`, '(informative)', true);
} finally {
  server.kill('SIGTERM');
  agent.destroy();
  await new Promise((r) => server.once('exit', r));
  rmSync(stateDir, { recursive: true, force: true });
}
