// The directories the host runs latchgate's code from (src/gate/install-paths.ts),
// as the fs host protects them: a provider (so an agent) reads them like any
// directory but never writes or deletes in them, so it cannot rewrite a
// dependency, or plant a module where Node looks for one, and get its code
// run by the gate's next start or compile. A project-local install and a
// clone with a linked dependency; the rest of a root is served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { installProtectedDirs } from '../../dist/gate/install-paths.js';
import { FsHost } from '../../dist/providers/host-fs.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const ALL_OPS = ['read', 'create', 'overwrite', 'delete', 'list', 'stat'];
const bytes = (s) => new TextEncoder().encode(s);
const pkg = (dir, name, deps = {}) => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', dependencies: deps }));
  writeFileSync(join(dir, 'index.js'), `module.exports = '${name}';\n`);
};
const host = (root, dirs) => new FsHost({ root, allowed_operations: ALL_OPS, allowed_paths: ['**'], denied_paths: [], max_file_bytes: 1 << 20 }, { protectedDirs: dirs });
const refusedWrite = (name) => (e) => e.code === 'path_denied' && /no provider writes or deletes there/.test(e.message) || assert.fail(`${name}: ${e.code} ${e.message}`);

test('a project-local install: its dependencies and every node_modules Node searches are read but never written or deleted in; the project beside them is served', async (t) => {
  const base = realpathSync(tempDir(t, 'latchgate-install-'));
  const proj = join(base, 'proj');
  const root = join(proj, 'node_modules', 'latchgate');
  pkg(root, 'latchgate', { 'dep-a': '1' });
  pkg(join(proj, 'node_modules', 'dep-a'), 'dep-a', { 'dep-b': '1' });
  pkg(join(proj, 'node_modules', 'dep-b'), 'dep-b');
  mkdirSync(join(base, 'node_modules')); // a folder Node searches above the project
  mkdirSync(join(proj, 'src'));
  writeFileSync(join(proj, 'src', 'a.txt'), 'mine\n');
  const dirs = installProtectedDirs(root, process.execPath, join(base, 'home'));
  const paths = dirs.map((d) => d.path);
  for (const p of [root, join(proj, 'node_modules', 'dep-a'), join(proj, 'node_modules', 'dep-b'), join(proj, 'node_modules'), join(base, 'node_modules'), dirname(realpathSync(process.execPath))]) {
    assert.ok(paths.includes(p), `${p} is not protected: ${paths.join(' ')}`);
  }
  assert.ok(dirs.every((d) => d.readable === true));
  assert.ok(!paths.includes(join(proj, 'src')) && !paths.includes(proj));

  const h = host(proj, dirs);
  await assert.rejects(h.write('node_modules/dep-b/index.js', bytes('process.exit(7)'), 'overwrite'), refusedWrite('rewrite a dependency'));
  await assert.rejects(h.write('node_modules/dep-c.js', bytes('x'), 'create'), refusedWrite('plant a module where Node looks'));
  await assert.rejects(h.delete('node_modules/dep-a/index.js'), refusedWrite('delete a dependency'));
  assert.equal(readFileSync(join(proj, 'node_modules', 'dep-b', 'index.js'), 'utf8'), "module.exports = 'dep-b';\n");
  assert.ok(!existsSync(join(proj, 'node_modules', 'dep-c.js')));
  // Read, listed and stat'ed as any directory.
  assert.equal(Buffer.from(await h.read('node_modules/dep-a/index.js')).toString(), "module.exports = 'dep-a';\n");
  assert.ok((await h.list('node_modules')).some((e) => e.name === 'dep-a'));
  await h.stat('node_modules/dep-a/package.json');
  // The project itself is served.
  await h.write('src/b.txt', bytes('new\n'), 'create');
  await h.write('src/a.txt', bytes('changed\n'), 'overwrite');
  assert.equal(readFileSync(join(proj, 'src', 'b.txt'), 'utf8'), 'new\n');
  // A root above the project, and one inside a dependency: the same.
  await assert.rejects(host(base, dirs).write('node_modules/planted.js', bytes('x'), 'create'), refusedWrite('plant above the project'));
  const inside = host(join(proj, 'node_modules', 'dep-a'), dirs);
  await assert.rejects(inside.write('index.js', bytes('x'), 'overwrite'), refusedWrite('a root in a dependency'));
  assert.equal(Buffer.from(await inside.read('index.js')).toString(), "module.exports = 'dep-a';\n");
});

test('a clone: its parts and a linked dependency outside it, and the node_modules above both, are protected', async (t) => {
  const base = realpathSync(tempDir(t, 'latchgate-clone-'));
  const clone = join(base, 'clone');
  pkg(clone, 'latchgate');
  mkdirSync(join(clone, 'dist'));
  mkdirSync(join(clone, 'node_modules'));
  pkg(join(base, 'elsewhere', 'linked'), 'linked');
  mkdirSync(join(base, 'elsewhere', 'node_modules'));
  symlinkSync(join(base, 'elsewhere', 'linked'), join(clone, 'node_modules', 'linked'));
  mkdirSync(join(clone, 'notes'));
  const paths = installProtectedDirs(clone, process.execPath, join(base, 'home')).map((d) => d.path);
  for (const p of [join(clone, 'dist'), join(clone, 'node_modules'), join(base, 'elsewhere', 'linked'), join(base, 'elsewhere', 'node_modules'), join(base, 'node_modules')].filter(existsSync)) {
    assert.ok(paths.includes(p), `${p} is not protected: ${paths.join(' ')}`);
  }
  assert.ok(!paths.includes(join(clone, 'notes')));
  const h = host(base, installProtectedDirs(clone, process.execPath, join(base, 'home')));
  await assert.rejects(h.write('elsewhere/linked/index.js', bytes('x'), 'overwrite'), refusedWrite('rewrite the linked dependency'));
  await assert.rejects(h.write('elsewhere/node_modules/x.js', bytes('x'), 'create'), refusedWrite('plant beside the linked dependency'));
  await h.write('clone/notes/n.txt', bytes('n'), 'create');
});

test('a linked dependency is followed where it really is, with its own dependencies and the node_modules above them (a workspace of a monorepo), in both layouts', async (t) => {
  const base = realpathSync(tempDir(t, 'latchgate-linked-'));
  // A monorepo whose workspace packages are linked from its hoisted node_modules.
  const mono = join(base, 'mono');
  pkg(join(mono, 'packages', 'dep-l'), 'dep-l', { 'dep-m': '1' });
  pkg(join(mono, 'packages', 'dep-m'), 'dep-m');
  mkdirSync(join(mono, 'node_modules'));
  symlinkSync(join(mono, 'packages', 'dep-m'), join(mono, 'node_modules', 'dep-m'));
  pkg(join(mono, 'node_modules', 'hoisted'), 'hoisted');
  // A project-local install and a clone, each with dep-l linked in.
  const proj = join(base, 'proj');
  const installed = join(proj, 'node_modules', 'latchgate');
  pkg(installed, 'latchgate', { 'dep-l': '1' });
  symlinkSync(join(mono, 'packages', 'dep-l'), join(proj, 'node_modules', 'dep-l'));
  const clone = join(base, 'clone');
  pkg(clone, 'latchgate', { 'dep-l': '1' });
  mkdirSync(join(clone, 'node_modules'));
  symlinkSync(join(mono, 'packages', 'dep-l'), join(clone, 'node_modules', 'dep-l'));
  for (const root of [installed, clone]) {
    const dirs = installProtectedDirs(root, process.execPath, join(base, 'home'));
    const paths = dirs.map((d) => d.path);
    for (const p of [join(mono, 'packages', 'dep-l'), join(mono, 'packages', 'dep-m'), join(mono, 'packages', 'node_modules'), join(mono, 'node_modules')].filter(existsSync)) {
      assert.ok(paths.includes(p), `${root}: ${p} is not protected: ${paths.join(' ')}`);
    }
    const h = host(base, dirs);
    await assert.rejects(h.write('mono/packages/dep-m/index.js', bytes('x'), 'overwrite'), refusedWrite(`${root}: the linked dependency's own dependency`));
    await assert.rejects(h.write('mono/node_modules/hoisted/index.js', bytes('x'), 'overwrite'), refusedWrite(`${root}: the monorepo's hoisted modules`));
    await assert.rejects(h.write('mono/node_modules/planted.js', bytes('x'), 'create'), refusedWrite(`${root}: where Node searches above the linked dependency`));
  }
});
