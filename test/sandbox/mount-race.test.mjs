// A box already running on a workspace races the next launch there: between
// the plan (which sees .claude as a real directory, and so pins it over
// itself, writable, above the protected .claude/hooks) and the mounts, it
// swaps .claude for a relative symlink to a directory of its user outside the
// workspace (standing for ~/.ssh). Followed, the pin would show that directory
// in the new box, writable. Every launch must either see the workspace's own
// .claude or fail closed, naming the swap; none may read or write the outside
// directory. Both launcher modes, and root on a root-owned workspace (whose
// binds come from an idmapped copy). Next to it: the same launch with nobody
// racing works and sees .claude.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, own, runBox, testUser } from '../helpers/sandbox.mjs';

const isRoot = process.getuid() === 0;
const SECRET = 'OUTSIDE-SECRET-7f3a';
const scratch = [];
after(() => {
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
  cleanupWorkspaces();
});

// Swaps <ws>/.claude between the real directory and a symlink to <target>,
// renames only, until killed or its parent is gone. A directory the launcher
// made meanwhile where one of the two belongs (a placeholder for
// .claude/hooks) is removed, so the swapping goes on. Prints "ready" first.
const FLIPPER = `
const fs = require('fs');
const [ws, target] = process.argv.slice(1);
const name = ws + '/.claude', real = name + '.real', link = name + '.link';
const lst = (p) => { try { return fs.lstatSync(p); } catch {} };
const mv = (a, b) => { try { fs.renameSync(a, b); return true; } catch { return false; } };
const stray = (p) => { try { if (lst(p)?.isDirectory()) fs.rmSync(p, { recursive: true, force: true }); } catch {} };
fs.symlinkSync(target, link);
process.stdout.write('ready\\n');
const parent = process.ppid;
for (let i = 0; ; i++) {
  if (i % 1000 === 0 && process.ppid !== parent) process.exit(0); // the test is gone
  if (!mv(name, real) && lst(real)) stray(name);
  stray(link);
  if (!lst(link)) try { fs.symlinkSync(target, link); } catch {}
  mv(link, name);
  mv(name, link);
  mv(real, name);
}
`;

async function startFlipper(ws, target, ids) {
  const child = spawn(process.execPath, ['-e', FLIPPER, ws, target], { ...(ids ?? {}), stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await once(createInterface({ input: child.stdout }), 'line');
  assert.equal(line, 'ready');
  return child;
}

/** The workspace with its own .claude, and beside it the directory the symlink names, both the agent's. */
function setup(kind) {
  let ws;
  if (kind === 'root-owned') {
    const parent = mkdtempSync(path.join(os.tmpdir(), 'latchgate-race-root-'));
    scratch.push(parent);
    ws = path.join(parent, 'ws');
    mkdirSync(ws, { mode: 0o755 });
  } else ws = makeWorkspace('race');
  mkdirSync(path.join(ws, '.claude'));
  writeFileSync(path.join(ws, '.claude', 'own.txt'), 'the workspace .claude\n');
  const outside = `${ws}-outside`;
  mkdirSync(outside);
  chmodSync(outside, 0o700);
  writeFileSync(path.join(outside, 'secret.txt'), `${SECRET}\n`);
  scratch.push(outside);
  if (kind !== 'root-owned') own(ws), own(outside);
  return { ws, outside, target: `../${path.basename(outside)}` };
}

const PROBE = (ws) => `cat ${ws}/.claude/secret.txt 2>/dev/null; cat ${ws}/.claude/own.txt 2>/dev/null; echo pwned > ${ws}/.claude/pwned.txt 2>/dev/null; exit 0`;

const cases = [...MODES.map((mode) => ({ mode, kind: 'agent-owned' })), { mode: 'root', kind: 'root-owned' }];
for (const { mode, kind } of cases) {
  const skip = skipReason(mode) ?? (kind === 'root-owned' && !isRoot ? 'needs root' : false);
  describe(`a workspace name swapped for a symlink while the box is built, launcher as ${mode}, ${kind} workspace`, { skip }, () => {
    test('without a race the box sees the workspace .claude', async () => {
      const { ws } = setup(kind);
      const r = await runBox(mode, { workspace: ws, cmd: ['/bin/sh', '-c', PROBE(ws)] });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /the workspace \.claude/);
    });

    test('every launch sees the workspace .claude or fails closed naming the swap; none reaches the directory the symlink names', async () => {
      const { ws, outside, target } = setup(kind);
      const u = testUser();
      const flipper = await startFlipper(ws, target, kind === 'root-owned' || !isRoot ? undefined : { uid: u.uid, gid: u.gid });
      const outcomes = { ok: 0, met: 0, other: 0 };
      try {
        // Until the race was met at the mounts a few times (a good share of launches meets it).
        for (let i = 0; i < 60 && outcomes.met < 3; i++) {
          const r = await runBox(mode, { workspace: ws, cmd: ['/bin/sh', '-c', PROBE(ws)] });
          assert.doesNotMatch(r.stdout, new RegExp(SECRET), `launch ${i} read the outside directory: ${r.stderr}`);
          assert.ok(!existsSync(path.join(outside, 'pwned.txt')), `launch ${i} wrote into the outside directory`);
          assert.doesNotMatch(r.stderr, /^\s+at /m, `launch ${i} crashed: ${r.stderr}`);
          if (r.code === 0) outcomes.ok++;
          else {
            // Otherwise a launcher failure, one line: the plan itself met the swap (a placeholder that could not be made, say).
            assert.equal(r.code, 125, r.stderr);
            if (/changed after the box was planned/.test(r.stderr)) outcomes.met++;
            else outcomes.other++;
          }
        }
      } finally {
        if (flipper.exitCode === null && flipper.signalCode === null) {
          flipper.kill('SIGKILL');
          await once(flipper, 'exit');
        }
      }
      assert.equal(flipper.signalCode, 'SIGKILL', 'the flipper stopped before the launches did');
      assert.deepEqual(readdirSync(outside), ['secret.txt']);
      // The race was really run: some launches met the symlink at the mount.
      assert.ok(outcomes.met >= 1, `no launch met the swap at the mounts: ${JSON.stringify(outcomes)}`);
    });
  });
}
