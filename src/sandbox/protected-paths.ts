// Files inside a writable root that would let a compromised agent run code
// outside the box later (git hooks and config, shell rc files, editor and
// agent settings). They stay read-only; a missing one gets an empty
// placeholder (removed after the run) so it cannot be created; one that is a
// symlink is covered, never followed.
import { lstatSync, readFileSync, readdirSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, dirname } from 'node:path';

export const PROTECTED_DIRS = ['.vscode', '.idea', '.codex', '.claude/commands', '.claude/agents'];
export const PROTECTED_FILES = [
  '.bashrc', '.bash_profile', '.zshrc', '.zprofile', '.profile', '.mcp.json',
  '.claude/settings.json', '.claude/settings.local.json',
];

export type ProtectedAction =
  | { action: 'readonly'; path: string; type: 'file' | 'dir' }
  /** A directory above a protected path, made a mount point so it cannot be renamed away. */
  | { action: 'pin'; path: string }
  | { action: 'mask-symlink'; path: string }
  | { action: 'placeholder'; path: string; type: 'file' | 'dir' };

function lst(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

function isInside(root: string, p: string): boolean {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/** A real git directory (has HEAD), not a stray folder named .git. */
function isGitDir(p: string): boolean {
  const st = lst(p);
  return !!st?.isDirectory() && !!lst(join(p, 'HEAD'))?.isFile();
}

function readGitdirFile(file: string): string | undefined {
  try {
    const m = /^gitdir:\s*(.+?)\s*$/m.exec(readFileSync(file, 'utf8'));
    return m ? resolve(dirname(file), m[1]!) : undefined;
  } catch {
    return undefined;
  }
}

/** The git directories whose hooks and config git would use for this root. */
export function gitDirsOf(root: string): string[] {
  const dotgit = join(root, '.git');
  const st = lst(dotgit);
  const found: string[] = [];
  if (st?.isDirectory() && isGitDir(dotgit)) found.push(dotgit);
  else if (st?.isFile()) {
    const gd = readGitdirFile(dotgit); // worktree or submodule
    if (gd && isGitDir(gd)) {
      found.push(gd);
      try {
        const common = resolve(gd, readFileSync(join(gd, 'commondir'), 'utf8').trim());
        if (isGitDir(common)) found.push(common);
      } catch {
        // not a worktree
      }
    }
  }
  // Submodules keep their git directories under modules/, nested as deep as they go.
  const queue = [...found];
  while (queue.length > 0) {
    const gd = queue.shift()!;
    const modules = join(gd, 'modules');
    if (!lst(modules)?.isDirectory()) continue;
    const walk = (dir: string, depth: number): void => {
      if (depth > 8) return;
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (!e.isDirectory()) continue;
        const p = join(dir, e.name);
        if (isGitDir(p)) {
          found.push(p);
          queue.push(p);
        } else walk(p, depth + 1);
      }
    };
    walk(modules, 0);
  }
  return [...new Set(found)];
}

/** core.hooksPath from a git config file (the last one wins), if set. */
export function hooksPathOf(configFile: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch {
    return undefined;
  }
  let section = '';
  let found: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const sec = /^\[\s*([^\]\s"]+)/.exec(line);
    if (sec) section = sec[1]!.toLowerCase();
    const kv = /^hookspath\s*=\s*(.*?)\s*$/i.exec(line);
    if (section === 'core' && kv) found = kv[1]!.replace(/^"(.*)"$/, '$1');
  }
  return found;
}

function actionFor(path: string, type: 'file' | 'dir', root: string): ProtectedAction | undefined {
  // A symlinked ancestor inside the root (e.g. .claude -> elsewhere) is
  // covered itself: nothing below it is followed.
  for (let p = dirname(path); isInside(root, p) && p !== root; p = dirname(p)) {
    const st = lst(p);
    if (st?.isSymbolicLink()) return { action: 'mask-symlink', path: p };
    // A file where a directory belongs: keep it, or the agent could replace it.
    if (st && !st.isDirectory()) return { action: 'readonly', path: p, type: 'file' };
  }
  const st = lst(path);
  if (!st) return { action: 'placeholder', path, type };
  if (st.isSymbolicLink()) return { action: 'mask-symlink', path };
  return { action: 'readonly', path, type: st.isDirectory() ? 'dir' : 'file' };
}

/** A path to protect besides the built-in ones (an agent profile's config files and directories). */
export interface ProtectRequest {
  path: string;
  type: 'file' | 'dir';
}

/**
 * Protected paths for one writable root, in mount order (parents first):
 * the built-in ones and those of `extra` inside the root.
 */
export function protectedPathsFor(root: string, writableRoots: readonly string[], extra: readonly ProtectRequest[] = []): ProtectedAction[] {
  const wanted: [string, 'file' | 'dir'][] = [];
  for (const d of PROTECTED_DIRS) wanted.push([join(root, d), 'dir']);
  for (const f of PROTECTED_FILES) wanted.push([join(root, f), 'file']);
  const claude = join(root, '.claude');
  if (lst(claude)?.isDirectory()) {
    for (const name of readdirSync(claude)) {
      if (/^settings.*\.json$/.test(name)) wanted.push([join(claude, name), 'file']);
    }
  }
  const out = new Map<string, ProtectedAction>();
  const dotgit = join(root, '.git');
  const dotgitSt = lst(dotgit);
  // git follows a symlinked .git: cover it rather than guess where it leads.
  if (dotgitSt?.isSymbolicLink()) out.set(dotgit, { action: 'mask-symlink', path: dotgit });
  // A worktree's or submodule's pointer file decides which hooks run.
  else if (dotgitSt?.isFile()) out.set(dotgit, { action: 'readonly', path: dotgit, type: 'file' });
  // No repository: an empty read-only .git keeps the agent from creating one
  // with a config that would run code when git is next used here (host git
  // skips an empty .git directory and keeps looking upwards).
  else if (!dotgitSt) wanted.push([dotgit, 'dir']);
  // A .git directory that is not a repository (empty, or stray): kept
  // read-only as a whole, or the agent could make it one.
  else if (dotgitSt.isDirectory() && !isGitDir(dotgit)) out.set(dotgit, { action: 'readonly', path: dotgit, type: 'dir' });
  for (const gd of gitDirsOf(root)) {
    if (!writableRoots.some((w) => isInside(w, gd))) continue; // not writable inside: nothing to protect
    wanted.push([join(gd, 'hooks'), 'dir'], [join(gd, 'config'), 'file'], [join(gd, 'config.worktree'), 'file']);
    // Hooks moved into the worktree (husky and friends) run on the host just the same.
    const hp = hooksPathOf(join(gd, 'config'));
    if (hp) {
      const abs = resolve(root, hp.replace(/^~(?=\/)/, '/nonexistent'));
      if (writableRoots.some((w) => isInside(w, abs))) wanted.push([abs, 'dir']);
    }
  }
  for (const x of extra) if (x.path !== root && isInside(root, x.path)) wanted.push([x.path, x.type]);
  for (const [p, type] of wanted) {
    const a = actionFor(p, type, root);
    if (a && !out.has(a.path)) out.set(a.path, a);
  }
  // Renaming a directory above a protected path would carry the protection
  // away with it: every such directory inside the root becomes a mount point
  // (renaming one fails with EBUSY).
  for (const a of [...out.values()]) {
    const top = writableRoots.filter((w) => isInside(w, a.path)).sort((x, y) => y.length - x.length)[0] ?? root;
    for (let d = dirname(a.path); d !== top && isInside(top, d); d = dirname(d)) {
      const st = lst(d); // missing: a placeholder below will create it
      if (!out.has(d) && (!st || st.isDirectory())) out.set(d, { action: 'pin', path: d });
    }
  }
  // Parents before children so a covered directory is mounted first.
  return [...out.values()].sort((a, b) => a.path.split('/').length - b.path.split('/').length);
}
