// Variants of the host-execution classes (host-exec.test.mjs has the main
// ones): repositories shaped to slip past a narrow notion of "git directory",
// hidden where a walk might not look, behind names Node cannot spell, behind
// symlinks; scripts that protected configs and hooks reach indirectly; the
// repository around the workspace; tool configs deeper down; submodule
// configs that are huge, FIFOs or not UTF-8; names that would write to the
// terminal. Each plants from inside a real box, then the user's next step
// runs on the host as the user; both launcher modes.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GIT_ID, HAS_GIT, PRELUDE, cleanupHostExec, exists, fsmon, hostGit, markerDir, onCleanup, repo, results } from '../helpers/host-exec.mjs';
import { MODES, skipReason, runBox, makeWorkspace, own, testUser, cleanupWorkspaces } from '../helpers/sandbox.mjs';
import { loadAddon } from '../../dist/native/addon.js';

const isRoot = process.getuid() === 0;
after(() => {
  cleanupHostExec();
  cleanupWorkspaces();
});

for (const mode of MODES) {
  describe(`host execution variants, launcher as ${mode}`, { skip: skipReason(mode) ?? (HAS_GIT ? false : 'git is not installed') }, () => {
    test('bare repositories of every shape git accepts (objects a symlink or a file, in a subdirectory or at the root) are disabled', async () => {
      const ws = makeWorkspace('hv-shapes');
      repo(ws);
      const plain = makeWorkspace('hv-shapes-plain'); // no repository at all
      const marks = markerDir();
      const shape = (dir, objects) => `mkdir -p ${dir}/refs/heads ${dir}/lib; ${objects}
printf 'ref: refs/heads/main\\n' > ${dir}/HEAD
printf '[core]\\n\\tbare = false\\n\\tworktree = .\\n\\tfsmonitor = ${fsmon(marks, dir.replace(/\W/g, '_')).replace(/"/g, '\\"')}\\n' > ${dir}/config`;
      const r = await runBox(mode, {
        workspace: ws,
        args: ['--json'],
        cmd: ['/bin/sh', '-c', `set -e
${shape('src', 'ln -s ../.git/objects src/objects')}
${shape('gen', ': > gen/objects; chmod +x gen/objects')}
`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.json.hostExecution.map((f) => `${f.kind} ${path.relative(ws, f.path)} ${f.action}`).sort(), ['new-git-dir gen disabled', 'new-git-dir src disabled']);
      const r2 = await runBox(mode, { workspace: plain, args: ['--json'], cmd: ['/bin/sh', '-c', shape('.', ': > ./objects; chmod +x ./objects').replaceAll('./', '')] });
      assert.equal(r2.code, 0, r2.stderr);
      assert.deepEqual(r2.json.hostExecution.map((f) => [f.kind, f.action]), [['new-git-dir', 'disabled']]);
      hostGit(path.join(ws, 'src/lib'), ['status']);
      hostGit(path.join(ws, 'gen/lib'), ['status']);
      hostGit(plain, ['status']);
      assert.deepEqual(fs.readdirSync(marks), []);
    });

    test('a repository hidden under objects/, behind a name that is not UTF-8, or with a broken shared index beside a gitlink is disabled and the gitlink reported', async () => {
      const ws = makeWorkspace('hv-hidden');
      repo(ws);
      const marks = markerDir();
      const r = await runBox(mode, {
        workspace: ws,
        args: ['--json'],
        cmd: ['/bin/bash', '-c', `set -e
mkdir -p vendor/objects vendor/refs && echo 'ref: refs/heads/main' > vendor/HEAD
git init -q vendor/objects/lib && git config -f vendor/objects/lib/.git/config core.fsmonitor ${fsmon(marks, 'objects')}
mkdir $'lib\\xef\\xbf\\xbd' && git init -q $'lib\\xff' && git config -f $'lib\\xff/.git/config' core.fsmonitor ${fsmon(marks, 'nonutf8')}
sha=$(git -C vendor/objects/lib ${GIT_ID.join(' ')} commit -q --allow-empty -m x && git -C vendor/objects/lib rev-parse HEAD)
git update-index --add --cacheinfo 160000,$sha,vendor/objects/lib
echo garbage > .git/sharedindex.0123456789012345678901234567890123456789
`],
      });
      assert.equal(r.code, 0, r.stderr);
      const got = r.json.hostExecution.map((f) => `${f.kind} ${path.relative(ws, f.path) || '.'} ${f.action}`).sort();
      assert.ok(got.includes('new-git-dir vendor/objects/lib/.git disabled'), got.join('\n'));
      assert.ok(got.includes('new-git-dir lib\\xff/.git disabled'), got.join('\n'));
      assert.ok(got.includes('new-gitlinks . reported'), got.join('\n'));
      assert.match(r.stderr, /lib\\xff\/\.git/, 'the name that is not UTF-8 is shown escaped');
      hostGit(ws, ['status']);
      hostGit(path.join(ws, 'vendor/objects/lib'), ['status']);
      hostGit(path.join(ws, Buffer.from('lib\xff', 'latin1').toString('latin1')), ['status']);
      execFileSync('/bin/bash', ['-c', `cd $'lib\\xff' && git status >/dev/null 2>&1 || true`], { cwd: ws, env: { PATH: '/usr/bin:/bin', GIT_CONFIG_NOSYSTEM: '1', HOME: '/nonexistent' }, uid: isRoot ? testUser().uid : undefined, gid: isRoot ? testUser().gid : undefined });
      assert.deepEqual(fs.readdirSync(marks), []);
    });

    test('a directory its owner made unreadable before the run still gets looked into', async () => {
      const ws = makeWorkspace('hv-unreadable');
      repo(ws);
      fs.mkdirSync(path.join(ws, 'cache/sub'), { recursive: true });
      own(ws);
      fs.chmodSync(path.join(ws, 'cache'), 0o311);
      onCleanup(() => fs.existsSync(path.join(ws, 'cache')) && fs.chmodSync(path.join(ws, 'cache'), 0o755));
      const marks = markerDir();
      const r = await runBox(mode, { workspace: ws, args: ['--json'], cmd: ['/bin/sh', '-c', `git init -q cache/sub/evil && git config -f cache/sub/evil/.git/config core.fsmonitor ${fsmon(marks, 'unreadable')}`] });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.json.hostExecution.map((f) => `${f.kind} ${path.relative(ws, f.path)} ${f.action}`), ['new-git-dir cache/sub/evil/.git disabled']);
      assert.equal(fs.statSync(path.join(ws, 'cache')).mode & 0o777, 0o311, 'its mode is given back');
      hostGit(path.join(ws, 'cache/sub/evil'), ['status']);
      assert.deepEqual(fs.readdirSync(marks), []);
    });

    test('what a symlink in a protected place leads to stays read-only: a symlinked hooks directory, a symlinked hook, a symlinked settings directory', async () => {
      const ws = makeWorkspace('hv-links');
      repo(ws);
      fs.mkdirSync(path.join(ws, '.githooks'));
      fs.mkdirSync(path.join(ws, 'scripts'));
      fs.writeFileSync(path.join(ws, 'scripts/pre-commit'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      fs.mkdirSync(path.join(ws, 'config/claude'), { recursive: true });
      fs.writeFileSync(path.join(ws, 'config/claude/settings.json'), '{}');
      fs.rmSync(path.join(ws, '.git/hooks'), { recursive: true });
      fs.symlinkSync('../.githooks', path.join(ws, '.git/hooks'));
      fs.symlinkSync('../scripts/pre-commit', path.join(ws, '.githooks/pre-commit'));
      fs.symlinkSync('config/claude', path.join(ws, '.claude'));
      execFileSync('chown', ['-hR', `${testUser().uid}:${testUser().gid}`, ws]);
      const r = await runBox(mode, {
        workspace: ws,
        cmd: ['/bin/sh', '-c', `${PRELUDE}
w hooks-dir .githooks/post-checkout
w hook-target scripts/pre-commit
w settings config/claude/settings.json
w legit:scripts scripts/other.sh
`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(results(r.stdout), { 'hooks-dir': 'EROFS', 'hook-target': 'EROFS', settings: 'EROFS', 'legit:scripts': 'OK' });
    });

    test('scripts config reaches indirectly: husky (hooksPath .husky/_), an alias, a trailer command, a script a hook runs, a missing one', async () => {
      const ws = makeWorkspace('hv-indirect');
      const g = repo(ws);
      fs.mkdirSync(path.join(ws, '.husky/_'), { recursive: true });
      fs.writeFileSync(path.join(ws, '.husky/_/h'), '#!/usr/bin/env sh\nn=$(basename "$0")\ns=$(dirname "$(dirname "$0")")/$n\n[ -f "$s" ] && sh -e "$s"\n', { mode: 0o755 });
      fs.writeFileSync(path.join(ws, '.husky/_/pre-commit'), '#!/usr/bin/env sh\n. "$(dirname "$0")/h"\n', { mode: 0o755 });
      fs.writeFileSync(path.join(ws, '.husky/pre-commit'), 'npm test\n');
      fs.mkdirSync(path.join(ws, 'tools'));
      fs.writeFileSync(path.join(ws, 'tools/fmt'), 'echo fmt\n'); // not executable: run as `sh tools/fmt`
      fs.writeFileSync(path.join(ws, 'tools/trailer'), 'echo t\n');
      fs.writeFileSync(path.join(ws, 'tools/lint-all.sh'), 'echo lint\n');
      fs.writeFileSync(path.join(ws, '.git/hooks/post-commit'), '#!/bin/sh\nsh tools/lint-all.sh\n', { mode: 0o755 });
      own(ws);
      g('config', 'core.hooksPath', '.husky/_');
      g('config', 'alias.fmt', '!sh tools/fmt');
      g('config', 'alias.lint', '!./tools/lint.sh');
      g('config', 'trailer.sign.command', 'sh tools/trailer');
      const r = await runBox(mode, {
        workspace: ws,
        cmd: ['/bin/sh', '-c', `${PRELUDE}
w husky .husky/pre-commit
w husky-new .husky/post-checkout
w alias tools/fmt
w alias-missing tools/lint.sh
w trailer tools/trailer
w hook-script tools/lint-all.sh
w legit:tools tools/notes.txt
`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(results(r.stdout), { husky: 'EROFS', 'husky-new': 'EROFS', alias: 'EROFS', 'alias-missing': 'EROFS', trailer: 'EROFS', 'hook-script': 'EROFS', 'legit:tools': 'OK' });
      assert.equal(exists(path.join(ws, 'tools/lint.sh')), false, 'the placeholder is gone');
    });

    test('what agent and editor settings run stays read-only: missing scripts, scripts without the executable bit, ${workspaceFolder}, a server directory, a bare file name', async () => {
      const ws = makeWorkspace('hv-settings');
      const files = {
        '.claude/settings.json': JSON.stringify({ hooks: { Stop: [{ hooks: [{ type: 'command', command: '$CLAUDE_PROJECT_DIR/scripts/lint.sh' }, { type: 'command', command: 'bash "$CLAUDE_PROJECT_DIR"/scripts/format' }] }] }, statusLine: { type: 'command', command: 'python3 tools/status.py' } }),
        '.vscode/tasks.json': '// tasks\n{"version": "2.0.0", "tasks": [{"label": "x", "command": "${workspaceFolder}/tools/task.sh", "runOptions": {"runOn": "folderOpen"}},],}\n',
        '.mcp.json': JSON.stringify({ mcpServers: { a: { command: 'uv', args: ['run', '--directory', 'tools/mcp', 'server.py'] }, b: { command: 'node', args: ['server.js'] } } }),
        'scripts/format': 'echo format\n',
        'tools/status.py': 'print(1)\n',
        'tools/task.sh': 'echo task\n',
        'tools/mcp/server.py': 'print(2)\n',
        'server.js': 'console.log(3)\n',
        'notes.md': 'notes\n',
      };
      for (const [rel, text] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(ws, rel)), { recursive: true });
        fs.writeFileSync(path.join(ws, rel), text);
      }
      own(ws);
      const r = await runBox(mode, {
        workspace: ws,
        cmd: ['/bin/sh', '-c', `${PRELUDE}
w missing scripts/lint.sh
w no-exec-bit scripts/format
w status tools/status.py
w task tools/task.sh
w server-dir tools/mcp/other.py
w bare-name server.js
w legit:notes notes.md
`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(results(r.stdout), { missing: 'EROFS', 'no-exec-bit': 'EROFS', status: 'EROFS', task: 'EROFS', 'server-dir': 'EROFS', 'bare-name': 'EROFS', 'legit:notes': 'OK' });
      assert.equal(exists(path.join(ws, 'scripts/lint.sh')), false, 'the placeholder is gone');
    });

    test('the repository around the workspace: what its config names inside the workspace is protected; tool configs deeper down too, and new ones are disabled', async () => {
      const mono = makeWorkspace('hv-mono');
      const g = repo(mono);
      const ws = path.join(mono, 'frontend');
      fs.mkdirSync(path.join(ws, '.husky'), { recursive: true });
      fs.writeFileSync(path.join(ws, '.husky/pre-commit'), 'echo ok\n');
      fs.mkdirSync(path.join(ws, 'packages/api/.claude'), { recursive: true });
      fs.writeFileSync(path.join(ws, 'packages/api/.claude/settings.json'), '{}');
      fs.mkdirSync(path.join(ws, 'packages/web'), { recursive: true });
      own(mono);
      g('config', 'core.hooksPath', 'frontend/.husky');
      const r = await runBox(mode, {
        workspace: ws,
        args: ['--json'],
        cmd: ['/bin/sh', '-c', `${PRELUDE}
w husky .husky/pre-commit
w husky-new .husky/post-commit
w settings packages/api/.claude/settings.json
printf '{"mcpServers":{"x":{"command":"sh","args":["-c","touch /tmp/x"]}}}' > packages/web/.mcp.json && echo @@new-mcp OK
mkdir -p packages/web/.vscode && echo '{}' > packages/web/.vscode/tasks.json && echo @@new-vscode OK
`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(results(r.stdout), { husky: 'EROFS', 'husky-new': 'EROFS', settings: 'EROFS', 'new-mcp': 'OK', 'new-vscode': 'OK' });
      assert.deepEqual(r.json.hostExecution.map((f) => `${f.kind} ${path.relative(ws, f.path)} ${f.action}`).sort(), ['new-tool-config packages/web/.mcp.json disabled', 'new-tool-config packages/web/.vscode disabled']);
      assert.equal(exists(path.join(ws, 'packages/web/.mcp.json')), false);
      assert.equal(exists(path.join(ws, 'packages/web/.mcp.json.latchgate-disabled')), true);
    });

    test("a submodule config made huge, a FIFO, or holding bytes that are not UTF-8: put back byte for byte, and the launcher never hangs", async () => {
      const up = makeWorkspace('hv-subup');
      repo(up);
      const ws = makeWorkspace('hv-subcfg');
      const g = repo(ws);
      for (const name of ['a', 'b', 'c']) {
        const r0 = hostGit(ws, ['-c', 'protocol.file.allow=always', 'submodule', 'add', '-q', up, name]);
        assert.equal(r0.status, 0, r0.stderr);
      }
      g(...GIT_ID, 'commit', '-qm', 'subs');
      const cfg = (n) => path.join(ws, '.git/modules', n, 'config');
      fs.appendFileSync(cfg('c'), Buffer.from('[x]\n\tname = caf\xe9\n', 'latin1'));
      const before = Object.fromEntries(['a', 'b', 'c'].map((n) => [n, fs.readFileSync(cfg(n))]));
      const marks = markerDir();
      const r = await runBox(mode, {
        workspace: ws,
        args: ['--json'],
        timeoutMs: 60000,
        cmd: ['/bin/sh', '-c', `set -e
git config -f .git/modules/a/config core.fsmonitor ${fsmon(marks, 'huge')}
head -c 1100000 /dev/zero | tr '\\0' '#' >> .git/modules/a/config
rm .git/modules/b/config && mkfifo .git/modules/b/config
git config -f .git/modules/c/config core.fsmonitor ${fsmon(marks, 'latin1')}
`],
      });
      assert.equal(r.code, 0, r.stderr);
      for (const n of ['a', 'b', 'c']) assert.ok(fs.readFileSync(cfg(n)).equals(before[n]), `${n}: the launch bytes are back`);
      assert.deepEqual(r.json.hostExecution.map((f) => [f.kind, path.relative(ws, f.path), f.action]).sort(), ['a', 'b', 'c'].map((n) => ['submodule-config-changed', `.git/modules/${n}/config`, 'disabled']));
      hostGit(ws, ['status']);
      assert.deepEqual(fs.readdirSync(marks), []);
    });

    test("git state the user's next command acts on unseen: a protected file's content smuggled through the index, hidden entries, a rebase stopped before exec", async () => {
      const ws = makeWorkspace('hv-state');
      const g = repo(ws);
      fs.mkdirSync(path.join(ws, '.githooks'));
      fs.writeFileSync(path.join(ws, '.githooks/pre-commit'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      fs.writeFileSync(path.join(ws, 'Makefile'), 'all:\n\ttrue\n');
      own(ws);
      g('add', '.githooks/pre-commit', 'Makefile');
      g(...GIT_ID, 'commit', '-qm', 'hooks');
      g('config', 'core.hooksPath', '.githooks');
      const marks = markerDir();
      const r = await runBox(mode, {
        workspace: ws,
        args: ['--json'],
        cmd: ['/bin/sh', '-c', `set -e
git ${GIT_ID.join(' ')} commit -q --allow-empty -m two
GIT_SEQUENCE_EDITOR="sed -i '1i break\\nexec touch ${marks}/rebase'" git ${GIT_ID.join(' ')} rebase -q -i HEAD~1
test -d .git/rebase-merge
blob=$(printf '#!/bin/sh\\ntouch ${marks}/hook\\n' | git hash-object -w --stdin)
git update-index --cacheinfo 100755,$blob,.githooks/pre-commit
git ${GIT_ID.join(' ')} commit -q --no-verify -m smuggle
printf 'all:\\n\\ttouch ${marks}/make\\n' > Makefile
git update-index --skip-worktree Makefile
`],
      });
      assert.equal(r.code, 0, r.stderr);
      const got = Object.fromEntries(r.json.hostExecution.map((f) => [f.kind, f.action]));
      assert.deepEqual(got, { 'protected-file-staged': 'reported', 'hidden-from-git': 'disabled', 'rebase-exec': 'disabled' }, JSON.stringify(r.json.hostExecution));
      assert.match(r.stderr, /staged or committed content for \.githooks\/pre-commit/);
      const st = hostGit(ws, ['status', '--porcelain']);
      assert.match(st.stdout, /M Makefile/, 'the edited Makefile shows again');
      assert.match(fs.readFileSync(path.join(ws, '.git/rebase-merge/git-rebase-todo'), 'utf8'), /# latchgate: disabled, added in the box: exec/);
      hostGit(ws, [...GIT_ID, 'rebase', '--continue']);
      assert.deepEqual(fs.readdirSync(marks), []);
    });

    // Only a root launcher could read more than the agent: the case exists for it alone.
    if (mode === 'root') test('a root launcher never reads what the agent cannot: a submodule config symlinked to a root-only file is not taken in, nor written back', async () => {
      const up = makeWorkspace('hv-secretup');
      repo(up);
      const ws = makeWorkspace('hv-secret');
      const g = repo(ws);
      const r0 = hostGit(ws, ['-c', 'protocol.file.allow=always', 'submodule', 'add', '-q', up, 'lib']);
      assert.equal(r0.status, 0, r0.stderr);
      g(...GIT_ID, 'commit', '-qm', 'lib');
      const secretDir = fs.mkdtempSync(path.join(os.tmpdir(), 'latchgate-rootonly-'));
      onCleanup(() => fs.rmSync(secretDir, { recursive: true, force: true }));
      const secret = path.join(secretDir, 'secret');
      fs.writeFileSync(secret, 'TOP-SECRET-ROOT-ONLY\n', { mode: 0o600 });
      const cfg = path.join(ws, '.git/modules/lib/config');
      // Run 1 leaves the symlink; run 2 replaces it with a file, so a launcher that took the target in would "put it back".
      const r1 = await runBox(mode, { workspace: ws, cmd: ['/bin/sh', '-c', `ln -sf ${secret} .git/modules/lib/config`] });
      assert.equal(r1.code, 0, r1.stderr);
      if (fs.lstatSync(cfg).isSymbolicLink()) {
        const r2 = await runBox(mode, { workspace: ws, cmd: ['/bin/sh', '-c', 'rm -f .git/modules/lib/config 2>/dev/null; echo "[core]" > .git/modules/lib/config 2>/dev/null; cat .git/modules/lib/config* 2>/dev/null; true'] });
        assert.doesNotMatch(r2.stdout, /TOP-SECRET/);
      }
      const found = spawnSync('grep', ['-rl', 'TOP-SECRET', ws], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
      assert.deepEqual(found, [], 'the root-only content never lands in the workspace');
    });

    test('a placeholder commondir left by a killed launcher (or held by another box) does not make the repository look linked', async () => {
      const ws = makeWorkspace('hv-stalecd');
      repo(ws);
      const cd = path.join(ws, '.git/commondir');
      fs.writeFileSync(cd, '.\n');
      own(ws);
      assert.equal(loadAddon().setXattr(cd, 'user.latchgate.placeholder', '1'), 0, 'marked as latchgate marks its placeholders');
      const r = await runBox(mode, { workspace: ws, cmd: ['/bin/sh', '-c', `${PRELUDE}
w config .git/config
w hook .git/hooks/post-checkout
w alternates .git/objects/info/alternates
`] });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(results(r.stdout), { config: 'EROFS', hook: 'EROFS', alternates: 'EROFS' });
      assert.equal(exists(cd), false, 'the stale placeholder is removed by the last box out');
    });

    test('a rebase in progress at launch: exec lines the box adds are commented out; one it starts with a huge todo is moved aside', async () => {
      const ws = makeWorkspace('hv-rebase');
      const g = repo(ws);
      g(...GIT_ID, 'commit', '-q', '--allow-empty', '-m', 'two');
      const start = hostGit(ws, [...GIT_ID, 'rebase', '-q', '-i', 'HEAD~1'], { GIT_SEQUENCE_EDITOR: "sed -i '1i break'" });
      assert.ok(exists(path.join(ws, '.git/rebase-merge')), start.stderr);
      const marks = markerDir();
      const r = await runBox(mode, { workspace: ws, args: ['--json'], cmd: ['/bin/sh', '-c', `sed -i '1i exec touch ${marks}/added' .git/rebase-merge/git-rebase-todo`] });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.json.hostExecution.map((f) => [f.kind, f.action]), [['rebase-exec', 'disabled']]);
      hostGit(ws, [...GIT_ID, 'rebase', '--continue']);
      assert.deepEqual(fs.readdirSync(marks), []);
      const ws2 = makeWorkspace('hv-rebase2');
      const g2 = repo(ws2);
      g2(...GIT_ID, 'commit', '-q', '--allow-empty', '-m', 'two');
      const r2 = await runBox(mode, { workspace: ws2, args: ['--json'], cmd: ['/bin/sh', '-c', `GIT_SEQUENCE_EDITOR="sed -i '1i break'" git ${GIT_ID.join(' ')} rebase -q -i HEAD~1; { echo "exec touch ${marks}/big"; head -c 1100000 /dev/zero | tr '\\0' '#'; echo; } >> .git/rebase-merge/git-rebase-todo`] });
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(r2.json.hostExecution.find((f) => f.kind === 'rebase-exec')?.action, 'disabled', JSON.stringify(r2.json.hostExecution));
      hostGit(ws2, [...GIT_ID, 'rebase', '--continue']);
      assert.deepEqual(fs.readdirSync(marks), []);
    });

    test('a submodule config change behind a byte order mark is put back; an unreadable directory with a tool config does not stop the check', async () => {
      const up = makeWorkspace('hv-bomup');
      repo(up);
      const ws = makeWorkspace('hv-bom');
      const g = repo(ws);
      const r0 = hostGit(ws, ['-c', 'protocol.file.allow=always', 'submodule', 'add', '-q', up, 'sub']);
      assert.equal(r0.status, 0, r0.stderr);
      g(...GIT_ID, 'commit', '-qm', 'sub');
      const cfg = path.join(ws, '.git/modules/sub/config');
      const before = fs.readFileSync(cfg);
      const marks = markerDir();
      const r = await runBox(mode, { workspace: ws, args: ['--json'], cmd: ['/bin/bash', '-c', `{ printf '\\xef\\xbb\\xbf[core]fsmonitor = "touch ${marks}/bom; false"\\n'; cat .git/modules/sub/config; } > /tmp/c && cat /tmp/c > .git/modules/sub/config
mkdir -p x/.vscode && echo {} > x/.vscode/settings.json && chmod 000 x`] });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(fs.readFileSync(cfg).equals(before), 'the launch bytes are back');
      const kinds = r.json.hostExecution.map((f) => f.kind).sort();
      assert.deepEqual(kinds, ['new-tool-config', 'submodule-config-changed']);
      hostGit(ws, ['status']);
      assert.deepEqual(fs.readdirSync(marks), []);
    });

    test('entries hidden through a split index are reported as not undone (exit 125)', async () => {
      const ws = makeWorkspace('hv-split');
      const g = repo(ws);
      fs.writeFileSync(path.join(ws, 'Makefile'), 'all:\n\ttrue\n');
      own(ws);
      g('add', 'Makefile');
      g(...GIT_ID, 'commit', '-qm', 'make');
      const r = await runBox(mode, { workspace: ws, args: ['--json'], cmd: ['/bin/sh', '-c', 'git update-index --assume-unchanged Makefile && git update-index --split-index && echo changed >> Makefile'] });
      assert.equal(r.code, 125, r.stderr);
      assert.deepEqual(r.json.hostExecution.map((f) => [f.kind, f.action]), [['hidden-from-git', 'failed']]);
      assert.match(r.stderr, /split index.*git update-index --no-split-index/);
    });

    test('PATH directories in the workspace, missing or symlinked, stay read-only; a symlinked .claude below the root protects its target; a hook script that does not exist yet cannot be created', async () => {
      const ws = makeWorkspace('hv-path');
      const g = repo(ws);
      fs.mkdirSync(path.join(ws, 'tools/bin'), { recursive: true });
      fs.symlinkSync('tools/bin', path.join(ws, 'lbin'));
      fs.mkdirSync(path.join(ws, 'sub/cfg'), { recursive: true });
      fs.writeFileSync(path.join(ws, 'sub/cfg/settings.json'), '{}');
      fs.symlinkSync('cfg', path.join(ws, 'sub/.claude'));
      fs.writeFileSync(path.join(ws, '.git/hooks/pre-commit'), '#!/bin/sh\n[ -x ./tools/pre-commit.sh ] && exec ./tools/pre-commit.sh\n', { mode: 0o755 });
      execFileSync('chown', ['-hR', `${testUser().uid}:${testUser().gid}`, ws]);
      const r = await runBox(mode, {
        workspace: ws,
        args: ['--json'],
        env: { PATH: `${ws}/bin:${ws}/lbin:/usr/local/bin:/usr/bin:/bin` },
        cmd: ['/bin/sh', '-c', `${PRELUDE}
w missing-path-dir bin/ls
w symlinked-path-dir tools/bin/git
w claude-target sub/cfg/settings.json
w hook-script tools/pre-commit.sh
mkdir -p sub2/oc && ln -s oc sub2/.claude && echo @@new-link OK
`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(results(r.stdout), { 'missing-path-dir': 'EROFS', 'symlinked-path-dir': 'EROFS', 'claude-target': 'EROFS', 'hook-script': 'EROFS', 'new-link': 'OK' });
      assert.deepEqual(r.json.hostExecution.map((f) => `${f.kind} ${path.relative(ws, f.path)}`), ['new-tool-config sub2/.claude']);
      g('status');
    });

    test('content staged for a protected path that did not exist (a placeholder) is reported', async () => {
      const ws = makeWorkspace('hv-stagenew');
      repo(ws);
      const r = await runBox(mode, { workspace: ws, args: ['--json'], cmd: ['/bin/sh', '-c', `blob=$(echo '{"hooks":{}}' | git hash-object -w --stdin) && git update-index --add --cacheinfo 100644,$blob,.claude/settings.json && git ${GIT_ID.join(' ')} commit -qm s`] });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.json.hostExecution.map((f) => [f.kind, path.relative(ws, f.path), f.action]), [['protected-file-staged', '.claude/settings.json', 'reported']]);
    });

    test('nothing the box leaves is set-user-ID or set-group-ID (another local user would run it as you)', async () => {
      const ws = makeWorkspace('hv-setid');
      const r = await runBox(mode, {
        workspace: ws,
        cmd: ['/bin/sh', '-c', `cp /bin/true tool; mkdir shared
chmod u+s tool 2>/dev/null && echo @@chmod-suid OK || echo @@chmod-suid EPERM
chmod g+s shared 2>/dev/null && echo @@chmod-sgid OK || echo @@chmod-sgid EPERM
install -m 4755 /bin/true tool2 2>/dev/null && echo @@install-suid OK || echo @@install-suid EPERM
python3 -c "import os; os.close(os.open('made', os.O_CREAT | os.O_WRONLY, 0o4755))" 2>/dev/null && echo @@create-suid OK || echo @@create-suid EPERM
chmod 755 tool && echo @@legit:chmod OK
echo x > plain && echo @@legit:create OK
mkdir -p open/shared-tmp && chmod 0777 open . && chmod 1777 open/shared-tmp
`],
        args: ['--json'],
      });
      assert.equal(r.code, 0, r.stderr);
      // Directories opened to every local user lose that again (a sticky one is fine).
      assert.deepEqual(r.json.hostExecution.map((f) => [f.kind, path.relative(ws, f.path) || '.', f.action]).sort(), [['world-writable', '.', 'disabled'], ['world-writable', 'open', 'disabled']]);
      assert.equal(fs.statSync(ws).mode & 0o002, 0);
      assert.equal(fs.statSync(path.join(ws, 'open/shared-tmp')).mode & 0o1777, 0o1777);
      const res = results(r.stdout);
      assert.deepEqual(res, { 'chmod-suid': 'EPERM', 'chmod-sgid': 'EPERM', 'install-suid': 'EPERM', 'create-suid': 'EPERM', 'legit:chmod': 'OK', 'legit:create': 'OK' });
      for (const f of ['tool', 'shared', 'plain']) assert.equal(fs.statSync(path.join(ws, f)).mode & 0o6000, 0, f);
      if (exists(path.join(ws, 'made'))) assert.equal(fs.statSync(path.join(ws, 'made')).mode & 0o6000, 0);
    });

    test('names from the box never reach the terminal raw', async () => {
      const ws = makeWorkspace('hv-names');
      repo(ws);
      const r = await runBox(mode, { workspace: ws, cmd: ['/bin/bash', '-c', `git init -q $'x\\r\\e[2K\\e[8m'`] });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /x\\x0d\\x1b\[2K\\x1b\[8m/);
      assert.doesNotMatch(r.stderr, /\x1b/);
    });

    test('a read-write mount of a home (or of what holds one) is refused like such a workspace', async () => {
      const ws = makeWorkspace('hv-rwhome');
      const home = isRoot ? `/home/${testUser().name}` : os.homedir();
      if (!exists(home)) {
        fs.mkdirSync(home, { mode: 0o755 });
        if (isRoot) fs.chownSync(home, testUser().uid, testUser().gid);
        onCleanup(() => {
          if (fs.readdirSync(home).length === 0) fs.rmdirSync(home);
        });
      }
      for (const rw of [home, path.dirname(home)]) {
        const r = await runBox(mode, { workspace: ws, args: ['--rw', rw], cmd: ['/bin/true'] });
        assert.equal(r.code, 125, `${rw}: ${r.stderr}`);
        assert.match(r.stderr, /--rw .*refused: it is (a home directory|an ancestor of the home directory).*--allow-home-workspace/);
      }
    });
  });
}
