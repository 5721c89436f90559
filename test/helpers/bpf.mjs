// A classic-BPF interpreter over struct seccomp_data, for running the
// sandbox's seccomp program (src/sandbox/seccomp-filter.ts) in tests. Written
// from the kernel's definitions, not the compiler's, so a wrong opcode or
// offset there shows here. It runs the instructions a seccomp program may use
// that the tests need, and throws on anything else, on loads the kernel would
// reject, and on running off the end.

// Classic BPF opcodes (include/uapi/linux/filter.h, bpf_common.h).
const LD_W_ABS = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JA = 0x05; // BPF_JMP | BPF_JA
const JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT_K = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JGE_K = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const AND_K = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RET_K = 0x06; // BPF_RET | BPF_K

const INSN_SIZE = 8; // struct sock_filter
// struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }
const SECCOMP_DATA_SIZE = 64;

/** Runs `program` on one syscall; returns the filter's 32-bit verdict. */
export function runBpf(program, data) {
  if (program.length === 0 || program.length % INSN_SIZE !== 0) {
    throw new Error(`runBpf: program length ${program.length} is not a positive multiple of ${INSN_SIZE}`);
  }
  if (data.args.length > 6) throw new Error('runBpf: at most 6 arguments');
  const mem = Buffer.alloc(SECCOMP_DATA_SIZE);
  mem.writeUInt32LE(data.nr >>> 0, 0);
  mem.writeUInt32LE(data.arch >>> 0, 4);
  mem.writeBigUInt64LE(BigInt.asUintN(64, data.ip ?? 0n), 8);
  data.args.forEach((arg, i) => mem.writeBigUInt64LE(BigInt.asUintN(64, arg), 16 + 8 * i));

  const len = program.length / INSN_SIZE;
  let acc = 0;
  let pc = 0;
  // Every jump goes forward, so this loop always ends.
  while (pc < len) {
    const o = pc * INSN_SIZE;
    const code = program.readUInt16LE(o);
    const jt = program.readUInt8(o + 2);
    const jf = program.readUInt8(o + 3);
    const k = program.readUInt32LE(o + 4);
    pc += 1;
    switch (code) {
      case LD_W_ABS:
        if (k % 4 !== 0 || k + 4 > SECCOMP_DATA_SIZE) throw new Error(`runBpf: bad load offset ${k}`);
        acc = mem.readUInt32LE(k);
        break;
      case AND_K:
        acc = (acc & k) >>> 0;
        break;
      case JA:
        pc += k;
        break;
      case JEQ_K:
        pc += acc === k ? jt : jf;
        break;
      case JGT_K:
        pc += acc > k ? jt : jf;
        break;
      case JGE_K:
        pc += acc >= k ? jt : jf;
        break;
      case JSET_K:
        pc += (acc & k) !== 0 ? jt : jf;
        break;
      case RET_K:
        return k;
      default:
        throw new Error(`runBpf: unsupported opcode 0x${code.toString(16)} at ${pc - 1}`);
    }
  }
  throw new Error('runBpf: fell off the end of the program');
}
