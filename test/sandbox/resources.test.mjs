// Resource and socket escapes: a memory
// fill through /tmp, HOME and /dev/shm stops at the one --tmp-size budget
// they share; host Unix sockets, by path or abstract name, are out of reach
// while the box's own sockets work.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, runNode, sh, testUser, distDir } from '../helpers/sandbox.mjs';

after(cleanupWorkspaces);

const hostSock = path.join(os.tmpdir(), `latchgate-host-${process.pid}.sock`);
const abstractName = `latchgate-host-abstract-${process.pid}`;
let connections = 0;
const servers = [];
before(async () => {
  for (const addr of [hostSock, `\0${abstractName}`]) {
    const s = net.createServer((c) => {
      connections++;
      c.end('host secret\n');
    });
    await new Promise((r) => s.listen(addr, r));
    servers.push(s);
  }
});
after(() => {
  for (const s of servers) s.close();
  rmSync(hostSock, { force: true });
});

const SOCKETS = `
import socket, os
def attempt(label, addr):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(addr); print(label, "OK", s.recv(100))
    except OSError as e:
        print(label, "ERR", e.errno)
attempt("path", ${JSON.stringify(hostSock)})
attempt("abstract", "\\0${abstractName}")
for p in ["/run/user", "/var/run/docker.sock", "/run/docker.sock", "/run/dbus/system_bus_socket", "/tmp/.X11-unix"]:
    print("exists", p, os.path.exists(p))
# The box's own Unix sockets work, by path and abstract name.
for addr in ["own.sock", "\\0own-abstract"]:
    srv = socket.socket(socket.AF_UNIX); srv.bind(addr); srv.listen()
    c = socket.socket(socket.AF_UNIX); c.connect(addr); a, _ = srv.accept(); a.sendall(b"hi"); print("own", c.recv(2).decode())
`;

const MiB = 1024 * 1024;
const BUDGET = 8 * MiB;
// fill LABEL FILE MIB: writes MIB MiB of zeros and says how it went; HOME is echoed for the checks.
const FILL = `
echo "HOME=$HOME"
fill() {
  err=$(dd if=/dev/zero of="$2" bs=64k count=$(($3 * 16)) 2>&1 >/dev/null); rc=$?
  echo "fill $1 rc=$rc enospc=$(printf '%s' "$err" | grep -c 'No space left on device') bytes=$(stat -c %s "$2")"
}`;
const fills = (stdout) => Object.fromEntries([...stdout.matchAll(/^fill (\S+) rc=(\d+) enospc=(\d+) bytes=(\d+)$/gm)]
  .map(([, label, rc, enospc, bytes]) => [label, { rc: Number(rc), enospc: enospc === '1', bytes: Number(bytes) }]));

// Runs a box from a plan whose budget was altered after the checks (as a bug
// could): the size only the kernel refuses, or a budget with no size at all.
const tamperedBudget = (dist, ws) => `
const { buildSandboxPlan, readHardLimits, readCapLast } = await import(${JSON.stringify(`${dist}/sandbox/plan.js`)});
const { runSandbox } = await import(${JSON.stringify(`${dist}/sandbox/supervisor.js`)});
const { toNativePlan } = await import(${JSON.stringify(`${dist}/sandbox/native-plan.js`)});
const { hostFacts, resolveIdentity } = await import(${JSON.stringify(`${dist}/sandbox/identity.js`)});
const { loadAddon, OP } = await import(${JSON.stringify(`${dist}/native/addon.js`)});
const plan = () => buildSandboxPlan(
  { workspace: ${JSON.stringify(ws)}, ro: [], rw: [], passEnv: [], allowHosts: [], command: ['/bin/true'], strictNet: false, allowDegraded: false, limits: { tmpSize: '8m' }, listenPorts: [] },
  { identity: resolveIdentity(hostFacts(${JSON.stringify(ws)})), env: {}, landlockAbi: loadAddon().landlockAbi(), hardLimits: readHardLimits(), terminal: null, homes: [] });
console.log('legit', (await runSandbox(plan())).exitCode);
const refused = plan();
refused.mounts.find((e) => e.kind === 'tmp-budget').size = '8q';
const r = await runSandbox(refused);
console.log('refused', r.exitCode, r.error?.message);
const native = toNativePlan(plan(), readCapLast());
native.ops.find((o) => o.kind === OP.TMP_BUDGET).data = 'mode=0700';
try { loadAddon().spawn(native, () => {}, () => {}); console.log('unsized spawned'); } catch (e) { console.log('unsized', e.message); }
`;

for (const mode of MODES) {
  test(`[${mode}] host Unix sockets are unreachable; the box's own work`, { skip: skipReason(mode) }, async () => {
    const ws = makeWorkspace('unix');
    const before = connections;
    const r = await runBox(mode, { cmd: ['/usr/bin/python3', '-c', SOCKETS], workspace: ws });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^path ERR 2$/m, 'ENOENT: the host socket path does not exist in the box');
    assert.match(r.stdout, /^abstract ERR 111$/m, 'ECONNREFUSED: abstract names are per network namespace');
    for (const line of r.stdout.split('\n').filter((l) => l.startsWith('exists'))) assert.match(line, / False$/);
    assert.equal(r.stdout.match(/^own hi$/gm)?.length, 2, r.stdout);
    assert.equal(connections, before, 'the host servers never saw a connection');
  });

  test(`[${mode}] one --tmp-size budget for /tmp, HOME and /dev/shm: a fill of /dev/shm alone, or of all three in turn, stops at 8 MiB in total`, { skip: skipReason(mode) }, async () => {
    const ws = makeWorkspace('fill');
    const r = await sh(mode, `${FILL}
fill shm-alone /dev/shm/big 16
rm -f /dev/shm/big
fill tmp /tmp/fill 6
fill home "$HOME/fill" 6
fill shm /dev/shm/fill 6
`, { workspace: ws, args: ['--tmp-size', '8m'] });
    assert.equal(r.code, 0, r.stderr);
    const f = fills(r.stdout);
    // /dev/shm had no size of its own: 16 MiB went in.
    assert.ok(f['shm-alone'].enospc && f['shm-alone'].bytes <= BUDGET, `/dev/shm alone stops at the budget: ${JSON.stringify(f['shm-alone'])}`);
    assert.ok(f['shm-alone'].bytes >= BUDGET - MiB, `/dev/shm may use the whole budget: ${JSON.stringify(f['shm-alone'])}`);
    // /tmp and HOME each had a tmpfs of the full size: 6 + 6 + 6 MiB went in.
    assert.deepEqual(f.tmp, { rc: 0, enospc: false, bytes: 6 * MiB }, 'the first 6 MiB fit');
    assert.ok(f.home.enospc && f.home.bytes < 6 * MiB, `HOME gets only what /tmp left: ${JSON.stringify(f.home)}`);
    assert.ok(f.shm.enospc, `/dev/shm gets nothing more: ${JSON.stringify(f.shm)}`);
    const total = f.tmp.bytes + f.home.bytes + f.shm.bytes;
    assert.ok(total <= BUDGET, `together ${total} bytes, more than the 8 MiB budget`);
    assert.ok(total >= BUDGET - MiB, `together ${total} bytes: the budget is usable to its end`);
  });

  test(`[${mode}] within the budget: writes work in /tmp, HOME and /dev/shm; HOME is the agent's and private; /tmp allows exec, /dev/shm does not`, { skip: skipReason(mode) }, async () => {
    const ws = makeWorkspace('budget');
    const r = await sh(mode, `${FILL}
fill tmp /tmp/data 2
fill home "$HOME/data" 2
fill shm /dev/shm/data 2
stat -c 'stat %n %a %u' /tmp "$HOME" /dev/shm "$HOME/data"
cp /bin/true /tmp/true && /tmp/true; echo "exec /tmp rc=$?"
cp /bin/true /dev/shm/true && /dev/shm/true 2>/dev/null; echo "exec /dev/shm rc=$?"
`, { workspace: ws, args: ['--tmp-size', '8m'] });
    assert.equal(r.code, 0, r.stderr);
    const f = fills(r.stdout);
    for (const k of ['tmp', 'home', 'shm']) assert.deepEqual(f[k], { rc: 0, enospc: false, bytes: 2 * MiB }, k);
    const home = r.stdout.match(/^HOME=(.*)$/m)?.[1];
    const uid = testUser().uid;
    const stat = Object.fromEntries([...r.stdout.matchAll(/^stat (\S+) (\d+) (\d+)$/gm)].map(([, p, mode, owner]) => [p, { mode, owner: Number(owner) }]));
    assert.deepEqual({ ...stat, [`${home}/data`]: { owner: stat[`${home}/data`]?.owner } }, {
      '/tmp': { mode: '1777', owner: uid },
      '/dev/shm': { mode: '1777', owner: uid },
      [home]: { mode: '700', owner: uid },
      [`${home}/data`]: { owner: uid },
    }, r.stdout);
    assert.match(r.stdout, /^exec \/tmp rc=0$/m);
    assert.match(r.stdout, /^exec \/dev\/shm rc=126$/m, 'exec from /dev/shm is refused (Landlock rw-noexec)');
  });

  test(`[${mode}] a budget the kernel refuses fails the launch naming the step, the entry and the errno; one without a size never reaches the kernel`, { skip: skipReason(mode) }, async () => {
    const ws = makeWorkspace('budget-err');
    const r = await runNode(mode, ['--input-type=module', '-e', tamperedBudget(distDir(mode), ws)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^legit 0$/m, 'the same plan untouched runs');
    assert.match(r.stdout, /^refused 125 latchgate: building the box failed at mount operation \(tmp-budget size=8q\): EINVAL; /m);
    assert.match(r.stdout, /^unsized launch plan: tmp budget without a size$/m);
  });
}
