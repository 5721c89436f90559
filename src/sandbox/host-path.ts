// The PATH of the user who runs latchgate (the host's, not the box's): every
// command the user types later, and every `#!/usr/bin/env node` (latchgate's
// own bin scripts among them), is looked up in it. A directory on it that the
// box can write is a place to plant a command for the host.
//
// - An absolute directory inside a writable tree stays read-only (a
//   placeholder where missing), except a node_modules one (npm writes
//   node_modules/.bin): there the names the host runs without the user
//   choosing a package's code (HOST_RUN_NAMES) stay read-only instead.
// - A directory that is itself a writable tree (the workspace on PATH) cannot
//   be read-only in the box: refused, the box would plant any command there.
// - A relative or empty entry is resolved against whatever directory the
//   user's shell is in later, so any directory the box could write becomes
//   one: the launch is refused unless --allow-relative-path asks for it.
import { resolve } from 'node:path';
import { LaunchError } from '../core/errors.js';
import { isInside } from '../core/paths.js';
import { lookupPath } from './lookup-path.js';
import { insideOnDisk, mountTable, type MountEntry } from '../core/mount-location.js';

/**
 * Commands run by name without the user choosing a package: node (every
 * `#!/usr/bin/env node` script, latchgate's own), latchgate's commands, the
 * package managers that come with node (corepack's shims among them).
 */
export const HOST_RUN_NAMES: readonly string[] = ['node', 'nodejs', 'latchgate', 'latchgate-mcp', 'npm', 'npx', 'corepack', 'yarn', 'yarnpkg', 'pnpm', 'pnpx'];

export interface PathRequest {
  path: string;
  type: 'file' | 'dir';
  why: string;
}

/** The entries of a PATH value with their 1-based positions (none when it is unset). */
function entries(path: string | undefined): { entry: string; position: number }[] {
  return path === undefined ? [] : path.split(':').map((entry, i) => ({ entry, position: i + 1 }));
}

/** A node_modules directory (npm writes its .bin), as the entry is written or where it leads. */
const inModules = (entry: string, dir: string) => [resolve(entry), dir].some((d) => d.split('/').includes('node_modules'));

/**
 * What to keep read-only for the absolute entries of PATH, as written: the
 * kernel looks an entry up as it stands (a `..` after a symlink leaves the
 * directory the symlink leads to, not the one written before it), so add()
 * keeps where its lookup leads (lookup-path.ts) and the symlinks on the way.
 */
export function pathRequests(path: string | undefined): PathRequest[] {
  const out: PathRequest[] = [];
  for (const { entry } of entries(path)) {
    if (!entry.startsWith('/')) continue;
    const dir = lookupPath(entry).path;
    if (!inModules(entry, dir)) {
      out.push({ path: entry, type: 'dir', why: `a directory on your PATH${dir === entry ? '' : ` (${dir})`}` });
      continue;
    }
    for (const name of HOST_RUN_NAMES) out.push({ path: `${entry.replace(/\/+$/, '')}/${name}`, type: 'file', why: `a command the host runs by name from ${dir} on your PATH` });
  }
  return out;
}

/** How an entry that is resolved against the current directory reads in a message. */
function describe(entry: string, position: number): string {
  return entry === '' ? `PATH entry ${position} is empty (a leading, trailing or doubled ':'), which means the current directory` : `PATH entry ${position} ${JSON.stringify(entry)} is relative to the current directory`;
}

/** The entry written absolute, as a fix to suggest (a leading ~ is only bash's: execvp and env look for a directory named ~). */
function absoluteExample(entry: string): string {
  return entry.startsWith('~') ? `"$HOME${entry.slice(1)}"` : JSON.stringify(resolve(entry === '' ? '.' : entry));
}

/**
 * Refuses a PATH with relative or empty entries unless allowed; returns
 * whether it had any (a weaker mode to record).
 */
export function checkRelativePath(path: string | undefined, allowed: boolean): boolean {
  const bad = entries(path).filter((e) => !e.entry.startsWith('/'));
  if (bad.length === 0) return false;
  if (allowed) return true;
  const first = bad[0]!;
  const more = bad.length > 1 ? ` (and ${bad.slice(1).map((e) => (e.entry === '' ? `entry ${e.position}, empty` : `entry ${e.position} ${JSON.stringify(e.entry)}`)).join('; ')})` : '';
  throw new LaunchError(
    `${describe(first.entry, first.position)}${more}: every directory the box can write (the workspace, its subdirectories, each --rw) would become a place to plant the commands you type after it exits; remove the entry from PATH or make it absolute (e.g. ${absoluteExample(first.entry)}), or pass --allow-relative-path to run anyway`,
  );
}

/**
 * Refuses an absolute PATH entry that is one of the writable trees itself
 * (roots: real paths, with the flag that mounts each), where its lookup
 * leads (lookup-path.ts): it cannot be kept read-only without taking the
 * tree from the box. A node_modules one is not refused: the names the host
 * runs from it are kept below the root. An entry that a writable tree
 * shows through another mount of the same directory (a bind mount,
 * src/core/mount-location.ts) is refused too: only paths below the roots are kept.
 */
export function refuseWritablePathRoots(path: string | undefined, roots: readonly { path: string; flag: string }[], table: readonly MountEntry[] = mountTable()): void {
  for (const { entry, position } of entries(path)) {
    if (!entry.startsWith('/')) continue;
    const dir = lookupPath(entry).path;
    const alias = roots.find((r) => !isInside(r.path, dir) && insideOnDisk(r.path, dir, table));
    if (alias) {
      throw new LaunchError(`PATH entry ${position} ${JSON.stringify(entry)} is inside ${alias.flag} ${alias.path} through another mount of the same directory (a bind mount): the box could put any command there, which you would run after it exits; remove it from PATH, or mount a directory that does not hold it`);
    }
    if (inModules(entry, dir)) continue;
    const root = roots.find((r) => r.path === dir);
    if (!root) continue;
    throw new LaunchError(`PATH entry ${position} ${JSON.stringify(entry)} is the directory mounted read-write by ${root.flag} ${root.path}: the box could put any command there, which you would run after it exits; remove it from PATH (or put the commands in a subdirectory, e.g. ${JSON.stringify(resolve(dir, 'bin'))}, and that on PATH), or mount another directory`);
  }
}
