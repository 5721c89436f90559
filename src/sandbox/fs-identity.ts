// Work done by a root launcher inside directories another uid controls (the
// workspace, the agent's home) runs as that uid: the calling thread takes
// its filesystem identity (native/fsident.cc) for the duration of a
// synchronous function, so a symlink or rename that user swaps in can never
// make root create, chmod, chown or remove something that user could not.
// A launcher that is not root already is that user: fn just runs.
import { loadAddon } from '../native/addon.js';

export interface FsOwner {
  uid: number;
  gid: number;
}

/**
 * The owner to act as for a plan's identity: the agent's uid and gid when
 * root launches the box, else undefined (the launcher is the agent's user).
 */
export function fsOwnerOf(id: { hostUid: number; uid: number; gid: number }): FsOwner | undefined {
  return id.hostUid === 0 ? { uid: id.uid, gid: id.gid } : undefined;
}

/**
 * Runs fn synchronously as owner (fsuid, fsgid and groups of this thread
 * only). fn must not await: only synchronous fs calls run on this thread.
 */
export function asOwner<T>(owner: FsOwner | undefined, fn: () => T): T {
  if (!owner || process.getuid!() !== 0) return fn();
  return loadAddon().withFsIds(owner.uid, owner.gid, fn) as T;
}
