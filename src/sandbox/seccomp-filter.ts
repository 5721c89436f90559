// The sandbox's seccomp-BPF program, compiled in TypeScript.
//
// The result is a Buffer of `struct sock_filter` entries that the addon hands
// unchanged to seccomp(SECCOMP_SET_MODE_FILTER) right before execve. It is
// built in the parent, before clone(), because the child may only make raw
// system calls. The tests run it with test/helpers/bpf.mjs.
//
// The program uses only LD W ABS (of nr/arch and argument words), JEQ/JGE/
// JSET K and RET K. Every plain syscall reaches RET ALLOW
// after loading nothing but arch and nr, so the kernel's seccomp action cache
// (5.11+) marks those syscalls as always-allowed and never runs the filter for
// them; only the few syscalls with argument checks pay for the filter.

export type SeccompArch = 'x86_64' | 'aarch64';

/** Filter return values (include/uapi/linux/seccomp.h). */
export const SECCOMP_RET = Object.freeze({
  KILL_PROCESS: 0x80000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  ALLOW: 0x7fff0000,
});

/** `seccomp_data.arch` values (include/uapi/linux/audit.h). */
export const AUDIT_ARCH = Object.freeze({
  X86_64: 0xc000003e,
  I386: 0x40000003,
  AARCH64: 0xc00000b7,
});

const EPERM = 1;
const ENOSYS = 38;

// Syscall numbers, as literals so the build never depends on kernel headers.
// x86_64: arch/x86/entry/syscalls/syscall_64.tbl; aarch64: the generic table
// (include/uapi/asm-generic/unistd.h). null = the syscall does not exist there.
// The unit tests cross-check these against the headers installed on the host.
type SyscallRow = readonly [name: string, x86_64: number | null, aarch64: number | null];

// Syscalls with argument checks (handled before the denylist).
const SPECIAL: readonly SyscallRow[] = [
  ['clone3', 435, 435],
  ['clone', 56, 220],
  ['ioctl', 16, 29],
  ['socket', 41, 198],
  ['socketpair', 53, 199],
  // Modes: no set-user-ID or set-group-ID bit on anything the box makes.
  ['chmod', 90, null],
  ['fchmod', 91, 52],
  ['fchmodat', 268, 53],
  ['fchmodat2', 452, 452],
  ['creat', 85, null],
  ['open', 2, null],
  ['openat', 257, 56],
  ['openat2', 437, 437],
  ['mknod', 133, null],
  ['mknodat', 259, 33],
];

// Syscalls refused with EPERM whatever their arguments. Deliberately absent:
// memfd_create, SysV IPC, landlock_*, seccomp, execveat, prctl, personality
// (Node, Chromium and nested sandboxes need them).
const DENIED: readonly SyscallRow[] = [
  // Mount API: the mount plan is the parent's, never the agent's.
  ['mount', 165, 40],
  ['umount2', 166, 39],
  ['pivot_root', 155, 41],
  ['chroot', 161, 51],
  ['open_tree', 428, 428],
  ['move_mount', 429, 429],
  ['fsopen', 430, 430],
  ['fsconfig', 431, 431],
  ['fsmount', 432, 432],
  ['fspick', 433, 433],
  ['mount_setattr', 442, 442],
  ['open_tree_attr', 467, 467], // Linux 6.15: open_tree + mount_setattr in one call
  // Namespaces (clone's namespace flags are checked separately).
  ['unshare', 272, 97],
  ['setns', 308, 268],
  // Reaching into other processes.
  ['ptrace', 101, 117],
  ['process_vm_readv', 310, 270],
  ['process_vm_writev', 311, 271],
  ['kcmp', 312, 272],
  ['pidfd_getfd', 438, 438],
  ['process_madvise', 440, 440],
  // Kernel and machine state.
  ['kexec_load', 246, 104],
  ['kexec_file_load', 320, 294],
  ['init_module', 175, 105],
  ['finit_module', 313, 273],
  ['delete_module', 176, 106],
  ['reboot', 169, 142],
  ['swapon', 167, 224],
  ['swapoff', 168, 225],
  ['acct', 163, 89],
  ['bpf', 321, 280],
  ['perf_event_open', 298, 241],
  ['userfaultfd', 323, 282],
  ['lookup_dcookie', 212, 18],
  ['quotactl', 179, 60],
  ['quotactl_fd', 443, 443],
  ['syslog', 103, 116],
  ['vhangup', 153, 58],
  ['iopl', 172, null],
  ['ioperm', 173, null],
  ['settimeofday', 164, 170],
  ['clock_settime', 227, 112],
  ['clock_adjtime', 305, 266],
  ['adjtimex', 159, 171],
  ['sethostname', 170, 161],
  ['setdomainname', 171, 162],
  // io_uring performs syscalls the filter never sees.
  ['io_uring_setup', 425, 425],
  ['io_uring_enter', 426, 426],
  ['io_uring_register', 427, 427],
  // Kernel keyrings are not namespaced.
  ['add_key', 248, 217],
  ['request_key', 249, 218],
  ['keyctl', 250, 219],
  // File handles bypass path-based confinement (the "shocker" escape).
  ['open_by_handle_at', 304, 265],
  ['name_to_handle_at', 303, 264],
  ['fanotify_init', 300, 262],
  // Obsolete interfaces: no legitimate use left.
  ['nfsservctl', 180, 42],
  ['uselib', 134, null],
  ['ustat', 136, null],
  ['sysfs', 139, null],
  ['_sysctl', 156, null],
  ['create_module', 174, null],
  ['get_kernel_syms', 177, null],
  ['query_module', 178, null],
];

function numbersFor(rows: readonly SyscallRow[], arch: SeccompArch): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, x86, arm] of rows) {
    const nr = arch === 'x86_64' ? x86 : arm;
    if (nr !== null) out[name] = nr;
  }
  return out;
}

/** Number of every syscall the filter names, per architecture (absent = not on that arch). */
export const SECCOMP_SYSCALL_NUMBERS: Readonly<Record<SeccompArch, Readonly<Record<string, number>>>> =
  Object.freeze({
    x86_64: Object.freeze(numbersFor([...SPECIAL, ...DENIED], 'x86_64')),
    aarch64: Object.freeze(numbersFor([...SPECIAL, ...DENIED], 'aarch64')),
  });

/** Every syscall the filter refuses with EPERM on at least one architecture. */
export const SECCOMP_DENIED_SYSCALLS: readonly string[] = Object.freeze(DENIED.map(([name]) => name));

const AUDIT_ARCH_OF: Record<SeccompArch, number> = { x86_64: AUDIT_ARCH.X86_64, aarch64: AUDIT_ARCH.AARCH64 };

const X32_SYSCALL_BIT = 0x40000000;

// Any of these on clone() asks for a new namespace. CLONE_NEWTIME (0x80) lies
// inside clone()'s exit-signal byte, where no valid signal (<= 64) sets it.
const CLONE_NS_FLAGS =
  0x00000080 | // CLONE_NEWTIME
  0x00020000 | // CLONE_NEWNS
  0x02000000 | // CLONE_NEWCGROUP
  0x04000000 | // CLONE_NEWUTS
  0x08000000 | // CLONE_NEWIPC
  0x10000000 | // CLONE_NEWUSER
  0x20000000 | // CLONE_NEWPID
  0x40000000; // CLONE_NEWNET

const TIOCSTI = 0x5412; // push bytes into the terminal's input: escapes to the outer shell
const TIOCLINUX = 0x541c; // console selection paste, same effect on a VT

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const O_CREAT = 0o100; // the same on x86_64 and the generic (aarch64) ABI
const O_TMPFILE_BIT = 0o20000000; // __O_TMPFILE

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const NETLINK_ROUTE = 0;

// Offsets in struct seccomp_data: { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }
const OFF_NR = 0;
const OFF_ARCH = 4;
// Low 32 bits of args[i] (both supported architectures are little-endian).
// Every argument checked here is an int/unsigned int in the kernel, which
// truncates it to 32 bits, so comparing the low word is exactly what the kernel
// sees; comparing all 64 bits could be bypassed by setting the high ones.
const argLow = (i: number): number => 16 + 8 * i;

// Classic BPF opcodes (include/uapi/linux/filter.h, bpf_common.h).
const BPF = Object.freeze({
  LD_W_ABS: 0x20, // BPF_LD | BPF_W | BPF_ABS
  JEQ_K: 0x15, // BPF_JMP | BPF_JEQ | BPF_K
  JGE_K: 0x35, // BPF_JMP | BPF_JGE | BPF_K
  JSET_K: 0x45, // BPF_JMP | BPF_JSET | BPF_K
  RET_K: 0x06, // BPF_RET | BPF_K
});

const BPF_MAXINSNS = 4096;
const INSN_SIZE = 8;

// ---------------------------------------------------------------------------
// A tiny assembler with labels, so no jump offset is computed by hand.

/** A jump target: a label, or null for the next instruction. */
type Target = string | null;

interface Insn {
  code: number;
  k: number;
  jt: Target;
  jf: Target;
}

class Assembler {
  private readonly insns: Insn[] = [];
  private readonly labels = new Map<string, number>();

  load(offset: number): void {
    this.insns.push({ code: BPF.LD_W_ABS, k: offset, jt: null, jf: null });
  }

  jump(code: number, k: number, jt: Target, jf: Target): void {
    this.insns.push({ code, k: k >>> 0, jt, jf });
  }

  ret(k: number): void {
    this.insns.push({ code: BPF.RET_K, k: k >>> 0, jt: null, jf: null });
  }

  label(name: string): void {
    if (this.labels.has(name)) throw new Error(`seccomp: duplicate label ${name}`);
    this.labels.set(name, this.insns.length);
  }

  lastIsRet(): boolean {
    return this.insns[this.insns.length - 1]?.code === BPF.RET_K;
  }

  assemble(): Buffer {
    const n = this.insns.length;
    if (n === 0 || n > BPF_MAXINSNS) throw new Error(`seccomp: program has ${n} instructions`);
    if (!this.lastIsRet()) throw new Error('seccomp: program must end with RET');
    const buf = Buffer.alloc(n * INSN_SIZE);
    this.insns.forEach((insn, pc) => {
      const o = pc * INSN_SIZE;
      buf.writeUInt16LE(insn.code, o);
      buf.writeUInt8(this.offset(pc, insn.jt), o + 2);
      buf.writeUInt8(this.offset(pc, insn.jf), o + 3);
      buf.writeUInt32LE(insn.k, o + 4);
    });
    return buf;
  }

  // Conditional jumps are relative to the next instruction and only 8 bits wide.
  private offset(pc: number, target: Target): number {
    if (target === null) return 0;
    const at = this.labels.get(target);
    if (at === undefined) throw new Error(`seccomp: undefined label ${target}`);
    const off = at - (pc + 1);
    if (off < 0 || off > 255) throw new Error(`seccomp: jump to ${target} out of range (${off})`);
    return off;
  }
}

// ---------------------------------------------------------------------------

const errno = (e: number): number => SECCOMP_RET.ERRNO | e;

function requireNr(arch: SeccompArch, name: string): number {
  const nr = SECCOMP_SYSCALL_NUMBERS[arch][name];
  if (nr === undefined) throw new Error(`seccomp: ${name} has no number on ${arch}`);
  return nr;
}

/** The seccomp architecture of this Node process. */
export function hostSeccompArch(): SeccompArch {
  switch (process.arch) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'aarch64';
    default:
      throw new Error(
        `seccomp filter: unsupported architecture '${process.arch}' (latchgate supports x86_64 and aarch64)`,
      );
  }
}

function checkArch(arch: SeccompArch): void {
  if (arch !== 'x86_64' && arch !== 'aarch64') throw new Error(`seccomp filter: unsupported architecture '${String(arch)}'`);
}

/** Compile the sandbox's filter: a Buffer of struct sock_filter, ready for SECCOMP_SET_MODE_FILTER. */
export function buildSeccompFilter(arch: SeccompArch = hostSeccompArch()): Buffer {
  checkArch(arch);
  const a = new Assembler();
  let block = 0;

  // Emit `if (nr == name) { body }`. The body must end in RET on every path,
  // so the accumulator still holds nr for whatever follows the block.
  const ifSyscall = (name: string, body: (local: (l: string) => string) => void): void => {
    const id = `${name}#${block++}`;
    const local = (l: string): string => `${id}:${l}`;
    a.jump(BPF.JEQ_K, requireNr(arch, name), null, local('skip'));
    body(local);
    if (!a.lastIsRet()) throw new Error(`seccomp: block for ${name} must end in RET`);
    a.label(local('skip'));
  };

  // 1. Wrong architecture: kill. This refuses the i386 `int 0x80` entry on
  //    x86_64 (AUDIT_ARCH_I386) and AArch32 tasks on aarch64, whose syscall
  //    numbers would mean different things.
  a.load(OFF_ARCH);
  a.jump(BPF.JEQ_K, AUDIT_ARCH_OF[arch], 'arch_ok', null);
  a.ret(SECCOMP_RET.KILL_PROCESS);
  a.label('arch_ok');

  // 2. x32 ABI (same AUDIT_ARCH, nr with bit 30 set, its own numbering): kill.
  a.load(OFF_NR);
  if (arch === 'x86_64') {
    a.jump(BPF.JGE_K, X32_SYSCALL_BIT, null, 'native_abi');
    a.ret(SECCOMP_RET.KILL_PROCESS);
    a.label('native_abi');
  }

  // 3. Set-ID bits (first: openat is frequent and decided here): a file the box leaves behind with S_ISUID/S_ISGID
  //    would let any other local user act as the box's user (or group) on
  //    the host after the run. The mode argument is a umode_t (low word);
  //    open/openat only look at it with O_CREAT or O_TMPFILE. openat2 passes
  //    its mode in memory: ENOSYS, and libc falls back to openat.
  const modeCheck = (name: string, modeArg: number, flagsArg?: number): void => {
    if (SECCOMP_SYSCALL_NUMBERS[arch][name] === undefined) return;
    ifSyscall(name, (l) => {
      if (flagsArg !== undefined) {
        a.load(argLow(flagsArg));
        a.jump(BPF.JSET_K, O_CREAT | O_TMPFILE_BIT, null, l('allow'));
      }
      a.load(argLow(modeArg));
      a.jump(BPF.JSET_K, S_ISUID | S_ISGID, l('deny'), null);
      a.label(l('allow'));
      a.ret(SECCOMP_RET.ALLOW);
      a.label(l('deny'));
      a.ret(errno(EPERM));
    });
  };
  modeCheck('openat', 3, 2);
  modeCheck('open', 2, 1);
  modeCheck('chmod', 1);
  modeCheck('fchmod', 1);
  modeCheck('fchmodat', 2);
  modeCheck('fchmodat2', 2);
  modeCheck('creat', 1);
  modeCheck('mknod', 1);
  modeCheck('mknodat', 2);
  ifSyscall('openat2', () => a.ret(errno(ENOSYS)));

  // 4. clone3 passes its flags in memory, out of the filter's sight: ENOSYS
  //    makes libc fall back to clone, whose flags are a register.
  ifSyscall('clone3', () => a.ret(errno(ENOSYS)));

  // 5. clone: no namespace flags. The kernel uses only the low 32 bits of the
  //    flags (kernel/fork.c: lower_32_bits(clone_flags)).
  ifSyscall('clone', (l) => {
    a.load(argLow(0));
    a.jump(BPF.JSET_K, CLONE_NS_FLAGS, l('deny'), null);
    a.ret(SECCOMP_RET.ALLOW);
    a.label(l('deny'));
    a.ret(errno(EPERM));
  });

  // 6. ioctl: no terminal input injection. cmd is an unsigned int in the kernel.
  ifSyscall('ioctl', (l) => {
    a.load(argLow(1));
    a.jump(BPF.JEQ_K, TIOCSTI, l('deny'), null);
    a.jump(BPF.JEQ_K, TIOCLINUX, l('deny'), null);
    a.ret(SECCOMP_RET.ALLOW);
    a.label(l('deny'));
    a.ret(errno(EPERM));
  });

  // 7. socket: UNIX, INET and INET6; netlink only for NETLINK_ROUTE (what
  //    getifaddrs and `ip` need). Every other family (packet, vsock, bluetooth,
  //    the rest of netlink...) is kernel attack surface the agent never needs.
  ifSyscall('socket', (l) => {
    a.load(argLow(0));
    a.jump(BPF.JEQ_K, AF_UNIX, l('allow'), null);
    a.jump(BPF.JEQ_K, AF_INET, l('allow'), null);
    a.jump(BPF.JEQ_K, AF_INET6, l('allow'), null);
    a.jump(BPF.JEQ_K, AF_NETLINK, null, l('deny'));
    a.load(argLow(2));
    a.jump(BPF.JEQ_K, NETLINK_ROUTE, l('allow'), l('deny'));
    a.label(l('allow'));
    a.ret(SECCOMP_RET.ALLOW);
    a.label(l('deny'));
    a.ret(errno(EPERM));
  });

  ifSyscall('socketpair', (l) => {
    a.load(argLow(0));
    a.jump(BPF.JEQ_K, AF_UNIX, null, l('deny'));
    a.ret(SECCOMP_RET.ALLOW);
    a.label(l('deny'));
    a.ret(errno(EPERM));
  });

  // 8. Denylist: one `JEQ nr; RET EPERM` pair each, so no jump is ever long.
  for (const name of deniedOn(arch)) ifSyscall(name, () => a.ret(errno(EPERM)));

  // 9. Everything else.
  a.ret(SECCOMP_RET.ALLOW);
  return a.assemble();
}

function deniedOn(arch: SeccompArch): string[] {
  return SECCOMP_DENIED_SYSCALLS.filter((name) => SECCOMP_SYSCALL_NUMBERS[arch][name] !== undefined);
}

/** A human-readable account of the filter, for `--dry-run` plans. */
export function describeSeccompFilter(arch: SeccompArch = hostSeccompArch()): {
  arch: SeccompArch;
  deniedSyscalls: string[];
  rules: string[];
} {
  checkArch(arch);
  const hex = (n: number): string => `0x${n.toString(16)}`;
  const rules = [
    `architecture other than ${arch} (AUDIT_ARCH ${hex(AUDIT_ARCH_OF[arch])}) -> kill process` +
      (arch === 'x86_64' ? ' (refuses the i386 int 0x80 entry point)' : ' (refuses AArch32 tasks)'),
    ...(arch === 'x86_64' ? ['x32 ABI (syscall nr >= 0x40000000) -> kill process'] : []),
    'clone3 -> ENOSYS (libc falls back to clone, whose flags the filter can see)',
    'clone with a namespace flag (CLONE_NEW*) in the low 32 bits of flags -> EPERM',
    'ioctl TIOCSTI (0x5412) or TIOCLINUX (0x541c), compared on the low 32 bits of cmd -> EPERM',
    'socket: AF_UNIX, AF_INET, AF_INET6 allowed; AF_NETLINK only with NETLINK_ROUTE; any other family -> EPERM',
    'socketpair: AF_UNIX only; any other family -> EPERM',
    'chmod, fchmod, fchmodat(2), creat, mknod(at), open/openat with O_CREAT or O_TMPFILE: a mode with S_ISUID or S_ISGID -> EPERM',
    'openat2 -> ENOSYS (its mode is in memory; libc falls back to openat)',
    `${deniedOn(arch).length} denied syscalls (mount API, unshare/setns, ptrace family, kernel modules/kexec/bpf/perf/userfaultfd, io_uring, keyrings, file handles, obsolete calls) -> EPERM`,
    'every other syscall -> allow',
  ];
  return { arch, deniedSyscalls: deniedOn(arch), rules };
}
