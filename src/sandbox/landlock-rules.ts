// Landlock rules that mirror the mount plan, for the kernel's ABI. Debian 12's
// headers stop at ABI 2; the bits are the kernel's uapi values.
import type { AccessRule, AccessClass } from './mount-plan.js';

export const FS = {
  EXECUTE: 1 << 0,
  WRITE_FILE: 1 << 1,
  READ_FILE: 1 << 2,
  READ_DIR: 1 << 3,
  REMOVE_DIR: 1 << 4,
  REMOVE_FILE: 1 << 5,
  MAKE_CHAR: 1 << 6,
  MAKE_DIR: 1 << 7,
  MAKE_REG: 1 << 8,
  MAKE_SOCK: 1 << 9,
  MAKE_FIFO: 1 << 10,
  MAKE_BLOCK: 1 << 11,
  MAKE_SYM: 1 << 12,
  REFER: 1 << 13, // ABI 2
  TRUNCATE: 1 << 14, // ABI 3
  IOCTL_DEV: 1 << 15, // ABI 5
} as const;

export const NET = { BIND_TCP: 1, CONNECT_TCP: 2 } as const; // ABI 4
export const SCOPE = { ABSTRACT_UNIX_SOCKET: 1, SIGNAL: 2 } as const; // ABI 6

/** Rights that may be granted on a file (not a directory) rule. */
const FILE_RIGHTS = FS.EXECUTE | FS.WRITE_FILE | FS.READ_FILE | FS.TRUNCATE | FS.IOCTL_DEV;

export function handledFs(abi: number): number {
  let m = (1 << 13) - 1;
  if (abi >= 2) m |= FS.REFER;
  if (abi >= 3) m |= FS.TRUNCATE;
  if (abi >= 5) m |= FS.IOCTL_DEV;
  return m;
}

const READ = FS.READ_FILE | FS.READ_DIR;
const WRITE = FS.WRITE_FILE | FS.REMOVE_DIR | FS.REMOVE_FILE | FS.MAKE_DIR | FS.MAKE_REG |
  FS.MAKE_SOCK | FS.MAKE_FIFO | FS.MAKE_SYM | FS.REFER | FS.TRUNCATE;

const CLASS_RIGHTS: Record<AccessClass, number> = {
  list: FS.READ_DIR,
  read: READ,
  'read-exec': READ | FS.EXECUTE,
  rw: READ | FS.EXECUTE | WRITE,
  'rw-noexec': READ | WRITE,
  proc: READ | FS.WRITE_FILE,
  device: FS.READ_FILE | FS.WRITE_FILE | FS.IOCTL_DEV,
  tty: READ | FS.WRITE_FILE | FS.IOCTL_DEV,
};

export interface LandlockPlan {
  abi: number;
  handledFs: number;
  handledNet: number;
  scoped: number;
  paths: { path: string; access: number; class: AccessClass }[];
  ports: { port: number; access: number }[];
}

export function landlockPlan(abi: number, rules: readonly AccessRule[], strictNet: boolean, connectPorts: readonly number[]): LandlockPlan {
  if (abi <= 0) return { abi: 0, handledFs: 0, handledNet: 0, scoped: 0, paths: [], ports: [] };
  const hfs = handledFs(abi);
  const paths = rules.map((r) => ({
    path: r.path,
    class: r.access,
    access: CLASS_RIGHTS[r.access] & hfs & (r.isFile ? FILE_RIGHTS : ~0),
  }));
  const net = strictNet && abi >= 4;
  return {
    abi,
    handledFs: hfs,
    handledNet: net ? NET.BIND_TCP | NET.CONNECT_TCP : 0,
    scoped: abi >= 6 ? SCOPE.ABSTRACT_UNIX_SOCKET | SCOPE.SIGNAL : 0,
    paths,
    ports: net ? connectPorts.map((port) => ({ port, access: NET.CONNECT_TCP })) : [],
  };
}
