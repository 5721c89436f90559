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
//
// Another box may still run on these trees and swap any name at any moment:
// everything done here (a rename, a chmod, a file written) reaches its path
// through no symlink (no-follow.ts), and writes only inside the writable
// trees, so a swap makes an action fail (reported, exit 125), never land
// outside them.
import { chmodSync, lstatSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { contentHash, readRegular } from './safe-read.js';
import { join, relative } from 'node:path';
import { isInside } from '../core/paths.js';
import { atPath, inDir, inParent, type Opened } from './no-follow.js';
import { parseGitConfig } from './git-config.js';
import { homeEntries } from './home-workspace.js';
import { clearHidingFlags, readIndexEntries } from './git-index.js';
import { gitlinksOf, hiddenEntries, type GitSnapshot, type GitWorktree } from './git-surface.js';
import { looksLikeGitDir, OpenedDirs, pathKey, pjoin, pointerTarget, showPath, stamp, walkGitDirs, type FsPath } from './tree-walk.js';
import { PLACEHOLDER_CONTENT } from './protected-paths.js';

export type GitFindingKind = 'world-writable' | 'new-git-dir' | 'new-pointer' | 'new-tool-config' | 'new-home-dotfile' | 'hidden-from-git' | 'protected-file-staged' | 'rebase-exec' | 'submodule-config-changed' | 'new-gitlinks' | 'gitmodules-changed' | 'unlisted';

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

/** s with control characters (C0, DEL, C1) escaped as \xNN. */
export function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Whether uid/gid could have made entries in dir (as its owner, who may chmod, or by its mode). */
function couldWriteIn(dir: FsPath, who: { uid: number; gid: number }): boolean {
  const st = lstatSync(dir, { throwIfNoEntry: false });
  if (!st) return false;
  if (st.uid === who.uid) return true;
  const bits = st.gid === who.gid ? (st.mode >> 3) & 7 : st.mode & 7;
  return (bits & 3) === 3;
}

/** What a JSON placeholder holds: an empty document, which configures nothing either. */
const EMPTY_JSON = new Set(Object.values(PLACEHOLDER_CONTENT));

/** An empty file or directory (a placeholder another box still uses, or nothing at all): it configures nothing. */
function empty(p: FsPath): boolean {
  try {
    return atPath(p, (it) => {
      const st = it.stat();
      if (st.isFile()) return st.size === 0 || (st.size <= 64 && EMPTY_JSON.has(readRegular(it.self, 64)?.toString() ?? ''));
      return st.isDirectory() && readdirSync(it.self).length === 0;
    });
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT'; // gone meanwhile (another box's placeholder); else cannot tell: not empty
  }
}

const withSuffix = (p: FsPath, suffix: string): FsPath => (typeof p === 'string' ? `${p}${suffix}` : Buffer.concat([p, Buffer.from(suffix)]));

/** A suffix that makes a free name beside name in the directory dir, for the moved-aside piece. */
function asideSuffix(dir: Opened, name: FsPath): string {
  for (let i = 0; ; i++) {
    const suffix = `${DISABLED_SUFFIX}${i === 0 ? '' : `-${i}`}`;
    if (!lstatSync(dir.at(withSuffix(name, suffix)), { throwIfNoEntry: false })) return suffix;
  }
}

/** Renames path aside in its directory; that directory, if its owner made it unwritable, is made writable for it first. */
function moveAside(path: FsPath): { from: FsPath; to: FsPath } {
  const suffix = inParent(path, (dir, name) => {
    const sfx = asideSuffix(dir, name);
    const rename = () => renameSync(dir.at(name), dir.at(withSuffix(name, sfx)));
    try {
      rename();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'EPERM') throw e;
      chmodSync(dir.self, (dir.stat().mode & 0o7777) | 0o300);
      rename();
    }
    return sfx;
  });
  return { from: path, to: withSuffix(path, suffix) };
}

export interface GitCheckOptions {
  writableRoots: readonly string[];
  /** The box's user: a directory it could not write in holds nothing of the box's. */
  owner?: { uid: number; gid: number };
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
  // Names come from the box: control characters are shown escaped, never sent to the terminal.
  const rel = (p: FsPath) => {
    if (typeof p !== 'string') return showPath(p);
    const root = o.writableRoots.find((w) => p === w || p.startsWith(w + '/'));
    return printable(root ? relative(root, p) || '.' : p);
  };
  // Directories the box made unreadable are opened (as their owner) and looked into; they stay open until the check ends.
  const opened = new OpenedDirs();
  try {
    checkWalked(snap, o, findings, rel, walkGitDirs(o.writableRoots, { fixUnlisted: true, opened }));
  } finally {
    opened.close();
  }
  return findings;
}

function checkWalked(snap: GitSnapshot, o: GitCheckOptions, findings: GitFinding[], rel: (p: FsPath) => string, walk: ReturnType<typeof walkGitDirs>): void {
  for (const d of walk.unlisted) {
    if (snap.unlisted[pathKey(d)] === stamp(d)) continue; // unreadable before the run, untouched
    if (!o.owner || !couldWriteIn(d, o.owner)) continue; // nothing the box's user could have put there
    findings.push({ kind: 'unlisted', path: showPath(d), action: 'failed', message: `cannot list ${rel(d)}, which appeared or changed in the box: a repository inside would run its config on the host; inspect it before using git there` });
  }

  const act = (f: Omit<GitFinding, 'action' | 'moved'>, piece: FsPath | undefined): void => {
    if (!piece) return void findings.push({ ...f, action: 'reported' });
    if (o.trustNewRepos) return void findings.push({ ...f, action: 'kept', message: `${f.message}; kept (--trust-new-repos)` });
    try {
      const moved = moveAside(piece);
      findings.push({ ...f, action: 'disabled', moved: { from: showPath(moved.from), to: showPath(moved.to) }, message: `${f.message}; disabled: ${rel(moved.from)} moved to ${rel(moved.to)} (inspect it, then move it back to keep it, or rerun with --trust-new-repos)` });
    } catch (e) {
      // Gone since the walk saw it (another box's placeholder, removed as that box left): nothing left to disable.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !lstatSync(piece, { throwIfNoEntry: false })) return;
      findings.push({ ...f, action: 'failed', message: `${f.message}; could NOT move ${rel(piece)} aside (${printable((e as Error).message)}): do not run git there until you have removed it` });
    }
  };

  const known = new Set(snap.gitDirs);
  for (const g of walk.gitDirs) {
    if (typeof g === 'string' && known.has(g)) continue;
    act({ kind: 'new-git-dir', path: showPath(g), message: `a git directory appeared in the box at ${rel(g)}: its config and hooks would run on your next git command there` }, pjoin(g, 'HEAD'));
  }
  const knownPointers = new Set(snap.pointers);
  for (const p of walk.pointers) {
    if (typeof p === 'string' && knownPointers.has(p)) continue;
    const t = pointerTarget(p);
    act({ kind: 'new-pointer', path: showPath(p), message: `a .git pointer appeared in the box at ${rel(p)}${t ? ` (to ${printable(t)})` : ''}: host git would use that git directory's config and hooks` }, p);
  }
  // A directory the box opened to everyone: another local user could swap in configs or hooks the user runs.
  const knownOpen = new Set(snap.worldWritable);
  for (const d of walk.worldWritable) {
    if (typeof d === 'string' && knownOpen.has(d)) continue;
    const f = { kind: 'world-writable' as const, path: showPath(d), message: `the box made ${rel(d)} writable by every local user` };
    if (o.trustNewRepos) {
      findings.push({ ...f, action: 'kept', message: `${f.message}; kept (--trust-new-repos)` });
      continue;
    }
    try {
      inDir(d, (dir) => chmodSync(dir.self, dir.stat().mode & 0o7775));
      findings.push({ ...f, action: 'disabled', message: `${f.message}; write access for others removed` });
    } catch (e) {
      findings.push({ ...f, action: 'failed', message: `${f.message}; could NOT remove it (${printable((e as Error).message)}): chmod o-w it` });
    }
  }
  const knownTools = new Set(snap.toolConfigs);
  for (const p of walk.toolConfigs) {
    if ((typeof p === 'string' && knownTools.has(p)) || empty(p)) continue;
    act({ kind: 'new-tool-config', path: showPath(p), message: `${rel(p)} appeared in the box: an agent, editor or latchgate started in that directory would use it` }, p);
  }
  // A home as workspace: a dotfile that was not there (~/.bash_aliases, ~/.gdbinit, ~/.kube) runs as you later.
  for (const [home, before] of Object.entries(snap.homeEntries ?? {})) {
    const known = new Set(before);
    for (const n of homeEntries(home)) {
      const p = join(home, n);
      if (known.has(n) || empty(p)) continue;
      act({ kind: 'new-home-dotfile', path: p, message: `${printable(p)} appeared in the box in your home: shells, logins and tools read such files as you` }, p);
    }
  }
  for (const [file, before] of Object.entries(snap.submoduleConfigs)) {
    const now = readRegular(file);
    if (now !== undefined && (now.equals(before) || sameBut(before, now, 'core.worktree'))) continue;
    const f = { kind: 'submodule-config-changed' as const, path: file, message: `${rel(file)} (a submodule's config) changed in the box beyond core.worktree: host git reads it in every command that recurses into submodules` };
    if (o.trustNewRepos || !lstatSync(file, { throwIfNoEntry: false })) {
      act(f, undefined);
      continue;
    }
    act(f, file); // whatever it is now (a FIFO, a huge file, a symlink): moved aside, the launch bytes put back
    putBack(findings.at(-1)!, file, before);
  }
  for (const [root, wt] of Object.entries(snap.worktrees)) {
    const gd = lstatSync(join(root, '.git'), { throwIfNoEntry: false })?.isDirectory() ? join(root, '.git') : (pointerTarget(join(root, '.git')) ?? wt.gitDir);
    // A git directory outside the writable trees (a linked work tree's, or one a pointer names now) is none the box could write: not ours to rewrite.
    if (o.writableRoots.some((w) => isInside(w, gd))) checkIndexState(root, gd, wt, o, findings, rel);
    if (looksLikeGitDir(gd)) {
      const after = gitlinksOf(gd, 20) ?? gitlinksOf(gd, 32) ?? [];
      const added = after.filter((l) => !(wt.gitlinks ?? []).includes(l));
      if (added.length > 0) {
        findings.push({ kind: 'new-gitlinks', path: root, gitlinks: added, action: 'reported', message: `the box registered ${added.length === 1 ? 'a submodule' : 'submodules'} in the index of ${rel(root) === '.' ? printable(root) : rel(root)}: ${added.map(printable).join(', ')} (git status looks into them)` });
      }
    }
    const gm = join(root, '.gitmodules');
    if (contentHash(gm) === wt.gitmodules) continue;
    const original = snap.gitmodulesText[root];
    const f = { kind: 'gitmodules-changed' as const, path: gm, message: `${rel(gm)} changed in the box (submodule URLs and paths your next git submodule command uses)` };
    if (o.trustNewRepos || !lstatSync(gm, { throwIfNoEntry: false })) {
      act(f, lstatSync(gm, { throwIfNoEntry: false }) ? gm : undefined);
      continue;
    }
    act(f, gm);
    if (original !== undefined) putBack(findings.at(-1)!, gm, original);
  }
}

/** After a piece was moved aside (finding f disabled), the launch bytes written back as a new file at its path. */
function putBack(f: GitFinding, path: string, bytes: Buffer): void {
  if (f.action !== 'disabled') return;
  try {
    inParent(path, (dir, name) => writeFileSync(dir.at(name), bytes, { flag: 'wx' }));
    f.message += '; the version from before the run was put back';
  } catch (e) {
    f.action = 'failed';
    f.message += `; the version from before the run could NOT be put back (${printable((e as Error).message)}): restore it from the moved-aside file`;
  }
}

/** Whether two configs hold the same entries once `key` (section.key) is left out (bytes read as latin1: exact). */
function sameBut(a: Buffer, b: Buffer, key: string): boolean {
  // git skips a UTF-8 byte order mark at the start (config.c); latin1 keeps every other byte distinct.
  const text = (t: Buffer) => (t[0] === 0xef && t[1] === 0xbb && t[2] === 0xbf ? t.subarray(3) : t).toString('latin1');
  const entries = (t: Buffer) => JSON.stringify(parseGitConfig(text(t)).filter((e) => `${e.section}.${e.key}` !== key || e.subsection !== null));
  return entries(a) === entries(b);
}

/**
 * What the box left in a work tree's git state that the user's next git
 * command would act on unseen: entries hidden from git status and diff
 * (assume-valid, skip-worktree: their flags are cleared again); other
 * content staged or committed for a protected file (git checkout, stash or
 * reset --hard would write it out: reported); a rebase left stopped with
 * exec lines to run on git rebase --continue (its state moved aside).
 */
function checkIndexState(root: string, gd: string, wt: GitWorktree, o: GitCheckOptions, findings: GitFinding[], rel: (p: FsPath) => string): void {
  const indexFile = join(gd, 'index');
  const buf = readRegular(indexFile, 1 << 30);
  const r = buf ? readIndexEntries(buf, wt.hashLen) : undefined;
  // Hidden in a shared index (split index), or on an entry that only names one there: not ours to rewrite.
  const unclearable = hiddenEntries(gd, wt.hashLen).filter((h) => (h.file !== 'index' || h.path === '') && !wt.hidden.includes(h.path));
  if (unclearable.length > 0) {
    findings.push({ kind: 'hidden-from-git', path: root, action: o.trustNewRepos ? 'kept' : 'failed', message: `the box hid ${unclearable.length} entr${unclearable.length === 1 ? 'y' : 'ies'} of a split index from git status and git diff in ${rel(root)}${o.trustNewRepos ? '; kept (--trust-new-repos)' : ': run git update-index --no-split-index, then git ls-files -v and git update-index --no-assume-unchanged --no-skip-worktree on the entries marked h or S'}` });
  }
  if (buf && r?.ok) {
    const hidden = r.entries.filter((e) => (e.assumeValid || e.skipWorktree) && e.path !== '' && !wt.hidden.includes(e.path));
    if (hidden.length > 0) {
      const names = hidden.map((e) => printable(e.path)).join(', ');
      const what = `the box hid ${names} from git status and git diff in ${rel(root)} (assume-unchanged / skip-worktree)`;
      if (o.trustNewRepos) findings.push({ kind: 'hidden-from-git', path: root, action: 'kept', message: `${what}; kept (--trust-new-repos)` });
      else {
        try {
          replaceIn(indexFile, clearHidingFlags(buf, hidden, wt.hashLen));
          findings.push({ kind: 'hidden-from-git', path: root, action: 'disabled', message: `${what}; shown again (flags cleared in the index)` });
        } catch (e) {
          findings.push({ kind: 'hidden-from-git', path: root, action: 'failed', message: `${what}; could NOT clear them (${printable((e as Error).message)}): run git update-index --no-skip-worktree --no-assume-unchanged on them` });
        }
      }
    }
    // Every entry at or below a protected path: changed, or new where the file was missing (a placeholder).
    const protectedEntry = (p: string) => wt.protectedPaths.some((c) => p === c || p.startsWith(`${c}/`));
    for (const e of r.entries) {
      if (e.path === '' || !protectedEntry(e.path) || wt.protectedOids[e.path] === e.oid) continue;
      findings.push({ kind: 'protected-file-staged', path: join(root, e.path), action: 'reported', message: `the box staged or committed content for ${printable(e.path)}, which it could not write (it is protected): git checkout, git stash or git reset --hard would write that content out; see git diff --cached and git log -p in ${rel(root)}` });
    }
  }
  checkRebaseTodo(root, join(gd, 'rebase-merge'), wt, o, findings, rel);
}

/** Replaces file's content by a rename over it, in its directory reached through no symlink; the file's mode is kept. */
function replaceIn(file: string, bytes: Buffer): void {
  inParent(file, (dir, name) => {
    const tmp = `${name as string}.latchgate-${process.pid}`;
    const st = lstatSync(dir.at(name));
    writeFileSync(dir.at(tmp), bytes, { flag: 'wx', mode: st.isFile() ? st.mode & 0o777 : 0o600 });
    renameSync(dir.at(tmp), dir.at(name));
  });
}

/** Keeps bytes beside file under a free name (returned), in its directory reached through no symlink. */
function keepBeside(file: string, bytes: Buffer): string {
  return inParent(file, (dir, name) => {
    const suffix = asideSuffix(dir, name);
    writeFileSync(dir.at(withSuffix(name, suffix)), bytes, { flag: 'wx', mode: 0o600 });
    return file + suffix;
  });
}

const EXEC_LINE = /^[ \t]*(x|exec)[ \t]/;

/**
 * exec lines the box added to a rebase's todo (whether the rebase was there
 * at launch or the box started it) run on git rebase --continue: they are
 * commented out, the box's todo kept beside. A todo that cannot be read
 * whole is moved aside with its rebase state when the box started it.
 */
function checkRebaseTodo(root: string, rebase: string, wt: GitWorktree, o: GitCheckOptions, findings: GitFinding[], rel: (p: FsPath) => string): void {
  if (!lstatSync(rebase, { throwIfNoEntry: false })) return;
  const todoFile = join(rebase, 'git-rebase-todo');
  const f = { kind: 'rebase-exec' as const, path: rebase, message: `the box left a rebase in ${rel(root)} with commands to run on git rebase --continue` };
  const buf = readRegular(todoFile, 64 << 20);
  if (buf === undefined) {
    if (!lstatSync(todoFile, { throwIfNoEntry: false })) return;
    if (wt.rebasing) return void findings.push({ ...f, action: 'failed', message: `${f.message}; its todo cannot be read: check .git/rebase-merge/git-rebase-todo before you continue, or run git rebase --abort` });
    if (o.trustNewRepos) return void findings.push({ ...f, action: 'kept', message: `${f.message}; kept (--trust-new-repos)` });
    try {
      const moved = moveAside(rebase);
      findings.push({ ...f, action: 'disabled', moved: { from: showPath(moved.from), to: showPath(moved.to) }, message: `${f.message}; its state moved to ${rel(moved.to)}` });
    } catch (e) {
      findings.push({ ...f, action: 'failed', message: `${f.message}; could NOT move it aside (${printable((e as Error).message)}): run git rebase --abort` });
    }
    return;
  }
  const known = [...wt.rebaseExec];
  const lines = buf.toString('latin1').split('\n');
  let added = 0;
  const out = lines.map((l) => {
    if (!EXEC_LINE.test(l)) return l;
    const i = known.indexOf(l);
    if (i >= 0) return void known.splice(i, 1), l;
    added++;
    return `# latchgate: disabled, added in the box: ${l}`;
  });
  if (added === 0) return;
  if (o.trustNewRepos) return void findings.push({ ...f, action: 'kept', message: `${f.message}; kept (--trust-new-repos)` });
  try {
    const aside = keepBeside(todoFile, buf);
    replaceIn(todoFile, Buffer.from(out.join('\n'), 'latin1'));
    findings.push({ ...f, action: 'disabled', moved: { from: todoFile, to: aside }, message: `${f.message}; ${added} exec line(s) commented out (the box's todo kept as ${rel(aside)})` });
  } catch (e) {
    findings.push({ ...f, action: 'failed', message: `${f.message}; could NOT disable them (${printable((e as Error).message)}): run git rebase --abort` });
  }
}
