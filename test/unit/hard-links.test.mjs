// Hard links to latchgate's own files (src/sandbox/hard-links.ts,
// refuseLinkedInstall in latchgate-in-box.ts): the box keeps the
// installation read-only by path, so another name of one of its files in a
// writable mount would let the box rewrite what the host runs next. Such a
// launch is refused; an installation whose files have one link each, or
// whose other links are in the installation itself or on a filesystem no
// writable mount is on, starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, linkSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LaunchError } from '../../dist/core/errors.js';
import { latchgateInBox, refuseLinkedInstall } from '../../dist/sandbox/latchgate-in-box.js';
import { mountPoints, writableFilesystems } from '../../dist/sandbox/hard-links.js';
import { loadAddon } from '../../dist/native/addon.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const isRoot = process.getuid() === 0;

/** A clone-like installation at dir/pkg (package.json, dist/, a linked dependency, an addon built by node-gyp) and a Node binary at dir/node/node. */
function install(dir) {
  const root = join(dir, 'pkg');
  for (const d of ['dist/cli', 'node_modules', 'vendor/linked', 'build/Release/obj.target']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'package.json'), '{"name":"latchgate","type":"module"}');
  writeFileSync(join(root, 'dist/cli/main.js'), 'console.log("latchgate")\n');
  writeFileSync(join(root, 'vendor/linked/index.js'), 'export {}\n');
  symlinkSync('../vendor/linked', join(root, 'node_modules', 'linked'));
  // node-gyp "copies" its product by a hard link: both names are in the installation.
  writeFileSync(join(root, 'build/Release/obj.target/addon.node'), 'addon');
  linkSync(join(root, 'build/Release/obj.target/addon.node'), join(root, 'build/Release/addon.node'));
  const node = join(dir, 'node', 'node');
  mkdirSync(dirname(node));
  writeFileSync(node, '#!/bin/sh\n', { mode: 0o755 }); // stands for Node: only its links count here
  return { root, node, main: join(root, 'dist/cli/main.js'), self: latchgateInBox([], {}, root, node) };
}

const refused = (...names) => (e) => e instanceof LaunchError && e.exitCode === 125 && names.every((n) => e.message.includes(n));

/** A tmpfs mounted at a fresh directory, unmounted after the test. */
function tmpfs(t) {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'latchgate-unit-')));
  const at = join(dir, 'fs');
  mkdirSync(at);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'latchgate-test', at]);
  t.after(() => {
    execFileSync('umount', [at]);
    rmSync(dir, { recursive: true, force: true });
  });
  return at;
}

test('an installation file hard-linked from a writable mount is refused, naming the file, its links, the mount and the fix', async (t) => {
  const { self, main } = install(tempDir(t));
  const rw = tempDir(t);
  linkSync(main, join(rw, 'alias.js'));
  // What the box would do through the writable name: the host's file changes.
  writeFileSync(join(rw, 'alias.js'), 'console.log("planted")\n');
  assert.equal(readFileSync(main, 'utf8'), 'console.log("planted")\n');
  await assert.rejects(refuseLinkedInstall(self, [rw]), refused(main, '(2 links, 1 of them in it)', rw, 'npm install -g latchgate', 'another filesystem', '--trust-linked-install'));
  // Whichever writable mount holds the other name: the workspace counts as much as --rw.
  await assert.rejects(refuseLinkedInstall(self, [tempDir(t), rw]), refused(main));
});

test('the same installation without links outside it starts: one link each, or both names of node-gyp\'s addon in it', async (t) => {
  const { self, root } = install(tempDir(t));
  assert.equal(statSync(join(root, 'build/Release/addon.node')).nlink, 2);
  await assert.doesNotReject(refuseLinkedInstall(self, [tempDir(t)]));
  // The installation as the workspace: its files are its own, read-only in the box.
  await assert.doesNotReject(refuseLinkedInstall(self, [root]));
});

test('the Node binary and a linked dependency are latchgate\'s own files too', async (t) => {
  const a = install(tempDir(t));
  const rw = tempDir(t);
  linkSync(a.node, join(rw, 'node'));
  await assert.rejects(refuseLinkedInstall(a.self, [rw]), refused(a.node, rw));
  const b = install(tempDir(t));
  const dep = join(b.root, 'vendor/linked/index.js');
  linkSync(dep, join(rw, 'dep.js'));
  await assert.rejects(refuseLinkedInstall(b.self, [rw]), refused(dep, rw));
});

test('a hard link inside the workspace that holds the installation, outside its own paths, is refused', async (t) => {
  const { self, root, main } = install(tempDir(t));
  mkdirSync(join(root, 'notes'));
  linkSync(main, join(root, 'notes', 'main.js'));
  await assert.rejects(refuseLinkedInstall(self, [root]), refused(main, root));
});

test('a link from a writable mount inside the installation is not one of the installation\'s own names', async (t) => {
  const { self, root, main } = install(tempDir(t));
  const cache = join(root, 'node_modules', 'cache');
  mkdirSync(cache);
  linkSync(main, join(cache, 'main.js'));
  await assert.rejects(refuseLinkedInstall(self, [cache]), refused(`${main} (2 links, 1 of them in it)`, cache));
});

test('links whose other names lie on a filesystem no writable mount is on are accepted; a writable mount on it, or one holding it, is refused', { skip: isRoot ? undefined : 'needs root to mount a tmpfs' }, async (t) => {
  const fs = tmpfs(t);
  const { self, main } = install(fs);
  mkdirSync(join(fs, 'store'));
  linkSync(main, join(fs, 'store', 'main.js')); // as pnpm's content store would
  const elsewhere = tempDir(t);
  assert.notEqual(statSync(elsewhere).dev, statSync(main).dev);
  await assert.doesNotReject(refuseLinkedInstall(self, [elsewhere]));
  await assert.rejects(refuseLinkedInstall(self, [join(fs, 'store')]), refused(main, join(fs, 'store')));
  // A writable mount that holds the tmpfs's mount point: the box gets the tmpfs with it.
  const above = dirname(fs);
  assert.ok(writableFilesystems([above]).has(statSync(main, { bigint: true }).dev));
  await assert.rejects(refuseLinkedInstall(self, [above]), refused(main, above));
});

test('the addon\'s walk reports regular files with more than one link, never through a symlink', async (t) => {
  const dir = tempDir(t);
  const outside = join(tempDir(t), 'outside.js');
  writeFileSync(outside, 'x');
  linkSync(outside, join(tempDir(t), 'other-name.js'));
  mkdirSync(join(dir, 'a/b'), { recursive: true });
  writeFileSync(join(dir, 'a/b/one.js'), 'x');
  writeFileSync(join(dir, 'a/two.js'), 'x');
  linkSync(join(dir, 'a/two.js'), join(dir, 'a/b/two-again.js'));
  symlinkSync(outside, join(dir, 'a/link-to-outside.js'));
  symlinkSync(dirname(outside), join(dir, 'a/link-to-dir'));
  const found = await loadAddon().linkedFiles([dir, join(dir, 'a/two.js'), join(dir, 'absent')]);
  assert.deepEqual(found.map((f) => f.path).sort(), [join(dir, 'a/b/two-again.js'), join(dir, 'a/two.js'), join(dir, 'a/two.js')].sort());
  const st = statSync(join(dir, 'a/two.js'), { bigint: true });
  assert.ok(found.every((f) => f.dev === st.dev && f.ino === st.ino && f.nlink === 2));
  assert.throws(() => loadAddon().linkedFiles('/'), TypeError);
});

test('mount points are read from mountinfo with their escapes undone', () => {
  const text = '36 35 98:0 / /mnt/with\\040space rw - ext4 /dev/x rw\n37 35 0:5 / /run/a\\134b rw - tmpfs t rw\n';
  assert.deepEqual(mountPoints(text), ['/mnt/with space', '/run/a\\b']);
  assert.ok(mountPoints().includes('/'));
});

/** A copy of this checkout's installation (dependencies linked) at dir, as the sandbox tests make one. */
function copyCheckout(dir) {
  mkdirSync(dir, { recursive: true });
  for (const p of ['package.json', 'dist', 'profiles', 'definitions', 'policies', 'build/Release/latchgate.node']) cpSync(join(ROOT, p), join(dir, p), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return join(dir, 'dist/cli/main.js');
}

test('latchgate sandbox refuses a linked installation with exit 125 before the box runs, unless --trust-linked-install asks for it, which the plan records', async (t) => {
  const home = tempDir(t);
  const env = { PATH: process.env.PATH, HOME: home, XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'config'), XDG_RUNTIME_DIR: join(home, 'run') };
  const main = copyCheckout(join(tempDir(t), 'latchgate'));
  const ws = tempDir(t);
  const rw = tempDir(t);
  const run = (...args) => spawnSync(process.execPath, [main, 'sandbox', '--dry-run', '--no-gate-tools', '--workspace', ws, '--rw', rw, ...args, '--', 'true'], { encoding: 'utf8', cwd: ws, env });
  // The copy as it is: its own files have one link each (the shared node_modules' addons are linked within it).
  const clean = run();
  assert.equal(clean.status, 0, clean.stderr);
  assert.deepEqual(JSON.parse(clean.stdout).degraded, []);
  linkSync(join(dirname(dirname(main)), 'sandbox', 'launch.js'), join(rw, 'launch.js'));
  const r = run();
  assert.equal(r.status, 125, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /latchgate's installation .* has files with hard links outside it, which the box could write through: .*\/dist\/sandbox\/launch\.js \(2 links, 1 of them in it\); they are on the filesystem of the writable mounts? .*, and a write through a name there changes what the host runs after the box exits; install latchgate with npm, which copies its files \(npm install -g latchgate\), or give --workspace and --rw directories on another filesystem; --trust-linked-install runs anyway \(recorded as degraded\)$/m);
  assert.ok(r.stderr.includes(rw), r.stderr);
  const trusted = run('--trust-linked-install');
  assert.equal(trusted.status, 0, trusted.stderr);
  assert.deepEqual(JSON.parse(trusted.stdout).degraded, ['trust-linked-install']);
  const help = spawnSync(process.execPath, [main, 'sandbox', '--help'], { encoding: 'utf8', env });
  assert.match(help.stdout, /--trust-linked-install/);
  // The walk runs while the launch plans: a refusal found first ends the launch as cleanly.
  const state = join(env.XDG_STATE_HOME, 'latchgate');
  mkdirSync(state, { recursive: true });
  linkSync(join(rw, 'launch.js'), join(state, 'launch.js'));
  const both = spawnSync(process.execPath, [main, 'sandbox', '--dry-run', '--no-gate-tools', '--workspace', ws, '--rw', state, '--', 'true'], { encoding: 'utf8', cwd: ws, env });
  assert.equal(both.status, 125, both.stderr);
  assert.match(both.stderr, /^latchgate: .*refused as a writable mount: it is latchgate's state directory/);
  assert.equal(both.stderr.split('\n').filter(Boolean).length, 1, both.stderr);
});
