// Placeholders: created for missing protected paths, removed after the run
// only when still ours and still empty.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Placeholders } from '../../dist/sandbox/placeholders.js';
import { protectedPathsFor } from '../../dist/sandbox/protected-paths.js';
import { LaunchError } from '../../dist/sandbox/errors.js';
import { isRoot, tempDir } from '../fixtures/unit/helpers.mjs';

const file = (path) => ({ action: 'placeholder', path, type: 'file' });
const dir = (path) => ({ action: 'placeholder', path, type: 'dir' });

test('creates missing files and directories, with missing parents, and removes them all', (t) => {
  const root = tempDir(t);
  const p = new Placeholders();
  p.create([
    file(join(root, '.bashrc')),
    dir(join(root, '.vscode')),
    dir(join(root, '.claude/commands')),
    file(join(root, '.claude/settings.json')),
    file(join(root, 'a/b/c/deep.json')),
    { action: 'readonly', path: join(root, 'ignored-readonly') },
    { action: 'mask-symlink', path: join(root, 'ignored-mask') },
  ]);
  assert.ok(lstatSync(join(root, '.bashrc')).isFile());
  assert.equal(statSync(join(root, '.bashrc')).size, 0);
  assert.ok(lstatSync(join(root, '.vscode')).isDirectory());
  assert.ok(lstatSync(join(root, '.claude')).isDirectory());
  assert.ok(lstatSync(join(root, '.claude/commands')).isDirectory());
  assert.ok(lstatSync(join(root, '.claude/settings.json')).isFile());
  assert.ok(lstatSync(join(root, 'a/b/c/deep.json')).isFile());
  assert.ok(!existsSync(join(root, 'ignored-readonly')));
  assert.ok(!existsSync(join(root, 'ignored-mask')));
  p.remove();
  for (const n of ['.bashrc', '.vscode', '.claude', 'a']) assert.ok(!existsSync(join(root, n)), `${n} left behind`);
  assert.ok(existsSync(root));
  p.remove(); // a second call is harmless
  assert.ok(existsSync(root));
});

test('works on the actions protectedPathsFor gives for an empty root', (t) => {
  const root = tempDir(t);
  const actions = protectedPathsFor(root, [root]);
  const p = new Placeholders();
  p.create(actions);
  for (const a of actions) {
    const st = lstatSync(a.path);
    assert.equal(a.action === 'pin' || a.type === 'dir' ? st.isDirectory() : st.isFile(), true, a.path);
  }
  // Now nothing is missing: the second plan has no placeholders at all.
  assert.deepEqual(protectedPathsFor(root, [root]).filter((a) => a.action === 'placeholder'), []);
  p.remove();
  assert.deepEqual(protectedPathsFor(root, [root]), actions);
});

test('never touches what existed before', (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, '.claude'));
  writeFileSync(join(root, '.claude/other'), 'keep');
  mkdirSync(join(root, 'emptydir'));
  const p = new Placeholders();
  p.create([dir(join(root, '.claude/commands')), dir(join(root, 'emptydir/x'))]);
  p.remove();
  assert.ok(existsSync(join(root, '.claude/other')));
  assert.ok(existsSync(join(root, 'emptydir')), 'a pre-existing empty parent stays');
  assert.ok(!existsSync(join(root, '.claude/commands')));
  assert.ok(!existsSync(join(root, 'emptydir/x')));
});

test('a path that appeared before creation (EEXIST) is skipped and not removed later', (t) => {
  const root = tempDir(t);
  writeFileSync(join(root, '.bashrc'), '');
  mkdirSync(join(root, '.vscode'));
  const p = new Placeholders();
  p.create([file(join(root, '.bashrc')), dir(join(root, '.vscode'))]);
  p.remove();
  assert.ok(existsSync(join(root, '.bashrc')), 'an empty file that was not ours stays');
  assert.ok(existsSync(join(root, '.vscode')), 'an empty directory that was not ours stays');
});

test('a placeholder file that got content, or a directory that got a file, is left alone', (t) => {
  const root = tempDir(t);
  const p = new Placeholders();
  p.create([file(join(root, '.bashrc')), dir(join(root, '.claude/commands')), file(join(root, '.zshrc'))]);
  writeFileSync(join(root, '.bashrc'), 'export X=1\n');
  writeFileSync(join(root, '.claude/commands/mine.md'), 'x');
  p.remove();
  assert.equal(statSync(join(root, '.bashrc')).size, 11);
  assert.ok(existsSync(join(root, '.claude/commands/mine.md')));
  assert.ok(existsSync(join(root, '.claude')), 'the non-empty parent stays too');
  assert.ok(!existsSync(join(root, '.zshrc')), 'the untouched placeholder is removed');
});

test('something put in place of a placeholder (another inode) is left alone', (t) => {
  const root = tempDir(t);
  const p = new Placeholders();
  p.create([file(join(root, '.bashrc')), dir(join(root, '.vscode')), file(join(root, '.profile')), dir(join(root, '.idea'))]);
  // Replace with empty ones of the same type: a new inode each (made before
  // the old is gone, so the number cannot be reused).
  writeFileSync(join(root, 'new-rc'), '');
  renameSync(join(root, 'new-rc'), join(root, '.bashrc'));
  mkdirSync(join(root, 'new-dir'));
  renameSync(join(root, 'new-dir'), join(root, '.vscode'));
  // And of the other type.
  mkdirSync(join(root, 'swap'));
  mkdirSync(join(root, 'swap/.profile'));
  writeFileSync(join(root, 'swap/.idea'), '');
  renameSync(join(root, '.profile'), join(root, 'old-profile'));
  renameSync(join(root, 'swap/.profile'), join(root, '.profile'));
  p.remove();
  assert.ok(lstatSync(join(root, '.bashrc')).isFile());
  assert.ok(lstatSync(join(root, '.vscode')).isDirectory());
  assert.ok(lstatSync(join(root, '.profile')).isDirectory());
  assert.ok(!existsSync(join(root, '.idea')), 'the untouched one is removed');
});

test('a failure removes what was already created and names the path', (t) => {
  const root = tempDir(t);
  writeFileSync(join(root, 'afile'), 'x');
  const p = new Placeholders();
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
});

test('placeholders are given to the owner when asked', { skip: !isRoot && 'chown needs root' }, (t) => {
  const root = tempDir(t);
  const p = new Placeholders({ uid: 4321, gid: 4322 });
  p.create([file(join(root, 'x/y/.bashrc')), dir(join(root, '.vscode'))]);
  for (const rel of ['x', 'x/y', 'x/y/.bashrc', '.vscode']) {
    const st = lstatSync(join(root, rel));
    assert.deepEqual([st.uid, st.gid], [4321, 4322], rel);
  }
  p.remove();
  assert.ok(!existsSync(join(root, 'x')));
});
