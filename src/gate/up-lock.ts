// One `latchgate up` per runtime directory (the sockets it serves) and per
// state directory (the ledger it writes). Each `up` holds an exclusive flock
// on up.lock in both for its life, with its pid and sockets written in it, so
// a second one is refused, naming the first, instead of unlinking the live
// sockets from under it. The kernel drops the lock when the process dies,
// even by SIGKILL, so a crashed gate's leftovers (the lock file, its sockets)
// never block the next `up`: it takes the lock and replaces the sockets.
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { constants as osc } from 'node:os';
import { errnoName, LaunchError } from '../core/errors.js';
import { LOCK, loadAddon } from '../native/addon.js';

/** `latchgate up` exits with this when another `up` serves the same sockets or state. */
export const EXIT_GATE_RUNNING = 4;

const UP_LOCK = 'up.lock';

/** What a running `up` writes in its lock files. */
export interface UpLockInfo {
  pid: number;
  client_socket: string;
  admin_socket: string;
  state_dir: string;
}

/**
 * Takes up.lock in each directory (made 0700 if missing) for the life of the
 * process, or refuses (EXIT_GATE_RUNNING) when a live `up` holds one.
 */
export function lockUp(dirs: readonly string[], info: UpLockInfo): void {
  const held: number[] = [];
  try {
    for (const dir of new Set(dirs)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, UP_LOCK);
      const fd = openSync(file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
      held.push(fd);
      const r = loadAddon().flock(fd, LOCK.EX | LOCK.NB);
      if (r === -osc.errno.EWOULDBLOCK) throw running(file, dir);
      if (r !== 0) throw new LaunchError(`cannot lock ${file} (${errnoName(-r)}); the gate needs it to tell whether another \`latchgate up\` serves there`);
    }
    const text = JSON.stringify(info) + '\n';
    for (const fd of held) {
      ftruncateSync(fd, 0);
      writeSync(fd, text, 0);
    }
  } catch (e) {
    for (const fd of held) closeSync(fd);
    throw e;
  }
  // Kept open, and so locked, until the process exits.
}

function running(file: string, dir: string): LaunchError {
  const other = readInfo(file);
  const who = other ? `pid ${other.pid}, clients on ${other.client_socket}, state in ${other.state_dir}` : `its lock ${file} is held`;
  const stop = other ? `stop it first (kill ${other.pid})` : 'stop it first';
  return new LaunchError(`a gate is already running on ${dir} (${who}): use it, ${stop}, or give this one other directories ([state] dir and runtime_dir in latchgate.toml)`, EXIT_GATE_RUNNING);
}

/** The holder's info, or undefined when it has not written it yet (or it is not of this form). */
function readInfo(file: string): UpLockInfo | undefined {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as UpLockInfo;
    return Number.isInteger(v?.pid) && typeof v.client_socket === 'string' && typeof v.state_dir === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
