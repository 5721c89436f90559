// The file rules of the key store, the same for every kind of key:
//   - what is trusted: a file is opened without following a symlink and
//     checked on what was opened (fstat): a regular file, owned by this
//     user (root included: a key another user can replace is theirs), and
//     for a private key not readable or writable by group or others; the
//     directory is a real directory of this user that group and others
//     cannot write (else they could swap the files in it);
//   - one lock: a lock file created exclusively next to what it guards,
//     waited for up to 10 s, taken over when older than 30 s (its holder
//     died: every change under it takes milliseconds);
//   - durability: new content goes to a temporary file that is fsynced,
//     then linked (create) or renamed (replace) into place, and the
//     directory is fsynced, so a crash leaves the old or the new file whole.
// Every refusal names the file and the fix.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants as fs,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { KeyStoreError } from './ed25519.js';

const LOCK_WAIT_MS = 10_000;
const LOCK_STALE_MS = 30_000;

export type FileRole = 'private key' | 'key history';

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

function modeOf(st: Stats): string {
  return (st.mode & 0o777).toString(8).padStart(4, '0');
}

/**
 * lstat, or null when nothing is there (ENOENT, or ENOTDIR: a name on the
 * way is not a directory). Asked twice per signature (the key file and its
 * `.next`, which is almost never there), so a missing file must not cost an
 * exception: Node builds one with its stack for every failed lstatSync,
 * about 30 us, most of an execute's key-store time.
 */
export function lstatOrNull(path: string): Stats | null {
  return lstatSync(path, { throwIfNoEntry: false }) ?? null;
}

/** Whether two stats are of the same, unchanged file (a rename, rewrite or chmod changes one of these). */
export function sameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

function refuseForeignOwner(path: string, st: Stats, what: string): void {
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new KeyStoreError(`${what} ${path} is owned by uid ${st.uid}, not by this user (uid ${uid}); refusing to use it. Fix: chown ${uid} ${path}, or run latchgate as its owner`);
  }
}

function checkOpened(path: string, st: Stats, role: FileRole): void {
  if (!st.isFile()) {
    throw new KeyStoreError(`${role} ${path} is not a regular file; refusing to use it. Fix: remove it and let latchgate create a new one, or put the real file there`);
  }
  refuseForeignOwner(path, st, role);
  if (role === 'private key' && (st.mode & 0o077) !== 0) {
    throw new KeyStoreError(`${role} ${path} is readable or writable by group or others (mode ${modeOf(st)}); refusing to use it. Fix: chmod 600 ${path}`);
  }
  if (role === 'key history' && (st.mode & 0o022) !== 0) {
    throw new KeyStoreError(`${role} ${path} is writable by group or others (mode ${modeOf(st)}); refusing to use it. Fix: chmod 644 ${path}`);
  }
}

/**
 * Reads a file of the store after the checks above; null when it does not
 * exist. The stat returned is the opened file's.
 */
export function readChecked(path: string, role: FileRole): { text: string; stat: Stats } | null {
  let fd: number;
  try {
    fd = openSync(path, fs.O_RDONLY | fs.O_NOFOLLOW | fs.O_NONBLOCK);
  } catch (e) {
    if (errno(e) === 'ENOENT') return null;
    if (errno(e) === 'ELOOP') {
      throw new KeyStoreError(`${role} ${path} is a symlink; refusing to follow it. Fix: replace the link with the file it points to, or remove it and let latchgate create a new one`);
    }
    throw e;
  }
  try {
    const stat = fstatSync(fd);
    checkOpened(path, stat, role);
    return { text: readFileSync(fd, 'utf8'), stat };
  } finally {
    closeSync(fd);
  }
}

/** Creates the directory (0700, durably) if needed and refuses one others could write into. */
export function ensureKeyDir(dir: string): void {
  const first = mkdirSync(resolve(dir), { recursive: true, mode: 0o700 });
  // Each directory made here exists for sure only once its parent is fsynced.
  for (let d = resolve(dir); first !== undefined; d = dirname(d)) {
    fsyncDir(dirname(d));
    if (d === first || d === dirname(d)) break;
  }
  checkKeyDir(dir, lstatSync(dir));
}

/**
 * Checks the directory as ensureKeyDir() does, creating nothing; false when
 * there is none (the read paths: a state directory may be read-only).
 */
export function existingKeyDir(dir: string): boolean {
  const st = lstatOrNull(dir);
  if (!st) return false;
  checkKeyDir(dir, st);
  return true;
}

function checkKeyDir(dir: string, st: Stats): void {
  if (!st.isDirectory()) {
    throw new KeyStoreError(`key directory ${dir} is not a directory (a symlink or a file); refusing to use it. Fix: put the real directory at ${dir}`);
  }
  refuseForeignOwner(dir, st, 'key directory');
  if ((st.mode & 0o022) !== 0) {
    throw new KeyStoreError(`key directory ${dir} is writable by group or others (mode ${modeOf(st)}), who could replace the keys in it; refusing to use it. Fix: chmod 700 ${dir}`);
  }
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, fs.O_RDONLY | fs.O_DIRECTORY);
    fsyncSync(fd);
  } catch (e) {
    throw new KeyStoreError(`could not fsync the directory ${dir} (${(e as Error).message}), so a new key might not survive a crash. Fix: keep the state directory on a local filesystem that supports fsync`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A fresh file next to `path` holding `data`, fsynced; returns its name. */
function writeTemp(path: string, data: string, mode: number): string {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, fs.O_WRONLY | fs.O_CREAT | fs.O_EXCL | fs.O_NOFOLLOW, mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/** Creates `path` durably unless something is there already; returns whether it did. */
export function createDurably(path: string, data: string, mode: number): boolean {
  const tmp = writeTemp(path, data, mode);
  let created = true;
  try {
    linkSync(tmp, path);
  } catch (e) {
    if (errno(e) !== 'EEXIST') throw e;
    created = false;
  } finally {
    unlinkSync(tmp);
  }
  fsyncDir(dirname(path));
  return created;
}

/** Replaces (or creates) `path` atomically and durably. */
export function replaceDurably(path: string, data: string, mode: number): void {
  const tmp = writeTemp(path, data, mode);
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
  fsyncDir(dirname(path));
}

/** Removes files (those already gone are fine) and makes that durable. */
export function removeDurably(dir: string, names: readonly string[]): void {
  for (const n of names) {
    try {
      unlinkSync(join(dir, n));
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw e;
    }
  }
  fsyncDir(dir);
}

/** Runs fn holding the lock file `lockPath` (two processes may share the key directory). */
export function withLock<T>(lockPath: string, fn: () => T): T {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      closeSync(openSync(lockPath, fs.O_WRONLY | fs.O_CREAT | fs.O_EXCL | fs.O_NOFOLLOW, 0o600));
      break;
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
      const st = lstatOrNull(lockPath);
      if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) {
        try {
          unlinkSync(lockPath); // left by a process that died holding it
        } catch {
          // another waiter took it over first
        }
      }
      if (Date.now() > deadline) {
        throw new KeyStoreError(`timed out after ${LOCK_WAIT_MS / 1000} s waiting for ${lockPath}. Fix: if no latchgate process is running, remove it`);
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
  try {
    return fn();
  } finally {
    unlinkSync(lockPath);
  }
}
