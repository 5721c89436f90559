// Git's executable surface in the box's writable trees. Host git runs code
// from any git directory it finds: its config (core.fsmonitor, core.pager,
// aliases, filters, credential helpers...), the files that config includes,
// its hooks, and the pointers that make it use another git directory or
// config (a `.git` file's gitdir:, commondir, a worktree's gitdir, config.worktree,
// objects/info/alternates). A box must not be able to change any of it, nor
// leave a git directory behind that did not exist at launch.
//
// At launch: every git directory in the writable trees is found (a `.git`
// directory, a `.git` file or symlink, or any directory shaped like one:
// HEAD plus objects/ or commondir, so bare repositories too); its config,
// config.worktree, hooks/, commondir and alternates are kept read-only, a
// missing one gets a placeholder (commondir one that names the directory
// itself, which git reads as no commondir at all); the files its config
// chain and the user's global git config include or name as programs or
// hook directories are kept read-only when they lie in a writable tree.
// The snapshot records what was there, for checkGitSurface() after the run.
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, type Dirent } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { readConfigChain, readSmallFile, resolveConfigPath, type ConfigFileRead } from './git-config.js';
import { readIndexGitlinks } from './git-index.js';
import { referencedPaths } from './path-references.js';

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
  /** .gitmodules content at launch (root -> text), to restore it if the box changed it. */
  gitmodulesText: Record<string, string>;
  /**
   * Submodule configs (path -> text at launch): writable in the box, because
   * `git submodule update` rewrites core.worktree in them every time (a
   * read-only file cannot be replaced by git's lock-and-rename); after the
   * run any other change is undone (git-check.ts).
   */
  submoduleConfigs: Record<string, string>;
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
}

/** Keys whose value is a command line (the first word, when it is a path, is the program). */
const COMMAND_KEYS = new Set([
  'core.fsmonitor', 'core.editor', 'core.pager', 'core.sshcommand', 'core.askpass', 'core.gitproxy',
  'sequence.editor', 'diff.external', 'gpg.program', 'credential.helper', 'uploadpack.packobjectshook',
  'diff.*.command', 'diff.*.textconv', 'merge.*.driver', 'filter.*.clean', 'filter.*.smudge', 'filter.*.process',
  'gpg.*.program', 'credential.*.helper', 'mergetool.*.cmd', 'difftool.*.cmd', 'pager.*', 'remote.*.receivepack',
  'remote.*.uploadpack', 'hook.*.command', 'sendemail.sendmailcmd', 'sendemail.smtpserver',
]);


function isCommandKey(section: string, sub: string | null, key: string): boolean {
  if (section === 'pager') return true; // pager.<command> = program
  return COMMAND_KEYS.has(`${section}.${key}`) || (sub !== null && COMMAND_KEYS.has(`${section}.*.${key}`));
}

function lst(p: string) {
  try {
    return lstatSync(p, { bigint: true });
  } catch {
    return undefined; // missing, or a file where a directory was expected
  }
}

/** dev:ino:ctime:size:mode of a path itself (not followed), or "absent". */
export function stamp(p: string): string {
  try {
    const s = lstatSync(p, { bigint: true });
    return `${s.dev}:${s.ino}:${s.ctimeNs}:${s.size}:${s.mode}`;
  } catch {
    return 'absent';
  }
}

const isInside = (root: string, p: string) => {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/** A directory git would accept as a git directory: HEAD (file or symlink) and objects/ or commondir; or a .git with HEAD. */
export function looksLikeGitDir(dir: string, names?: ReadonlySet<string>): boolean {
  if (names && !names.has('HEAD')) return false;
  const head = lst(join(dir, 'HEAD'));
  if (!head || !(head.isFile() || head.isSymbolicLink())) return false;
  // Named .git, HEAD is enough to count (git itself also wants objects/ and
  // refs/, which the box could add): protecting too much is harmless here.
  if (basename(dir) === '.git') return true;
  return !!lst(join(dir, 'objects'))?.isDirectory() || !!lst(join(dir, 'commondir'))?.isFile();
}

/** The git directory a `.git` file (gitdir: line) or symlink points at, resolved. */
export function pointerTarget(p: string): string | undefined {
  const st = lst(p);
  if (!st) return undefined;
  try {
    if (st.isSymbolicLink()) return resolve(dirname(p), readlinkSync(p));
    const m = /^gitdir:\s*(.+?)\s*$/m.exec(readFileSync(p, 'utf8').slice(0, 8192));
    return m ? resolve(dirname(p), m[1]!) : undefined;
  } catch {
    return undefined;
  }
}

export interface WalkResult {
  gitDirs: Set<string>;
  /** `.git` files and symlinks. */
  pointers: Set<string>;
  /** Directories that could not be listed. */
  unlisted: Set<string>;
}

/**
 * Every git directory and `.git` pointer below the roots, without following
 * symlinks. Inside a git directory, objects/ is not descended into (only its
 * info/alternates matters, and that is checked by name).
 */
export function walkGitDirs(roots: readonly string[]): WalkResult {
  const out: WalkResult = { gitDirs: new Set(), pointers: new Set(), unlisted: new Set() };
  const stack = [...roots].filter((r) => lst(r)?.isDirectory());
  const seen = new Set<string>();
  while (stack.length > 0) {
    const dir = stack.pop()!;
    if (seen.has(dir)) continue;
    seen.add(dir);
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      out.unlisted.add(dir);
      continue;
    }
    const names = new Set(entries.map((e) => e.name));
    const isGit = looksLikeGitDir(dir, names);
    if (isGit) out.gitDirs.add(dir);
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.name === '.git' && (e.isFile() || e.isSymbolicLink())) out.pointers.add(p);
      if (!e.isDirectory()) continue;
      if (isGit && e.name === 'objects') continue;
      stack.push(p);
    }
  }
  return out;
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

function sha256(p: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(p)).digest('hex');
  } catch {
    return null;
  }
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
    let buf: Buffer;
    try {
      buf = readFileSync(join(gitDir, f));
    } catch {
      continue;
    }
    const r = readIndexGitlinks(buf, hashLen);
    if (!r.ok) return null;
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
  const st = lst(p);
  if (!st?.isFile()) return false;
  if ((st.mode & 0o111n) !== 0n || SCRIPT_EXT.test(p)) return true;
  let fd: number | undefined;
  try {
    fd = openSync(p, 'r');
    const head = Buffer.alloc(2);
    return readSync(fd, head, 0, 2, 0) === 2 && head.toString('latin1') === '#!';
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Scans the writable trees at launch: what to protect and the snapshot to
 * compare with after the run.
 */
export function scanGitSurface(o: GitScanOptions): GitSurface {
  const writable = o.writableRoots;
  const inWritable = (p: string) => writable.some((w) => isInside(w, p));
  const protect = new Map<string, GitProtectRequest>();
  const add = (r: GitProtectRequest) => {
    if (inWritable(r.path) && !protect.has(r.path)) protect.set(r.path, r);
  };
  const walk = walkGitDirs(o.scanRoots ?? writable);
  const snapshot: GitSnapshot = { gitDirs: [], pointers: [], worktrees: {}, gitmodulesText: {}, submoduleConfigs: {}, unlisted: {} };
  for (const d of walk.unlisted) snapshot.unlisted[d] = stamp(d);

  // Work tree roots: W for W/.git (directory or pointer).
  const roots = new Map<string, string>(); // root -> git dir
  for (const g of walk.gitDirs) if (basename(g) === '.git') roots.set(dirname(g), g);
  for (const p of walk.pointers) {
    snapshot.pointers.push(p);
    add({ path: p, type: 'file', why: 'a .git pointer decides which git directory (config, hooks) host git uses' });
    const t = pointerTarget(p);
    if (t && looksLikeGitDir(t)) roots.set(dirname(p), t);
  }

  const globalChains = o.globalConfigs.map((f) => readConfigChain(f, o.home));
  /** The files a config includes (the config itself is the caller's). */
  const chainFiles = (chain: ReturnType<typeof readConfigChain>, why: string) => {
    for (const f of chain.files.slice(1)) add({ path: f.file, type: 'file', why });
    for (const f of chain.missing) add({ path: f, type: 'file', why });
  };
  for (const c of globalChains) {
    for (const f of c.files.slice(0, 1)) add({ path: f.file, type: 'file', why: 'your global git config' });
    chainFiles(c, 'included by your global git config');
  }

  /** What a config chain names: hook directories, programs, and scripts anywhere in its text. */
  const fromChain = (chain: ConfigFileRead[], worktreeRoots: string[]) => {
    for (const f of chain) {
      for (const e of f.entries) {
        if (e.value === null) continue;
        const bases = worktreeRoots.length > 0 ? worktreeRoots : [dirname(f.file)];
        if (e.section === 'core' && e.key === 'hookspath') {
          for (const b of bases) {
            const p = e.value.startsWith('~') ? resolveConfigPath(e.value, f.file, o.home) : resolve(b, e.value);
            if (p) add({ path: p, type: 'dir', why: `core.hooksPath in ${f.file}` });
          }
        } else if (isCommandKey(e.section, e.subsection, e.key) && !e.value.startsWith('!')) {
          const prog = e.value.trim().split(/\s+/)[0] ?? '';
          if (!prog.includes('/')) continue; // looked up on PATH
          for (const b of [...bases, dirname(f.file)]) {
            const p = prog.startsWith('~') ? resolveConfigPath(prog, f.file, o.home) : resolve(b, prog);
            if (p) add({ path: p, type: 'file', why: `${e.section}.${e.key} in ${f.file} runs it` });
          }
        }
      }
      for (const p of referencedPaths(f.text, { bases: [dirname(f.file), ...worktreeRoots], ...(o.home ? { home: o.home } : {}) })) {
        if (inWritable(p) && looksExecutable(p)) add({ path: p, type: 'file', why: `named in ${f.file}` });
      }
    }
  };
  fromChain(globalChains.flatMap((c) => c.files), [...roots.keys()]);

  for (const g of [...walk.gitDirs].sort()) {
    snapshot.gitDirs.push(g);
    const linked = !!lst(join(g, 'commondir'))?.isFile();
    const why = `git directory ${g}`;
    if (linked) {
      add({ path: join(g, 'commondir'), type: 'file', why });
      add({ path: join(g, 'config.worktree'), type: 'file', why });
      if (lst(join(g, 'gitdir'))) add({ path: join(g, 'gitdir'), type: 'file', why });
      continue;
    }
    const moduleText = isSubmoduleGitDir(g, walk.gitDirs) ? readSmallFile(join(g, 'config')) : undefined;
    if (moduleText !== undefined) snapshot.submoduleConfigs[join(g, 'config')] = moduleText;
    else add({ path: join(g, 'config'), type: 'file', why });
    add({ path: join(g, 'config.worktree'), type: 'file', why });
    add({ path: join(g, 'hooks'), type: 'dir', why });
    add({ path: join(g, 'commondir'), type: 'file', content: '.\n', why });
    add({ path: join(g, 'objects', 'info', 'alternates'), type: 'file', why });
    const chain = readConfigChain(join(g, 'config'), o.home);
    chainFiles(chain, `included by ${join(g, 'config')}`);
    const wts = [...roots].filter(([, gd]) => gd === g).map(([r]) => r);
    fromChain(chain.files, wts.length > 0 ? wts : [g]);
    for (const w of wts) {
      snapshot.worktrees[w] = { gitDir: g, gitlinks: gitlinksOf(g, hashLenOf(chain.files)), gitmodules: sha256(join(w, '.gitmodules')) };
      const text = readSmallFile(join(w, '.gitmodules'));
      if (text !== undefined && text.length <= 65536) snapshot.gitmodulesText[w] = text;
    }
  }
  // Linked work trees and submodules (W/.git a pointer to a git directory elsewhere).
  for (const [w, g] of roots) {
    if (snapshot.worktrees[w]) continue;
    snapshot.worktrees[w] = { gitDir: g, gitlinks: gitlinksOf(g, 20), gitmodules: sha256(join(w, '.gitmodules')) };
    const text = readSmallFile(join(w, '.gitmodules'));
    if (text !== undefined && text.length <= 65536) snapshot.gitmodulesText[w] = text;
  }
  // The texts kept to restore files are not printed with the plan (--dry-run):
  // they are the user's config (URLs may hold tokens), not the plan.
  for (const k of ['gitmodulesText', 'submoduleConfigs'] as const) Object.defineProperty(snapshot, k, { enumerable: false });
  return { protect: [...protect.values()], snapshot };
}
