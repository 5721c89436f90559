// Where latchgate keeps things (XDG Base Directory): state (ledger, keys)
// under $XDG_STATE_HOME/latchgate, sockets under $XDG_RUNTIME_DIR/latchgate
// (else /tmp/latchgate-<uid>), configuration under $XDG_CONFIG_HOME.
import { homedir } from 'node:os';
import { join } from 'node:path';

type Env = NodeJS.ProcessEnv;

function home(env: Env): string {
  return env.HOME || homedir();
}

export function stateDir(env: Env = process.env): string {
  return join(env.XDG_STATE_HOME || join(home(env), '.local', 'state'), 'latchgate');
}

/** Where the sockets go, as a path only: resolveRuntimeDir (runtime-dir.ts) checks the /tmp fallback before anything uses it. */
export function runtimeDir(env: Env = process.env, uid = process.getuid!()): string {
  return env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'latchgate') : fallbackRuntimeDir(uid);
}

/** The runtime directory when XDG_RUNTIME_DIR is unset. */
export function fallbackRuntimeDir(uid: number): string {
  return `/tmp/latchgate-${uid}`;
}

/** The user-level configuration directory: $XDG_CONFIG_HOME/latchgate. */
export function userConfigDir(env: Env = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(home(env), '.config'), 'latchgate');
}

/** The project configuration as found from a directory. */
export function projectConfigFile(cwd = process.cwd()): string {
  return join(cwd, '.latchgate', 'latchgate.toml');
}

/** The user-level configuration file, trusted without a record (config/trust.ts). */
export function userConfigFile(env: Env = process.env): string {
  return join(userConfigDir(env), 'latchgate.toml');
}
