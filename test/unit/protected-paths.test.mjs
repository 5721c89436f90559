// protectedPathsFor and the git directory walk on real directory trees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { PLACEHOLDER_CONTENT, PROTECTED_DIRS, PROTECTED_FILES, protectedPathsFor, protectionPlan } from '../../dist/sandbox/protected-paths.js';
import { walkGitDirs } from '../../dist/sandbox/tree-walk.js';

/** The git directories found below the given roots, sorted. */
const gitDirsIn = (...roots) => [...walkGitDirs(roots).gitDirs].sort();
import { tempDir } from '../fixtures/unit/helpers.mjs';

function put(root, rel, content = '') {
  const p = join(root, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, content);
  return p;
}
function dir(root, rel) {
  const p = join(root, rel);
  mkdirSync(p, { recursive: true });
  return p;
}
/** A git directory as git makes it: HEAD, objects/, refs/, config, hooks/. */
function gitDir(p, { hooks = true, config = true } = {}) {
  mkdirSync(join(p, 'objects'), { recursive: true });
  mkdirSync(join(p, 'refs'), { recursive: true });
  writeFileSync(join(p, 'HEAD'), 'ref: refs/heads/main\n');
  if (config) writeFileSync(join(p, 'config'), '[core]\n');
  if (hooks) mkdirSync(join(p, 'hooks'));
  return p;
}

const isUnder = (parent, child) => child !== parent && child.startsWith(parent + sep);

function assertParentsFirst(actions) {
  actions.forEach((a, i) => {
    for (const b of actions.slice(i + 1)) {
      assert.ok(!isUnder(b.path, a.path), `${b.path} comes after its descendant ${a.path}`);
    }
  });
  assert.equal(new Set(actions.map((a) => a.path)).size, actions.length, 'no path twice');
}

/**
 * Every directory between a writable root and a protected path has an action
 * (a pin, or a cover of its own) listed before it: renaming it away would
 * carry the protection with it.
 */
function assertPinnedAncestors(actions, roots) {
  const at = new Map(actions.map((a, i) => [a.path, i]));
  for (const [i, a] of actions.entries()) {
    if (a.action === 'pin') {
      assert.ok(roots.some((r) => isUnder(r, a.path)), `pin ${a.path} is not strictly inside a writable root`);
      assert.ok(actions.some((b) => b.action !== 'pin' && isUnder(a.path, b.path)), `pin ${a.path} protects nothing`);
      continue;
    }
    const top = roots.filter((r) => isUnder(r, a.path)).sort((x, y) => y.length - x.length)[0];
    if (top === undefined) continue;
    for (let d = dirname(a.path); d !== top; d = dirname(d)) {
      assert.ok(at.has(d), `${d} (above ${a.path}) is not pinned`);
      assert.ok(at.get(d) < i, `${d} is listed after ${a.path}`);
    }
  }
}

const byPath = (actions) => Object.fromEntries(actions.map((a) => [a.path, a]));

test('an empty root gets a placeholder for every protected path, and its missing parents are pinned', (t) => {
  const root = tempDir(t);
  const actions = protectedPathsFor(root, [root]);
  assertParentsFirst(actions);
  assertPinnedAncestors(actions, [root]);
  const expected = [
    ...PROTECTED_DIRS.map((d) => ({ action: 'placeholder', path: join(root, d), type: 'dir' })),
    ...PROTECTED_FILES.map((f) => ({ action: 'placeholder', path: join(root, f), type: 'file', ...(PLACEHOLDER_CONTENT[f] ? { content: PLACEHOLDER_CONTENT[f] } : {}) })),
    // No repository: an empty read-only .git keeps the agent from making one.
    { action: 'placeholder', path: join(root, '.git'), type: 'dir' },
    { action: 'pin', path: join(root, '.claude') },
  ];
  const sortByPath = (xs) => [...xs].sort((a, b) => a.path.localeCompare(b.path));
  assert.deepEqual(sortByPath(actions), sortByPath(expected));
  // The lists cover the usual suspects.
  for (const f of ['.bashrc', '.profile', '.zshrc', '.mcp.json', '.claude/settings.json']) assert.ok(PROTECTED_FILES.includes(f), f);
  for (const d of ['.vscode', '.claude/commands']) assert.ok(PROTECTED_DIRS.includes(d), d);
  // An agent that finds an empty .mcp.json may load no MCP server at all: JSON placeholders parse.
  for (const [f, content] of Object.entries(PLACEHOLDER_CONTENT)) assert.doesNotThrow(() => JSON.parse(content), f);
  assert.deepEqual(JSON.parse(PLACEHOLDER_CONTENT['.mcp.json']), { mcpServers: {} });
});

test('existing protected paths are read-only; .claude/settings*.json are found by name', (t) => {
  const root = tempDir(t);
  put(root, '.bashrc', 'echo hi\n');
  dir(root, '.vscode');
  put(root, '.vscode/tasks.json', '{}');
  put(root, '.claude/settings.json', '{}');
  put(root, '.claude/settings.team.json', '{}');
  put(root, '.claude/notes.json', '{}');
  dir(root, '.claude/commands');
  const a = byPath(protectedPathsFor(root, [root]));
  assert.deepEqual(a[join(root, '.bashrc')], { action: 'readonly', path: join(root, '.bashrc'), type: 'file' });
  assert.deepEqual(a[join(root, '.vscode')], { action: 'readonly', path: join(root, '.vscode'), type: 'dir' });
  assert.deepEqual(a[join(root, '.claude/settings.json')], { action: 'readonly', path: join(root, '.claude/settings.json'), type: 'file' });
  assert.deepEqual(a[join(root, '.claude/settings.team.json')], { action: 'readonly', path: join(root, '.claude/settings.team.json'), type: 'file' });
  assert.deepEqual(a[join(root, '.claude/commands')], { action: 'readonly', path: join(root, '.claude/commands'), type: 'dir' });
  assert.deepEqual(a[join(root, '.claude')], { action: 'pin', path: join(root, '.claude') });
  assert.deepEqual(a[join(root, '.claude/settings.local.json')], { action: 'placeholder', path: join(root, '.claude/settings.local.json'), type: 'file', content: '{}\n' });
  assert.deepEqual(a[join(root, '.claude/agents')], { action: 'placeholder', path: join(root, '.claude/agents'), type: 'dir' });
  assert.equal(a[join(root, '.claude/notes.json')], undefined);
  assert.equal(a[join(root, '.vscode/tasks.json')], undefined, 'covered by .vscode');
});

test('a symlinked protected file is masked, not followed', (t) => {
  const root = tempDir(t);
  const outside = tempDir(t);
  put(outside, 'rc', 'evil\n');
  symlinkSync(join(outside, 'rc'), join(root, '.bashrc'));
  symlinkSync(join(outside, 'nothing-here'), join(root, '.zshrc')); // dangling
  const a = byPath(protectedPathsFor(root, [root]));
  assert.deepEqual(a[join(root, '.bashrc')], { action: 'mask-symlink', path: join(root, '.bashrc') });
  assert.deepEqual(a[join(root, '.zshrc')], { action: 'mask-symlink', path: join(root, '.zshrc') });
});

test('a symlinked .claude is masked itself, with nothing below it', (t) => {
  const root = tempDir(t);
  const outside = tempDir(t);
  put(outside, 'settings.json', '{}');
  dir(outside, 'commands');
  symlinkSync(outside, join(root, '.claude'));
  const actions = protectedPathsFor(root, [root]);
  assertParentsFirst(actions);
  const claude = join(root, '.claude');
  assert.deepEqual(actions.filter((x) => x.path === claude), [{ action: 'mask-symlink', path: claude }]);
  assert.deepEqual(actions.filter((x) => isUnder(claude, x.path)), []);
  assert.ok(actions.every((x) => !x.path.startsWith(outside)), 'the link target is never listed');
});

test('a regular file where .claude (a directory) belongs is covered too', (t) => {
  // Otherwise the agent could replace the file with a directory holding settings.json.
  const root = tempDir(t);
  put(root, '.claude', 'not a directory');
  const actions = protectedPathsFor(root, [root]);
  assertParentsFirst(actions);
  assertPinnedAncestors(actions, [root]);
  const claude = join(root, '.claude');
  assert.deepEqual(actions.filter((x) => x.path === claude || isUnder(claude, x.path)), [{ action: 'readonly', path: claude, type: 'file' }],
    'the file itself is read-only, nothing below it is listed and it is no pin');
  // The same deeper down: a file where the directory of core.hooksPath belongs.
  const gd = gitDir(join(root, '.git'));
  writeFileSync(join(gd, 'config'), '[core]\n\thooksPath = tools/git-hooks\n');
  put(root, 'tools', 'a file');
  const deeper = protectedPathsFor(root, [root]);
  assertParentsFirst(deeper);
  const tools = join(root, 'tools');
  assert.deepEqual(deeper.filter((x) => x.path === tools || isUnder(tools, x.path)), [{ action: 'readonly', path: tools, type: 'file' }]);
});

test('a normal repository: hooks and config of .git', (t) => {
  const root = tempDir(t);
  gitDir(join(root, '.git'));
  assert.deepEqual(gitDirsIn(root), [join(root, '.git')]);
  const actions = protectedPathsFor(root, [root]);
  assertParentsFirst(actions);
  const a = byPath(actions);
  assert.deepEqual(a[join(root, '.git/hooks')], { action: 'readonly', path: join(root, '.git/hooks'), type: 'dir' });
  assert.deepEqual(a[join(root, '.git/config')], { action: 'readonly', path: join(root, '.git/config'), type: 'file' });
  // The pointer files git would follow cannot be created: commondir gets one naming the directory itself
  // (git dies on an empty commondir, and reads "." as no common directory at all).
  assert.deepEqual(a[join(root, '.git/commondir')], { action: 'placeholder', path: join(root, '.git/commondir'), type: 'file', content: '.\n' });
  assert.deepEqual(a[join(root, '.git/config.worktree')], { action: 'placeholder', path: join(root, '.git/config.worktree'), type: 'file' });
  assert.deepEqual(a[join(root, '.git/objects/info/alternates')], { action: 'placeholder', path: join(root, '.git/objects/info/alternates'), type: 'file' });
  assert.deepEqual(a[join(root, '.git')], { action: 'pin', path: join(root, '.git') }, 'a real repository gets no placeholder, only a pin');
});

test('a repository without hooks/ and config gets placeholders for them', (t) => {
  const root = tempDir(t);
  gitDir(join(root, '.git'), { hooks: false, config: false });
  const a = byPath(protectedPathsFor(root, [root]));
  assert.deepEqual(a[join(root, '.git/hooks')], { action: 'placeholder', path: join(root, '.git/hooks'), type: 'dir' });
  assert.deepEqual(a[join(root, '.git/config')], { action: 'placeholder', path: join(root, '.git/config'), type: 'file' });
});

test('a symlinked .git/hooks is masked at that path', (t) => {
  const root = tempDir(t);
  const outside = tempDir(t);
  gitDir(join(root, '.git'), { hooks: false });
  dir(outside, 'hooks');
  symlinkSync(join(outside, 'hooks'), join(root, '.git/hooks'));
  const actions = protectedPathsFor(root, [root]);
  const a = byPath(actions);
  assert.deepEqual(a[join(root, '.git/hooks')], { action: 'mask-symlink', path: join(root, '.git/hooks') });
  assert.deepEqual(a[join(root, '.git/config')], { action: 'readonly', path: join(root, '.git/config'), type: 'file' });
  assert.ok(actions.every((x) => !isUnder(join(root, '.git/hooks'), x.path)));
});

test('a stray .git directory without HEAD is not a repository, and stays read-only as a whole', (t) => {
  // The agent must not turn it into one (add HEAD, a config running code):
  // the same reason a missing .git gets an empty read-only placeholder. An
  // empty .git is also exactly what that placeholder looks like to a second
  // box started on the same workspace while the first runs.
  const root = tempDir(t);
  const dotgit = dir(root, '.git');
  const coverOfDotgit = () => {
    const actions = protectedPathsFor(root, [root]);
    assertParentsFirst(actions);
    return actions.filter((x) => x.path.includes(`${sep}.git`));
  };
  assert.deepEqual(gitDirsIn(root), []);
  assert.deepEqual(coverOfDotgit(), [{ action: 'readonly', path: dotgit, type: 'dir' }], 'an empty .git');
  dir(root, '.git/hooks');
  put(root, '.git/config', '');
  assert.deepEqual(gitDirsIn(root), []);
  assert.deepEqual(coverOfDotgit(), [{ action: 'readonly', path: dotgit, type: 'dir' }], 'a stray .git: covered whole, nothing below listed');
  // A HEAD that is a directory does not count either.
  dir(root, '.git/HEAD');
  assert.deepEqual(gitDirsIn(root), []);
});

test('a root without .git, or with an unreadable .git file, has no git directories', (t) => {
  const root = tempDir(t);
  const dotgit = join(root, '.git');
  const gitActions = () => protectedPathsFor(root, [root]).filter((x) => x.path.includes(`${sep}.git`));
  assert.deepEqual(gitDirsIn(root), []);
  assert.deepEqual(gitActions(), [{ action: 'placeholder', path: dotgit, type: 'dir' }]);
  // A .git file decides where git looks, whatever it holds: kept read-only.
  put(root, '.git', 'not a gitdir line\n');
  assert.deepEqual(gitDirsIn(root), []);
  assert.deepEqual(gitActions(), [{ action: 'readonly', path: dotgit, type: 'file' }]);
  writeFileSync(join(root, '.git'), 'gitdir: ./nowhere\n');
  assert.deepEqual(gitDirsIn(root), []);
  assert.deepEqual(gitActions(), [{ action: 'readonly', path: dotgit, type: 'file' }]);
});

function worktree(t) {
  const base = tempDir(t);
  const main = dir(base, 'main');
  const common = gitDir(join(main, '.git'));
  const wtGit = gitDir(join(common, 'worktrees/wt'), { hooks: false, config: false });
  writeFileSync(join(wtGit, 'commondir'), '../..\n');
  writeFileSync(join(wtGit, 'gitdir'), `${join(base, 'wt/.git')}\n`);
  const wt = dir(base, 'wt');
  writeFileSync(join(wt, '.git'), 'gitdir: ../main/.git/worktrees/wt\n');
  return { base, main, common, wtGit, wt };
}

test('a worktree: its own git directory and the common one', (t) => {
  const { main, common, wtGit, wt } = worktree(t);
  assert.deepEqual(gitDirsIn(wt), [], 'the work tree holds only the pointer');
  assert.deepEqual([...walkGitDirs([wt]).pointers], [join(wt, '.git')]);
  assert.deepEqual(gitDirsIn(wt, main), [common, wtGit]);
});

test('a worktree whose main repository is not writable: nothing outside the roots is listed', (t) => {
  const { base, wt } = worktree(t);
  const actions = protectedPathsFor(wt, [wt]);
  assertParentsFirst(actions);
  assert.ok(actions.length > 0);
  for (const x of actions) assert.ok(isUnder(wt, x.path), `${relative(base, x.path)} is outside the writable root`);
  // The pointer file itself is in the root: read-only, never a placeholder.
  assert.deepEqual(byPath(actions)[join(wt, '.git')], { action: 'readonly', path: join(wt, '.git'), type: 'file' });
});

test('a worktree whose main repository is writable too: the common hooks and config are protected', (t) => {
  const { main, common, wtGit, wt } = worktree(t);
  const actions = [...protectedPathsFor(main, [wt, main]), ...protectedPathsFor(wt, [wt, main])];
  assertParentsFirst(actions);
  assertPinnedAncestors(actions, [wt, main]);
  assert.equal(byPath(actions)[common]?.action, 'pin');
  assert.equal(byPath(actions)[main], undefined, 'a writable root itself is never pinned');
  const a = byPath(actions);
  assert.deepEqual(a[join(common, 'hooks')], { action: 'readonly', path: join(common, 'hooks'), type: 'dir' });
  assert.deepEqual(a[join(common, 'config')], { action: 'readonly', path: join(common, 'config'), type: 'file' });
  assert.deepEqual(a[join(wt, '.git')], { action: 'readonly', path: join(wt, '.git'), type: 'file' });
  // A linked work tree's git directory: its pointers to the common directory and back, and its own config.
  assert.deepEqual(a[join(wtGit, 'commondir')], { action: 'readonly', path: join(wtGit, 'commondir'), type: 'file' });
  assert.deepEqual(a[join(wtGit, 'gitdir')], { action: 'readonly', path: join(wtGit, 'gitdir'), type: 'file' });
  assert.equal(a[join(wtGit, 'config.worktree')]?.action, 'placeholder');
  assert.equal(a[join(wtGit, 'hooks')], undefined, 'git takes hooks and config from the common directory');
});

test('submodules: git directories under modules/, nested, found and protected', (t) => {
  const root = tempDir(t);
  const top = gitDir(join(root, '.git'));
  const a = gitDir(join(top, 'modules/a'));
  const b = gitDir(join(a, 'modules/b'));
  const deep = gitDir(join(top, 'modules/libs/deep/c')); // submodule at a nested path
  dir(top, 'modules/not-a-repo/x');
  assert.deepEqual(gitDirsIn(root), [top, a, b, deep].sort());
  const actions = protectedPathsFor(root, [root]);
  assertParentsFirst(actions);
  assertPinnedAncestors(actions, [root]);
  const m = byPath(actions);
  for (const p of ['.git', '.git/modules', '.git/modules/a', '.git/modules/a/modules', '.git/modules/libs/deep']) {
    assert.deepEqual(m[join(root, p)], { action: 'pin', path: join(root, p) }, p);
  }
  for (const gd of [top, a, b, deep]) {
    assert.deepEqual(m[join(gd, 'hooks')], { action: 'readonly', path: join(gd, 'hooks'), type: 'dir' }, gd);
  }
  assert.deepEqual(m[join(top, 'config')], { action: 'readonly', path: join(top, 'config'), type: 'file' });
  // A submodule's config stays writable (git submodule update rewrites it); the snapshot keeps it to undo other changes.
  const plan = protectionPlan([root], [], {});
  for (const gd of [a, b, deep]) {
    assert.equal(m[join(gd, 'config')], undefined, gd);
    assert.equal(plan.git.submoduleConfigs[join(gd, 'config')].toString(), '[core]\n');
  }
});

test('a submodule checkout: .git file pointing into the superproject', (t) => {
  const base = tempDir(t);
  const superGit = gitDir(join(base, '.git'));
  const mod = gitDir(join(superGit, 'modules/lib'));
  const nested = gitDir(join(mod, 'modules/inner'));
  const sub = dir(base, 'lib');
  writeFileSync(join(sub, '.git'), 'gitdir: ../.git/modules/lib\n');
  assert.deepEqual(gitDirsIn(base), [superGit, mod, nested].sort());
  // Protected when the superproject is writable, not when only the checkout is.
  assert.deepEqual(byPath(protectedPathsFor(base, [base]))[join(mod, 'hooks')], { action: 'readonly', path: join(mod, 'hooks'), type: 'dir' });
  assert.equal(byPath(protectedPathsFor(sub, [sub]))[join(mod, 'hooks')], undefined);
  // Either way the pointer file is read-only.
  for (const roots of [[base], [sub]]) {
    assert.deepEqual(byPath(protectedPathsFor(sub, roots))[join(sub, '.git')], { action: 'readonly', path: join(sub, '.git'), type: 'file' }, roots[0]);
  }
});

test('a symlinked .git is masked, not followed', (t) => {
  // git follows a .git symlink (the repo tool makes them); hooks written
  // through it would run on the host.
  const root = tempDir(t);
  const real = gitDir(join(root, 'gitdata'));
  symlinkSync('gitdata', join(root, '.git'));
  const actions = protectedPathsFor(root, [root]);
  assertParentsFirst(actions);
  const covered = actions.some((x) => x.path === join(root, '.git') || x.path === join(real, 'hooks'));
  assert.ok(covered, `neither ${join(root, '.git')} nor ${join(real, 'hooks')} is protected: ${JSON.stringify(actions.map((x) => relative(root, x.path)))}`);
  assert.deepEqual(byPath(actions)[join(root, '.git')], { action: 'mask-symlink', path: join(root, '.git') });
});

test('config.worktree of each writable git directory is protected', (t) => {
  const root = tempDir(t);
  const gd = gitDir(join(root, '.git'));
  let a = byPath(protectedPathsFor(root, [root]));
  assert.deepEqual(a[join(gd, 'config.worktree')], { action: 'placeholder', path: join(gd, 'config.worktree'), type: 'file' });
  writeFileSync(join(gd, 'config.worktree'), '[core]\n');
  a = byPath(protectedPathsFor(root, [root]));
  assert.deepEqual(a[join(gd, 'config.worktree')], { action: 'readonly', path: join(gd, 'config.worktree'), type: 'file' });
});

test('core.hooksPath inside a writable root is protected; outside it is not', (t) => {
  const root = tempDir(t);
  const gd = gitDir(join(root, '.git'));
  writeFileSync(join(gd, 'config'), '[core]\n\thooksPath = .husky\n');
  let actions = protectedPathsFor(root, [root]);
  assertParentsFirst(actions);
  assert.deepEqual(byPath(actions)[join(root, '.husky')], { action: 'placeholder', path: join(root, '.husky'), type: 'dir' });
  dir(root, 'tools/git-hooks');
  writeFileSync(join(gd, 'config'), '[core]\n\thooksPath = tools/git-hooks\n');
  actions = protectedPathsFor(root, [root]);
  assertParentsFirst(actions);
  assertPinnedAncestors(actions, [root]);
  assert.deepEqual(byPath(actions)[join(root, 'tools/git-hooks')], { action: 'readonly', path: join(root, 'tools/git-hooks'), type: 'dir' });
  assert.deepEqual(byPath(actions)[join(root, 'tools')], { action: 'pin', path: join(root, 'tools') });
  const outside = tempDir(t);
  writeFileSync(join(gd, 'config'), `[core]\n\thooksPath = ${outside}\n`);
  assert.ok(protectedPathsFor(root, [root]).every((x) => !x.path.startsWith(outside)));
  writeFileSync(join(gd, 'config'), '[core]\n\thooksPath = ~/hooks\n');
  assert.ok(protectedPathsFor(root, [root]).every((x) => isUnder(root, x.path)));
});

test('parents come before children', (t) => {
  // A git directory that is itself a protected directory: .vscode holds HEAD.
  const root = tempDir(t);
  gitDir(join(root, '.vscode'));
  writeFileSync(join(root, '.git'), 'gitdir: .vscode\n');
  const actions = protectedPathsFor(root, [root]);
  assertParentsFirst(actions);
  const paths = actions.map((x) => x.path);
  assert.deepEqual(byPath(actions)[join(root, '.git')], { action: 'readonly', path: join(root, '.git'), type: 'file' });
  assert.ok(paths.indexOf(join(root, '.vscode')) >= 0);
  assert.ok(paths.indexOf(join(root, '.vscode')) < paths.indexOf(join(root, '.vscode/hooks')));
  assert.ok(paths.indexOf(join(root, '.vscode')) < paths.indexOf(join(root, '.vscode/config')));
  // And with a symlinked parent: only the parent.
  const root2 = tempDir(t);
  dir(root2, 'elsewhere/commands');
  symlinkSync('elsewhere', join(root2, '.claude'));
  put(root2, '.bashrc');
  const actions2 = protectedPathsFor(root2, [root2]);
  assertParentsFirst(actions2);
});
