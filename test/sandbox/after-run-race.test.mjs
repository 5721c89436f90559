// A box still running on the workspace races the after-run check of another
// box's launcher. The box that ends leaves things the check disables: a new
// git directory g/ (disabled first), 200 new .git pointers, a directory q
// opened to everyone, a tool config p/.vscode. The racer (the other box's
// user) waits until the check has moved g/HEAD aside, then swaps p for a
// symlink to a directory of that user outside the workspace that holds a
// .vscode of its own (standing for ~/.vscode), and q for a symlink to a file
// there (standing for ~/.ssh/id_ed25519). Followed, the check would move the
// outside .vscode aside and chmod the outside file 0775. Every launch must
// leave the outside directory exactly as it was, and say in one line per
// piece what it could not disable (exit 125). Next to it: the same launch
// with nobody racing disables both pieces in the workspace.
//
// And a .git pointer, read-only in the box, that the other box points at a
// repository outside the workspace while the box runs: the check must not
// rewrite that repository's index (its skip-worktree entries are the user's).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, own, runBox, testUser } from '../helpers/sandbox.mjs';

const isRoot = process.getuid() === 0;
const scratch = [];
after(() => {
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
  cleanupWorkspaces();
});

const asAgent = () => {
  const u = testUser();
  return isRoot ? { uid: u.uid, gid: u.gid } : {};
};

// Waits until the check moved g/HEAD aside, then swaps p and q for symlinks
// into the outside directory (renames and symlinks only), prints "swapped"
// and exits. Gives up when the test is gone or after 60 s. Prints "ready" first.
const RACER = `
const fs = require('fs');
const [ws, outside] = process.argv.slice(1);
const parent = process.ppid;
process.stdout.write('ready\\n');
const deadline = Date.now() + 60000;
for (let i = 0; !fs.existsSync(ws + '/g/HEAD.latchgate-disabled'); i++) {
  if (i % 1000 === 0 && (process.ppid !== parent || Date.now() > deadline)) process.exit(0);
}
fs.renameSync(ws + '/p', ws + '/p.real');
fs.symlinkSync(outside, ws + '/p');
fs.renameSync(ws + '/q', ws + '/q.real');
fs.symlinkSync(outside + '/secret', ws + '/q');
process.stdout.write('swapped\\n');
`;

/** What the ending box leaves: a git directory, many pointers (time for the racer), a world-writable q, p/.vscode. */
const PLANT = (ws) => `cd ${ws} && mkdir -p g/objects g/refs && echo 'ref: refs/heads/main' > g/HEAD && for i in $(seq 200); do mkdir w$i && echo 'gitdir: ../g' > w$i/.git; done && mkdir -m 0777 q && chmod 0777 q && mkdir p/.vscode && echo '{}' > p/.vscode/tasks.json`;

function setup() {
  const ws = makeWorkspace('after-race');
  mkdirSync(path.join(ws, 'p'));
  const outside = `${ws}-outside`;
  scratch.push(outside);
  mkdirSync(path.join(outside, '.vscode'), { recursive: true });
  writeFileSync(path.join(outside, '.vscode', 'mine.json'), '{"the user": "own"}\n');
  writeFileSync(path.join(outside, 'secret'), 'KEY\n');
  chmodSync(path.join(outside, 'secret'), 0o600);
  own(ws), own(outside);
  return { ws, outside };
}

/** The workspace back as it was before a launch: the box's pieces gone, p a plain directory. */
function reset(ws) {
  for (const n of readdirSync(ws)) rmSync(path.join(ws, n), { recursive: true, force: true }); // never follows the symlinks
  mkdirSync(path.join(ws, 'p'));
  own(path.join(ws, 'p'));
}

function assertOutsideUntouched(outside, i, r) {
  assert.deepEqual(readdirSync(outside).sort(), ['.vscode', 'secret'], `launch ${i} moved something outside the workspace: ${r.stderr.slice(-2000)}`);
  assert.deepEqual(readdirSync(path.join(outside, '.vscode')), ['mine.json'], `launch ${i} changed the outside .vscode`);
  assert.equal(statSync(path.join(outside, 'secret')).mode & 0o7777, 0o600, `launch ${i} chmodded a file outside the workspace: ${r.stderr.slice(-2000)}`);
}

for (const mode of MODES) {
  describe(`names swapped for symlinks during the after-run check, launcher as ${mode}`, { skip: skipReason(mode) }, () => {
    test('without a race the check disables the pieces in the workspace', async () => {
      const { ws, outside } = setup();
      const r = await runBox(mode, { workspace: ws, cmd: ['/bin/sh', '-c', PLANT(ws)] });
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      assert.match(r.stderr, /p\/\.vscode moved to p\/\.vscode\.latchgate-disabled/);
      assert.match(r.stderr, /the box made q writable by every local user; write access for others removed/);
      assert.equal(statSync(path.join(ws, 'q')).mode & 0o7777, 0o775);
      assertOutsideUntouched(outside, 0, r);
    });

    test('a swap after the walk makes the check fail closed; nothing outside the workspace is moved or chmodded', async () => {
      const { ws, outside } = setup();
      let met = 0;
      for (let i = 0; i < 8 && met < 2; i++) {
        reset(ws);
        const racer = spawn(process.execPath, ['-e', RACER, ws, outside], { ...asAgent(), stdio: ['ignore', 'pipe', 'inherit'] });
        const lines = createInterface({ input: racer.stdout });
        const said = [];
        lines.on('line', (l) => said.push(l));
        await once(lines, 'line');
        let r;
        try {
          r = await runBox(mode, { workspace: ws, cmd: ['/bin/sh', '-c', PLANT(ws)] });
        } finally {
          if (racer.exitCode === null && racer.signalCode === null) {
            racer.kill('SIGKILL');
            await once(racer, 'exit');
          }
        }
        assertOutsideUntouched(outside, i, r);
        assert.doesNotMatch(r.stderr, /^\s+at /m, `launch ${i} crashed: ${r.stderr.slice(-2000)}`);
        if (!said.includes('swapped') || !/could NOT move p\/\.vscode aside/.test(r.stderr)) continue; // the racer came too late
        met++;
        assert.equal(r.code, 125, r.stderr.slice(-2000));
        assert.match(r.stderr, /could NOT move p\/\.vscode aside \([A-Z]+: [^)]*\/p: /);
        assert.match(r.stderr, /the box made q writable by every local user; could NOT remove it/);
      }
      assert.ok(met >= 1, 'the racer never swapped p before the check reached p/.vscode');
    });

    test("a pointer the other box aims outside the workspace while the box runs: that repository's index is left alone", async () => {
      const ws = makeWorkspace('after-pointer');
      const outside = `${ws}-outside`;
      scratch.push(outside);
      const git = (cwd, ...args) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin', HOME: cwd } });
      // The workspace: sub/.git a pointer to a repository in the workspace.
      mkdirSync(path.join(ws, 'inner'));
      git(path.join(ws, 'inner'), 'init', '-q');
      mkdirSync(path.join(ws, 'sub'));
      writeFileSync(path.join(ws, 'sub', '.git'), 'gitdir: ../inner/.git\n');
      // Outside: the user's repository with an entry hidden on purpose (sparse checkout, say).
      mkdirSync(outside);
      git(outside, 'init', '-q');
      writeFileSync(path.join(outside, 'f'), 'x\n');
      git(outside, 'add', 'f');
      git(outside, 'update-index', '--skip-worktree', 'f');
      const index = readFileSync(path.join(outside, '.git', 'index'));
      own(ws), own(outside);
      // The other box's user repoints sub/.git once this box runs (this box has it read-only).
      const repoint = `const fs = require('fs'); fs.writeFileSync(${JSON.stringify(path.join(ws, 'sub', '.git'))}, 'gitdir: ${outside}/.git\\n'); fs.writeFileSync(${JSON.stringify(path.join(ws, 'go'))}, '')`;
      let timer;
      const r = await runBox(mode, {
        workspace: ws,
        cmd: ['/bin/sh', '-c', `touch ${ws}/started; while [ ! -e ${ws}/go ]; do sleep 0.05; done`],
        onSpawn: () => {
          timer = setInterval(() => {
            if (!existsSync(path.join(ws, 'started')) || existsSync(path.join(ws, 'go'))) return;
            execFileSync(process.execPath, ['-e', repoint], asAgent());
          }, 50);
        },
      }).finally(() => clearInterval(timer));
      assert.equal(r.code, 0, r.stderr);
      assert.match(readFileSync(path.join(ws, 'sub', '.git'), 'utf8'), new RegExp(`gitdir: ${outside}/\\.git`));
      assert.ok(readFileSync(path.join(outside, '.git', 'index')).equals(index), `the check rewrote the index of a repository outside the workspace: ${r.stderr}`);
    });
  });
}
