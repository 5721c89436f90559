// The fs section's path globs (src/providers/fs-glob.ts): a table of the
// documented semantics, the shipped manifests' globs, a seeded property test
// against an independent regex translation, and the globs refused at compile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileGlob, matchGlob, PathGlobs } from '../../dist/providers/fs-glob.js';
import { prng } from '../fixtures/unit/helpers.mjs';

const comps = (p) => (p === '' ? [] : p.split('/'));
const matches = (glob, path) => matchGlob(compileGlob(glob, 'test'), comps(path));

test('the documented semantics, as a table', () => {
  const rows = [
    // glob, path, matches
    ['src/**', 'src', true],
    ['src/**', 'src/a.ts', true],
    ['src/**', 'src/deep/er/a.ts', true],
    ['src/**', 'src/.env', true],
    ['src/**', 'srcx/a.ts', false],
    ['src/**', 'lib/src/a.ts', false],
    ['**', '', true],
    ['**', 'a/b/c', true],
    ['**/.env', '.env', true],
    ['**/.env', 'a/b/.env', true],
    ['**/.env', 'a/b/.envx', false],
    ['**/.env.*', 'a/.env.local', true],
    ['**/.env.*', 'a/.env', false],
    ['*.md', 'README.md', true],
    ['*.md', 'docs/README.md', false],
    ['*.md', '.md', true],
    ['*', '', false],
    ['*', 'a', true],
    ['*', 'a/b', false],
    ['a/*/c', 'a/b/c', true],
    ['a/*/c', 'a/c', false],
    ['a/*/c', 'a/b/b/c', false],
    ['a/**/c', 'a/c', true],
    ['a/**/c', 'a/b/b/c', true],
    ['a/**/c', 'a/b/b/cc', false],
    ['**/secrets/**', 'secrets', true],
    ['**/secrets/**', 'x/secrets/y/z', true],
    ['**/secrets/**', 'x/secretsy/z', false],
    ['**/Dockerfile*', 'Dockerfile', true],
    ['**/Dockerfile*', 'svc/Dockerfile.prod', true],
    ['?.ts', 'a.ts', true],
    ['?.ts', 'ab.ts', false],
    ['?.ts', 'é.ts', true],
    ['a.b', 'aXb', false],
    ['a+(b)', 'a+(b)', true],
    ['**/**/x', 'x', true],
    ['A', 'a', false],
  ];
  for (const [glob, path, want] of rows) assert.equal(matches(glob, path), want, `${glob} against ${JSON.stringify(path)}`);
});

test('deny wins over allow; nothing allowed unless a glob allows it', () => {
  const g = new PathGlobs(['src/**', '*.md'], ['**/.env', '**/secrets/**']);
  assert.equal(g.verdict(comps('src/a.ts')), 'allowed');
  assert.equal(g.verdict(comps('src/.env')), 'denied');
  assert.equal(g.verdict(comps('src/secrets/key')), 'denied');
  assert.equal(g.verdict(comps('README.md')), 'allowed');
  assert.equal(g.verdict(comps('lib/a.ts')), 'not_allowed');
  assert.equal(g.verdict([]), 'not_allowed');
  assert.equal(new PathGlobs([], []).verdict(comps('a')), 'not_allowed');
});

test('the shipped manifests\' globs all compile', async () => {
  const { readdirSync, readFileSync } = await import('node:fs');
  const { parse } = await import('yaml');
  const dir = new URL('../../definitions/manifests/', import.meta.url);
  let n = 0;
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    const m = parse(readFileSync(new URL(f, dir), 'utf8'));
    if (!m.fs) continue;
    new PathGlobs(m.fs.allowed_paths ?? [], m.fs.denied_paths ?? []);
    n++;
  }
  assert.ok(n >= 2, 'fs_read and fs_write at least');
});

test('globs the matcher would get wrong are refused with the field named', () => {
  const bad = [
    ['', /empty/],
    ['/etc/**', /absolute/],
    ['a//b', /an empty component/],
    ['./a', /"\." component/],
    ['a/../b', /"\.\." component/],
    ['a**', /must be a whole component/],
    ['**.md', /must be a whole component/],
    ['[ab].md', /only \*/],
    ['{a,b}.md', /only \*/],
    ['a\\*', /only \*/],
  ];
  for (const [glob, re] of bad) {
    assert.throws(() => new PathGlobs(['ok/**', glob], []), (e) => e.name === 'GlobError' && re.test(e.message) && e.message.includes('fs.allowed_paths[1]'), glob);
  }
  assert.throws(() => new PathGlobs([], ['x', '/y']), /fs\.denied_paths\[1\]/);
});

// An independent translation: the path as "/c1/c2..." ("" for the root), each
// glob component as "/" + its regex, `**` as any number of "/component".
function referenceRegex(glob) {
  const parts = glob.split('/').map((c) => {
    if (c === '**') return '(?:/[^/]+)*';
    let s = '/';
    for (const ch of c) s += ch === '*' ? '[^/]*' : ch === '?' ? '[^/]' : ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return s;
  });
  return new RegExp(`^${parts.join('')}$`, 'u');
}

test('property: the matcher agrees with the reference regex on random globs and paths (seeded)', () => {
  const r = prng(0x5eed610b);
  const names = ['a', 'b', 'ab', '.a', 'a.b', 'ba'];
  const globParts = ['a', 'b', '*', '**', '?', 'a*', '*b', '.*', '?b', 'a?', '*.b'];
  let agreeTrue = 0;
  for (let i = 0; i < 20000; i++) {
    const glob = Array.from({ length: 1 + r.below(4) }, () => r.pick(globParts)).join('/');
    const path = Array.from({ length: r.below(5) }, () => r.pick(names));
    const want = referenceRegex(glob).test(path.length ? `/${path.join('/')}` : '');
    assert.equal(matchGlob(compileGlob(glob, 'p'), path), want, `${glob} against ${JSON.stringify(path.join('/'))}`);
    if (want) agreeTrue++;
  }
  assert.ok(agreeTrue > 1000, `enough matching cases were drawn (${agreeTrue})`);
});
