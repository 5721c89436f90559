// The launcher's own work on a path inside a box's writable tree (before the
// box: placeholders, the scan; after it: the check of what it left), which a
// box still running on the same tree may change at any moment: rename a
// directory away and put a symlink to ~/.ssh in its place. Every path acted
// on there is a real path (the plan's, or one a walk built from the names it
// listed), so a symlink on it now was swapped in since: it is refused
// (ELOOP), never followed. The path's parent, or the path itself, is opened
// O_PATH through no symlink (openat2 RESOLVE_NO_SYMLINKS, native/openat.cc)
// and the call goes through /proc/self/fd/N/name or /proc/self/fd/N, which
// name that very directory or inode: a swap after the open changes nothing
// (and chmod there acts on the inode opened; fchmod refuses an O_PATH fd).
import { closeSync, fstatSync, type Stats } from 'node:fs';
import { loadAddon } from '../native/addon.js';
import { errnoName } from '../core/errors.js';
import { showPath, type FsPath } from './tree-walk.js';

const SLASH = 0x2f;

/** The parent and the last name of an absolute path (as bytes when it is a Buffer). */
function split(path: FsPath): { dir: FsPath; name: FsPath } {
  if (typeof path === 'string') {
    const i = path.lastIndexOf('/');
    return { dir: i <= 0 ? '/' : path.slice(0, i), name: path.slice(i + 1) };
  }
  const i = path.lastIndexOf(SLASH);
  return { dir: i <= 0 ? '/' : path.subarray(0, i), name: path.subarray(i + 1) };
}

/** A directory or file opened O_PATH through no symlink; closed by the helpers below. */
export interface Opened {
  readonly fd: number;
  /** The path it was opened by (for messages). */
  readonly path: FsPath;
  /** /proc/self/fd/N: the inode itself. */
  readonly self: string;
  /** /proc/self/fd/N/name: a name in the directory opened. */
  at(name: FsPath): FsPath;
  /** fstat of the inode opened. */
  stat(): Stats;
}

const WHY: Record<string, string> = {
  ELOOP: 'a symlink is on its way now (swapped in since latchgate looked at it, by another box on the same tree?); not followed',
  ENOTDIR: 'it, or a name on its way, is no directory now (a symlink swapped in since latchgate looked at it?); not followed',
  ENOENT: 'it is gone',
};

function open(path: FsPath, flags: number): Opened {
  const addon = loadAddon();
  const fd = addon.openNoSymlinks(path, flags | addon.openFlags().O_NOFOLLOW);
  if (fd < 0) {
    const code = errnoName(-fd);
    throw Object.assign(new Error(`${code}: ${showPath(path)}: ${WHY[code] ?? 'cannot be opened'}`), { code, errno: fd });
  }
  const self = `/proc/self/fd/${fd}`;
  return {
    fd,
    path,
    self,
    at: (name) => (typeof name === 'string' ? `${self}/${name}` : Buffer.concat([Buffer.from(`${self}/`), name])),
    stat: () => fstatSync(fd),
  };
}

/** fn with o, closed afterwards; errors name the path, not the fd. */
function using<T>(o: Opened, fn: (o: Opened) => T): T {
  try {
    return fn(o);
  } catch (e) {
    if (e instanceof Error) e.message = e.message.replaceAll(o.self, showPath(o.path));
    throw e;
  } finally {
    closeSync(o.fd);
  }
}

/** The directory at path opened through no symlink (it too must be none); the caller closes o.fd. */
export function openDirNoFollow(path: FsPath): Opened {
  return open(path, loadAddon().openFlags().O_DIRECTORY);
}

/** fn on the directory at path (no symlink on the way, nor in its place). */
export function inDir<T>(path: FsPath, fn: (dir: Opened) => T): T {
  return using(openDirNoFollow(path), fn);
}

/** fn on path itself, whatever it is (no symlink on the way; a symlink in its place is opened as one). */
export function atPath<T>(path: FsPath, fn: (it: Opened) => T): T {
  return using(open(path, 0), fn);
}

/** fn on the name of path in its parent directory, opened through no symlink: fn acts on parent.at(name). */
export function inParent<T>(path: FsPath, fn: (parent: Opened, name: FsPath) => T): T {
  const { dir, name } = split(path);
  return inDir(dir, (parent) => fn(parent, name));
}
