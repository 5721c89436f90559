// The runtime directory, where the gate's sockets live. Every command and the
// SDK find it through resolveRuntimeDir, so they agree on it and on its checks.
//
// $XDG_RUNTIME_DIR/latchgate is under a per-user directory the system made
// private. Without XDG_RUNTIME_DIR it is /tmp/latchgate-<uid>, a name in a
// directory every user can write: another user could make it first (a
// directory of theirs, a symlink to one, a directory open to all) and then own
// the sockets clients send their requests to, or swap them. That fallback is
// used only when it is a real directory of this uid that no one else can enter
// (created so when missing); anything else is refused with the fix.
import { lstatSync, mkdirSync, type Stats } from 'node:fs';
import { LaunchError } from '../core/errors.js';
import { fallbackRuntimeDir, runtimeDir } from './paths.js';

export interface RuntimeDirOptions {
  env?: NodeJS.ProcessEnv;
  uid?: number;
  /** [state] runtime_dir from latchgate.toml, which wins over the environment. */
  configured?: string | undefined;
  /** Make the fallback directory when it is missing (a client only looks). */
  create?: boolean;
}

/** The runtime directory to use; the /tmp fallback only once it is safe (LaunchError, exit 125, otherwise). */
export function resolveRuntimeDir(o: RuntimeDirOptions = {}): string {
  const env = o.env ?? process.env;
  const uid = o.uid ?? process.getuid!();
  if (o.configured) return o.configured;
  const dir = runtimeDir(env, uid);
  if (dir === fallbackRuntimeDir(uid)) checkFallbackRuntimeDir(dir, uid, o.create ?? false);
  return dir;
}

const FIX = 'or set XDG_RUNTIME_DIR to a directory only you can enter (e.g. /run/user/$(id -u), as a login session sets it)';

/**
 * /tmp/latchgate-<uid>: created 0700 when missing (if asked), else it must be
 * this uid's own private, real directory. mustExist: a client about to
 * connect; a directory missing now could be made by another user before the
 * connect, who would then serve the socket the client sends its lease to.
 */
export function checkFallbackRuntimeDir(dir: string, uid: number, create: boolean, mustExist = false): void {
  let st = lstatOrUndefined(dir);
  if (!st && create) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      // Someone made it between the look and the mkdir: it is checked below like any other.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new LaunchError(`runtime directory ${dir}: cannot create it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ${FIX}`);
    }
    st = lstatOrUndefined(dir);
  }
  if (!st && mustExist) {
    throw new LaunchError(`runtime directory ${dir} (used because XDG_RUNTIME_DIR is unset) does not exist, so no gate of yours listens there (and another user could make it before this client connects): refused; start the gate with latchgate up, ${FIX}`);
  }
  if (!st) return; // missing and not to be made: no gate listens there
  const refuse = (what: string, fix: string) => {
    throw new LaunchError(`runtime directory ${dir} (used because XDG_RUNTIME_DIR is unset) ${what}, so another user could own or swap the gate's sockets: refused; ${fix} ${FIX}`);
  };
  if (st.isSymbolicLink()) refuse('is a symlink', `remove it (rm ${dir}) if you did not make it,`);
  if (!st.isDirectory()) refuse('is not a directory', `remove it (rm ${dir}) if you did not make it,`);
  if (st.uid !== uid) refuse(`is owned by uid ${st.uid}, not by you (uid ${uid})`, 'ask the administrator to remove it,');
  if ((st.mode & 0o077) !== 0) refuse(`has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, open to other users`, `check nothing in it is foreign, then chmod 700 ${dir},`);
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new LaunchError(`runtime directory ${p}: cannot look at it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ${FIX}`);
  }
}
