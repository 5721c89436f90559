// Runs `latchgate sandbox` for the isolation tests, as root and as an
// unprivileged user that this setup creates (useradd), so every escape test
// is tried from both sides.
import { spawn, execFileSync } from 'node:child_process';
import { chownSync, cpSync, mkdtempSync, mkdirSync, chmodSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const TEST_USER = 'lgtest';
const isRoot = process.getuid() === 0;

let userInfo;
/** The unprivileged test user: created once when running as root, else ourselves. */
export function testUser() {
  if (userInfo) return userInfo;
  if (!isRoot) {
    userInfo = { name: os.userInfo().username, uid: process.getuid(), gid: process.getgid(), self: true };
    return userInfo;
  }
  const id = (flag) => {
    try {
      return Number(execFileSync('id', [flag, TEST_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    } catch {
      return undefined;
    }
  };
  if (id('-u') === undefined) {
    execFileSync('useradd', ['--system', '--no-create-home', '--home-dir', `/home/${TEST_USER}`, '--shell', '/bin/sh', TEST_USER]);
  }
  userInfo = { name: TEST_USER, uid: id('-u'), gid: id('-g'), self: false };
  return userInfo;
}

/**
 * Modes a sandbox test runs in. 'root': the launcher runs as root (the agent
 * becomes the workspace owner, the test user). 'user': the launcher itself
 * runs as the unprivileged test user.
 */
export const MODES = ['root', 'user'];
export function skipReason(mode) {
  if (mode === 'root' && !isRoot) return 'needs root: run the suite as root to cover the root launcher';
  return undefined;
}

let cliForUser;
/** A copy of the built CLI the test user can read, when the checkout is not readable to them. */
function cliPath(mode) {
  const own = path.join(ROOT, 'dist', 'cli', 'main.js');
  if (mode === 'root' || !isRoot) return own;
  if (cliForUser) return cliForUser;
  const u = testUser();
  try {
    execFileSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(path.join(ROOT, 'build/Release/latchgate.node'))})`], { uid: u.uid, gid: u.gid, stdio: 'ignore' });
    execFileSync('test', ['-r', own], { uid: u.uid, gid: u.gid });
    cliForUser = own;
  } catch {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-cli-'));
    chmodSync(dir, 0o755);
    for (const p of ['package.json', 'dist', 'build/Release/latchgate.node', 'node_modules', 'definitions', 'policies', 'providers/build']) {
      cpSync(path.join(ROOT, p), path.join(dir, p), { recursive: true });
    }
    execFileSync('chmod', ['-R', 'a+rX', dir]);
    cliForUser = path.join(dir, 'dist', 'cli', 'main.js');
  }
  return cliForUser;
}

/** dist/ of the build the given mode's launcher runs (a readable copy for the test user). */
export function distDir(mode) {
  return path.dirname(path.dirname(cliPath(mode)));
}

/**
 * Spawns node with argv as the launcher of the given mode (root, or the test
 * user) and collects { code, signal, stdout, stderr }.
 */
function launch(mode, argv, { cwd, env, input, timeoutMs = 30000, onSpawn }) {
  const u = testUser();
  const opts = { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] };
  if (mode === 'user' && isRoot) Object.assign(opts, { uid: u.uid, gid: u.gid });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, opts);
    onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out after ${timeoutMs} ms: ${argv.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** Runs a Node script (fixture) as the launcher of the given mode. */
export function runNode(mode, args, { env = {}, timeoutMs } = {}) {
  return launch(mode, args, { env: { PATH: '/usr/bin:/bin', ...env }, timeoutMs });
}

const workspaces = [];
/** A fresh workspace owned by the test user (the agent's uid in both modes). */
export function makeWorkspace(prefix = 'ws') {
  const dir = mkdtempSync(path.join(os.tmpdir(), `latchgate-${prefix}-`));
  const u = testUser();
  if (isRoot) chownSync(dir, u.uid, u.gid);
  chmodSync(dir, 0o755);
  workspaces.push(dir);
  return dir;
}

/** Creates a file or directory in a workspace as its owner would. */
export function own(p) {
  const u = testUser();
  if (isRoot) execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, p]);
}

export function cleanupWorkspaces() {
  // A bind mount first: removing it while mounted would remove what it shows.
  const stuck = binds.splice(0).filter((d) => {
    try {
      execFileSync('umount', [d]);
      return false;
    } catch {
      return true;
    }
  });
  for (const d of workspaces.splice(0)) if (!stuck.includes(d)) rmSync(d, { recursive: true, force: true });
}

const binds = [];
/** A directory (a new one, or alias) showing dir through a bind mount (needs root); cleanupWorkspaces unmounts it. */
export function bindAlias(dir, alias = makeWorkspace('bind')) {
  execFileSync('mount', ['--bind', dir, alias]);
  binds.unshift(alias); // unmounted before any it lies in
  return alias;
}

/**
 * Runs `latchgate sandbox [args] -- cmd...` and collects its output.
 * Resolves { code, signal, stdout, stderr, json } (json: the --json summary if asked).
 */
export async function runBox(mode, { args = [], cmd = [], workspace, env = {}, input, timeoutMs, onSpawn } = {}) {
  const fullEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', ...env };
  if (mode === 'user' && isRoot) fullEnv.HOME = `/home/${testUser().name}`;
  const argv = [cliPath(mode), 'sandbox', ...(workspace ? ['--workspace', workspace] : []), ...args, ...(cmd.length ? ['--', ...cmd] : [])];
  const r = await launch(mode, argv, { cwd: workspace ?? os.tmpdir(), env: fullEnv, input, timeoutMs, onSpawn });
  const last = r.stderr.trim().split('\n').pop();
  const json = args.includes('--json') && last?.startsWith('{') ? JSON.parse(last) : undefined;
  return { ...r, json };
}

/** Shell snippet runner: `sh -c script` in the box. */
export function sh(mode, script, opts = {}) {
  return runBox(mode, { ...opts, cmd: ['/bin/sh', '-c', script] });
}

export function ensureDir(p) {
  if (!existsSync(p)) mkdirSync(p, { recursive: true });
}
