// Hard links to latchgate's own files. The box keeps those files read-only
// by path, but a file is its inode: any other name it has (a hard link)
// inside a writable mount writes the same content, which the host runs
// after the box exits. pnpm installs packages as hard links into its
// content store, and `cp -al` makes such copies. The box cannot make new
// links to the read-only names (link(2) across mounts fails with EXDEV), so
// the links that count are those that exist at launch: a regular file with
// more links than the installation itself holds, on the filesystem of a
// writable mount, is refused. A file with one link, or whose every link is
// in the installation (node-gyp links build/Release/x.node to
// obj.target/x.node), or that lies on a filesystem no writable mount is on,
// cannot be reached that way.
import { statSync } from 'node:fs';
import { LaunchError } from '../core/errors.js';
import { isInside } from '../core/paths.js';
import { loadAddon } from '../native/addon.js';
import { mountTable } from '../core/mount-location.js';

/** A file of the trees that has names outside them, on a writable mount's filesystem. */
export interface AliasedFile {
  path: string;
  nlink: number;
  /** Its names found in the trees. */
  found: number;
  /** The writable mounts on its filesystem. */
  mounts: string[];
}

/** Mount points as /proc/self/mountinfo has them (src/core/mount-location.ts). */
export function mountPoints(text?: string): string[] {
  return mountTable(text).map((m) => m.point);
}

const devOf = (p: string) => {
  try {
    return statSync(p, { bigint: true }).dev;
  } catch {
    return undefined;
  }
};

/** The filesystems of a tree: its own and those mounted below it. */
function devicesOf(root: string, mounts: readonly string[]): bigint[] {
  return [root, ...mounts.filter((m) => m !== root && isInside(root, m))].map(devOf).filter((d): d is bigint => d !== undefined);
}

/** st_dev of each filesystem the box can write through, with the writable mounts on it (the box binds them with their submounts). */
export function writableFilesystems(writableRoots: readonly string[], mounts: readonly string[] = mountPoints()): Map<bigint, string[]> {
  const out = new Map<bigint, string[]>();
  for (const w of writableRoots) {
    for (const d of devicesOf(w, mounts)) {
      const list = out.get(d) ?? [];
      if (!list.includes(w)) list.push(w);
      out.set(d, list);
    }
  }
  return out;
}

/** The trees as real, existing paths, none inside another (each name is counted once). */
function outermost(trees: readonly string[]): string[] {
  const sorted = [...new Set(trees)].sort((a, b) => a.length - b.length);
  const out: string[] = [];
  for (const t of sorted) if (!out.some((o) => isInside(o, t))) out.push(t);
  return out;
}

/**
 * The regular files under trees (real paths, symlinks not followed) with
 * more links than the trees hold, on a filesystem in writable. A name under
 * a writable mount inside a tree is not held by it. Only trees
 * on such a filesystem (or with one mounted below) are walked, by the addon
 * off the JS thread (native/linkwalk.cc: an fstatat per file, about a third
 * of the CPU a walk in JS costs). A walk that fails (but for a directory the
 * launcher cannot read) refuses.
 */
export async function aliasableFiles(trees: readonly string[], writable: ReadonlyMap<bigint, string[]>, mounts: readonly string[] = mountPoints()): Promise<AliasedFile[]> {
  const roots = outermost(trees).filter((t) => devicesOf(t, mounts).some((d) => writable.has(d)));
  if (roots.length === 0) return [];
  const inner = [...new Set([...writable.values()].flat())].filter((w) => roots.some((t) => isInside(t, w)));
  const byInode = new Map<string, { path: string; nlink: number; dev: bigint; names: Set<string> }>();
  let linked;
  try {
    linked = await loadAddon().linkedFiles(roots);
  } catch (e) {
    throw new LaunchError(`cannot check ${roots.join(', ')} for hard links a writable mount could reach: ${(e as Error).message}`);
  }
  for (const f of linked) {
    const key = `${f.dev}:${f.ino}`;
    const seen = byInode.get(key) ?? { path: f.path, nlink: f.nlink, dev: f.dev, names: new Set<string>() };
    if (!inner.some((w) => isInside(w, f.path))) seen.names.add(f.path);
    if (seen.path !== f.path && inner.some((w) => isInside(w, seen.path))) seen.path = f.path; // name the installation's own
    byInode.set(key, seen);
  }
  return [...byInode.values()]
    .filter((f) => f.names.size < f.nlink && writable.has(f.dev))
    .map((f) => ({ path: f.path, nlink: f.nlink, found: f.names.size, mounts: writable.get(f.dev)! }));
}

/** The refusal for files a writable mount could reach by another name; what names the fix is the caller's. */
export function refuseAliasedFiles(files: readonly AliasedFile[], what: string, fix: string): void {
  if (files.length === 0) return;
  const shown = files.slice(0, 3).map((f) => `${f.path} (${f.nlink} links, ${f.found} of them in it)`);
  const more = files.length > shown.length ? ` and ${files.length - shown.length} more` : '';
  const mounts = [...new Set(files.flatMap((f) => f.mounts))];
  throw new LaunchError(
    `${what} has files with hard links outside it, which the box could write through: ${shown.join(', ')}${more}; ` +
      `they are on the filesystem of the writable mount${mounts.length > 1 ? 's' : ''} ${mounts.join(', ')}, and a write through a name there changes what the host runs after the box exits; ${fix}`,
  );
}
