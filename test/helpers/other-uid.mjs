// Callers from another local uid, for the gate's per-peer tests: a system
// user this setup creates (useradd, as root), and test/helpers scripts run
// as that user in a child process that prints one JSON line.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const NEEDS_ROOT = process.getuid() !== 0 ? 'needs root: creates a system user and connects as its uid' : undefined;

function ids(name) {
  try {
    const id = (flag) => Number(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { name, uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
}

/** The system user `name`, created when missing (test files run in parallel: another may create it first). */
export function systemUser(name) {
  const have = ids(name);
  if (have) return have;
  try {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name], { stdio: 'ignore' });
  } catch (e) {
    if (!ids(name)) throw e;
  }
  return ids(name);
}

/** Lets other uids reach the gate's client socket (its directory is the test's mkdtemp, 0700). */
export function openSocketDir(socket) {
  chmodSync(path.dirname(socket), 0o755);
}

/**
 * Runs test/helpers/<script> with `args` as `user`; resolves the JSON of its
 * last stdout line (rejects, with its stderr, when it fails).
 */
export function runAs(user, script, args) {
  const file = fileURLToPath(new URL(script, import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args.map(String)], { uid: user.uid, gid: user.gid, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.trim().split('\n').at(-1);
      if (code !== 0 || !line) return reject(new Error(`${script} as uid ${user.uid} exited ${code}: ${err}`));
      resolve(JSON.parse(line));
    });
  });
}
