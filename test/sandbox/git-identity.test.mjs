// git in a real box, in both launcher modes, as the test user with a host
// ~/.gitconfig that has an identity (the email from an included file), a
// credential helper, an alias that runs a shell command and commit signing:
// `git commit` with no flags records the identity, and none of the rest is
// there; the box's git config writes fail with the reason said at launch and
// never reach the host's file. Without a host identity, git says what it
// always says, and nothing is invented.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, testUser, sh } from '../helpers/sandbox.mjs';

const isRoot = process.getuid() === 0;
// The launcher reads the test user's host config from its home, /home/lgtest: only touched as root, never a developer's own.
const notRoot = isRoot ? undefined : "needs root: writes the test user's ~/.gitconfig (/home/lgtest), which a non-root run would take from your own";

let home;
const gitconfig = () => path.join(home, '.gitconfig');
const extraDir = () => path.join(home, '.latchgate-git-test');
let saved; // a .gitconfig another test file left, put back after
let madeHome = false;

before(() => {
  if (!isRoot) return;
  const u = testUser();
  home = `/home/${u.name}`;
  if (!fs.existsSync(home)) {
    fs.mkdirSync(home, { mode: 0o755 });
    fs.chownSync(home, u.uid, u.gid);
    madeHome = true;
  }
  saved = fs.existsSync(gitconfig()) ? fs.readFileSync(gitconfig()) : undefined;
});

after(() => {
  if (home) {
    fs.rmSync(extraDir(), { recursive: true, force: true });
    if (saved !== undefined) fs.writeFileSync(gitconfig(), saved);
    else fs.rmSync(gitconfig(), { force: true });
    if (madeHome) {
      try {
        fs.rmdirSync(home); // only if nothing else is in it
      } catch {
        // another test's files: theirs to remove
      }
    }
  }
  cleanupWorkspaces();
});

/** Writes a file in the test user's home as that user would own it. */
function writeOwned(p, text) {
  const u = testUser();
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.chownSync(path.dirname(p), u.uid, u.gid);
  fs.writeFileSync(p, text);
  fs.chownSync(p, u.uid, u.gid);
}

/** A workspace holding a repository made on the host by its owner (so its .git/config is protected in the box). */
function repoWorkspace(prefix) {
  const ws = makeWorkspace(prefix);
  const u = testUser();
  execFileSync('git', ['init', '-q', ws], { uid: u.uid, gid: u.gid, env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent', GIT_CONFIG_NOSYSTEM: '1' } });
  return ws;
}

/** The sections a script printed: lines "@@name" start one. */
function sections(out) {
  const sec = {};
  let cur;
  for (const l of out.split('\n')) {
    if (l.startsWith('@@')) sec[(cur = l.slice(2))] = [];
    else if (cur) sec[cur].push(l);
  }
  return Object.fromEntries(Object.entries(sec).map(([k, v]) => [k, v.join('\n').trim()]));
}

const stamp = (p) => {
  const st = fs.statSync(p);
  return { text: fs.readFileSync(p, 'utf8'), mtimeMs: st.mtimeMs, ino: st.ino };
};

for (const mode of MODES) {
  describe(`${mode} launcher`, { skip: skipReason(mode) ?? notRoot }, () => {
    test('git commit with no flags records the host identity; credential helper, alias, include and signing are not in the box; config writes fail with the reason said at launch and the host file is untouched', async () => {
      const ws = repoWorkspace('git-id');
      const marker = path.join(ws, 'alias-ran');
      writeOwned(path.join(extraDir(), 'identity'), '[user]\n\temail = ada@example.org\n[alias]\n\tincluded = !touch ' + marker + '\n');
      writeOwned(gitconfig(), [
        '[user]',
        '\tname = Ada \\"Host\\" Lovelace',
        '\tsigningkey = ~/.ssh/id_ed25519.pub',
        '[include]',
        '\tpath = ~/.latchgate-git-test/identity',
        '[credential]',
        '\thelper = store --file ~/.latchgate-git-test/creds',
        '[alias]',
        `\tpwn = !touch ${marker}`,
        '[commit]',
        '\tgpgsign = true',
        '[gpg]',
        '\tformat = ssh',
        '[init]',
        '\tdefaultBranch = trunk',
        '',
      ].join('\n'));
      const before = stamp(gitconfig());
      const r = await sh(mode, `
echo hello > f && git add f && git commit -q -m first && echo COMMITTED
echo @@log; git log -1 --format='%an|%ae|%cn|%ce|%G?'
for k in credential.helper include.path alias.pwn alias.included commit.gpgsign user.signingkey gpg.format; do
  echo "@@get:$k"; git config --get "$k"; echo "exit $?"
done
echo @@pwn; git pwn 2>&1; git included 2>&1; echo "exit $?"
echo @@branch; cd "$(mktemp -d)" && git init -q . && git symbolic-ref HEAD; cd "$OLDPWD"
echo @@global; git config --global x.y z 2>&1; echo "exit $?"
echo @@local; git config x.y z 2>&1; echo "exit $?"
echo @@nolink; env -u GIT_CONFIG_GLOBAL git config --get user.email
echo @@end`, { workspace: ws });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^COMMITTED$/m, r.stdout + r.stderr);
      const sec = sections(r.stdout);
      assert.equal(sec.log, 'Ada "Host" Lovelace|ada@example.org|Ada "Host" Lovelace|ada@example.org|N', 'the identity, the email from the included file; not signed');
      for (const k of ['credential.helper', 'include.path', 'alias.pwn', 'alias.included', 'commit.gpgsign', 'user.signingkey', 'gpg.format']) {
        assert.equal(sec[`get:${k}`], 'exit 1', `${k} is not in the box's config`);
      }
      assert.match(sec.pwn, /'pwn' is not a git command/);
      assert.ok(!fs.existsSync(marker), 'no alias of the host ran');
      assert.equal(sec.branch, 'refs/heads/trunk', 'init.defaultBranch carried');
      assert.match(sec.global, /could not lock config file \/run\/latchgate\/gitconfig: Read-only file system\nexit [1-9]/);
      assert.match(sec.local, /Device or resource busy\nexit [1-9]/, "the repository's .git/config stays read-only");
      assert.equal(sec.nolink, 'ada@example.org', '~/.gitconfig in the box leads to the generated config too');
      // Said once at launch, in one line: the identity's source, why config writes fail, that signing is off.
      const notes = r.stderr.split('\n').filter((l) => l.startsWith('latchgate: git in the box:'));
      assert.equal(notes.length, 1, r.stderr);
      assert.match(notes[0], /user\.name, user\.email from your git config; git config cannot write there \(read-only: "Device or resource busy" for \.git\/config, "Read-only file system" for --global\): run it outside the box; commits and tags are not signed there/);
      // The host's file: the same bytes, the same inode, not rewritten.
      assert.deepEqual(stamp(gitconfig()), before);
      assert.deepEqual(fs.readdirSync(home).filter((n) => n.startsWith('.gitconfig')), ['.gitconfig'], 'no lock or copy beside the host file');
      assert.equal(fs.readFileSync(path.join(ws, '.git', 'config'), 'utf8').includes('[x]'), false, "the repository's config unchanged");
    });

    test('no identity on the host: git commit says what git always says, nothing is invented, no name lookup is refused', async () => {
      const ws = repoWorkspace('git-noid');
      fs.rmSync(gitconfig(), { force: true });
      fs.rmSync(extraDir(), { recursive: true, force: true });
      const r = await sh(mode, `
echo hello > f && git add f && git commit -q -m first; echo "@@exit $?"
echo @@names; git config --show-origin --get-regexp '^(user|author|committer)\\.' ; echo "exit $?"`, { workspace: ws });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /Author identity unknown/);
      assert.match(r.stderr, /fatal: unable to auto-detect email address \(got '[^']*@latchgate\.\(none\)'\)/);
      assert.match(r.stdout, /^@@exit 128$/m);
      assert.match(r.stdout, /@@names\nexit 1/, 'no name or email in any config of the box');
      assert.match(r.stderr, /^latchgate: git in the box: no identity in your git config \(git will ask for one\); git config cannot write there/m);
      assert.doesNotMatch(r.stderr, /refused/, "guessing an email, git looks the box's name up: /etc/hosts answers, no query is refused");
    });
  });
}
