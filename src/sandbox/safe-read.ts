// Reading files the box may have planted. Opening a FIFO blocks until a
// writer comes, a device may do anything: every read here opens without
// blocking, checks on the open descriptor that it is a regular file, and
// reads a bounded amount. Symlinks are followed (git follows them too); the
// caller decides under which identity (fs-identity.ts).
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';

type PathLike = string | Buffer;

function openRegular(p: PathLike): { fd: number; size: number } | undefined {
  let fd: number;
  try {
    fd = openSync(p, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (st.isFile()) return { fd, size: st.size };
  } catch {
    // fall through
  }
  closeSync(fd);
  return undefined;
}

/** The bytes of a regular file, or undefined (missing, not regular, or larger than max). */
export function readRegular(p: PathLike, max = 1 << 20): Buffer | undefined {
  const f = openRegular(p);
  if (!f) return undefined;
  try {
    if (f.size > max) return undefined;
    const buf = Buffer.alloc(f.size + 1);
    let n = 0;
    for (let r; n < buf.length && (r = readSync(f.fd, buf, n, buf.length - n, n)) > 0; ) n += r;
    return n > max ? undefined : buf.subarray(0, n);
  } catch {
    return undefined;
  } finally {
    closeSync(f.fd);
  }
}

/** The first bytes of a regular file (at most n), or undefined. */
export function readHead(p: PathLike, n: number): Buffer | undefined {
  const f = openRegular(p);
  if (!f) return undefined;
  try {
    const buf = Buffer.alloc(n);
    return buf.subarray(0, readSync(f.fd, buf, 0, n, 0));
  } catch {
    return undefined;
  } finally {
    closeSync(f.fd);
  }
}

/**
 * SHA-256 of a regular file's content (up to 64 MiB); null when the path is
 * missing; "not-a-regular-file" when it is something else (a FIFO, a
 * directory, a device): that too differs from any hash.
 */
export function contentHash(p: PathLike): string | null {
  const f = openRegular(p);
  if (!f) return lstatSync(p, { throwIfNoEntry: false }) ? 'not-a-regular-file' : null;
  try {
    const h = createHash('sha256');
    const buf = Buffer.alloc(1 << 16);
    for (let pos = 0, r; pos < 64 << 20 && (r = readSync(f.fd, buf, 0, buf.length, pos)) > 0; pos += r) h.update(buf.subarray(0, r));
    return h.digest('hex');
  } catch {
    return 'unreadable';
  } finally {
    closeSync(f.fd);
  }
}
