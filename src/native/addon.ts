// Typed access to the C++ addon (native/). The numbers both sides share are
// generated from native/protocol.json (protocol.gen.ts).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LaunchError } from '../core/errors.js';
import { shellWord } from '../core/shell-word.js';

export { MSG, OP, STEP, STEP_NAMES } from './protocol.gen.js';

export interface NativeMountOp {
  kind: number;
  dst: string;
  src?: string;
  data?: string;
  mode?: number;
  readonly?: boolean;
  recursive?: boolean;
  /** Resolve dst (src) with no symlink on the way: openat2 RESOLVE_NO_SYMLINKS. */
  noFollowDst?: boolean;
  noFollowSrc?: boolean;
}

export interface NativePlan {
  uid: number;
  gid: number;
  uidMap: string;
  gidMap: string;
  setgroupsDeny: boolean;
  dropGroups: boolean;
  hostname: string;
  stageDir: string;
  ops: NativeMountOp[];
  landlock: {
    abi: number;
    handledFs: number;
    handledNet: number;
    scoped: number;
    paths: { path: string; access: number }[];
    ports: { port: number; access: number }[];
  };
  seccomp: Buffer;
  rlimits: { resource: number; soft: number; hard: number }[];
  capLast: number;
  argv: string[];
  envp: string[];
  execPaths: string[];
  cwd: string;
  /** TCP ports the box's init listens on (127.0.0.1), in order. */
  ports: number[];
  /** UDP ports it binds (127.0.0.1); their fds follow the TCP ones in LISTEN_FDS. */
  udpPorts: number[];
  pty: { rows: number; cols: number } | null;
  /** The idmap of the IDMAP_TREE operations (native/idmap.cc), or null when there are none. */
  idmap: { uidMap: string; gidMap: string } | null;
}

export interface NativeMessage {
  type: number;
  step: number;
  errno: number;
  index: number;
  value: number;
  fds: number[];
}

export interface NativeExit {
  code: number;
  signal: number;
}

export interface NativeBox {
  readonly pid: number;
  kill(signal?: number): boolean;
}

/** What native/relay.cc reports once per relay, on the JS thread. Side a is relay()'s first fd. */
export interface NativeRelayResult {
  /** Bytes delivered to b (from a, the initial ones included), and to a. */
  bytesAtoB: number;
  bytesBtoA: number;
  /**
   * a_closed / b_closed: both directions ended cleanly, the side named read
   * end of stream first; idle_timeout: no byte either way for idleMs;
   * stopped: stop() was called; error: a call failed (step, errno, side).
   */
  reason: 'a_closed' | 'b_closed' | 'idle_timeout' | 'stopped' | 'error';
  /** The side whose end of stream was read first, whatever ended the relay. */
  closedFirst: 'a' | 'b' | null;
  step?: string;
  errno?: number;
  /** "step: strerror(errno)". */
  message?: string;
  /** The side whose fd the failed call was on. */
  side?: 'a' | 'b';
}

export interface NativeRelay {
  /** Asks the relay to end (reason stopped); true if it was still running. onDone follows. */
  stop(): boolean;
}

export interface NativeAddon {
  spawn(plan: NativePlan, onMessage: (m: NativeMessage) => void, onExit: (e: NativeExit) => void): NativeBox;
  landlockAbi(): number;
  setWinsize(fd: number, rows: number, cols: number): number;
  flock(fd: number, op: number): number;
  /** lsetxattr: 0, or -errno; a symlink at path is never followed. */
  setXattr(path: string, name: string, value: string): number;
  /** lgetxattr: the value, or null (absent, unreadable, unsupported, over 255 bytes); never through a symlink. */
  getXattr(path: string, name: string): string | null;
  peerCred(fd: number): { pid: number; uid: number; gid: number } | number;
  /** TCP_CONGESTION on a TCP socket: 0, or -errno. */
  setTcpCongestion(fd: number, name: string): number;
  /**
   * Calls fn with this thread's fsuid/fsgid (and groups) set to uid/gid and
   * restores them afterwards, also when fn throws (native/fsident.cc). Throws
   * a TypeError on bad arguments, or an Error with step and errno when the
   * identity cannot be taken (not root); fn is not called then. view: the
   * thread meanwhile sees each path through its idmapped copy (native/idmap.cc).
   */
  withFsIds(uid: number, gid: number, fn: () => unknown, view?: { uidMap: string; gidMap: string; paths: string[] }): unknown;
  /**
   * Whether the kernel idmaps each path (native/idmap.cc: the mounts are made
   * and dropped): null, or the first failure with its step and errno. Root only.
   */
  idmapCheck(paths: string[], uidMap: string, gidMap: string): { step: string; errno: number; path: string } | null;
  /**
   * Relays two connected, non-blocking sockets with splice() on a thread of
   * its own until both directions end, an error, idleMs without a byte
   * (0: never) or stop(). The initial buffers are written first (to b, to a).
   * Never closes the fds; onDone is called exactly once. Throws (with step and
   * errno) if it cannot start.
   */
  /**
   * Opens path beneath the directory dirfd (native/openat.cc): openat2 with
   * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
   * RESOLVE_NO_XDEV, or a walk of openat(O_NOFOLLOW) calls one component at a
   * time, comparing mount ids, where openat2 is missing (ENOSYS) or walk is
   * true. O_NOFOLLOW and O_CLOEXEC are always added; a path that is absolute
   * or has "", "." or ".." components is refused (EINVAL, step "path"); a
   * mount point below dirfd on the way is EXDEV. Throws an Error with step and errno.
   */
  openBeneath(dirfd: number, path: string, flags: number, mode: number, walk: boolean): number;
  /** An O_PATH fd of the directory ".." of the directory fd (at a mount's root: what it is mounted on). Throws {step, errno}. */
  openParent(fd: number): number;
  /** An O_PATH fd of path (a Buffer: a path that is not UTF-8) reached through no symlink (openat2 RESOLVE_NO_SYMLINKS; flags such as O_DIRECTORY added), or -errno. */
  openNoSymlinks(path: string | Buffer, flags: number): number;
  /** renameat of two names in dirfd; noreplace: fails with EEXIST when `to` exists. Throws {step, errno}. */
  renameAt(dirfd: number, from: string, to: string, noreplace: boolean): void;
  /** unlinkat of one non-directory name in dirfd. Throws {step, errno}. */
  unlinkAt(dirfd: number, name: string): void;
  /** At most max entries of the directory fd (an O_PATH fd will do), each lstat'ed through it. Throws {step, errno}. */
  listDir(fd: number, max: number): { name: string; kind: 'file' | 'dir' | 'symlink' | 'other'; size: number }[];
  /**
   * The regular files with more than one hard link under roots (absolute
   * paths; a root may be a file), symlinks never followed, walked on a thread
   * of libuv's pool (native/linkwalk.cc). A directory the caller cannot open
   * or list is passed over; any other failure rejects with {step: "walk", errno}.
   */
  linkedFiles(roots: string[]): Promise<{ path: string; dev: bigint; ino: bigint; nlink: number }[]>;
  /** The open(2) flags the calls above take (O_PATH is not in fs.constants). */
  openFlags(): Readonly<Record<'O_RDONLY' | 'O_WRONLY' | 'O_CREAT' | 'O_EXCL' | 'O_PATH' | 'O_DIRECTORY' | 'O_NOFOLLOW' | 'O_NONBLOCK' | 'O_NOCTTY' | 'O_CLOEXEC', number>>;
  relay(
    fdA: number,
    fdB: number,
    initialAtoB: Buffer | null,
    initialBtoA: Buffer | null,
    idleMs: number,
    onDone: (result: NativeRelayResult) => void,
  ): NativeRelay;
}

export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;

/** Every function of NativeAddon: an addon without one of them is from another version. */
const FUNCTIONS: Record<keyof NativeAddon, true> = {
  spawn: true,
  landlockAbi: true,
  setWinsize: true,
  flock: true,
  setXattr: true,
  getXattr: true,
  peerCred: true,
  setTcpCongestion: true,
  withFsIds: true,
  idmapCheck: true,
  openBeneath: true,
  openParent: true,
  openNoSymlinks: true,
  renameAt: true,
  unlinkAt: true,
  listDir: true,
  linkedFiles: true,
  openFlags: true,
  relay: true,
};

/** The addon is missing or does not load: one line, with the command that fixes it. */
export class AddonError extends LaunchError {
  constructor(readonly problem: string, readonly fix: string) {
    super(`${problem}: ${fix}`);
    this.name = 'AddonError';
  }
}

/**
 * The command that puts a working addon back (scripts/build-addon.mjs: the
 * prebuilt binary if it loads, else a build from source), for the way this
 * copy of latchgate was installed.
 */
export function addonFix(root: string): string {
  const parent = dirname(root);
  if (basename(parent) !== 'node_modules') return `run \`npm run build\` in ${shellWord(root)}`;
  const name = basename(root);
  // npm -g --prefix P keeps its packages in P/lib/node_modules.
  if (basename(dirname(parent)) === 'lib') return `run \`npm rebuild -g --prefix ${shellWord(dirname(dirname(parent)))} ${name}\``;
  return `run \`npm rebuild ${name}\` in ${shellWord(dirname(parent))}`;
}

let cached: NativeAddon | undefined;

/** Loads build/Release/latchgate.node from the package root; an AddonError says why it cannot. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const path = join(root, 'build', 'Release', 'latchgate.node');
  const fix = addonFix(root);
  if (!existsSync(path)) throw new AddonError(`the native addon is missing (${path})`, fix);
  let addon: Partial<NativeAddon>;
  try {
    addon = createRequire(import.meta.url)(path) as Partial<NativeAddon>;
  } catch (e) {
    // dlopen's reason ("invalid ELF header", "undefined symbol: x"), without the path it repeats.
    const why = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.replace(`${path}: `, '');
    throw new AddonError(`the native addon ${path} does not load (${why})`, fix);
  }
  const missing = Object.keys(FUNCTIONS).filter((f) => typeof addon[f as keyof NativeAddon] !== 'function');
  if (missing.length > 0) throw new AddonError(`the native addon ${path} is from another version of latchgate (it has no ${missing.join(', ')})`, fix);
  cached = addon as NativeAddon;
  return cached;
}
