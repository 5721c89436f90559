// Replacing a file so that a crash at any moment leaves either the old file
// or the new one, whole: a temporary file in the same directory, written,
// fsynced, renamed over the file, then the directory fsynced so the rename
// itself survives a power loss. The file keeps its mode, owner and group (a
// new one is 0600); when the writer cannot give the new file the old one's
// owner and group it refuses rather than change them. A symlink is written
// through (its target replaced, the link kept); a hard-linked file is
// refused, since a rename would split its names.
import { randomBytes } from 'node:crypto';
import { link, lstat, open, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SecretsError } from './errors.js';

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

/** The path a write lands on: a symlink's target (a dangling link is refused), else the path itself. */
export async function writeTarget(file: string): Promise<string> {
  try {
    return await realpath(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const isLink = await lstat(file).then((l) => l.isSymbolicLink(), () => false);
  if (isLink) throw new SecretsError('write_failed', `${file} is a symlink to a file that does not exist; latchgate writes through a symlink, never over it: fix or remove the link`, { file });
  return file;
}

export async function writeFileAtomic(path: string, data: string | Buffer, o: AtomicOptions = {}): Promise<void> {
  const step = o.afterStep ?? (() => {});
  const file = await writeTarget(path);
  let mode = o.newFileMode ?? 0o600;
  let owner: { uid: number; gid: number } | null = null;
  try {
    const st = await stat(file);
    if (o.exclusive) throw Object.assign(new Error(`${file} exists`), { code: 'EEXIST' });
    if (st.nlink > 1) throw new SecretsError('write_failed', `${file} has ${st.nlink} hard links; replacing it would leave the other names with the old contents: keep one name (a symlink instead of a hard link) and try again`, { file });
    mode = st.mode & 0o7777;
    owner = { uid: st.uid, gid: st.gid };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      if (owner) await keepOwner(fh, owner, file);
      await fh.chmod(mode); // the umask narrowed the mode open() gave; after chown, which clears set-id bits
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

/** The temporary file given the old file's owner and group, or a refusal naming both. */
async function keepOwner(fh: import('node:fs/promises').FileHandle, owner: { uid: number; gid: number }, file: string): Promise<void> {
  const st = await fh.stat();
  if (st.uid === owner.uid && st.gid === owner.gid) return;
  try {
    await fh.chown(owner.uid, owner.gid);
  } catch (e) {
    throw new SecretsError('write_failed', `${file} belongs to ${owner.uid}:${owner.gid} (uid:gid), and this process (uid ${process.geteuid?.() ?? '?'}) cannot give the new file that owner and group (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); it would change hands, so nothing was written: run the command as the file's owner`, { file });
  }
}
