// Replacing a file so that a crash at any moment leaves either the old file
// or the new one, whole: a temporary file in the same directory, written,
// fsynced, renamed over the file, then the directory fsynced so the rename
// itself survives a power loss. The file keeps its mode; a new one is 0600.
import { randomBytes } from 'node:crypto';
import { link, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export type AtomicStep = 'created' | 'written' | 'synced' | 'renamed' | 'dir-synced';
export const ATOMIC_STEPS: readonly AtomicStep[] = ['created', 'written', 'synced', 'renamed', 'dir-synced'];

export interface AtomicOptions {
  /** Mode of a file that does not exist yet (default 0600). */
  newFileMode?: number;
  /** Fail rather than replace an existing file. */
  exclusive?: boolean;
  /** Called after each step (tests kill the process there). */
  afterStep?: (step: AtomicStep) => void;
}

export async function writeFileAtomic(file: string, data: string | Buffer, o: AtomicOptions = {}): Promise<void> {
  const step = o.afterStep ?? (() => {});
  let mode = o.newFileMode ?? 0o600;
  try {
    const st = await stat(file);
    if (o.exclusive) throw Object.assign(new Error(`${file} exists`), { code: 'EEXIST' });
    mode = st.mode & 0o7777;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      await fh.chmod(mode); // the umask narrowed the mode open() gave
      step('created');
      await fh.writeFile(data);
      step('written');
      await fh.sync();
      step('synced');
    } finally {
      await fh.close();
    }
    if (o.exclusive) {
      // link(2) fails on an existing name, unlike rename(2): no window where a file made meanwhile is replaced.
      await link(tmp, file);
      await unlink(tmp);
    } else {
      await rename(tmp, file);
    }
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  step('renamed');
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
  step('dir-synced');
}
