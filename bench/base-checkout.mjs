// What the side-by-side benchmarks (bench/gate-compare.mjs,
// bench/mcp-compare.mjs) share: a built checkout of an earlier commit to
// run beside this one, and a process's CPU time.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = fileURLToPath(new URL('..', import.meta.url));
/** git in this checkout; its output, trimmed. */
export const git = (...args) => execFileSync('git', ['-C', here, ...args], { encoding: 'utf8' }).trim();

/**
 * The directory of `commitish` checked out and built (addon, providers, dist)
 * in a worktree of its own under the temporary directory, built once and
 * kept for the next run; BENCH_BASE_DIR names an already built checkout
 * instead.
 */
export function baseCheckout(commitish) {
  if (process.env.BENCH_BASE_DIR) return process.env.BENCH_BASE_DIR;
  const commit = git('rev-parse', '--short', commitish);
  const dir = path.join(os.tmpdir(), `latchgate-bench-base-${commit}`);
  if (!existsSync(path.join(dir, 'dist', 'gate', 'factory.js'))) {
    if (!existsSync(dir)) git('worktree', 'add', '--detach', dir, commit);
    if (!existsSync(path.join(dir, 'node_modules'))) symlinkSync(path.join(here, 'node_modules'), path.join(dir, 'node_modules'));
    // As `npm run build` does: the generated validators and the precompiled providers too, or the base checks
    // the shipped schemas in a worker and compiles its providers at their first call, and reads slower than it is.
    const steps = [['scripts/build-addon.mjs'], ['scripts/build-providers.mjs'], [path.join(here, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], ['scripts/build-validators.mjs'], ['scripts/precompile-providers.mjs']];
    for (const step of steps.filter(([s]) => path.isAbsolute(s) || existsSync(path.join(dir, s)))) {
      const r = spawnSync(process.execPath, step, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
      if (r.status !== 0) throw new Error(`building ${dir} (${step.join(' ')}) failed: exit ${r.status}`);
    }
  }
  return dir;
}

/** CPU seconds of a process so far, all its threads: utime + stime of /proc/PID/stat (proc(5) fields 14 and 15, USER_HZ = 100). */
export function cpuOf(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
