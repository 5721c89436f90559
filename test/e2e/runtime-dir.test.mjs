// Without XDG_RUNTIME_DIR the gate's sockets go in /tmp/latchgate-<uid>, a
// name any user can take first in /tmp. Attacked for real, as root for a
// user of its own (nobody): the directory made by another user (root makes
// it and gives it to uid 4242), a symlink to a directory of the user's, a
// directory of the user's open to all (0777), a plain file. Each is refused
// (exit 125, one line naming the directory and the fix) by the CLI, `up` and
// the SDK, and nothing is put in it; a missing one is made 0700 and the gate
// serves there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnUp } from '../helpers/up.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const SDK = new URL('../../dist/sdk/index.js', import.meta.url).href;
const skip = process.getuid() !== 0 ? 'needs root to act as another user and to make a directory for a third' : undefined;
const USER = 65534; // nobody: its own /tmp/latchgate-65534, which no other test uses
const OTHER = 4242;
const DIR = `/tmp/latchgate-${USER}`;
let home;
let env;

before(() => {
  if (skip) return;
  home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-rundir-'));
  chownSync(home, USER, USER);
  env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_CONFIG_HOME: path.join(home, 'config') };
  rmSync(DIR, { recursive: true, force: true });
});

after(() => {
  if (skip) return;
  rmSync(DIR, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

/** A latchgate command as the user, with XDG_RUNTIME_DIR unset; bounded, so an `up` that wrongly starts ends the test. */
function asUser(args) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, uid: USER, gid: USER, encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL' });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

/** The SDK's client as the user: the error it refuses with, or "ok". */
function sdkAsUser() {
  const code = `import(${JSON.stringify(SDK)}).then(({ LatchGateClient }) => { try { new LatchGateClient(); console.log('ok'); } catch (e) { console.log(e.constructor.name + ' ' + e.code + ' ' + e.message); } });`;
  const r = spawnSync(process.execPath, ['-e', code], { env, uid: USER, gid: USER, encoding: 'utf8' });
  return r.stdout.trim();
}

function assertRefused(r, what) {
  assert.equal(r.code, 125, `${r.signal ?? ''} ${r.out}${r.err}`);
  const lines = r.err.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.err);
  assert.match(lines[0], new RegExp(`^latchgate: runtime directory ${DIR} \\(used because XDG_RUNTIME_DIR is unset\\) ${what}.*refused; .*XDG_RUNTIME_DIR to a directory only you can enter`));
}

const ATTACKS = [
  {
    name: 'made by another user (uid 4242), mode 0700',
    what: `is owned by uid ${OTHER}, not by you \\(uid ${USER}\\)`,
    plant: () => {
      mkdirSync(DIR, { mode: 0o700 });
      chownSync(DIR, OTHER, OTHER);
    },
  },
  {
    name: 'a symlink to a private directory of the user',
    what: 'is a symlink',
    plant: () => {
      const target = path.join(home, 'elsewhere');
      mkdirSync(target, { mode: 0o700 });
      chownSync(target, USER, USER);
      symlinkSync(target, DIR);
      return target;
    },
  },
  {
    name: 'the user\'s own directory, mode 0777',
    what: 'has mode 0777, open to other users',
    plant: () => {
      mkdirSync(DIR);
      chmodSync(DIR, 0o777);
      chownSync(DIR, USER, USER);
    },
  },
  {
    name: 'a plain file',
    what: 'is not a directory',
    plant: () => writeFileSync(DIR, ''),
  },
];

for (const a of ATTACKS) {
  test(`/tmp/latchgate-<uid> ${a.name}: refused by the CLI, up and the SDK, nothing put in it`, { skip }, (t) => {
    t.after(() => rmSync(DIR, { recursive: true, force: true }));
    const target = a.plant();
    const st = lstatSync(DIR);
    assertRefused(asUser(['status', '--json']), a.what);
    assertRefused(asUser(['up', '--json']), a.what);
    assert.match(sdkAsUser(), new RegExp(`^LatchGateConnectionError runtime_dir_unsafe runtime directory ${DIR} .*${a.what}`));
    const now = lstatSync(DIR);
    assert.deepEqual([now.uid, now.mode, now.ino], [st.uid, st.mode, st.ino], 'left as it was');
    if (now.isDirectory()) assert.deepEqual(readdirSync(DIR), [], 'no socket or lock in it');
    if (target) assert.deepEqual(readdirSync(target), [], 'nothing through the symlink');
  });
}

test('/tmp/latchgate-<uid> missing: made 0700 for the user, and the gate serves there', { skip }, async (t) => {
  t.after(() => rmSync(DIR, { recursive: true, force: true }));
  assert.ok(!existsSync(DIR));
  const status = asUser(['status', '--json']);
  assert.equal(status.code, 0, status.err);
  assert.equal(JSON.parse(status.out).client_socket, `${DIR}/gate.sock`);
  const st = lstatSync(DIR);
  assert.ok(st.isDirectory());
  assert.deepEqual([st.uid, st.mode & 0o777], [USER, 0o700]);
  assert.equal(sdkAsUser(), 'ok', 'the SDK takes it');

  const { proc: up, ready, output } = await spawnUp(CLI, { env, uid: USER, gid: USER });
  t.after(() => up.kill('SIGKILL'));
  assert.equal(ready?.status, 'ready', output());
  assert.equal(ready.client_socket, `${DIR}/gate.sock`);
  assert.ok(lstatSync(ready.client_socket).isSocket());
  up.kill('SIGTERM');
  assert.equal(await new Promise((r) => up.once('exit', r)), 0);
});

/**
 * The SDK's client made as the user while the directory is missing (no gate yet), then asked to
 * connect once `plant` ran: what its first request met ("ok", or the error), as one line.
 */
async function sdkConnectAfter(plant) {
  const code = `import(${JSON.stringify(SDK)}).then(async ({ LatchGateClient }) => {
    const c = new LatchGateClient();
    console.log('made');
    await new Promise((r) => process.stdin.once('data', r));
    try { await c.connect(); console.log('ok'); } catch (e) { console.log(e.constructor.name + ' ' + e.code + ' ' + e.message); }
    c.close?.();
    process.exit(0);
  });`;
  const child = spawn(process.execPath, ['-e', code], { env, uid: USER, gid: USER, stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  while (!out.includes('made\n')) await once(child.stdout, 'data');
  await plant();
  child.stdin.write('go\n');
  await once(child, 'exit');
  return out.split('\n').filter(Boolean).pop();
}

test('/tmp/latchgate-<uid> missing when the SDK\'s client is made, then made by another user (uid 4242) with a socket of theirs: the client refuses to send its first request there', { skip }, async (t) => {
  t.after(() => rmSync(DIR, { recursive: true, force: true }));
  assert.ok(!existsSync(DIR));
  // The other user's "gate": it records every request it gets.
  const seen = [];
  const fake = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(500).end('{}');
  });
  t.after(() => fake.close());
  const line = await sdkConnectAfter(async () => {
    mkdirSync(DIR, { mode: 0o755 });
    fake.listen(path.join(DIR, 'gate.sock'));
    await once(fake, 'listening');
    chmodSync(path.join(DIR, 'gate.sock'), 0o777);
    chownSync(DIR, OTHER, OTHER);
  });
  assert.match(line, new RegExp(`^LatchGateConnectionError runtime_dir_unsafe runtime directory ${DIR} .*is owned by uid ${OTHER}, not by you`));
  assert.deepEqual(seen, [], 'no request reached the other user\'s socket');
  // Still missing when it connects: refused too (the other user could make it in between).
  rmSync(DIR, { recursive: true, force: true });
  fake.close();
  const missing = await sdkConnectAfter(async () => {});
  assert.match(missing, new RegExp(`^LatchGateConnectionError runtime_dir_unsafe runtime directory ${DIR} .*does not exist, so no gate of yours listens there.*latchgate up`));
  assert.ok(!existsSync(DIR));
  // The legitimate path: the user's own private directory by then, and its request goes there.
  const own = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(500).end('{}');
  });
  t.after(() => own.close());
  await sdkConnectAfter(async () => {
    mkdirSync(DIR, { mode: 0o700 });
    own.listen(path.join(DIR, 'gate.sock'));
    await once(own, 'listening');
    chmodSync(path.join(DIR, 'gate.sock'), 0o777);
    chownSync(DIR, USER, USER);
  });
  assert.deepEqual(seen, ['POST /v1/leases']);
});
