// Where the kernel looks a path up later (lookup-path.ts): dangling symlinks
// followed to where they lead, missing parts kept, `..` taken after the
// symlink it follows, and every symlink on the way reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { lookupPath } from '../../dist/sandbox/lookup-path.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

test('a dangling symlink leads where its target will be; missing parts below it are kept', (t) => {
  const d = tempDir(t);
  symlinkSync(join(d, 'ws/tools'), join(d, 'link'));
  assert.deepEqual(lookupPath(join(d, 'link/bin')), { path: join(d, 'ws/tools/bin'), links: [join(d, 'link')] });
});

test('a relative symlink inside a symlinked directory, and a chain of them, are each reported', (t) => {
  const d = tempDir(t);
  mkdirSync(join(d, 'ws/real'), { recursive: true });
  symlinkSync('real', join(d, 'ws/hop'));
  symlinkSync(join(d, 'ws/hop'), join(d, 'chain'));
  assert.deepEqual(lookupPath(join(d, 'chain/x/y')), { path: join(d, 'ws/real/x/y'), links: [join(d, 'chain'), join(d, 'ws/hop')] });
});

test('`..` leaves the directory a symlink leads to, not the one written before it; `//`, `.` and trailing slashes are nothing', (t) => {
  const d = tempDir(t);
  mkdirSync(join(d, 'ws/sub'), { recursive: true });
  mkdirSync(join(d, 'home'));
  symlinkSync(join(d, 'ws/sub'), join(d, 'home/link'));
  assert.equal(lookupPath(`${d}/home/link/..`).path, join(d, 'ws'));
  assert.equal(lookupPath(`${d}//home/./link/`).path, join(d, 'ws/sub'));
  // A plain path: itself, no links.
  assert.deepEqual(lookupPath(join(d, 'ws/sub/missing/..')), { path: join(d, 'ws/sub'), links: [] });
});

test('a symlink loop stops after the kernel\'s limit, with the links on the way reported', (t) => {
  const d = tempDir(t);
  symlinkSync(join(d, 'b'), join(d, 'a'));
  symlinkSync(join(d, 'a'), join(d, 'b'));
  const r = lookupPath(join(d, 'a/bin'));
  assert.equal(r.links.length, 40);
  assert.deepEqual([...new Set(r.links)].sort(), [join(d, 'a'), join(d, 'b')]);
});
