// What the host-execution tests share: marker directories a planted command
// would write to, git run on the host as the workspace owner (the way the
// user runs it after the box), a repository with one commit, and a shell
// prelude whose `w LABEL FILE` tries to write FILE from inside the box.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { own, testUser } from './sandbox.mjs';

const isRoot = process.getuid() === 0;
export const HAS_GIT = fs.existsSync('/usr/bin/git');
export const GIT_ID = ['-c', 'user.name=latchgate-test', '-c', 'user.email=test@example.invalid'];
export const exists = (p) => fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined;

const cleanups = [];
/** Runs (and forgets) the cleanups registered so far, newest first. */
export function cleanupHostExec() {
  for (const f of cleanups.splice(0).reverse()) {
    try {
      f();
    } catch {
      // best effort
    }
  }
}
export const onCleanup = (f) => cleanups.push(f);

/** A directory for marker files the planted commands would create, writable by the test user, outside every box. */
export function markerDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'latchgate-pwned-'));
  fs.chmodSync(d, 0o777);
  onCleanup(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A command as the test user (the workspace owner) on the host, with no global git config. */
export function asUser(cmd, args, cwd, env = {}) {
  const u = testUser();
  const opts = { cwd, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: path.join(os.tmpdir(), 'latchgate-nohome'), GIT_CONFIG_NOSYSTEM: '1', LANG: 'C.UTF-8', ...env }, stdio: ['ignore', 'pipe', 'pipe'] };
  if (isRoot) Object.assign(opts, { uid: u.uid, gid: u.gid });
  return spawnSync(cmd, args, opts);
}

/** Host git as the test user, as the user would run it later. */
export const hostGit = (cwd, args, env) => asUser('git', args, cwd, env);

/** A repository with one commit, owned by the test user; returns a git runner that must succeed. */
export function repo(dir) {
  const g = (...a) => {
    const r = hostGit(dir, a);
    assert.equal(r.status, 0, `git ${a.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  g('-c', 'init.defaultBranch=main', 'init', '-q');
  fs.writeFileSync(path.join(dir, 'README.md'), 'readme\n');
  own(dir);
  g('add', 'README.md');
  g(...GIT_ID, 'commit', '-qm', 'initial');
  return g;
}

/** Shell helpers for the box: w LABEL FILE appends to FILE and prints `@@LABEL OK` or the error. */
export const PRELUDE = `
w() { if ( printf 'planted\\n' >> "$2" ) 2>/tmp/.e; then echo "@@$1 OK"; else echo "@@$1 $(tr '\\n' ' ' </tmp/.e)"; fi; }
`;

/** label -> 'OK' | 'EROFS' | the error text, from the `@@` lines of PRELUDE's w (and any other `@@label text` line). */
export const results = (stdout) => Object.fromEntries([...stdout.matchAll(/^@@(\S+) (.*)$/gm)].map((m) => [m[1], /Read-only file system/.test(m[2]) ? 'EROFS' : m[2].trim() === 'OK' ? 'OK' : m[2].trim()]));

/** A command planted in git config that would leave a marker: "touch <marks>/<name>; false". */
export const fsmon = (marks, name) => `"touch ${marks}/${name}; false"`;
