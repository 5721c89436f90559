// A root launch on a root-owned workspace: the box's user is nobody, never
// uid 0, and the workspace is mounted through an idmapped mount (Linux 5.12+,
// mount_setattr(2) MOUNT_ATTR_IDMAP; native/idmap.cc) that makes root's
// files there nobody's in the box and what nobody creates root's on disk.
// Only the workspace and the --rw directories root owns too get the idmap
// (and what of them the box mounts again: protected paths); every other tree
// is mounted as it is. Where the kernel cannot idmap a tree the launch is
// refused, with the fix: nothing falls back to a read-only workspace silently.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute } from 'node:path';
import { LaunchError, errnoName } from '../core/errors.js';
import { isInside } from '../core/paths.js';
import { loadAddon } from '../native/addon.js';
import type { Identity, IdmapPlan } from './identity.js';
import { SOCKET_WHY, type MountEntry } from './mount-plan.js';
import { insideOnDisk, mountTable, type MountEntry as MountInfo } from '../core/mount-location.js';

/**
 * Where the host runs, loads or trusts files as root (configuration, cron
 * and systemd units, binaries, libraries, the boot loader, package state,
 * the runtime sockets): through the idmap the box would own them.
 */
export const SYSTEM_TREES: readonly string[] = ['/etc', '/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/boot', '/var', '/run', '/opt', '/snap'];
/** Shared directories (others' files, the runtime directories' fallback): the box may not own them, nor what holds them. */
const SHARED_TREES: readonly string[] = ['/tmp'];

/**
 * Refuses an idmapped tree that is, lies in or holds a system tree, or holds
 * a shared one, compared on disk (src/core/mount-location.ts): a bind mount of /etc
 * elsewhere, or one mounted inside the workspace, is /etc all the same.
 */
export function refuseSystemTrees(trees: readonly string[], table: readonly MountInfo[] = mountTable()): void {
  const real = (p: string) => (existsSync(p) ? realpathSync(p) : undefined);
  const system = SYSTEM_TREES.map(real).filter((p): p is string => p !== undefined);
  const shared = SHARED_TREES.map(real).filter((p): p is string => p !== undefined);
  for (const tree of trees) {
    // The tree and every mount below it (the idmap takes them all along).
    for (const point of [tree, ...table.filter((m) => m.point !== tree && isInside(tree, m.point)).map((m) => m.point)]) {
      const lies = system.find((s) => insideOnDisk(s, point, table));
      const holds = [...system, ...shared].find((s) => insideOnDisk(point, s, table));
      const hit = lies ?? holds;
      if (hit === undefined) continue;
      const what = lies === undefined ? `holds ${hit}` : point === hit ? `is ${hit}` : `lies in ${hit}`;
      const how = point === tree ? `${what} (on disk: a bind mount counts)` : `has a mount at ${point} that ${what}`;
      throw new LaunchError(
        `${tree} belongs to root and ${how}: the box's user would own it as root on the host through the idmapped mount (what root runs or trusts there, or other users' files), so it is refused; give the box a project directory outside the system's trees (e.g. /srv/project or /root/project), or chown -R it to a user and run latchgate as that user`,
      );
    }
  }
}

/**
 * The idmap with its trees: the workspace, then each --rw directory of the
 * same owner (outside it), once the kernel has shown it can idmap them all.
 */
export function planIdmap(id: Identity, workspace: string, rw: readonly string[]): IdmapPlan | null {
  if (!id.idmap) return null;
  const { hostUid } = id.idmap;
  const trees = [workspace, ...rw.filter((p) => !isInside(workspace, p) && statSync(p).uid === hostUid)];
  refuseSystemTrees(trees);
  // The box's sockets and state copies live in TMPDIR, in directories root's ownership keeps
  // safe (box-dir.ts): through the idmap the box could change them.
  const tmp = realpathSync(tmpdir());
  const holder = trees.find((t) => isInside(t, tmp));
  if (holder) {
    throw new LaunchError(`TMPDIR ${tmp} is inside ${holder}, which the box's user writes as root through the idmap: it could swap the box's sockets there; set TMPDIR to a directory outside the workspace (e.g. TMPDIR=/tmp)`);
  }
  const failure = loadAddon().idmapCheck(trees, id.idmap.uidMap, id.idmap.gidMap);
  if (failure) {
    throw new LaunchError(
      `--workspace ${workspace} belongs to uid ${hostUid}: the box's user (nobody, never root) would get it through an idmapped mount, which the kernel refused for ${failure.path || 'it'} (${failure.step}: ${errnoName(failure.errno)}; needs Linux 5.12+ and a filesystem that supports idmapped mounts); chown -R the workspace to a user and run latchgate as that user, or set SUDO_UID=<uid>`,
    );
  }
  return { ...id.idmap, trees };
}

/** The tree of the idmap an absolute host path lies in (the deepest), if any. */
export function idmapTreeOf(trees: readonly string[], path: string): string | undefined {
  if (!isAbsolute(path)) return undefined;
  let best: string | undefined;
  for (const t of trees) if (isInside(t, path) && (!best || t.length > best.length)) best = t;
  return best;
}

/**
 * Marks the binds whose source lies in an idmapped tree: the box sees them
 * through the idmap too. Not the exits' sockets, which stay the launcher's.
 */
export function markIdmapped(entries: MountEntry[], trees: readonly string[]): void {
  for (const e of entries) if (e.kind === 'bind' && e.why !== SOCKET_WHY && idmapTreeOf(trees, e.src) !== undefined) e.idmapped = true;
}
