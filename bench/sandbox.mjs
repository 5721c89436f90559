#!/usr/bin/env node
// make bench-sandbox: median wall time of `latchgate sandbox -- /bin/true`
// against bubblewrap and `node -e 0`, measured in the same run, plus the part
// that builds the box (clone() to execve()) reported by the launcher itself.
import { spawnSync, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

function ensureBwrap() {
  if (spawnSync('sh', ['-c', 'command -v bwrap']).status === 0) return;
  if (process.getuid() !== 0) {
    console.error('bench: bubblewrap is missing; install it with: sudo apt-get install -y bubblewrap');
    process.exit(1);
  }
  console.error('bench: installing bubblewrap from Debian...');
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', 'bubblewrap'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function time(cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { ms, stderr: r.stderr.toString() };
}

ensureBwrap();
const ws = mkdtempSync(join(tmpdir(), 'latchgate-bench-'));
chmodSync(ws, 0o755); // run as root, the agent is nobody: let it in
const bwrapArgs = ['--unshare-all', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib64', '/lib64', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/bin', '/bin', '--proc', '/proc', '--dev', '/dev', '--', '/bin/true'];
const samples = { latchgate: [], bwrap: [], node: [], boxSetup: [] };
// Interleaved, so machine noise hits every contender alike.
for (let i = 0; i < RUNS + 3; i++) {
  const lg = time(process.execPath, [cli, 'sandbox', '--workspace', ws, '--json', '--', '/bin/true'], { cwd: ws });
  const bw = time('bwrap', bwrapArgs);
  const nd = time(process.execPath, ['-e', '0']);
  if (i < 3) continue; // warm-up
  samples.latchgate.push(lg.ms);
  samples.bwrap.push(bw.ms);
  samples.node.push(nd.ms);
  samples.boxSetup.push(JSON.parse(lg.stderr.trim().split('\n').pop()).boxSetupMs);
}
rmSync(ws, { recursive: true, force: true });

const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
const f = (x) => x.toFixed(2).padStart(8);
console.log(`runs: ${RUNS} each (median wall time, ms)`);
console.log(`  latchgate sandbox -- /bin/true  ${f(m.latchgate)}`);
console.log(`  bwrap --unshare-all ... true    ${f(m.bwrap)}`);
console.log(`  node -e 0                       ${f(m.node)}`);
console.log(`  box build (clone -> execve)     ${f(m.boxSetup)}`);
console.log(`ratios:`);
console.log(`  latchgate / node -e 0           ${f(m.latchgate / m.node)}   goal <= 2.5 ${m.latchgate / m.node <= 2.5 ? 'met' : 'NOT met'}`);
console.log(`  latchgate / bwrap               ${f(m.latchgate / m.bwrap)}`);
console.log(`  box build                       ${f(m.boxSetup)} ms goal <= 10 ms ${m.boxSetup <= 10 ? 'met' : 'NOT met'}`);
