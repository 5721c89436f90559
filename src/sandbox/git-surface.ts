// Git's executable surface in the box's writable trees. Host git runs code
// from any git directory it finds: its config (core.fsmonitor, core.pager,
// aliases, filters, credential helpers...), the files that config includes,
// its hooks, and the pointers that make it use another git directory or
// config (a `.git` file's gitdir:, commondir, a worktree's gitdir, config.worktree,
// objects/info/alternates). A box must not be able to change any of it, nor
// leave a git directory behind that did not exist at launch.
//
// At launch: every git directory in the writable trees is found
// (tree-walk.ts: any shape git accepts, bare ones too); its config,
// config.worktree, hooks/, commondir and alternates are kept read-only, a
// missing one gets a placeholder (commondir one that names the directory
// itself, which git reads as no commondir at all); what its config chain,
// the global config and the repository around the workspace include or
// name as programs, scripts, hook or template directories is kept
// read-only when it lies in a writable tree, wherever symlinks lead; so are
// tool configs at any depth and PATH directories (host-path.ts). The snapshot records what
// was there, for checkGitSurface() (git-check.ts) after the run.
import { readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { LaunchError } from '../core/errors.js';
import { readConfigChain, resolveConfigPath, type ConfigFileRead } from './git-config.js';
import { contentHash, readHead, readRegular } from './safe-read.js';
import { looksLikeGitDir, lstp, pathKey, pointerTarget, showPath, stamp, walkGitDirs } from './tree-walk.js';
import { readIndexEntries, readIndexGitlinks } from './git-index.js';
import { explicitPath, pathTokens, referencedPaths, resolveToken } from './path-references.js';
import { isInside } from '../core/paths.js';
import { pathRequests } from './host-path.js';
import { lookupPath } from './lookup-path.js';

export interface GitProtectRequest {
  path: string;
  type: 'file' | 'dir';
  /** Content of the placeholder when the path is missing (default empty). */
  content?: string;
  why: string;
}

export interface GitWorktree {
  /** The git directory this work tree uses. */
  gitDir: string;
  /** Gitlinks in its index, or null when the index is missing or unreadable. */
  gitlinks: string[] | null;
  /** SHA-256 of its .gitmodules, or null when absent. */
  gitmodules: string | null;
  /** Object name length of the repository (20: SHA-1, 32: SHA-256). */
  hashLen: 20 | 32;
  /** Index entries git does not look at (assume-valid, skip-worktree) at launch. */
  hidden: string[];
  /** A rebase was in progress at launch (rebase-merge/ existed). */
  rebasing: boolean;
  /** The exec lines its todo held at launch (they are the user's). */
  rebaseExec: string[];
  /** Protected files tracked in the index (path relative to the work tree -> object name at launch). */
  protectedOids: Record<string, string>;
  /** The protected paths inside the work tree (relative; a directory covers what is below it). */
  protectedPaths: string[];
}

/** Index entries git does not look at (assume-valid, skip-worktree), in the index and in its shared index files (split index). */
export function hiddenEntries(g: string, hashLen: 20 | 32): { path: string; file: string }[] {
  const out: { path: string; file: string }[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(g).filter((n) => n === 'index' || /^sharedindex\.[0-9a-f]+$/.test(n));
  } catch {
    return out;
  }
  for (const n of names) {
    const buf = readRegular(join(g, n), 1 << 30);
    const r = buf ? readIndexEntries(buf, hashLen) : undefined;
    if (r?.ok) for (const e of r.entries) if (e.assumeValid || e.skipWorktree) out.push({ path: e.path, file: n });
  }
  return out;
}

/** What a work tree's index and rebase state were at launch. */
export function worktreeState(w: string, g: string, hashLen: 20 | 32): GitWorktree {
  return {
    gitDir: g,
    gitlinks: gitlinksOf(g, hashLen),
    gitmodules: contentHash(join(w, '.gitmodules')),
    hashLen,
    hidden: hiddenEntries(g, hashLen).map((h) => h.path),
    rebasing: lstp(join(g, 'rebase-merge')) !== undefined,
    rebaseExec: (readRegular(join(g, 'rebase-merge', 'git-rebase-todo'), 64 << 20)?.toString('latin1') ?? '').split('\n').filter((l) => /^[ \t]*(x|exec)[ \t]/.test(l)),
    protectedOids: {},
    protectedPaths: [],
  };
}

/**
 * What was there at launch. Everything it lists is mounted read-only in the
 * box or lies below such a mount point (a git directory is pinned by its
 * protected config and hooks), so the box cannot replace it: a change seen
 * after the run came from the host and is none of the check's business.
 */
export interface GitSnapshot {
  /** Git directories found. */
  gitDirs: string[];
  /** `.git` entries that are files or symlinks. */
  pointers: string[];
  /** Work tree roots (path -> what git registered there). */
  worktrees: Record<string, GitWorktree>;
  /** .gitmodules content at launch (root -> bytes), to restore it if the box changed it. */
  gitmodulesText: Record<string, Buffer>;
  /**
   * Submodule configs (path -> text at launch): writable in the box, because
   * `git submodule update` rewrites core.worktree in them every time (a
   * read-only file cannot be replaced by git's lock-and-rename); after the
   * run any other change is undone (git-check.ts).
   */
  submoduleConfigs: Record<string, Buffer>;
  /** Tool configs (toolConfigName) found at launch. */
  toolConfigs: string[];
  /** Directories anyone could write in at launch (the user's choice, left alone). */
  worldWritable: string[];
  /** Homes inside the writable trees (--allow-home-workspace) and their dotfiles at launch. */
  homeEntries?: Record<string, string[]>;
  /** Directories the scan could not list (path -> stamp). */
  unlisted: Record<string, string>;
}

export interface GitSurface {
  protect: GitProtectRequest[];
  snapshot: GitSnapshot;
}

export interface GitScanOptions {
  /** The box's writable trees (workspace and --rw directories). */
  writableRoots: readonly string[];
  /** The trees to look for git directories in (default: all writable ones). */
  scanRoots?: readonly string[];
  /** The host home of the user who will run git later (for ~ in include paths and the global config). */
  home?: string;
  /** Global and system config files git would read on the host (see globalGitConfigs). */
  globalConfigs: readonly string[];
  /** The host environment of the user (PATH: its directories inside writable trees are protected). */
  env?: NodeJS.ProcessEnv;
}

/** Keys whose value is a command line (the first word, when it is a path, is the program). */
const COMMAND_KEYS = new Set([
  'core.fsmonitor', 'core.editor', 'core.pager', 'core.sshcommand', 'core.askpass', 'core.gitproxy',
  'sequence.editor', 'diff.external', 'gpg.program', 'credential.helper', 'uploadpack.packobjectshook',
  'diff.*.command', 'diff.*.textconv', 'merge.*.driver', 'filter.*.clean', 'filter.*.smudge', 'filter.*.process',
  'gpg.*.program', 'credential.*.helper', 'mergetool.*.cmd', 'difftool.*.cmd', 'pager.*', 'remote.*.receivepack',
  'remote.*.uploadpack', 'hook.*.command', 'sendemail.sendmailcmd', 'sendemail.smtpserver', 'trailer.*.command',
  'trailer.*.cmd', 'gpg.*.defaultkeycommand', 'difftool.*.path', 'mergetool.*.path', 'browser.*.path', 'browser.*.cmd',
  'man.*.path', 'man.*.cmd', 'web.browser',
]);




/**
 * A linked work tree's git directory: its commondir names another directory.
 * One naming the directory itself (latchgate's placeholder, possibly left by
 * a box that still runs or a launcher that was killed) makes it no link.
 */
export function isLinkedGitDir(g: string): boolean {
  if (!lstp(join(g, 'commondir'))?.isFile()) return false;
  const text = readHead(join(g, 'commondir'), 4096)?.toString('utf8').trim();
  return text === undefined || resolve(g, text) !== resolve(g);
}

/** A git directory under another one's modules/ (a submodule's, as git stores them). */
function isSubmoduleGitDir(g: string, gitDirs: ReadonlySet<string>): boolean {
  for (let d = dirname(g); d !== dirname(d); d = dirname(d)) {
    if (basename(d) === 'modules' && gitDirs.has(dirname(d))) return true;
  }
  return false;
}

/** The global and system git config files host git reads for this user (git-config(1) FILES). */
export function globalGitConfigs(home: string | undefined, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  out.push(env.GIT_CONFIG_SYSTEM || '/etc/gitconfig');
  if (env.GIT_CONFIG_GLOBAL) out.push(env.GIT_CONFIG_GLOBAL);
  else {
    const xdg = env.XDG_CONFIG_HOME || (home ? join(home, '.config') : undefined);
    if (xdg) out.push(join(xdg, 'git', 'config'));
    if (home) out.push(join(home, '.gitconfig'));
  }
  return out;
}

/** Gitlinks of a git directory's index (and of its shared index files, for a split index). */
export function gitlinksOf(gitDir: string, hashLen: 20 | 32): string[] | null {
  const files = ['index'];
  try {
    for (const n of readdirSync(gitDir)) if (/^sharedindex\.[0-9a-f]+$/.test(n)) files.push(n);
  } catch {
    return null;
  }
  const links = new Set<string>();
  let any = false;
  for (const f of files) {
    const buf = readRegular(join(gitDir, f), 1 << 30);
    if (!buf) continue;
    const r = readIndexGitlinks(buf, hashLen);
    // git ignores a stray shared index it does not name; the index itself must read.
    if (!r.ok && f === 'index') return null;
    if (!r.ok) continue;
    any = true;
    r.gitlinks.forEach((l) => links.add(l));
  }
  return any ? [...links].sort() : null;
}

function hashLenOf(chain: ConfigFileRead[]): 20 | 32 {
  for (const f of chain) for (const e of f.entries) if (e.section === 'extensions' && e.key === 'objectformat' && e.value?.toLowerCase() === 'sha256') return 32;
  return 20;
}

const SCRIPT_EXT = /\.(sh|bash|zsh|fish|py|js|mjs|cjs|ts|rb|pl|php|lua|ps1|exe)$/i;

/** A program or script: what a config naming it would run. */
export function looksExecutable(p: string): boolean {
  const st = lstp(p);
  if (!st?.isFile()) return false;
  if ((st.mode & 0o111n) !== 0n || SCRIPT_EXT.test(p)) return true;
  return readHead(p, 2)?.toString('latin1') === '#!';
}

/** Names that mean "a program": the whole value is a command line whose path-like words are programs or scripts. */
function isCommandKey(section: string, sub: string | null, key: string): boolean {
  if (section === 'pager' || section === 'alias') return true; // pager.<cmd> = program; alias.x = !shell
  return COMMAND_KEYS.has(`${section}.${key}`) || (sub !== null && COMMAND_KEYS.has(`${section}.*.${key}`));
}

/** Words of a command line that look like paths (not options, not URLs). */
function commandPaths(value: string): string[] {
  return value
    .replace(/^!/, '')
    .split(/[\s"'`;|&()<>]+/)
    .filter((w) => w.length > 1 && !w.startsWith('-') && !/^[a-z][a-z0-9+.-]*:\/\//i.test(w) && (w.includes('/') || w.startsWith('~')));
}

/**
 * Scans the writable trees at launch: what to protect and the snapshot to
 * compare with after the run.
 */
export function scanGitSurface(o: GitScanOptions): GitSurface {
  const writable = o.writableRoots;
  const inWritable = (p: string) => writable.some((w) => isInside(w, p));
  const protect = new Map<string, GitProtectRequest>();
  /**
   * Protects a path, and where it really is: a symlink (or a symlinked
   * directory above it) leading into a writable tree would let the box
   * rewrite the target while only the link is covered.
   */
  const add = (r: GitProtectRequest) => {
    const keep = (k: GitProtectRequest) => inWritable(k.path) && !protect.has(k.path) && protect.set(k.path, k);
    // A path written with `..` is only where its lookup leads.
    if (resolve(r.path) === r.path) keep(r);
    const { path: real, links } = lookupPath(r.path);
    // A symlink on the way that the box could retarget is kept as it is (covered, never followed).
    for (const l of links) keep({ path: l, type: 'file', why: `${r.why} (a symlink on the way to ${real})` });
    if (real !== r.path) keep({ ...r, path: real, why: `${r.why} (through a symlink)` });
  };
  const walk = walkGitDirs(o.scanRoots ?? writable, { fixUnlisted: true });
  const odd = [...walk.gitDirs, ...walk.pointers].find((p) => typeof p !== 'string');
  if (odd) throw new LaunchError(`${showPath(odd)}: a git directory or .git pointer at a path that is not UTF-8; latchgate cannot protect it: rename it (or move it out of the workspace) before starting a box`);
  const gitDirs = walk.gitDirs as string[];
  const gitDirSet = new Set(gitDirs);
  const pointers = walk.pointers as string[];
  const toolConfigs = walk.toolConfigs.filter((p): p is string => typeof p === 'string');
  const snapshot: GitSnapshot = { gitDirs: [...gitDirs].sort(), pointers: [...pointers].sort(), toolConfigs: toolConfigs.sort(), worldWritable: walk.worldWritable.filter((p): p is string => typeof p === 'string'), worktrees: {}, gitmodulesText: {}, submoduleConfigs: {}, unlisted: {} };
  // Tool configs below the roots are kept as they are (the roots' own get placeholders too: protected-paths.ts).
  for (const p of toolConfigs) add({ path: p, type: lstp(p)?.isDirectory() ? 'dir' : 'file', why: 'a tool started in this directory reads it' });
  for (const d of walk.unlisted) snapshot.unlisted[pathKey(d)] = stamp(d);

  // Work tree roots: W for W/.git (directory or pointer).
  const roots = new Map<string, string>(); // root -> git dir
  for (const g of gitDirs) if (basename(g) === '.git') roots.set(dirname(g), g);
  for (const p of pointers) {
    add({ path: p, type: 'file', why: 'a .git pointer decides which git directory (config, hooks) host git uses' });
    const t = pointerTarget(p);
    if (t && looksLikeGitDir(t)) roots.set(dirname(p), t);
  }

  /** The files a config includes (the config itself is the caller's). */
  const chainFiles = (chain: ReturnType<typeof readConfigChain>, why: string) => {
    for (const f of chain.files.slice(1)) add({ path: f.file, type: 'file', why });
    for (const f of chain.missing) add({ path: f, type: 'file', why });
  };
  /**
   * A hook directory, the targets of symlinked hooks in it, and the scripts
   * its hooks name. hooksPath: a directory chosen by config, whose hooks may
   * find their scripts relative to themselves (husky's _/h runs ../<hook>).
   */
  const hookDir = (dir: string, bases: string[], why: string, hooksPath = false) => {
    add({ path: dir, type: 'dir', why });
    let names: string[] = [];
    try {
      names = readdirSync(dir).filter((n) => !n.endsWith('.sample')).slice(0, 256); // git never runs *.sample
    } catch {
      return;
    }
    for (const n of names) {
      const hook = join(dir, n);
      const real = lookupPath(hook).path;
      if (real !== hook) add({ path: real, type: lstp(real)?.isDirectory() ? 'dir' : 'file', why: `the hook ${hook} is a symlink to it` });
      const text = readRegular(hook, 256 << 10)?.toString('utf8');
      if (text === undefined) continue;
      // What the hook names: existing files, and paths written as such even when missing (a script it would run once created).
      for (const t of pathTokens(text)) {
        for (const p of resolveToken(t, { bases: [...bases, dir], ...(o.home ? { home: o.home } : {}) })) {
          const st = lstp(p);
          if (st ? st.isFile() : explicitPath(t)) add({ path: p, type: 'file', why: `run by the hook ${hook}` });
        }
      }
      if (hooksPath && /\$0|\$\{0\}|BASH_SOURCE/.test(text) && !looksLikeGitDir(dirname(dir))) {
        add({ path: dirname(dir), type: 'dir', why: `hooks in ${dir} run scripts beside it` });
      }
    }
  };
  /** What a config chain names: hook directories, template directories, programs, and files anywhere in its values. */
  const fromChain = (chain: ConfigFileRead[], worktreeRoots: string[]) => {
    for (const f of chain) {
      const bases = [...(worktreeRoots.length > 0 ? worktreeRoots : []), dirname(f.file)];
      const at = (v: string, b: string) => (v.startsWith('~') ? resolveConfigPath(v, f.file, o.home) : resolve(b, v));
      for (const e of f.entries) {
        if (e.value === null) continue;
        if (e.section === 'core' && e.key === 'hookspath') {
          for (const b of bases) {
            const p = at(e.value, b);
            if (p) hookDir(p, worktreeRoots, `core.hooksPath in ${f.file}`, true);
          }
        } else if (e.section === 'init' && e.key === 'templatedir') {
          // Its hooks/ is copied into every repository git init or clone makes.
          for (const b of bases) {
            const p = at(e.value, b);
            if (p) add({ path: p, type: 'dir', why: `init.templateDir in ${f.file}` });
          }
        } else if (isCommandKey(e.section, e.subsection, e.key)) {
          for (const w of commandPaths(e.value)) {
            for (const b of bases) {
              const p = at(w, b);
              if (p) add({ path: p, type: 'file', why: `${e.section}.${e.key} in ${f.file} runs it` });
            }
          }
        }
      }
      for (const p of referencedPaths(f.text, { bases, ...(o.home ? { home: o.home } : {}) })) {
        if (lstp(p)?.isFile()) add({ path: p, type: 'file', why: `named in ${f.file}` });
      }
    }
  };

  const globalChains = o.globalConfigs.map((f) => readConfigChain(f, o.home));
  for (const c of globalChains) {
    for (const f of c.files.slice(0, 1)) add({ path: f.file, type: 'file', why: 'your global git config' });
    for (const f of c.missing.slice(0, 1)) if (!c.files.length) add({ path: f, type: 'file', why: 'your global git config' });
    chainFiles(c, 'included by your global git config');
  }
  fromChain(globalChains.flatMap((c) => c.files), [...roots.keys()]);

  // A repository around a writable tree (the workspace is a directory of a
  // bigger checkout): its config is out of reach, what it names may not be.
  for (const w of writable) {
    for (let a = dirname(w); a !== dirname(a); a = dirname(a)) {
      const dotgit = join(a, '.git');
      const st = lstp(dotgit);
      if (!st) continue;
      const g = st.isDirectory() ? dotgit : pointerTarget(dotgit);
      if (!g || !looksLikeGitDir(g)) continue;
      const common = lstp(join(g, 'commondir'))?.isFile() ? resolve(g, readHead(join(g, 'commondir'), 4096)?.toString('utf8').trim() ?? '.') : g;
      const chain = readConfigChain(join(common, 'config'), o.home);
      chainFiles(chain, `included by ${join(common, 'config')}`);
      fromChain(chain.files, [a]);
      hookDir(join(common, 'hooks'), [a], `hooks of ${common}`);
    }
  }

  for (const g of snapshot.gitDirs) {
    const linked = isLinkedGitDir(g);
    const why = `git directory ${g}`;
    if (linked) {
      add({ path: join(g, 'commondir'), type: 'file', why });
      add({ path: join(g, 'config.worktree'), type: 'file', why });
      if (lstp(join(g, 'gitdir'))) add({ path: join(g, 'gitdir'), type: 'file', why });
      continue;
    }
    // A submodule config too big to keep (or not a file) stays read-only like the others.
    const moduleBytes = isSubmoduleGitDir(g, gitDirSet) ? readRegular(join(g, 'config')) : undefined;
    if (moduleBytes !== undefined) snapshot.submoduleConfigs[join(g, 'config')] = moduleBytes;
    else add({ path: join(g, 'config'), type: 'file', why });
    add({ path: join(g, 'config.worktree'), type: 'file', why });
    add({ path: join(g, 'commondir'), type: 'file', content: '.\n', why });
    add({ path: join(g, 'objects', 'info', 'alternates'), type: 'file', why });
    const chain = readConfigChain(join(g, 'config'), o.home);
    chainFiles(chain, `included by ${join(g, 'config')}`);
    const wts = [...roots].filter(([, gd]) => gd === g).map(([r]) => r);
    hookDir(join(g, 'hooks'), wts.length > 0 ? wts : [g], why);
    fromChain(chain.files, wts.length > 0 ? wts : [g]);
    for (const w of wts) {
      snapshot.worktrees[w] = worktreeState(w, g, hashLenOf(chain.files));
      const bytes = readRegular(join(w, '.gitmodules'));
      if (bytes !== undefined) snapshot.gitmodulesText[w] = bytes;
    }
  }
  // Linked work trees and submodules (W/.git a pointer to a git directory elsewhere).
  for (const [w, g] of roots) {
    if (snapshot.worktrees[w]) continue;
    snapshot.worktrees[w] = worktreeState(w, g, 20);
    const bytes = readRegular(join(w, '.gitmodules'));
    if (bytes !== undefined) snapshot.gitmodulesText[w] = bytes;
  }
  // PATH directories (host-path.ts): missing ones too (a placeholder keeps them from being created),
  // and where a symlinked one leads (add()); in a node_modules one only the names the host runs by itself.
  for (const r of pathRequests(o.env?.PATH)) add(r);
  // The texts kept to restore files are not printed with the plan (--dry-run):
  // they are the user's config (URLs may hold tokens), not the plan.
  for (const k of ['gitmodulesText', 'submoduleConfigs'] as const) Object.defineProperty(snapshot, k, { enumerable: false });
  return { protect: [...protect.values()], snapshot };
}
