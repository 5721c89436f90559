// The git config reader against git itself: random config texts built from
// the whole syntax (quotes, escapes, continuations, comments, subsections,
// keys on the header line, the deprecated [a.b] form, CRLF) must read the
// same as `git config --file F --list -z` wherever git accepts the file,
// and never throw where it does not. Plus include chains and path references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseGitConfig, readConfigChain, resolveConfigPath } from '../../dist/sandbox/git-config.js';
import { pathTokens, referencedPaths } from '../../dist/sandbox/path-references.js';
import { prng, tempDir } from '../fixtures/unit/helpers.mjs';

const HAS_GIT = existsSync('/usr/bin/git');

/** What git reads from a file: [name, value|null] in order, or null when git rejects it. */
function gitList(file) {
  const r = spawnSync('git', ['config', '--file', file, '--no-includes', '--list', '-z'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', GIT_CONFIG_NOSYSTEM: '1', HOME: '/nonexistent' } });
  if (r.status !== 0) return null;
  return r.stdout.split('\0').filter((x) => x !== '').map((item) => {
    const nl = item.indexOf('\n');
    return nl < 0 ? [item, null] : [item.slice(0, nl), item.slice(nl + 1)];
  });
}

const ours = (text) => parseGitConfig(text).map((e) => [e.section === '' ? e.key : `${e.section}${e.subsection === null ? '' : `.${e.subsection}`}.${e.key}`, e.value]);

function randomConfig(r) {
  const ws = () => r.pick(['', ' ', '\t', '  ']);
  const name = () => r.pick(['core', 'Core', 'alias', 'include', 'includeIf', 'filter', 'diff', 'x-y']);
  const key = () => r.pick(['fsmonitor', 'hooksPath', 'pager', 'path', 'Editor', 'a1', 'b-c']);
  const piece = () => r.pick(['abc', './tools/x.sh', '~/y', 'a b', '#', ';', '\\"', '\\\\', '\\n', '\\t', '\\b', '"q q"', '"#;"', '=', 'é', '\\\n', '"\\\n"']);
  const value = () => Array.from({ length: r.below(4) }, piece).join(r.pick(['', ' ', '\t']));
  const sub = () => r.pick(['x', 'X y', 'a\\"b', 'gitdir:~/w/', 'a\\\\b', '']);
  const lines = [];
  for (let i = 0, n = 1 + r.below(10); i < n; i++) {
    const k = r.below(10);
    if (k === 0) lines.push(`${ws()}[${name()}]${ws()}`);
    else if (k === 1) lines.push(`[${name()} "${sub()}"]`);
    else if (k === 2) lines.push(`[${name()}.${r.pick(['Sub', 'sub'])}]`);
    else if (k === 3) lines.push(`[${name()}] ${key()} = ${value()}`);
    else if (k === 4) lines.push(r.pick(['# comment', '; comment', '']));
    else if (k === 5) lines.push(`${ws()}${key()}`);
    else lines.push(`${ws()}${key()}${ws()}=${ws()}${value()}${r.pick(['', ' # tail', ' ; tail', ws()])}`);
  }
  const text = lines.join(r.chance(0.2) ? '\r\n' : '\n') + (r.chance(0.7) ? '\n' : '');
  return r.chance(0.1) ? `\ufeff${text}` : text;
}

test('the reader agrees with git on 600 random config files', { skip: HAS_GIT ? false : 'git is not installed' }, (t) => {
  const dir = tempDir(t);
  const r = prng(0x6c67);
  let compared = 0;
  for (let i = 0; i < 600; i++) {
    const text = randomConfig(r);
    const f = join(dir, `c${i}`);
    writeFileSync(f, text);
    const mine = ours(text); // must not throw, whatever git thinks
    const git = gitList(f);
    if (git === null) continue;
    compared++;
    assert.deepEqual(mine, git, `case ${i}: ${JSON.stringify(text)}`);
  }
  assert.ok(compared > 200, `only ${compared} of 600 random files were valid to git: the generator is too wild to prove anything`);
});

test('values: quotes, escapes, continuations and comments as git reads them', () => {
  const one = (text) => parseGitConfig(text).map((e) => e.value);
  assert.deepEqual(one('[core]\n\tfsmonitor = "touch /tmp/x; false" # run\n'), ['touch /tmp/x; false']);
  assert.deepEqual(one('[core]\n\tpager = less \\\n  -R\n'), ['less   -R']);
  assert.deepEqual(one('[a]\nb = x\\ty\\n"  z  "\n'), ['x\ty\n  z  ']);
  assert.deepEqual(one('[a] b = on-the-header-line\n'), ['on-the-header-line']);
  assert.deepEqual(parseGitConfig('[a]\nflag\n').map((e) => [e.key, e.value]), [['flag', null]]);
  assert.deepEqual(parseGitConfig('[includeIf "gitdir:~/work/"]\n\tpath = ~/work/.gitconfig\n')[0], { section: 'includeif', subsection: 'gitdir:~/work/', key: 'path', value: '~/work/.gitconfig' });
  // Malformed lines are skipped, never thrown on; what follows still reads.
  assert.deepEqual(one('[a]\nb = "unterminated\n[c]\nd = ok\n'), ['ok']);
  assert.deepEqual(one('[a]\nb = bad\\qescape\nc = ok\n'), ['ok']);
  assert.ok(parseGitConfig('not a section\n[a\nb = 1\n[c]\nd = 2\n').some((e) => e.section === 'c' && e.key === 'd' && e.value === '2'));
});

test('include chains: include.path and every includeIf path, relative to the including file, ~ expanded, cycles cut', (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  mkdirSync(join(home, 'cfg'), { recursive: true });
  mkdirSync(join(dir, 'repo', '.git'), { recursive: true });
  const top = join(dir, 'repo', '.git', 'config');
  writeFileSync(top, '[include]\n\tpath = ../shared.gitconfig\n[includeIf "onbranch:main"]\n\tpath = ~/cfg/a\n[includeIf "gitdir:/nowhere/"]\n\tpath = missing\n');
  writeFileSync(join(dir, 'repo', 'shared.gitconfig'), '[include]\n\tpath = .git/config\n'); // a cycle back
  writeFileSync(join(home, 'cfg', 'a'), '[core]\n\thooksPath = hooks\n');
  const chain = readConfigChain(top, home);
  assert.deepEqual(chain.files.map((f) => f.file), [top, join(dir, 'repo', 'shared.gitconfig'), join(home, 'cfg', 'a')]);
  assert.deepEqual(chain.missing, [join(dir, 'repo', '.git', 'missing')]);
  assert.equal(resolveConfigPath(':(optional)~/x', top, home), join(home, 'x'));
  assert.equal(resolveConfigPath('~other/x', top, home), undefined, "another user's home is not guessed");
  assert.equal(resolveConfigPath('/abs/../p', top, home), '/p');
});

test('path references: tokens of any config text that look like paths, resolved against each base', () => {
  assert.deepEqual(pathTokens('{"command": "bash -c \\"$CLAUDE_PROJECT_DIR/.claude/hooks/fmt.sh\\"", "x": "https://example.com/a/b"}').sort(),
    ['$CLAUDE_PROJECT_DIR/.claude/hooks/fmt.sh'].sort());
  assert.deepEqual(pathTokens('fsmonitor = ./tools/fsmon.sh;notify=["/opt/bin/n"]'), ['./tools/fsmon.sh', '/opt/bin/n']);
  assert.deepEqual(pathTokens('"statusLine": {"command": "~\\/.claude\\/status.sh"}'), ['~/.claude/status.sh']);
  const refs = referencedPaths('run $CLAUDE_PROJECT_DIR/a/b.sh ~/c/d ./e/f ${UNKNOWN}/g/h', { bases: ['/ws', '/ws/.claude'], home: '/home/u', vars: { CLAUDE_PROJECT_DIR: '/ws' } });
  assert.deepEqual(refs.sort(), ['/ws/a/b.sh', '/home/u/c/d', '/ws/e/f', '/ws/.claude/e/f'].sort());
});
