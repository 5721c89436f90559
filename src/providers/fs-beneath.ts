// Opening beneath the root for the fs host: the root's directory fd and the
// addon's openBeneath (native/openat.cc: openat2 with RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or the O_NOFOLLOW walk), with
// the kernel's errors turned into HostIoError codes. Every fd an operation
// opens is registered with it and closed when it ends.
import { closeSync, constants as fsc, fstatSync, openSync } from 'node:fs';
import { constants as osc } from 'node:os';
import { errnoName } from '../core/errors.js';
import { loadAddon, type NativeAddon } from '../native/addon.js';
import { HostIoError } from './host-error.js';

/** The errno name of a native ({errno > 0}) or Node ({code}) error, or undefined. */
function errorName(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const { code, errno } = e as { code?: unknown; errno?: unknown };
  if (typeof code === 'string' && code.startsWith('E')) return code;
  return typeof errno === 'number' ? errnoName(Math.abs(errno)) : undefined;
}

/** A kernel error on `path` during `what`, as the HostIoError the provider gets back. */
export function hostErrorOf(e: unknown, what: string, path: string): HostIoError {
  if (e instanceof HostIoError) return e;
  const name = errorName(e);
  const p = JSON.stringify(path);
  const detail = e instanceof Error ? e.message : String(e);
  switch (name) {
    case 'ELOOP':
      return new HostIoError('symlink_refused', `${what} ${p}: the path is or passes through a symbolic link, and the fs host follows none (not even one that stays inside the root)`);
    case 'EXDEV':
      // Paths are relative, without ".." or symlinks: what openat2 refuses here is a mount point on the way.
      return new HostIoError('mount_crossed', `${what} ${p}: the path crosses a mount point below the root, and the fs host serves the root's own mount only (another mount could show files it must never serve)`);
    case 'ENOENT':
      return new HostIoError('not_found', `${what} ${p}: no such file or directory`);
    case 'ENOTDIR':
      return new HostIoError('not_a_directory', `${what} ${p}: a component of the path is not a directory`);
    case 'EISDIR':
      return new HostIoError('not_regular_file', `${what} ${p}: is a directory`);
    case 'ENXIO':
      return new HostIoError('not_regular_file', `${what} ${p}: is a socket or a device without a driver, not a regular file`);
    case 'EEXIST':
    case 'ENOTEMPTY':
      return new HostIoError('file_exists', `${what} ${p}: already exists`);
    case 'EACCES':
    case 'EPERM':
      return new HostIoError('permission_denied', `${what} ${p}: permission denied (${name})`);
    case 'ENOSPC':
    case 'EDQUOT':
      return new HostIoError('no_space', `${what} ${p}: no space left (${name})`);
    case 'ENAMETOOLONG':
      return new HostIoError('path_too_long', `${what} ${p}: a name is too long`);
    case 'EINVAL':
      if ((e as { step?: unknown }).step === 'path' || (e as { step?: unknown }).step === 'name') return new HostIoError('path_invalid', `${what} ${p}: not a normalized relative path`);
  }
  return new HostIoError('io_error', `${what} ${p} failed: ${detail}`);
}

/** The fds one operation opened; close() closes them all (in reverse). */
export class FdScope {
  private readonly fds: number[] = [];

  add(fd: number): number {
    this.fds.push(fd);
    return fd;
  }

  close(): void {
    for (const fd of this.fds.splice(0).reverse()) {
      try {
        closeSync(fd);
      } catch {
        // already closed: nothing to release
      }
    }
  }
}

/** Opens things beneath one root directory; walk forces the fallback without openat2. */
export class Beneath {
  readonly flags: ReturnType<NativeAddon['openFlags']>;
  private readonly addon: NativeAddon;

  constructor(
    private readonly root: string,
    private readonly walk: boolean,
  ) {
    this.addon = loadAddon();
    this.flags = this.addon.openFlags();
  }

  get native(): NativeAddon {
    return this.addon;
  }

  /**
   * The root's directory fd, registered with scope. The directories above it
   * are configuration and may be reached through symlinks; the root itself
   * may not be one (whoever can write its parent could point it anywhere
   * between two calls), and must belong to the gate's user unless the gate
   * is root.
   */
  openRoot(scope: FdScope): number {
    const shown = JSON.stringify(this.root);
    let fd: number;
    try {
      fd = scope.add(openSync(this.root, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new HostIoError('root_unavailable', `the fs root ${shown} is a symbolic link: configure the directory's real path`);
      throw new HostIoError('root_unavailable', `the fs root ${shown} cannot be opened as a directory: ${e instanceof Error ? e.message : String(e)}`);
    }
    const euid = process.geteuid?.() ?? 0;
    const owner = fstatSync(fd).uid;
    if (euid !== 0 && owner !== euid) throw new HostIoError('root_unavailable', `the fs root ${shown} belongs to uid ${owner}, not to the gate's uid ${euid}: run the gate as the root's owner`);
    return fd;
  }

  /**
   * path beneath dirfd ("." is dirfd itself, not reopened) with flags
   * (O_NOFOLLOW and O_CLOEXEC are added), registered with scope.
   */
  open(scope: FdScope, dirfd: number, path: string, flags: number, what: string, mode = 0): number {
    if (path === '.') return dirfd;
    try {
      return scope.add(this.addon.openBeneath(dirfd, path, flags, mode, this.walk));
    } catch (e) {
      throw hostErrorOf(e, what, path);
    }
  }

  /**
   * The directory path beneath dirfd as an O_PATH fd (usable as the dirfd of
   * later calls), or dirfd itself for ".". A symlink there is refused as
   * symlink_refused, anything else that is not a directory as not_a_directory.
   */
  openDir(scope: FdScope, dirfd: number, path: string, what: string): number {
    if (path === '.') return dirfd;
    const fd = this.open(scope, dirfd, path, this.flags.O_PATH, what);
    const st = fstatSync(fd);
    if (st.isSymbolicLink()) throw hostErrorOf({ errno: osc.errno.ELOOP }, what, path);
    if (!st.isDirectory()) throw new HostIoError('not_a_directory', `${what} ${JSON.stringify(path)}: is not a directory`);
    return fd;
  }
}
