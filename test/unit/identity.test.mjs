// resolveIdentity: who the agent is inside the box (never uid 0), and the
// box's /etc/passwd and /etc/group.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { NOBODY, accessibleBy, parsePasswd, renderGroup, renderPasswd, resolveIdentity } from '../../dist/sandbox/identity.js';
import { isRoot, tempDir } from '../fixtures/unit/helpers.mjs';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/bash',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  'bin:x:2:2:bin:/bin:/usr/sbin/nologin',
  '# a comment:x:3:3:c:/c:/bin/sh',
  'alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash',
  'bob:x:1001:1001:Bob:/srv/bob:/usr/bin/definitely-not-a-shell',
  'carol:x:1002:0:Carol:/:/bin/bash',
  'dave:x:1003:1003:Dave:/nonexistent:/bin/bash',
  'erin:x:1004:1004:Erin:relative/home:/bin/bash',
  'broken:x:notanumber:1:x:/x:/bin/sh',
  'short:x:1005',
  'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
  '',
].join('\n');

const GROUP = ['root:x:0:', 'daemon:x:1:', 'alice:x:1000:', 'bobs:x:1001:', 'staff:x:50:alice', 'nogroup:x:65534:', ''].join('\n');

const host = (over = {}) => ({
  uid: 1000,
  gid: 1000,
  env: {},
  passwd: PASSWD,
  group: GROUP,
  workspaceOwner: { uid: 1000, gid: 1000 },
  ...over,
});

function assertNeverRoot(id) {
  assert.notEqual(id.uid, 0, 'uid 0 inside the box');
  assert.notEqual(id.gid, 0, 'gid 0 inside the box');
  assert.equal(id.uidMap, `${id.uid} ${id.uid} 1\n`);
  assert.equal(id.gidMap, `${id.gid} ${id.gid} 1\n`);
}

test('parsePasswd skips comments, short and malformed lines', () => {
  const names = parsePasswd(PASSWD).map((e) => e.name);
  assert.deepEqual(names, ['root', 'daemon', 'bin', 'alice', 'bob', 'carol', 'dave', 'erin', 'nobody']);
  assert.deepEqual(parsePasswd(PASSWD)[3], { name: 'alice', uid: 1000, gid: 1000, home: '/home/alice', shell: '/bin/bash' });
});

test('a normal user keeps their own uid and gid', () => {
  const id = resolveIdentity(host());
  assert.equal(id.hostUid, 1000);
  assert.equal(id.uid, 1000);
  assert.equal(id.gid, 1000);
  assert.equal(id.user, 'alice');
  assert.equal(id.group, 'alice');
  assert.equal(id.home, '/home/alice');
  assert.equal(id.source, 'self');
  assert.equal(id.uidMap, '1000 1000 1\n');
  assert.equal(id.gidMap, '1000 1000 1\n');
  assert.equal(id.setgroupsDeny, true);
  assert.equal(id.dropGroups, false);
  assert.equal(id.shell, existsSync('/bin/bash') ? '/bin/bash' : '/bin/sh');
});

test('a normal user keeps their own ids even when the workspace is someone else\'s or SUDO_UID is set', () => {
  const id = resolveIdentity(host({ uid: 1001, gid: 1001, env: { SUDO_UID: '1000' }, workspaceOwner: { uid: 0, gid: 0 } }));
  assert.equal(id.uid, 1001);
  assert.equal(id.gid, 1001);
  assert.equal(id.source, 'self');
  assert.equal(id.group, 'bobs');
});

test('a user missing from passwd gets a synthetic name and home', () => {
  const id = resolveIdentity(host({ uid: 4242, gid: 4343 }));
  assert.equal(id.uid, 4242);
  assert.equal(id.gid, 4343);
  assert.equal(id.user, 'user4242');
  assert.equal(id.group, 'user4242');
  assert.equal(id.home, '/home/user4242');
  assert.equal(id.shell, '/bin/sh');
});

test('root hands the box to SUDO_UID / SUDO_GID', () => {
  const id = resolveIdentity(host({ uid: 0, gid: 0, env: { SUDO_UID: '1000', SUDO_GID: '50' }, workspaceOwner: { uid: 0, gid: 0 } }));
  assert.equal(id.hostUid, 0);
  assert.equal(id.uid, 1000);
  assert.equal(id.gid, 50);
  assert.equal(id.group, 'staff');
  assert.equal(id.user, 'alice');
  assert.equal(id.source, 'sudo');
  assert.equal(id.dropGroups, true);
  assert.equal(id.setgroupsDeny, false);
  assertNeverRoot(id);
});

test('root with SUDO_UID only takes the gid from passwd', () => {
  const id = resolveIdentity(host({ uid: 0, gid: 0, env: { SUDO_UID: '1000' }, workspaceOwner: { uid: 1001, gid: 1001 } }));
  assert.equal(id.uid, 1000);
  assert.equal(id.gid, 1000);
  assert.equal(id.source, 'sudo');
});

test('root without SUDO_UID hands the box to the workspace owner', () => {
  const id = resolveIdentity(host({ uid: 0, gid: 0, workspaceOwner: { uid: 1001, gid: 1001 } }));
  assert.equal(id.uid, 1001);
  assert.equal(id.gid, 1001);
  assert.equal(id.user, 'bob');
  assert.equal(id.source, 'workspace-owner');
  assert.equal(id.dropGroups, true);
  assert.equal(id.setgroupsDeny, false);
  assert.equal(id.home, '/srv/bob');
  assert.equal(id.shell, '/bin/sh', 'a shell missing from the host falls back to /bin/sh');
  assertNeverRoot(id);
});

test('root with a root-owned workspace runs the box as nobody, the workspace\'s owner idmapped onto it', () => {
  const id = resolveIdentity(host({ uid: 0, gid: 0, workspaceOwner: { uid: 0, gid: 50 } }));
  assert.equal(id.uid, NOBODY);
  assert.equal(id.gid, NOBODY);
  assert.equal(id.user, 'nobody');
  assert.equal(id.group, 'nogroup');
  assert.equal(id.source, 'root-workspace');
  assert.equal(id.home, '/home/nobody', '/nonexistent is not a usable home');
  assertNeverRoot(id);
  // Through the mount, disk uid 0 (gid 50) is nobody (nogroup); the trees are the plan's.
  assert.deepEqual(id.idmap, { hostUid: 0, hostGid: 50, uidMap: `0 ${NOBODY} 1\n`, gidMap: `50 ${NOBODY} 1\n`, trees: [] });
  // nobody's login shell lets no one in: a box without a command gets /bin/sh.
  assert.equal(id.shell, '/bin/sh');
  assert.equal(id.shellReplaced, '/usr/sbin/nologin');
  assert.match(renderPasswd(id), /^nobody:x:65534:65534:nobody:\/home\/nobody:\/bin\/sh$/m);
});

test('no idmap when root hands the box to SUDO_UID or to the workspace\'s owner, nor for a normal user', () => {
  for (const h of [host(), host({ uid: 0, gid: 0, env: { SUDO_UID: '1000' }, workspaceOwner: { uid: 0, gid: 0 } }), host({ uid: 0, gid: 0, workspaceOwner: { uid: 1000, gid: 1000 } })]) {
    assert.equal(resolveIdentity(h).idmap, null, JSON.stringify(h.env));
  }
});

test('a login shell that lets no one in (nologin, false) is replaced by /bin/sh; a real one is kept', () => {
  const shellOf = (shell) => resolveIdentity(host({ passwd: `alice:x:1000:1000:Alice:/home/alice:${shell}\n` }));
  for (const shell of ['/usr/sbin/nologin', '/sbin/nologin', '/bin/false', '/usr/bin/false']) {
    if (!existsSync(shell)) continue;
    assert.equal(shellOf(shell).shell, '/bin/sh', shell);
    assert.equal(shellOf(shell).shellReplaced, shell);
  }
  assert.ok(existsSync('/usr/sbin/nologin') || existsSync('/bin/false'), 'the host has no nologin or false to try');
  assert.equal(shellOf('/bin/sh').shell, '/bin/sh');
  assert.equal(shellOf('/bin/sh').shellReplaced, undefined);
  assert.equal(shellOf('/usr/bin/no-such-shell').shell, '/bin/sh', 'missing');
  assert.equal(shellOf('/usr/bin/no-such-shell').shellReplaced, '/usr/bin/no-such-shell');
});

test('never uid or gid 0, whatever the host says', () => {
  const cases = [
    host({ uid: 0, gid: 0, env: { SUDO_UID: '0', SUDO_GID: '0' }, workspaceOwner: { uid: 0, gid: 0 } }),
    host({ uid: 0, gid: 0, env: { SUDO_UID: '0' }, workspaceOwner: { uid: 1001, gid: 0 } }),
    host({ uid: 0, gid: 0, env: { SUDO_UID: '1002' }, workspaceOwner: { uid: 0, gid: 0 } }), // carol: passwd gid 0
    host({ uid: 0, gid: 0, env: { SUDO_UID: '1000', SUDO_GID: '0' } }),
    host({ uid: 0, gid: 0, workspaceOwner: { uid: 1002, gid: 0 } }),
    host({ uid: 0, gid: 0, env: { SUDO_UID: '-1' }, workspaceOwner: { uid: 0, gid: 0 } }),
    host({ uid: 0, gid: 0, env: { SUDO_UID: '00' }, workspaceOwner: { uid: 0, gid: 0 } }),
    host({ uid: 0, gid: 0, env: { SUDO_UID: ' 1000' }, workspaceOwner: { uid: 0, gid: 0 } }),
    host({ uid: 0, gid: 0, env: { SUDO_UID: '4294967295' }, workspaceOwner: { uid: 0, gid: 0 } }),
    host({ uid: 0, gid: 0, env: { SUDO_UID: '1e3' }, workspaceOwner: { uid: 0, gid: 0 } }),
    host({ uid: 0, gid: 0, env: { SUDO_UID: '' }, workspaceOwner: { uid: 0, gid: 0 } }),
    host({ uid: 1000, gid: 0 }),
  ];
  for (const h of cases) {
    const id = resolveIdentity(h);
    assertNeverRoot(id);
    assert.ok(!renderPasswd(id).split('\n').slice(1).some((l) => /^[^:]*:x:0:/.test(l)), 'only root has uid 0');
  }
  // SUDO_UID=0 does not count: the workspace owner does.
  assert.equal(resolveIdentity(cases[1]).uid, 1001);
  assert.equal(resolveIdentity(cases[1]).source, 'workspace-owner');
  // carol's passwd gid is 0: she gets her own uid as gid.
  assert.equal(resolveIdentity(cases[2]).gid, 1002);
  assert.equal(resolveIdentity(cases[4]).gid, 1002);
  // Malformed SUDO_UID values are ignored.
  for (const i of [5, 6, 7, 8, 9, 10]) assert.equal(resolveIdentity(cases[i]).source, 'root-workspace', JSON.stringify(cases[i].env));
});

test('home comes from passwd, with /home/<name> for unusable ones', () => {
  const as = (uid) => resolveIdentity(host({ uid, gid: uid }));
  assert.equal(as(1000).home, '/home/alice');
  assert.equal(as(1001).home, '/srv/bob');
  assert.equal(as(1002).home, '/home/carol', '"/" is not a home');
  assert.equal(as(1003).home, '/home/dave', '"/nonexistent" is not a home');
  assert.equal(as(1004).home, '/home/erin', 'a relative home is not a home');
  assert.equal(resolveIdentity(host({ uid: 2, gid: 2 })).home, '/home/bin', '/bin is a system tree');
  assert.equal(resolveIdentity(host({ uid: 1, gid: 1 })).home, '/home/daemon', '/usr/sbin is a system tree');
});

function passwdLines(text) {
  assert.ok(text.endsWith('\n'));
  return text.slice(0, -1).split('\n').map((l) => l.split(':'));
}

test('renderPasswd and renderGroup hold root, the user and nobody only', () => {
  const id = resolveIdentity(host({ uid: 0, gid: 0, env: { SUDO_UID: '1000', SUDO_GID: '50' } }));
  const pw = passwdLines(renderPasswd(id));
  assert.deepEqual(pw.map((f) => f[0]), ['root', 'alice', 'nobody']);
  assert.ok(pw.every((f) => f.length === 7));
  assert.deepEqual(pw[1], ['alice', 'x', '1000', '50', 'alice', '/home/alice', id.shell]);
  assert.deepEqual(pw[0].slice(2, 4), ['0', '0']);
  assert.deepEqual(pw[2].slice(2, 4), ['65534', '65534']);
  assert.notEqual(pw[0][6], '/bin/bash', 'root has no login shell in the box');
  const gr = passwdLines(renderGroup(id));
  assert.deepEqual(gr.map((f) => f[0]), ['root', 'staff', 'nogroup']);
  assert.deepEqual(gr[1], ['staff', 'x', '50', '']);
  for (const secret of ['daemon', 'bob', 'carol', 'dave', 'erin', 'bobs']) {
    assert.ok(!renderPasswd(id).includes(secret) && !renderGroup(id).includes(secret), secret);
  }
});

test('renderPasswd for nobody has no duplicate entry and gives nobody the box home', () => {
  const id = resolveIdentity(host({ uid: 0, gid: 0, workspaceOwner: { uid: 0, gid: 0 } }));
  const pw = passwdLines(renderPasswd(id));
  assert.deepEqual(pw.map((f) => f[0]), ['root', 'nobody']);
  assert.equal(pw[1][5], id.home);
  assert.deepEqual(passwdLines(renderGroup(id)).map((f) => f[0]), ['root', 'nogroup']);
});

test('renderPasswd for a user without a passwd entry', () => {
  const id = resolveIdentity(host({ uid: 4242, gid: 4242, passwd: '', group: '' }));
  const pw = passwdLines(renderPasswd(id));
  assert.deepEqual(pw.map((f) => f[0]), ['root', 'user4242', 'nobody']);
  assert.deepEqual(passwdLines(renderGroup(id)).map((f) => f.slice(0, 3).join(':')), ['root:x:0', 'user4242:x:4242', 'nogroup:x:65534']);
});

test('accessibleBy follows the owner/group/other class on the path and its ancestors', (t) => {
  const base = tempDir(t);
  // The current user owns base; compute for others (uid 0 bypasses bits in the
  // kernel, but accessibleBy is about the agent's uid, so use non-root ids).
  const me = process.getuid();
  const other = me === 4001 ? 4002 : 4001;
  const dir = join(base, 'd');
  mkdirSync(dir);
  const file = join(dir, 'f');
  mkdirSync(file); // a directory works as well as a file for the bits

  chmodSync(dir, 0o755);
  chmodSync(file, 0o755);
  assert.equal(accessibleBy(file, other, other, { read: true }), true);
  assert.equal(accessibleBy(file, other, other, { write: true }), false);
  assert.equal(accessibleBy(file, me, process.getgid(), { read: true, write: true }), true);

  chmodSync(dir, 0o754); // others may list but not search the parent
  assert.equal(accessibleBy(file, other, other, { read: true }), false);
  assert.equal(accessibleBy(dir, other, other, {}), false, 'no search bit on the path itself');
  chmodSync(dir, 0o711); // search only
  assert.equal(accessibleBy(file, other, other, { read: true }), true);
  assert.equal(accessibleBy(dir, other, other, { read: true }), false);

  chmodSync(dir, 0o755);
  chmodSync(file, 0o700);
  assert.equal(accessibleBy(file, other, other, { read: true }), false);
  chmodSync(file, 0o707);
  assert.equal(accessibleBy(file, other, other, { read: true, write: true }), true);

  if (isRoot) {
    // Owner and group classes, as the kernel picks them: the first match wins.
    chownSync(file, other, 4100);
    chmodSync(file, 0o070);
    assert.equal(accessibleBy(file, other, 4100, { read: true }), false, 'owner class has no bits, group class is not consulted');
    assert.equal(accessibleBy(file, 4003, 4100, { read: true, write: true }), true, 'group class');
    assert.equal(accessibleBy(file, 4003, 4101, { read: true }), false, 'other class');
    chmodSync(file, 0o500);
    assert.equal(accessibleBy(file, other, 4100, { read: true }), true);
    assert.equal(accessibleBy(file, other, 4100, { read: true, write: true }), false);
    chownSync(dir, 4005, 4005);
    chmodSync(dir, 0o700);
    assert.equal(accessibleBy(file, other, 4100, { read: true }), false, 'parent owned by someone else, mode 0700');
    chownSync(dir, other, 4005);
    assert.equal(accessibleBy(file, other, 4100, { read: true }), true, 'parent owned by the agent');
  }
});
