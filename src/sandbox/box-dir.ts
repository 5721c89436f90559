// The host directory holding a box's sockets (gate.sock, proxy.sock) that
// the box's init bind-mounts at /run/latchgate/. It stays the launcher's
// (root's stays root's: no other uid can add, swap or remove an entry in
// it), in the agent's group, mode 02710: the agent's init may only search
// it, and each socket gets the agent's group (setgid directory) and mode
// 0660 from its bind() itself, so nothing is chmodded by path afterwards.
// Nobody else on the host can reach the sockets.
//
// The launcher holds an flock on a lock file inside for its whole life; a
// later launcher removes a leftover directory (of a launcher killed with
// SIGKILL) only once it holds that lock itself.
import { type Stats, closeSync, fchmodSync, fchownSync, fstatSync, lstatSync, mkdtempSync, openSync, readdirSync, realpathSync, rmdirSync, unlinkSync, constants as fsc } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { LOCK, loadAddon } from '../native/addon.js';
import { LaunchError } from '../core/errors.js';
import { octal, whyUntrusted } from './trusted-path.js';

export const BOX_DIR_PREFIX = 'latchgate-box-';
/** setgid, rwx for its owner, search only for the agent's group, nothing for others. */
export const BOX_DIR_MODE = 0o2710;
export const BOX_SOCKET_MODE = 0o660;
/** bind() gives a Unix socket 0777 & ~umask. */
const SOCKET_UMASK = 0o117;
const LOCK_NAME = 'lock';
/** mkdtemp's six random letters and digits. */
const NAME = /^latchgate-box-[A-Za-z0-9]{6}$/;

/**
 * The temporary directory, if no other user can rename entries in it or
 * above it (trusted-path.ts), so none can swap the box's directory.
 */
export function trustedTmpdir(): string {
  const dir = realpathSync(tmpdir());
  const why = whyUntrusted(dir);
  if (why) {
    throw new LaunchError(`the temporary directory ${dir}: ${why}, so another user could swap the box's socket directory; set TMPDIR to a directory only root or you can write to, or a sticky one such as /tmp`);
  }
  return dir;
}

export class BoxDir {
  private constructor(
    readonly path: string,
    private lockFd: number | undefined,
  ) {}

  /** Removes stale box directories, then makes this launcher's, locked, in agentGid's group. */
  static create(agentGid: number): BoxDir {
    const parent = trustedTmpdir();
    removeStaleBoxDirs(parent);
    const path = mkdtempSync(join(parent, BOX_DIR_PREFIX));
    const addon = loadAddon();
    let lockFd: number | undefined;
    const dirFd = openSync(path, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
    try {
      lockFd = openSync(join(path, LOCK_NAME), fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      const r = addon.flock(lockFd, LOCK.EX | LOCK.NB);
      if (r !== 0) throw new LaunchError(`cannot lock ${join(path, LOCK_NAME)} (errno ${-r}): the box's socket directory needs it`);
      // The final mode last: another launcher takes a directory for stale
      // only in that mode, so never while this one is still locking it.
      if (process.geteuid!() === 0) fchownSync(dirFd, -1, agentGid);
      fchmodSync(dirFd, BOX_DIR_MODE);
      const st = fstatSync(dirFd);
      if ((st.mode & 0o7777) !== BOX_DIR_MODE) {
        throw new LaunchError(`the box's socket directory ${path} kept mode ${octal(st.mode)} instead of ${octal(BOX_DIR_MODE)} (the setgid bit needs its group ${st.gid} among yours); set TMPDIR to a directory of your own group`);
      }
    } catch (e) {
      try {
        clear(path);
      } catch {
        // left for a later launcher to remove
      }
      if (lockFd !== undefined) closeSync(lockFd);
      throw e;
    } finally {
      closeSync(dirFd);
    }
    return new BoxDir(path, lockFd);
  }

  /** Removes the directory (sockets, lock file), then lets the lock go. Best effort, said on stderr. */
  remove(): void {
    if (this.lockFd === undefined) return;
    try {
      clear(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') process.stderr.write(`latchgate: cannot remove the box's socket directory ${this.path}: ${(e as Error).message}\n`);
    }
    closeSync(this.lockFd);
    this.lockFd = undefined;
  }
}

/**
 * Runs listen() (a server.listen on a path in a box directory, which binds
 * synchronously) under the umask that gives the socket its mode, then checks
 * that it came out so: a socket of this launcher, mode 0660, in the
 * directory's group.
 */
export async function listenInBoxDir(socketPath: string, listen: () => Promise<unknown>): Promise<void> {
  const old = process.umask(SOCKET_UMASK);
  let listening: Promise<unknown>;
  try {
    listening = listen();
  } finally {
    process.umask(old);
  }
  try {
    await listening;
  } catch (e) {
    throw new LaunchError(`cannot listen on the box socket ${socketPath}: ${(e as Error).message}`);
  }
  const st = lstatSync(socketPath, { throwIfNoEntry: false });
  const dir = lstatSync(dirname(socketPath), { throwIfNoEntry: false });
  if (!st || !dir) throw new LaunchError(`the box socket ${socketPath} vanished right after it was made (another process of this user removed it); start the box again`);
  if (!st.isSocket() || (st.mode & 0o7777) !== BOX_SOCKET_MODE || st.uid !== process.geteuid!() || st.gid !== dir.gid) {
    throw new LaunchError(`the box socket ${socketPath} came out as ${st.isSocket() ? 'a socket' : 'not a socket'} of mode ${octal(st.mode)}, uid ${st.uid}, gid ${st.gid}; expected mode ${octal(BOX_SOCKET_MODE)} in group ${dir.gid}, which the box needs to connect and nobody else may`);
  }
}

/**
 * Removes `<parent>/latchgate-box-XXXXXX` directories whose launcher is gone:
 * only this euid's, in the final mode, whose lock file this call can lock
 * exclusively. Never follows a symlink. Failures are said on stderr.
 */
export function removeStaleBoxDirs(parent: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!NAME.test(name)) continue;
    const dir = join(parent, name);
    try {
      if (removeIfStale(dir)) removed.push(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') process.stderr.write(`latchgate: cannot remove the stale box directory ${dir}: ${(e as Error).message}\n`);
    }
  }
  return removed;
}

function removeIfStale(dir: string): boolean {
  const euid = process.geteuid!();
  const ours = (st: Stats | undefined) => !!st?.isDirectory() && st.uid === euid && (st.mode & 0o7777) === BOX_DIR_MODE;
  const st = lstatSync(dir, { throwIfNoEntry: false });
  if (!ours(st)) return false;
  const lockPath = join(dir, LOCK_NAME);
  let fd: number;
  try {
    fd = openSync(lockPath, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false; // its launcher is removing it
    throw e;
  }
  try {
    const lock = fstatSync(fd);
    if (!lock.isFile() || lock.uid !== euid) return false;
    if (loadAddon().flock(fd, LOCK.EX | LOCK.NB) !== 0) return false; // its launcher lives
    // Still the same directory and lock file, not removed and made anew meanwhile.
    const again = lstatSync(lockPath, { throwIfNoEntry: false });
    const dirAgain = lstatSync(dir, { throwIfNoEntry: false });
    if (!again || again.ino !== lock.ino || again.dev !== lock.dev || !ours(dirAgain) || dirAgain!.ino !== st!.ino) return false;
    clear(dir);
    return true;
  } finally {
    closeSync(fd);
  }
}

/**
 * Unlinks what is in the directory (sockets, the lock file; unlink never
 * follows a symlink), then the directory. A subdirectory, which latchgate
 * never makes there, leaves it in place: nothing is removed recursively.
 */
function clear(dir: string): void {
  const entries = readdirSync(dir, { withFileTypes: true });
  const dirs = entries.filter((e) => e.isDirectory());
  if (dirs.length > 0) throw new Error(`it holds the directory ${dirs.map((e) => e.name).join(', ')}, which latchgate never puts there; remove it by hand`);
  for (const e of entries) unlinkSync(join(dir, e.name));
  rmdirSync(dir);
}
