// Files inside a writable root that would let a compromised agent run code
// outside the box later: git's whole executable surface (git-surface.ts),
// shell rc files, editor settings, agent settings and the scripts those
// settings name, latchgate's own project config. They stay read-only; a
// missing one gets an empty placeholder (removed after the run) so it cannot
// be created; one that is a symlink is covered, never followed.
import { lstatSync, readdirSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { globalGitConfigs, looksExecutable, scanGitSurface, type GitSnapshot } from './git-surface.js';
import { lookupPath } from './lookup-path.js';
import { readSmallFile } from './git-config.js';
import { readIndexEntries } from './git-index.js';
import { readRegular } from './safe-read.js';
import { referencedPaths } from './path-references.js';
import { isInside } from '../core/paths.js';
import type { ProtectRequest } from '../config/box-requests.js';

export { PROTECTED_DIRS, PROTECTED_FILES } from '../core/host-run-names.js';
import { PROTECTED_DIRS, PROTECTED_FILES } from '../core/host-run-names.js';
/**
 * What a missing protected file's placeholder holds when empty would not
 * parse: an agent that finds an invalid .mcp.json may load no MCP server at
 * all, so the JSON ones say "nothing" in JSON.
 */
export const PLACEHOLDER_CONTENT: Readonly<Record<string, string>> = {
  '.mcp.json': '{"mcpServers": {}}\n',
  '.claude/settings.json': '{}\n',
  '.claude/settings.local.json': '{}\n',
  'opencode.json': '{}\n',
  'opencode.jsonc': '{}\n',
};

export type ProtectedAction =
  | { action: 'readonly'; path: string; type: 'file' | 'dir' }
  /** A directory above a protected path, made a mount point so it cannot be renamed away. */
  | { action: 'pin'; path: string }
  | { action: 'mask-symlink'; path: string }
  /** content: what the placeholder file holds (default empty). */
  | { action: 'placeholder'; path: string; type: 'file' | 'dir'; content?: string };

export interface ProtectOptions {
  /** The host home of the user who runs git and agents later ($HOME, ~ in configs). */
  home?: string;
  /** The host environment git would see (GIT_CONFIG_GLOBAL, XDG_CONFIG_HOME). */
  env?: NodeJS.ProcessEnv;
  /** The user's PATH: its directories inside writable trees stay read-only. */
  path?: string;
}

function lst(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

function actionFor(path: string, type: 'file' | 'dir', root: string, content?: string): ProtectedAction | undefined {
  // A symlinked ancestor inside the root (e.g. .claude -> elsewhere) is
  // covered itself: nothing below it is followed.
  for (let p = dirname(path); isInside(root, p) && p !== root; p = dirname(p)) {
    const st = lst(p);
    if (st?.isSymbolicLink()) return { action: 'mask-symlink', path: p };
    // A file where a directory belongs: keep it, or the agent could replace it.
    if (st && !st.isDirectory()) return { action: 'readonly', path: p, type: 'file' };
  }
  const st = lst(path);
  if (!st) return content ? { action: 'placeholder', path, type, content } : { action: 'placeholder', path, type };
  if (st.isSymbolicLink()) return { action: 'mask-symlink', path };
  return { action: 'readonly', path, type: st.isDirectory() ? 'dir' : 'file' };
}

/** Files of a protected directory whose text may name scripts (bounded: settings, not projects). */
function settingsFilesIn(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      if (out.length >= 100) return;
      const p = join(d, n);
      const st = lst(p);
      if (st?.isDirectory() && depth < 2) walk(p, depth + 1);
      else if (st?.isFile() && st.size <= 1 << 20 && /\.(json|jsonc|toml|ya?ml)$/i.test(n)) out.push(p);
    }
  };
  walk(dir, 0);
  return out;
}

/**
 * The names in a directory; none when it went away since it was seen (a
 * box started at once on the same workspace removes the placeholders it
 * made as it ends). The settings files agents read are in PROTECTED_FILES
 * whether or not the directory is there.
 */
function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw e;
  }
}

/** The built-in requests for one writable root. */
function builtinRequests(root: string): ProtectRequest[] {
  const wanted: ProtectRequest[] = [];
  for (const d of PROTECTED_DIRS) wanted.push({ path: join(root, d), type: 'dir' });
  for (const f of PROTECTED_FILES) wanted.push({ path: join(root, f), type: 'file', ...(PLACEHOLDER_CONTENT[f] ? { content: PLACEHOLDER_CONTENT[f] } : {}) });
  const claude = join(root, '.claude');
  if (lst(claude)?.isDirectory()) {
    for (const name of namesIn(claude)) {
      if (/^settings.*\.json$/.test(name)) wanted.push({ path: join(claude, name), type: 'file' });
    }
  }
  const dotgit = join(root, '.git');
  const dotgitSt = lst(dotgit);
  // No repository: an empty read-only .git keeps the agent from creating one
  // here (host git skips an empty .git directory and keeps looking upwards).
  if (!dotgitSt) wanted.push({ path: dotgit, type: 'dir' });
  // A .git directory that is not a repository (empty, or stray): kept
  // read-only as a whole, or the agent could make it one.
  else if (dotgitSt.isDirectory() && !lst(join(dotgit, 'HEAD'))) wanted.push({ path: dotgit, type: 'dir' });
  return wanted;
}

/** JSON with comments and trailing commas (VS Code and Claude settings allow both), or undefined. */
export function parseLenientJson(text: string): unknown {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      const end = /"(?:[^"\\]|\\.)*"/y;
      end.lastIndex = i;
      const m = end.exec(text);
      if (!m) return undefined;
      out += m[0];
      i += m[0].length - 1;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const e = text.indexOf('*/', i + 2);
      if (e < 0) return undefined;
      i = e + 1;
    } else out += c;
  }
  try {
    return JSON.parse(out.replace(/,(\s*[}\]])/g, '$1'));
  } catch {
    return undefined;
  }
}

/** Keys whose string values (or arrays of strings) are command lines or programs in agent and editor settings. */
const COMMAND_KEY = /^(command|commands|args|cmd|program|runtimeExecutable|runtimeArgs|executable|path|script|.*Helper|.*Command|awsAuthRefresh|awsCredentialExport|statusLine|interpreterPath|defaultInterpreterPath)$/i;

/** The command lines a settings file holds: JSON values under command keys; any other text as a whole. */
function commandLines(text: string): { lines: string[]; structured: boolean } {
  const doc = parseLenientJson(text);
  if (doc === undefined) return { lines: [text], structured: false };
  const lines: string[] = [];
  const visit = (v: unknown, underCommand: boolean): void => {
    if (typeof v === 'string') {
      if (underCommand) lines.push(v);
    } else if (Array.isArray(v)) v.forEach((x) => visit(x, underCommand));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) visit(x, underCommand || COMMAND_KEY.test(k));
  };
  visit(doc, false);
  return { lines, structured: true };
}

/**
 * The scripts and programs protected settings name (a hook command, a status
 * line, an MCP server, an editor task): they run on the host as surely as
 * the settings do. In a command line every word that is a path is one, found
 * or not (a missing one must not be created); words without a slash count
 * when they name a file in the project. Other text: existing executables.
 */
export function scriptsNamedBy(file: string, root: string, writableRoots: readonly string[], home: string | undefined): ProtectRequest[] {
  const text = readSmallFile(file);
  if (text === undefined) return [];
  const inWritable = (p: string) => writableRoots.some((w) => isInside(w, p)) && !writableRoots.includes(p);
  const vars = { CLAUDE_PROJECT_DIR: root, workspaceFolder: root, workspaceRoot: root, ...(home ? { userHome: home } : {}) };
  const ctx = { bases: [root, dirname(file)], ...(home ? { home } : {}), vars };
  const out: ProtectRequest[] = [];
  const { lines, structured } = commandLines(text);
  for (const line of lines) {
    for (const p of referencedPaths(line, ctx)) {
      if (!inWritable(p)) continue;
      const st = lst(p);
      if (!structured) {
        if (looksExecutable(p)) out.push({ path: p, type: 'file' });
      } else if (st?.isDirectory()) out.push({ path: p, type: 'dir' });
      else if (!st || st.isFile() || st.isSymbolicLink()) out.push({ path: p, type: 'file' });
    }
    if (!structured) continue;
    for (const w of line.split(/[\s"'`=,;|&()<>]+/)) {
      if (!w || w.includes('/') || w.startsWith('-') || w.startsWith('$')) continue;
      const p = join(root, w);
      if (inWritable(p) && lst(p)?.isFile()) out.push({ path: p, type: 'file' });
    }
  }
  // A symlink named as a program (a venv's python): replacing it is the attack, so its directory stays put.
  return out.flatMap((r) => (lst(r.path)?.isSymbolicLink() ? [{ path: dirname(r.path), type: 'dir' as const }] : [r]));
}

/** Every settings file among the requests inside root (a file, or the settings files of a directory). */
function settingsFiles(root: string, requests: readonly ProtectRequest[]): string[] {
  return requests.filter((r) => r.scan !== false && isInside(root, r.path)).flatMap((r) => {
    const st = lst(r.path);
    if (st?.isFile()) return [r.path];
    return st?.isDirectory() ? settingsFilesIn(r.path) : [];
  });
}

/**
 * The requests and where each really is: a symlink on the way (a .claude
 * that links to config/claude) is covered where it stands, and what it
 * leads to inside a writable tree must be protected there too.
 */
function withRealLocations(requests: readonly ProtectRequest[], writableRoots: readonly string[]): ProtectRequest[] {
  const out = [...requests];
  const writable = (p: string) => writableRoots.some((w) => isInside(w, p));
  for (const r of requests) {
    const { path: real, links } = lookupPath(r.path);
    if (real !== r.path && writable(real)) out.push({ ...r, path: real });
    // A symlink on the way (also outside the root the request is in) would move the lookup elsewhere once retargeted.
    for (const l of links) if (writable(l)) out.push({ path: l, type: 'file' });
  }
  return out;
}

/** Actions for the requests inside one root, with the directories above them pinned, parents first. */
function actionsFor(root: string, writableRoots: readonly string[], requests: readonly ProtectRequest[]): ProtectedAction[] {
  const out = new Map<string, ProtectedAction>();
  for (const r of withRealLocations(requests, writableRoots)) {
    if (r.path === root || !isInside(root, r.path)) continue;
    const a = actionFor(r.path, r.type, root, r.content);
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

function gitScan(scanRoots: readonly string[], writableRoots: readonly string[], o: ProtectOptions) {
  return scanGitSurface({
    writableRoots,
    scanRoots,
    ...(o.home ? { home: o.home } : {}),
    globalConfigs: globalGitConfigs(o.home, o.env ?? {}),
    ...(o.path ? { env: { PATH: o.path } } : {}),
  });
}

/**
 * Protected paths for one writable root, in mount order (parents first):
 * the built-in ones, git's surface, and those of `extra` inside the root.
 */
export function protectedPathsFor(root: string, writableRoots: readonly string[], extra: readonly ProtectRequest[] = [], o: ProtectOptions = {}): ProtectedAction[] {
  const git = gitScan(writableRoots.includes(root) ? writableRoots : [root, ...writableRoots], writableRoots, o);
  return actionsFor(root, writableRoots, requestsFor(root, writableRoots, [...git.protect, ...extra], o));
}

/** The built-in requests of a root, the given ones, and the scripts the settings among them name. */
function requestsFor(root: string, writableRoots: readonly string[], given: readonly ProtectRequest[], o: ProtectOptions): ProtectRequest[] {
  const all = [...builtinRequests(root), ...given];
  const named = settingsFiles(root, all).flatMap((f) => scriptsNamedBy(f, root, writableRoots, o.home));
  return [...all, ...named];
}

/**
 * Everything protected in the box's writable trees, and the git snapshot
 * the after-run check compares with.
 */
export function protectionPlan(writableRoots: readonly string[], extra: readonly ProtectRequest[], o: ProtectOptions): { actions: ProtectedAction[]; git: GitSnapshot } {
  const git = gitScan(writableRoots, writableRoots, o);
  const actions: ProtectedAction[] = [];
  const seen = new Set<string>();
  for (const root of writableRoots) {
    if (!lst(root)?.isDirectory()) continue; // a file mounted read-write has nothing inside it to protect
    for (const a of actionsFor(root, writableRoots, requestsFor(root, writableRoots, [...git.protect, ...extra], o))) {
      if (seen.has(a.path)) continue;
      seen.add(a.path);
      actions.push(a);
    }
  }
  recordProtectedOids(git.snapshot, actions);
  return { actions, git: git.snapshot };
}

/**
 * The object names the index holds for protected files at launch: the box
 * cannot write those files, but it can stage and commit other content for
 * them, which git checkout, stash or reset --hard would later write out.
 */
function recordProtectedOids(snap: GitSnapshot, actions: readonly ProtectedAction[]): void {
  for (const [w, wt] of Object.entries(snap.worktrees)) {
    const covered = actions.filter((a) => (a.action === 'readonly' || a.action === 'placeholder') && isInside(w, a.path) && a.path !== w).map((a) => a.path);
    if (covered.length === 0) continue;
    wt.protectedPaths = covered.map((c) => relative(w, c));
    const idx = readRegular(join(wt.gitDir, 'index'), 1 << 30);
    const r = idx ? readIndexEntries(idx, wt.hashLen) : undefined;
    if (!r?.ok) continue;
    for (const e of r.entries) {
      if (e.path !== '' && covered.some((c) => isInside(c, join(w, e.path)))) wt.protectedOids[e.path] = e.oid;
    }
  }
}

/**
 * gitignore lines hiding the placeholders from git inside the box (given as
 * core.excludesFile): they are latchgate's, not the project's, and must not
 * show up in `git status` or be committed by `git add -A`. Patterns are
 * anchored at each root a repository may have there.
 */
export function placeholderExcludes(actions: readonly ProtectedAction[], roots: readonly string[]): string {
  const lines = new Set<string>();
  for (const a of actions) {
    if (a.action !== 'placeholder') continue;
    for (const r of roots) {
      if (a.path === r || !isInside(r, a.path)) continue;
      lines.add(`/${relative(r, a.path)}${a.type === 'dir' ? '/' : ''}`);
    }
  }
  return lines.size === 0 ? '' : `# latchgate: placeholders for protected paths (not part of the project)\n${[...lines].sort().join('\n')}\n`;
}
