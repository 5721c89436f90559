// src/core/paths.ts isInside: its string comparison of two plain absolute
// paths answers as path.relative does, for every pair (property-tested
// against the reading by path.relative), including the names that only look
// like "." or "..".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isAbsolute, relative } from 'node:path';
import { isInside } from '../../dist/core/paths.js';

const byRelative = (root, p) => {
  const r = relative(root, p);
  return r === '' || (r !== '..' && !r.startsWith('../') && !isAbsolute(r));
};

test('isInside: the cases that matter, by name', () => {
  for (const [root, p, want] of [
    ['/', '/', true],
    ['/', '/a', true],
    ['/a', '/a', true],
    ['/a', '/a/b', true],
    ['/a', '/ab', false],
    ['/a/b', '/a', false],
    ['/a', '/a/..cache', true],
    ['/a', '/a/..', false],
    ['/a', '/a/../a/b', true],
    ['/a/', '/a/b', true],
    ['/a', '/a//b', true],
    ['/a/.', '/a/b', true],
    ['/a', '/b/../a/c', true],
    ['/home/u', '/home/u2', false],
    ['/a/...', '/a/.../b', true],
  ]) assert.equal(isInside(root, p), want, `${root} ${p}`);
});

test('isInside answers as path.relative reads the pair, for 50 000 random pairs', () => {
  const SEGMENTS = ['a', 'b', 'ab', '.', '..', '...', '..a', 'a.', '', ' ', 'é'];
  let seed = 0x2f6e2b1;
  const rand = (n) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const path = () => {
    const n = rand(5);
    let s = rand(8) === 0 ? '' : '/';
    for (let i = 0; i < n; i++) s += (i ? '/' : '') + SEGMENTS[rand(SEGMENTS.length)];
    if (rand(6) === 0) s += '/';
    return s === '' ? '/' : s;
  };
  for (let i = 0; i < 50_000; i++) {
    const root = path();
    const p = rand(3) === 0 ? `${root}/${path()}` : path();
    assert.equal(isInside(root, p), byRelative(root, p), `${JSON.stringify(root)} ${JSON.stringify(p)}`);
  }
});
