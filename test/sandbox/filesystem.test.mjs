// The box's filesystem, attacked for real from inside, in both launcher modes.
//
// Every escape attempt asserts a failure with its specific errno (through the
// escape probe, which makes one real syscall per call), and next to it a
// legitimate operation that must work, so a broken box cannot pass. Checks are
// batched into one box run per topic: a shell script prints labelled probe
// results (`@@label RESULT ...`) and labelled sections (`==name`), parsed here.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { MODES, skipReason, runBox, sh, makeWorkspace, own, testUser, cleanupWorkspaces, distDir } from '../helpers/sandbox.mjs';
import { buildEscapeProbe } from '../helpers/escape-probe.mjs';

const isRoot = process.getuid() === 0;
const PROBE = await buildEscapeProbe();
const PROBE_DIR = path.dirname(PROBE);
const HAS_GIT = fs.existsSync('/usr/bin/git');
const GIT_ID = ['-c', 'user.name=latchgate-test', '-c', 'user.email=test@example.invalid'];

/** What the box's /etc may hold from the host (the launcher's allowlist), when the host has it. */
const ETC_ALLOWLIST = [
  'ssl', 'ca-certificates', 'ca-certificates.conf', 'pki', 'crypto-policies', 'ld.so.cache', 'ld.so.conf',
  'ld.so.conf.d', 'nsswitch.conf', 'alternatives', 'localtime', 'timezone', 'mime.types', 'inputrc', 'terminfo',
];
const ETC_GENERATED = ['passwd', 'group', 'hosts', 'hostname', 'resolv.conf'];
const DEV_ENTRIES = ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'ptmx', 'shm', 'fd', 'stdin', 'stdout', 'stderr'];
const SYSTEM_LINKS = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'];

// ---------------------------------------------------------------------------
// host-side helpers

const cleanups = [];
after(() => {
  for (const f of cleanups.splice(0).reverse()) {
    try {
      f();
    } catch {
      // best effort
    }
  }
  cleanupWorkspaces();
});

const rand = () => randomBytes(4).toString('hex');
const exists = (p) => {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

/** Runs a command on the host as the test user (the workspace owner). */
function asUser(cmd, args, cwd) {
  const u = testUser();
  const opts = {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: cwd, GIT_CONFIG_NOSYSTEM: '1', LANG: 'C.UTF-8' },
  };
  if (isRoot) Object.assign(opts, { uid: u.uid, gid: u.gid });
  return execFileSync(cmd, args, opts);
}

/** Writes files (path relative to dir -> content) and gives them to the test user. */
function writeTree(dir, files) {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
  own(dir);
}

/** Content of every regular file below dir (relative path -> content), symlinks as '-> target'. */
function snapshot(dir) {
  const out = {};
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(dir, p);
      if (e.isSymbolicLink()) out[rel] = `-> ${fs.readlinkSync(p)}`;
      else if (e.isDirectory()) {
        out[`${rel}/`] = 'dir';
        walk(p);
      } else out[rel] = fs.readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

/** Gives a symlink itself (not its target) to the test user. */
function ownLink(p) {
  const u = testUser();
  if (isRoot) fs.lchownSync(p, u.uid, u.gid);
}

/** A directory created (with parents) and owned by the test user. */
function userDir(p) {
  fs.mkdirSync(p, { recursive: true });
  own(p);
  return p;
}

/** A git repository owned by the test user, with one commit; built by hand when git is missing. */
function gitRepo(dir) {
  if (HAS_GIT) {
    asUser('git', ['-c', 'init.defaultBranch=main', 'init', '-q', dir], dir);
    fs.writeFileSync(path.join(dir, 'README.md'), 'readme\n');
    own(dir);
    asUser('git', ['add', 'README.md'], dir);
    asUser('git', [...GIT_ID, 'commit', '-qm', 'initial'], dir);
  } else {
    writeTree(dir, {
      '.git/HEAD': 'ref: refs/heads/main\n',
      '.git/config': '[core]\n\trepositoryformatversion = 0\n',
      '.git/hooks/pre-commit.sample': '#!/bin/sh\n',
      '.git/objects/info/.keep': '',
      '.git/refs/heads/.keep': '',
      'README.md': 'readme\n',
    });
  }
  return dir;
}

// ---------------------------------------------------------------------------
// box-side helpers

const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** Shell prelude: p LABEL ATTACK ARGS... runs the probe once and prints `@@LABEL <result>`; sec NAME starts a section. */
const PRELUDE = `
P=${q(PROBE)}
p() { l=$1; shift; o=$("$P" "$@" 2>&1 | tr '\\n' ' '); printf '@@%s %s\\n' "$l" "$o"; }
sec() { printf '==%s\\n' "$1"; }
`;

/** label -> 'OK' | errno name | 'out:<text>' when the line is no probe result (exit codes, exec output). */
function probeResults(stdout) {
  const out = {};
  for (const line of stdout.split('\n')) {
    const m = /^@@(\S+) ?(.*)$/.exec(line);
    if (!m) continue;
    const r = /^RESULT \S+ (?:(OK)|ERR (\S+) \d+)/.exec(m[2]);
    out[m[1]] = r ? (r[1] ?? r[2]) : `out:${m[2].trim()}`;
  }
  return out;
}

/** section name -> its text (lines between `==name` and the next section or probe line). */
function sections(stdout) {
  const out = {};
  let cur;
  for (const line of stdout.split('\n')) {
    const m = /^==(\S+)$/.exec(line);
    if (m) {
      cur = m[1];
      out[cur] = [];
    } else if (line.startsWith('@@')) cur = undefined;
    else if (cur) out[cur].push(line);
  }
  for (const k of Object.keys(out)) out[k] = out[k].join('\n').trim();
  return out;
}
const lines = (s) => (s ? s.split('\n').filter(Boolean) : []);
const sorted = (a) => [...a].sort();

function parseMountinfo(text) {
  const unescape = (s) => s.replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  return lines(text).map((l) => {
    const [pre, post = ''] = l.split(' - ');
    const f = pre.split(' ');
    const g = post.split(' ');
    return { dev: f[2], root: unescape(f[3]), mountPoint: unescape(f[4]), opts: f[5].split(','), fstype: g[0] };
  });
}
/** The mount visible at a path: the last one stacked there. */
const mountAt = (mounts, p) => mounts.filter((m) => m.mountPoint === p).at(-1);

/**
 * Runs a script in the box (the probe's directory mounted read-only) and
 * requires a clean exit. Returns the parsed probe results and sections.
 */
async function box(mode, script, { workspace, args = [] } = {}) {
  const r = await sh(mode, PRELUDE + script, { workspace, args: ['--ro', PROBE_DIR, ...args] });
  assert.equal(r.code, 0, `box exited ${r.code} (signal ${r.signal})\nstderr: ${r.stderr}\nstdout: ${r.stdout}`);
  return { ...r, results: probeResults(r.stdout), sec: sections(r.stdout) };
}

/**
 * Compares the probe results of the given labels with what is expected, all
 * at once (one diff shows every mismatch). An expected value may be a list of
 * errnos where the kernel's order of checks decides which one comes first.
 */
function expectResults(results, expected, what) {
  const actual = {};
  const want = {};
  for (const [k, v] of Object.entries(expected)) {
    actual[k] = results[k] ?? 'missing';
    want[k] = Array.isArray(v) && v.includes(actual[k]) ? actual[k] : v;
  }
  assert.deepEqual(actual, want, what);
}

/** The agent's HOME inside the box (from the box's point of view). */
function expectedHome() {
  return isRoot ? `/home/${testUser().name}` : os.userInfo().homedir;
}

/** Home directories of other users on the host (all of /home but the agent's). */
function otherHomes() {
  let names = [];
  try {
    names = fs.readdirSync('/home');
  } catch {
    // no /home on this host
  }
  return names.map((n) => `/home/${n}`).filter((p) => p !== expectedHome());
}

/** First path component below dir of p ('/tmp/a/b' under '/tmp' -> 'a'), or undefined. */
function childUnder(dir, p) {
  const r = path.relative(dir, p);
  if (r === '' || r.startsWith('..') || path.isAbsolute(r)) return undefined;
  return r.split(path.sep)[0];
}

// Host markers that must stay invisible in the box (created once, both modes).
let hostMarkers;
function makeHostMarkers() {
  if (hostMarkers) return hostMarkers;
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'latchgate-hostsecret-'));
  fs.chmodSync(tmpDir, 0o755);
  const tmpFile = path.join(tmpDir, 'secret.txt');
  fs.writeFileSync(tmpFile, 'host tmp secret\n', { mode: 0o644 });
  cleanups.push(() => fs.rmSync(tmpDir, { recursive: true, force: true }));
  const m = { tmpDir, tmpFile };
  if (isRoot) {
    m.rootFile = `/root/latchgate-marker-${rand()}`;
    fs.writeFileSync(m.rootFile, 'root secret\n', { mode: 0o644 });
    cleanups.push(() => fs.rmSync(m.rootFile, { force: true }));
    m.otherHome = `/home/lgother-${rand()}`;
    fs.mkdirSync(m.otherHome, { mode: 0o755 });
    m.otherFile = path.join(m.otherHome, '.ssh-id');
    fs.writeFileSync(m.otherFile, 'another user secret\n', { mode: 0o644 });
    cleanups.push(() => fs.rmSync(m.otherHome, { recursive: true, force: true }));
  }
  hostMarkers = m;
  return m;
}

// A host mount with locked flags (nosuid,nodev,noexec) to bind into the box read-only.
let lockedMount;
function makeLockedMount() {
  if (lockedMount) return lockedMount;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latchgate-noexec-'));
  fs.chmodSync(dir, 0o755);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'nosuid,nodev,noexec,mode=0755,size=8m', 'tmpfs', dir]);
  cleanups.push(() => {
    execFileSync('umount', [dir]);
    fs.rmdirSync(dir);
  });
  fs.copyFileSync('/bin/true', path.join(dir, 'true'));
  fs.chmodSync(path.join(dir, 'true'), 0o755);
  lockedMount = dir;
  return dir;
}

// ---------------------------------------------------------------------------

for (const mode of MODES) {
  describe(`box filesystem, launcher as ${mode}`, { skip: skipReason(mode) }, () => {
    // ---- 1. root layout -------------------------------------------------
    let layoutRun;
    const layout = () => {
      if (!layoutRun) {
        const ws = makeWorkspace('layout');
        layoutRun = box(mode, `
sec procpids; ls /proc | grep -E '^[0-9]+$'
sec self; echo $$
sec root; ls -A /
sec etc; ls -A /etc
sec dev; ls -A /dev
sec run; ls -A /run
sec homeparent; ls -A "$(dirname "$HOME")"
sec home; echo "$HOME"
sec homelist; ls -A "$HOME"
sec passwd; cat /etc/passwd
sec group; cat /etc/group
sec hosts; cat /etc/hosts
sec hostname; cat /etc/hostname
sec resolv; cat /etc/resolv.conf
sec uname; uname -n
sec devnull; echo data > /dev/null && echo written
sec urandom; head -c 32 /dev/urandom | wc -c
sec pwd; pwd
sec end
for d in /root /var /sys /boot /srv /mnt /opt /media /run/user /var/run/docker.sock /run/docker.sock \\
         /run/dbus/system_bus_socket /run/podman/podman.sock /run/containerd/containerd.sock /tmp/.X11-unix \\
         /etc/shadow /etc/gshadow /etc/ssh /etc/sudoers ${otherHomes().map(q).join(' ')}; do
  p "absent:$d" read "$d"
done
p legit:read-passwd read /etc/passwd
p legit:read-usr read /usr/bin/env
${exists('/etc/ssl/certs') ? 'p legit:read-ca read /etc/ssl/certs' : ''}
p legit:read-urandom read /dev/urandom
p legit:write-null write /dev/null
p legit:read-zero read /dev/zero
`, { workspace: ws }).then((r) => ({ ...r, ws }));
      }
      return layoutRun;
    };

    test('/ holds only the box root entries: system trees as the host has them, usr, etc, proc, dev, tmp, run, home, the workspace top dir', async () => {
      const { sec, ws } = await layout();
      const want = new Set(['usr', 'etc', 'proc', 'dev', 'tmp', 'run']);
      for (const l of SYSTEM_LINKS) if (exists(`/${l}`)) want.add(l);
      want.add(expectedHome().split('/')[1]);
      want.add(ws.split('/')[1]);
      // latchgate itself, read-only at its host path, and the Node that runs it (outside the system trees).
      for (const p of [distDir(mode), fs.realpathSync(process.execPath)]) if (!/^\/(usr|bin|sbin|lib[^/]*)\//.test(p)) want.add(p.split('/')[1]);
      assert.deepEqual(sorted(lines(sec.root)), sorted(want), 'entries of / inside the box');
      for (const gone of ['root', 'var', 'sys', 'boot', 'srv', 'mnt', 'opt', 'media']) {
        assert.ok(!lines(sec.root).includes(gone), `/${gone} must not exist in the box`);
      }
      assert.equal(sec.pwd, ws, 'the command starts in the workspace, at its host path');
    });

    test('host trees, sockets and secrets are absent (ENOENT); the box system files are readable', async () => {
      const { results } = await layout();
      const expected = {};
      for (const k of Object.keys(results)) if (k.startsWith('absent:')) expected[k] = 'ENOENT';
      assert.ok(Object.keys(expected).length >= 19, 'all absence probes ran');
      Object.assign(expected, {
        'legit:read-passwd': 'OK',
        'legit:read-usr': 'OK',
        ...(exists('/etc/ssl/certs') ? { 'legit:read-ca': 'EISDIR' } : {}), // a directory: it opens, read(2) says EISDIR
        'legit:read-urandom': 'OK',
        'legit:write-null': 'OK',
        'legit:read-zero': 'OK',
      });
      expectResults(results, expected, 'absent host paths vs readable box files');
    });

    test('/etc holds only the allowlisted host entries plus generated passwd, group, hosts, hostname, resolv.conf', async () => {
      const { sec } = await layout();
      const want = ETC_ALLOWLIST.filter((e) => exists(`/etc/${e}`)).concat(ETC_GENERATED);
      assert.deepEqual(sorted(lines(sec.etc)), sorted(want), 'entries of /etc inside the box');
      for (const gone of ['shadow', 'gshadow', 'ssh', 'sudoers', 'sudoers.d', 'machine-id', 'environment']) {
        assert.ok(!lines(sec.etc).includes(gone), `/etc/${gone} must not exist in the box`);
      }
    });

    test('generated passwd and group hold only root, the agent and nobody; hosts is localhost only; hostname is latchgate; resolv.conf names only the box resolver', async () => {
      const { sec } = await layout();
      const u = testUser();
      const pw = lines(sec.passwd).map((l) => l.split(':'));
      assert.deepEqual(sorted(pw.map((f) => f[0])), sorted(['root', u.name, 'nobody']), `passwd names:\n${sec.passwd}`);
      const me = pw.find((f) => f[0] === u.name);
      assert.equal(Number(me[2]), u.uid, 'agent uid in passwd');
      assert.equal(Number(me[3]), u.gid, 'agent gid in passwd');
      assert.equal(me[5], expectedHome(), 'agent home in passwd');
      const gr = lines(sec.group).map((l) => l.split(':'));
      assert.deepEqual(sorted(gr.map((f) => Number(f[2]))), sorted([0, u.gid, 65534]), `group entries:\n${sec.group}`);
      const hosts = lines(sec.hosts).filter((l) => !l.startsWith('#'));
      assert.ok(hosts.length > 0);
      for (const l of hosts) {
        const [addr, ...names] = l.split(/\s+/);
        assert.ok(['127.0.0.1', '::1'].includes(addr), `hosts line not loopback: ${l}`);
        for (const n of names) assert.match(n, /^(localhost|ip6-localhost|ip6-loopback|latchgate)$/, `hosts name: ${l}`);
      }
      assert.ok(hosts.some((l) => /^127\.0\.0\.1\s+localhost\b/.test(l)), 'localhost resolves to 127.0.0.1');
      assert.equal(sec.hostname, 'latchgate');
      // Not the host's resolvers: only the box's own, which refuses every name (src/egress/box-dns.ts).
      const resolvers = lines(sec.resolv).filter((l) => !l.startsWith('#') && l.trim() !== '');
      assert.deepEqual(resolvers.filter((l) => l.startsWith('nameserver')), ['nameserver 127.0.0.1'], `resolv.conf:\n${sec.resolv}`);
      assert.equal(sec.uname, 'latchgate');
    });

    test('/dev is minimal: null zero full random urandom tty pts ptmx shm fd stdin stdout stderr; /dev/null writable, /dev/urandom readable', async () => {
      const { sec } = await layout();
      assert.deepEqual(sorted(lines(sec.dev)), sorted(DEV_ENTRIES), 'entries of /dev');
      assert.equal(sec.devnull, 'written');
      assert.equal(sec.urandom, '32');
    });

    test('/proc shows only box pids; /run holds only latchgate; HOME is the only home', async () => {
      const { sec } = await layout();
      const pids = lines(sec.procpids).map(Number);
      assert.ok(pids.includes(1), `pid 1 (the box init) is visible: ${pids}`);
      assert.ok(pids.length <= 8, `only a few box processes are visible, got ${pids.length}: ${pids}`);
      assert.ok(Math.max(...pids) < 64, `pids are low, box-local numbers: ${pids}`);
      assert.ok(Number(sec.self) < 64, `the shell's own pid is box-local: ${sec.self}`);
      assert.deepEqual(lines(sec.run), ['latchgate'], 'entries of /run');
      assert.equal(sec.home, expectedHome(), 'HOME inside');
      assert.deepEqual(lines(sec.homeparent), [path.basename(expectedHome())], `entries of ${path.dirname(expectedHome())}`);
      assert.deepEqual(lines(sec.homelist), ['.gitconfig'], 'HOME starts empty but for the link to the generated git config');
    });

    // ---- 2. writes outside the roots ------------------------------------
    test('writes outside the roots fail: create, overwrite, truncate, unlink, rename, link, mkfifo, mknod, chmod', async () => {
      const ws = makeWorkspace('writes');
      writeTree(ws, { 'existing.txt': 'orig\n' });
      const { results } = await box(mode, `
p etc-create write /etc/x
p etc-mkdir mkdir /etc/d
p etc-symlink symlink /etc/passwd /etc/link
p etc-overwrite-generated write /etc/hosts
p etc-truncate-generated truncate /etc/passwd
p etc-chmod-generated chmod /etc/passwd 666
p etc-unlink-generated unlink /etc/passwd
p etc-rename-within rename /etc/passwd /etc/passwd.bak
p etc-overwrite-host write /etc/nsswitch.conf
p root-create write /x
p root-mkdir mkdir /newdir
p usr-create write /usr/x
p usr-overwrite write /usr/bin/env
p usr-truncate truncate /usr/bin/env
p usr-unlink unlink /usr/bin/env
p usr-rename rename /usr/bin/env /usr/bin/env2
p usr-chmod chmod /usr/bin/env 777
p rename-into-etc rename existing.txt /etc/existing.txt
p rename-into-usr rename existing.txt /usr/existing.txt
p link-into-usr link existing.txt /usr/bin/planted
p link-into-etc link existing.txt /etc/planted
p fifo-etc mkfifo /etc/fifo
p fifo-usr mkfifo /usr/fifo
p mknod-usr mknod-char /usr/null2
p mknod-etc mknod-char /etc/null2
p mknod-workspace mknod-char ./null2
p mknod-tmp mknod-char /tmp/null2
p run-create write /run/x
p runlg-create write /run/latchgate/x
p home-parent-create write "$(dirname "$HOME")/x"
p ws-still-fine write ./fine.txt
`, { workspace: ws });
      expectResults(results, {
        'etc-create': 'EROFS',
        'etc-mkdir': 'EROFS',
        'etc-symlink': 'EROFS',
        // generated files belong to the agent: only the read-only root stops these
        'etc-overwrite-generated': 'EROFS',
        'etc-truncate-generated': 'EROFS',
        'etc-chmod-generated': 'EROFS',
        'etc-unlink-generated': 'EROFS',
        'etc-rename-within': 'EROFS',
        'etc-overwrite-host': 'EROFS',
        'root-create': 'EROFS',
        'root-mkdir': 'EROFS',
        'usr-create': 'EROFS',
        'usr-overwrite': 'EROFS',
        // /usr/bin/env belongs to the host's root: recent kernels check write permission
        // (EACCES) before the read-only mount (EROFS) in truncate(2), older ones after
        'usr-truncate': ['EACCES', 'EROFS'],
        'usr-unlink': 'EROFS',
        'usr-rename': 'EROFS',
        'usr-chmod': 'EROFS',
        'rename-into-etc': 'EXDEV',
        'rename-into-usr': 'EXDEV',
        'link-into-usr': 'EROFS',
        'link-into-etc': 'EROFS',
        'fifo-etc': 'EROFS',
        'fifo-usr': 'EROFS',
        'mknod-usr': 'EROFS',
        'mknod-etc': 'EROFS',
        // device nodes are refused even in writable trees (Landlock grants no MAKE_CHAR)
        'mknod-workspace': 'EACCES',
        'mknod-tmp': 'EACCES',
        'run-create': 'EROFS',
        'runlg-create': 'EROFS',
        'home-parent-create': 'EROFS',
        'ws-still-fine': 'OK',
      }, 'writes outside the writable roots');
      assert.equal(fs.readFileSync(path.join(ws, 'existing.txt'), 'utf8'), 'orig\n', 'the workspace file was not moved or changed');
    });

    test('legitimate writes work in the workspace, /tmp and HOME; workspace files are owned by the test user on the host', async () => {
      const ws = makeWorkspace('legit');
      writeTree(ws, { 'existing.txt': 'orig\n' });
      const ops = (tag, d) => `
D=${d}; mkdir -p "$D"
[ -e "$D/existing.txt" ] || echo orig > "$D/existing.txt"
p ${tag}-create write "$D/new.txt"
p ${tag}-overwrite write "$D/existing.txt"
p ${tag}-truncate truncate "$D/existing.txt"
p ${tag}-rename rename "$D/new.txt" "$D/renamed.txt"
p ${tag}-link link "$D/renamed.txt" "$D/hard.txt"
p ${tag}-symlink symlink renamed.txt "$D/sym"
p ${tag}-mkdir mkdir "$D/dir"
p ${tag}-mkfifo mkfifo "$D/fifo"
p ${tag}-unlink unlink "$D/hard.txt"
p ${tag}-chmod chmod "$D/renamed.txt" 600
echo inner > "$D/dir/inner.txt" && p ${tag}-read read "$D/dir/inner.txt"
`;
      const { results } = await box(mode, ops('ws', '"$PWD"') + ops('tmp', '/tmp/legit-$$') + ops('home', '"$HOME"'), { workspace: ws });
      const expected = {};
      for (const tag of ['ws', 'tmp', 'home']) {
        for (const op of ['create', 'overwrite', 'truncate', 'rename', 'link', 'symlink', 'mkdir', 'mkfifo', 'unlink', 'chmod', 'read']) {
          expected[`${tag}-${op}`] = 'OK';
        }
      }
      expectResults(results, expected, 'legitimate writes in the writable trees');
      const u = testUser();
      for (const rel of ['renamed.txt', 'dir', 'dir/inner.txt', 'fifo', 'existing.txt']) {
        const st = fs.lstatSync(path.join(ws, rel));
        assert.equal(st.uid, u.uid, `${rel} is owned by the test user on the host (uid)`);
        assert.equal(st.gid, u.gid, `${rel} is owned by the test user's group on the host (gid)`);
      }
      assert.ok(fs.lstatSync(path.join(ws, 'fifo')).isFIFO(), 'the fifo reached the host');
      assert.equal(fs.readlinkSync(path.join(ws, 'sym')), 'renamed.txt');
      assert.equal(fs.statSync(path.join(ws, 'existing.txt')).size, 0, 'overwrite then truncate reached the host');
      assert.equal(fs.lstatSync(path.join(ws, 'renamed.txt')).mode & 0o777, 0o600, 'chmod reached the host');
      assert.ok(!exists(path.join(ws, 'hard.txt')) && !exists(path.join(ws, 'new.txt')), 'unlink and rename reached the host');
    });

    // ---- 3. host paths invisible; HOME and /tmp private --------------------
    test('host paths outside the box are invisible: host /tmp, /root, another user home (ENOENT)', async () => {
      const m = makeHostMarkers();
      const ws = makeWorkspace('hidden');
      // the legitimate side: the test user can read the /tmp marker on the host
      assert.equal(asUser('cat', [m.tmpFile], ws), 'host tmp secret\n');
      const { results, sec } = await box(mode, `
p host-tmp-file read ${q(m.tmpFile)}
p host-tmp-dir read ${q(m.tmpDir)}
${m.rootFile ? `p host-root-file read ${q(m.rootFile)}` : ''}
${m.otherFile ? `p other-home-file read ${q(m.otherFile)}\np other-home-dir read ${q(m.otherHome)}` : ''}
p ws-readable read ./
sec tmp; ls -A /tmp
sec end
`, { workspace: ws });
      const expected = { 'host-tmp-file': 'ENOENT', 'host-tmp-dir': 'ENOENT', 'ws-readable': 'EISDIR' };
      if (m.rootFile) expected['host-root-file'] = 'ENOENT';
      if (m.otherFile) Object.assign(expected, { 'other-home-file': 'ENOENT', 'other-home-dir': 'ENOENT' });
      expectResults(results, expected, 'host markers seen from the box');
      const tmpWant = new Set([childUnder('/tmp', ws), childUnder('/tmp', PROBE_DIR)].filter(Boolean));
      assert.deepEqual(sorted(lines(sec.tmp)), sorted(tmpWant), 'the box /tmp holds only mountpoints of the box trees');
    });

    test('HOME and /tmp are private tmpfs: what the box writes there never reaches the host nor the next run; with /dev/shm they are directories of one tmpfs whose root is mounted nowhere', async () => {
      const ws = makeWorkspace('private');
      const tag = `lg-private-${rand()}`;
      const first = await box(mode, `
p home-write write "$HOME/${tag}"
p tmp-write write /tmp/${tag}
sec mounts; cat /proc/self/mountinfo
sec end
`, { workspace: ws });
      expectResults(first.results, { 'home-write': 'OK', 'tmp-write': 'OK' }, 'writes to HOME and /tmp inside');
      const mounts = parseMountinfo(first.sec.mounts);
      assert.equal(mountAt(mounts, expectedHome())?.fstype, 'tmpfs', 'HOME is a tmpfs');
      assert.equal(mountAt(mounts, '/tmp')?.fstype, 'tmpfs', '/tmp is a tmpfs');
      // One budget (--tmp-size): the three are one filesystem, each mount a directory of it.
      const shared = [expectedHome(), '/tmp', '/dev/shm'].map((p) => mountAt(mounts, p));
      assert.equal(new Set(shared.map((m) => m?.dev)).size, 1, `one tmpfs for HOME, /tmp and /dev/shm: ${JSON.stringify(shared)}`);
      assert.equal(new Set(shared.map((m) => m.root)).size, 3, 'each its own directory');
      const budgetMounts = mounts.filter((m) => m.dev === shared[0].dev);
      assert.ok(budgetMounts.every((m) => m.root !== '/'), `the budget's root (the other directories) is mounted nowhere in the box: ${JSON.stringify(budgetMounts)}`);
      assert.ok(!exists(path.join(expectedHome(), tag)), 'the HOME file is not on the host');
      assert.ok(!exists(path.join('/tmp', tag)), 'the /tmp file is not on the host');
      const second = await box(mode, `
p home-again read "$HOME/${tag}"
p tmp-again read /tmp/${tag}
`, { workspace: ws });
      expectResults(second.results, { 'home-again': 'ENOENT', 'tmp-again': 'ENOENT' }, 'nothing persists to the next run');
    });

    // ---- 4. mount flags ----------------------------------------------------
    test('mount flags: /usr ro+nosuid, workspace rw; --ro is a read-only view (EROFS), --rw a writable one', async () => {
      const ws = makeWorkspace('flags');
      const roDir = makeWorkspace('ro');
      const rwDir = makeWorkspace('rw');
      writeTree(roDir, { 'data.txt': 'ro-data\n' });
      writeTree(rwDir, { 'existing.txt': 'rw-data\n' });
      const { results, sec } = await box(mode, `
sec mounts; cat /proc/self/mountinfo
sec rodata; cat ${q(roDir)}/data.txt
sec end
p ro-create write ${q(roDir)}/new.txt
p ro-overwrite write ${q(roDir)}/data.txt
p ro-truncate truncate ${q(roDir)}/data.txt
p ro-unlink unlink ${q(roDir)}/data.txt
p ro-mkdir mkdir ${q(roDir)}/d
p ro-chmod chmod ${q(roDir)}/data.txt 777
p ro-read read ${q(roDir)}/data.txt
p rw-create write ${q(rwDir)}/from-box.txt
p rw-overwrite write ${q(rwDir)}/existing.txt
p ws-create write ./from-box.txt
`, { workspace: ws, args: ['--ro', roDir, '--rw', rwDir] });
      const mounts = parseMountinfo(sec.mounts);
      const opts = (p) => {
        const m = mountAt(mounts, p);
        assert.ok(m, `a mount at ${p}`);
        return m.opts;
      };
      assert.ok(opts('/').includes('ro'), 'the box root is read-only');
      assert.ok(opts('/usr').includes('ro') && opts('/usr').includes('nosuid'), `/usr: ${opts('/usr')}`);
      assert.ok(opts(ws).includes('rw'), `workspace: ${opts(ws)}`);
      assert.ok(opts(roDir).includes('ro'), `--ro dir: ${opts(roDir)}`);
      assert.ok(opts(rwDir).includes('rw'), `--rw dir: ${opts(rwDir)}`);
      assert.equal(sec.rodata, 'ro-data', 'the --ro view shows the host content at the same path');
      expectResults(results, {
        'ro-create': 'EROFS',
        'ro-overwrite': 'EROFS',
        'ro-truncate': 'EROFS',
        'ro-unlink': 'EROFS',
        'ro-mkdir': 'EROFS',
        'ro-chmod': 'EROFS',
        'ro-read': 'OK',
        'rw-create': 'OK',
        'rw-overwrite': 'OK',
        'ws-create': 'OK',
      }, '--ro and --rw views');
      assert.deepEqual(snapshot(roDir), { 'data.txt': 'ro-data\n' }, 'the --ro directory is unchanged on the host');
      assert.equal(fs.readFileSync(path.join(rwDir, 'from-box.txt'), 'utf8'), 'x');
      assert.equal(fs.statSync(path.join(rwDir, 'from-box.txt')).uid, testUser().uid);
    });

    test('--rw FILE: a file mounted read-write is writable in the box and its writes reach the host (it used to crash the launcher)', async () => {
      const ws = makeWorkspace('rwfile-ws');
      const dir = makeWorkspace('rwfile');
      writeTree(dir, { 'state.json': '{"n":1}\n' });
      const file = path.join(dir, 'state.json');
      const r = await runBox(mode, { workspace: ws, args: ['--rw', file], cmd: ['/bin/sh', '-c', `cat ${q(file)} && echo '{"n":2}' > ${q(file)} && echo written`] });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /"n":1/);
      assert.match(r.stdout, /written/);
      assert.equal(fs.readFileSync(file, 'utf8'), '{"n":2}\n');
      assert.deepEqual(fs.readdirSync(dir), ['state.json'], 'nothing else appeared beside the file');
    });

    test('a read-only bind of a nosuid,nodev,noexec host mount keeps those locked flags', { skip: isRoot ? false : 'needs root to make the host tmpfs' }, async () => {
      const dir = makeLockedMount();
      const ws = makeWorkspace('locked');
      const { results, sec } = await box(mode, `
sec mounts; cat /proc/self/mountinfo
sec end
p noexec-exec exec ${q(dir)}/true
p copy-read read ${q(dir)}/true
cp ${q(dir)}/true /tmp/true-copy && /tmp/true-copy; printf '@@tmp-copy-rc %s\\n' "$?"
`, { workspace: ws, args: ['--ro', dir] });
      const m = mountAt(parseMountinfo(sec.mounts), dir);
      assert.ok(m, `a mount at ${dir}`);
      for (const f of ['ro', 'nosuid', 'nodev', 'noexec']) assert.ok(m.opts.includes(f), `${f} kept: ${m.opts}`);
      expectResults(results, { 'noexec-exec': 'EACCES', 'copy-read': 'OK', 'tmp-copy-rc': 'out:0' }, 'exec on the noexec view vs a copy in /tmp');
    });

    test('relative --ro and --rw paths are refused with exit 125 and a message naming the flag', async () => {
      const ws = makeWorkspace('relative');
      for (const flag of ['--ro', '--rw']) {
        const r = await runBox(mode, { workspace: ws, args: [flag, 'relative/dir'], cmd: ['/bin/true'] });
        assert.equal(r.code, 125, `${flag} relative: exit code (stderr: ${r.stderr})`);
        assert.match(r.stderr, new RegExp(`${flag} relative/dir`), `${flag}: the message names the flag and path`);
        assert.match(r.stderr, /absolute/, `${flag}: the message says what to do`);
        assert.equal(lines(r.stderr.trim()).length, 1, `one line: ${r.stderr}`);
      }
      const ok = await runBox(mode, { workspace: ws, args: ['--ro', PROBE_DIR], cmd: ['/bin/true'] });
      assert.equal(ok.code, 0, `an absolute --ro path works (stderr: ${ok.stderr})`);
    });

    // ---- 5. protected paths ------------------------------------------------
    const PROTECTED_TARGETS = {
      'hook-pre-commit': '.git/hooks/pre-commit',
      'hook-new': '.git/hooks/post-checkout',
      'git-config': '.git/config',
      bashrc: '.bashrc',
      'bash-profile': '.bash_profile',
      zshrc: '.zshrc',
      zprofile: '.zprofile',
      profile: '.profile',
      mcp: '.mcp.json',
      'vscode-settings': '.vscode/settings.json',
      'vscode-tasks': '.vscode/tasks.json',
      idea: '.idea/x',
      'claude-settings': '.claude/settings.json',
      'claude-settings-local': '.claude/settings.local.json',
      'claude-command': '.claude/commands/x.md',
      'claude-agent': '.claude/agents/x.md',
      'codex-config': '.codex/config.toml',
    };
    const attackProtected = () => Object.entries(PROTECTED_TARGETS).map(([l, p]) => `p prot:${l} write ${q(p)}`).join('\n');
    const allErofs = () => Object.fromEntries(Object.keys(PROTECTED_TARGETS).map((l) => [`prot:${l}`, 'EROFS']));

    test('protected paths that exist are read-only (EROFS); objects, refs, index and normal files stay writable; git works', async () => {
      const ws = gitRepo(makeWorkspace('prot-exist'));
      writeTree(ws, {
        '.git/hooks/pre-commit': '#!/bin/sh\nexit 0\n',
        '.bashrc': 'orig bashrc\n',
        '.bash_profile': 'orig bash_profile\n',
        '.zshrc': 'orig zshrc\n',
        '.zprofile': 'orig zprofile\n',
        '.profile': 'orig profile\n',
        '.mcp.json': '{"mcpServers":{}}\n',
        '.vscode/settings.json': '{}\n',
        '.idea/workspace.xml': '<project/>\n',
        '.claude/settings.json': '{"orig":true}\n',
        '.claude/settings.local.json': '{"local":true}\n',
        '.claude/commands/existing.md': 'orig command\n',
        '.claude/agents/existing.md': 'orig agent\n',
        '.codex/config.toml': 'model = "orig"\n',
      });
      fs.chmodSync(path.join(ws, '.git/hooks/pre-commit'), 0o755);
      const protectedBefore = snapshot(ws);
      for (const k of Object.keys(protectedBefore)) if (!/^\.(git\/(hooks|config)|bash|zsh|profile|mcp|vscode|idea|claude|codex)/.test(k)) delete protectedBefore[k];
      const { results, sec } = await box(mode, `
${attackProtected()}
p overwrite:claude-command write .claude/commands/existing.md
p overwrite:claude-agent write .claude/agents/existing.md
p chmod:hook chmod .git/hooks/pre-commit 777
p unlink:bashrc unlink .bashrc
p unlink:git-config unlink .git/config
p rename:mcp rename .mcp.json mcp.json
p rename:hooks rename .git/hooks .git/hooks-old
p rename:vscode rename .vscode vscode
p rmdir-target:idea unlink .idea/workspace.xml
${HAS_GIT ? `
sec gitstatus; git status --porcelain > /tmp/st 2>&1; echo "rc=$?"; cat /tmp/st
echo change >> README.md
sec gitadd; git add README.md 2>&1; echo "rc=$?"
sec gitcommit; git ${GIT_ID.join(' ')} commit -qm from-box 2>&1; echo "rc=$?"
sec gitlog; git log -1 --format=%s 2>&1
sec end
git rev-parse HEAD > .git/refs/heads/box-ref
` : ''}
p legit:objects-mkdir mkdir .git/objects/zz
p legit:objects-write write .git/objects/zz/probe-object
p legit:objects-unlink unlink .git/objects/zz/probe-object
p legit:ref-write write .git/refs/heads/probe-ref
p legit:ref-unlink unlink .git/refs/heads/probe-ref
cp .git/index /tmp/index.bak 2>/dev/null
p legit:index-write write .git/index
cp /tmp/index.bak .git/index 2>/dev/null
p legit:normal write normal.txt
p legit:git-other write .git/description
`, { workspace: ws });
      expectResults(results, {
        ...allErofs(),
        'overwrite:claude-command': 'EROFS',
        'overwrite:claude-agent': 'EROFS',
        'chmod:hook': 'EROFS',
        // mountpoints cannot be removed or moved away
        'unlink:bashrc': 'EBUSY',
        'unlink:git-config': 'EBUSY',
        'rename:mcp': 'EBUSY',
        'rename:hooks': 'EBUSY',
        'rename:vscode': 'EBUSY',
        'rmdir-target:idea': 'EROFS',
        'legit:objects-mkdir': 'OK',
        'legit:objects-write': 'OK',
        'legit:objects-unlink': 'OK',
        'legit:ref-write': 'OK',
        'legit:ref-unlink': 'OK',
        'legit:index-write': 'OK',
        'legit:normal': 'OK',
        'legit:git-other': 'OK',
      }, 'protected paths (existing) vs git internals');
      const after = snapshot(ws);
      for (const [k, v] of Object.entries(protectedBefore)) assert.equal(after[k], v, `${k} unchanged on the host`);
      assert.ok(!exists(path.join(ws, '.git/hooks/post-checkout')) && !exists(path.join(ws, '.idea/x')), 'nothing new in protected dirs');
      if (HAS_GIT) {
        assert.match(sec.gitstatus, /^rc=0(\n|$)/, `git status works in the box:\n${sec.gitstatus}`);
        assert.equal(sec.gitadd, 'rc=0', 'git add works in the box');
        assert.equal(sec.gitcommit, 'rc=0', 'git commit works in the box');
        assert.equal(sec.gitlog, 'from-box');
        assert.equal(asUser('git', ['log', '-1', '--format=%s'], ws).trim(), 'from-box', 'the commit made in the box is on the host');
        assert.equal(asUser('git', ['rev-parse', 'box-ref'], ws).trim(), asUser('git', ['rev-parse', 'HEAD'], ws).trim(), 'a ref written in the box is on the host');
        asUser('git', ['fsck', '--no-progress'], ws); // throws if the box left the repository inconsistent
      }
    });

    test('protected paths that do not exist cannot be created (EROFS), and their placeholders are gone from the host afterwards', async () => {
      const ws = gitRepo(makeWorkspace('prot-missing'));
      fs.rmSync(path.join(ws, '.git/hooks'), { recursive: true, force: true });
      fs.rmSync(path.join(ws, '.git/config'), { force: true });
      const topBefore = sorted(fs.readdirSync(ws));
      const gitBefore = sorted(fs.readdirSync(path.join(ws, '.git')));
      const { results } = await box(mode, `
${attackProtected()}
p mkdir:vscode-sub mkdir .vscode/sub
p legit:normal write normal.txt
p legit:objects write .git/objects/probe-object
p legit:objects-unlink unlink .git/objects/probe-object
`, { workspace: ws });
      expectResults(results, {
        ...allErofs(),
        'mkdir:vscode-sub': 'EROFS',
        'legit:normal': 'OK',
        'legit:objects': 'OK',
        'legit:objects-unlink': 'OK',
      }, 'protected paths (missing) vs normal writes');
      assert.deepEqual(sorted(fs.readdirSync(ws)), sorted([...topBefore, 'normal.txt']), 'no placeholder (.mcp.json, .vscode, .claude, rc files...) is left in the workspace');
      assert.deepEqual(sorted(fs.readdirSync(path.join(ws, '.git'))), gitBefore, 'no hooks/ or config placeholder is left in .git');
    });

    test('renaming the parent of a protected path away does not unprotect it (.git, .claude)', async () => {
      const ws = gitRepo(makeWorkspace('prot-rename'));
      writeTree(ws, { '.claude/settings.json': '{"orig":true}\n', 'docs/a.md': 'a\n' });
      const configBefore = fs.readFileSync(path.join(ws, '.git/config'), 'utf8');
      const { results } = await box(mode, `
p rename:git rename .git .git-away
mkdir -p .git/hooks 2>/dev/null
p recreate:hook write .git/hooks/pre-commit
p recreate:config write .git/config
p rename:claude rename .claude .claude-away
mkdir -p .claude 2>/dev/null
p recreate:claude-settings write .claude/settings.json
p legit:rename-docs rename docs docs-moved
`, { workspace: ws });
      assert.equal(results['legit:rename-docs'], 'OK', 'renaming an ordinary directory works');
      const got = (l) => results[l] ?? 'missing';
      assert.ok(!(got('rename:git') === 'OK' && got('recreate:hook') === 'OK'),
        `moved .git away (${got('rename:git')}) and then created .git/hooks/pre-commit (${got('recreate:hook')})`);
      assert.ok(!(got('rename:git') === 'OK' && got('recreate:config') === 'OK'),
        `moved .git away (${got('rename:git')}) and then created .git/config (${got('recreate:config')})`);
      assert.ok(!(got('rename:claude') === 'OK' && got('recreate:claude-settings') === 'OK'),
        `moved .claude away (${got('rename:claude')}) and then created .claude/settings.json (${got('recreate:claude-settings')})`);
      // what counts: what git and the agent tools will read on the host afterwards
      assert.ok(!exists(path.join(ws, '.git/hooks/pre-commit')), 'no pre-commit hook planted on the host');
      assert.equal(fs.readFileSync(path.join(ws, '.git/config'), 'utf8'), configBefore, '.git/config on the host is the original');
      assert.equal(fs.readFileSync(path.join(ws, '.claude/settings.json'), 'utf8'), '{"orig":true}\n', '.claude/settings.json on the host is the original');
    });

    test('worktree: the gitdir pointers (commondir, gitdir) and the common dir hooks/config are protected when inside writable roots', { skip: HAS_GIT ? false : 'git is not installed' }, async () => {
      const outer = makeWorkspace('wt-main');
      const main = gitRepo(userDir(path.join(outer, 'main')));
      const wtParent = makeWorkspace('wt');
      const wt = path.join(wtParent, 'tree');
      asUser('git', ['worktree', 'add', '-q', wt], main);
      const gitdir = path.join(main, '.git/worktrees/tree');
      assert.match(fs.readFileSync(path.join(wt, '.git'), 'utf8'), /^gitdir: /, 'the worktree has a .git file');
      assert.ok(exists(path.join(gitdir, 'commondir')), 'the worktree gitdir has a commondir');
      const gitdirBefore = sorted(fs.readdirSync(gitdir));
      const mainConfig = fs.readFileSync(path.join(main, '.git/config'), 'utf8');
      // --rw of the parent: main/.git is writable but main is not a root itself,
      // so only the worktree's resolution can protect it.
      const { results, sec } = await box(mode, `
p common-hook write ${q(main)}/.git/hooks/pre-commit
p common-config write ${q(main)}/.git/config
p gitdir-commondir write ${q(gitdir)}/commondir
p gitdir-gitdir write ${q(gitdir)}/gitdir
p gitdir-config-worktree write ${q(gitdir)}/config.worktree
p legit:outer write ${q(outer)}/notes.txt
p legit:objects write ${q(main)}/.git/objects/probe-object
p legit:objects-unlink unlink ${q(main)}/.git/objects/probe-object
echo wt > wt.txt
sec gitcommit; git add wt.txt 2>&1 && git ${GIT_ID.join(' ')} commit -qm from-worktree 2>&1; echo "rc=$?"
sec end
`, { workspace: wt, args: ['--rw', outer] });
      expectResults(results, {
        'common-hook': 'EROFS',
        'common-config': 'EROFS',
        'gitdir-commondir': 'EROFS',
        'gitdir-gitdir': 'EROFS',
        'gitdir-config-worktree': 'EROFS',
        'legit:outer': 'OK',
        'legit:objects': 'OK',
        'legit:objects-unlink': 'OK',
      }, 'worktree git dirs');
      assert.equal(sec.gitcommit, 'rc=0', 'git commit works in the worktree inside the box');
      assert.equal(asUser('git', ['log', '-1', '--format=%s', 'tree'], main).trim(), 'from-worktree', 'the worktree commit is on the host');
      assert.equal(fs.readFileSync(path.join(main, '.git/config'), 'utf8'), mainConfig, 'common config unchanged');
      assert.ok(!exists(path.join(main, '.git/hooks/pre-commit')), 'no hook planted in the common dir');
      assert.deepEqual(sorted(fs.readdirSync(gitdir)).filter((e) => !['index', 'COMMIT_EDITMSG', 'ORIG_HEAD', 'logs'].includes(e)),
        gitdirBefore.filter((e) => !['index', 'COMMIT_EDITMSG', 'ORIG_HEAD', 'logs'].includes(e)), 'the gitdir placeholder (config.worktree) is gone afterwards');
    });

    test('worktree with extensions.worktreeConfig: the gitdir config.worktree is protected too', { skip: HAS_GIT ? false : 'git is not installed' }, async () => {
      const outer = makeWorkspace('wtcfg-main');
      const main = gitRepo(userDir(path.join(outer, 'main')));
      asUser('git', ['config', 'extensions.worktreeConfig', 'true'], main);
      const wt = path.join(makeWorkspace('wtcfg'), 'tree');
      asUser('git', ['worktree', 'add', '-q', wt], main);
      const gitdir = path.join(main, '.git/worktrees/tree');
      // git reads <gitdir>/config.worktree as this worktree's config (core.hooksPath, core.fsmonitor...)
      asUser('git', ['config', '--worktree', 'core.autocrlf', 'false'], wt);
      const before = fs.readFileSync(path.join(gitdir, 'config.worktree'), 'utf8');
      const { results } = await box(mode, `
p gitdir-config-worktree write ${q(gitdir)}/config.worktree
p common-config write ${q(main)}/.git/config
p legit:wt-file write wt-file.txt
`, { workspace: wt, args: ['--rw', outer] });
      expectResults(results, { 'gitdir-config-worktree': 'EROFS', 'common-config': 'EROFS', 'legit:wt-file': 'OK' }, 'worktree config files');
      assert.equal(fs.readFileSync(path.join(gitdir, 'config.worktree'), 'utf8'), before, 'config.worktree unchanged on the host');
    });

    test('submodule: git dirs under .git/modules (nested too) get hooks protected; their config is put back after the run; objects stay writable', async () => {
      const ws = gitRepo(makeWorkspace('submod'));
      if (HAS_GIT) {
        const src = gitRepo(makeWorkspace('submod-src'));
        asUser('git', ['-c', 'protocol.file.allow=always', 'submodule', 'add', '-q', src, 'sub'], ws);
      } else {
        writeTree(ws, {
          '.git/modules/sub/HEAD': 'ref: refs/heads/main\n',
          '.git/modules/sub/config': '[core]\n\tworktree = ../../../sub\n',
          '.git/modules/sub/hooks/.keep': '',
          '.git/modules/sub/objects/.keep': '',
          '.git/modules/sub/refs/heads/.keep': '',
          'sub/.git': 'gitdir: ../.git/modules/sub\n',
        });
      }
      // a nested submodule git dir, by hand
      writeTree(ws, {
        '.git/modules/sub/modules/inner/HEAD': 'ref: refs/heads/main\n',
        '.git/modules/sub/modules/inner/config': '[core]\n\tbare = false\n',
        '.git/modules/sub/modules/inner/objects/.keep': '',
        '.git/modules/sub/modules/inner/refs/heads/.keep': '',
      });
      const innerConfig = fs.readFileSync(path.join(ws, '.git/modules/sub/modules/inner/config'), 'utf8');
      const subConfig = fs.readFileSync(path.join(ws, '.git/modules/sub/config'), 'utf8');
      const { results, sec } = await box(mode, `
p sub-hook write .git/modules/sub/hooks/post-checkout
p sub-config write .git/modules/sub/config
p inner-hook write .git/modules/sub/modules/inner/hooks/pre-commit
p inner-config write .git/modules/sub/modules/inner/config
p legit:sub-objects write .git/modules/sub/objects/probe-object
p legit:inner-objects write .git/modules/sub/modules/inner/objects/probe-object
${HAS_GIT ? 'sec substatus; git -C sub status --porcelain 2>&1; echo "rc=$?"\nsec end' : ''}
`, { workspace: ws });
      // A submodule's config stays writable (git submodule update rewrites core.worktree in it).
      expectResults(results, {
        'sub-hook': 'EROFS',
        'sub-config': 'OK',
        'inner-hook': 'EROFS',
        'inner-config': 'OK',
        'legit:sub-objects': 'OK',
        'legit:inner-objects': 'OK',
      }, 'submodule git dirs');
      if (HAS_GIT) assert.match(sec.substatus, /rc=0$/, `git status works in the submodule inside the box:\n${sec.substatus}`);
      assert.equal(fs.readFileSync(path.join(ws, '.git/modules/sub/config'), 'utf8'), subConfig, 'the submodule config the box wrote is put back');
      assert.equal(fs.readFileSync(path.join(ws, '.git/modules/sub/modules/inner/config'), 'utf8'), innerConfig);
      assert.ok(!exists(path.join(ws, '.git/modules/sub/modules/inner/hooks')), 'the nested hooks placeholder is gone afterwards');
    });

    // ---- 6. symlinks ----------------------------------------------------------
    test('a protected dir replaced by a symlink before launch is covered, not followed (.git/hooks, .claude); decoys unchanged', async () => {
      const ws = gitRepo(makeWorkspace('symlinks'));
      fs.rmSync(path.join(ws, '.git/hooks'), { recursive: true, force: true });
      writeTree(ws, {
        'decoy-hooks/pre-commit': 'decoy hook\n',
        'decoy-claude/settings.json': '{"decoy":true}\n',
        'decoy-claude/commands/c.md': 'decoy command\n',
      });
      fs.symlinkSync('../decoy-hooks', path.join(ws, '.git/hooks'));
      fs.symlinkSync('decoy-claude', path.join(ws, '.claude'));
      ownLink(path.join(ws, '.git/hooks'));
      ownLink(path.join(ws, '.claude'));
      const before = { hooks: snapshot(path.join(ws, 'decoy-hooks')), claude: snapshot(path.join(ws, 'decoy-claude')) };
      const { results } = await box(mode, `
p hook-existing write .git/hooks/pre-commit
p hook-new write .git/hooks/post-checkout
p claude-settings write .claude/settings.json
p claude-settings-local write .claude/settings.local.json
p claude-command write .claude/commands/c.md
p unlink-hooks-link unlink .git/hooks
p legit:decoy-read read decoy-hooks/pre-commit
p legit:normal write normal.txt
`, { workspace: ws });
      expectResults(results, {
        // the symlink is covered by a non-directory: paths below it do not resolve
        'hook-existing': 'ENOTDIR',
        'hook-new': 'ENOTDIR',
        'claude-settings': 'ENOTDIR',
        'claude-settings-local': 'ENOTDIR',
        'claude-command': 'ENOTDIR',
        'unlink-hooks-link': 'EBUSY',
        'legit:decoy-read': 'OK',
        'legit:normal': 'OK',
      }, 'writes through symlinked protected dirs');
      assert.deepEqual(snapshot(path.join(ws, 'decoy-hooks')), before.hooks, 'the hooks decoy is unchanged on the host');
      assert.deepEqual(snapshot(path.join(ws, 'decoy-claude')), before.claude, 'the .claude decoy is unchanged on the host');
      assert.ok(fs.lstatSync(path.join(ws, '.git/hooks')).isSymbolicLink() && fs.lstatSync(path.join(ws, '.claude')).isSymbolicLink(), 'the symlinks themselves are left as they were');
    });

    test('.git as a symlink to a decoy git dir: hooks and config cannot be written through it', async () => {
      const ws = makeWorkspace('gitlink');
      const real = gitRepo(userDir(path.join(ws, 'decoy.git-holder')));
      fs.renameSync(path.join(real, '.git'), path.join(ws, 'decoy.git'));
      fs.rmSync(real, { recursive: true, force: true });
      fs.symlinkSync('decoy.git', path.join(ws, '.git'));
      ownLink(path.join(ws, '.git'));
      const before = snapshot(path.join(ws, 'decoy.git'));
      const { results } = await box(mode, `
p hook write .git/hooks/pre-commit
p config write .git/config
p legit:normal write normal.txt
`, { workspace: ws });
      assert.equal(results['legit:normal'], 'OK', 'normal files stay writable');
      assert.ok(['EROFS', 'ENOTDIR'].includes(results.hook), `.git/hooks/pre-commit through the .git symlink: ${results.hook} (expected EROFS or ENOTDIR)`);
      assert.ok(['EROFS', 'ENOTDIR'].includes(results.config), `.git/config through the .git symlink: ${results.config} (expected EROFS or ENOTDIR)`);
      assert.deepEqual(snapshot(path.join(ws, 'decoy.git')), before, 'the git dir behind the symlink is unchanged on the host');
    });

    test('symlinks to host paths and .. traversal reach only the box tree', async () => {
      const m = makeHostMarkers();
      const ws = makeWorkspace('traverse');
      for (const [name, target] of [['shadow-link', '/etc/shadow'], ['marker-link', m.tmpFile], ['root-link', '/root'], ['passwd-link', '/etc/passwd'], ['hostname-link', '/etc/hostname']]) {
        fs.symlinkSync(target, path.join(ws, name));
      }
      for (const e of fs.readdirSync(ws)) ownLink(path.join(ws, e));
      const up = '../'.repeat(ws.split('/').length + 2);
      const { results, sec } = await box(mode, `
p shadow-link read shadow-link
p marker-link read marker-link
p root-link read root-link/.bashrc
p dotdot-shadow read ${up}etc/shadow
p dotdot-marker read ${up}${m.tmpFile.slice(1)}
p dotdot-root read ${up}root
p legit:passwd-link read passwd-link
sec viaLink; cat hostname-link
sec dotdotHostname; cat ${up}etc/hostname
sec dotdotList; ls -A ${up}
sec rootList; ls -A /
sec passwdNames; cut -d: -f1 passwd-link
sec end
`, { workspace: ws });
      expectResults(results, {
        'shadow-link': 'ENOENT',
        'marker-link': 'ENOENT',
        'root-link': 'ENOENT',
        'dotdot-shadow': 'ENOENT',
        'dotdot-marker': 'ENOENT',
        'dotdot-root': 'ENOENT',
        'legit:passwd-link': 'OK',
      }, 'symlinks and .. out of the workspace');
      assert.equal(sec.viaLink, 'latchgate', 'a symlink to /etc/hostname resolves to the box file');
      assert.equal(sec.dotdotHostname, 'latchgate', '.. from the workspace reaches the box /etc');
      assert.deepEqual(sorted(lines(sec.dotdotList)), sorted(lines(sec.rootList)), '.. past the workspace ends at the box /');
      assert.deepEqual(sorted(lines(sec.passwdNames)), sorted(['root', testUser().name, 'nobody']), 'the symlinked passwd is the box one');
    });

    // ---- 7. Landlock on its own --------------------------------------------
    test('Landlock alone: the writable /dev tmpfs refuses new entries (EACCES); /dev/shm refuses exec (EACCES) while /tmp allows it; Seccomp 2, NoNewPrivs 1', async () => {
      const ws = makeWorkspace('landlock');
      const { results, sec } = await box(mode, `
sec mounts; cat /proc/self/mountinfo
sec status; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status
sec end
p dev-create write /dev/x
p dev-mkdir mkdir /dev/d
p dev-mkfifo mkfifo /dev/fifo
p dev-symlink symlink /proc/self/fd /dev/evil
p dev-unlink unlink /dev/ptmx
p dev-rename rename /dev/stdin /dev/stdin2
p legit:dev-null write /dev/null
p legit:shm-write write /dev/shm/data
p legit:shm-read read /dev/shm/data
cp /bin/true /dev/shm/true && p shm-exec exec /dev/shm/true
/dev/shm/true 2>/dev/null; printf '@@shm-exec-rc %s\\n' "$?"
cp /bin/true /tmp/true && p legit:tmp-exec exec /tmp/true
/tmp/true; printf '@@legit:tmp-exec-rc %s\\n' "$?"
`, { workspace: ws });
      // preconditions: only Landlock stands in the way here, not the mounts
      const mounts = parseMountinfo(sec.mounts);
      const dev = mountAt(mounts, '/dev');
      const shm = mountAt(mounts, '/dev/shm');
      assert.ok(dev && dev.fstype === 'tmpfs' && dev.opts.includes('rw'), `/dev is a writable tmpfs as far as mounts go: ${JSON.stringify(dev)}`);
      assert.ok(shm && shm.opts.includes('rw') && !shm.opts.includes('noexec'), `/dev/shm is rw and not noexec as far as mounts go: ${JSON.stringify(shm)}`);
      expectResults(results, {
        'dev-create': 'EACCES',
        'dev-mkdir': 'EACCES',
        'dev-mkfifo': 'EACCES',
        'dev-symlink': 'EACCES',
        'dev-unlink': 'EACCES',
        'dev-rename': 'EACCES',
        'legit:dev-null': 'OK',
        'legit:shm-write': 'OK',
        'legit:shm-read': 'OK',
        'shm-exec': 'EACCES',
        'shm-exec-rc': 'out:126',
        // a successful exec replaces the probe: /bin/true prints nothing
        'legit:tmp-exec': 'out:',
        'legit:tmp-exec-rc': 'out:0',
      }, 'Landlock on the box /dev and /dev/shm');
      const status = Object.fromEntries(lines(sec.status).map((l) => l.split(/:\s*/)));
      assert.equal(status.Seccomp, '2', 'seccomp filter mode');
      assert.equal(status.NoNewPrivs, '1', 'no_new_privs');
    });
  });
}
