// latchgate's own files (src/gate/own-paths.ts), which no box may write.
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ownPaths, type OwnPath } from '../gate/own-paths.js';
import type { GateSetup } from '../gate/setup.js';
import { LaunchError } from '../core/errors.js';
import { isInside } from '../core/paths.js';
import { insideOnDisk, mountTable, type MountEntry } from '../core/mount-location.js';

export type { OwnPath };

/** The real path of p, or of its deepest existing ancestor with the rest appended. */
function realish(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    const up = dirname(p);
    return up === p ? p : join(realish(up), basename(p));
  }
}

/**
 * latchgate's own files, kept read-only inside every box whose writable
 * roots hold them (a missing one gets a read-only placeholder, so it cannot
 * be created): the configuration files read, the user config directory, the
 * state directories (trust store, ledger, keys) and the runtime directory.
 * The state and runtime directories are created now (mode 0700, as the gate
 * creates them), so a box never gets a placeholder there that the launcher
 * would then fill with its ledger.
 */
export function prepareOwnPaths(s: GateSetup, env: NodeJS.ProcessEnv = process.env): OwnPath[] {
  const list = ownPaths(s, env);
  for (const o of list.slice(-3)) {
    try {
      // Parents with the usual mode: one the box's user cannot search would keep the box from being built.
      mkdirSync(dirname(o.path), { recursive: true });
      if (!existsSync(o.path)) mkdirSync(o.path, { mode: 0o700 });
    } catch {
      // Left missing: the box gets a read-only placeholder there instead.
    }
  }
  const seen = new Set<string>();
  return list.map((o) => ({ ...o, path: realish(o.path) })).filter((o) => !seen.has(o.path) && !!seen.add(o.path));
}

/**
 * A writable root that is one of latchgate's own paths or lies inside one
 * cannot be protected: refused. So is one that holds an own path through
 * another mount of the same directory (a bind mount, src/core/mount-location.ts):
 * only the paths written below the root are kept read-only.
 */
export function refuseWritableOwnPaths(writableRoots: readonly string[], own: readonly OwnPath[], table: readonly MountEntry[] = mountTable()): void {
  for (const root of writableRoots) {
    for (const o of own) {
      if (insideOnDisk(o.path, root, table)) {
        const how = isInside(o.path, root) ? (o.path === root ? '' : 'inside ') : 'through another mount of the same directory, ';
        throw new LaunchError(`${root}: refused as a writable mount: it is ${how}latchgate's ${o.what} ${o.path}, which a box must not write; mount a directory that does not hold it`);
      }
      if (!isInside(root, o.path) && insideOnDisk(root, o.path, table)) {
        throw new LaunchError(`${root}: refused as a writable mount: it holds latchgate's ${o.what} ${o.path} through another mount of the same directory (a bind mount), which a box must not write and which is kept read-only only at its own path; mount a directory that does not hold it`);
      }
    }
  }
}
