// One writer at a time for a secrets file: `latchgate secrets set A` and
// `set B` run at once must both land, so each read-modify-write holds
// <file>.lock, made with O_EXCL and holding the holder's pid. A lock whose
// holder is gone (crashed, killed) is taken over; a live one is waited for,
// then refused naming the holder. The lock is beside the file, mode 0600.
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { SecretsError } from './errors.js';

/** How long a writer waits for another one before giving up. */
const WAIT_MS = 10_000;
const POLL_MS = 25;

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, another user's
  }
};

async function holder(lock: string): Promise<number | null> {
  try {
    const pid = Number.parseInt((await readFile(lock, 'utf8')).trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return -1; // released meanwhile
    throw e;
  }
}

async function tryTake(lock: string): Promise<boolean> {
  try {
    const fh = await open(lock, 'wx', 0o600);
    try {
      await fh.writeFile(`${process.pid}\n`);
    } finally {
      await fh.close();
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** Runs fn holding file's write lock. */
export async function withFileLock<T>(file: string, fn: () => Promise<T>, waitMs = WAIT_MS): Promise<T> {
  const lock = `${file}.lock`;
  const end = Date.now() + waitMs;
  for (;;) {
    if (await tryTake(lock)) break;
    const pid = await holder(lock);
    if (pid === -1) continue;
    // A lock without a readable pid is one being written right now, or debris: only a dead pid is taken over.
    if (pid !== null && !alive(pid)) {
      // Moved aside first, so of two writers finding it stale only one removes it.
      const aside = `${lock}.${randomBytes(4).toString('hex')}.stale`;
      try {
        await rename(lock, aside);
        if ((await holder(aside)) === pid) await unlink(aside);
        else await link(aside, lock).then(() => unlink(aside), () => unlink(aside)); // another writer's fresh lock: put it back unless one more was made meanwhile
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      continue;
    }
    if (Date.now() > end) {
      throw new SecretsError('locked', `${file}: another latchgate secrets command${pid ? ` (pid ${pid})` : ''} is changing it; try again when it is done, or remove ${lock} if no such command runs`, { file });
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => {});
  }
}
