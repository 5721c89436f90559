// A launcher works inside directories the box's uid controls (the
// workspace; the socket directory in the unprivileged mode): a process of
// that uid swapping symlinks into them during launches must never get the
// launcher to create, chmod, chown or remove anything of root's; the launch
// works or fails closed with a clear error. Next to it the legitimate path:
// placeholders are the agent's and vanish after the run; both sockets are
// reachable from inside the box and nobody else's.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, testUser } from '../helpers/sandbox.mjs';
import { rootTargets, snapshot, startRacer } from '../helpers/racer.mjs';

const scratch = [];
after(() => {
  cleanupWorkspaces();
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});
const isRoot = process.getuid() === 0;

/** A root-owned scratch directory with the given mode. */
function rootDir(prefix, mode) {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(d, mode);
  scratch.push(d);
  return d;
}

/**
 * The launcher's environment: a TMPDIR of its own (sticky, like /tmp) so
 * the racer attacks only these boxes' socket directories, and gate state
 * in a scratch home.
 */
function launcherEnv() {
  const tmp = rootDir('latchgate-tmp-', 0o1777);
  const home = rootDir('latchgate-home-', 0o1777);
  return { tmp, env: { TMPDIR: tmp, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'cfg') } };
}

/** Placeholder paths of an empty workspace, and the parents above them, for the racer. */
const RACED_FILES = ['.bashrc', '.profile', '.zshrc', '.mcp.json', '.claude/settings.json', '.claude/settings.local.json'];
const RACED_DIRS = ['.claude', '.vscode', '.idea', '.codex', '.git', '.claude/commands', '.claude/agents'];

for (const mode of MODES) {
  test(`[${mode}] the box's uid racing symlinks into the placeholder paths and the socket directory: nothing of root's changes, each launch works or fails closed`, { skip: skipReason(mode) }, async (t) => {
    const u = testUser();
    const agent = isRoot ? { uid: u.uid, gid: u.gid } : undefined;
    const ws = makeWorkspace('race');
    const { tmp, env } = launcherEnv();
    const targets = rootTargets(rootDir('latchgate-outside-', 0o755));
    const before = snapshot(targets.outside);
    const placeholderRacer = await startRacer(agent, { workspaces: [ws], files: RACED_FILES, dirs: RACED_DIRS, fileTarget: targets.fileTarget, dirTarget: targets.dirTarget });
    const socketRacer = await startRacer(agent, { workspaces: [], files: [], dirs: [], socketDirs: [tmp], socketTarget: targets.socketTarget });
    t.after(() => {
      placeholderRacer.kill();
      socketRacer.kill();
    });
    const results = [];
    // Until both racers have had their go (they may be slow to get the CPU), within a bound. Every other
    // launch is of a workspace the placeholder racer leaves alone: it gets as far as its box, whose
    // sockets then stand long enough for the socket racer to find them (a launch the placeholder racer
    // makes fail closed may remove them before it looks).
    const calm = makeWorkspace('race-calm');
    const raced = () => placeholderRacer.counts.file + placeholderRacer.counts.dir >= 10 && socketRacer.counts.socket + socketRacer.counts.blocked >= 4;
    for (let i = 0; i < 40 && (i < 8 || !raced()); i++) {
      results.push(await runBox(mode, { workspace: i % 2 ? calm : ws, env, args: ['--allow-host', 'example.com'], cmd: ['/bin/sleep', '0.3'] }));
    }
    const swaps = { placeholders: await placeholderRacer.stop(), sockets: await socketRacer.stop() };
    const ok = results.filter((r) => r.code === 0).length;
    t.diagnostic(`racers: ${JSON.stringify(swaps)}; launches ok ${ok}, failed closed ${results.length - ok}`);
    for (const e of new Set(results.filter((r) => r.code !== 0).map((r) => r.stderr.trim().replaceAll(ws, '<ws>').replaceAll(tmp, '<tmp>').replace(/latchgate-box-\w+/g, 'latchgate-box-X').replace(/\.moved\d+/g, '.movedN')))) t.diagnostic(e);

    assert.deepEqual(snapshot(targets.outside), before, 'a root-owned file or directory outside the workspace changed');
    for (const r of results) {
      if (r.code === 0) continue;
      assert.equal(r.code, 125, `neither worked nor failed closed: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, /^latchgate: \S.*$/m, 'the error is said');
      assert.doesNotMatch(r.stderr, /\n\s+at /, `a stack trace instead of a clear error:\n${r.stderr}`);
    }
    if (isRoot) {
      // Everything in the workspaces is the agent's: the launcher made nothing there as root.
      const notTheirs = [ws, calm].flatMap((w) => Object.entries(snapshot(w)).filter(([, st]) => st.uid !== u.uid));
      assert.deepEqual(notTheirs, []);
    }
    assert.ok(swaps.placeholders.file + swaps.placeholders.dir > 0, `the placeholder racer never swapped: ${JSON.stringify(swaps)}`);
    assert.ok(swaps.sockets.socket + swaps.sockets.blocked > 0, `the socket racer never reached a box directory: ${JSON.stringify(swaps)}`);
    if (mode === 'root') assert.equal(swaps.sockets.socket, 0, 'the racer swapped a socket of a root launcher');
    assert.deepEqual(readdirSync(tmp), [], 'every box directory was removed');
  });

  test(`[${mode}] placeholders are the agent's and vanish after the run; the sockets are reachable from inside, in a directory only the agent's group may search`, { skip: skipReason(mode) }, async () => {
    const u = testUser();
    const ws = makeWorkspace('legit');
    const { tmp, env } = launcherEnv();
    const inside = `
      import fs from 'node:fs';
      import net from 'node:net';
      const out = { owners: {} };
      for (const p of ['.bashrc', '.vscode', '.claude/settings.json', '.git']) out.owners[p] = fs.lstatSync(p).uid;
      const ask = (path, req) => new Promise((resolve) => {
        const c = net.connect(path, () => c.write(req));
        let d = '';
        c.on('data', (x) => { d += x; if (d.includes('\\r\\n')) { c.destroy(); resolve(d.split('\\r\\n')[0]); } });
        c.on('error', (e) => resolve(e.code));
      });
      out.gate = await ask('/run/latchgate/gate.sock', 'GET /v1/no-such-route HTTP/1.1\\r\\nHost: box\\r\\nConnection: close\\r\\n\\r\\n');
      out.proxy = await ask('/run/latchgate/proxy.sock', 'CONNECT 127.0.0.1:9 HTTP/1.1\\r\\nHost: 127.0.0.1:9\\r\\n\\r\\n');
      console.log(JSON.stringify(out));
      while (!fs.existsSync('host-checked')) await new Promise((r) => setTimeout(r, 20));`;
    let host;
    const r = await runBox(mode, {
      workspace: ws,
      env,
      args: ['--allow-host', 'example.com'],
      cmd: ['/usr/bin/node', '--input-type=module', '-e', inside],
      onSpawn: (child) => {
        let buf = '';
        child.stdout.on('data', (d) => {
          buf += d;
          if (host || !buf.includes('\n')) return;
          // While the box runs: its socket directory and the placeholders, seen from the host.
          const dirs = readdirSync(tmp);
          const dir = path.join(tmp, dirs[0]);
          const st = (p) => {
            const s = lstatSync(p);
            return { mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, socket: s.isSocket() };
          };
          host = { dirs, dir: st(dir), gate: st(path.join(dir, 'gate.sock')), proxy: st(path.join(dir, 'proxy.sock')), bashrc: st(path.join(ws, '.bashrc')) };
          writeFileSync(path.join(ws, 'host-checked'), '');
        });
      },
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n')[0]);
    assert.deepEqual(out.owners, { '.bashrc': u.uid, '.vscode': u.uid, '.claude/settings.json': u.uid, '.git': u.uid });
    assert.match(out.gate, /^HTTP\/1\.1 \d{3} /, 'the gate answers inside the box');
    assert.match(out.proxy, /^HTTP\/1\.1 403 /, 'the CONNECT proxy answers inside the box');
    const launcherUid = mode === 'root' ? 0 : u.uid;
    assert.equal(host.dirs.length, 1);
    assert.deepEqual(host.dir, { mode: 0o2710, uid: launcherUid, gid: u.gid, socket: false });
    assert.deepEqual(host.gate, { mode: 0o660, uid: launcherUid, gid: u.gid, socket: true });
    assert.deepEqual(host.proxy, { mode: 0o660, uid: launcherUid, gid: u.gid, socket: true });
    assert.deepEqual([host.bashrc.uid, host.bashrc.gid], [u.uid, u.gid], 'the placeholder is the agent\'s');
    for (const p of ['.bashrc', '.vscode', '.claude', '.git', '.profile']) assert.ok(!existsSync(path.join(ws, p)), `${p} left behind`);
    assert.deepEqual(readdirSync(tmp), [], 'the socket directory was removed');
  });
}
