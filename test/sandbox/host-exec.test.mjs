// Nothing the agent writes may run on the host later. Each test plants, from
// inside a real box, something host git (or an agent, or a shell) would run
// as the user after the box exits, then runs host git as that user the way
// the user would and asserts the planted command never ran; beside each, the
// legitimate git work inside the box still succeeds. Both launcher modes.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GIT_ID, HAS_GIT, PRELUDE, cleanupHostExec, exists, fsmon, hostGit, markerDir, onCleanup, repo, results } from '../helpers/host-exec.mjs';
import { MODES, skipReason, runBox, makeWorkspace, own, testUser, cleanupWorkspaces, ROOT } from '../helpers/sandbox.mjs';
import { haveOpenssl, makePki } from '../fixtures/egress-cred/pki.mjs';
import { startGitHttps } from '../fixtures/git-https.mjs';

const isRoot = process.getuid() === 0;
after(() => {
  cleanupHostExec();
  cleanupWorkspaces();
});



/** A state dir of its own so the ledger of one run can be read. */
function stateEnv(mode) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'latchgate-hexec-state-'));
  fs.chmodSync(d, 0o755);
  if (mode === 'user' && isRoot) execFileSync('chown', [`${testUser().uid}:${testUser().gid}`, d]);
  onCleanup(() => fs.rmSync(d, { recursive: true, force: true }));
  return { XDG_STATE_HOME: d, XDG_RUNTIME_DIR: d };
}

async function ledgerEvents(env, type) {
  const { Ledger } = await import(path.join(ROOT, 'dist/ledger/ledger.js'));
  const l = Ledger.open(path.join(env.XDG_STATE_HOME, 'latchgate', 'ledger.sqlite3'));
  try {
    return l.query({ event_type: type });
  } finally {
    l.db.close();
  }
}

for (const mode of MODES) {
  describe(`host execution after the box, launcher as ${mode}`, { skip: skipReason(mode) ?? (HAS_GIT ? false : 'git is not installed') }, () => {
    test('pointer files of the repository cannot be planted (commondir, config.worktree, alternates, hooks); git works in the box', async () => {
      const ws = makeWorkspace('hx-pointers');
      const g = repo(ws);
      const marks = markerDir();
      fs.mkdirSync(path.join(ws, '.cache/gd/hooks'), { recursive: true });
      const r = await runBox(mode, {
        workspace: ws,
        cmd: ['/bin/sh', '-c', `${PRELUDE}
git -c init.defaultBranch=main init -q --bare .cache/gd 2>/dev/null
printf '[core]\\n\\tfsmonitor = "touch ${marks}/fsmonitor; false"\\n' >> .cache/gd/config
w commondir .git/commondir
w config-worktree .git/config.worktree
w alternates .git/objects/info/alternates
w hook .git/hooks/pre-commit
w config .git/config
echo change >> README.md
git add README.md && git ${GIT_ID.join(' ')} commit -qm in-box && echo @@commit OK
git branch feature && git stash list >/dev/null && echo @@branch OK
echo wip >> README.md && git stash -q && git stash pop -q && echo @@stash OK
git ${GIT_ID.join(' ')} commit -qam wip && git ${GIT_ID.join(' ')} rebase -q --onto feature HEAD~1 && echo @@rebase OK
git status --porcelain --untracked-files=all | grep -v '^?? .cache/' | sed 's/^/@@untracked /'
git add -A && git status --porcelain | grep -v ' .cache/' | sed 's/^/@@staged /'
echo @@status OK
`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(results(r.stdout), {
        commondir: 'EROFS', 'config-worktree': 'EROFS', alternates: 'EROFS', hook: 'EROFS', config: 'EROFS',
        commit: 'OK', branch: 'OK', stash: 'OK', rebase: 'OK', status: 'OK',
      }, 'git in the box sees no placeholder: nothing untracked, nothing staged by git add -A');
      for (const f of ['commondir', 'config.worktree', 'objects/info/alternates']) assert.equal(exists(path.join(ws, '.git', f)), false, `${f}: the placeholder is gone`);
      const st = hostGit(ws, ['status', '--porcelain']);
      assert.equal(st.status, 0, st.stderr);
      assert.equal(exists(path.join(marks, 'fsmonitor')), false, 'host git ran nothing of the box');
      assert.match(g('log', '--format=%s'), /wip\nin-box\ninitial/);
    });

    test('a new repository with core.fsmonitor, registered as a gitlink, a bare repository and a .git pointer: all disabled, host git runs none of them', async () => {
      const ws = makeWorkspace('hx-nested');
      repo(ws);
      const marks = markerDir();
      const env = stateEnv(mode);
      const plant = (dir, key, name) => `git config -f ${dir}/config ${key} "touch ${marks}/${name}; false"`;
      const r = await runBox(mode, {
        workspace: ws,
        env,
        args: ['--json'],
        cmd: ['/bin/sh', '-c', `set -e
git init -q sub
${plant('sub/.git', 'core.fsmonitor', 'sub')}
printf '#!/bin/sh\\ntouch ${marks}/sub-hook\\n' > sub/.git/hooks/pre-commit; chmod +x sub/.git/hooks/pre-commit
git update-index --add --cacheinfo 160000,1111111111111111111111111111111111111111,sub
git init -q --bare tools/cache.git
${plant('tools/cache.git', 'core.pager', 'bare')}
git init -q --bare .stash/gd
${plant('.stash/gd', 'core.fsmonitor', 'pointer')}
mkdir -p vendor/lib && printf 'gitdir: ../../.stash/gd\\n' > vendor/lib/.git
git status --porcelain >/dev/null
`],
      });
      assert.equal(r.code, 0, r.stderr);
      const found = Object.fromEntries(r.json.hostExecution.map((f) => [path.relative(ws, f.path) || '.', f]));
      for (const p of ['sub/.git', 'tools/cache.git', '.stash/gd']) {
        assert.equal(found[p]?.kind, 'new-git-dir', `${p}: ${JSON.stringify(r.json.hostExecution)}`);
        assert.equal(found[p].action, 'disabled');
        assert.equal(exists(path.join(ws, p, 'HEAD')), false);
        assert.equal(exists(path.join(ws, p, 'HEAD.latchgate-disabled')), true, 'the content is kept for the user');
      }
      assert.equal(found['vendor/lib/.git']?.kind, 'new-pointer');
      assert.equal(found['vendor/lib/.git'].action, 'disabled');
      assert.deepEqual(found['.']?.gitlinks, ['sub']);
      assert.match(r.stderr, /a git directory appeared in the box at sub\/\.git.*disabled/);
      // What the user does next, everywhere the box left something.
      hostGit(ws, ['status']);
      hostGit(path.join(ws, 'sub'), ['status']);
      hostGit(path.join(ws, 'sub'), [...GIT_ID, 'commit', '--allow-empty', '-qm', 'x']);
      hostGit(path.join(ws, 'tools/cache.git'), ['log'], { GIT_PAGER: '', PAGER: '' });
      hostGit(path.join(ws, 'tools/cache.git'), ['-p', 'log']);
      hostGit(path.join(ws, 'vendor/lib'), ['status']);
      assert.deepEqual(fs.readdirSync(marks), [], 'nothing the box planted ran on the host');
      const events = await ledgerEvents(env, 'sandbox_host_exec');
      assert.deepEqual(events.map((e) => e.details.kind).sort(), ['new-git-dir', 'new-git-dir', 'new-git-dir', 'new-gitlinks', 'new-pointer']);
      assert.ok(events.filter((e) => e.details.action === 'disabled').every((e) => e.decision === 'deny'));
    });

    test('legitimate git work leaves nothing to disable: fetch through the CONNECT proxy, submodule update of an existing submodule', { skip: haveOpenssl() ? false : 'openssl is missing (make setup installs it)' }, async (t) => {
      const srv = fs.mkdtempSync(path.join(os.tmpdir(), 'latchgate-gitsrv-'));
      onCleanup(() => fs.rmSync(srv, { recursive: true, force: true }));
      fs.chmodSync(srv, 0o755);
      const pki = makePki(srv);
      // The upstreams are root's: trusted by name for this test's git (safe.directory counts only in a global config).
      const safeAny = path.join(srv, 'safe.gitconfig');
      fs.writeFileSync(safeAny, '[safe]\n\tdirectory = *\n');
      const SAFE_ANY = { GIT_CONFIG_GLOBAL: safeAny };
      fs.chmodSync(pki.caFile, 0o644);
      const sys = (cwd, ...a) => execFileSync('git', a, { cwd, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: srv, GIT_CONFIG_NOSYSTEM: '1', GIT_AUTHOR_NAME: 'u', GIT_AUTHOR_EMAIL: 'u@x', GIT_COMMITTER_NAME: 'u', GIT_COMMITTER_EMAIL: 'u@x' } }).trim();
      const upstream = (name, commits) => {
        const work = path.join(srv, `${name}-work`);
        fs.mkdirSync(work);
        sys(work, '-c', 'init.defaultBranch=main', 'init', '-q');
        for (const c of commits) {
          fs.writeFileSync(path.join(work, 'f'), c);
          sys(work, 'add', 'f');
          sys(work, 'commit', '-qm', c);
        }
        sys(srv, 'clone', '-q', '--bare', work, path.join(srv, `${name}.git`));
        execFileSync('chmod', ['-R', 'a+rX', srv]);
        return work;
      };
      const appWork = upstream('app', ['a1']);
      upstream('lib', ['l1', 'l2']);
      const l2 = sys(path.join(srv, 'lib.git'), 'rev-parse', 'main');
      const server = await startGitHttps({ key: pki.server.key, cert: pki.server.cert, root: srv, safeConfig: safeAny });
      t.after(() => server.close());

      const ws = makeWorkspace('hx-legit');
      fs.rmdirSync(ws);
      const g = (cwd, ...a) => {
        const r = hostGit(cwd, ['-c', 'protocol.file.allow=always', ...GIT_ID, ...a], SAFE_ANY);
        assert.equal(r.status, 0, `git ${a.join(' ')}: ${r.stderr}`);
        return r.stdout.trim();
      };
      g(path.dirname(ws), 'clone', '-q', path.join(srv, 'app.git'), ws);
      g(ws, 'submodule', 'add', '-q', path.join(srv, 'lib.git'), 'lib');
      g(ws, 'commit', '-qm', 'lib at l2');
      // As after a clone with --recurse-submodules: git has checked the submodule out once (core.worktree set).
      g(ws, 'submodule', 'update', '-q');
      g(path.join(ws, 'lib'), 'checkout', '-q', 'HEAD~1'); // out of date: submodule update brings it back
      g(ws, 'remote', 'set-url', 'origin', 'https://api.example.test/app.git');
      // The upstream moves on; the box fetches it through the proxy.
      fs.writeFileSync(path.join(appWork, 'f'), 'a2');
      sys(appWork, 'commit', '-qam', 'a2');
      sys(appWork, 'push', '-q', path.join(srv, 'app.git'), 'main');
      const a2 = sys(appWork, 'rev-parse', 'HEAD');

      const cfgHome = fs.mkdtempSync(path.join(os.tmpdir(), 'latchgate-hexec-cfg-'));
      onCleanup(() => fs.rmSync(cfgHome, { recursive: true, force: true }));
      fs.mkdirSync(path.join(cfgHome, 'latchgate'));
      fs.writeFileSync(path.join(cfgHome, 'latchgate', 'latchgate.toml'), `[sandbox.agent]\nallow_hosts = ["api.example.test"]\n\n[sandbox.network.resolve]\n"api.example.test" = "127.0.0.1:${server.port}"\n`);
      execFileSync('chmod', ['-R', 'a+rX', cfgHome]);
      if (mode === 'user' && isRoot) execFileSync('chown', ['-R', `${testUser().uid}:${testUser().gid}`, cfgHome]);
      const r = await runBox(mode, {
        workspace: ws,
        env: { ...stateEnv(mode), XDG_CONFIG_HOME: cfgHome },
        args: ['--json', '--ro', srv],
        cmd: ['/bin/sh', '-c', `set -e
git -c http.sslCAInfo=${pki.caFile} fetch -q origin && echo fetched
GIT_CONFIG_GLOBAL=${safeAny} git -c protocol.file.allow=always submodule update -q && echo updated
git status --porcelain
`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /fetched\nupdated/, r.stderr);
      assert.ok(server.requests.some((x) => x.includes('git-upload-pack')), `the fetch reached the server: ${server.requests}`);
      assert.deepEqual(r.json.hostExecution, [], 'nothing the legitimate session did is disabled or reported');
      assert.equal(g(ws, 'rev-parse', 'origin/main'), a2, 'the fetched commit is on the host');
      assert.equal(g(path.join(ws, 'lib'), 'rev-parse', 'HEAD'), l2, 'the submodule was updated');
    });

    test("a submodule's config (writable for git submodule update) changed beyond core.worktree is put back", async () => {
      const up = makeWorkspace('hx-subup');
      repo(up);
      const ws = makeWorkspace('hx-sub');
      const g = repo(ws);
      const r0 = hostGit(ws, ['-c', 'protocol.file.allow=always', 'submodule', 'add', '-q', up, 'lib']);
      assert.equal(r0.status, 0, r0.stderr);
      g(...GIT_ID, 'commit', '-qm', 'lib');
      const cfg = path.join(ws, '.git/modules/lib/config');
      const before = fs.readFileSync(cfg, 'utf8');
      const marks = markerDir();
      const r = await runBox(mode, { workspace: ws, args: ['--json'], cmd: ['/bin/sh', '-c', `git config -f .git/modules/lib/config core.fsmonitor "touch ${marks}/sub; false"`] });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.json.hostExecution.map((f) => [f.kind, path.relative(ws, f.path), f.action]), [['submodule-config-changed', '.git/modules/lib/config', 'disabled']]);
      assert.equal(fs.readFileSync(cfg, 'utf8'), before, 'the launch version is back');
      assert.match(fs.readFileSync(`${cfg}.latchgate-disabled`, 'utf8'), /fsmonitor/);
      hostGit(ws, ['status']);
      hostGit(path.join(ws, 'lib'), ['status']);
      assert.deepEqual(fs.readdirSync(marks), []);
    });

    test('two boxes on one workspace: what the first planted is not taken as existing by the second, whose agent undoes the first check', async () => {
      const ws = makeWorkspace('hx-two');
      repo(ws);
      const marks = markerDir();
      const env = stateEnv(mode);
      const waitFor = (p) => `for i in $(seq 300); do [ -e ${p} ] && break; sleep 0.1; done`;
      const a = runBox(mode, { workspace: ws, env, timeoutMs: 60000, cmd: ['/bin/sh', '-c', `git init -q evil && git config -f evil/.git/config core.fsmonitor "touch ${marks}/evil; false" && touch planted
${waitFor('go-a')}`] });
      for (let i = 0; i < 300 && !exists(path.join(ws, 'planted')); i++) await new Promise((r) => setTimeout(r, 100));
      const b = runBox(mode, { workspace: ws, env, args: ['--json'], timeoutMs: 60000, cmd: ['/bin/sh', '-c', `touch b-started
${waitFor('evil/.git/HEAD.latchgate-disabled')}
mv evil/.git/HEAD.latchgate-disabled evil/.git/HEAD && echo undone`] });
      for (let i = 0; i < 300 && !exists(path.join(ws, 'b-started')); i++) await new Promise((r) => setTimeout(r, 100));
      fs.writeFileSync(path.join(ws, 'go-a'), '');
      const [ra, rb] = await Promise.all([a, b]);
      assert.equal(ra.code, 0, ra.stderr);
      assert.match(ra.stderr, /a git directory appeared in the box at evil\/\.git.*disabled/);
      assert.equal(rb.code, 0, rb.stderr);
      assert.match(rb.stdout, /undone/, 'the second box put HEAD back');
      assert.deepEqual(rb.json.hostExecution.map((f) => [f.kind, path.relative(ws, f.path), f.action]), [['new-git-dir', 'evil/.git', 'disabled']]);
      hostGit(path.join(ws, 'evil'), ['status']);
      assert.deepEqual(fs.readdirSync(marks), []);
    });

    test('without the neutralisation the same plant runs on the host (the test can fail), and --trust-new-repos keeps it on purpose', async () => {
      const ws = makeWorkspace('hx-trust');
      repo(ws);
      const marks = markerDir();
      const r = await runBox(mode, {
        workspace: ws,
        args: ['--json', '--trust-new-repos'],
        cmd: ['/bin/sh', '-c', `git init -q sub && git config -f sub/.git/config core.fsmonitor "touch ${marks}/sub; false"`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.json.degraded, ['trust-new-repos'], 'a weaker mode asked for by name is recorded');
      assert.deepEqual(r.json.hostExecution.map((f) => [f.kind, f.action]), [['new-git-dir', 'kept']]);
      assert.match(r.stderr, /kept \(--trust-new-repos\)/);
      assert.equal(exists(path.join(ws, 'sub/.git/HEAD')), true);
      hostGit(path.join(ws, 'sub'), ['status']);
      assert.deepEqual(fs.readdirSync(marks), ['sub'], 'the planted fsmonitor runs when kept: what the default prevents');
    });

    test('a worktree added in the box, and a repository hidden in a directory the box made unreadable, are disabled', async () => {
      const ws = makeWorkspace('hx-wt');
      repo(ws);
      const marks = markerDir();
      const r = await runBox(mode, {
        workspace: ws,
        args: ['--json'],
        cmd: ['/bin/sh', '-c', `set -e
git worktree add -q wt2
git init -q hide/r && git config -f hide/r/.git/config core.fsmonitor "touch ${marks}/hidden; false"
chmod 0300 hide
`],
      });
      assert.equal(r.code, 0, r.stderr);
      const kinds = r.json.hostExecution.map((f) => `${f.kind} ${path.relative(ws, f.path)} ${f.action}`).sort();
      assert.deepEqual(kinds, ['new-git-dir .git/worktrees/wt2 disabled', 'new-git-dir hide/r/.git disabled', 'new-pointer wt2/.git disabled']);
      hostGit(path.join(ws, 'hide/r'), ['status']);
      hostGit(path.join(ws, 'wt2'), ['status']);
      assert.deepEqual(fs.readdirSync(marks), []);
    });

    test('a changed .gitmodules is put back and the box version kept aside', async () => {
      const ws = makeWorkspace('hx-gitmodules');
      repo(ws);
      const original = '[submodule "lib"]\n\tpath = lib\n\turl = https://example.invalid/lib.git\n';
      fs.writeFileSync(path.join(ws, '.gitmodules'), original);
      own(ws);
      const r = await runBox(mode, { workspace: ws, args: ['--json'], cmd: ['/bin/sh', '-c', "sed -i 's#example.invalid/lib#evil.invalid/x#' .gitmodules"] });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.json.hostExecution.map((f) => [f.kind, f.action]), [['gitmodules-changed', 'disabled']]);
      assert.equal(fs.readFileSync(path.join(ws, '.gitmodules'), 'utf8'), original);
      assert.match(fs.readFileSync(path.join(ws, '.gitmodules.latchgate-disabled'), 'utf8'), /evil\.invalid/);
    });

    test('what the config chain names stays read-only: include targets, hooksPath, an fsmonitor script, and the global config\'s include', async () => {
      const ws = makeWorkspace('hx-chain');
      const g = repo(ws);
      const marks = markerDir();
      fs.mkdirSync(path.join(ws, 'tools'));
      fs.writeFileSync(path.join(ws, 'tools/fsmon.sh'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
      fs.writeFileSync(path.join(ws, 'shared.gitconfig'), '[alias]\n\tst = status\n');
      fs.writeFileSync(path.join(ws, 'notes.txt'), 'notes\n');
      own(ws);
      g('config', 'include.path', '../shared.gitconfig');
      g('config', 'includeIf.onbranch:main.path', '../missing.gitconfig');
      g('config', 'core.hooksPath', '.husky');
      g('config', 'core.fsmonitor', './tools/fsmon.sh');
      const r = await runBox(mode, {
        workspace: ws,
        cmd: ['/bin/sh', '-c', `${PRELUDE}
w include shared.gitconfig
w include-missing missing.gitconfig
w hookspath .husky/pre-commit
w fsmonitor tools/fsmon.sh
w legit:notes notes.txt
w legit:tools tools/other.sh
git status --porcelain >/dev/null && echo @@status OK
`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(results(r.stdout), { include: 'EROFS', 'include-missing': 'EROFS', hookspath: 'EROFS', fsmonitor: 'EROFS', 'legit:notes': 'OK', 'legit:tools': 'OK', status: 'OK' });
      assert.equal(exists(path.join(ws, 'missing.gitconfig')), false);
      assert.equal(exists(path.join(ws, '.husky')), false, 'the hooksPath placeholder is gone');
      assert.equal(fs.readFileSync(path.join(ws, 'tools/fsmon.sh'), 'utf8'), '#!/bin/sh\nexit 1\n');
      assert.deepEqual(fs.readdirSync(marks), []);
    });

    test('scripts named by protected agent settings stay read-only (project hooks, status line)', async () => {
      const ws = makeWorkspace('hx-settings');
      fs.mkdirSync(path.join(ws, '.claude/hooks'), { recursive: true });
      fs.mkdirSync(path.join(ws, 'scripts'));
      fs.writeFileSync(path.join(ws, '.claude/settings.json'), JSON.stringify({
        hooks: { PostToolUse: [{ matcher: 'Edit', hooks: [{ type: 'command', command: '"$CLAUDE_PROJECT_DIR"/scripts/fmt.sh' }] }] },
        statusLine: { type: 'command', command: 'bash ./scripts/status.sh' },
      }));
      for (const f of ['scripts/fmt.sh', 'scripts/status.sh', 'scripts/build.sh', '.claude/hooks/guard.sh']) fs.writeFileSync(path.join(ws, f), '#!/bin/sh\n', { mode: 0o755 });
      own(ws);
      const r = await runBox(mode, {
        workspace: ws,
        cmd: ['/bin/sh', '-c', `${PRELUDE}
w fmt scripts/fmt.sh
w status scripts/status.sh
w hooks-dir .claude/hooks/guard.sh
w new-hook .claude/hooks/new.sh
w settings .claude/settings.json
w legit:build scripts/build.sh
`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(results(r.stdout), { fmt: 'EROFS', status: 'EROFS', 'hooks-dir': 'EROFS', 'new-hook': 'EROFS', settings: 'EROFS', 'legit:build': 'OK' });
    });

    test('a home directory as workspace is refused with the fix; asked for by name, its dotfiles stay read-only', async () => {
      const u = testUser();
      const home = isRoot ? `/home/${u.name}` : os.homedir();
      let made = false;
      if (isRoot && !exists(home)) {
        fs.mkdirSync(home, { mode: 0o755 });
        made = true;
        onCleanup(() => fs.rmSync(home, { recursive: true, force: true }));
      }
      const files = { '.gitconfig': '[user]\n\tname = me\n', '.bashrc': '# rc\n', '.ssh/authorized_keys': 'ssh-ed25519 AAAA me\n', 'project/main.c': 'int main;\n' };
      const created = [];
      for (const [rel, text] of Object.entries(files)) {
        const p = path.join(home, rel);
        if (exists(p)) continue;
        fs.mkdirSync(path.dirname(p), { recursive: true });
        fs.writeFileSync(p, text);
        created.push(p);
      }
      if (isRoot) execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, home]);
      if (!made) onCleanup(() => created.forEach((p) => fs.rmSync(p, { force: true })));
      const refused = await runBox(mode, { workspace: home, cmd: ['/bin/true'] });
      assert.equal(refused.code, 125);
      assert.match(refused.stderr, /refused: it is a home directory.*--allow-home-workspace/);
      const parent = await runBox(mode, { workspace: path.dirname(home), cmd: ['/bin/true'] });
      assert.equal(parent.code, 125);
      assert.match(parent.stderr, /an ancestor of the home directory/);
      const r = await runBox(mode, {
        workspace: home,
        args: ['--allow-home-workspace', '--json'],
        cmd: ['/bin/sh', '-c', `${PRELUDE}
w gitconfig .gitconfig
w bashrc .bashrc
w ssh .ssh/authorized_keys
w local-bin .local/bin/git
w systemd .config/systemd/user/x.service
w autostart .config/autostart/x.desktop
w npmrc .npmrc
w zshenv .zshenv
w legit:project project/main.c
printf 'shell touch /tmp/pwned\\n' > .gdbinit && echo @@new-dotfile OK
mkdir -p .kube && echo 'users: []' > .kube/config && echo @@new-dotdir OK
`],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.json.degraded, ['home-workspace']);
      const res = results(r.stdout);
      assert.equal(res['legit:project'], 'OK');
      for (const k of ['gitconfig', 'bashrc', 'ssh', 'local-bin', 'systemd', 'autostart', 'npmrc', 'zshenv']) assert.notEqual(res[k], 'OK', `${k}: ${res[k]}`);
      assert.equal(fs.readFileSync(path.join(home, '.gitconfig'), 'utf8').includes('planted'), false);
      assert.equal(fs.readFileSync(path.join(home, '.ssh/authorized_keys'), 'utf8').includes('planted'), false);
      assert.equal(exists(path.join(home, '.local/bin/git')), false);
      // Dotfiles nobody had: created in the box, moved aside after it.
      onCleanup(() => ['.gdbinit', '.kube'].forEach((n) => fs.rmSync(path.join(home, `${n}.latchgate-disabled`), { recursive: true, force: true })));
      assert.equal(res['new-dotfile'], 'OK');
      const moved = r.json.hostExecution.filter((f) => f.kind === 'new-home-dotfile').map((f) => path.basename(f.path)).sort();
      assert.deepEqual(moved, ['.gdbinit', '.kube']);
      assert.equal(exists(path.join(home, '.gdbinit')), false);
    });
  });
}
