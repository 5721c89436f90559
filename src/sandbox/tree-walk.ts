// Walking the box's writable trees for what host tools act on: git
// directories of any shape git accepts, `.git` pointers, and the configs
// agents and editors read when started in a directory. Names are bytes (a
// path is a string only when it is valid UTF-8), symlinks are never
// followed, and a directory its owner made unreadable is opened for the walk.
import { chmodSync, closeSync, lstatSync, readdirSync, readlinkSync, type Dirent } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { basename, dirname, join, resolve } from 'node:path';
import { openDirNoFollow, type Opened } from './no-follow.js';
import { readHead } from './safe-read.js';

/** dev:ino:ctime:size:mode of a path itself (not followed), or "absent". */
export function stamp(p: FsPath): string {
  try {
    const s = lstatSync(p, { bigint: true });
    return `${s.dev}:${s.ino}:${s.ctimeNs}:${s.size}:${s.mode}`;
  } catch {
    return 'absent';
  }
}

/**
 * A path as the kernel has it: a string when it is valid UTF-8, else the raw
 * bytes (Node would turn other names into U+FFFD, and two different names
 * into the same string).
 */
export type FsPath = string | Buffer;

const SLASH = Buffer.from('/');

/** dir/name, as a string when the result is valid UTF-8. */
export function pjoin(dir: FsPath, name: string | Buffer): FsPath {
  if (typeof dir === 'string' && typeof name === 'string') return join(dir, name);
  const joined = Buffer.concat([typeof dir === 'string' ? Buffer.from(dir) : dir, SLASH, typeof name === 'string' ? Buffer.from(name) : name]);
  return isUtf8(joined) ? joined.toString('utf8') : joined;
}

/** A key for sets and maps of paths (bytes kept distinct). */
export const pathKey = (p: FsPath): string => (typeof p === 'string' ? p : `\0${p.toString('hex')}`);

/** A path for messages: bytes that are not UTF-8 shown as \xNN. */
export function showPath(p: FsPath): string {
  return typeof p === 'string' ? p : p.toString('latin1').replace(/[\x80-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
}

export function lstp(p: FsPath) {
  try {
    return lstatSync(p, { bigint: true });
  } catch {
    return undefined;
  }
}

/**
 * A directory git could take for a git directory, with git's own test made
 * looser, never stricter (setup.c is_git_directory: HEAD, and objects/ and
 * refs/ that are merely accessible, or a commondir): HEAD of any kind but a
 * directory, and objects and refs, or commondir, present as anything at all
 * (a symlink, a file). A directory named .git needs HEAD alone.
 */
export function looksLikeGitDir(dir: FsPath, names?: ReadonlySet<string>): boolean {
  if (names && !names.has('HEAD')) return false;
  const head = lstp(pjoin(dir, 'HEAD'));
  if (!head || head.isDirectory()) return false;
  const base = typeof dir === 'string' ? basename(dir) : '';
  if (base === '.git') return true;
  const has = (n: string) => (names ? names.has(n) : lstp(pjoin(dir, n)) !== undefined);
  return (has('objects') && has('refs')) || has('commondir');
}

/** The git directory a `.git` file (gitdir: line) or symlink points at, resolved (for messages and the launch scan). */
export function pointerTarget(p: FsPath): string | undefined {
  const st = lstp(p);
  if (!st) return undefined;
  const dir = dirname(typeof p === 'string' ? p : p.toString('utf8'));
  try {
    if (st.isSymbolicLink()) return resolve(dir, readlinkSync(p, 'utf8'));
    const m = /^gitdir:\s*(.+?)\s*$/m.exec(readHead(p, 8192)?.toString('utf8') ?? '');
    return m ? resolve(dir, m[1]!) : undefined;
  } catch {
    return undefined;
  }
}

export interface WalkResult {
  gitDirs: FsPath[];
  /** `.git` files and symlinks (and anything else named .git that is no directory). */
  pointers: FsPath[];
  /** Directories that could not be listed. */
  unlisted: FsPath[];
  /** Tool configs an agent, editor or latchgate uses when started in their directory (toolConfigName), outside node_modules. */
  toolConfigs: FsPath[];
  /** Directories anyone may write in (o+w without the sticky bit). */
  worldWritable: FsPath[];
}

/**
 * Names that make a tool started in their directory run or allow something:
 * agent settings and MCP servers, editor tasks, hook managers, latchgate's
 * project config. In .claude and .opencode only the parts that do.
 */
const TOOL_CONFIG_NAMES = new Set(['.mcp.json', '.codex', '.cursor', 'opencode.json', 'opencode.jsonc', '.vscode', '.idea', '.aider.conf.yml', '.latchgate', '.pre-commit-config.yaml']);
const CLAUDE_PARTS = /^(settings.*\.json|commands|agents|hooks|skills)$/;
const OPENCODE_PARTS = /^(plugins?|tools?|agents?|commands?|modes?|opencode\.jsonc?)$/;

export function toolConfigName(dirBase: string, name: string): boolean {
  if (dirBase === '.claude') return CLAUDE_PARTS.test(name);
  if (dirBase === '.opencode') return OPENCODE_PARTS.test(name);
  return TOOL_CONFIG_NAMES.has(name);
}

/**
 * A directory's entries, read through the directory itself opened with no
 * symlink on the way (no-follow.ts): one swapped for a symlink meanwhile is
 * not listed, and nothing outside the tree is listed or opened in its name.
 * One its owner made unreadable or untraversable is opened up for the walk
 * (fix: the caller acts as that owner; opened keeps it open and gives that
 * same directory its mode back afterwards), since a repository could hide inside.
 */
function listDir(dir: FsPath, fix: boolean, opened: OpenedDir[], out: WalkResult): Dirent<Buffer>[] | undefined {
  let d: Opened;
  try {
    d = openDirNoFollow(dir);
  } catch {
    return undefined;
  }
  let kept = false;
  try {
    const mode = d.stat().mode & 0o7777;
    // Writable by everyone without the sticky bit: any local user may replace what is in it.
    if ((mode & 0o1002) === 0o002) out.worldWritable.push(dir);
    if (fix && (mode & 0o500) !== 0o500) {
      try {
        chmodSync(d.self, mode | 0o500);
        opened.push({ dir: d, mode });
        kept = true;
      } catch {
        // not ours to open: list it if we can anyway
      }
    }
    return readdirSync(d.self, { withFileTypes: true, encoding: 'buffer' });
  } catch {
    return undefined;
  } finally {
    if (!kept) closeSync(d.fd);
  }
}

interface OpenedDir {
  dir: Opened;
  mode: number;
}

/**
 * Every git directory and `.git` pointer below the roots, without following
 * symlinks, into every directory (objects/ too: a repository hidden there is
 * still one). Names are read as bytes.
 */
export function walkGitDirs(roots: readonly FsPath[], o: { fixUnlisted?: boolean; opened?: OpenedDirs } = {}): WalkResult {
  const out: WalkResult = { gitDirs: [], pointers: [], unlisted: [], toolConfigs: [], worldWritable: [] };
  const stack = [...roots].filter((r) => lstp(r)?.isDirectory());
  // Directories opened for the walk get their mode back when it ends, or when the caller says (o.opened).
  const opened = o.opened ?? new OpenedDirs();
  try {
    walk(stack, new Set(), out, o.fixUnlisted ?? false, opened.list);
  } finally {
    if (!o.opened) opened.close();
  }
  return out;
}

/** Directories a walk opened up (unreadable or untraversable to their owner), held open to give each its mode back. */
export class OpenedDirs {
  readonly list: OpenedDir[] = [];
  close(): void {
    for (const { dir, mode } of this.list.splice(0).reverse()) {
      try {
        chmodSync(dir.self, mode);
      } catch {
        // not ours any more: left as it is
      } finally {
        closeSync(dir.fd);
      }
    }
  }
}

function walk(stack: FsPath[], seen: Set<string>, out: WalkResult, fix: boolean, opened: OpenedDir[]): void {
  const packaged = new Set<string>(); // directories below a node_modules
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const key = pathKey(dir);
    if (seen.has(key)) continue;
    seen.add(key);
    const entries = listDir(dir, fix, opened, out);
    if (!entries) {
      out.unlisted.push(dir);
      continue;
    }
    const names = new Set(entries.map((e) => e.name.toString('latin1')));
    if (looksLikeGitDir(dir, names)) out.gitDirs.push(dir);
    const base = basename(typeof dir === 'string' ? dir : dir.toString('latin1'));
    // Installed packages ship editor folders of their own: nobody starts a tool in them.
    const inPackages = packaged.has(key) || base === 'node_modules';
    for (const e of entries) {
      const name = e.name.toString('latin1');
      const p = pjoin(dir, e.name);
      // A symlinked .claude or .opencode: what it leads to is read as that tool's config.
      if (!inPackages && (toolConfigName(base, name) || ((name === '.claude' || name === '.opencode') && e.isSymbolicLink()))) out.toolConfigs.push(p);
      if (e.isDirectory()) {
        stack.push(p);
        if (inPackages) packaged.add(pathKey(p));
      } else if (name === '.git') out.pointers.push(p);
    }
  }
}

