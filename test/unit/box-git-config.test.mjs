// The box's generated global git config: the writer (every value read back
// by real git exactly as given, nothing injected), the allowlist of what is
// carried, the launch note, and the read of the host's config through host git.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { quoteGitValue, renderGitConfig } from '../../dist/sandbox/git-config-writer.js';
import { boxGitConfig, gitLaunchNote } from '../../dist/sandbox/box-git-config.js';
import { findGit, parseGitList, readHostGitConfig } from '../../dist/sandbox/host-git-config.js';
import { parseGitConfig } from '../../dist/sandbox/git-config.js';
import { prng, tempDir } from '../fixtures/unit/helpers.mjs';

const GIT = findGit();
const noGit = GIT ? undefined : 'needs git (scripts/setup.sh installs it)';
const GIT_ENV = { PATH: '/usr/bin:/bin', HOME: '/nonexistent', GIT_CONFIG_NOSYSTEM: '1', LC_ALL: 'C' };

/** Every entry of a config file as real git lists it. */
function gitList(file) {
  return parseGitList(execFileSync(GIT, ['config', '--file', file, '--null', '--list'], { env: GIT_ENV })).entries;
}

/** Pieces a hostile name is made of: git's syntax characters, escapes, whitespace, controls, non-ASCII. */
const PIECES = [
  '"', '\\', '\n', '\t', '\b', '\r', '\r\n', '\v', '\f', '\x01', '\x7f', ' ', '  ', '[', ']', '#', ';', '=', '.', '-', '~', '!', '$', "'", '`',
  'a', 'Z', '0', 'é', '漢', '😀', '\\n', '\\"', '" #', '\n[alias]\n\tpwn = !touch /tmp/pwned\n', '\n[include]\n\tpath = /tmp/x\n', '"\n[credential]\n\thelper = !evil\n#',
  'name = x', '[user "a"]', '\\\n',
];

function hostileValue(r) {
  let v = '';
  const n = r.below(12);
  for (let i = 0; i < n; i++) v += r.pick(PIECES);
  return v;
}

test('writer: every value, however hostile, reads back from real git exactly, and no other key appears (seeded, 30 files x 40 values)', { skip: noGit }, (t) => {
  const dir = tempDir(t);
  for (let seed = 1; seed <= 30; seed++) {
    const r = prng(seed);
    const entries = [];
    for (let i = 0; i < 40; i++) entries.push({ section: i % 2 ? 'user' : 'fuzz', key: `k${i}`, value: r.chance(0.05) ? null : hostileValue(r) });
    const text = renderGitConfig(['a comment: [alias] x = !sh'], entries);
    const file = join(dir, `c${seed}`);
    writeFileSync(file, text);
    const want = entries.map((e) => ({ key: `${e.section}.${e.key}`, value: e.value }));
    assert.deepEqual(gitList(file), want, `seed ${seed}:\n${text}`);
    // latchgate's own reader (which finds what a config makes git run) reads it alike.
    assert.deepEqual(parseGitConfig(text).map((e) => ({ key: `${e.section}.${e.key}`, value: e.value })), want, `seed ${seed} (git-config.ts)`);
  }
});

test('writer: names come from code only; a bad name, a multi-line comment or a NUL is an internal error', () => {
  assert.throws(() => renderGitConfig([], [{ section: 'user]\n[alias', key: 'x', value: 'y' }]), /not a git config name/);
  assert.throws(() => renderGitConfig([], [{ section: 'user', key: 'na me', value: 'y' }]), /not a git config name/);
  assert.throws(() => renderGitConfig(['two\nlines'], []), /one line/);
  assert.throws(() => quoteGitValue('a\0b'), /NUL/);
  assert.equal(quoteGitValue('A "B" \\ [x]\n'), '"A \\"B\\" \\\\ [x]\\n"');
});

const read = (entries) => ({ ok: true, entries: entries.map(([key, value]) => ({ key, value })), from: 'test', notUtf8: [] });

test('carried: identity, default branch and switches; credential helpers, aliases, includes, programs and signing keys stay out, named without their subsection', () => {
  const host = read([
    ['user.name', 'First'],
    ['user.name', 'Ada Lovelace'],
    ['user.email', 'ada@example.org'],
    ['init.defaultbranch', 'trunk'],
    ['core.autocrlf', null],
    ['pull.rebase', 'true'],
    ['credential.helper', 'store'],
    ['credential.https://example.com.helper', '!f() { echo password=hunter2; }; f'],
    ['alias.pwn', '!touch /tmp/pwned'],
    ['include.path', '~/.gitconfig.d/work'],
    ['includeif.gitdir:~/work/.path', '~/.work'],
    ['url.https://user:s3cret-token@github.com/.insteadof', 'https://github.com/'],
    ['core.pager', 'less'],
    ['core.sshcommand', 'ssh -i ~/.ssh/key'],
    ['core.hookspath', '~/.hooks'],
    ['gpg.format', 'ssh'],
    ['user.signingkey', '~/.ssh/id_ed25519.pub'],
    ['commit.gpgsign', 'true'],
  ]);
  const { plan, content } = boxGitConfig(host);
  assert.deepEqual(plan.carried, ['user.name', 'user.email', 'init.defaultBranch', 'core.autocrlf', 'pull.rebase']);
  assert.deepEqual(plan.leftOut, ['alias.pwn', 'commit.gpgsign', 'core.hookspath', 'core.pager', 'core.sshcommand', 'credential.*.helper', 'credential.helper', 'gpg.format', 'include.path', 'includeif.*.path', 'url.*.insteadof', 'user.signingkey']);
  assert.ok(!JSON.stringify(plan).includes('s3cret') && !content.includes('s3cret') && !content.includes('hunter2'), 'no left-out value shows');
  assert.equal(plan.hostSigns, true);
  assert.equal(plan.problem, null);
  assert.match(content, /^\[user\]\n\tname = "Ada Lovelace"\n\temail = "ada@example.org"\n\[init\]\n\tdefaultBranch = "trunk"\n\[core\]\n\tautocrlf\n\[pull\]\n\trebase = "true"\n$/m);
  assert.ok(content.split('\n').every((l) => l === '' || l.startsWith('#') || l.startsWith('[') || l.startsWith('\t')), content);
});

test('carried, with real git: a hostile identity injects nothing', { skip: noGit }, (t) => {
  const dir = tempDir(t);
  const r = prng(7);
  for (let i = 0; i < 20; i++) {
    const name = hostileValue(r) + '\n[alias]\n\tpwn = !touch /tmp/pwned';
    const email = hostileValue(r) + '"\n[credential]\n\thelper = store\n';
    const { content } = boxGitConfig(read([['user.name', name], ['user.email', email], ['alias.x', '!sh']]));
    const file = join(dir, `g${i}`);
    writeFileSync(file, content);
    assert.deepEqual(gitList(file), [{ key: 'user.name', value: name }, { key: 'user.email', value: email }]);
  }
});

test('signing: the host signs when commit.gpgsign or tag.gpgsign reads as true (last value wins), not otherwise', () => {
  const signs = (entries) => boxGitConfig(read(entries)).plan.hostSigns;
  for (const v of [null, 'true', 'YES', 'on', '1', '2k', ' true ']) assert.equal(signs([['commit.gpgsign', v]]), true, String(v));
  for (const v of ['false', 'no', 'off', '0', '', 'maybe']) assert.equal(signs([['commit.gpgsign', v]]), false, String(v));
  assert.equal(signs([['tag.gpgsign', 'true']]), true);
  assert.equal(signs([['tag.forcesignannotated', 'yes']]), true);
  assert.equal(signs([['commit.gpgsign', 'true'], ['commit.gpgsign', 'false']]), false);
  assert.equal(signs([['gpg.format', 'ssh'], ['user.signingkey', 'k']]), false);
});

test('the launch note: the identity and why config writes fail when the box holds a repository; signing and an unreadable config always; nothing else otherwise', () => {
  const note = (host, repo) => {
    const { plan } = boxGitConfig(host);
    return gitLaunchNote({ ...plan, homeLink: null }, repo);
  };
  const withId = read([['user.name', 'A'], ['user.email', 'a@x']]);
  assert.match(note(withId, true), /^git in the box: user\.name, user\.email from your git config; git config cannot write there \(read-only: "Device or resource busy" for \.git\/config, "Read-only file system" for --global\): run it outside the box$/);
  assert.equal(note(withId, false), null);
  assert.match(note(read([]), true), /no identity in your git config \(git will ask for one\)/);
  const signing = note(read([['user.name', 'A'], ['commit.gpgsign', 'true']]), false);
  assert.match(signing, /^git in the box: commits and tags are not signed there, though your config signs them: no signing key or agent/);
  assert.ok(!signing.includes('\n'));
  assert.match(note({ ok: false, problem: 'fatal: bad config line 1', from: 'x' }, false), /could not be read \(fatal: bad config line 1\), so the box has no git identity/);
  assert.equal(note(null, true), null, 'no git on the host: nothing to say');
});

test('parseGitList: records split on NUL, key and value on the first newline, a bare key as null, a value not UTF-8 left out by name; with a scope, only its entries', () => {
  const out = Buffer.concat([Buffer.from('user.name\nA\nB\0core.autocrlf\0user.email\n'), Buffer.from([0xff, 0xfe]), Buffer.from('\0init.defaultbranch\nmain\0')]);
  assert.deepEqual(parseGitList(out), {
    entries: [{ key: 'user.name', value: 'A\nB' }, { key: 'core.autocrlf', value: null }, { key: 'init.defaultbranch', value: 'main' }],
    notUtf8: ['user.email'],
  });
  const scoped = Buffer.from('global\0user.name\nG\0local\0user.name\nL\0command\0alias.x\n!sh\0global\0core.autocrlf\0');
  assert.deepEqual(parseGitList(scoped, 'global').entries, [{ key: 'user.name', value: 'G' }, { key: 'core.autocrlf', value: null }]);
});

/** An identity as resolveIdentity makes one; hostUid 0 stands for a root launcher. */
function who(home, hostUid = 1000) {
  return { hostUid, uid: process.getuid(), gid: process.getgid(), user: 'tester', home };
}

test('host read: git itself reads the global config for the workspace: includes followed, an includeIf gitdir: applying there only, the repository\'s own config not carried', { skip: noGit }, (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const ws = join(dir, 'ws');
  mkdirSync(home);
  mkdirSync(ws);
  execFileSync(GIT, ['init', '-q', ws], { env: GIT_ENV });
  // The repository's own config is the box's to read there: it is not carried into the global one.
  execFileSync(GIT, ['config', '--file', join(ws, '.git', 'config'), 'user.email', 'local@example.org'], { env: GIT_ENV });
  writeFileSync(join(home, '.gitconfig'), `[user]\n\tname = Host Name\n[include]\n\tpath = inc\n[includeIf "gitdir:${ws}/"]\n\tpath = ws-inc\n[alias]\n\tpwn = !touch ${dir}/pwned\n`);
  writeFileSync(join(home, 'inc'), '[user]\n\temail = inc@example.org\n');
  writeFileSync(join(home, 'ws-inc'), '[user]\n\tname = Work Name\n');
  const inWs = readHostGitConfig(who(home), ws, { HOME: home });
  assert.equal(inWs.ok, true, inWs.problem);
  const effective = (r) => boxGitConfig(r).content.split('\n').filter((l) => l.startsWith('\t'));
  assert.deepEqual(effective(inWs), ['\tname = "Work Name"', '\temail = "inc@example.org"']);
  assert.deepEqual(effective(readHostGitConfig(who(home), dir, { HOME: home })), ['\tname = "Host Name"', '\temail = "inc@example.org"']);
  assert.match(inWs.from, /config --list --includes --show-scope \(its global scope\), as tester/);
});

test('host read: the launcher\'s GIT_CONFIG_GLOBAL and XDG_CONFIG_HOME count for its own user; a root launcher reads the agent user\'s home only', { skip: noGit }, (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  mkdirSync(join(dir, 'xdg', 'git'), { recursive: true });
  mkdirSync(home);
  writeFileSync(join(home, '.gitconfig'), '[user]\n\tname = From Home\n');
  writeFileSync(join(dir, 'xdg', 'git', 'config'), '[user]\n\temail = xdg@example.org\n');
  writeFileSync(join(dir, 'other'), '[user]\n\tname = From Env\n');
  const names = (r) => r.entries.map((e) => `${e.key}=${e.value}`);
  assert.deepEqual(names(readHostGitConfig(who(home), dir, { HOME: home, XDG_CONFIG_HOME: join(dir, 'xdg') })), ['user.email=xdg@example.org', 'user.name=From Home']);
  assert.deepEqual(names(readHostGitConfig(who(home), dir, { HOME: home, GIT_CONFIG_GLOBAL: join(dir, 'other') })), ['user.name=From Env']);
  assert.deepEqual(names(readHostGitConfig(who(home, 0), dir, { HOME: '/root', GIT_CONFIG_GLOBAL: join(dir, 'other') })), ['user.name=From Home']);
});

test('host read: no global config is no identity (not a problem); a config git cannot parse is a problem with git\'s words; no git is null', { skip: noGit }, (t) => {
  const dir = tempDir(t);
  const none = readHostGitConfig(who(join(dir, 'none')), dir, {});
  assert.equal(none.ok, true, none.problem);
  assert.deepEqual(none.entries, []);
  writeFileSync(join(dir, '.gitconfig'), '[user\n\tname = x\n');
  const bad = readHostGitConfig(who(dir), dir, { HOME: dir });
  assert.equal(bad.ok, false);
  assert.match(bad.problem, /bad config line 1/);
  assert.equal(readHostGitConfig(who(dir), dir, { HOME: dir }, null), null);
});
