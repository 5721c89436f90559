// buildSandboxPlan with synthetic host facts and real temp directories: the
// plan is plain data, checked here before anything runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, linkSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BOX_HOSTNAME, DEFAULT_NOFILE, DEFAULT_NPROC, buildSandboxPlan, resolveExecPaths } from '../../dist/sandbox/plan.js';
import { renderGroup, renderPasswd, resolveIdentity } from '../../dist/sandbox/identity.js';
import { protectedPathsFor } from '../../dist/sandbox/protected-paths.js';
import { BOX_PATH } from '../../dist/sandbox/env.js';
import { LaunchError } from '../../dist/core/errors.js';
import { checkTmpSize } from '../../dist/sandbox/tmp-budget.js';
import { toNativePlan } from '../../dist/sandbox/native-plan.js';
import { OP } from '../../dist/native/addon.js';
import { assertLaunchError, prng, tempDir } from '../fixtures/unit/helpers.mjs';

const SHELL = existsSync('/bin/bash') ? '/bin/bash' : '/bin/sh';

function identity({ uid = 1000, home = '/home/alice', hostUid = uid, env = {}, owner = { uid: 1000, gid: 1000 } } = {}) {
  return resolveIdentity({
    uid: hostUid,
    gid: hostUid,
    env,
    passwd: `root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:${home}:${SHELL}\nbob:x:4001:4001:Bob:/home/bob:/bin/sh\n`,
    group: 'root:x:0:\nalice:x:1000:\nbob:x:4001:\n',
    workspaceOwner: owner,
  });
}

function facts(over = {}) {
  return {
    identity: identity(),
    env: { TERM: 'xterm-256color', LANG: 'C.UTF-8', AWS_SECRET_ACCESS_KEY: 'secret', SSH_AUTH_SOCK: '/run/ssh', MY_TOKEN: 't' },
    landlockAbi: 7,
    hardLimits: { nofile: 1048576, nproc: 100000 },
    terminal: null,
    homes: [],
    ...over,
  };
}

function options(workspace, over = {}) {
  return { workspace, ro: [], rw: [], passEnv: [], allowHosts: [], command: [], strictNet: false, allowDegraded: false, limits: {}, listenPorts: [], ...over };
}

const idx = (mounts, pred) => mounts.findIndex(pred);
const bindAt = (path) => (e) => e.kind === 'bind' && e.path === path;
const tmpfsAt = (path) => (e) => e.kind === 'tmpfs' && e.path === path;
const budgetDirAt = (path) => (e) => e.kind === 'budget-dir' && e.path === path;
const budgetOf = (plan) => plan.mounts.filter((e) => e.kind === 'tmp-budget');

test('the default plan: system trees read-only, own /etc files, private /tmp and HOME, workspace read-write', (t) => {
  const ws = tempDir(t);
  const plan = buildSandboxPlan(options(ws), facts());
  const m = plan.mounts;
  assert.equal(plan.version, 1);
  assert.equal(plan.hostname, BOX_HOSTNAME);
  assert.equal(plan.workspace, ws);
  assert.equal(plan.profile, null);

  const usr = m.find(bindAt('/usr'));
  assert.deepEqual({ src: usr.src, readonly: usr.readonly }, { src: '/usr', readonly: true });
  for (const e of m.filter((x) => x.kind === 'bind' && /^\/(usr|bin|sbin|lib\w*|etc)(\/|$)/.test(x.path))) {
    assert.equal(e.readonly, true, `${e.path} must be read-only`);
  }
  assert.deepEqual(m.find((e) => e.path === '/etc/passwd'), { kind: 'write', path: '/etc/passwd', content: renderPasswd(plan.identity), mode: 0o644 });
  assert.equal(m.find((e) => e.path === '/etc/group').content, renderGroup(plan.identity));
  assert.equal(m.find((e) => e.path === '/etc/hostname').content, `${BOX_HOSTNAME}\n`);
  assert.ok(!m.some((e) => e.path === '/etc/resolv.conf' || e.src === '/etc/resolv.conf'), 'no resolv.conf: the box has no DNS');
  for (const secret of ['/etc/shadow', '/etc', '/home', '/root', '/run', '/var/run/docker.sock', '/run/docker.sock']) {
    assert.ok(!m.some((e) => e.kind === 'bind' && e.src === secret), `${secret} is bound into the box`);
  }

  const wsBind = m.find(bindAt(ws));
  assert.deepEqual({ src: wsBind.src, readonly: wsBind.readonly }, { src: ws, readonly: false });
  assert.equal(m.filter(bindAt(ws)).length, 1);
  assert.equal(m.find(budgetDirAt('/tmp')).mode, 0o1777);
  assert.equal(plan.identity.home, '/home/alice');
  assert.equal(m.find(budgetDirAt('/home/alice')).mode, 0o700);
  assert.ok(idx(m, budgetDirAt('/tmp')) < idx(m, bindAt(ws)), 'the workspace (under /tmp) is bound after the private /tmp');
  assert.ok(m.some((e) => e.kind === 'proc' && e.path === '/proc'));
  assert.ok(m.some((e) => e.kind === 'devpts' && e.path === '/dev/pts'));

  // Protected paths: those of the workspace, each after the workspace bind.
  assert.deepEqual(plan.protectedPaths, protectedPathsFor(ws, [ws]));
  assert.ok(plan.protectedPaths.length > 0);
  const wsAt = idx(m, bindAt(ws));
  for (const a of plan.protectedPaths) {
    const at = idx(m, (e) => e.path === a.path && (e.kind === 'mask' || (e.kind === 'bind' && e.src === a.path && e.why !== '--workspace')));
    assert.ok(at > wsAt, `${a.path} is mounted at ${at}, before the workspace (${wsAt})`);
    if (a.action === 'mask-symlink') assert.equal(m[at].kind, 'mask');
    else assert.equal(m[at].readonly, a.action !== 'pin', `${a.action} ${a.path}`);
  }
  // Children after the parents they sit in.
  const order = plan.protectedPaths.map((a) => idx(m, (e) => e.path === a.path && e.kind !== 'mkdir' && e.kind !== 'mkfile'));
  assert.deepEqual(order, [...order].sort((x, y) => x - y));
  const pin = plan.protectedPaths.find((a) => a.action === 'pin');
  assert.ok(pin && idx(m, bindAt(pin.path)) < idx(m, bindAt(join(pin.path, 'commands'))), 'the .claude pin comes before .claude/commands');
  assert.ok(!existsSync(join(ws, '.bashrc')), 'building a plan creates nothing on the host');

  assert.deepEqual(plan.command, { argv: [SHELL], execPaths: [SHELL], cwd: ws });
  assert.equal(plan.capabilities, 'all dropped');
  assert.equal(plan.noNewPrivs, true);
  for (const ns of ['user', 'mount', 'pid', 'network', 'uts', 'ipc']) assert.ok(plan.namespaces.includes(ns), ns);
  assert.deepEqual(plan.network, { loopbackOnly: true, strictNet: false, listenPorts: [], dns: null, allowHosts: [], egress: null });
  assert.deepEqual(plan.terminal, { mode: 'inherit' });
  assert.deepEqual(plan.degraded, []);
  assert.deepEqual(plan.rlimits.map((r) => [r.name, r.soft, r.hard]), [['core', 0, 0], ['nofile', DEFAULT_NOFILE, DEFAULT_NOFILE], ['nproc', DEFAULT_NPROC, DEFAULT_NPROC]]);
});

test('the environment is the allowlist, never host secrets', (t) => {
  const ws = tempDir(t);
  const plan = buildSandboxPlan(options(ws, { passEnv: ['MY_TOKEN'] }), facts());
  assert.equal(plan.env.TERM, 'xterm-256color');
  assert.equal(plan.env.MY_TOKEN, 't');
  assert.equal(plan.env.HOME, plan.identity.home);
  assert.equal(plan.env.LATCHGATE_WORKSPACE, ws);
  assert.ok(!('AWS_SECRET_ACCESS_KEY' in plan.env));
  assert.ok(!('SSH_AUTH_SOCK' in plan.env));
  assertLaunchError(() => buildSandboxPlan(options(ws, { passEnv: ['LD_PRELOAD'] }), facts()), LaunchError, 'LD_PRELOAD');
});

test('landlock mirrors the mounts', (t) => {
  const ws = tempDir(t);
  const plan = buildSandboxPlan(options(ws), facts());
  assert.equal(plan.landlock.status, 'enforced');
  assert.equal(plan.landlock.abi, 7);
  assert.equal(plan.landlock.handledNet, 0);
  for (const p of plan.landlock.paths) {
    assert.notEqual(p.access, 0, `${p.path}: a rule granting nothing is refused by the kernel`);
    assert.equal(p.access & ~plan.landlock.handledFs, 0, p.path);
  }
  const cls = (path) => plan.landlock.paths.filter((p) => p.path === path).map((p) => p.class);
  assert.deepEqual(cls(ws), ['rw']);
  assert.deepEqual(cls('/usr'), ['read-exec']);
  assert.deepEqual(cls('/'), ['list']);
});

test('the command: defaults to the shell; bare names follow PATH; paths are absolute', (t) => {
  const ws = tempDir(t);
  const tools = tempDir(t);
  mkdirSync(join(tools, 'bin'));
  const bare = buildSandboxPlan(options(ws, { command: ['git', 'status'], ro: [tools] }), facts());
  assert.deepEqual(bare.command.argv, ['git', 'status']);
  assert.deepEqual(bare.command.execPaths, [...BOX_PATH.split(':'), join(tools, 'bin')].map((d) => join(d, 'git')));
  assert.equal(bare.env.PATH, `${BOX_PATH}:${join(tools, 'bin')}`);
  const abs = buildSandboxPlan(options(ws, { command: ['/usr/bin/env', 'x'] }), facts());
  assert.deepEqual(abs.command.execPaths, ['/usr/bin/env']);
  const rel = buildSandboxPlan(options(ws, { command: ['./scripts/run.sh'] }), facts());
  assert.deepEqual(rel.command.execPaths, [join(ws, 'scripts/run.sh')]);
  assert.equal(rel.command.cwd, ws);
  assert.deepEqual(resolveExecPaths('x', '/w', 'relative:/a::/b'), ['/a/x', '/b/x']);
});

test('--ro and --rw: binds at the real path, parents first, with the protected paths of --rw roots', (t) => {
  const ws = tempDir(t);
  const data = tempDir(t);
  const cache = tempDir(t);
  mkdirSync(join(cache, '.git/hooks'), { recursive: true });
  writeFileSync(join(cache, '.git/HEAD'), 'ref: refs/heads/main\n');
  const link = join(ws, 'data-link');
  symlinkSync(data, link);
  const plan = buildSandboxPlan(options(ws, { ro: [link], rw: [cache] }), facts());
  const m = plan.mounts;
  assert.equal(m.find(bindAt(data)).readonly, true);
  assert.equal(m.find(bindAt(data)).src, data, 'symlinks resolved');
  assert.ok(!m.some(bindAt(link)));
  assert.equal(m.find(bindAt(cache)).readonly, false);
  assert.ok(plan.protectedPaths.some((a) => a.path === join(cache, '.git/hooks') && a.action === 'readonly'));
  assert.ok(idx(m, bindAt(cache)) < idx(m, bindAt(join(cache, '.git/hooks'))));
});

test('a --ro or --rw parent of the workspace is mounted before it, whatever the order given', (t) => {
  const base = tempDir(t);
  const ws = join(base, 'project');
  const inner = join(ws, 'vendor');
  mkdirSync(inner, { recursive: true });
  for (const [ro, rw] of [[[base], []], [[], [base]], [[inner, base], []]]) {
    const m = buildSandboxPlan(options(ws, { ro, rw }), facts()).mounts;
    assert.ok(idx(m, bindAt(base)) >= 0 && idx(m, bindAt(base)) < idx(m, bindAt(ws)), `${JSON.stringify({ ro, rw })}: ${base} after ${ws}`);
    if (ro.includes(inner)) assert.ok(idx(m, bindAt(ws)) < idx(m, bindAt(inner)));
    assert.ok(!m.some((e) => e.kind === 'mkdir' && e.path === ws), 'the workspace exists inside the bound parent');
  }
});

test('relative --ro/--rw paths are refused naming the flag; a relative --workspace is taken from the current directory', (t) => {
  const ws = tempDir(t);
  assertLaunchError(() => buildSandboxPlan(options(ws, { ro: ['some/dir'] }), facts()), LaunchError, '--ro some/dir', 'absolute');
  assertLaunchError(() => buildSandboxPlan(options(ws, { rw: ['./x'] }), facts()), LaunchError, '--rw ./x', 'absolute');
  const cwd = process.cwd();
  try {
    process.chdir(dirname(ws));
    assert.equal(buildSandboxPlan(options(basename(ws)), facts()).workspace, realpathSync(ws));
  } finally {
    process.chdir(cwd);
  }
  assertLaunchError(() => buildSandboxPlan(options(ws, { ro: [join(ws, 'missing')] }), facts()), LaunchError, '--ro', 'no such file');
  writeFileSync(join(ws, 'file'), '');
  assertLaunchError(() => buildSandboxPlan(options(join(ws, 'file')), facts()), LaunchError, '--workspace', 'not a directory');
});

test('host internals are refused for --ro, --rw and --workspace', (t) => {
  const ws = tempDir(t);
  const procLink = join(ws, 'proc-link');
  symlinkSync('/proc', procLink);
  const rootLink = join(ws, 'root-link');
  symlinkSync('/', rootLink);
  const refused = ['/', '/proc', '/proc/self', '/dev', '/dev/shm', '/sys', '/sys/kernel', procLink, rootLink].filter((p) => existsSync(p));
  for (const p of refused) {
    assertLaunchError(() => buildSandboxPlan(options(ws, { ro: [p] }), facts()), LaunchError, '--ro', 'refused');
    assertLaunchError(() => buildSandboxPlan(options(ws, { rw: [p] }), facts()), LaunchError, '--rw', 'refused');
    assertLaunchError(() => buildSandboxPlan(options(p), facts()), LaunchError, '--workspace', 'refused');
  }
  assertLaunchError(() => buildSandboxPlan(options(ws, { ro: ['/dev/null'] }), facts()), LaunchError, '--ro /dev/null', 'refused');
  // Missing ones are refused too (as missing).
  assertLaunchError(() => buildSandboxPlan(options(ws, { ro: ['/dev/x'] }), facts()), LaunchError, '--ro /dev/x');
  assertLaunchError(() => buildSandboxPlan(options(ws, { rw: ['/dev/x'] }), facts()), LaunchError, '--rw /dev/x');
  assertLaunchError(() => buildSandboxPlan(options('/dev/x'), facts()), LaunchError, '--workspace /dev/x');
  assertLaunchError(() => buildSandboxPlan(options('/sys/x-missing'), facts()), LaunchError, '--workspace');
});

test('a path given twice is refused', (t) => {
  const ws = tempDir(t);
  const other = tempDir(t);
  const cases = [
    { ro: [other, other] },
    { rw: [other, other] },
    { ro: [other], rw: [other] },
    { ro: [ws] },
    { rw: [ws] },
    { ro: [join(ws, '.')] },
  ];
  for (const c of cases) {
    assertLaunchError(() => buildSandboxPlan(options(ws, c), facts()), LaunchError, 'already mounted by', 'give each path once');
  }
});

test('an explicit bind of /tmp or HOME replaces the private directory there, which then takes nothing from the budget', (t) => {
  const ws = tempDir(t);
  const home = tempDir(t);
  const plan = buildSandboxPlan(options(ws, { rw: [home], ro: ['/tmp'] }), facts({ identity: identity({ home }) }));
  assert.ok(!plan.mounts.some(budgetDirAt('/tmp')));
  assert.ok(!plan.mounts.some(budgetDirAt(home)));
  assert.equal(plan.mounts.find(bindAt('/tmp')).readonly, true);
  assert.equal(plan.mounts.find(bindAt(home)).readonly, false);
  assert.deepEqual(budgetOf(plan).map((b) => b.shared), [['/dev/shm']], '/dev/shm alone uses the budget');
  assert.deepEqual(plan.mounts.filter((e) => e.kind === 'budget-dir').map((e) => e.path), ['/dev/shm']);
});

test('one memory budget: a single tmp-budget entry of --tmp-size, shared by /dev/shm, /tmp and HOME; no tmpfs of their own', (t) => {
  const ws = tempDir(t);
  for (const [limits, size] of [[{}, '50%'], [{ tmpSize: '8m' }, '8m']]) {
    const plan = buildSandboxPlan(options(ws, { limits }), facts());
    const m = plan.mounts;
    const budgets = budgetOf(plan);
    assert.equal(budgets.length, 1, 'exactly one budget');
    assert.equal(budgets[0].size, size, 'the size as given, 50% by default');
    assert.deepEqual(budgets[0].shared, ['/dev/shm', '/tmp', '/home/alice']);
    assert.match(budgets[0].why, /--tmp-size/);
    const dirs = m.filter((e) => e.kind === 'budget-dir');
    assert.deepEqual(dirs.map((e) => [e.path, e.mode]), [['/dev/shm', 0o1777], ['/tmp', 0o1777], ['/home/alice', 0o700]]);
    assert.ok(m.indexOf(budgets[0]) < m.indexOf(dirs[0]), 'the budget comes before its directories');
    for (const p of ['/dev/shm', '/tmp', '/home/alice']) {
      assert.ok(!m.some(tmpfsAt(p)), `${p} has no tmpfs (and no size) of its own`);
    }
    assert.ok(!m.some((e) => e.kind === 'tmpfs' && !/size=/.test(e.options)), 'every tmpfs left has a size');
    // Landlock mirrors the directories: /dev/shm without exec, /tmp and HOME with it.
    const cls = (path) => plan.landlock.paths.filter((p) => p.path === path).map((p) => p.class);
    assert.deepEqual([cls('/dev/shm'), cls('/tmp'), cls('/home/alice')], [['rw-noexec'], ['rw'], ['rw']]);
    assert.deepEqual(JSON.parse(JSON.stringify(plan)).mounts.find((e) => e.kind === 'tmp-budget'), budgets[0], '--dry-run prints it as is');
  }
});

test('the native plan: the budget is mounted outside the box root; each directory gets its own place in it', (t) => {
  const ws = tempDir(t);
  const plan = buildSandboxPlan(options(ws, { limits: { tmpSize: '8m' } }), facts());
  const ops = toNativePlan(plan, 40).ops;
  assert.equal(ops.length, plan.mounts.length, 'one operation per entry: a failure index names the entry');
  const budget = ops.filter((o) => o.kind === OP.TMP_BUDGET);
  assert.equal(budget.length, 1);
  assert.ok(!budget[0].dst.startsWith('/newroot'), `the budget's root is never in the box: ${budget[0].dst}`);
  assert.equal(budget[0].data, 'mode=0700,size=8m');
  const dirs = ops.filter((o) => o.kind === OP.BUDGET_DIR);
  assert.deepEqual(dirs.map((o) => o.dst), ['/newroot/dev/shm', '/newroot/tmp', '/newroot/home/alice']);
  assert.deepEqual(dirs.map((o) => o.mode), [0o1777, 0o1777, 0o700]);
  for (const o of dirs) {
    assert.equal(dirname(o.src), budget[0].dst, `${o.dst} comes from a directory of the budget`);
    assert.deepEqual([o.readonly, o.recursive], [false, false]);
  }
  assert.equal(new Set(dirs.map((o) => o.src)).size, dirs.length, 'a directory each');
});

test('Landlock unavailable: refused unless --allow-degraded, which records it', (t) => {
  const ws = tempDir(t);
  const e = assertLaunchError(() => buildSandboxPlan(options(ws), facts({ landlockAbi: -38 })), LaunchError, 'Landlock', '--allow-degraded');
  assert.equal(e.exitCode, 125);
  const plan = buildSandboxPlan(options(ws, { allowDegraded: true }), facts({ landlockAbi: -38 }));
  assert.deepEqual(plan.degraded, ['landlock-unavailable']);
  assert.equal(plan.landlock.abi, 0);
  assert.equal(plan.landlock.status, 'degraded-unavailable');
  assert.deepEqual(plan.landlock.paths, []);
  assert.equal(plan.landlock.handledFs, 0);
  // --allow-degraded with a working Landlock degrades nothing.
  assert.deepEqual(buildSandboxPlan(options(ws, { allowDegraded: true }), facts()).degraded, []);
});

test('--strict-net needs Landlock ABI 4', (t) => {
  const ws = tempDir(t);
  assertLaunchError(() => buildSandboxPlan(options(ws, { strictNet: true }), facts({ landlockAbi: 3 })), LaunchError, '--strict-net', 'ABI 3');
  assertLaunchError(() => buildSandboxPlan(options(ws, { strictNet: true, allowDegraded: true }), facts({ landlockAbi: -38 })), LaunchError, '--strict-net', 'no Landlock');
  const plan = buildSandboxPlan(options(ws, { strictNet: true, listenPorts: [7000] }), facts({ landlockAbi: 4 }));
  assert.equal(plan.landlock.handledNet, 3);
  assert.deepEqual(plan.landlock.ports, [{ port: 7000, access: 2 }]);
  assert.equal(plan.network.strictNet, true);
  assert.deepEqual(plan.network.listenPorts, [7000]);
});

test("the box's resolver: resolv.conf names it, the addon makes its sockets (TCP after the exits', UDP), --strict-net lets TCP reach it", (t) => {
  const ws = tempDir(t);
  const without = buildSandboxPlan(options(ws, { listenPorts: [3128, 3129] }), facts());
  assert.equal(without.network.dns, null);
  assert.ok(!without.mounts.some((m) => m.path === '/etc/resolv.conf'), 'no resolver, no resolv.conf');
  assert.deepEqual([toNativePlan(without, 40).ports, toNativePlan(without, 40).udpPorts], [[3128, 3129], []]);

  const plan = buildSandboxPlan(options(ws, { listenPorts: [3128, 3129], dns: true, strictNet: true }), facts({ landlockAbi: 4 }));
  assert.deepEqual(plan.network.dns, { nameserver: '127.0.0.1', port: 53 });
  const conf = plan.mounts.find((m) => m.path === '/etc/resolv.conf');
  assert.equal(conf.kind, 'write');
  assert.match(conf.content, /^nameserver 127\.0\.0\.1$/m);
  assert.match(conf.content, /^# latchgate: this box resolves no names itself/m, 'an agent reading it learns why');
  const native = toNativePlan(plan, 40);
  assert.deepEqual([native.ports, native.udpPorts], [[3128, 3129, 53], [53]]);
  assert.deepEqual(plan.landlock.ports.map((p) => p.port), [3128, 3129, 53]);
});

test('limits: clamped to the hard limits; invalid ones refused', (t) => {
  const ws = tempDir(t);
  const rl = (plan) => Object.fromEntries(plan.rlimits.map((r) => [r.name, [r.soft, r.hard]]));
  assert.deepEqual(rl(buildSandboxPlan(options(ws, { limits: { nofile: 4_000_000, nproc: 200_000 } }), facts())), { core: [0, 0], nofile: [1048576, 1048576], nproc: [100000, 100000] });
  assert.deepEqual(rl(buildSandboxPlan(options(ws, { limits: { nofile: 1024, nproc: 64 } }), facts())).nofile, [1024, 1024]);
  assert.deepEqual(rl(buildSandboxPlan(options(ws), facts({ hardLimits: { nofile: 1024, nproc: 50 } }))), { core: [0, 0], nofile: [1024, 1024], nproc: [50, 50] });
  assert.deepEqual(rl(buildSandboxPlan(options(ws), facts({ hardLimits: { nofile: Infinity, nproc: Infinity } }))).nproc, [DEFAULT_NPROC, DEFAULT_NPROC]);
  for (const bad of [0, -1, 1.5, NaN]) {
    assertLaunchError(() => buildSandboxPlan(options(ws, { limits: { nofile: bad } }), facts()), LaunchError, 'nofile');
    assertLaunchError(() => buildSandboxPlan(options(ws, { limits: { nproc: bad } }), facts()), LaunchError, 'nproc');
  }
  const sized = buildSandboxPlan(options(ws, { limits: { tmpSize: '2g' } }), facts());
  assert.equal(budgetOf(sized)[0].size, '2g');
  for (const [bad, why] of [
    ['2 g', 'expected a size'], ['lots', 'expected a size'], ['', 'expected a size'], ['1g,uid=0', 'expected a size'],
    ['50%,mode=4777', 'expected a size'], ['2G', 'expected a size'], ['0x10m', 'expected a size'], ['-1m', 'expected a size'],
    ['0', 'no limit'], ['0%', 'no limit'], ['000m', 'no limit'], ['010m', 'octal'], ['101%', 'at most 100%'],
    ['8388609g', 'at most 8388608g'], ['18446744073709551616', 'at most'], ['17179869184g', 'at most'],
  ]) {
    assertLaunchError(() => buildSandboxPlan(options(ws, { limits: { tmpSize: bad } }), facts()), LaunchError, '--tmp-size (tmp_size)', JSON.stringify(bad), why);
  }
});

test('property: a --tmp-size is accepted only when tmpfs reads it as a positive size of at most 8 PiB or 100%', () => {
  const seed = 0x7e57_b0d6;
  const r = prng(seed);
  const alphabet = ['0', '1', '5', '9', '00', '100', '8388608', '18446744073709551616', 'k', 'm', 'g', '%', 'G', 'K', 't', 'x', ' ', ',', '=', '-', '.'];
  const failures = [];
  for (let i = 0; i < 3000; i++) {
    const input = Array.from({ length: 1 + r.below(5) }, () => r.pick(alphabet)).join('');
    let accepted;
    try {
      accepted = checkTmpSize(input);
    } catch (e) {
      if (!(e instanceof LaunchError) || !e.message.startsWith('--tmp-size (tmp_size) ')) failures.push(`${JSON.stringify(input)}: ${e}`);
      continue;
    }
    // What the kernel will compute (Documentation/filesystems/tmpfs.rst): decimal digits, then a unit.
    const m = /^([1-9][0-9]*)([kmg%]?)$/.exec(accepted);
    const n = m && BigInt(m[1]);
    const ok = m && accepted === input && (m[2] === '%' ? n <= 100n : n * { '': 1n, k: 1024n, m: 1n << 20n, g: 1n << 30n }[m[2]] <= 1n << 53n);
    if (!ok) failures.push(`${JSON.stringify(input)} accepted`);
  }
  for (const good of ['1', '4096', '1k', '512m', '2g', '8388608g', '1%', '50%', '100%']) assert.equal(checkTmpSize(good), good);
  assert.deepEqual(failures.slice(0, 10), [], `seed ${seed}: ${failures.length} failures`);
});

test('a workspace under HOME gets the private HOME and then the workspace bind', (t) => {
  const base = tempDir(t);
  const home = join(base, 'home/alice');
  const ws = join(home, 'project');
  mkdirSync(ws, { recursive: true });
  const plan = buildSandboxPlan(options(ws), facts({ identity: identity({ home }) }));
  const m = plan.mounts;
  const homeAt = idx(m, budgetDirAt(home));
  const wsAt = idx(m, bindAt(ws));
  assert.ok(homeAt >= 0, 'private HOME');
  assert.ok(wsAt >= 0, 'workspace bind');
  assert.ok(homeAt < wsAt, 'parent first');
  assert.ok(idx(m, (e) => e.kind === 'mkdir' && e.path === ws) > homeAt, 'the workspace mountpoint is made inside the private HOME');
  assert.equal(plan.env.HOME, home);
});

test('the workspace as HOME: the bind replaces the private HOME', (t) => {
  const ws = tempDir(t);
  const plan = buildSandboxPlan(options(ws), facts({ identity: identity({ home: ws }) }));
  assert.ok(!plan.mounts.some(budgetDirAt(ws)));
  assert.deepEqual(budgetOf(plan)[0].shared, ['/dev/shm', '/tmp']);
  assert.equal(plan.mounts.filter(bindAt(ws)).length, 1);
});

test('root launching: the agent user must be able to open the workspace', (t) => {
  const ws = tempDir(t);
  const sudo = identity({ hostUid: 0, env: { SUDO_UID: '4001' } });
  assert.equal(sudo.uid, 4001);
  chmodSync(ws, 0o700);
  assertLaunchError(() => buildSandboxPlan(options(ws), facts({ identity: sudo })), LaunchError, '--workspace', 'uid 4001', 'sudo');
  chmodSync(ws, 0o755);
  const plan = buildSandboxPlan(options(ws), facts({ identity: sudo }));
  assert.equal(plan.identity.uid, 4001);
  assert.equal(plan.identity.dropGroups, true);
});

test('the terminal, the profile and the allowlist are recorded', (t) => {
  const ws = tempDir(t);
  const plan = buildSandboxPlan(options(ws, { profile: 'claude-code', allowHosts: ['api.example.com'] }), facts({ terminal: { rows: 40, cols: 120 } }));
  assert.deepEqual(plan.terminal, { mode: 'pty', rows: 40, cols: 120 });
  assert.equal(plan.profile, 'claude-code');
  assert.deepEqual(plan.network.allowHosts, ['api.example.com']);
});

test('JSON.stringify(plan) round-trips', (t) => {
  const ws = tempDir(t);
  mkdirSync(join(ws, '.git/hooks'), { recursive: true });
  writeFileSync(join(ws, '.git/HEAD'), 'ref: refs/heads/main\n');
  symlinkSync('/etc/passwd', join(ws, '.bashrc'));
  for (const plan of [
    buildSandboxPlan(options(ws, { command: ['ls', '-la'], strictNet: true, listenPorts: [8080], passEnv: ['MY_TOKEN'] }), facts({ terminal: { rows: 24, cols: 80 } })),
    buildSandboxPlan(options(ws, { allowDegraded: true }), facts({ landlockAbi: -95 })),
  ]) {
    assert.deepEqual(JSON.parse(JSON.stringify(plan)), plan);
  }
});

test('state files: the private directory at /run/latchgate/state, a symlink at the path, the copy over also_at placeholders', (t) => {
  const base = tempDir(t);
  const home = join(base, 'home/alice');
  const ws = join(base, 'ws');
  mkdirSync(join(home, '.agent'), { recursive: true });
  mkdirSync(ws);
  const spec = { name: 'agent', path: join(home, '.agent.json'), format: 'json', alsoAt: [join(home, '.agent/alt.json')], boxKeys: ['n'], hostOnlyKeys: ['servers'] };
  const stateFiles = { dir: '/tmp/latchgate-state-x', files: [spec] };
  const plan = buildSandboxPlan(options(ws, { rw: [join(home, '.agent')], protect: [{ path: join(home, '.agent/alt.json'), type: 'file' }], stateFiles }), facts({ identity: identity({ home }) }));
  const m = plan.mounts;
  assert.deepEqual(plan.stateFiles, stateFiles);
  const dirAt = idx(m, (e) => e.kind === 'bind' && e.src === '/tmp/latchgate-state-x' && e.path === '/run/latchgate/state' && !e.readonly);
  const linkAt = idx(m, (e) => e.kind === 'symlink' && e.path === spec.path && e.target === '/run/latchgate/state/agent.json');
  const protectAt = idx(m, (e) => e.kind === 'bind' && e.path === join(home, '.agent/alt.json') && e.readonly);
  const copyAt = idx(m, (e) => e.kind === 'bind' && e.path === join(home, '.agent/alt.json') && e.src === '/tmp/latchgate-state-x/agent.json' && !e.readonly);
  assert.ok(dirAt >= 0 && linkAt >= 0 && protectAt >= 0 && copyAt > protectAt, JSON.stringify(m.slice(-6)));
  const homeAt = idx(m, (e) => (e.kind === 'budget-dir' || e.kind === 'tmpfs') && e.path === home);
  assert.ok(homeAt >= 0 && homeAt < linkAt, 'the symlink is made in the private HOME, after it is mounted');
  assert.ok(!m.some(bindAt(spec.path)), 'the host file is never mounted');
  assert.ok(plan.landlock.paths.some((p) => p.path === '/run/latchgate/state' && p.class === 'rw-noexec'));
  assert.equal(JSON.parse(JSON.stringify(plan)).stateFiles.files[0].path, spec.path);

  // HOME mounted from the host (the workspace is HOME): the copy is bound over the existing file, never a symlink made on the host.
  assertLaunchError(() => buildSandboxPlan(options(home, { stateFiles }), facts({ identity: identity({ home }) })), LaunchError, `state file ${spec.path}`, 'missing', "echo '{}'");
  writeFileSync(spec.path, '{}');
  const inHome = buildSandboxPlan(options(home, { stateFiles }), facts({ identity: identity({ home }) }));
  assert.ok(!inHome.mounts.some((e) => e.kind === 'symlink' && e.path === spec.path));
  assert.ok(inHome.mounts.some((e) => e.kind === 'bind' && e.path === spec.path && e.src === '/tmp/latchgate-state-x/agent.json' && !e.readonly));
  assert.ok(inHome.landlock.paths.some((p) => p.path === spec.path && p.class === 'rw-noexec'));
  // No state files: nothing at /run/latchgate/state.
  assert.equal(buildSandboxPlan(options(ws), facts({ identity: identity({ home }) })).stateFiles, null);
});

test('key files: the directory of each (its name and its real path) a mount shows is an empty read-only tmpfs; the SOPS file stays masked itself', (t) => {
  const ws = tempDir(t);
  const tree = tempDir(t);
  for (const d of ['keys', 'real', 'other']) mkdirSync(join(tree, d));
  writeFileSync(join(tree, 'real', 'age.txt'), 'AGE-SECRET-KEY-1X\n', { mode: 0o600 });
  symlinkSync(join(tree, 'real', 'age.txt'), join(tree, 'keys', 'age.txt'));
  writeFileSync(join(tree, 'keys', 'secrets.enc.yaml'), 'x: ENC[]\n');
  writeFileSync(join(tree, 'other', 'secrets.enc.yaml'), 'x: ENC[]\n');
  const outside = tempDir(t);
  writeFileSync(join(outside, 'k'), 'sk\n', { mode: 0o600 });
  const keyFiles = [{ path: join(tree, 'keys', 'age.txt'), what: 'the age key' }, { path: join(outside, 'k'), what: 'a file: key' }, { path: join(tree, 'none', 'k'), what: 'absent' }];
  const hide = [join(tree, 'keys', 'secrets.enc.yaml'), join(tree, 'other', 'secrets.enc.yaml')];
  const m = buildSandboxPlan(options(ws, { ro: [tree], keyFiles, hide }), facts()).mounts;
  const covers = m.filter((e) => e.kind === 'tmpfs' && e.options.split(',').includes('ro')).map((e) => e.path);
  assert.deepEqual(covers.sort(), [join(tree, 'keys'), join(tree, 'real')].sort(), 'the link\'s directory and the real file\'s; not a directory no mount shows');
  assert.ok(idx(m, tmpfsAt(join(tree, 'keys'))) > idx(m, bindAt(tree)), 'over the tree');
  const masks = m.filter((e) => e.kind === 'mask').map((e) => e.path);
  assert.deepEqual(masks, [join(tree, 'other', 'secrets.enc.yaml')], 'a file under a covered directory needs no mask (its mountpoint is gone); one elsewhere keeps its own');
  const native = toNativePlan({ ...buildSandboxPlan(options(ws, { ro: [tree], keyFiles }), facts()), mounts: m }, 40).ops.find((o) => o.dst === `/newroot${join(tree, 'keys')}`);
  assert.deepEqual({ kind: native.kind, data: native.data }, { kind: OP.TMPFS, data: 'ro,mode=0555,size=4k' });
  // Without key files nothing is covered: the legitimate tree is whole.
  assert.ok(!buildSandboxPlan(options(ws, { ro: [tree] }), facts()).mounts.some((e) => e.kind === 'tmpfs' && e.path.startsWith(tree)));
});

test('key files: a directory that is, or holds, the workspace or a mount root is refused with the fix; so is a key file with hard links', (t) => {
  const tree = tempDir(t);
  const ws = join(tree, 'ws');
  for (const d of [ws, join(tree, 'cfg', 'sub')]) mkdirSync(d, { recursive: true });
  for (const [file, over, root] of [
    [join(ws, 'k'), {}, `which is the box's --workspace ${ws}`],
    [join(tree, 'k'), { ro: [tree] }, `which is the box's --ro ${tree}`],
    [join(tree, 'cfg', 'k'), { rw: [join(tree, 'cfg', 'sub')], ro: [tree] }, `which holds the box's --rw ${join(tree, 'cfg', 'sub')}`],
    [join(tree, 'cfg', 'k'), { workspace: join(tree, 'cfg', 'sub'), ro: [tree] }, `which holds the box's --workspace ${join(tree, 'cfg', 'sub')}`],
  ]) {
    writeFileSync(file, 'sk\n', { mode: 0o600 });
    assertLaunchError(() => buildSandboxPlan(options(ws, { ...over, keyFiles: [{ path: file, what: 'a file: key' }] }), facts()), LaunchError, `${file} (a file: key) is in ${dirname(file)}`, root, 'move the key file into a directory of its own');
  }
  const other = tempDir(t);
  writeFileSync(join(other, 'k'), 'sk\n', { mode: 0o600 });
  linkSync(join(other, 'k'), join(other, 'k2'));
  assertLaunchError(() => buildSandboxPlan(options(ws, { keyFiles: [{ path: join(other, 'k'), what: 'a file: key' }] }), facts()), LaunchError, 'has 2 hard links', 'keep one name');
});

test("git: the generated global config is read-only under /run/latchgate, GIT_CONFIG_GLOBAL names it, the private HOME's ~/.gitconfig leads to it; never where HOME shows the host's", (t) => {
  const base = tempDir(t);
  const home = join(base, 'home/alice');
  const ws = join(home, 'project');
  mkdirSync(join(ws, '.git'), { recursive: true });
  writeFileSync(join(ws, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  mkdirSync(join(ws, '.git', 'objects'));
  mkdirSync(join(ws, '.git', 'refs'));
  const hostGit = { ok: true, from: 'test', notUtf8: [], entries: [{ key: 'user.name', value: 'Ada' }, { key: 'credential.helper', value: 'store' }] };
  const plan = buildSandboxPlan(options(ws, { hostGit }), facts({ identity: identity({ home }) }));
  const file = plan.mounts.find((e) => e.kind === 'write' && e.path === '/run/latchgate/gitconfig');
  assert.equal(file.mode, 0o444);
  assert.match(file.content, /\n\[user\]\n\tname = "Ada"\n$/);
  assert.ok(!file.content.includes('store'));
  assert.ok(plan.landlock.paths.some((p) => p.path === '/run/latchgate/gitconfig' && p.class === 'read'), 'Landlock: read only');
  assert.equal(plan.env.GIT_CONFIG_GLOBAL, '/run/latchgate/gitconfig');
  const link = idx(plan.mounts, (e) => e.kind === 'symlink' && e.path === join(home, '.gitconfig'));
  assert.ok(link > idx(plan.mounts, budgetDirAt(home)), '~/.gitconfig made inside the private HOME');
  assert.equal(plan.mounts[link].target, '/run/latchgate/gitconfig');
  assert.deepEqual({ ...plan.git, note: undefined }, { globalConfig: '/run/latchgate/gitconfig', homeLink: join(home, '.gitconfig'), readFrom: 'test', problem: null, carried: ['user.name'], leftOut: ['credential.helper'], hostSigns: false, note: undefined });
  assert.match(plan.git.note, /^git in the box: user\.name from your git config; git config cannot write there/, 'a repository in the workspace: the note says why config writes fail');
  assert.match(plan.mounts.find((e) => e.kind === 'write' && e.path === '/etc/hosts').content, /^127\.0\.0\.1\tlatchgate$/m, "the box's own name resolves from /etc/hosts");

  // No host read (no git on the host): an empty config all the same, so the host's is never read in the box.
  const none = buildSandboxPlan(options(ws), facts({ identity: identity({ home }) }));
  assert.equal(none.env.GIT_CONFIG_GLOBAL, '/run/latchgate/gitconfig');
  assert.deepEqual(none.git.carried, []);
  assert.equal(none.git.note, null);

  // HOME shown from the host (an explicit --rw of it): no link is made there, the variable still names the generated file.
  const bound = buildSandboxPlan(options(ws, { rw: [home], hostGit }), facts({ identity: identity({ home }) }));
  assert.ok(!bound.mounts.some((e) => e.kind === 'symlink' && e.path.endsWith('/.gitconfig')));
  assert.equal(bound.git.homeLink, null);
  assert.equal(bound.env.GIT_CONFIG_GLOBAL, '/run/latchgate/gitconfig');
});
