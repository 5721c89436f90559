// Agent state files in a real box, in both launcher modes (no real agent: a
// shell plays it). The claude-code profile's ~/.claude.json is a private
// copy in the box, merged back at exit: the box adds MCP servers at both
// levels and counts a startup, and afterwards the host file has the count
// and no new server; invalid JSON left by the box changes nothing and is
// kept aside; the box cannot create ~/.claude/.config.json (which Claude
// Code would prefer) on the host; and a root launcher whose user planted
// ~/.claude.json as a symlink to a root-owned file never writes through it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, testUser, sh } from '../helpers/sandbox.mjs';
import { lockTestUserClaudeState } from '../helpers/agents.mjs';

const isRoot = process.getuid() === 0;
// The box's HOME is the test user's home on the host: only touched as root,
// where it belongs to the test user, never a developer's own home.
const notRoot = isRoot ? undefined : 'needs root: writes under the test user\'s home (/home/lgtest), which a non-root run would take from your own';

let home;
const stateFile = () => path.join(home, '.claude.json');
const claudeDir = () => path.join(home, '.claude');
const lexists = (p) => fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined;
const rootDirs = [];

// Held for the whole file: no box of another file writes this home's Claude Code state meanwhile.
let release;
before(async () => {
  if (isRoot) home = `/home/${testUser().name}`;
  release = await lockTestUserClaudeState();
});

/** The test user's home, made if missing (other test files share it: made again, never removed with their files in it). */
function ensureHome() {
  if (lexists(home)) return;
  fs.mkdirSync(home, { mode: 0o755 });
  fs.chownSync(home, testUser().uid, testUser().gid);
}

/** Removes what these tests made in the test user's home (state file, its leftovers, ~/.claude). */
function clearHome() {
  for (const n of fs.readdirSync(home)) if (n === '.claude.json' || n.startsWith('.claude.json.')) fs.rmSync(path.join(home, n), { force: true });
  fs.rmSync(claudeDir(), { recursive: true, force: true });
}

after(() => {
  if (home && lexists(home)) {
    clearHome();
    try {
      fs.rmdirSync(home); // only if nothing else is in it
    } catch {
      // another test's files: theirs to remove
    }
  }
  release?.();
  for (const d of rootDirs) fs.rmSync(d, { recursive: true, force: true });
  cleanupWorkspaces();
});

const USER_SERVER = { command: 'my-own-server', args: ['--stdio'] };

/** A fresh ~/.claude (owned by the test user) and ~/.claude.json holding the user's own MCP server. */
function freshState(doc = { numStartups: 5, mcpServers: { mine: USER_SERVER }, projects: { '/p': { allowedTools: ['Read'], lastCost: 1 } } }, mode = 0o640) {
  ensureHome();
  clearHome();
  const u = testUser();
  fs.mkdirSync(claudeDir(), { mode: 0o755 });
  fs.chownSync(claudeDir(), u.uid, u.gid);
  fs.writeFileSync(stateFile(), JSON.stringify(doc), { mode });
  fs.chmodSync(stateFile(), mode);
  fs.chownSync(stateFile(), u.uid, u.gid);
  return doc;
}

const readState = () => JSON.parse(fs.readFileSync(stateFile(), 'utf8'));
const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Shell that replaces the file the state file's path leads to, by temp file and rename, as Claude Code does. */
const replaceViaRename = (doc) => `t=$(readlink -f "$HOME/.claude.json") && printf '%s' ${q(JSON.stringify(doc))} > "$t.tmp" && mv "$t.tmp" "$t" && echo REPLACED`;

for (const mode of MODES) {
  describe(`${mode} launcher`, { skip: skipReason(mode) ?? notRoot }, () => {
    test('the box adds MCP servers at both levels and counts a startup: the count lands, no server does', async (t) => {
      const orig = freshState();
      // The launcher's own temp directory: other tests' boxes make private directories in the shared one meanwhile.
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'latchgate-state-tmp-'));
      fs.chmodSync(tmp, 0o1777); // sticky, as the launcher requires of a temp directory others may write
      t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
      const boxDoc = {
        numStartups: 6,
        mcpServers: { mine: { command: 'sh', args: ['-c', 'echo changed'] }, evil: { command: 'sh', args: ['-c', 'touch /tmp/pwned'] } },
        projects: { '/p': { allowedTools: ['Bash(*)'], lastCost: 2, mcpServers: { evil2: { command: 'evil' } } }, '/q': { hasTrustDialogAccepted: true, lastCost: 3 } },
      };
      const r = await sh(mode, [
        '[ -L "$HOME/.claude.json" ] && echo IS-LINK',
        'grep -q my-own-server "$HOME/.claude.json" && echo COPY-HAS-STATE',
        replaceViaRename(boxDoc),
      ].join('\n'), { workspace: makeWorkspace('state'), args: ['--profile', 'claude-code'], env: { TMPDIR: tmp } });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /IS-LINK/);
      assert.match(r.stdout, /COPY-HAS-STATE/);
      assert.match(r.stdout, /REPLACED/);
      const after = readState();
      assert.equal(after.numStartups, 6, 'the state change did not land');
      assert.deepEqual(after.mcpServers, orig.mcpServers, 'the box changed the user-scope MCP servers');
      assert.deepEqual(after.projects['/p'], { allowedTools: ['Read'], lastCost: 2 }, 'the box changed a project\'s servers or tools');
      assert.deepEqual(after.projects['/q'], { lastCost: 3 }, 'the box trusted a project');
      assert.equal(fs.statSync(stateFile()).mode & 0o777, 0o640, 'the file mode changed');
      assert.equal(fs.statSync(stateFile()).uid, testUser().uid);
      // What was dropped is said once, by key path, never by value.
      const line = r.stderr.split('\n').find((l) => l.includes('not merged'));
      assert.ok(line, r.stderr);
      for (const p of ['/mcpServers', '/projects/~1p/allowedTools', '/projects/~1p/mcpServers', '/projects/~1q/hasTrustDialogAccepted']) assert.ok(line.includes(p), line);
      assert.ok(!r.stderr.includes('touch /tmp/pwned') && !r.stderr.includes('Bash(*)'), 'values reached stderr');
      assert.deepEqual(fs.readdirSync(tmp).filter((n) => /^latchgate-state-[0-9a-f]{18}$/.test(n)), [], 'the private directory was left behind');
    });

    test('the box cannot create ~/.claude/.config.json on the host; what it writes there is its own state', async () => {
      freshState();
      const r = await sh(mode, [
        `printf '%s' ${q(JSON.stringify({ numStartups: 9, mcpServers: { evil: { command: 'evil' } } }))} > "$HOME/.claude/.config.json" && echo WROTE`,
        'rm -f "$HOME/.claude/.config.json" 2>/dev/null || echo RM-REFUSED',
      ].join('\n'), { workspace: makeWorkspace('state'), args: ['--profile', 'claude-code'] });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /WROTE/);
      assert.match(r.stdout, /RM-REFUSED/);
      assert.ok(!lexists(path.join(claudeDir(), '.config.json')), '~/.claude/.config.json was left on the host');
      const after = readState();
      assert.equal(after.numStartups, 9);
      assert.deepEqual(after.mcpServers, { mine: USER_SERVER });
    });

    test('invalid JSON left by the box: the host file is unchanged and the box copy is kept aside', async () => {
      freshState();
      const before = fs.readFileSync(stateFile(), 'utf8');
      const r = await sh(mode, 't=$(readlink -f "$HOME/.claude.json") && printf \'{"numStartups": 7, "mcpServers": \' > "$t" && echo TRUNCATED', { workspace: makeWorkspace('state'), args: ['--profile', 'claude-code'] });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /TRUNCATED/);
      assert.equal(fs.readFileSync(stateFile(), 'utf8'), before, 'the host file changed');
      const warnings = r.stderr.split('\n').filter((l) => l.includes('WARNING') && l.includes('.claude.json'));
      assert.equal(warnings.length, 1, r.stderr);
      assert.match(warnings[0], /not valid JSON/);
      const kept = fs.readdirSync(home).filter((n) => n.startsWith('.claude.json.latchgate-box-'));
      assert.equal(kept.length, 1, `one copy kept aside: ${kept}`);
      assert.ok(warnings[0].includes(path.join(home, kept[0])), warnings[0]);
      assert.equal(fs.readFileSync(path.join(home, kept[0]), 'utf8'), '{"numStartups": 7, "mcpServers": ');
      assert.equal(fs.statSync(path.join(home, kept[0])).uid, testUser().uid);
      assert.equal(fs.statSync(path.join(home, kept[0])).mode & 0o777, 0o600);
    });

    test('the box swaps its copy for a symlink to /etc/shadow: the launcher never reads through it', async () => {
      const orig = freshState();
      const r = await sh(mode, 'd=$(dirname "$(readlink "$HOME/.claude.json")") && rm -f "$d/claude.json" && ln -s /etc/shadow "$d/claude.json" && echo SWAPPED', { workspace: makeWorkspace('state'), args: ['--profile', 'claude-code'] });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /SWAPPED/);
      assert.deepEqual(readState(), orig, 'the host file changed');
      assert.deepEqual(fs.readdirSync(home).filter((n) => n.startsWith('.claude.json.')), [], 'something was kept aside');
      assert.match(r.stderr, /the box removed or replaced its copy \(ELOOP\)/);
      assert.ok(!r.stderr.includes('root:'), 'shadow content reached stderr');
    });

    test('a missing ~/.claude.json: the box starts from {} and only what it may write is created', async () => {
      freshState();
      fs.rmSync(stateFile());
      const r = await sh(mode, [
        'cat "$HOME/.claude.json"; echo',
        replaceViaRename({ numStartups: 1, mcpServers: { evil: { command: 'evil' } } }),
      ].join('\n'), { workspace: makeWorkspace('state'), args: ['--profile', 'claude-code'] });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /^\{\}$/m);
      assert.deepEqual(readState(), { numStartups: 1 });
      assert.equal(fs.statSync(stateFile()).mode & 0o777, 0o600);
      assert.equal(fs.statSync(stateFile()).uid, testUser().uid);
    });
  });
}

describe('root launcher, user-planted symlink', { skip: skipReason('root') ?? notRoot }, () => {
  test('~/.claude.json planted as a symlink to a root-owned file: root never writes through it', async () => {
    freshState();
    // A root-owned file the user can read but not write, in a root-owned directory.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latchgate-rootonly-'));
    rootDirs.push(dir);
    fs.chmodSync(dir, 0o755);
    const target = path.join(dir, 'root.json');
    const content = JSON.stringify({ numStartups: 1, owner: 'root' });
    fs.writeFileSync(target, content, { mode: 0o644 });
    const ino = fs.statSync(target).ino;
    fs.rmSync(stateFile());
    fs.symlinkSync(target, stateFile());
    fs.lchownSync(stateFile(), testUser().uid, testUser().gid);

    const r = await sh('root', replaceViaRename({ numStartups: 2, owner: 'box' }), { workspace: makeWorkspace('state'), args: ['--profile', 'claude-code'] });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /REPLACED/);
    assert.equal(fs.readFileSync(target, 'utf8'), content, 'root wrote through the planted symlink');
    assert.equal(fs.statSync(target).ino, ino, 'root replaced the root-owned file');
    assert.deepEqual(fs.readdirSync(dir), ['root.json'], 'root created files in a root-owned directory');
    assert.ok(fs.lstatSync(stateFile()).isSymbolicLink(), 'the symlink itself was replaced');
    // Nothing is lost: the box's copy is kept aside, in the user's home, as the user.
    const warning = r.stderr.split('\n').find((l) => l.includes('WARNING') && l.includes('cannot write the host file'));
    assert.ok(warning, r.stderr);
    const kept = fs.readdirSync(home).filter((n) => n.startsWith('.claude.json.latchgate-box-'));
    assert.equal(kept.length, 1, r.stderr);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(home, kept[0]), 'utf8')), { numStartups: 2, owner: 'box' });
    assert.equal(fs.statSync(path.join(home, kept[0])).uid, testUser().uid);
  });

  test('the same symlink to a file the user owns is written through, as Claude Code itself does', async () => {
    freshState();
    const u = testUser();
    const dots = path.join(home, 'dotfiles');
    fs.rmSync(dots, { recursive: true, force: true });
    fs.mkdirSync(dots);
    fs.chownSync(dots, u.uid, u.gid);
    const target = path.join(dots, 'claude.json');
    fs.writeFileSync(target, JSON.stringify({ numStartups: 1, mcpServers: { mine: USER_SERVER } }), { mode: 0o600 });
    fs.chownSync(target, u.uid, u.gid);
    fs.rmSync(stateFile());
    fs.symlinkSync(target, stateFile());
    fs.lchownSync(stateFile(), u.uid, u.gid);
    try {
      const r = await sh('root', replaceViaRename({ numStartups: 2, mcpServers: {} }), { workspace: makeWorkspace('state'), args: ['--profile', 'claude-code'] });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.ok(fs.lstatSync(stateFile()).isSymbolicLink());
      assert.deepEqual(JSON.parse(fs.readFileSync(target, 'utf8')), { numStartups: 2, mcpServers: { mine: USER_SERVER } });
      assert.equal(fs.statSync(target).uid, u.uid);
      assert.equal(fs.statSync(target).mode & 0o777, 0o600);
    } finally {
      fs.rmSync(dots, { recursive: true, force: true });
    }
  });
});
