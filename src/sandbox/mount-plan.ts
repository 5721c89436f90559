// The box's filesystem as data: an ordered list of operations on the new
// root (box paths; binds keep the host path), plus the access class of each
// tree so Landlock can mirror it. Nothing here touches the kernel.
import { lstatSync, readlinkSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { LaunchError } from '../core/errors.js';
import { isInside } from '../core/paths.js';

export type AccessClass = 'list' | 'read' | 'read-exec' | 'rw' | 'rw-noexec' | 'proc' | 'device' | 'tty';

/**
 * noFollow: the path is inside a writable tree (markNoFollow), and so is src
 * when it equals path; the addon resolves them with no symlink on the way.
 */
export type MountEntry =
  | { kind: 'mkdir'; path: string; mode: number }
  | { kind: 'mkfile'; path: string }
  /** idmapped: src lies in a tree of the idmap (idmap.ts) and is seen through it. */
  | { kind: 'bind'; src: string; path: string; readonly: boolean; why: string; idmapped?: true; noFollow?: true }
  /** The idmapped copy of a host tree, made by the launcher and kept outside the box root; binds of it copy it. */
  | { kind: 'idmap-tree'; src: string; why: string }
  | { kind: 'mask'; path: string; why: string; noFollow?: true }
  | { kind: 'tmpfs'; path: string; options: string; why: string; noFollow?: true }
  /** One tmpfs of this size, mounted outside the box root: the budget-dir entries share it. */
  | { kind: 'tmp-budget'; size: string; shared: string[]; why: string }
  /** A fresh directory of the tmp-budget (the agent's, with this mode) mounted at path. */
  | { kind: 'budget-dir'; path: string; mode: number; why: string; noFollow?: true }
  | { kind: 'proc'; path: string }
  | { kind: 'devpts'; path: string }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'write'; path: string; content: string; mode: number };

export interface AccessRule {
  path: string;
  access: AccessClass;
  isFile: boolean;
}

type Node = 'dir' | 'file' | 'symlink';

/** What a socket's bind says it is. */
export const SOCKET_WHY = 'the gate socket';

/** Builds mount entries in order, creating mountpoints on the way. */
export class MountPlanner {
  readonly entries: MountEntry[] = [];
  readonly access: AccessRule[] = [];
  private readonly nodes = new Map<string, Node>([['/', 'dir']]);
  /** Box paths whose content comes from the host (binds): below them, paths exist iff they exist on the host. */
  private readonly hostTrees = new Set<string>();
  /** Directories covered by maskDir: nothing of the host below them shows. */
  private readonly maskedDirs = new Set<string>();

  private hostTreeOf(path: string): string | undefined {
    for (let p = path; ; p = dirname(p)) {
      if (this.hostTrees.has(p)) return p;
      if (p === '/') return undefined;
    }
  }

  private ensure(path: string, node: Node, mode = 0o755): void {
    if (this.nodes.has(path)) return;
    if (path !== '/') this.ensureDir(dirname(path));
    const tree = this.hostTreeOf(path);
    if (tree !== undefined) {
      // Inside a bound host tree the mountpoint must already be there.
      let st;
      try {
        st = lstatSync(path);
      } catch {
        throw new LaunchError(`cannot mount on ${path}: it does not exist inside ${tree}, which is mounted from the host as is; create it on the host or choose another path`);
      }
      if ((node === 'dir') !== st.isDirectory()) {
        throw new LaunchError(`cannot mount on ${path}: expected a ${node === 'dir' ? 'directory' : 'file'} inside ${tree}`);
      }
    } else if (node === 'dir') {
      this.entries.push({ kind: 'mkdir', path, mode });
    } else {
      this.entries.push({ kind: 'mkfile', path });
    }
    this.nodes.set(path, node);
  }

  ensureDir(path: string, mode = 0o755): void {
    this.ensure(path, 'dir', mode);
  }

  bind(src: string, path: string, readonly: boolean, access: AccessClass, why: string): void {
    const st = statSync(src);
    this.ensure(path, st.isDirectory() ? 'dir' : 'file');
    this.entries.push({ kind: 'bind', src, path, readonly, why });
    this.hostTrees.add(path);
    this.access.push({ path, access, isFile: !st.isDirectory() });
  }

  /** A host Unix socket made visible at path (created just before launch, so not checked here). */
  socket(src: string, path: string): void {
    this.ensure(path, 'file');
    this.entries.push({ kind: 'bind', src, path, readonly: false, why: SOCKET_WHY });
  }

  /**
   * Re-mounts a path inside a writable tree read-only over itself. The path
   * may be a placeholder created just before launch, so it is not checked here.
   */
  protect(path: string, readonly: boolean): void {
    this.entries.push({ kind: 'bind', src: path, path, readonly, why: readonly ? 'protected path' : 'pinned above a protected path' });
  }

  /** Whether a host path exists and a bind mount of the plan shows it in the box. */
  showsHostPath(path: string): boolean {
    if (this.hostTreeOf(path) === undefined) return false;
    for (const d of this.maskedDirs) if (isInside(d, path)) return false;
    try {
      lstatSync(path);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Covers a directory with an empty read-only tmpfs. Unlike a mask on a file,
   * it stays when the host renames a new file over a name in it (rename(2)
   * detaches mounts on the name it replaces, in every namespace).
   */
  maskDir(path: string, why: string): void {
    this.entries.push({ kind: 'tmpfs', path, options: 'ro,mode=0555,size=4k', why });
    this.maskedDirs.add(path);
  }

  /** Covers a name (even a symlink) with an empty read-only file. */
  mask(path: string, why: string): void {
    this.entries.push({ kind: 'mask', path, why });
  }

  tmpfs(path: string, options: string, access: AccessClass, why: string): void {
    this.ensureDir(path);
    this.entries.push({ kind: 'tmpfs', path, options, why });
    this.hostTrees.delete(path);
    this.access.push({ path, access, isFile: false });
  }

  /** An idmapped copy of the host tree src for the binds of paths in it (idmap.ts); before them. */
  idmapTree(src: string, why: string): void {
    this.entries.push({ kind: 'idmap-tree', src, why });
  }

  /** Starts the budget; shared lists the paths that its budgetDir() calls will mount. */
  tmpBudget(size: string, shared: string[], why: string): void {
    this.entries.push({ kind: 'tmp-budget', size, shared, why });
  }

  budgetDir(path: string, mode: number, access: AccessClass, why: string): void {
    const budget = this.entries.find((e) => e.kind === 'tmp-budget');
    if (budget?.kind !== 'tmp-budget' || !budget.shared.includes(path)) {
      throw new Error(`internal: ${path} mounted from a tmp budget that does not list it`);
    }
    this.ensureDir(path);
    this.entries.push({ kind: 'budget-dir', path, mode, why });
    this.hostTrees.delete(path);
    this.access.push({ path, access, isFile: false });
  }

  symlink(path: string, target: string): void {
    this.ensureDir(dirname(path));
    this.entries.push({ kind: 'symlink', path, target });
    this.nodes.set(path, 'symlink');
  }

  write(path: string, content: string, mode = 0o644): void {
    this.ensureDir(dirname(path));
    this.entries.push({ kind: 'write', path, content, mode });
    this.nodes.set(path, 'file');
  }

  special(kind: 'proc' | 'devpts', path: string, access: AccessClass): void {
    this.ensureDir(path);
    this.entries.push({ kind, path });
    this.access.push({ path, access, isFile: false });
  }

  rule(path: string, access: AccessClass, isFile = false): void {
    this.access.push({ path, access, isFile });
  }
}

export function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/** Mirrors a host path into the box as it is: a symlink stays a symlink. */
export function mirrorHostPath(m: MountPlanner, path: string, access: AccessClass, why: string): boolean {
  const st = lstatOrUndefined(path);
  if (!st) return false;
  if (st.isSymbolicLink()) m.symlink(path, readlinkSync(path));
  else m.bind(path, path, true, access, why);
  return true;
}

/**
 * Marks every mount at a path strictly inside a writable tree (and a bind's
 * source there: a protected path is bound from itself) to be resolved with no
 * symlink on the way. A box already running on the same tree can swap a name
 * for a symlink between this plan and the mount; followed, the mount would
 * show (a pin: writably) whatever the link names, outside the tree. The
 * plan's own paths there never pass through one: a symlinked protected path
 * or ancestor is masked itself (protected-paths.ts).
 */
export function markNoFollow(entries: MountEntry[], writableRoots: readonly string[]): void {
  const inside = (p: string) => writableRoots.some((w) => p !== w && isInside(w, p));
  for (const e of entries) {
    if (!('path' in e) || !inside(e.path)) continue;
    if (e.kind === 'bind' || e.kind === 'mask' || e.kind === 'tmpfs' || e.kind === 'budget-dir') e.noFollow = true;
    else throw new LaunchError(`internal: the plan makes a ${e.kind} at ${e.path}, inside a writable tree, which the box could swap for a symlink meanwhile; refusing to launch`);
  }
}
