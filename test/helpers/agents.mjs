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

/**
 * npm install of pkg@version into <tmpdir>/latchgate-agents/<name>-<version>
 * (once; an install another run made meanwhile is used), made readable to
 * everyone. Returns the .bin directory; throws with npm's error.
 */
export function installAgent({ name, pkg, version, bin }) {
  const dir = path.join(os.tmpdir(), 'latchgate-agents', `${name}-${version}`);
  const binDir = path.join(dir, 'node_modules', '.bin');
  const works = () => {
    const r = spawnSync(path.join(binDir, bin), ['--version'], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return r.status === 0 && r.stdout.includes(version);
  };
  if (!(existsSync(path.join(binDir, bin)) && works())) {
    mkdirSync(path.dirname(dir), { recursive: true });
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    const r = spawnSync('npm', ['install', '--prefix', tmp, '--no-audit', '--no-fund', `${pkg}@${version}`], { encoding: 'utf8', timeout: 15 * 60_000 });
    if (r.status !== 0 || !existsSync(path.join(tmp, 'node_modules', '.bin', bin))) {
      rmSync(tmp, { recursive: true, force: true });
      throw new Error(`npm install ${pkg}@${version} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr?.slice(-2000)}`);
    }
    rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(tmp, dir);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(path.join(binDir, bin))) throw e;
    }
  }
  // The test user (the agent in both modes) must read and run the install.
  chmodSync(path.dirname(dir), 0o755);
  spawnSync('chmod', ['-R', 'a+rX', dir]);
  if (!works()) throw new Error(`${bin} --version in ${binDir} does not print ${version}`);
  return binDir;
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
