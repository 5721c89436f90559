// Placeholders: created for missing protected paths and marked with an
// xattr; shared by the boxes on one workspace (a shared flock on each
// writable root); removed by the last box out, only when still marked and
// still empty.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, closeSync, constants as fsc, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, rmdirSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { constants as osc, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PLACEHOLDER_XATTR, Placeholders } from '../../dist/sandbox/placeholders.js';
import { protectedPathsFor } from '../../dist/sandbox/protected-paths.js';
import { LaunchError } from '../../dist/core/errors.js';
import { LOCK, loadAddon } from '../../dist/native/addon.js';
import { assertLaunchError, isRoot, tempDir } from '../fixtures/unit/helpers.mjs';
import { rootTargets, snapshot, startRacer } from '../helpers/racer.mjs';

const addon = loadAddon();
const file = (path) => ({ action: 'placeholder', path, type: 'file' });
const dir = (path) => ({ action: 'placeholder', path, type: 'dir' });
const marked = (path) => addon.getXattr(path, PLACEHOLDER_XATTR) !== null;
const mark = (path) => assert.equal(addon.setXattr(path, PLACEHOLDER_XATTR, '1'), 0, `cannot mark ${path}`);

/** Whether the temporary filesystem keeps user xattrs (the marks need them). */
const xattrs = (() => {
  const d = mkdtempSync(join(tmpdir(), 'latchgate-xattr-'));
  try {
    return addon.setXattr(d, 'user.latchgate.probe', 'x') === 0 && addon.getXattr(d, 'user.latchgate.probe') === 'x';
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
})();
const needsXattrs = { skip: !xattrs && 'filesystem has no user xattrs' };

/** Another holder of a root's lock: a separate open file description, as another launcher has. */
function holdLock(t, root, op) {
  const fd = openSync(root, fsc.O_RDONLY | fsc.O_DIRECTORY);
  const r = addon.flock(fd, op);
  let open = true;
  const close = () => {
    if (open) closeSync(fd);
    open = false;
  };
  t.after(close);
  return { r, close };
}
/** flock(LOCK_EX | LOCK_NB) on a fresh descriptor of root, let go at once: 0 when nobody holds a lock. */
function tryExclusive(root) {
  const fd = openSync(root, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    return addon.flock(fd, LOCK.EX | LOCK.NB);
  } finally {
    closeSync(fd);
  }
}
const unlocked = (root) => tryExclusive(root) === 0;

test('creates missing files and directories, with missing parents, marks them and removes them all', (t) => {
  const root = tempDir(t);
  const p = new Placeholders();
  p.lock([root]);
  p.create([
    file(join(root, '.bashrc')),
    dir(join(root, '.vscode')),
    dir(join(root, '.claude/commands')),
    file(join(root, '.claude/settings.json')),
    file(join(root, 'a/b/c/deep.json')),
    { action: 'mask-symlink', path: join(root, 'ignored-mask') },
  ]);
  assert.ok(lstatSync(join(root, '.bashrc')).isFile());
  assert.equal(statSync(join(root, '.bashrc')).size, 0);
  assert.ok(lstatSync(join(root, '.vscode')).isDirectory());
  assert.ok(lstatSync(join(root, '.claude')).isDirectory());
  assert.ok(lstatSync(join(root, '.claude/commands')).isDirectory());
  assert.ok(lstatSync(join(root, '.claude/settings.json')).isFile());
  assert.ok(lstatSync(join(root, 'a/b/c/deep.json')).isFile());
  assert.ok(!existsSync(join(root, 'ignored-mask')));
  if (xattrs) {
    for (const rel of ['.bashrc', '.vscode', '.claude', '.claude/commands', '.claude/settings.json', 'a', 'a/b', 'a/b/c', 'a/b/c/deep.json']) {
      assert.equal(addon.getXattr(join(root, rel), PLACEHOLDER_XATTR), '1', `${rel} is not marked`);
    }
    assert.ok(!marked(root), 'the root itself is never marked');
  }
  assert.ok(!unlocked(root), 'the box holds the lock while it runs');
  p.release();
  for (const n of ['.bashrc', '.vscode', '.claude', 'a']) assert.ok(!existsSync(join(root, n)), `${n} left behind`);
  assert.ok(existsSync(root));
  assert.ok(unlocked(root), 'release() lets the lock go');
  p.release(); // a second call is harmless
  assert.ok(existsSync(root));
});

test('works on the actions protectedPathsFor gives for an empty root', (t) => {
  const root = tempDir(t);
  const actions = protectedPathsFor(root, [root]);
  assert.ok(actions.some((a) => a.path === join(root, '.git') && a.action === 'placeholder'), 'the plan has a .git placeholder');
  const p = new Placeholders();
  p.lock([root]);
  p.create(actions);
  for (const a of actions) {
    const st = lstatSync(a.path);
    assert.equal(a.action === 'pin' || a.type === 'dir' ? st.isDirectory() : st.isFile(), true, a.path);
    // Files hold what the plan says: nothing, or an empty JSON document for the JSON configs agents parse.
    if (a.action !== 'pin') assert.ok(a.type === 'dir' ? st.isDirectory() : readFileSync(a.path, 'utf8') === (a.content ?? ''), `${a.path} does not hold ${JSON.stringify(a.content ?? '')}`);
  }
  // Now nothing is missing: the second plan has no placeholders at all.
  assert.deepEqual(protectedPathsFor(root, [root]).filter((a) => a.action === 'placeholder'), []);
  p.release();
  assert.deepEqual(protectedPathsFor(root, [root]), actions);
});

test('never touches what existed before', (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, '.claude'));
  writeFileSync(join(root, '.claude/other'), 'keep');
  mkdirSync(join(root, 'emptydir'));
  const p = new Placeholders();
  p.lock([root]);
  p.create([
    { action: 'pin', path: join(root, '.claude') },
    dir(join(root, '.claude/commands')),
    dir(join(root, 'emptydir/x')),
  ]);
  assert.ok(!marked(join(root, '.claude')), 'an existing pinned directory is not marked');
  assert.ok(!marked(join(root, 'emptydir')), 'an existing parent is not marked');
  p.release();
  assert.ok(existsSync(join(root, '.claude/other')));
  assert.ok(existsSync(join(root, 'emptydir')), 'a pre-existing empty parent stays');
  assert.ok(!existsSync(join(root, '.claude/commands')));
  assert.ok(!existsSync(join(root, 'emptydir/x')));
});

test('an unmarked empty file or directory of the user at a protected path is never removed nor marked', (t) => {
  const root = tempDir(t);
  writeFileSync(join(root, '.bashrc'), '');
  mkdirSync(join(root, '.vscode'));
  mkdirSync(join(root, '.claude'));
  // As read-only actions, the way protectedPathsFor lists them.
  const actions = protectedPathsFor(root, [root]);
  assert.deepEqual(actions.find((a) => a.path === join(root, '.bashrc')), { action: 'readonly', path: join(root, '.bashrc'), type: 'file' });
  assert.deepEqual(actions.find((a) => a.path === join(root, '.vscode')), { action: 'readonly', path: join(root, '.vscode'), type: 'dir' });
  // And as placeholders that appeared between planning and creation (EEXIST).
  writeFileSync(join(root, '.zshrc'), '');
  mkdirSync(join(root, '.idea'));
  const p = new Placeholders();
  p.lock([root]);
  p.create([...actions, file(join(root, '.zshrc')), dir(join(root, '.idea'))]);
  for (const n of ['.bashrc', '.vscode', '.claude', '.zshrc', '.idea']) assert.ok(!marked(join(root, n)), `${n} was marked`);
  p.release();
  for (const n of ['.bashrc', '.zshrc']) assert.equal(statSync(join(root, n)).size, 0, `${n} stays`);
  for (const n of ['.vscode', '.claude', '.idea']) assert.ok(lstatSync(join(root, n)).isDirectory(), `${n} stays`);
  assert.ok(!existsSync(join(root, '.claude/commands')), 'the placeholders below are still removed');
  assert.ok(!existsSync(join(root, '.profile')));
});

test('a non-empty placeholder is kept: a file that got content, a directory that got a file, and its parent', (t) => {
  const root = tempDir(t);
  const p = new Placeholders();
  p.lock([root]);
  p.create([file(join(root, '.bashrc')), dir(join(root, '.claude/commands')), file(join(root, '.zshrc'))]);
  writeFileSync(join(root, '.bashrc'), 'export X=1\n');
  writeFileSync(join(root, '.claude/commands/mine.md'), 'x');
  p.release();
  assert.equal(statSync(join(root, '.bashrc')).size, 11);
  assert.ok(existsSync(join(root, '.claude/commands/mine.md')));
  assert.ok(existsSync(join(root, '.claude')), 'the non-empty parent stays too');
  assert.ok(!existsSync(join(root, '.zshrc')), 'the untouched placeholder is removed');
});

test('a marked leftover that is not empty is adopted and kept', needsXattrs, (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, '.vscode'));
  writeFileSync(join(root, '.vscode/settings.json'), '{}');
  writeFileSync(join(root, '.bashrc'), 'echo\n');
  mark(join(root, '.vscode'));
  mark(join(root, '.bashrc'));
  const p = new Placeholders();
  p.lock([root]);
  p.create(protectedPathsFor(root, [root]));
  p.release();
  assert.ok(existsSync(join(root, '.vscode/settings.json')));
  assert.equal(statSync(join(root, '.bashrc')).size, 5);
});

test('something unmarked put in place of a placeholder is left alone', needsXattrs, (t) => {
  const root = tempDir(t);
  const p = new Placeholders();
  p.lock([root]);
  p.create([file(join(root, '.bashrc')), dir(join(root, '.vscode')), file(join(root, '.profile')), dir(join(root, '.idea'))]);
  // Replace with empty ones of the same type, unmarked.
  writeFileSync(join(root, 'new-rc'), '');
  renameSync(join(root, 'new-rc'), join(root, '.bashrc'));
  mkdirSync(join(root, 'new-dir'));
  renameSync(join(root, 'new-dir'), join(root, '.vscode'));
  // And of the other type.
  mkdirSync(join(root, 'swap'));
  mkdirSync(join(root, 'swap/.profile'));
  renameSync(join(root, '.profile'), join(root, 'old-profile'));
  renameSync(join(root, 'swap/.profile'), join(root, '.profile'));
  assert.ok(!marked(join(root, '.bashrc')) && !marked(join(root, '.vscode')));
  p.release();
  assert.ok(lstatSync(join(root, '.profile')).isDirectory());
  assert.ok(!existsSync(join(root, '.idea')), 'the untouched one is removed');
  assert.ok(existsSync(join(root, '.bashrc')), 'an unmarked empty file in place of the placeholder was removed');
  assert.ok(existsSync(join(root, '.vscode')), 'an unmarked empty directory in place of the placeholder was removed');
});

test('a failure removes what was already created and names the path', (t) => {
  const root = tempDir(t);
  writeFileSync(join(root, 'afile'), 'x');
  const p = new Placeholders();
  p.lock([root]);
  let caught;
  try {
    p.create([dir(join(root, 'new/parent/child')), file(join(root, '.bashrc')), file(join(root, 'afile/under-a-file'))]);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof LaunchError, `${caught}`);
  assert.ok(caught.message.includes(join(root, 'afile/under-a-file')), caught.message);
  assert.ok(!existsSync(join(root, 'new')), 'created parents rolled back');
  assert.ok(!existsSync(join(root, '.bashrc')), 'created file rolled back');
  assert.equal(statSync(join(root, 'afile')).size, 1);
  assert.ok(unlocked(root), 'the lock is let go');
});

test('a root launcher makes them as the owner: theirs without a chown, and removes them as the owner', { skip: !isRoot && 'acting as another uid needs root' }, (t) => {
  const root = tempDir(t);
  chownSync(root, 4321, 4322); // the owner's workspace
  const p = new Placeholders({ uid: 4321, gid: 4322 });
  p.lock([root]);
  p.create([file(join(root, 'x/y/.bashrc')), dir(join(root, '.vscode'))]);
  for (const rel of ['x', 'x/y', 'x/y/.bashrc', '.vscode']) {
    const st = lstatSync(join(root, rel));
    assert.deepEqual([st.uid, st.gid], [4321, 4322], rel);
    if (xattrs) assert.ok(marked(join(root, rel)), `${rel} is not marked`);
  }
  p.release();
  assert.ok(!existsSync(join(root, 'x')));
  assert.ok(!existsSync(join(root, '.vscode')));
});

test('where the owner may not write: as root if only root controls the way there, else a clear error and nothing left', { skip: !isRoot && 'acting as another uid needs root' }, (t) => {
  // A root-owned workspace handed to another uid (e.g. nobody), in /tmp: only root can change the way there.
  const trusted = tempDir(t);
  const p = new Placeholders({ uid: 4321, gid: 4322 });
  p.lock([trusted]);
  p.create([file(join(trusted, '.claude/settings.json')), dir(join(trusted, '.vscode'))]);
  for (const rel of ['.claude', '.claude/settings.json', '.vscode']) assert.equal(lstatSync(join(trusted, rel)).uid, 0, rel);
  p.release();
  assert.deepEqual(readdirSync(trusted), [], 'removed as root too');
  // The same, but below a directory the owner controls: they could swap the way there.
  const theirs = tempDir(t);
  chownSync(theirs, 4321, 4322);
  const ws = join(theirs, 'ws');
  mkdirSync(ws, { mode: 0o755 });
  const q = new Placeholders({ uid: 4321, gid: 4322 });
  q.lock([ws]);
  assertLaunchError(() => q.create([dir(join(ws, '.vscode')), file(join(ws, '.bashrc'))]), LaunchError, join(ws, '.vscode'), 'as uid 4321', 'EACCES');
  assert.deepEqual(readdirSync(ws), []);
  assert.ok(unlocked(ws), 'the lock is let go');
});

test('marks are read and set on the path itself, never through a symlink', needsXattrs, (t) => {
  const root = tempDir(t);
  const outside = tempDir(t);
  writeFileSync(join(outside, 'marked'), '');
  mark(join(outside, 'marked'));
  symlinkSync(join(outside, 'marked'), join(root, '.bashrc'));
  assert.equal(addon.getXattr(join(root, '.bashrc'), PLACEHOLDER_XATTR), null, 'getXattr followed the symlink');
  assert.notEqual(addon.setXattr(join(root, '.bashrc'), 'user.latchgate.other', '1'), 0, 'setXattr on a symlink');
  assert.equal(addon.getXattr(join(outside, 'marked'), 'user.latchgate.other'), null, 'setXattr followed the symlink');
  // So a symlink at a placeholder's path is neither adopted nor removed.
  const p = new Placeholders();
  p.lock([root]);
  p.create([file(join(root, '.bashrc'))]);
  p.release();
  assert.ok(lstatSync(join(root, '.bashrc')).isSymbolicLink());
  assert.ok(existsSync(join(outside, 'marked')));
});

test('a racer of the owner\'s uid swapping symlinks into the placeholder paths: root\'s files outside never change', { skip: !isRoot && 'the attack is on a root launcher' }, async (t) => {
  const OWNER = { uid: 4321, gid: 4322 };
  const root = tempDir(t);
  chownSync(root, OWNER.uid, OWNER.gid);
  const targets = rootTargets(tempDir(t, 'latchgate-outside-'));
  const before = snapshot(targets.outside);
  const actions = protectedPathsFor(root, [root]).filter((a) => a.action === 'placeholder' || a.action === 'pin');
  const racer = await startRacer(OWNER, {
    workspaces: [root],
    files: ['.bashrc', '.profile', '.zshrc', '.mcp.json', '.claude/settings.json'],
    dirs: ['.claude', '.vscode', '.idea', '.git', '.claude/commands'],
    fileTarget: targets.fileTarget,
    dirTarget: targets.dirTarget,
  });
  t.after(racer.kill);
  let created = 0;
  const refused = [];
  // Until the racer has swapped enough (it may be slow to get the CPU), within a bound.
  for (let i = 0; i < 5000 && (i < 200 || racer.counts.file < 20 || racer.counts.dir < 20); i++) {
    const p = new Placeholders(OWNER);
    p.lock([root]);
    try {
      p.create(actions);
      created++;
    } catch (e) {
      refused.push(e);
    }
    p.release();
    if (i % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  const swaps = await racer.stop();
  t.diagnostic(`racer swaps ${JSON.stringify(swaps)}; placeholders created ${created} times, refused ${refused.length}`);
  assert.ok(swaps.file > 0 && swaps.dir > 0, `the racer never got to swap: ${JSON.stringify(swaps)}`);
  assert.deepEqual(snapshot(targets.outside), before, 'a root-owned file or directory outside the workspace changed');
  // Everything in the workspace is the owner's: the launcher made nothing as root.
  const rootOwned = Object.entries(snapshot(root)).filter(([p, st]) => p !== root && st.uid !== OWNER.uid);
  assert.deepEqual(rootOwned, []);
  // Refusals are clear: the path, and whom the launcher acted as.
  for (const e of refused) {
    assert.ok(e instanceof LaunchError, `not a LaunchError: ${e}`);
    assert.match(e.message, /^cannot create the read-only placeholder \S+ as uid 4321, whom the box runs as .*: E[A-Z]+/);
  }
});

test('two boxes on one workspace: the placeholders stay until the last one is done', needsXattrs, (t) => {
  const root = tempDir(t);
  const other = tempDir(t); // a second writable root
  const actions = [...protectedPathsFor(root, [root, other]), ...protectedPathsFor(other, [root, other])];
  const a = new Placeholders();
  const b = new Placeholders();
  a.lock([root, other]);
  b.lock([root, other]); // shared: does not wait for a
  a.create(actions);
  b.create(actions); // adopts a's
  for (const x of actions) assert.ok(marked(x.path), `${x.path} is not marked`);
  a.release();
  for (const x of actions) assert.ok(existsSync(x.path), `${x.path} was removed while the other box runs`);
  assert.ok(!unlocked(root) && !unlocked(other), 'the second box still holds its locks');
  b.release();
  for (const x of actions) assert.ok(!existsSync(x.path), `${x.path} left behind`);
  assert.deepEqual(protectedPathsFor(root, [root, other]), actions.filter((x) => x.path.startsWith(`${root}/`)));
  assert.ok(unlocked(root) && unlocked(other));
});

test('two boxes on one workspace, the second planned while the first runs: it protects, and in the end removes, everything', needsXattrs, (t) => {
  // The launcher plans before it locks: the second box sees the first one's
  // placeholders as existing paths.
  const root = tempDir(t);
  const plan1 = protectedPathsFor(root, [root]);
  const a = new Placeholders();
  a.lock([root]);
  a.create(plan1);
  const plan2 = protectedPathsFor(root, [root]);
  const b = new Placeholders();
  b.lock([root]);
  b.create(plan2);
  for (const x of plan1) {
    const y = plan2.find((z) => z.path === x.path);
    const ok = x.action === 'pin' ? y?.action === 'pin' : y?.action === 'readonly' && y.type === x.type;
    assert.ok(ok, `the second box leaves ${x.path} writable (first: ${JSON.stringify(x)}, second: ${JSON.stringify(y)})`);
  }
  a.release();
  for (const x of plan1) assert.ok(existsSync(x.path), `${x.path} was removed while the other box runs`);
  b.release();
  for (const x of plan1) assert.ok(!existsSync(x.path), `${x.path} left behind`);
});

test('a marked leftover (a killed launcher\'s) is adopted and removed', needsXattrs, (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, '.claude/commands'), { recursive: true });
  mkdirSync(join(root, '.vscode'));
  writeFileSync(join(root, '.bashrc'), '');
  for (const rel of ['.claude', '.claude/commands', '.vscode', '.bashrc']) mark(join(root, rel));
  writeFileSync(join(root, '.zshrc'), ''); // the user's own, unmarked
  const plan = protectedPathsFor(root, [root]);
  assert.deepEqual(plan.find((a) => a.path === join(root, '.vscode')), { action: 'readonly', path: join(root, '.vscode'), type: 'dir' });
  assert.deepEqual(plan.find((a) => a.path === join(root, '.bashrc')), { action: 'readonly', path: join(root, '.bashrc'), type: 'file' });
  const p = new Placeholders();
  p.lock([root]);
  p.create(plan);
  p.release();
  for (const rel of ['.claude', '.vscode', '.bashrc']) assert.ok(!existsSync(join(root, rel)), `${rel} left behind`);
  assert.equal(statSync(join(root, '.zshrc')).size, 0, 'the unmarked one stays');
});

test('a read-only or pinned path that vanished before creation is recreated, marked, and removed at release', needsXattrs, (t) => {
  // E.g. another box's placeholders, seen when planning, removed by it before this box locked.
  const root = tempDir(t);
  mkdirSync(join(root, '.claude/commands'), { recursive: true });
  mkdirSync(join(root, '.vscode'));
  writeFileSync(join(root, '.bashrc'), '');
  writeFileSync(join(root, '.mcp.json'), '{}'); // stays
  const plan = protectedPathsFor(root, [root]);
  const byPath = Object.fromEntries(plan.map((a) => [a.path, a]));
  assert.deepEqual(byPath[join(root, '.claude')], { action: 'pin', path: join(root, '.claude') });
  assert.deepEqual(byPath[join(root, '.claude/commands')], { action: 'readonly', path: join(root, '.claude/commands'), type: 'dir' });
  assert.deepEqual(byPath[join(root, '.vscode')], { action: 'readonly', path: join(root, '.vscode'), type: 'dir' });
  assert.deepEqual(byPath[join(root, '.bashrc')], { action: 'readonly', path: join(root, '.bashrc'), type: 'file' });
  rmdirSync(join(root, '.claude/commands'));
  rmdirSync(join(root, '.claude'));
  rmdirSync(join(root, '.vscode'));
  unlinkSync(join(root, '.bashrc'));
  const p = new Placeholders();
  p.lock([root]);
  p.create(plan);
  for (const rel of ['.claude', '.claude/commands', '.vscode']) {
    assert.ok(lstatSync(join(root, rel)).isDirectory(), rel);
    assert.ok(marked(join(root, rel)), `${rel} is not marked`);
  }
  assert.ok(lstatSync(join(root, '.bashrc')).isFile());
  assert.equal(statSync(join(root, '.bashrc')).size, 0);
  assert.ok(marked(join(root, '.bashrc')));
  assert.ok(!marked(join(root, '.mcp.json')), 'an existing one is not marked');
  p.release();
  for (const rel of ['.claude', '.vscode', '.bashrc']) assert.ok(!existsSync(join(root, rel)), `${rel} left behind`);
  assert.equal(statSync(join(root, '.mcp.json')).size, 2);
});

test('release() while another box holds a lock removes nothing; the next box out does', needsXattrs, (t) => {
  const root = tempDir(t);
  const other = tempDir(t);
  const actions = [...protectedPathsFor(root, [root, other]), ...protectedPathsFor(other, [root, other])];
  const p = new Placeholders();
  p.lock([root, other]);
  p.create(actions);
  // Another launcher holds only the second root: no removal in either.
  const elsewhere = holdLock(t, other, LOCK.SH);
  assert.equal(elsewhere.r, 0);
  p.release();
  for (const x of actions) assert.ok(existsSync(x.path), `${x.path} was removed`);
  assert.ok(unlocked(root), 'the locks are let go all the same');
  assert.equal(tryExclusive(other), -osc.errno.EWOULDBLOCK, 'the other launcher keeps its lock');
  elsewhere.close();
  // The next launcher adopts them and, alone now, removes them.
  const q = new Placeholders();
  q.lock([root, other]);
  q.create(actions);
  q.release();
  for (const x of actions) assert.ok(!existsSync(x.path), `${x.path} left behind`);
});

test('lock() waits while another launcher holds the lock exclusively (cleaning up)', async (t) => {
  const root = tempDir(t);
  const addonUrl = new URL('../../dist/native/addon.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    import { openSync, writeFileSync, constants } from 'node:fs';
    import { LOCK, loadAddon } from ${JSON.stringify(addonUrl)};
    const root = ${JSON.stringify(root)};
    const fd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
    if (loadAddon().flock(fd, LOCK.EX) !== 0) process.exit(2);
    process.stdout.write('locked\\n');
    setTimeout(() => { writeFileSync(root + '/cleaned', ''); process.exit(0); }, 150);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const [chunk] = await once(child.stdout, 'data');
  assert.equal(String(chunk), 'locked\n');
  const p = new Placeholders();
  p.lock([root]); // blocks until the child exits
  assert.ok(existsSync(join(root, 'cleaned')), 'lock() returned while the other launcher still held it');
  p.release();
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
});
