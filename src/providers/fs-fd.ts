// What the fs host does with an fd once it is open beneath the root: never
// reopen by path, only fstat, read and write through it.
import { createHash } from 'node:crypto';
import { fstatSync, readSync, writeSync, type Stats } from 'node:fs';
import { HostIoError } from './host-error.js';

export type FsKind = 'file' | 'dir' | 'symlink' | 'other';

export function kindOf(st: Stats): FsKind {
  return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
}

function describe(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device file';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/**
 * fstat of fd, refused unless it is a regular file with one link. A second
 * link means the same inode has another name, possibly outside the root
 * (ln /home/user/.ssh/id_ed25519 workspace/notes.txt): through this name it
 * is indistinguishable from a file of the root, and the globs, which only
 * see this name, would be bypassed. Hard links made on purpose inside the
 * root are refused too; they cannot be told apart.
 */
export function regularFile(fd: number, what: string, path: string): Stats {
  const st = fstatSync(fd);
  if (!st.isFile()) throw new HostIoError('not_regular_file', `${what} ${JSON.stringify(path)}: is ${describe(st)}; only regular files are read, written or deleted`);
  if (st.nlink > 1) throw new HostIoError('hardlinked_file', `${what} ${JSON.stringify(path)}: has ${st.nlink} hard links; a file with another name (possibly outside the root) is refused`);
  return st;
}

/** Reads fd from offset 0 up to cap + 1 bytes (so a file over the cap shows it without being read whole). */
export function readCapped(fd: number, cap: number): Buffer {
  const buf = Buffer.allocUnsafe(cap + 1);
  let n = 0;
  while (n < buf.length) {
    const got = readSync(fd, buf, n, buf.length - n, n);
    if (got === 0) break;
    n += got;
  }
  return buf.subarray(0, n);
}

/** sha256 hex of fd's content from offset 0, read in chunks. */
export function hashFd(fd: number): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(64 * 1024);
  let pos = 0;
  for (;;) {
    const got = readSync(fd, buf, 0, buf.length, pos);
    if (got === 0) return h.digest('hex');
    h.update(buf.subarray(0, got));
    pos += got;
  }
}

export function writeAll(fd: number, data: Uint8Array): void {
  let n = 0;
  while (n < data.length) n += writeSync(fd, data, n, data.length - n, n);
}
