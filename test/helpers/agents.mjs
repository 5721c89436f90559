// What the end-to-end tests with real agents from npm share: the pinned
// install in a cache outside the repo (readable by the test user, who runs
// the agent in both modes), a latchgate.toml that pins the provider's host
// to a local fake and trusts its test CA, the CLI run as either launcher,
// and a search for the key in files.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { distDir, testUser } from './sandbox.mjs';

export const SYS_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const PLACEHOLDER = 'latchgate-placeholder';
const isRoot = process.getuid() === 0;

export function haveOpenssl() {
  return spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
}

/** The agents the end-to-end tests run, each pinned to the version its tests were written against. */
export const AGENTS = Object.freeze({
  'claude-code': { name: 'claude-code', pkg: '@anthropic-ai/claude-code', version: '2.1.197', bin: 'claude' },
  codex: { name: 'codex', pkg: '@openai/codex', version: '0.169.0', bin: 'codex' },
  opencode: { name: 'opencode', pkg: 'opencode-ai', version: '1.18.33', bin: 'opencode' },
});

/** Sleeps without an event loop: installAgent runs in before() hooks, synchronously. */
const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Takes the lock directory `lock` (mkdir is atomic) when it is free, or when
 * the process that held it died; true when taken.
 */
function tryLock(lock) {
  try {
    mkdirSync(lock);
    writeFileSync(path.join(lock, 'pid'), String(process.pid));
    return true;
  } catch (e) {
    if (e.code !== 'EEXIST') throw e;
  }
  let holder = NaN;
  try {
    holder = Number(readFileSync(path.join(lock, 'pid'), 'utf8'));
  } catch {
    // Made, its pid not written yet; or never, by a process that died in between.
    const made = statSync(lock, { throwIfNoEntry: false })?.mtimeMs;
    if (made !== undefined && Date.now() - made > 10_000) rmSync(lock, { recursive: true, force: true });
    return false;
  }
  try {
    process.kill(holder, 0);
  } catch (e) {
    if (e.code === 'ESRCH') rmSync(lock, { recursive: true, force: true });
  }
  return false;
}

const LOCK_WAIT_MS = 20 * 60_000;
const held = (lock) => new Error(`${lock} is still held after ${LOCK_WAIT_MS / 60_000} minutes`);

/**
 * Runs `f` holding `lock`: the test files run three at a time and several
 * install the same agent, so one installs and the others wait for it, and
 * none replaces an install another is running.
 */
function withLock(lock, f) {
  for (const until = Date.now() + LOCK_WAIT_MS; !tryLock(lock); sleepSync(250)) if (Date.now() > until) throw held(lock);
  try {
    return f();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Takes the lock on the test user's Claude Code state (~/.claude.json,
 * ~/.claude/ of /home/<test user>, the home of every box run in the user
 * mode) and resolves the function that releases it. The tests that check what
 * a box leaves there (test/e2e/claude-code.test.mjs,
 * test/sandbox/state-files.test.mjs) hold it, and so do the other files'
 * boxes of the claude-code profile, which write there. Waits without
 * blocking: a test's fake APIs run in its own process.
 */
export async function lockTestUserClaudeState() {
  const lock = path.join(os.tmpdir(), 'latchgate-test-user-claude-state.lock');
  for (const until = Date.now() + LOCK_WAIT_MS; !tryLock(lock); await new Promise((r) => setTimeout(r, 250))) if (Date.now() > until) throw held(lock);
  return () => rmSync(lock, { recursive: true, force: true });
}

/** Runs async `f` holding lockTestUserClaudeState's lock. */
export async function withTestUserClaudeState(f) {
  const release = await lockTestUserClaudeState();
  try {
    return await f();
  } finally {
    release();
  }
}

/**
 * npm install of an agent (a name of AGENTS, or { name, pkg, version, bin })
 * into <tmpdir>/latchgate-agents/<name>-<version>, once: an install another
 * test file made is used, and one under way is waited for. Made readable to
 * everyone. Returns the .bin directory; throws with npm's error, so that a
 * test that needs the agent fails rather than passing unrun.
 */
export function installAgent(agent) {
  const { name, pkg, version, bin } = typeof agent === 'string' ? AGENTS[agent] : agent;
  const dir = path.join(os.tmpdir(), 'latchgate-agents', `${name}-${version}`);
  const binDir = path.join(dir, 'node_modules', '.bin');
  const works = () => {
    const r = spawnSync(path.join(binDir, bin), ['--version'], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return r.status === 0 && r.stdout.includes(version);
  };
  mkdirSync(path.dirname(dir), { recursive: true });
  const installed = withLock(`${dir}.lock`, () => {
    if (existsSync(path.join(binDir, bin)) && works()) return false;
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    const r = spawnSync('npm', ['install', '--prefix', tmp, '--no-audit', '--no-fund', `${pkg}@${version}`], { encoding: 'utf8', timeout: 15 * 60_000 });
    if (r.status !== 0 || !existsSync(path.join(tmp, 'node_modules', '.bin', bin))) {
      rmSync(tmp, { recursive: true, force: true });
      throw new Error(`npm install ${pkg}@${version} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr?.slice(-2000)}`);
    }
    // The test user (the agent in both modes) must read and run the install.
    spawnSync('chmod', ['-R', 'a+rX', tmp]);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    return true;
  });
  chmodSync(path.dirname(dir), 0o755);
  if (installed && !works()) throw new Error(`${bin} --version in ${binDir} does not print ${version}`);
  return binDir;
}

/** Throws when the openssl CLI, which makes the tests' certificates, is missing (make setup installs it). */
export function needOpenssl() {
  if (!haveOpenssl()) throw new Error('openssl is missing: cannot make the test certificates (make setup installs it)');
}

/**
 * A latchgate.toml pinning each host to 127.0.0.1:port and trusting caFile,
 * with its own state, runtime and config directories, owned by the launcher
 * of the mode. The file is the user-level config of that XDG_CONFIG_HOME
 * (pins and CAs are grants: only the user's own config or a trusted one may
 * hold them). Returns { cfg, env }: env holds PATH (binDir first) and `env`.
 */
export function agentHome(mode, { prefix, caFile, pins, binDir, env = {}, dirs }) {
  const h = mkdtempSync(path.join(os.tmpdir(), `latchgate-e2e-${prefix}-`));
  dirs.push(h);
  const cfg = path.join(h, 'cfg', 'latchgate', 'latchgate.toml');
  mkdirSync(path.dirname(cfg), { recursive: true });
  writeFileSync(cfg, [
    '[sandbox.network]',
    `extra_ca_certs = [${JSON.stringify(caFile)}]`,
    '',
    '[sandbox.network.resolve]',
    ...Object.entries(pins).map(([host, port]) => `${JSON.stringify(host)} = "127.0.0.1:${port}"`),
    '',
  ].join('\n'));
  chmodSync(h, 0o755);
  if (mode === 'user' && isRoot) spawnSync('chown', ['-R', `${testUser().uid}:${testUser().gid}`, h]);
  return {
    cfg,
    env: {
      PATH: `${binDir}:${SYS_PATH}`,
      XDG_STATE_HOME: path.join(h, 'state'),
      XDG_RUNTIME_DIR: path.join(h, 'run'),
      XDG_CONFIG_HOME: path.join(h, 'cfg'),
      ...env,
    },
  };
}

/** `latchgate args...` as the launcher of the given mode (root, or the test user). */
export function cliAs(mode, args, env) {
  const opts = { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { PATH: SYS_PATH, ...env } };
  if (mode === 'user' && isRoot) Object.assign(opts, { uid: testUser().uid, gid: testUser().gid });
  return spawnSync(process.execPath, [path.join(distDir(mode), 'cli', 'main.js'), ...args], opts);
}

/** `latchgate audit --json --event-type type` as the mode's launcher: the events, parsed. */
export function auditEvents(mode, cfg, env, type, limit = 500) {
  const r = cliAs(mode, ['audit', '--config', cfg, '--json', '--event-type', type, '-l', String(limit)], env);
  if (r.status !== 0) throw new Error(`latchgate audit failed (${r.status}): ${r.stderr}`);
  return { events: JSON.parse(r.stdout), text: r.stdout };
}

/** Files under dir (bounded walk) whose contents hold s. */
export function filesHolding(dir, s, limit = 20000) {
  const hits = [];
  const walk = (d) => {
    let names;
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      if (limit-- <= 0) return;
      const p = path.join(d, n);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size < 50e6 && readFileSync(p).includes(s)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

/**
 * A shell script for inside the box that prints its environment, every
 * process's environ and how many files under HOME, the workspace and /tmp
 * hold the key (split in two, so the script's own command line never holds
 * it whole): "home-hits=N".
 */
export function keyProbe(key) {
  const half = Math.floor(key.length / 2);
  return `
echo '--- env'; env
echo '--- environ'; for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < "$f" 2>/dev/null; done
echo '--- grep'
a='${key.slice(0, half)}'; b='${key.slice(half)}'
echo "home-hits=$(grep -rlF -- "$a$b" "$HOME" "$PWD" /tmp 2>/dev/null | wc -l)"
echo "home=$HOME"
`;
}
