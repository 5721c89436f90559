#!/usr/bin/env node
// make bench-gate-compare: what the evidence (the Merkle tree, signed
// checkpoints, receipt format 2, the recorded policy input) costs an execute.
// Runs bench/gate.mjs of this checkout and of the commit before the tree
// (BASE_COMMIT, in a worktree of its own, built once) in alternating rounds of
// one run, so both see the same machine load, and prints the medians and
// their ratio. BENCH_COMPARE_ROUNDS rounds (default 5); BENCH_BASE_DIR: an
// already built checkout to compare with instead.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BASE_COMMIT = '6f27a58^';
const ROUNDS = Number(process.env.BENCH_COMPARE_ROUNDS ?? 5);
const here = fileURLToPath(new URL('..', import.meta.url));
const git = (...args) => execFileSync('git', ['-C', here, ...args], { encoding: 'utf8' }).trim();

function baseCheckout() {
  if (process.env.BENCH_BASE_DIR) return process.env.BENCH_BASE_DIR;
  const commit = git('rev-parse', '--short', BASE_COMMIT);
  const dir = path.join(os.tmpdir(), `latchgate-bench-base-${commit}`);
  if (!existsSync(path.join(dir, 'dist', 'gate', 'factory.js'))) {
    if (!existsSync(dir)) git('worktree', 'add', '--detach', dir, commit);
    if (!existsSync(path.join(dir, 'node_modules'))) symlinkSync(path.join(here, 'node_modules'), path.join(dir, 'node_modules'));
    for (const step of [['scripts/build-addon.mjs'], ['scripts/build-providers.mjs'], [path.join(here, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']]) {
      const r = spawnSync(process.execPath, step, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
      if (r.status !== 0) throw new Error(`building ${dir} (${step.join(' ')}) failed: exit ${r.status}`);
    }
  }
  return dir;
}

/** CPU seconds of the children waited for so far (the bench and the gate it ran): /proc/self/stat cutime + cstime. */
function childrenCpu() {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100; // fields 16 and 17 of proc(5), in clock ticks (USER_HZ = 100)
}

/**
 * One bench/gate.mjs run in dir: its sequential p50 and p99 (ms), its
 * 16-client throughput (/s), and the CPU time of the run (the gate and the
 * bench's own client, the same work on both sides): less moved by the
 * machine's other load than the latencies are.
 */
function run(dir) {
  const cpu0 = childrenCpu();
  const r = spawnSync(process.execPath, [path.join(dir, 'bench', 'gate.mjs')], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`bench/gate.mjs in ${dir} failed: exit ${r.status}\n${r.stderr}`);
  const num = (re) => {
    const m = r.stdout.match(re);
    if (!m) throw new Error(`no ${re} in the output of bench/gate.mjs in ${dir}:\n${r.stdout}`);
    return Number(m[1]);
  };
  return { p50: num(/sequential p50\s+([\d.]+) ms/), p99: num(/sequential p99\s+([\d.]+) ms/), tput: num(/16 clients throughput\s+([\d.]+) \/s/), cpu: childrenCpu() - cpu0 };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const base = baseCheckout();
const runs = { base: [], head: [] };
for (let i = 0; i < ROUNDS; i++) {
  for (const side of i % 2 ? ['head', 'base'] : ['base', 'head']) {
    const r = run(side === 'base' ? base : here);
    runs[side].push(r);
    console.log(`round ${i + 1} ${side.padEnd(4)}  sequential p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms  16 clients ${r.tput.toFixed(0)} /s  CPU ${r.cpu.toFixed(1)} s`);
  }
}
const m = (side, k) => median(runs[side].map((r) => r[k]));
console.log(`\nmedians of ${ROUNDS} rounds: before the tree (${git('rev-parse', '--short', BASE_COMMIT)}, ${base}) against this checkout (${git('rev-parse', '--short', 'HEAD')})`);
for (const [k, name, unit, worse] of [['p50', 'sequential p50', 'ms', (a, b) => a / b], ['p99', 'sequential p99', 'ms', (a, b) => a / b], ['tput', '16 clients throughput', '/s', (a, b) => b / a], ['cpu', 'CPU of a run', 's', (a, b) => a / b]]) {
  const b = m('base', k);
  const h = m('head', k);
  const digits = k === 'tput' ? 0 : k === 'cpu' ? 1 : 3;
  console.log(`  ${name.padEnd(22)} ${b.toFixed(digits).padStart(9)} -> ${h.toFixed(digits).padStart(9)} ${unit}   cost ${((worse(h, b) - 1) * 100).toFixed(1)}%${k === 'p99' ? ' (informative: the tail is the machine\'s)' : k === 'cpu' ? ' (the same work both sides: the steadiest figure)' : ' (goal: <= 5%)'}`);
}
