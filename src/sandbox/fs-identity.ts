// Work done by a root launcher inside directories another uid controls (the
// workspace, the agent's home) runs as that uid: the calling thread takes
// its filesystem identity (native/fsident.cc) for the duration of a
// synchronous function, so a symlink or rename that user swaps in can never
// make root create, chmod, chown or remove something that user could not.
// A launcher that is not root already is that user: fn just runs.
// A root-owned workspace given to nobody through an idmapped mount (idmap.ts)
// is root's on disk, so a symlink the box left there would lead root
// anywhere: the thread then also sees the idmapped trees as the box does
// (a view), and acts as nobody, with exactly the agent's rights there.
import { loadAddon } from '../native/addon.js';
import type { IdmapPlan } from './identity.js';

export interface FsOwner {
  uid: number;
  gid: number;
  /** The trees to see through their idmapped copy meanwhile. */
  view?: { uidMap: string; gidMap: string; paths: string[] };
}

/**
 * The owner to act as for a plan's identity: the agent's uid and gid when
 * root launches the box, else undefined (the launcher is the agent's user).
 */
export function fsOwnerOf(id: { hostUid: number; uid: number; gid: number; idmap: IdmapPlan | null }): FsOwner | undefined {
  if (id.hostUid !== 0) return undefined;
  // Parents first: a tree inside another is mounted over it.
  const paths = [...(id.idmap?.trees ?? [])].sort((a, b) => a.length - b.length);
  const view = id.idmap && paths.length > 0 ? { uidMap: id.idmap.uidMap, gidMap: id.idmap.gidMap, paths } : undefined;
  return { uid: id.uid, gid: id.gid, ...(view ? { view } : {}) };
}

/**
 * Runs fn synchronously as owner (fsuid, fsgid and groups of this thread
 * only). fn must not await: only synchronous fs calls run on this thread.
 */
export function asOwner<T>(owner: FsOwner | undefined, fn: () => T): T {
  if (!owner || process.getuid!() !== 0) return fn();
  return loadAddon().withFsIds(owner.uid, owner.gid, fn, owner.view) as T;
}
