#!/usr/bin/env node
// Runs every test/**/*.test.mjs with node:test, but test/install/ (npm
// installs, minutes: `make test-install`) unless named. Three files at a time
// on 2-core CI: the box and agent tests spend seconds waiting (for a daemon
// not to write, an agent's turn, a timeout to pass), and a third file keeps
// both cores busy meanwhile (measured on the whole suite: 1,057 s and 1.92
// cores busy, against 1,099 s with two at a time in a run that left four
// agent tests out).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { statFields, watchTestFiles } from './test-watchdog.mjs';

function find(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return n === 'fixtures' || p === join('test', 'install') ? [] : find(p);
    return n.endsWith('.test.mjs') ? [p] : [];
  });
}

const files = (process.argv.length > 2 ? process.argv.slice(2) : find('test')).sort();
// TAP on stdout (what CI reads), and after it, on stderr, where the time went (scripts/test-times-reporter.mjs).
const reporters = ['--test-reporter=tap', '--test-reporter-destination=stdout', `--test-reporter=${fileURLToPath(new URL('./test-times-reporter.mjs', import.meta.url))}`, '--test-reporter-destination=stderr'];
function seconds(name, fallback) {
  const v = Number(process.env[name] ?? fallback);
  if (v > 0) return v;
  process.stderr.write(`run-tests: ${name}: expected a number of seconds above 0, got ${JSON.stringify(process.env[name])}\n`);
  process.exit(2);
}
// No file takes more than ~150 s on this suite's 2-core CI; one over the limit is stuck (scripts/test-watchdog.mjs).
const limitSeconds = seconds('LATCHGATE_TEST_FILE_LIMIT_SECONDS', 600);
// The whole run (~15 min): past this, the runner itself is stuck (every file ends within its own limit).
const runLimitSeconds = seconds('LATCHGATE_TEST_RUN_LIMIT_SECONDS', 3000);
const reportDir = mkdtempSync(join(tmpdir(), 'latchgate-test-reports-'));
const start = performance.now();
const cpuFile = join(reportDir, 'cpu.tsv');
const probe = new URL('./test-cpu-probe.mjs', import.meta.url);
probe.searchParams.set('out', cpuFile);
const child = spawn(process.execPath, [`--import=${probe.href}`, '--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${reportDir}`, '--test', '--test-concurrency=3', ...reporters, ...files], { stdio: 'inherit' });
const watchdog = watchTestFiles({ runner: child.pid, limitSeconds, reportDir });
// Told to stop (CI's own timeout, ^C), or past the run's limit: first say which files were still running, and on what.
async function stop(sig) {
  await watchdog.killAll();
  child.kill(sig);
  setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
}
for (const sig of ['SIGTERM', 'SIGINT']) process.once(sig, () => stop(sig));
let overRun = false;
const runTimer = setTimeout(() => {
  overRun = true;
  process.stderr.write(`\nrun-tests: the run has gone on for ${runLimitSeconds} s (LATCHGATE_TEST_RUN_LIMIT_SECONDS): it is stopped, and fails\n`);
  void stop('SIGTERM');
}, runLimitSeconds * 1000);
const status = await new Promise((res) => child.once('exit', (code, signal) => res(code ?? 128 + (constants.signals[signal] ?? 0))));
clearTimeout(runTimer);
watchdog.stop();
const cpuByFile = (() => {
  try {
    return readFileSync(cpuFile, 'utf8').trim().split('\n').map((l) => l.split('\t')).map(([s, f]) => [Number(s), f.replace(`${process.cwd()}/`, '')]);
  } catch {
    return [];
  }
})().sort((a, b) => b[0] - a[0]);
rmSync(reportDir, { recursive: true, force: true });
// The CPU the run used (every process it waited for: /proc/self/stat's cutime and cstime, in clock ticks of
// 1/100 s on Linux): on a shared machine the wall time swings with other load, the CPU much less.
const [cutime, cstime] = statFields('self').slice(13, 15).map((x) => Number(x) / 100);
const wall = (performance.now() - start) / 1000;
process.stderr.write(`test run: ${wall.toFixed(0)} s wall, ${(cutime + cstime).toFixed(1)} s of CPU (user ${cutime.toFixed(1)}, system ${cstime.toFixed(1)}), ${((cutime + cstime) / wall).toFixed(2)} cores busy on average\n`);
if (cpuByFile.length) {
  const sum = cpuByFile.reduce((a, [s]) => a + s, 0);
  process.stderr.write(`test files, the ${Math.min(20, cpuByFile.length)} that used most CPU of ${cpuByFile.length} (each file's process and the children it waited for; ${sum.toFixed(0)} s in all):\n`);
  for (const [s, f] of cpuByFile.slice(0, 20)) process.stderr.write(`${s.toFixed(1).padStart(8)} s  ${f}\n`);
}
if (watchdog.killed.length) process.stderr.write(`run-tests: killed: ${watchdog.killed.join(', ')} (why, and what each waited on, is above)\n`);
process.exit((watchdog.killed.length || overRun) && status === 0 ? 1 : status);
