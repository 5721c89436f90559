// The box against the kernel: privilege, namespace and
// kernel-surface primitives, other processes,
// terminal injection, leaked fds, resource limits,
// the environment and the launcher's exit codes.
// Every attack is made for real by test/fixtures/escape-probe.c, inside the
// box, from a root launcher and from an unprivileged one; next to each refusal
// the legitimate path is shown to work.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, own, runBox, sh, testUser, distDir } from '../helpers/sandbox.mjs';
import { buildEscapeProbe } from '../helpers/escape-probe.mjs';
import { callOf, expectErr, expectOk, runProbes, shq } from '../helpers/probe-calls.mjs';

const isRoot = process.getuid() === 0;
const probe = await buildEscapeProbe();
const probeDir = path.dirname(probe);
const RO_PROBE = ['--ro', probeDir];
const BOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SIGSYS_STATUS = 128 + os.constants.signals.SIGSYS;

const extraDirs = [];
after(() => {
  cleanupWorkspaces();
  for (const d of extraDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

// ---- probe batching ---------------------------------------------------------
// One box runs the probe many times; each call is framed by CALL/STATUS lines
// so that its RESULT line and its exit status (159 = killed by SIGSYS) are
// attributed to the right attack.

// A kernel without the i386 entry (IA32 emulation off, as on some VM
// kernels) faults `int $0x80` before any syscall runs, box or not: there the
// probe's own SIGSEGV report is the refusal, and seccomp's kill of that ABI
// cannot be seen. Asked once, outside any box.
const INT80_FAULTS_ON_HOST = /^RESULT int80-getpid ERR SIGSEGV/m.test(execFileSync(probe, ['int80-getpid'], { encoding: 'utf8' }));

/** The i386 ABI call `key` never ran: killed by seccomp, or faulted by a kernel that has no such entry. */
function expectNoI386Syscall(calls, key, res, t) {
  if (!INT80_FAULTS_ON_HOST) return expectKilledBySigsys(calls, key, res);
  const c = callOf(calls, key, res);
  assert.deepEqual([c.status, c.lines], [0, [`RESULT ${key.replace(/-packet$/, '')} ERR SIGSEGV 0`]], `${key}: expected the fault this kernel gives int $0x80 outside the box too`);
  t.diagnostic(`${key}: this kernel has no int $0x80 entry (it faults outside the box too), so seccomp's kill of the i386 ABI is not exercised here`);
}

function expectKilledBySigsys(calls, key, res) {
  const c = callOf(calls, key, res);
  assert.equal(c.status, SIGSYS_STATUS, `${key}: expected the probe to die of SIGSYS (status ${SIGSYS_STATUS}), got status ${c.status}: ${c.lines.join(' | ')}`);
  assert.deepEqual(c.lines, [], `${key}: the syscall must not return at all`);
}

const probeBox = (mode, calls, opts) => runProbes(mode, probe, calls, opts);

/** Lines `KEY value...` printed by a script, as a map KEY -> rest of the line. */
function tagged(stdout) {
  const m = new Map();
  for (const line of stdout.split('\n')) {
    const i = line.indexOf(' ');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

function oneLine(stderr) {
  const lines = stderr.trim().split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, 1, `expected a one-line message, got:\n${stderr}`);
  return lines[0];
}

/** A root-owned, world-readable workspace (the root launcher hands it to nobody). */
function rootOwnedWorkspace() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-rootws-'));
  chmodSync(dir, 0o755);
  extraDirs.push(dir);
  return dir;
}

function hostHardLimits() {
  const text = readFileSync('/proc/self/limits', 'utf8');
  const hard = (label) => {
    const v = text.split('\n').find((l) => l.startsWith(label)).slice(26).trim().split(/\s+/)[1];
    return v === 'unlimited' ? Infinity : Number(v);
  };
  return { nofile: hard('Max open files'), nproc: hard('Max processes') };
}

/** Parses /proc/<pid>/limits text into { 'Max open files': [soft, hard], ... }. */
function parseLimits(text) {
  const out = {};
  for (const line of text.split('\n').slice(1)) {
    if (!line.trim()) continue;
    const [soft, hard] = line.slice(26).trim().split(/\s+/);
    out[line.slice(0, 26).trim()] = [soft, hard];
  }
  return out;
}

const ZERO_CAPS = '0000000000000000';

for (const mode of MODES) {
  describe(`[${mode} launcher] kernel`, { skip: skipReason(mode) }, () => {
    // ---- privilege ---------------------------------------------------
    test('privilege: no capabilities in any set, no_new_privs, seccomp filter mode, never uid 0', async () => {
      const u = testUser();
      const { res, calls } = await probeBox(mode, [['caps', 'caps'], ['setuid0', 'setuid0']], {
        afterScript: 'echo "ID $(id -u) $(id -g)"; echo "CHILD $(grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status | tr -s "\\t\\n" "  ")"',
      });
      const caps = expectOk(calls, 'caps', res);
      assert.deepEqual(caps.extra, [ZERO_CAPS, ZERO_CAPS, ZERO_CAPS, ZERO_CAPS, ZERO_CAPS, 'NoNewPrivs=1', 'Seccomp=2'], caps.line);
      // uid 0 is not even mapped in the box's user namespace (EINVAL); EPERM also refuses it.
      expectErr(calls, 'setuid0', ['EINVAL', 'EPERM'], res);
      const t = tagged(res.stdout);
      assert.equal(t.get('ID'), `${u.uid} ${u.gid}`, 'the agent runs as the test user');
      // Every program the command starts inherits the same state.
      assert.match(t.get('CHILD'), /CapInh: 0{16} CapPrm: 0{16} CapEff: 0{16} CapBnd: 0{16} CapAmb: 0{16} NoNewPrivs: 1 Seccomp: 2/);
    });

    test('privilege: a setuid-root program gains nothing (no_new_privs, root unmapped)', { skip: !isRoot && 'needs root to create a setuid-root fixture' }, async () => {
      const u = testUser();
      const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-suid-'));
      extraDirs.push(dir);
      chmodSync(dir, 0o755);
      const suidId = path.join(dir, 'id');
      const suidProbe = path.join(dir, 'probe');
      copyFileSync('/usr/bin/id', suidId);
      copyFileSync(probe, suidProbe);
      for (const f of [suidId, suidProbe]) chmodSync(f, 0o4755); // owned by root: setuid root
      const res = await sh(mode, `echo "SUID $(${suidId})"; echo "EUID $(${suidId} -u)"; ${suidProbe} setuid0; ${suidProbe} caps`, {
        workspace: makeWorkspace('suid'),
        args: ['--ro', dir],
      });
      assert.equal(res.code, 0, res.stderr);
      const t = tagged(res.stdout);
      assert.doesNotMatch(t.get('SUID'), /euid=0|uid=0\(/, `setuid root took effect: ${t.get('SUID')}`);
      assert.equal(t.get('EUID'), String(u.uid));
      assert.match(res.stdout, /RESULT setuid0 ERR (EINVAL|EPERM)/);
      assert.match(res.stdout, new RegExp(`RESULT caps OK (${ZERO_CAPS} ){5}NoNewPrivs=1 Seccomp=2`));
    });

    test('identity: SUDO_UID=0 in the launcher environment never makes the agent root', async () => {
      const u = testUser();
      const res = await sh(mode, 'id -u', { workspace: makeWorkspace('sudo0'), env: { SUDO_UID: '0', SUDO_GID: '0' } });
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout.trim(), String(u.uid));
    });

    // ---- namespace and kernel primitives --------------------
    test('namespace, mount and kernel primitives are refused by seccomp (EPERM); clone3 ENOSYS; other ABIs killed', async (t) => {
      const ws = makeWorkspace('ns');
      const calls = [
        ['unshare-user', 'unshare-user'],
        ['unshare-mount', 'unshare-mount'],
        ['unshare-net', 'unshare-net'],
        ['unshare-pid', 'unshare-pid'],
        ['clone-newuser', 'clone-newuser'],
        ['clone3', 'clone3'],
        ['mount-tmpfs', 'mount-tmpfs', ws],
        ['umount-ws', 'umount', ws],
        ['umount-proc', 'umount', '/proc'],
        ['remount-rw', 'remount-rw', '/usr'],
        ['pivot-root', 'pivot-root', ws],
        ['chroot', 'chroot', ws],
        ['setns-init-mnt', 'setns', '/proc/1/ns/mnt'],
        // fds opened in the box itself: the open works, setns must not.
        ['setns-self-mnt', 'setns', '/proc/self/ns/mnt'],
        ['setns-self-user', 'setns', '/proc/self/ns/user'],
        ['setns-self-net', 'setns', '/proc/self/ns/net'],
        ['open-tree', 'open-tree', '/'],
        ['fsopen', 'fsopen'],
        ['move-mount', 'move-mount'],
        ['open-by-handle', 'open-by-handle'],
        ['bpf', 'bpf'],
        ['perf-event-open', 'perf-event-open'],
        ['userfaultfd', 'userfaultfd'],
        ['keyctl', 'keyctl'],
        ['add-key', 'add-key'],
        ['kexec-load', 'kexec-load'],
        ['init-module', 'init-module'],
        ['io-uring', 'io-uring'],
        ['x32-getpid', 'x32-getpid'],
        ['int80-getpid', 'int80-getpid'],
        ['int80-socketcall', 'int80-socketcall'],
        ['int80-socketcall-packet', 'int80-socketcall', '17', '3', '768'],
      ];
      const { res, calls: got } = await probeBox(mode, calls, { workspace: ws, afterScript: 'echo "ALIVE $(cat /proc/self/mountinfo | wc -l)"' });
      const eperm = [
        'unshare-user', 'unshare-mount', 'unshare-net', 'unshare-pid', 'clone-newuser', 'mount-tmpfs', 'umount-ws', 'umount-proc',
        'remount-rw', 'pivot-root', 'chroot', 'setns-self-mnt', 'setns-self-user', 'setns-self-net', 'open-tree', 'fsopen',
        'move-mount', 'open-by-handle', 'bpf', 'perf-event-open', 'userfaultfd', 'keyctl', 'add-key', 'kexec-load', 'init-module', 'io-uring',
      ];
      for (const key of eperm) expectErr(got, key, ['EPERM'], res);
      // /proc/1 is the box's init, not dumpable: the open itself may be refused.
      expectErr(got, 'setns-init-mnt', ['EPERM', 'EACCES'], res);
      expectErr(got, 'clone3', ['ENOSYS'], res);
      expectKilledBySigsys(got, 'x32-getpid', res);
      for (const key of ['int80-getpid', 'int80-socketcall', 'int80-socketcall-packet']) expectNoI386Syscall(got, key, res, t);
      assert.ok(tagged(res.stdout).has('ALIVE'), 'the shell went on after the killed probes');
    });

    test('legitimate: fork, exec, threads, memfd_create, SysV and POSIX shared memory, socketpair', async () => {
      const py = [
        'import threading, os, ctypes, socket, mmap',
        'out = []',
        'ts = [threading.Thread(target=lambda i=i: out.append(i)) for i in range(8)]',
        '[t.start() for t in ts]; [t.join() for t in ts]',
        'print("THREADS", len(out))',
        'fd = os.memfd_create("lg"); os.write(fd, b"hello"); os.lseek(fd, 0, 0); print("MEMFD", os.read(fd, 5).decode())',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'libc.shmat.restype = ctypes.c_void_p',
        'shmid = libc.shmget(0, 4096, 0o1000 | 0o600)',
        'addr = libc.shmat(shmid, None, 0)',
        'ctypes.memmove(addr, b"shm!", 4)',
        'print("SYSVSHM", shmid >= 0, ctypes.string_at(addr, 4).decode(), libc.shmdt(ctypes.c_void_p(addr)), libc.shmctl(shmid, 0, None))',
        'with open("/dev/shm/lg-posix", "w+b") as f:',
        '    f.truncate(4096); m = mmap.mmap(f.fileno(), 4096); m[:4] = b"posx"; print("POSIXSHM", bytes(m[:4]).decode()); m.close()',
        'os.unlink("/dev/shm/lg-posix")',
        'a, b = socket.socketpair(); a.send(b"pair"); print("SOCKETPAIR", b.recv(4).decode())',
        'pid = os.fork()',
        'if pid == 0: os._exit(7)',
        'print("FORK", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))',
      ].join('\n');
      const res = await sh(mode, `echo "SUBSHELL $(echo sub)"; /bin/true && echo "EXEC ok"; python3 -c ${shq(py)}`, { workspace: makeWorkspace('legit') });
      assert.equal(res.code, 0, res.stderr);
      const t = tagged(res.stdout);
      assert.equal(t.get('SUBSHELL'), 'sub');
      assert.equal(t.get('EXEC'), 'ok');
      assert.equal(t.get('THREADS'), '8');
      assert.equal(t.get('MEMFD'), 'hello');
      assert.equal(t.get('SYSVSHM'), 'True shm! 0 0');
      assert.equal(t.get('POSIXSHM'), 'posx');
      assert.equal(t.get('SOCKETPAIR'), 'pair');
      assert.equal(t.get('FORK'), '7');
    });

    // ---- other processes ---------------------------------------------
    test('other processes: host PIDs invisible; ptrace, process_vm_readv and kill on init refused; /proc/1/root does not lead to the host', async () => {
      let launcherPid;
      const { res, calls } = await probeBox(
        mode,
        [
          ['ptrace-1', 'ptrace', '1'],
          ['vm-readv-1', 'process-vm-readv', '1'],
          ['kill-1', 'kill', '1', '15'],
          ['kill-1-probe', 'kill', '1', '0'],
          // The test runner (the launcher's parent) by its host pid: not in this namespace.
          ...(process.pid > 50 ? [['kill-host-parent', 'kill', String(process.pid), '0']] : []),
          ['read-init-root-shadow', 'read', '/proc/1/root/etc/shadow'],
          ['read-shadow', 'read', '/etc/shadow'],
          // Legitimate: a process of the box's own may be signalled.
          ['kill-own-child', 'kill', { raw: '"$CHILD"' }, '15'],
        ],
        {
          before: 'sleep 30 & CHILD=$!; for d in /proc/[0-9]*; do echo "PID ${d#/proc/} $(tr "\\0" " " < $d/cmdline 2>/dev/null | cut -c1-80)"; done',
          afterScript: [
            'wait $CHILD; echo "CHILDSTATUS $?"',
            // Where init's root and cwd lead, if anywhere: the box's own tree, never the host's.
            'for l in root cwd; do if ls /proc/1/$l/ >/dev/null 2>&1; then [ "$(ls -a /proc/1/$l/)" = "$(ls -a /)" ] && echo "INIT$l box" || echo "INIT$l other"; else echo "INIT$l denied"; fi; done',
          ].join('\n'),
          onSpawn: (c) => (launcherPid = c.pid),
        },
      );
      const pids = res.stdout.split('\n').filter((l) => l.startsWith('PID ')).map((l) => Number(l.split(' ')[1]));
      assert.ok(pids.length > 0 && pids.length <= 8, `the box's /proc lists only its own few processes, got ${pids.length}:\n${res.stdout}`);
      assert.ok(pids.includes(1), 'init is PID 1');
      for (const host of [process.pid, launcherPid, process.ppid]) {
        assert.ok(!pids.includes(host) || host < 16, `host pid ${host} is visible in the box's /proc`);
      }
      assert.ok(Math.max(...pids) < 100, `box pids start at 1: ${pids.join(',')}`);
      expectErr(calls, 'ptrace-1', ['EPERM'], res);
      expectErr(calls, 'vm-readv-1', ['EPERM'], res);
      expectErr(calls, 'kill-1', ['EPERM'], res);
      expectErr(calls, 'kill-1-probe', ['EPERM'], res);
      if (process.pid > 50) expectErr(calls, 'kill-host-parent', ['ESRCH'], res);
      expectErr(calls, 'read-init-root-shadow', ['EACCES', 'ENOENT', 'EPERM'], res);
      expectErr(calls, 'read-shadow', ['ENOENT'], res);
      const t = tagged(res.stdout);
      assert.match(t.get('INITroot'), /^(denied|box)$/, `/proc/1/root leads to ${t.get('INITroot')}`);
      assert.match(t.get('INITcwd'), /^(denied|box)$/, `/proc/1/cwd leads to ${t.get('INITcwd')}`);
      expectOk(calls, 'kill-own-child', res);
      assert.equal(t.get('CHILDSTATUS'), '143', 'the own child died of SIGTERM');
    });

    // ---- terminal injection ------------------------------------------
    test('terminal: no controlling terminal; TIOCSTI (also with high bits) and TIOCLINUX refused by the filter', async () => {
      const py = 'import fcntl, termios, array; b = array.array("i", [0]); fcntl.ioctl(0, termios.FIONREAD, b); print("FIONREAD", b[0])';
      const { res, calls } = await probeBox(
        mode,
        [
          ['tiocsti-0', 'tiocsti', '0'],
          ['tiocsti-1', 'tiocsti', '1'],
          ['tiocsti-2', 'tiocsti', '2'],
          ['tiocsti-hi-0', 'tiocsti-hi', '0'],
          ['tiocsti-hi2-0', 'tiocsti-hi2', '0'],
          ['tioclinux-0', 'tioclinux', '0'],
          ['open-dev-tty', 'read', '/dev/tty'],
        ],
        // Legitimate ioctls still work: FIONREAD on the stdin pipe.
        { before: `python3 -c ${shq(py)}`, afterScript: 'echo "TTY $(tty)"', input: 'hello' },
      );
      // With stdin a pipe the kernel itself would answer ENOTTY: EPERM is the filter.
      for (const key of ['tiocsti-0', 'tiocsti-1', 'tiocsti-2', 'tiocsti-hi-0', 'tiocsti-hi2-0', 'tioclinux-0']) expectErr(calls, key, ['EPERM'], res);
      expectErr(calls, 'open-dev-tty', ['ENXIO'], res);
      const t = tagged(res.stdout);
      assert.equal(t.get('TTY'), 'not a tty');
      assert.equal(t.get('FIONREAD'), '5');
    });

    // ---- fds ---------------------------------------------------------
    test('fds: the command gets stdin, stdout and stderr only', async () => {
      const res = await runBox(mode, { workspace: makeWorkspace('fds'), args: RO_PROBE, cmd: [probe, 'fds'] });
      assert.equal(res.code, 0, res.stderr);
      const fds = parseFds(res.stdout);
      // 0-2 are whatever the launcher was given (the harness's stdio: socketpairs).
      assert.deepEqual(Object.keys(fds), ['0', '1', '2'], res.stdout);
    });

    test('fds: a directory fd, a file fd and a socket held by the launcher do not cross into the box', async () => {
      const ws = makeWorkspace('fdleak');
      const cli = path.join(distDir(mode), 'cli', 'main.js');
      const server = net.createServer((s) => s.on('error', () => {}));
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      const client = net.connect(server.address().port, '127.0.0.1');
      await new Promise((r) => client.on('connect', r));
      const dirFd = openSync('/', 'r');
      const fileFd = openSync('/etc/hostname', 'r');
      try {
        const u = testUser();
        const opts = {
          cwd: ws,
          env: { PATH: BOX_PATH, LANG: 'C.UTF-8' },
          stdio: ['pipe', 'pipe', 'pipe', dirFd, fileFd, client],
        };
        if (mode === 'user' && isRoot) Object.assign(opts, { uid: u.uid, gid: u.gid });
        const child = spawn(process.execPath, [cli, 'sandbox', '--workspace', ws, ...RO_PROBE, '--', probe, 'fds'], opts);
        child.stdin.end();
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const code = await new Promise((r) => child.on('exit', r));
        await new Promise((r) => setImmediate(r));
        assert.equal(code, 0, stderr);
        const fds = parseFds(stdout);
        assert.deepEqual(Object.keys(fds), ['0', '1', '2'], `fds seen in the box: ${stdout}`);
        for (const target of Object.values(fds)) assert.doesNotMatch(target, /^(\/|\/etc\/hostname)$/);
      } finally {
        closeSync(dirFd);
        closeSync(fileFd);
        client.destroy();
        server.close();
      }
    });

    // ---- environment -------------------------------------------------
    test('environment: exactly the allowlist; a host secret only with --pass-env', async () => {
      const u = testUser();
      const ws = makeWorkspace('env');
      const hostEnv = {
        FOO_SECRET: 's3cret-value',
        TERM: 'xterm-256color',
        COLORTERM: 'truecolor',
        LC_TIME: 'C',
        LD_PRELOAD: '',
        LD_LIBRARY_PATH: '/nonexistent-lg',
        BASH_ENV: '/nonexistent-lg/bashenv',
        ENV: '/nonexistent-lg/env',
        SSH_AUTH_SOCK: '/tmp/ssh-lg/agent.1',
        DOCKER_HOST: 'unix:///var/run/docker.sock',
        DBUS_SESSION_BUS_ADDRESS: 'unix:path=/run/user/0/bus',
        PROMPT_COMMAND: 'echo pwned',
        GIT_DIR: '/tmp/elsewhere',
        XDG_RUNTIME_DIR: '/run/user/0',
        HISTFILE: '/tmp/hist',
      };
      const parseEnv = (out) => Object.fromEntries(out.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      // GIT_CONFIG_*: latchgate's own, hiding its placeholders from git in the box (core.excludesFile) and naming its generated global config.
      const base = ['COLORTERM', 'GIT_CONFIG_COUNT', 'GIT_CONFIG_GLOBAL', 'GIT_CONFIG_KEY_0', 'GIT_CONFIG_VALUE_0', 'HOME', 'LANG', 'LATCHGATE_BOX', 'LATCHGATE_PUBLIC_URL', 'LATCHGATE_SANDBOX', 'LATCHGATE_SOCKET', 'LATCHGATE_URL', 'LATCHGATE_WORKSPACE', 'LC_TIME', 'LOGNAME', 'PATH', 'PS1', 'SHELL', 'TERM', 'USER'];

      const plain = await runBox(mode, { workspace: ws, env: hostEnv, cmd: ['/usr/bin/env'] });
      assert.equal(plain.code, 0, plain.stderr);
      const env = parseEnv(plain.stdout);
      assert.deepEqual(Object.keys(env).sort(), base, plain.stdout);
      // latchgate itself is runnable in every box (/run/latchgate/bin, its Node's bin when outside the system trees).
      const nodeBin = path.dirname(realpathSync(process.execPath));
      const nodePath = /^\/(usr|bin|sbin)\//.test(nodeBin) ? '' : `:${nodeBin}`;
      assert.equal(env.PATH, `${BOX_PATH}${nodePath}:/run/latchgate/bin`);
      assert.equal(env.USER, u.name);
      assert.equal(env.LOGNAME, u.name);
      if (!u.self) {
        assert.equal(env.HOME, `/home/${u.name}`);
        assert.equal(env.SHELL, '/bin/sh');
      }
      assert.equal(env.LATCHGATE_SANDBOX, '1');
      assert.equal(env.LATCHGATE_WORKSPACE, realpathSync(ws));
      assert.deepEqual([env.GIT_CONFIG_COUNT, env.GIT_CONFIG_KEY_0, env.GIT_CONFIG_VALUE_0], ['1', 'core.excludesFile', '/run/latchgate/git-excludes']);
      assert.equal(env.GIT_CONFIG_GLOBAL, '/run/latchgate/gitconfig');
      assert.equal(env.LATCHGATE_SOCKET, '/run/latchgate/gate.sock');
      assert.equal(env.LATCHGATE_URL, 'unix:///run/latchgate/gate.sock');
      assert.equal(env.TERM, 'xterm-256color');
      assert.equal(env.LANG, 'C.UTF-8');
      assert.ok(!plain.stdout.includes('s3cret-value'), 'the host secret leaked');

      const passed = await runBox(mode, { workspace: ws, env: hostEnv, args: ['--pass-env', 'FOO_SECRET'], cmd: ['/usr/bin/env'] });
      assert.equal(passed.code, 0, passed.stderr);
      const env2 = parseEnv(passed.stdout);
      assert.deepEqual(Object.keys(env2).sort(), [...base, 'FOO_SECRET'].sort());
      assert.equal(env2.FOO_SECRET, 's3cret-value');
    });

    test('environment: --pass-env of a name that would subvert the box is refused (125, one line naming it)', async () => {
      const ws = makeWorkspace('envref');
      const hostEnv = { LD_PRELOAD: '', SSH_AUTH_SOCK: '/tmp/ssh-lg/agent.1', DOCKER_HOST: 'unix:///var/run/docker.sock', BASH_ENV: '/nonexistent-lg', LD_LIBRARY_PATH: '/nonexistent-lg', ENV: '/nonexistent-lg', NODE_OPTIONS: '--no-warnings' };
      const names = ['LD_PRELOAD', 'SSH_AUTH_SOCK', 'DOCKER_HOST', 'BASH_ENV', 'PATH', 'A=B', 'LD_LIBRARY_PATH', 'ENV', 'NODE_OPTIONS', 'LATCHGATE_SANDBOX'];
      const results = await Promise.all(
        names.map((n) => sh(mode, `touch ${shq(path.join(ws, 'ran'))}`, { workspace: ws, env: hostEnv, args: ['--pass-env', n] })),
      );
      names.forEach((n, i) => {
        const r = results[i];
        assert.equal(r.code, 125, `--pass-env ${n}: exit ${r.code}\n${r.stderr}`);
        const line = oneLine(r.stderr);
        assert.ok(line.includes(n), `--pass-env ${n}: the message does not name it: ${line}`);
        assert.equal(r.stdout, '');
      });
      assert.ok(!existsSync(path.join(ws, 'ran')), 'a refused launch ran the command');
    });

    // ---- rlimits ----------------------------------------
    test('rlimits: core 0; nofile and nproc defaults; --rlimit-nofile is enforced', async () => {
      const hard = hostHardLimits();
      const ws = makeWorkspace('rlim');
      const d = await runBox(mode, { workspace: ws, cmd: ['/bin/cat', '/proc/self/limits'] });
      assert.equal(d.code, 0, d.stderr);
      const lim = parseLimits(d.stdout);
      assert.deepEqual(lim['Max core file size'], ['0', '0']);
      const nofile = String(Math.min(65536, hard.nofile));
      const nproc = String(Math.min(4096, hard.nproc));
      assert.deepEqual(lim['Max open files'], [nofile, nofile]);
      assert.deepEqual(lim['Max processes'], [nproc, nproc]);

      const py = 'import os\nfds = []\ntry:\n    while len(fds) < 1000: fds.append(os.open("/dev/null", os.O_RDONLY))\nexcept OSError as e:\n    print("OPENED", len(fds), e.strerror)';
      const r = await sh(mode, `ulimit -n; ulimit -Hn; python3 -c ${shq(py)}`, { workspace: ws, args: ['--rlimit-nofile', '256'] });
      assert.equal(r.code, 0, r.stderr);
      const [soft, hardN] = r.stdout.split('\n');
      assert.equal(soft, '256');
      assert.equal(hardN, '256');
      const m = /^OPENED (\d+) Too many open files$/m.exec(r.stdout);
      assert.ok(m, `opening 1000 files must hit EMFILE: ${r.stdout}`);
      assert.ok(Number(m[1]) >= 240 && Number(m[1]) < 256, `opened ${m[1]} files under a limit of 256`);
      // Raising it back is refused.
      const up = await sh(mode, 'ulimit -n 1024 && echo raised || echo refused', { workspace: ws, args: ['--rlimit-nofile', '256'] });
      assert.match(up.stdout, /^refused$/m);
    });

    test('rlimits: a fork bomb under --rlimit-nproc 64 stops with EAGAIN and the launcher returns promptly', async () => {
      const t0 = Date.now();
      const { res, calls } = await probeBox(mode, [['bomb', 'fork-bomb', '500']], {
        args: ['--rlimit-nproc', '64'],
        afterScript: 'echo "AFTER $(echo still-forks)"',
        timeoutMs: 20000,
      });
      const elapsed = Date.now() - t0;
      const r = expectErr(calls, 'bomb', ['EAGAIN'], res);
      const count = Number(r.extra[0]);
      assert.ok(count < 64, `forked ${count} processes under nproc 64`);
      assert.equal(tagged(res.stdout).get('AFTER'), 'still-forks', 'the box recovers once the bomb is gone');
      assert.ok(elapsed < 10000, `launcher took ${elapsed} ms`);
    });

    // ---- exit codes ---------------------------------------------
    test('exit codes: the command\'s own, 128+N for a signal, 127 not found, 126 not executable', async () => {
      // One workspace each: concurrent launches on one workspace are lifecycle.test.mjs's matter.
      const ws = makeWorkspace('exit');
      const script = path.join(ws, 'not-executable.sh');
      writeFileSync(script, '#!/bin/sh\necho should-not-run\n', { mode: 0o644 });
      own(script);
      const [three, term, missing, noexec] = await Promise.all([
        sh(mode, 'exit 3', { workspace: makeWorkspace('exit') }),
        sh(mode, 'kill -TERM $$; sleep 5', { workspace: makeWorkspace('exit') }),
        runBox(mode, { workspace: makeWorkspace('exit'), cmd: ['latchgate-no-such-command'] }),
        runBox(mode, { workspace: ws, cmd: ['./not-executable.sh'] }),
      ]);
      assert.equal(three.code, 3, three.stderr);
      assert.equal(term.code, 143, term.stderr);
      assert.equal(missing.code, 127, missing.stderr);
      assert.match(oneLine(missing.stderr), /not found.*latchgate-no-such-command/);
      assert.equal(noexec.code, 126, noexec.stderr);
      assert.match(oneLine(noexec.stderr), /not-executable\.sh/);
      assert.ok(!noexec.stdout.includes('should-not-run'));
    });

    test('exit codes: launcher errors are 125 with one line; --dry-run prints the plan', async () => {
      const ws = makeWorkspace('exit125');
      const missingWs = `/nonexistent-latchgate-${process.pid}`;
      const [unknown, noWs, badProfile, dry] = await Promise.all([
        runBox(mode, { workspace: ws, args: ['--no-such-option'], cmd: ['/bin/true'] }),
        runBox(mode, { args: ['--workspace', missingWs], cmd: ['/bin/true'] }),
        runBox(mode, { workspace: ws, args: ['--profile', 'nope'], cmd: ['/bin/true'] }),
        runBox(mode, { workspace: ws, args: ['--profile', 'claude-code', '--dry-run'] }),
      ]);
      assert.equal(unknown.code, 125, unknown.stderr);
      assert.match(oneLine(unknown.stderr), /--no-such-option/);
      assert.equal(noWs.code, 125, noWs.stderr);
      assert.ok(oneLine(noWs.stderr).includes(missingWs), noWs.stderr);
      assert.equal(badProfile.code, 125, badProfile.stderr);
      const pl = oneLine(badProfile.stderr);
      for (const p of ['nope', 'claude-code', 'codex', 'cursor', 'opencode', 'aider']) assert.ok(pl.includes(p), `profile message lacks ${p}: ${pl}`);
      assert.equal(dry.code, 0, dry.stderr);
      const plan = JSON.parse(dry.stdout);
      assert.equal(plan.profile, 'claude-code');
      assert.equal(plan.workspace, realpathSync(ws));
      assert.equal(plan.command.argv[0], 'claude');
      assert.equal(plan.noNewPrivs, true);
    });
  });
}

// ---- identity chosen by a root launcher ------------------------
describe('[root launcher] identity', { skip: skipReason('root') }, () => {
  test('root launcher, root-owned workspace, no SUDO_UID: the agent is nobody (65534)', async () => {
    const res = await sh('root', 'echo "$(id -u) $(id -g) $(id -un)"', { workspace: rootOwnedWorkspace() });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim(), '65534 65534 nobody');
  });

  test('root launcher with SUDO_UID: the agent is that user, whoever owns the workspace', async () => {
    const u = testUser();
    const res = await sh('root', 'id -u', { workspace: rootOwnedWorkspace(), env: { SUDO_UID: String(u.uid), SUDO_GID: String(u.gid) } });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim(), String(u.uid));
  });
});

function parseFds(stdout) {
  const m = /^RESULT fds OK (.*)$/m.exec(stdout);
  assert.ok(m, `no fds result: ${stdout}`);
  return Object.fromEntries(m[1].split(';').filter(Boolean).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}
