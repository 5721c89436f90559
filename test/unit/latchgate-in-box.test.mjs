// What of latchgate's installation a box must leave as it is, because the
// host's next `latchgate` loads it (src/sandbox/latchgate-in-box.ts): Node's
// global folder beside the binary that runs it, a clone's linked
// dependencies and the module folders they search, and the lookups above.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { installOwnPaths, latchgateInBox, refuseWritableModulePaths } from '../../dist/sandbox/latchgate-in-box.js';
import { HOME_PLACEHOLDERS } from '../../dist/sandbox/home-workspace.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

/** A clone-like package at dir/pkg (package.json, dist/, node_modules/) and a Node binary at dir/<nodeAt>. */
function layout(t, nodeAt = 'node/node') {
  const dir = tempDir(t);
  const root = join(dir, 'pkg');
  for (const d of ['dist/cli', 'node_modules/plain', 'vendor/linked', '@scope']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'package.json'), '{"name":"latchgate","type":"module"}');
  symlinkSync('../vendor/linked', join(root, 'node_modules', 'linked'));
  mkdirSync(join(root, 'node_modules', '@scope'));
  symlinkSync('../../vendor/linked', join(root, 'node_modules', '@scope', 'also'));
  const node = join(dir, nodeAt);
  mkdirSync(join(node, '..'), { recursive: true });
  copyFileSync(process.execPath, node);
  return { dir, root, node };
}

test('Node\'s global folder (<prefix>/lib/node) and the binary are latchgate\'s own paths, wherever Node is laid out', (t) => {
  const { dir, root, node } = layout(t);
  const own = installOwnPaths(latchgateInBox([], {}, root, node));
  const byPath = Object.fromEntries(own.map((o) => [o.path, o]));
  // Node at dir/node/node: its prefix is dir, so require() also searches dir/lib/node.
  assert.equal(byPath[join(dir, 'lib', 'node')]?.type, 'dir', JSON.stringify(own, null, 1));
  assert.equal(byPath[node]?.type, 'file');
  assert.ok(own.every((o) => o.scan === false), 'code, not settings');
});

test('a clone\'s linked dependencies are protected where they really are, with the module folders they search on the way up', (t) => {
  const { root, node } = layout(t);
  const self = latchgateInBox([], {}, root, node);
  const linked = realpathSync(join(root, 'vendor', 'linked'));
  assert.deepEqual(self.linked, [linked, linked]);
  const paths = installOwnPaths(self).map((o) => o.path);
  assert.ok(paths.includes(linked), paths.join('\n'));
  assert.ok(paths.includes(join(root, 'vendor', 'node_modules')), 'vendor/node_modules: where vendor/linked looks next');
  assert.ok(!paths.includes(join(root, 'node_modules', 'node_modules')));
});

test('a writable mount on a module folder searched above the installation, or above a linked dependency outside it, is refused', (t) => {
  const { dir, root, node } = layout(t);
  const self = latchgateInBox([], {}, root, node);
  assert.throws(() => refuseWritableModulePaths(self, [dir]), /refused as a writable mount: latchgate runs from .*pkg, and Node loads modules it does not find there from .*\/node_modules/);
  assert.throws(() => refuseWritableModulePaths(self, [join(dir, 'node_modules', 'x')]), /refused as a writable mount/);
  assert.doesNotThrow(() => refuseWritableModulePaths(self, [root]), 'the installation itself may be the workspace');
  assert.doesNotThrow(() => refuseWritableModulePaths(self, [tempDir(t)]));
  // A dependency linked from elsewhere: what is searched above it counts too.
  const elsewhere = join(tempDir(t), 'dev', 'dep');
  mkdirSync(elsewhere, { recursive: true });
  assert.throws(() => refuseWritableModulePaths({ ...self, linked: [elsewhere] }, [join(elsewhere, '..')]), /in its dependency .*dev\/dep from .*dev\/node_modules/);
});

test('a home workspace keeps Node\'s global folders in HOME read-only', () => {
  const dirs = HOME_PLACEHOLDERS.filter((r) => r.type === 'dir').map((r) => r.path);
  for (const d of ['.node_modules', '.node_libraries']) assert.ok(dirs.includes(d), d);
});

test('a clone\'s prebuilt addon (prebuilds/, made by npm pack) is the installation\'s: `npm run build`, the repair an addon error names, would install it', (t) => {
  const { root, node } = layout(t);
  mkdirSync(join(root, 'prebuilds', 'linux-x64'), { recursive: true });
  mkdirSync(join(root, 'notes'));
  const self = latchgateInBox([], {}, root, node);
  assert.ok(self.packagePaths.includes(join(root, 'prebuilds')), self.packagePaths.join('\n'));
  assert.ok(self.ro.includes(realpathSync(join(root, 'prebuilds'))));
  assert.ok(!self.packagePaths.includes(join(root, 'notes')), 'other files of a clone stay the workspace\'s');
});
