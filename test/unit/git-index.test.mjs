// The index reader against indexes git itself wrote (versions 2, 3 with
// extended flags, 4 with path compression, SHA-256 repositories, a split
// index), compared with `git ls-files --stage`; and fuzzed: random bytes and
// random corruptions of real indexes never throw and never invent gitlinks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clearHidingFlags, readIndexEntries, readIndexGitlinks } from '../../dist/sandbox/git-index.js';
import { gitlinksOf } from '../../dist/sandbox/git-surface.js';
import { prng, tempDir } from '../fixtures/unit/helpers.mjs';

const HAS_GIT = existsSync('/usr/bin/git');
const ENV = { PATH: '/usr/bin:/bin', GIT_CONFIG_NOSYSTEM: '1', HOME: '/nonexistent', GIT_AUTHOR_NAME: 'a', GIT_AUTHOR_EMAIL: 'a@b', GIT_COMMITTER_NAME: 'a', GIT_COMMITTER_EMAIL: 'a@b' };
const git = (cwd, ...args) => execFileSync('git', args, { cwd, env: ENV, encoding: 'utf8' });

/** A repository with files in nested directories (so v4 compresses paths) and gitlinks among them. */
function repo(t, { objectFormat = 'sha1', version = 2 } = {}) {
  const dir = tempDir(t);
  const init = spawnSync('git', ['init', '-q', `--object-format=${objectFormat}`, dir], { env: ENV });
  if (init.status !== 0) return undefined;
  const zero = objectFormat === 'sha256' ? '1'.repeat(64) : '1'.repeat(40);
  for (const p of ['a.txt', 'src/lib/one.js', 'src/lib/two.js', 'src/main.js', 'docs/x/y/z.md']) {
    const f = join(dir, p);
    execFileSync('mkdir', ['-p', join(f, '..')]);
    writeFileSync(f, p);
  }
  git(dir, 'add', '.');
  for (const link of ['vendor/lib-a', 'vendor/lib-b', 'src/lib/sub']) git(dir, 'update-index', '--add', '--cacheinfo', `160000,${zero},${link}`);
  git(dir, 'update-index', '--index-version', String(version));
  return dir;
}

const gitlinksByGit = (dir) => git(dir, 'ls-files', '--stage').split('\n').filter((l) => l.startsWith('160000 ')).map((l) => l.split('\t')[1]).sort();

for (const version of [2, 3, 4]) {
  test(`index version ${version}: the gitlinks git lists, nothing else`, { skip: HAS_GIT ? false : 'git is not installed' }, (t) => {
    const dir = repo(t, { version });
    if (version === 3) git(dir, 'update-index', '--skip-worktree', 'a.txt'); // extended flags need v3
    const r = readIndexGitlinks(readFileSync(join(dir, '.git/index')));
    assert.equal(r.ok, true, r.error);
    assert.equal(r.version, version);
    assert.deepEqual([...r.gitlinks].sort(), gitlinksByGit(dir));
    assert.equal(r.entries, 8);
  });
}

test('a SHA-256 repository', { skip: HAS_GIT ? false : 'git is not installed' }, (t) => {
  const dir = repo(t, { objectFormat: 'sha256', version: 4 });
  if (!dir) return t.skip('this git cannot make SHA-256 repositories');
  const buf = readFileSync(join(dir, '.git/index'));
  assert.deepEqual([...readIndexGitlinks(buf, 32).gitlinks].sort(), gitlinksByGit(dir));
  assert.deepEqual(gitlinksOf(join(dir, '.git'), 32), gitlinksByGit(dir));
});

test('a split index: gitlinks in the shared index and in the split one', { skip: HAS_GIT ? false : 'git is not installed' }, (t) => {
  const dir = repo(t);
  git(dir, 'update-index', '--split-index');
  git(dir, 'update-index', '--add', '--cacheinfo', `160000,${'2'.repeat(40)},late/sub`);
  assert.ok(readdirSync(join(dir, '.git')).some((n) => n.startsWith('sharedindex.')), 'git made a shared index');
  assert.deepEqual(gitlinksOf(join(dir, '.git'), 20), gitlinksByGit(dir));
});

test('malformed input: a reason, never a throw, never a gitlink that is not there', { skip: HAS_GIT ? false : 'git is not installed' }, (t) => {
  const r = prng(0x1d3);
  const real = [2, 3, 4].map((v) => readFileSync(join(repo(t, { version: v }), '.git/index')));
  const truth = new Set(['vendor/lib-a', 'vendor/lib-b', 'src/lib/sub']);
  assert.equal(readIndexGitlinks(Buffer.from('DIRC')).ok, false);
  assert.equal(readIndexGitlinks(Buffer.from('XXXX\0\0\0\x02\0\0\0\0')).ok, false);
  assert.match(readIndexGitlinks(Buffer.from('DIRC\0\0\0\x09\0\0\0\0')).error, /version 9/);
  assert.match(readIndexGitlinks(Buffer.concat([Buffer.from('DIRC\0\0\0\x02'), Buffer.from([0xff, 0xff, 0xff, 0xff])])).error, /count/);
  for (let i = 0; i < 3000; i++) {
    let buf;
    if (i % 3 === 0) buf = Buffer.from(Array.from({ length: r.below(200) }, () => r.below(256)));
    else {
      buf = Buffer.from(r.pick(real));
      const cut = r.chance(0.3);
      for (let k = 0, n = 1 + r.below(4); k < n; k++) buf[12 + r.below(buf.length - 12)] = r.below(256);
      if (cut) buf = buf.subarray(0, r.below(buf.length));
    }
    const out = readIndexGitlinks(buf);
    assert.equal(typeof out.ok, 'boolean');
    if (out.ok) for (const l of out.gitlinks) assert.equal(typeof l, 'string');
    else assert.equal(typeof out.error, 'string');
    // A corruption that leaves the entries alone keeps the truth; one that hits them may not invent entries beyond count.
    if (out.ok) assert.ok(out.gitlinks.length <= out.entries);
  }
  for (const buf of real) assert.deepEqual(new Set(readIndexGitlinks(buf).gitlinks), truth);
});

for (const version of [2, 3, 4]) {
  test(`index version ${version}: hidden entries found and shown again; git accepts the rewritten index`, { skip: HAS_GIT ? false : 'git is not installed' }, (t) => {
    const dir = repo(t, { version });
    git(dir, 'update-index', '--assume-unchanged', 'a.txt');
    git(dir, 'update-index', '--skip-worktree', 'src/main.js');
    const file = join(dir, '.git/index');
    const r = readIndexEntries(readFileSync(file));
    assert.equal(r.ok, true, r.error);
    const hidden = r.entries.filter((e) => e.assumeValid || e.skipWorktree);
    assert.deepEqual(hidden.map((e) => [e.path, e.assumeValid, e.skipWorktree]).sort(), [['a.txt', true, false], ['src/main.js', false, true]]);
    writeFileSync(file, clearHidingFlags(readFileSync(file), hidden, 20));
    const flags = git(dir, 'ls-files', '-v').split('\n').filter(Boolean).map((l) => l.slice(0, 2) + l.split(' ')[1]);
    assert.ok(flags.includes('H a.txt') && flags.includes('H src/main.js'), flags.join('\n'));
    assert.equal(spawnSync('git', ['status', '--porcelain'], { cwd: dir, env: ENV }).status, 0, 'git reads the index (its checksum holds)');
    assert.equal(r.entries.find((e) => e.path === 'a.txt').oid, git(dir, 'hash-object', 'a.txt').trim());
  });
}
