// whyUntrusted (src/sandbox/trusted-path.ts): whether anyone but root (or
// this launcher) could change where a path leads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { whyUntrusted } from '../../dist/sandbox/trusted-path.js';
import { isRoot, tempDir } from '../fixtures/unit/helpers.mjs';

test('directories of root (or ours), not writable by others, are trusted all the way up', (t) => {
  const d = tempDir(t);
  mkdirSync(join(d, 'a/b'), { recursive: true, mode: 0o755 });
  assert.equal(whyUntrusted(join(d, 'a/b')), undefined);
  assert.equal(whyUntrusted(join(d, 'a/b'), true), undefined);
  assert.equal(whyUntrusted('/'), undefined);
});

test('a sticky directory others write to: trusted above, not where names are made', (t) => {
  const sticky = tempDir(t);
  chmodSync(sticky, 0o1777);
  const below = join(sticky, 'mine');
  mkdirSync(below, { mode: 0o755 });
  assert.equal(whyUntrusted(below, true), undefined, 'others cannot rename my entry in a sticky directory');
  assert.equal(whyUntrusted(sticky), undefined);
  assert.equal(whyUntrusted(sticky, true), `${sticky} is writable by others (mode 01777)`);
});

test('writable by others without the sticky bit, a symlink on the way, or another uid\'s directory: untrusted, naming it', (t) => {
  const d = tempDir(t);
  const open = join(d, 'open');
  mkdirSync(join(open, 'x'), { recursive: true, mode: 0o755 });
  chmodSync(open, 0o775);
  assert.equal(whyUntrusted(join(open, 'x')), `${open} is writable by others (mode 0775) without the sticky bit`);
  symlinkSync(d, join(d, 'link'));
  assert.equal(whyUntrusted(join(d, 'link')), `${join(d, 'link')} is not a directory`);
  if (isRoot) {
    const theirs = join(d, 'theirs');
    mkdirSync(join(theirs, 'ws'), { recursive: true, mode: 0o755 });
    chownSync(theirs, 4321, 4322);
    assert.equal(whyUntrusted(join(theirs, 'ws')), `${theirs} is owned by uid 4321`);
  }
});
