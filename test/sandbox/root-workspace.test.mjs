// Root launching a box on a workspace of root's own (a fresh clone as root):
// the agent is nobody (never uid 0, no capabilities) and gets the workspace
// through an idmapped mount, so what it writes there is root's on the host.
// Attacked for real through that mount: set-ID bits, file capabilities,
// device nodes, chown, hard links to root-only host files, writes outside
// the workspace, a symlink left for the next launcher. Next to them the
// legitimate path, a workspace of a normal user mapped as before, the
// kernel's refusal (ramfs cannot be idmapped) with its fix, and the shell a
// box without a command gets, with its prompt.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, testUser, ROOT } from '../helpers/sandbox.mjs';

const { hostFacts, resolveIdentity } = await import(path.join(ROOT, 'dist/sandbox/identity.js'));
const { asOwner, fsOwnerOf } = await import(path.join(ROOT, 'dist/sandbox/fs-identity.js'));
const { loadAddon } = await import(path.join(ROOT, 'dist/native/addon.js'));

const NOBODY = 65534;
const scratch = [];
const mounts = [];
after(() => {
  for (const m of mounts.splice(0)) execFileSync('umount', [m]);
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
  cleanupWorkspaces();
});

/** A root-owned directory (mode) in a fresh root-only (0700) parent, like a clone in /root. */
function rootWorkspace(mode = 0o755) {
  const parent = mkdtempSync(path.join(os.tmpdir(), 'latchgate-rootws-'));
  chmodSync(parent, 0o700);
  scratch.push(parent);
  const ws = path.join(parent, 'ws');
  mkdirSync(ws, { mode });
  chmodSync(ws, mode);
  return ws;
}

/** A root-owned directory outside every workspace, with a root-only file. */
function rootOnlyTree() {
  const d = mkdtempSync(path.join(os.tmpdir(), 'latchgate-rootonly-'));
  chmodSync(d, 0o755);
  writeFileSync(path.join(d, 'secret'), 'root only\n', { mode: 0o600 });
  scratch.push(d);
  return d;
}

const plan = async (ws, args = []) => {
  const r = await runBox('root', { workspace: ws, args: ['--dry-run', ...args] });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
};

/** Every file under dir with its owner and mode, as lstat shows them on the host. */
function tree(dir) {
  const out = {};
  for (const name of readdirSync(dir, { recursive: true })) {
    const st = lstatSync(path.join(dir, name));
    out[name] = { uid: st.uid, gid: st.gid, mode: st.mode };
  }
  return out;
}

const python = (script) => ['/usr/bin/python3', '-c', script];

// One syscall per check, its errno name or "ok"; printed as one JSON line.
const ATTACKS = `
import errno, json, os, stat, sys
ro = sys.argv[1]
r = {}
def t(name, f):
    try:
        f(); r[name] = 'ok'
    except OSError as e:
        r[name] = errno.errorcode[e.errno]
status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)
r['ids'] = [status['Uid'].split(), status['Gid'].split()]
r['capEff'] = int(status['CapEff'], 16)
r['uidMap'] = open('/proc/self/uid_map').read().split()
def write(p, data='x'):
    with open(p, 'w') as f: f.write(data)
t('write', lambda: write('made'))
t('readRootFile', lambda: open('root-file').read())
t('chmodSuid', lambda: os.chmod('made', 0o4755))
t('chmodSgid', lambda: os.chmod('made', 0o2755))
t('createSuid', lambda: os.close(os.open('suid-new', os.O_CREAT | os.O_WRONLY, 0o4755)))
t('mknodSuid', lambda: os.mknod('suid-node', stat.S_IFREG | 0o4755))
t('mknodChar', lambda: os.mknod('dev-mem', stat.S_IFCHR | 0o666, os.makedev(1, 1)))
t('mknodBlock', lambda: os.mknod('dev-blk', stat.S_IFBLK | 0o666, os.makedev(7, 0)))
# A file capability (VFS_CAP_REVISION_2, every capability permitted, effective).
t('fileCaps', lambda: os.setxattr('made', 'security.capability', b'\\x01\\x00\\x00\\x02' + b'\\xff\\xff\\xff\\xff' + b'\\x00' * 4 + b'\\xff\\xff\\xff\\xff' + b'\\x00' * 4))
t('chownRoot', lambda: os.chown('made', 0, 0))
t('chownOther', lambda: os.chown('made', 1, 1))
t('chownSelf', lambda: os.chown('made', ${NOBODY}, ${NOBODY}))
t('readSecret', lambda: open(ro + '/secret').read())
t('linkSecret', lambda: os.link(ro + '/secret', 'linked-secret'))
t('linkSetuid', lambda: os.link('/usr/bin/su', 'linked-su'))
t('writeRo', lambda: write(ro + '/new'))
t('writeUsr', lambda: write('/usr/new'))
t('writeProtected', lambda: write('.bashrc'))
r['parent'] = sorted(os.listdir('..'))
print(json.dumps(r))
`;

test('[root] a root-owned workspace: the agent is nobody with no capabilities; what it writes is root\'s on the host; set-ID bits, file capabilities, device nodes, chown and hard links to root-only files are refused', { skip: skipReason('root') }, async () => {
  const ws = rootWorkspace(0o700);
  writeFileSync(path.join(ws, 'root-file'), 'the workspace\'s own\n', { mode: 0o600 });
  const ro = rootOnlyTree();
  const r = await runBox('root', { workspace: ws, args: ['--ro', ro, '--json'], cmd: [...python(ATTACKS), ro] });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  assert.deepEqual(out.ids, [Array(4).fill(String(NOBODY)), Array(4).fill(String(NOBODY))], 'nobody, never uid 0');
  assert.equal(out.capEff, 0, 'no capability left');
  assert.deepEqual([r.json.isolation.uid, r.json.isolation.idmapped], [NOBODY, [ws]], 'the --json summary says so');
  assert.deepEqual(out.uidMap, [String(NOBODY), String(NOBODY), '1'], 'uid 0 is not mapped in the box');
  // The legitimate path: the workspace is the agent's to read and write.
  assert.equal(out.write, 'ok');
  assert.equal(out.readRootFile, 'ok');
  assert.equal(out.chownSelf, 'ok', 'chown to itself changes nothing');
  // The attacks.
  assert.deepEqual(
    { chmodSuid: out.chmodSuid, chmodSgid: out.chmodSgid, createSuid: out.createSuid, mknodSuid: out.mknodSuid },
    { chmodSuid: 'EPERM', chmodSgid: 'EPERM', createSuid: 'EPERM', mknodSuid: 'EPERM' },
    'a set-ID mode is refused (seccomp) on every path',
  );
  // Landlock refuses making device nodes (EACCES) before the kernel's capability check would (EPERM).
  assert.equal(out.mknodChar, 'EACCES');
  assert.equal(out.mknodBlock, 'EACCES');
  assert.equal(out.fileCaps, 'EPERM', 'no file capability (CAP_SETFCAP is dropped)');
  assert.equal(out.chownRoot, 'EINVAL', 'uid 0 is no id in the box');
  assert.equal(out.chownOther, 'EINVAL', 'nor is any other but nobody');
  assert.equal(out.readSecret, 'EACCES', 'a root-only file outside the workspace stays root\'s');
  assert.equal(out.linkSecret, 'EXDEV');
  assert.equal(out.linkSetuid, 'EXDEV');
  assert.equal(out.writeRo, 'EROFS');
  assert.equal(out.writeUsr, 'EROFS');
  assert.equal(out.writeProtected, 'EROFS', 'protected paths stay read-only through the idmap');
  assert.deepEqual(out.parent, ['ws'], 'the root-only directory above the workspace shows nothing else');

  // On the host: the file is root's, nothing set-ID or a device was left, the placeholders are gone.
  const files = tree(ws);
  assert.deepEqual(Object.keys(files).sort(), ['made', 'root-file']);
  assert.deepEqual([files.made.uid, files.made.gid], [0, 0], 'what the agent wrote is root\'s on the host');
  for (const [name, f] of Object.entries(files)) {
    assert.equal(f.mode & 0o6000, 0, `${name} is set-ID`);
    assert.ok((f.mode & 0o170000) === 0o100000, `${name} is not a regular file`);
  }
  assert.deepEqual(readdirSync(ro).sort(), ['secret']);
});

test('[root] the plan shows the idmap: the workspace and --rw directories of root\'s, never --ro or another owner\'s', { skip: skipReason('root') }, async () => {
  const ws = rootWorkspace();
  const rootRw = rootWorkspace();
  const userRw = makeWorkspace('rw-user');
  const ro = rootOnlyTree();
  const p = await plan(ws, ['--rw', rootRw, '--rw', userRw, '--ro', ro]);
  assert.equal(p.identity.uid, NOBODY);
  assert.equal(p.identity.source, 'root-workspace');
  assert.deepEqual(p.identity.idmap, { hostUid: 0, hostGid: 0, uidMap: `0 ${NOBODY} 1\n`, gidMap: `0 ${NOBODY} 1\n`, trees: [ws, rootRw] });
  const binds = Object.fromEntries(p.mounts.filter((e) => e.kind === 'bind' && [ws, rootRw, userRw, ro].includes(e.path)).map((e) => [e.path, e.idmapped ?? false]));
  assert.deepEqual(binds, { [ws]: true, [rootRw]: true, [userRw]: false, [ro]: false });
  assert.deepEqual(p.mounts.filter((e) => e.kind === 'idmap-tree').map((e) => e.src), [ws, rootRw]);
  for (const e of p.mounts) if (e.idmapped) assert.ok(e.src === ws || e.src.startsWith(`${ws}/`) || e.src === rootRw || e.src.startsWith(`${rootRw}/`), `${e.src} idmapped`);
  // Both idmapped trees, in the box: what it writes there is root's on the host.
  const r = await runBox('root', { workspace: ws, args: ['--rw', rootRw], cmd: ['/bin/sh', '-c', `touch made ${rootRw}/made`] });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual([lstatSync(path.join(ws, 'made')).uid, lstatSync(path.join(rootRw, 'made')).uid], [0, 0]);
});

test('[root] a TMPDIR inside the root-owned workspace is refused: the box could swap its own sockets there', { skip: skipReason('root') }, async () => {
  const ws = rootWorkspace();
  mkdirSync(path.join(ws, 'tmp'), { mode: 0o1777 });
  const r = await runBox('root', { workspace: ws, env: { TMPDIR: path.join(ws, 'tmp') }, cmd: ['/bin/true'] });
  assert.equal(r.code, 125, r.stderr);
  assert.match(r.stderr, /^latchgate: TMPDIR \S+ is inside \S+, which the box's user writes as root through the idmap: .*set TMPDIR to a directory outside the workspace/m);
  assert.deepEqual(readdirSync(path.join(ws, 'tmp')), []);
});

test('[root] a system tree (/etc, /usr, a directory in /var) is never idmapped: not as the workspace, not as --rw, not through a bind mount of it inside the workspace, not holding /tmp; refused before the box runs, exit 125', { skip: skipReason('root') }, async () => {
  // The attack, for real: with /etc the box's, a file in /etc/cron.d is root's cron job.
  const proof = `latchgate-attack-${process.pid}`;
  const planted = ['/etc', '/etc/cron.d', '/usr/local/bin', '/var/tmp'].map((d) => path.join(d, proof));
  scratch.push(...planted);
  const write = (dir) => ['/bin/sh', '-c', `echo '* * * * * root id' > ${dir}/${proof}`];
  const refusedAs = (r, tree, how) => {
    assert.equal(r.code, 125, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`^latchgate: ${tree} belongs to root and ${how}\\b.*: the box's user would own it as root on the host through the idmapped mount.*chown -R it to a user and run latchgate as that user$`, 'm'));
  };
  for (const dir of ['/etc', '/usr/local/bin', '/var/tmp']) {
    const r = await runBox('root', { workspace: dir, cmd: write(dir) });
    refusedAs(r, dir, dir === '/etc' ? 'is /etc' : `lies in ${dir === '/var/tmp' ? '/var' : '/usr'}`);
  }
  // Read-only binds: nothing here may write (or a cleanup remove) the system's files.
  const bindAlias = (src, dst) => {
    execFileSync('mount', ['--bind', src, dst]);
    mounts.unshift(dst);
    execFileSync('mount', ['-o', 'remount,bind,ro', dst]);
  };
  const ws = rootWorkspace();
  refusedAs(await runBox('root', { workspace: ws, args: ['--rw', '/etc/cron.d'], cmd: write('/etc/cron.d') }), '/etc/cron.d', 'lies in /etc');
  // /etc/cron.d shown inside the workspace by a bind mount, or the workspace itself one.
  const inside = path.join(ws, 'cron');
  mkdirSync(inside);
  bindAlias('/etc/cron.d', inside);
  refusedAs(await runBox('root', { workspace: ws, cmd: write('cron') }), ws, `has a mount at ${inside} that lies in /etc`);
  const alias = rootWorkspace();
  bindAlias('/etc/cron.d', alias);
  refusedAs(await runBox('root', { workspace: alias, cmd: write('.') }), alias, 'lies in /etc');
  // /tmp below the workspace: the box would own every user's files there (another's runtime directory).
  const tmpAlias = rootWorkspace();
  mkdirSync(path.join(tmpAlias, 'tmp'));
  bindAlias('/tmp', path.join(tmpAlias, 'tmp'));
  refusedAs(await runBox('root', { workspace: tmpAlias, args: ['--dry-run'] }), tmpAlias, "holds /tmp");
  for (const p of planted) assert.ok(!existsSync(p), `${p} was written`);
  // The legitimate path: a root-owned project directory elsewhere still runs.
  const r = await runBox('root', { workspace: rootWorkspace(), cmd: write('.') });
  assert.equal(r.code, 0, r.stderr);
});

test('[root] a workspace of a normal user still maps as before: the box is that user, no idmap', { skip: skipReason('root') }, async () => {
  const u = testUser();
  const ws = makeWorkspace('owner');
  const p = await plan(ws);
  assert.equal(p.identity.uid, u.uid);
  assert.equal(p.identity.source, 'workspace-owner');
  assert.equal(p.identity.idmap, null);
  assert.ok(!p.mounts.some((e) => e.kind === 'idmap-tree' || e.idmapped));
  const r = await runBox('root', { workspace: ws, cmd: ['/bin/sh', '-c', 'id -u; touch made'] });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), String(u.uid));
  assert.equal(lstatSync(path.join(ws, 'made')).uid, u.uid);
});

test('[root] the launcher\'s own work in a root-owned workspace (placeholders, the after-run check) is done as the box\'s user through the same idmap: a symlink the box left leads it nowhere root\'s', { skip: skipReason('root') }, () => {
  const ws = rootWorkspace(0o700);
  const outside = rootOnlyTree();
  // Root's on disk, as everything a box makes there is: the same as one a box left.
  symlinkSync(outside, path.join(ws, 'link'));
  writeFileSync(path.join(path.dirname(ws), 'beside'), '');
  const id = resolveIdentity(hostFacts(ws));
  const owner = fsOwnerOf({ ...id, idmap: { ...id.idmap, trees: [ws] } });
  const cwd = process.cwd();
  const seen = asOwner(owner, () => {
    const r = {};
    for (const [name, f] of Object.entries({
      write: () => writeFileSync(path.join(ws, 'made'), 'x'),
      throughLink: () => writeFileSync(path.join(ws, 'link', 'planted'), 'x'),
      readSecret: () => readFileSync(path.join(outside, 'secret')),
    })) {
      try {
        f();
        r[name] = 'ok';
      } catch (e) {
        r[name] = e.code;
      }
    }
    r.parent = readdirSync(path.dirname(ws)).sort();
    r.owner = lstatSync(path.join(ws, 'made')).uid;
    return r;
  });
  assert.deepEqual(seen, { write: 'ok', throughLink: 'EACCES', readSecret: 'EACCES', parent: ['ws'], owner: NOBODY });
  assert.deepEqual(readdirSync(outside), ['secret'], 'nothing was made where the symlink leads');
  assert.equal(lstatSync(path.join(ws, 'made')).uid, 0, 'root\'s on the host');
  // Back in the launcher's namespace, at its cwd.
  assert.deepEqual(readdirSync(path.dirname(ws)).sort(), ['beside', 'ws']);
  assert.equal(process.cwd(), cwd);
});

test('[root] a symlink swapped in on a tree\'s path after the plan (by a box writing the directory above it) is never followed: the idmap and the launcher\'s view refuse it (ELOOP) instead of idmapping what it names', { skip: skipReason('root') }, () => {
  // An outer root-owned workspace (another box's) holds the path of a tree this launch
  // planned as a directory; that box put a symlink to a root-only directory there since.
  const outer = rootWorkspace();
  const target = rootOnlyTree();
  const tree = path.join(outer, 'inner');
  symlinkSync(target, tree);
  const { idmapCheck, withFsIds } = loadAddon();
  const maps = { uidMap: `0 ${NOBODY} 1\n`, gidMap: `0 ${NOBODY} 1\n` };
  // The box's own idmap is made by the same call idmapCheck makes.
  const check = idmapCheck([tree], maps.uidMap, maps.gidMap);
  assert.equal(check?.errno, 40, `ELOOP expected: ${JSON.stringify(check)}`);
  assert.match(check.step, /RESOLVE_NO_SYMLINKS/);
  let ran = false;
  assert.throws(
    () => withFsIds(NOBODY, NOBODY, () => {
      ran = true;
      writeFileSync(path.join(tree, 'planted'), 'x'); // as the box's user, the root-only directory its own
    }, { ...maps, paths: [outer, tree] }),
    (e) => e.errno === 40 && /RESOLVE_NO_SYMLINKS/.test(e.step),
  );
  assert.equal(ran, false);
  assert.deepEqual(readdirSync(target), ['secret'], 'nothing was planted where the symlink leads');
  // The legitimate path: the same trees as real directories.
  rmSync(tree);
  mkdirSync(tree);
  assert.equal(idmapCheck([tree], maps.uidMap, maps.gidMap), null);
  withFsIds(NOBODY, NOBODY, () => writeFileSync(path.join(tree, 'made'), 'x'), { ...maps, paths: [outer, tree] });
  assert.equal(lstatSync(path.join(tree, 'made')).uid, 0);
});

test('[root] the kernel refuses to idmap the workspace (ramfs): the launch and its --dry-run refuse with the fix, exit 125', { skip: skipReason('root') }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-ramfs-'));
  scratch.push(dir);
  execFileSync('mount', ['-t', 'ramfs', 'latchgate-test', dir]);
  mounts.push(dir);
  const ws = path.join(dir, 'ws');
  mkdirSync(ws, { mode: 0o755 });
  for (const args of [[], ['--dry-run']]) {
    const r = await runBox('root', { workspace: ws, args, cmd: ['/bin/sh', '-c', 'touch made'] });
    assert.equal(r.code, 125, r.stdout + r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^latchgate: --workspace \S+ belongs to uid 0: .*idmapped mount.*mount_setattr MOUNT_ATTR_IDMAP: EINVAL.*chown -R the workspace to a user and run latchgate as that user, or set SUDO_UID=<uid>$/);
  }
  assert.ok(!existsSync(path.join(ws, 'made')));
});

test('[root] a box without a command, for nobody (whose shell is nologin), gets /bin/sh', { skip: skipReason('root') }, async () => {
  const ws = rootWorkspace();
  const r = await runBox('root', { workspace: ws, input: 'echo "shell=$0 uid=$(id -u)"; touch from-stdin\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `shell=/bin/sh uid=${NOBODY}`);
  assert.equal(lstatSync(path.join(ws, 'from-stdin')).uid, 0);
  const p = await plan(ws);
  assert.deepEqual(p.command.argv, ['/bin/sh']);
  assert.equal(p.identity.shellReplaced, '/usr/sbin/nologin');
});

for (const mode of MODES) {
  test(`[${mode}] the box says where it is: PS1 and LATCHGATE_BOX=1`, { skip: skipReason(mode) }, async () => {
    const ws = makeWorkspace('prompt');
    const r = await runBox(mode, { workspace: ws, cmd: ['/bin/sh', '-c', 'printf "%s|%s\\n" "$PS1" "$LATCHGATE_BOX"'] });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '[latchgate] $USER@latchgate:$PWD\\$ |1\n');
    // An interactive sh expands it.
    const i = await runBox(mode, { workspace: ws, cmd: ['/bin/sh', '-i'], input: 'exit\n' });
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stderr, new RegExp(`\\[latchgate\\] ${testUser().name}@latchgate:${ws}\\$ `));
  });
}

test('[root] git in a root-owned workspace commits as root\'s own identity (the launcher\'s HOME); host git reads nothing the agent wrote there', { skip: skipReason('root') }, async () => {
  const ws = rootWorkspace();
  const git = (...args) => execFileSync('git', ['-C', ws, ...args], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent', GIT_CONFIG_NOSYSTEM: '1' } });
  git('init', '-q', '-b', 'main');
  // What an earlier box could have left: the repository's config including a FIFO, which would hold a git
  // that reads it (as root) until the launcher's timeout, and then give the box no identity.
  execFileSync('mkfifo', [path.join(ws, 'hold.fifo')]);
  git('config', 'include.path', path.join(ws, 'hold.fifo'));
  const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-roothome-'));
  scratch.push(home);
  writeFileSync(path.join(home, '.gitconfig'), '[user]\n\tname = Root Operator\n\temail = root@example.test\n[credential]\n\thelper = store\n');
  const r = await runBox('root', {
    workspace: ws,
    env: { HOME: home },
    cmd: ['/bin/sh', '-c', 'git config --global --get user.name; git config --global --get credential.helper; echo "helper=$?"'],
  });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /did not answer/, 'host git did not read the workspace');
  assert.match(r.stdout, /^Root Operator$/m, r.stdout + r.stderr);
  assert.match(r.stdout, /^helper=1$/m, 'the credential helper is not carried');
});
