// After the box: what it left that host git would run. The writable trees
// are scanned again and compared with the launch snapshot (git-surface.ts):
// a git directory that was not there (a new repository, a bare one, a new
// worktree or submodule git directory), a `.git` file or symlink that was
// not there, a submodule config changed beyond core.worktree, new gitlinks
// in an index, a changed .gitmodules. (What was protected by a read-only
// mount cannot have been changed by the box; a change to it came from the
// host and is left alone.) By default each dangerous
// piece is moved aside (a git directory without HEAD is no repository to
// git, so nothing in it runs; its content stays for the user to inspect);
// with --trust-new-repos they are kept and only reported.
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parseGitConfig, readSmallFile } from './git-config.js';
import { gitlinksOf, looksLikeGitDir, pointerTarget, stamp, walkGitDirs, type GitSnapshot } from './git-surface.js';

export type GitFindingKind = 'new-git-dir' | 'new-pointer' | 'submodule-config-changed' | 'new-gitlinks' | 'gitmodules-changed' | 'unlisted';

export interface GitFinding {
  kind: GitFindingKind;
  /** The path the finding is about (a git directory, a pointer, a changed file, a work tree root). */
  path: string;
  /** For new-gitlinks: the gitlink paths, relative to the work tree. */
  gitlinks?: string[];
  /** disabled: the dangerous piece was moved aside; kept: --trust-new-repos; reported: nothing to move; failed: could not be moved. */
  action: 'disabled' | 'kept' | 'reported' | 'failed';
  /** What was moved where (absolute paths). */
  moved?: { from: string; to: string };
  /** One line for the user. */
  message: string;
}

export const DISABLED_SUFFIX = '.latchgate-disabled';

/** A free name next to path for the moved-aside piece. */
function asideName(path: string): string {
  for (let i = 0; ; i++) {
    const cand = `${path}${DISABLED_SUFFIX}${i === 0 ? '' : `-${i}`}`;
    if (!lstatSync(cand, { throwIfNoEntry: false })) return cand;
  }
}

/** Renames path aside; a directory the owner made unwritable is made writable for it first. */
function moveAside(path: string): { from: string; to: string } {
  const to = asideName(path);
  try {
    renameSync(path, to);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw e;
    const parent = dirname(path);
    chmodSync(parent, (lstatSync(parent).mode & 0o7777) | 0o300);
    renameSync(path, to);
  }
  return { from: path, to };
}

export interface GitCheckOptions {
  writableRoots: readonly string[];
  /** Keep what appeared (--trust-new-repos): report only. */
  trustNewRepos: boolean;
}

/**
 * Compares the writable trees with the launch snapshot and neutralises what
 * would run on the host. Runs on the host after the box has ended, as the
 * agent's user (fs-identity.ts asOwner).
 */
export function checkGitSurface(snap: GitSnapshot, o: GitCheckOptions): GitFinding[] {
  const findings: GitFinding[] = [];
  const rel = (p: string) => {
    const root = o.writableRoots.find((w) => p === w || p.startsWith(w + '/'));
    return root ? relative(root, p) || '.' : p;
  };
  const walk = walkGitDirs(o.writableRoots);
  // A directory the box made unreadable could hide a repository: it is made
  // readable to its owner and looked into; one that stays unreadable is reported.
  const pending = () => [...walk.unlisted].filter((d) => snap.unlisted[d] !== stamp(d));
  for (let round = 0, todo = pending(); todo.length > 0 && round < 16; round++, todo = pending()) {
    for (const d of todo) {
      walk.unlisted.delete(d);
      try {
        chmodSync(d, (lstatSync(d).mode & 0o7777) | 0o500);
      } catch (e) {
        findings.push({ kind: 'unlisted', path: d, action: 'failed', message: `cannot list ${d}, which the box made unreadable (${(e as Error).message}): a repository inside would run its config on the host; inspect it before using git there` });
        continue;
      }
      const more = walkGitDirs([d]);
      more.gitDirs.forEach((g) => walk.gitDirs.add(g));
      more.pointers.forEach((p) => walk.pointers.add(p));
      more.unlisted.forEach((u) => walk.unlisted.add(u));
    }
  }
  for (const d of pending()) findings.push({ kind: 'unlisted', path: d, action: 'failed', message: `cannot list ${d} (nested too deep in unreadable directories): inspect it before using git there` });

  const act = (f: Omit<GitFinding, 'action' | 'moved'>, piece: string | undefined): void => {
    if (!piece) return void findings.push({ ...f, action: 'reported' });
    if (o.trustNewRepos) return void findings.push({ ...f, action: 'kept', message: `${f.message}; kept (--trust-new-repos)` });
    try {
      const moved = moveAside(piece);
      findings.push({ ...f, action: 'disabled', moved, message: `${f.message}; disabled: ${rel(moved.from)} moved to ${rel(moved.to)} (inspect it, then move it back to keep it, or rerun with --trust-new-repos)` });
    } catch (e) {
      findings.push({ ...f, action: 'failed', message: `${f.message}; could NOT move ${piece} aside (${(e as Error).message}): do not run git there until you have removed it` });
    }
  };

  const known = new Set(snap.gitDirs);
  for (const g of [...walk.gitDirs].sort()) {
    if (known.has(g)) continue;
    act({ kind: 'new-git-dir', path: g, message: `a git directory appeared in the box at ${rel(g)}: its config and hooks would run on your next git command there` }, join(g, 'HEAD'));
  }
  const knownPointers = new Set(snap.pointers);
  for (const p of [...walk.pointers].sort()) {
    if (knownPointers.has(p)) continue;
    const t = pointerTarget(p);
    act({ kind: 'new-pointer', path: p, message: `a .git pointer appeared in the box at ${rel(p)}${t ? ` (to ${t})` : ''}: host git would use that git directory's config and hooks` }, p);
  }
  for (const [file, before] of Object.entries(snap.submoduleConfigs)) {
    const now = readSmallFile(file);
    if (now === before || (now !== undefined && sameBut(before, now, 'core.worktree'))) continue;
    const f = { kind: 'submodule-config-changed' as const, path: file, message: `${rel(file)} (a submodule's config) changed in the box beyond core.worktree: host git reads it in every command that recurses into submodules` };
    if (o.trustNewRepos || now === undefined) {
      act(f, undefined);
      continue;
    }
    act(f, file);
    const last = findings.at(-1)!;
    if (last.action === 'disabled') {
      writeFileSync(file, before, { flag: 'wx' });
      last.message += '; the version from before the run was put back';
    }
  }
  for (const [root, wt] of Object.entries(snap.worktrees)) {
    const gd = lstatSync(join(root, '.git'), { throwIfNoEntry: false })?.isDirectory() ? join(root, '.git') : (pointerTarget(join(root, '.git')) ?? wt.gitDir);
    if (looksLikeGitDir(gd)) {
      const after = gitlinksOf(gd, 20) ?? gitlinksOf(gd, 32) ?? [];
      const added = after.filter((l) => !(wt.gitlinks ?? []).includes(l));
      if (added.length > 0) {
        findings.push({ kind: 'new-gitlinks', path: root, gitlinks: added, action: 'reported', message: `the box registered ${added.length === 1 ? 'a submodule' : 'submodules'} in the index of ${rel(root) === '.' ? root : rel(root)}: ${added.join(', ')} (git status looks into them; any repository the box created there was disabled above)` });
      }
    }
    const gm = join(root, '.gitmodules');
    if (sha256(gm) === wt.gitmodules) continue;
    const original = snap.gitmodulesText[root];
    const f = { kind: 'gitmodules-changed' as const, path: gm, message: `${rel(gm)} changed in the box (submodule URLs and paths your next git submodule command uses)` };
    if (o.trustNewRepos || !lstatSync(gm, { throwIfNoEntry: false })) {
      act(f, lstatSync(gm, { throwIfNoEntry: false }) ? gm : undefined);
      continue;
    }
    act(f, gm);
    const last = findings.at(-1)!;
    if (last.action === 'disabled' && original !== undefined) {
      writeFileSync(gm, original, { flag: 'wx' });
      last.message += '; the version from before the run was put back';
    }
  }
  return findings;
}

/** Whether two config texts hold the same entries once `key` (section.key) is left out. */
function sameBut(a: string, b: string, key: string): boolean {
  const entries = (t: string) => JSON.stringify(parseGitConfig(t).filter((e) => `${e.section}.${e.key}` !== key || e.subsection !== null));
  return entries(a) === entries(b);
}

function sha256(p: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(p)).digest('hex');
  } catch {
    return null;
  }
}
