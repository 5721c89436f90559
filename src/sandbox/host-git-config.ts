// The user's global git configuration as host git itself reads it for a
// commit in the workspace: `git config --list --includes --show-scope` run
// there, of which the global scope is kept (~/.config/git/config and
// ~/.gitconfig both, which `git config --global` would not both read), so
// include.path and every includeIf condition (gitdir:, onbranch:, hasconfig:)
// apply as they would. It runs as the agent's user, with that user's HOME
// (and, for a launcher that is that user, its XDG_CONFIG_HOME and
// GIT_CONFIG_GLOBAL). Listing the config runs no hook, alias, helper or
// filter; a file that blocks the read (a FIFO) only costs the timeout.
// A root launch on a root-owned workspace (the agent is nobody, writing as
// root through the idmap) carries root's own identity: read as root with the
// launcher's HOME, outside the workspace, so no config the agent wrote there
// is read with root's rights (includeIf gitdir: does not apply then).
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { BOX_PATH } from './env.js';
import type { Identity } from './identity.js';

export interface GitListEntry {
  /** As git lists it: section and key lowercased, a subsection as written ("includeif.gitdir:~/w/.path"). */
  key: string;
  /** null for a bare key (git's boolean true). */
  value: string | null;
}

export type HostGitRead =
  | { ok: true; entries: GitListEntry[]; from: string; notUtf8: string[] }
  | { ok: false; problem: string; from: string };

const TIMEOUT_MS = 5000;
const MAX_BYTES = 1 << 20;

/** The git the box runs: the first on the box's PATH (the host's system trees, mounted read-only). */
export function findGit(): string | undefined {
  for (const dir of BOX_PATH.split(':')) {
    const p = join(dir, 'git');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/**
 * Splits `git config --null --list` output: records end in NUL, a key and its
 * value are split by the first newline. With --show-scope (scope given) each
 * entry is preceded by a record naming its scope; only entries of that scope are kept.
 */
export function parseGitList(out: Buffer, scope?: string): { entries: GitListEntry[]; notUtf8: string[] } {
  const entries: GitListEntry[] = [];
  const notUtf8: string[] = [];
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  const next = () => {
    let end = out.indexOf(0, start);
    if (end < 0) end = out.length;
    const rec = out.subarray(start, end);
    start = end + 1;
    return rec;
  };
  while (start < out.length) {
    if (scope !== undefined && next().toString('latin1') !== scope) {
      next();
      continue;
    }
    const rec = next();
    const nl = rec.indexOf(0x0a);
    const keyBytes = nl < 0 ? rec : rec.subarray(0, nl);
    try {
      entries.push({ key: utf8.decode(keyBytes), value: nl < 0 ? null : utf8.decode(rec.subarray(nl + 1)) });
    } catch {
      notUtf8.push(keyBytes.toString('utf8'));
    }
  }
  return { entries, notUtf8 };
}

/** The environment git gets: the user's own config locations only (no system config), messages in English. */
function gitEnv(id: Identity, hostEnv: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = { PATH: BOX_PATH, LC_ALL: 'C', GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' };
  if (id.hostUid === 0 && id.source !== 'root-workspace') {
    // Root's environment is not the agent's user's: that user's home from passwd, as its own git would find it.
    env.HOME = id.home;
    return env;
  }
  // The launcher's own config: its HOME (root's for a root-owned workspace, whose agent acts for root).
  env.HOME = hostEnv.HOME || (id.source === 'root-workspace' ? userInfo().homedir : id.home);
  for (const k of ['XDG_CONFIG_HOME', 'GIT_CONFIG_GLOBAL'] as const) if (hostEnv[k]) env[k] = hostEnv[k];
  return env;
}

/**
 * Reads the effective global config; null when the host has no git (then
 * the box has none either).
 */
export function readHostGitConfig(id: Identity, workspace: string, hostEnv: NodeJS.ProcessEnv, git = findGit()): HostGitRead | null {
  if (!git) return null;
  const forRoot = id.source === 'root-workspace';
  const cwd = forRoot ? '/' : workspace;
  const from = `${git} config --list --includes --show-scope (its global scope), as ${forRoot ? 'root (uid 0)' : `${id.user} (uid ${id.uid})`} in ${cwd}`;
  const r = spawnSync(git, ['config', '--list', '--includes', '--show-scope', '--null'], {
    cwd,
    env: gitEnv(id, hostEnv),
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: TIMEOUT_MS,
    killSignal: 'SIGKILL',
    maxBuffer: MAX_BYTES,
    ...(id.hostUid === 0 && !forRoot ? { uid: id.uid, gid: id.gid } : {}),
  });
  const stderr = r.stderr?.toString('utf8').trim().split('\n')[0] ?? '';
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    const problem = code === 'ETIMEDOUT' ? `host git did not answer within ${TIMEOUT_MS / 1000} s` : code === 'ENOBUFS' ? `its output is larger than ${MAX_BYTES} bytes` : r.error.message;
    return { ok: false, problem, from };
  }
  if (r.status !== 0) return { ok: false, problem: stderr || `host git exited with ${r.status ?? r.signal}`, from };
  return { ok: true, from, ...parseGitList(r.stdout, 'global') };
}
