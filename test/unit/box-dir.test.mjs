// The box's socket directory (src/sandbox/box-dir.ts): the launcher's own,
// mode 02710 in the agent's group; sockets 0660 from their bind(); a lock
// held for the launcher's life; stale ones removed only when provably
// abandoned, never through a symlink.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, symlinkSync, writeFileSync, constants as fsc } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { LOCK, loadAddon } from '../../dist/native/addon.js';
import { BOX_DIR_MODE, BoxDir, listenInBoxDir, removeStaleBoxDirs, trustedTmpdir } from '../../dist/sandbox/box-dir.js';
import { BoxGate } from '../../dist/sandbox/box-gate.js';
import { LaunchError } from '../../dist/core/errors.js';
import { assertLaunchError, isRoot, tempDir } from '../fixtures/unit/helpers.mjs';
import { rootTargets, snapshot, startRacer } from '../helpers/racer.mjs';

const addon = loadAddon();
const AGENT = { uid: 4321, gid: 4322 };
const euid = process.geteuid();
const myGid = process.getegid();
const rootOnly = { skip: !isRoot && 'a root launcher with another agent uid needs root' };
const dist = (p) => new URL(`../../dist/${p}`, import.meta.url).href;

/** TMPDIR set to dir for the duration of fn (os.tmpdir() reads it on each call). */
async function withTmpdir(dir, fn) {
  const old = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    return await fn();
  } finally {
    if (old === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = old;
  }
}

/** A parent for box directories: root's (or ours), sticky like /tmp. */
function boxParent(t) {
  const dir = tempDir(t, 'latchgate-boxparent-');
  chmodSync(dir, 0o1777);
  return dir;
}

const lockedByOthers = (dir) => {
  const fd = openSync(join(dir, 'lock'), fsc.O_RDONLY);
  try {
    return addon.flock(fd, LOCK.EX | LOCK.NB) !== 0;
  } finally {
    closeSync(fd);
  }
};

/** Runs node code as uid/gid (root only) and returns its stdout. */
function runAs(ids, code) {
  return execFileSync(process.execPath, ['--input-type=module', '-e', code], { ...(isRoot ? ids : {}), encoding: 'utf8', cwd: '/' });
}

/** Connects to a Unix socket as uid/gid from another process: "got <reply>", or the error code. */
function connectAs(sock, ids) {
  const c = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const net = await import('node:net');
       const c = net.connect(${JSON.stringify(sock)});
       c.on('data', (d) => { process.stdout.write('got ' + d); c.destroy(); });
       c.on('error', (e) => process.stdout.write(e.code));`,
    ],
    { ...ids, cwd: '/', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  c.stdout.on('data', (x) => (out += x));
  return once(c, 'exit').then(() => out);
}

/**
 * A launcher stand-in: creates its BoxDir under parent, prints the path,
 * answers "check" on stdin with whether its directory and lock are intact,
 * and removes it when stdin ends.
 */
function startHolder(parent) {
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { BoxDir } = await import(${JSON.stringify(dist('sandbox/box-dir.js'))});
       const fs = await import('node:fs');
       const d = BoxDir.create(${myGid});
       process.stdout.write(d.path + '\\n');
       process.stdin.on('data', () => process.stdout.write(JSON.stringify({ intact: fs.existsSync(d.path + '/lock') && (fs.lstatSync(d.path).mode & 0o7777) === ${BOX_DIR_MODE} }) + '\\n'));
       process.stdin.on('end', () => { d.remove(); process.exit(0); });`,
    ],
    { env: { ...process.env, TMPDIR: parent }, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = [];
  const waiters = [];
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    for (let i; (i = buf.indexOf('\n')) >= 0; ) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      waiters.shift()?.();
    }
  });
  const next = async () => {
    while (lines.length === 0) await new Promise((r) => waiters.push(r));
    return lines.shift();
  };
  return { child, next };
}

test('the directory: the launcher\'s, mode 02710 in the agent\'s group, locked while it lives, gone after remove()', async (t) => {
  const parent = boxParent(t);
  const gid = isRoot ? AGENT.gid : myGid;
  const d = await withTmpdir(parent, () => BoxDir.create(gid));
  const st = lstatSync(d.path);
  assert.ok(st.isDirectory());
  assert.equal(st.mode & 0o7777, BOX_DIR_MODE);
  assert.deepEqual([st.uid, st.gid], [euid, gid]);
  assert.ok(lockedByOthers(d.path), 'the lock is held');
  d.remove();
  assert.ok(!existsSync(d.path));
  d.remove(); // harmless twice
});

test('sockets: mode 0660 in the agent\'s group from the bind itself; the agent connects, another uid cannot, the agent cannot swap them', rootOnly, async (t) => {
  const parent = boxParent(t);
  const d = await withTmpdir(parent, () => BoxDir.create(AGENT.gid));
  t.after(() => d.remove());
  const sock = join(d.path, 'gate.sock');
  const server = net.createServer((c) => c.end('hello'));
  t.after(() => server.close());
  const umask = process.umask(0o022);
  await listenInBoxDir(sock, () => new Promise((r) => server.listen(sock, r)));
  assert.equal(process.umask(umask), 0o022, 'the umask is restored');
  const st = lstatSync(sock);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o7777, 0o660);
  assert.deepEqual([st.uid, st.gid], [0, AGENT.gid]);
  const [agent, stranger] = await Promise.all([connectAs(sock, AGENT), connectAs(sock, { uid: 4999, gid: 4998 })]);
  assert.equal(agent, 'got hello');
  assert.equal(stranger, 'EACCES');
  const tries = runAs(
    AGENT,
    `const fs = await import('node:fs');
     const r = [];
     for (const f of [() => fs.unlinkSync(${JSON.stringify(sock)}), () => fs.symlinkSync('/etc/passwd', ${JSON.stringify(join(d.path, 'proxy.sock'))}), () => fs.renameSync(${JSON.stringify(d.path)}, ${JSON.stringify(d.path + '.x')})]) {
       try { f(); r.push('done'); } catch (e) { r.push(e.code); }
     }
     process.stdout.write(r.join(' '));`,
  );
  assert.equal(tries, 'EACCES EACCES EPERM');
  assert.ok(lstatSync(sock).isSocket());
});

test('a listen failure is a LaunchError naming the socket; a socket that came out with another mode is refused', async (t) => {
  const parent = boxParent(t);
  const d = await withTmpdir(parent, () => BoxDir.create(myGid));
  t.after(() => d.remove());
  const sock = join(d.path, 'gate.sock');
  writeFileSync(sock, ''); // in the way
  const server = net.createServer();
  await assert.rejects(
    listenInBoxDir(sock, () => new Promise((resolve, reject) => server.once('error', reject).listen(sock, resolve))),
    (e) => e instanceof LaunchError && e.message.includes(sock) && /EADDRINUSE/.test(e.message),
  );
  // A listen that binds later than the call (after the umask is back) is caught by the check.
  const late = join(d.path, 'late.sock');
  const s2 = net.createServer();
  t.after(() => s2.close());
  await assert.rejects(
    listenInBoxDir(late, () => new Promise((r) => setImmediate(() => s2.listen(late, r)))),
    (e) => e instanceof LaunchError && e.message.includes(late) && /expected mode 0660/.test(e.message),
  );
});

test('a racer of the agent\'s uid swapping symlinks into the socket directory: root\'s file keeps its mode', rootOnly, async (t) => {
  const parent = boxParent(t);
  const outside = tempDir(t, 'latchgate-outside-');
  const { socketTarget } = rootTargets(outside);
  const before = snapshot(outside);
  const racer = await startRacer(AGENT, { workspaces: [], files: [], dirs: [], socketDirs: [parent], socketTarget });
  t.after(racer.kill);
  const failures = [];
  const stateDir = tempDir(t);
  let boxes = 0;
  await withTmpdir(parent, async () => {
    // Until the racer has gone at enough box directories (it may be slow to get the CPU), within a bound.
    for (; boxes < 2000 && (boxes < 50 || racer.counts.blocked + racer.counts.socket < 10); boxes++) {
      // The whole socket life of a box, through the class the launcher uses.
      const gate = new BoxGate({ stateDir, gate: {}, config: {}, configFiles: [], trustedPaths: [], runtimeDir: stateDir }, 'racer-test', AGENT);
      try {
        await gate.listen();
      } catch (e) {
        failures.push(e);
      }
      await gate.close();
      await new Promise((r) => setImmediate(r)); // lets the racer's reports in
    }
  });
  const swaps = await racer.stop();
  t.diagnostic(`racer: ${JSON.stringify(swaps)} over ${boxes} boxes; failed listens: ${failures.length}`);
  assert.deepEqual(snapshot(outside), before, 'root\'s file changed');
  assert.ok(swaps.blocked > 0, `the racer never found a box directory to attack: ${JSON.stringify(swaps)}`);
  assert.equal(swaps.socket, 0, 'the racer swapped a socket');
  assert.deepEqual(failures, [], 'every listen worked');
  assert.deepEqual(readdirSync(parent), [], 'every box directory was removed');
});

test('stale directories: a killed launcher\'s is removed, a live one\'s untouched', async (t) => {
  const parent = boxParent(t);
  const live = startHolder(parent);
  const dead = startHolder(parent);
  t.after(() => {
    live.child.kill('SIGKILL');
    dead.child.kill('SIGKILL');
  });
  const livePath = await live.next();
  const deadPath = await dead.next();
  dead.child.kill('SIGKILL');
  await once(dead.child, 'exit');
  assert.ok(existsSync(deadPath), 'SIGKILL left it behind');
  assert.deepEqual(removeStaleBoxDirs(parent), [deadPath]);
  assert.ok(!existsSync(deadPath));
  live.child.stdin.write('check\n');
  assert.deepEqual(JSON.parse(await live.next()), { intact: true });
  assert.ok(lockedByOthers(livePath));
  // And a new launcher does it by itself.
  const dead2 = startHolder(parent);
  const dead2Path = await dead2.next();
  dead2.child.kill('SIGKILL');
  await once(dead2.child, 'exit');
  const d = await withTmpdir(parent, () => BoxDir.create(myGid));
  t.after(() => d.remove());
  assert.ok(!existsSync(dead2Path), 'the next launcher removed the stale directory');
  assert.deepEqual(readdirSync(parent).sort(), [livePath, d.path].map((p) => p.slice(parent.length + 1)).sort());
  live.child.stdin.end();
  await once(live.child, 'exit');
  assert.ok(!existsSync(livePath), 'the live launcher removed its own at exit');
});

test('stale directories: nothing is removed unless it is provably an abandoned box directory of this uid', async (t) => {
  const parent = boxParent(t);
  const outside = tempDir(t, 'latchgate-outside-');
  writeFileSync(join(outside, 'keep'), 'x');
  /** A directory that looks abandoned: final mode, unlocked lock file. */
  const abandoned = (name, mode = BOX_DIR_MODE) => {
    const p = join(parent, name);
    mkdirSync(p);
    writeFileSync(join(p, 'lock'), '');
    chmodSync(p, mode);
    return p;
  };
  const kept = [
    abandoned('latchgate-box-mid000', 0o700), // a launcher between mkdtemp and locking
    abandoned('latchgate-box-toolong1'),
    abandoned('other-box-abcdef'),
  ];
  const strange = abandoned('latchgate-box-strnge');
  mkdirSync(join(strange, 'sub')); // never made by latchgate: the directory stays
  kept.push(strange);
  const withLink = abandoned('latchgate-box-wlink0');
  symlinkSync(join(outside, 'keep'), join(withLink, 'gate.sock')); // unlinked, never followed
  const noLock = join(parent, 'latchgate-box-nolock');
  mkdirSync(noLock);
  chmodSync(noLock, BOX_DIR_MODE);
  kept.push(noLock);
  // A symlink with a box directory's name, to a directory that looks abandoned.
  const elsewhere = join(outside, 'latchgate-box-target');
  mkdirSync(elsewhere);
  writeFileSync(join(elsewhere, 'lock'), '');
  chmodSync(elsewhere, BOX_DIR_MODE);
  symlinkSync(elsewhere, join(parent, 'latchgate-box-symlnk'));
  if (isRoot) kept.push(abandoned('latchgate-box-other0')) && chownSync(join(parent, 'latchgate-box-other0'), AGENT.uid, AGENT.gid);
  const removable = abandoned('latchgate-box-remove');
  const warnings = [];
  const write = process.stderr.write;
  process.stderr.write = (s) => warnings.push(String(s)) && true;
  let removed;
  try {
    removed = removeStaleBoxDirs(parent);
  } finally {
    process.stderr.write = write;
  }
  assert.deepEqual(removed.sort(), [removable, withLink].sort());
  for (const p of kept) assert.ok(existsSync(p), `${p} was removed`);
  assert.ok(lstatSync(join(parent, 'latchgate-box-symlnk')).isSymbolicLink());
  assert.ok(existsSync(join(elsewhere, 'lock')), 'followed a symlink');
  assert.equal(readFileSync(join(outside, 'keep'), 'utf8'), 'x');
  assert.deepEqual(warnings.length, 1, warnings.join(''));
  assert.match(warnings[0], /latchgate-box-strnge: it holds the directory sub, which latchgate never puts there/);
});

test('launchers starting at once: each keeps its directory, the stale one goes', async (t) => {
  const parent = boxParent(t);
  for (let round = 0; round < 3; round++) {
    const dead = startHolder(parent);
    const deadPath = await dead.next();
    dead.child.kill('SIGKILL');
    await once(dead.child, 'exit');
    const holders = Array.from({ length: 6 }, () => startHolder(parent));
    t.after(() => holders.forEach((h) => h.child.kill('SIGKILL')));
    const paths = await Promise.all(holders.map((h) => h.next()));
    for (const h of holders) h.child.stdin.write('check\n');
    const checks = await Promise.all(holders.map((h) => h.next()));
    assert.deepEqual(checks.map((c) => JSON.parse(c)), holders.map(() => ({ intact: true })), `round ${round}`);
    assert.ok(!existsSync(deadPath), `round ${round}: the stale directory is still there`);
    for (const h of holders) h.child.stdin.end();
    await Promise.all(holders.map((h) => once(h.child, 'exit')));
    for (const p of paths) assert.ok(!existsSync(p));
  }
});

test('the temporary directory must be one no other user can rename entries in', async (t) => {
  const sticky = boxParent(t);
  assert.equal(await withTmpdir(sticky, () => trustedTmpdir()), sticky);
  const open = tempDir(t, 'latchgate-open-');
  chmodSync(open, 0o777);
  await withTmpdir(open, () => assertLaunchError(() => trustedTmpdir(), LaunchError, open, 'writable by others (mode 0777) without the sticky bit', 'set TMPDIR'));
  await withTmpdir(join(open, 'sub'), () => {
    mkdirSync(join(open, 'sub'));
    assertLaunchError(() => BoxDir.create(myGid), LaunchError, `${open} is writable by others`);
    assert.deepEqual(readdirSync(join(open, 'sub')), [], 'nothing made there');
  });
  if (isRoot) {
    const theirs = tempDir(t, 'latchgate-theirs-');
    chownSync(theirs, AGENT.uid, AGENT.gid);
    await withTmpdir(theirs, () => assertLaunchError(() => trustedTmpdir(), LaunchError, `${theirs} is owned by uid ${AGENT.uid}`));
  }
});
