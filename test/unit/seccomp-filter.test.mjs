// Attacks the compiled seccomp program through the classic-BPF interpreter,
// and checks its syscall table against this machine's kernel headers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import {
  AUDIT_ARCH,
  SECCOMP_DENIED_SYSCALLS,
  SECCOMP_RET,
  SECCOMP_SYSCALL_NUMBERS,
  buildSeccompFilter,
  describeSeccompFilter,
  hostSeccompArch,
} from '../../dist/sandbox/seccomp-filter.js';
import { runBpf } from '../helpers/bpf.mjs';

const ARCHES = ['x86_64', 'aarch64'];
const AUDIT = { x86_64: AUDIT_ARCH.X86_64, aarch64: AUDIT_ARCH.AARCH64 };
const AUDIT_ARCH_ARM = 0x40000028;
const KILL = SECCOMP_RET.KILL_PROCESS;
const ALLOW = SECCOMP_RET.ALLOW;
const EPERM = SECCOMP_RET.ERRNO | 1;
const ENOSYS = SECCOMP_RET.ERRNO | 38;

const PROGRAMS = Object.fromEntries(ARCHES.map((arch) => [arch, buildSeccompFilter(arch)]));

const run = (arch, nr, args = [], { audit = AUDIT[arch], ip } = {}) =>
  runBpf(PROGRAMS[arch], { nr, arch: audit, args, ip });

function nrOf(arch, name) {
  const nr = SECCOMP_SYSCALL_NUMBERS[arch][name];
  assert.notEqual(nr, undefined, `${name} has no number on ${arch}`);
  return nr;
}

// Syscalls the sandbox must leave alone. Literal numbers, cross-checked against
// the headers below (epoll_wait does not exist on aarch64: epoll_pwait does).
const EVERYDAY = {
  x86_64: {
    read: 0, write: 1, close: 3, mmap: 9, getpid: 39, execve: 59, futex: 202,
    epoll_wait: 232, epoll_pwait: 281, execveat: 322, memfd_create: 319, prctl: 157,
    seccomp: 317, personality: 135, shmget: 29, landlock_create_ruleset: 444,
    landlock_add_rule: 445, landlock_restrict_self: 446,
  },
  aarch64: {
    read: 63, write: 64, close: 57, mmap: 222, getpid: 172, execve: 221, futex: 98,
    epoll_pwait: 22, execveat: 281, memfd_create: 279, prctl: 167, seccomp: 277,
    personality: 92, shmget: 194, landlock_create_ruleset: 444, landlock_add_rule: 445,
    landlock_restrict_self: 446,
  },
};
const MUST_NOT_DENY = ['memfd_create', 'shmget', 'landlock_create_ruleset', 'landlock_add_rule',
  'landlock_restrict_self', 'seccomp', 'execveat', 'prctl', 'personality'];

// Checked on their arguments (so never cacheable): openat is among them, for its mode.
const SPECIAL_NAMES = ['clone3', 'clone', 'ioctl', 'socket', 'socketpair', 'openat', 'fchmod', 'fchmodat', 'fchmodat2', 'mknodat', 'openat2'];

// Deterministic PRNG (mulberry32) so a failure can be replayed.
function prng(seed) {
  let s = seed >>> 0;
  const u32 = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const u64 = () => (BigInt(u32()) << 32n) | BigInt(u32());
  const below = (n) => u32() % n;
  const pick = (xs) => xs[below(xs.length)];
  return { u32, u64, below, pick };
}

const randomArgs = (r) => Array.from({ length: 6 }, () => r.u64());
const low32 = (v) => Number(BigInt.asUintN(32, v ?? 0n));

// ---------------------------------------------------------------------------
// The interpreter itself: if it were wrong, every other test would be moot.

const insn = (code, jt, jf, k) => {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(code, 0);
  b[2] = jt;
  b[3] = jf;
  b.writeUInt32LE(k >>> 0, 4);
  return b;
};
const prog = (...insns) => Buffer.concat(insns);
const LD = (off) => insn(0x20, 0, 0, off);
const RET = (k) => insn(0x06, 0, 0, k);

test('runBpf: loads, compares and jumps like the kernel', () => {
  const data = (nr, args = []) => ({ nr, arch: 0, args });
  const jgt = prog(LD(0), insn(0x25, 0, 1, 5), RET(1), RET(2));
  assert.equal(runBpf(jgt, data(6)), 1);
  assert.equal(runBpf(jgt, data(5)), 2);
  const jge = prog(LD(0), insn(0x35, 0, 1, 5), RET(1), RET(2));
  assert.equal(runBpf(jge, data(5)), 1);
  assert.equal(runBpf(jge, data(4)), 2);
  // Comparisons are unsigned.
  assert.equal(runBpf(jgt, data(0xffffffff)), 1);
  const jset = prog(LD(0), insn(0x45, 1, 0, 0x80000000), RET(1), RET(2));
  assert.equal(runBpf(jset, data(0x80000001)), 2);
  assert.equal(runBpf(jset, data(0x7fffffff)), 1);
  const and = prog(LD(0), insn(0x54, 0, 0, 0xf0), insn(0x15, 0, 1, 0x30), RET(1), RET(2));
  assert.equal(runBpf(and, data(0x3f)), 1);
  assert.equal(runBpf(and, data(0x4f)), 2);
  const ja = prog(insn(0x05, 0, 0, 1), RET(1), RET(2));
  assert.equal(runBpf(ja, data(0)), 2);
  // args[0] is little-endian: low word at 16, high word at 20; arch at 4, ip at 8.
  const arg = 0x12345678_9abcdef0n;
  assert.equal(runBpf(prog(LD(16), insn(0x15, 0, 1, 0x9abcdef0), RET(1), RET(2)), data(0, [arg])), 1);
  assert.equal(runBpf(prog(LD(20), insn(0x15, 0, 1, 0x12345678), RET(1), RET(2)), data(0, [arg])), 1);
  assert.equal(runBpf(prog(LD(56), insn(0x15, 0, 1, 7), RET(1), RET(2)), data(0, [0n, 0n, 0n, 0n, 0n, 7n])), 1);
  assert.equal(runBpf(prog(LD(4), insn(0x15, 0, 1, 0xc000003e), RET(1), RET(2)), { nr: 0, arch: 0xc000003e, args: [] }), 1);
  assert.equal(runBpf(prog(LD(12), insn(0x15, 0, 1, 1), RET(1), RET(2)), { nr: 0, arch: 0, ip: 1n << 32n, args: [] }), 1);
});

test('runBpf: refuses what the kernel would refuse', () => {
  const data = { nr: 0, arch: 0, args: [] };
  assert.throws(() => runBpf(Buffer.alloc(0), data), /length/);
  assert.throws(() => runBpf(Buffer.alloc(12), data), /length/);
  assert.throws(() => runBpf(prog(LD(2), RET(0)), data), /load offset/);
  assert.throws(() => runBpf(prog(LD(64), RET(0)), data), /load offset/);
  assert.throws(() => runBpf(prog(insn(0x07, 0, 0, 0), RET(0)), data), /opcode/); // TAX
  assert.throws(() => runBpf(prog(LD(0)), data), /fell off/);
  assert.throws(() => runBpf(prog(insn(0x15, 5, 5, 0), RET(0)), data), /fell off/);
});

// ---------------------------------------------------------------------------
// Shape of the program.

const ALLOWED_CODES = new Set([0x20, 0x05, 0x15, 0x25, 0x35, 0x45, 0x54, 0x06]);
const CONDITIONAL = new Set([0x15, 0x25, 0x35, 0x45]);

function decode(buf) {
  const out = [];
  for (let o = 0; o < buf.length; o += 8) {
    out.push({ code: buf.readUInt16LE(o), jt: buf[o + 2], jf: buf[o + 3], k: buf.readUInt32LE(o + 4) });
  }
  return out;
}

for (const arch of ARCHES) {
  test(`${arch}: program size and encoding`, () => {
    const buf = PROGRAMS[arch];
    assert.equal(buf.length % 8, 0);
    const n = buf.length / 8;
    assert.ok(n > 0 && n < 4096, `${n} instructions`);
    // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }, little-endian:
    // the first instruction is LD W ABS offsetof(seccomp_data, arch).
    assert.deepEqual([...buf.subarray(0, 8)], [0x20, 0, 0, 0, 4, 0, 0, 0]);
    assert.deepEqual(decode(buf)[1], { code: 0x15, jt: 1, jf: 0, k: AUDIT[arch] });
    assert.ok(buildSeccompFilter(arch).equals(buf), 'deterministic');
  });

  test(`${arch}: every jump lands inside the program and every path ends in RET`, () => {
    const insns = decode(PROGRAMS[arch]);
    const n = insns.length;
    const reachable = new Set([0]);
    insns.forEach(({ code, jt, jf, k }, pc) => {
      assert.ok(ALLOWED_CODES.has(code), `opcode 0x${code.toString(16)} at ${pc}`);
      let next;
      if (code === 0x06) next = [];
      else if (code === 0x05) next = [pc + 1 + k];
      else if (CONDITIONAL.has(code)) next = [pc + 1 + jt, pc + 1 + jf];
      else next = [pc + 1];
      if (code === 0x20) assert.ok(k % 4 === 0 && k + 4 <= 64, `load offset ${k} at ${pc}`);
      for (const t of next) {
        assert.ok(t < n, `instruction ${pc} continues to ${t}, past the end (${n})`);
        if (reachable.has(pc)) reachable.add(t);
      }
    });
    // Jumps only go forward, so with every successor in range, every path
    // strictly advances until it meets an instruction without successors: RET.
    assert.equal(insns[n - 1].code, 0x06, 'last instruction is RET');
    assert.equal(reachable.size, n, 'no dead code');
  });
}

// The kernel's seccomp action cache (kernel/seccomp.c, seccomp_is_const_allow)
// emulates the filter for each nr with only nr/arch known; if it reaches RET
// ALLOW without reading an argument, that syscall skips the filter entirely.
function constAllow(buf, nr, arch) {
  const insns = decode(buf);
  let acc = 0;
  for (let pc = 0; pc < insns.length; pc++) {
    const { code, jt, jf, k } = insns[pc];
    switch (code) {
      case 0x20:
        if (k === 0) acc = nr;
        else if (k === 4) acc = arch;
        else return false;
        break;
      case 0x06: return k === ALLOW;
      case 0x05: pc += k; break;
      case 0x54: acc = (acc & k) >>> 0; break;
      default: {
        const op = code & 0xf0;
        const r = op === 0x10 ? acc === k : op === 0x20 ? acc > k : op === 0x30 ? acc >= k : (acc & k) !== 0;
        pc += r ? jt : jf;
      }
    }
  }
  return false;
}

for (const arch of ARCHES) {
  test(`${arch}: plain syscalls are decided from nr alone (kernel action cache)`, () => {
    for (const [name, nr] of Object.entries(EVERYDAY[arch])) {
      assert.ok(constAllow(PROGRAMS[arch], nr, AUDIT[arch]), `${name} should be cacheable`);
    }
    for (const name of SPECIAL_NAMES) {
      assert.equal(constAllow(PROGRAMS[arch], nrOf(arch, name), AUDIT[arch]), false, name);
    }
  });
}

// ---------------------------------------------------------------------------
// Architecture and ABI checks: the only rules that kill.

for (const arch of ARCHES) {
  test(`${arch}: a foreign architecture kills the process`, () => {
    const r = prng(0xa4c4);
    const foreign = [AUDIT_ARCH.I386, AUDIT_ARCH_ARM, 0, 0xffffffff, (AUDIT[arch] & 0x7fffffff) >>> 0,
      (AUDIT[arch] ^ 0x40000000) >>> 0, ...ARCHES.filter((a) => a !== arch).map((a) => AUDIT[a])];
    for (let i = 0; i < 200; i++) foreign.push(r.u32());
    const probes = [0, nrOf(arch, 'clone'), nrOf(arch, 'mount'), EVERYDAY[arch].read, EVERYDAY[arch].getpid];
    for (const audit of foreign) {
      if (audit === AUDIT[arch]) continue;
      for (const nr of probes) {
        assert.equal(run(arch, nr, randomArgs(r), { audit }), KILL, `arch 0x${audit.toString(16)} nr ${nr}`);
      }
    }
  });
}

test('x86_64: the x32 ABI bit kills, whatever the syscall', () => {
  const r = prng(0x32);
  const nrs = [0, 0xffffffff, 0x40000000, 0x7fffffff, 0x80000000,
    ...['read', 'getpid', 'execve'].map((n) => EVERYDAY.x86_64[n]),
    ...[...SPECIAL_NAMES, 'mount', 'ptrace'].map((n) => nrOf('x86_64', n))];
  for (const nr of nrs) assert.equal(run('x86_64', (nr | 0x40000000) >>> 0, randomArgs(r)), KILL, `nr 0x${nr.toString(16)}`);
  for (let i = 0; i < 500; i++) {
    const nr = (r.u32() | 0x40000000) >>> 0;
    assert.equal(run('x86_64', nr, randomArgs(r)), KILL, `nr 0x${nr.toString(16)}`);
  }
  // The largest native number still gets through.
  assert.equal(run('x86_64', 0x3fffffff), ALLOW);
});

test('aarch64: no x32 ABI there, high numbers fall through to the kernel (ENOSYS)', () => {
  assert.equal(run('aarch64', 0x40000000 | EVERYDAY.aarch64.read), ALLOW);
});

// ---------------------------------------------------------------------------
// clone3 and clone.

const CLONE_NS = {
  CLONE_NEWTIME: 0x80, CLONE_NEWNS: 0x20000, CLONE_NEWCGROUP: 0x02000000, CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000, CLONE_NEWUSER: 0x10000000, CLONE_NEWPID: 0x20000000, CLONE_NEWNET: 0x40000000,
};
const NS_MASK = Object.values(CLONE_NS).reduce((a, b) => a | b, 0) >>> 0;
const SIGCHLD = 17;
const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_VFORK = 0x4000,
  CLONE_THREAD = 0x10000, CLONE_SYSVSEM = 0x40000, CLONE_SETTLS = 0x80000, CLONE_PARENT_SETTID = 0x100000,
  CLONE_CHILD_CLEARTID = 0x200000, CLONE_CHILD_SETTID = 0x1000000;
// What glibc's pthread_create passes.
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
  CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;

for (const arch of ARCHES) {
  test(`${arch}: clone3 gets ENOSYS so libc falls back to clone`, () => {
    const r = prng(3);
    assert.equal(run(arch, nrOf(arch, 'clone3')), ENOSYS);
    for (let i = 0; i < 100; i++) assert.equal(run(arch, nrOf(arch, 'clone3'), randomArgs(r)), ENOSYS);
  });

  test(`${arch}: clone refuses every namespace flag`, () => {
    const clone = nrOf(arch, 'clone');
    for (const [name, flag] of Object.entries(CLONE_NS)) {
      assert.equal(run(arch, clone, [BigInt(flag)]), EPERM, name);
      assert.equal(run(arch, clone, [BigInt(flag | SIGCHLD)]), EPERM, `${name}|SIGCHLD`);
      assert.equal(run(arch, clone, [BigInt((flag | THREAD_FLAGS) >>> 0), 0x7fff0000n]), EPERM, `${name}|thread flags`);
      // Garbage in the high word does not hide a namespace flag in the low word.
      assert.equal(run(arch, clone, [0xffffffff_00000000n | BigInt(flag)]), EPERM, `${name} with high bits`);
    }
    assert.equal(run(arch, clone, [BigInt(NS_MASK)]), EPERM, 'all of them');
  });

  test(`${arch}: clone for threads, fork and vfork is allowed`, () => {
    const clone = nrOf(arch, 'clone');
    assert.equal(run(arch, clone, [BigInt(THREAD_FLAGS), 0x7f00_0000_1000n, 0x7f00_0000_2000n, 0x7f00_0000_3000n, 0x7f00_0000_4000n]), ALLOW);
    assert.equal(run(arch, clone, [BigInt(SIGCHLD)]), ALLOW, 'fork');
    assert.equal(run(arch, clone, [BigInt(CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD)]), ALLOW, 'glibc fork');
    assert.equal(run(arch, clone, [BigInt(CLONE_VM | CLONE_VFORK | SIGCHLD)]), ALLOW, 'vfork / posix_spawn');
    assert.equal(run(arch, clone, [0n]), ALLOW);
  });

  // The kernel reads only the low 32 bits of clone()'s flags (kernel/fork.c:
  // `.flags = lower_32_bits(clone_flags) & ~CSIGNAL`; before 5.3 every CLONE_*
  // flag already lived in the low word). Namespace bits in the high word are
  // therefore no request for a namespace, and refusing them would only break
  // callers that leave junk in the register.
  test(`${arch}: namespace bits in the high 32 bits of clone flags are ignored, as by the kernel`, () => {
    const clone = nrOf(arch, 'clone');
    for (const [name, flag] of Object.entries(CLONE_NS)) {
      assert.equal(run(arch, clone, [(BigInt(flag) << 32n) | BigInt(SIGCHLD)]), ALLOW, name);
    }
    assert.equal(run(arch, clone, [(BigInt(NS_MASK) << 32n) | BigInt(THREAD_FLAGS)]), ALLOW);
  });
}

// ---------------------------------------------------------------------------
// ioctl.

const TIOCSTI = 0x5412, TIOCLINUX = 0x541c, TCGETS = 0x5401, TIOCSWINSZ = 0x5414;

for (const arch of ARCHES) {
  test(`${arch}: ioctl TIOCSTI and TIOCLINUX are refused, even with high bits set (CVE-2019-10063)`, () => {
    const ioctl = nrOf(arch, 'ioctl');
    for (const cmd of [TIOCSTI, TIOCLINUX]) {
      const c = BigInt(cmd);
      for (const v of [c, 0x1_0000_0000n | c, 0xffffffff_00000000n | c, 0x8000_0000_0000_0000n | c]) {
        assert.equal(run(arch, ioctl, [0n, v, 0x7ffc_0000_0000n]), EPERM, `cmd 0x${v.toString(16)}`);
        assert.equal(run(arch, ioctl, [0xffffffffn, v]), EPERM, `fd -1, cmd 0x${v.toString(16)}`);
      }
    }
  });

  test(`${arch}: ordinary ioctls are allowed`, () => {
    const ioctl = nrOf(arch, 'ioctl');
    for (const cmd of [TCGETS, TIOCSWINSZ, 0x5413 /* TIOCGWINSZ */, 0x541b /* FIONREAD */, 0x5421 /* FIONBIO */]) {
      assert.equal(run(arch, ioctl, [1n, BigInt(cmd), 0x7ffc_0000_0000n]), ALLOW, `cmd 0x${cmd.toString(16)}`);
    }
    // TIOCSTI's value in the high word or in another argument is not TIOCSTI.
    assert.equal(run(arch, ioctl, [1n, BigInt(TIOCSTI) << 32n]), ALLOW);
    assert.equal(run(arch, ioctl, [BigInt(TIOCSTI), BigInt(TCGETS), BigInt(TIOCSTI)]), ALLOW);
  });
}

// ---------------------------------------------------------------------------
// socket and socketpair.

const AF = { UNIX: 1, INET: 2, INET6: 10, NETLINK: 16, PACKET: 17, BLUETOOTH: 31, VSOCK: 40, ALG: 38, CAN: 29, XDP: 44 };
const NETLINK = { ROUTE: 0, SOCK_DIAG: 4, NETFILTER: 12, AUDIT: 9, KOBJECT_UEVENT: 15, GENERIC: 16 };
const SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, SOCK_NONBLOCK = 0x800;

for (const arch of ARCHES) {
  test(`${arch}: socket allows UNIX, INET, INET6 and netlink route only`, () => {
    const socket = nrOf(arch, 'socket');
    const sock = (family, type, protocol = 0) => run(arch, socket, [BigInt(family), BigInt(type), BigInt(protocol)]);
    for (const family of [AF.UNIX, AF.INET, AF.INET6]) {
      for (const type of [SOCK_STREAM, SOCK_DGRAM, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK]) {
        assert.equal(sock(family, type), ALLOW, `family ${family} type ${type}`);
      }
    }
    assert.equal(sock(AF.INET, SOCK_DGRAM, 17 /* IPPROTO_UDP */), ALLOW);
    assert.equal(sock(AF.NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK.ROUTE), ALLOW, 'NETLINK_ROUTE');
    for (const [name, proto] of Object.entries(NETLINK)) {
      if (name !== 'ROUTE') assert.equal(sock(AF.NETLINK, SOCK_RAW, proto), EPERM, `NETLINK_${name}`);
    }
    for (const [name, family] of Object.entries(AF)) {
      if (!['UNIX', 'INET', 'INET6', 'NETLINK'].includes(name)) {
        assert.equal(sock(family, SOCK_RAW), EPERM, `AF_${name}`);
        assert.equal(sock(family, SOCK_STREAM), EPERM, `AF_${name}`);
      }
    }
    for (const family of [0, 3, 4, 5, 9, 11, 15, 18, 45, 46, 255, 0xffff, 0xffffffff]) {
      assert.equal(sock(family, SOCK_STREAM), EPERM, `family ${family}`);
    }
  });

  // The kernel takes family and protocol as int: only the low 32 bits count.
  test(`${arch}: socket compares family and protocol on their low 32 bits`, () => {
    const socket = nrOf(arch, 'socket');
    const hi = 0xdead_beef_0000_0000n;
    assert.equal(run(arch, socket, [hi | BigInt(AF.PACKET), 3n]), EPERM, 'AF_PACKET with high bits');
    assert.equal(run(arch, socket, [hi | BigInt(AF.UNIX), 1n]), ALLOW, 'AF_UNIX with high bits');
    assert.equal(run(arch, socket, [BigInt(AF.NETLINK), 3n, hi | BigInt(NETLINK.AUDIT)]), EPERM, 'NETLINK_AUDIT with high bits');
    assert.equal(run(arch, socket, [BigInt(AF.NETLINK), 3n, hi]), ALLOW, 'NETLINK_ROUTE with high bits');
    assert.equal(run(arch, socket, [BigInt(AF.UNIX) << 32n, 1n]), EPERM, 'AF_UNIX in the high word leaves AF_UNSPEC');
  });

  test(`${arch}: socketpair allows AF_UNIX only`, () => {
    const socketpair = nrOf(arch, 'socketpair');
    assert.equal(run(arch, socketpair, [BigInt(AF.UNIX), BigInt(SOCK_STREAM | SOCK_CLOEXEC), 0n, 0x7ffc_0000_0000n]), ALLOW);
    assert.equal(run(arch, socketpair, [BigInt(AF.UNIX), BigInt(SOCK_DGRAM)]), ALLOW);
    for (const family of [AF.INET, AF.INET6, AF.NETLINK, AF.PACKET, AF.VSOCK, 0]) {
      assert.equal(run(arch, socketpair, [BigInt(family), BigInt(SOCK_STREAM)]), EPERM, `family ${family}`);
    }
  });
}

// ---------------------------------------------------------------------------
// Denylist and everyday syscalls.

test('the denylist spares what Node, Chromium and nested sandboxes need', () => {
  for (const name of [...MUST_NOT_DENY, ...SPECIAL_NAMES]) assert.ok(!SECCOMP_DENIED_SYSCALLS.includes(name), name);
  assert.equal(new Set(SECCOMP_DENIED_SYSCALLS).size, SECCOMP_DENIED_SYSCALLS.length, 'no duplicates');
  // The denylist of DESIGN.md decision 3, spelled out so a dropped entry fails.
  const required = [
    'mount', 'umount2', 'pivot_root', 'chroot', 'open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount',
    'fspick', 'mount_setattr', 'unshare', 'setns', 'ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp',
    'pidfd_getfd', 'process_madvise', 'kexec_load', 'kexec_file_load', 'init_module', 'finit_module',
    'delete_module', 'reboot', 'swapon', 'swapoff', 'acct', 'bpf', 'perf_event_open', 'userfaultfd',
    'lookup_dcookie', 'quotactl', 'quotactl_fd', 'syslog', 'vhangup', 'iopl', 'ioperm', 'settimeofday',
    'clock_settime', 'clock_adjtime', 'adjtimex', 'sethostname', 'setdomainname', 'io_uring_setup',
    'io_uring_enter', 'io_uring_register', 'add_key', 'request_key', 'keyctl', 'open_by_handle_at',
    'name_to_handle_at', 'fanotify_init', 'nfsservctl', 'uselib', 'ustat', 'sysfs', '_sysctl', 'create_module',
    'get_kernel_syms', 'query_module',
  ];
  const missing = required.filter((name) => !SECCOMP_DENIED_SYSCALLS.includes(name));
  assert.deepEqual(missing, [], 'missing from the denylist');
});

for (const arch of ARCHES) {
  test(`${arch}: every denied syscall gets EPERM`, () => {
    const r = prng(7);
    const present = SECCOMP_DENIED_SYSCALLS.filter((n) => SECCOMP_SYSCALL_NUMBERS[arch][n] !== undefined);
    // Every denied syscall exists on x86_64; those missing on aarch64 are
    // checked against the headers below.
    if (arch === 'x86_64') assert.deepEqual(present, [...SECCOMP_DENIED_SYSCALLS]);
    for (const name of present) {
      assert.equal(run(arch, nrOf(arch, name)), EPERM, name);
      assert.equal(run(arch, nrOf(arch, name), randomArgs(r), { ip: r.u64() }), EPERM, name);
    }
    assert.deepEqual(describeSeccompFilter(arch).deniedSyscalls, present);
  });

  test(`${arch}: everyday syscalls are allowed`, () => {
    const r = prng(11);
    for (const [name, nr] of Object.entries(EVERYDAY[arch])) {
      assert.equal(run(arch, nr), ALLOW, name);
      assert.equal(run(arch, nr, randomArgs(r)), ALLOW, name);
    }
  });
}

test('aarch64 has no x86-only syscalls in its table', () => {
  for (const name of ['iopl', 'ioperm', 'uselib', 'ustat', 'sysfs', '_sysctl', 'create_module',
    'get_kernel_syms', 'query_module', 'epoll_wait', 'open', 'fork']) {
    assert.equal(SECCOMP_SYSCALL_NUMBERS.aarch64[name], undefined, name);
  }
});

// ---------------------------------------------------------------------------
// Property tests against an independent model of the policy.

function model(arch, nr, args) {
  if (arch === 'x86_64' && nr >= 0x40000000) return KILL;
  const name = Object.entries(SECCOMP_SYSCALL_NUMBERS[arch]).find(([, n]) => n === nr)?.[0];
  const a = (i) => low32(args[i]);
  switch (name) {
    case undefined: return ALLOW;
    case 'clone3': return ENOSYS;
    case 'clone': return (a(0) & NS_MASK) !== 0 ? EPERM : ALLOW;
    case 'ioctl': return a(1) === TIOCSTI || a(1) === TIOCLINUX ? EPERM : ALLOW;
    case 'socket':
      if ([AF.UNIX, AF.INET, AF.INET6].includes(a(0))) return ALLOW;
      return a(0) === AF.NETLINK && a(2) === NETLINK.ROUTE ? ALLOW : EPERM;
    case 'socketpair': return a(0) === AF.UNIX ? ALLOW : EPERM;
    case 'openat2': return ENOSYS;
    case 'chmod': case 'fchmod': case 'creat': case 'mknod': return (a(1) & 0o6000) !== 0 ? EPERM : ALLOW;
    case 'fchmodat': case 'fchmodat2': case 'mknodat': return (a(2) & 0o6000) !== 0 ? EPERM : ALLOW;
    case 'open': return (a(1) & 0o20000100) !== 0 && (a(2) & 0o6000) !== 0 ? EPERM : ALLOW;
    case 'openat': return (a(2) & 0o20000100) !== 0 && (a(3) & 0o6000) !== 0 ? EPERM : ALLOW;
    default:
      assert.ok(SECCOMP_DENIED_SYSCALLS.includes(name), name);
      return EPERM;
  }
}

for (const arch of ARCHES) {
  const named = new Set(Object.values(SECCOMP_SYSCALL_NUMBERS[arch]));
  const limit = arch === 'x86_64' ? 0x40000000 : 2 ** 32;

  test(`${arch}: 2000 random unlisted syscalls with random arguments are allowed`, () => {
    const r = prng(0x5eed);
    let n = 0;
    while (n < 2000) {
      // Mostly real syscall numbers, sometimes anything the ABI lets through.
      const nr = r.below(4) === 0 ? r.u32() % limit : r.below(600);
      if (named.has(nr)) continue;
      n++;
      assert.equal(run(arch, nr, randomArgs(r), { ip: r.u64() }), ALLOW, `nr ${nr}`);
    }
  });

  test(`${arch}: 2000 random denied syscalls with random arguments get EPERM`, () => {
    const r = prng(0xdead);
    const denied = SECCOMP_DENIED_SYSCALLS.filter((n) => SECCOMP_SYSCALL_NUMBERS[arch][n] !== undefined);
    for (let i = 0; i < 2000; i++) {
      const name = r.pick(denied);
      assert.equal(run(arch, nrOf(arch, name), randomArgs(r), { ip: r.u64() }), EPERM, name);
    }
  });

  test(`${arch}: 4000 random calls of the argument-checked syscalls match the model`, () => {
    const r = prng(0xc0ffee);
    // Bias arguments toward the values the filter compares against.
    const interesting = [0, 1, 2, 10, 16, 17, 9, TIOCSTI, TIOCLINUX, TCGETS, SIGCHLD, THREAD_FLAGS,
      ...Object.values(CLONE_NS)];
    const arg = () => {
      const hi = r.below(2) === 0 ? 0n : BigInt(r.u32()) << 32n;
      const lo = r.below(2) === 0 ? r.pick(interesting) | (r.below(3) === 0 ? r.u32() & 0xffff : 0) : r.u32();
      return hi | BigInt(lo >>> 0);
    };
    for (let i = 0; i < 4000; i++) {
      const nr = nrOf(arch, r.pick(SPECIAL_NAMES));
      const args = Array.from({ length: 6 }, arg);
      assert.equal(run(arch, nr, args), model(arch, nr, args), `nr ${nr} args ${args.map((v) => v.toString(16))}`);
    }
  });
}

// ---------------------------------------------------------------------------
// Description, host architecture.

test('describeSeccompFilter names the rules that matter', () => {
  const x = describeSeccompFilter('x86_64');
  assert.equal(x.arch, 'x86_64');
  const text = x.rules.join('\n');
  for (const word of ['kill', 'x32', 'clone3', 'ENOSYS', 'CLONE_NEW', 'TIOCSTI', 'TIOCLINUX', 'AF_NETLINK', 'NETLINK_ROUTE', 'socketpair', 'EPERM']) {
    assert.match(text, new RegExp(word), word);
  }
  assert.ok(!describeSeccompFilter('aarch64').rules.join('\n').includes('x32'));
  assert.throws(() => buildSeccompFilter('riscv64'), /unsupported architecture/);
});

test('hostSeccompArch maps process.arch', () => {
  const expected = { x64: 'x86_64', arm64: 'aarch64' }[process.arch];
  if (expected) {
    assert.equal(hostSeccompArch(), expected);
    assert.ok(buildSeccompFilter().equals(PROGRAMS[expected]));
  } else {
    assert.throws(() => hostSeccompArch(), /unsupported architecture/);
  }
});

// ---------------------------------------------------------------------------
// Cross-check of the literal syscall numbers against this machine's headers.

function parseHeader(path) {
  const text = readFileSync(path, 'utf8');
  const nrs = new Map();
  const base = new Map(); // asm-generic's __NR3264_* numbers
  for (const [, name, nr] of text.matchAll(/^#define __NR3264_(\w+)\s+(\d+)\s*$/gm)) base.set(name, Number(nr));
  for (const [, name, nr] of text.matchAll(/^#define __NR_(\w+)\s+(\d+)\s*$/gm)) {
    if (name !== 'syscalls') nrs.set(name, Number(nr)); // __NR_syscalls is the table size
  }
  for (const [, name, alias] of text.matchAll(/^#define __NR_(\w+)\s+__NR3264_(\w+)\s*$/gm)) {
    if (base.has(alias)) nrs.set(name, base.get(alias));
  }
  return nrs;
}

function crossCheck(t, arch, path) {
  const header = parseHeader(path);
  assert.ok(header.size > 250, `parsed ${header.size} syscalls from ${path}`);
  const newest = Math.max(...header.values());
  const byNr = new Map([...header].map(([name, nr]) => [nr, name]));
  const ours = { ...SECCOMP_SYSCALL_NUMBERS[arch], ...EVERYDAY[arch] };
  let checked = 0;
  for (const [name, nr] of Object.entries(ours)) {
    if (header.has(name)) {
      assert.equal(nr, header.get(name), `__NR_${name}`);
      checked++;
    } else {
      // Newer than these headers: it must at least not collide with a known syscall.
      assert.ok(nr > newest, `${name}=${nr} is missing from ${path} but is not newer than its last syscall (${newest})`);
      assert.ok(!byNr.has(nr), `${name}=${nr} collides with ${byNr.get(nr)}`);
      t.diagnostic(`${name}=${nr} is newer than ${path} (last: ${newest}); not checked`);
    }
  }
  // A denied syscall left out of this arch's table must really not exist there.
  for (const name of SECCOMP_DENIED_SYSCALLS) {
    if (SECCOMP_SYSCALL_NUMBERS[arch][name] === undefined) {
      assert.ok(!header.has(name), `${name} exists on ${arch} (__NR_${name} = ${header.get(name)}) but is not denied`);
    }
  }
  t.diagnostic(`${checked} numbers match ${path}`);
}

const X86_HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
const GENERIC_HEADER = '/usr/include/asm-generic/unistd.h';

test('x86_64 syscall numbers match the kernel headers',
  { skip: existsSync(X86_HEADER) ? false : `${X86_HEADER} not found (install linux-libc-dev to run this check)` },
  (t) => crossCheck(t, 'x86_64', X86_HEADER));

// arm64 uses the generic table; this header is the same on every host.
test('aarch64 syscall numbers match the generic kernel headers',
  { skip: existsSync(GENERIC_HEADER) ? false : `${GENERIC_HEADER} not found (install linux-libc-dev to run this check)` },
  (t) => crossCheck(t, 'aarch64', GENERIC_HEADER));

// ---------------------------------------------------------------------------
// Set-ID bits: nothing the box leaves behind may run as its user for others.

for (const arch of ARCHES) {
  test(`${arch}: a set-user-ID or set-group-ID mode is refused on chmod, creation and mknod; other modes pass`, () => {
    const r = prng(0x5e7);
    const cases = [['fchmod', 1], ['fchmodat', 2], ['fchmodat2', 2], ['mknodat', 2], ...(arch === 'x86_64' ? [['chmod', 1], ['creat', 1], ['mknod', 1]] : [])];
    for (const [name, modeArg] of cases) {
      for (let i = 0; i < 50; i++) {
        const args = randomArgs(r);
        const plain = r.below(0o1777 + 1) | (r.u32() & 0xffff0000);
        args[modeArg] = BigInt(plain & ~0o6000);
        assert.equal(run(arch, nrOf(arch, name), args), ALLOW, `${name} mode ${plain.toString(8)}`);
        args[modeArg] = BigInt((plain & ~0o6000) | r.pick([0o4000, 0o2000, 0o6000]));
        assert.equal(run(arch, nrOf(arch, name), args), EPERM, `${name} with a set-ID bit`);
      }
    }
    // openat: the mode counts only when the file is created.
    const O_CREAT = 0o100;
    const O_TMPFILE = 0o20200000;
    const at = (flags, mode) => run(arch, nrOf(arch, 'openat'), [-100n, 0n, BigInt(flags), BigInt(mode), 0n, 0n]);
    assert.equal(at(0, 0o4755), ALLOW, 'no O_CREAT: whatever is in the mode register');
    assert.equal(at(O_CREAT, 0o755), ALLOW);
    assert.equal(at(O_CREAT, 0o4755), EPERM);
    assert.equal(at(O_TMPFILE | 2, 0o2755), EPERM);
    assert.equal(run(arch, nrOf(arch, 'openat2'), [0n, 0n, 0n, 0n, 0n, 0n]), ENOSYS, 'openat2 -> ENOSYS');
  });
}
