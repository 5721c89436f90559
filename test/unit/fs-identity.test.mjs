// withFsIds / asOwner (native/fsident.cc, src/sandbox/fs-identity.ts): a
// root launcher's thread acts as another uid for one synchronous function,
// and is root again afterwards, whatever the function did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, lstatSync, mkdirSync, openSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadAddon } from '../../dist/native/addon.js';
import { asOwner, fsOwnerOf } from '../../dist/sandbox/fs-identity.js';
import { isRoot, tempDir } from '../fixtures/unit/helpers.mjs';

const addon = loadAddon();
const AGENT = { uid: 4321, gid: 4322 };
const needsRoot = { skip: !isRoot && 'taking another identity needs root' };

/** This thread's fsuid, fsgid and groups, as the kernel reports them. */
function threadIds() {
  const status = readFileSync('/proc/thread-self/status', 'utf8');
  const field = (name) => status.match(new RegExp(`^${name}:\\s*(.*)$`, 'm'))[1].trim().split(/\s+/).filter(Boolean).map(Number);
  return { fsuid: field('Uid')[3], fsgid: field('Gid')[3], groups: field('Groups') };
}

test('inside: fsuid, fsgid and groups are the owner\'s; afterwards root\'s again', needsRoot, () => {
  const before = threadIds();
  assert.equal(before.fsuid, 0);
  const inside = addon.withFsIds(AGENT.uid, AGENT.gid, () => threadIds());
  assert.deepEqual(inside, { fsuid: AGENT.uid, fsgid: AGENT.gid, groups: [AGENT.gid] });
  assert.deepEqual(threadIds(), before);
  assert.equal(addon.withFsIds(AGENT.uid, AGENT.gid, () => 42), 42, 'fn\'s result is returned');
});

test('files made inside are the owner\'s without a chown; root-only places refuse them', needsRoot, (t) => {
  const ws = tempDir(t);
  chownSync(ws, AGENT.uid, AGENT.gid);
  const rootsOwn = tempDir(t); // root's, 0755
  const rootOnly = join(rootsOwn, 'private');
  mkdirSync(rootOnly, { mode: 0o700 });
  const secret = join(rootsOwn, 'secret');
  writeFileSync(secret, 'root only', { mode: 0o600 });
  const errors = addon.withFsIds(AGENT.uid, AGENT.gid, () => {
    mkdirSync(join(ws, 'd'));
    closeSync(openSync(join(ws, 'd/f'), 'wx', 0o644));
    const codes = [];
    for (const f of [() => mkdirSync(join(rootOnly, 'x')), () => readFileSync(secret), () => chmodSync(secret, 0o666), () => chownSync(secret, AGENT.uid, AGENT.gid)]) {
      try {
        f();
        codes.push('done');
      } catch (e) {
        codes.push(e.code);
      }
    }
    return codes;
  });
  assert.deepEqual(errors, ['EACCES', 'EACCES', 'EPERM', 'EPERM'], 'root\'s fs capabilities are gone inside');
  for (const p of ['d', 'd/f']) {
    const st = lstatSync(join(ws, p));
    assert.deepEqual([st.uid, st.gid], [AGENT.uid, AGENT.gid], p);
  }
  const st = statSync(secret);
  assert.deepEqual([st.uid, st.mode & 0o777], [0, 0o600]);
  // Afterwards root again: the same calls work.
  mkdirSync(join(rootOnly, 'x'));
  assert.equal(readFileSync(secret, 'utf8'), 'root only');
});

test('a symlink swapped in leads only where the owner could go', needsRoot, (t) => {
  const ws = tempDir(t);
  chownSync(ws, AGENT.uid, AGENT.gid);
  const target = tempDir(t); // root's, 0755
  symlinkSync(target, join(ws, '.claude'));
  const code = addon.withFsIds(AGENT.uid, AGENT.gid, () => {
    try {
      mkdirSync(join(ws, '.claude/commands'));
      return 'created';
    } catch (e) {
      return e.code;
    }
  });
  assert.equal(code, 'EACCES');
  assert.throws(() => lstatSync(join(target, 'commands')), { code: 'ENOENT' });
});

test('a throw inside propagates, and the identity is restored first', needsRoot, () => {
  const before = threadIds();
  let seen;
  assert.throws(
    () =>
      addon.withFsIds(AGENT.uid, AGENT.gid, () => {
        seen = threadIds().fsuid;
        throw new RangeError('from inside');
      }),
    { name: 'RangeError', message: 'from inside' },
  );
  assert.equal(seen, AGENT.uid);
  assert.deepEqual(threadIds(), before);
  // And nested calls restore the outer identity, then root's.
  const nested = addon.withFsIds(AGENT.uid, AGENT.gid, () => {
    const inner = addon.withFsIds(5000, 5001, () => threadIds().fsuid);
    return [inner, threadIds().fsuid, threadIds().groups];
  });
  assert.deepEqual(nested, [5000, AGENT.uid, [AGENT.gid]]);
  assert.deepEqual(threadIds(), before);
});

test('only the calling thread changes: a worker thread stays root meanwhile', needsRoot, async () => {
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(
    `const { workerData: s } = require('node:worker_threads');
     const fs = require('node:fs');
     Atomics.wait(s, 0, 0);
     const st = fs.readFileSync('/proc/thread-self/status', 'utf8');
     Atomics.store(s, 1, Number(st.match(/^Uid:\\s*(.*)$/m)[1].trim().split(/\\s+/)[3]) + 1);
     Atomics.notify(s, 1);`,
    { eval: true, workerData: shared },
  );
  const online = new Promise((r) => worker.once('online', r));
  await online;
  const workerFsuid = addon.withFsIds(AGENT.uid, AGENT.gid, () => {
    Atomics.store(shared, 0, 1);
    Atomics.notify(shared, 0);
    Atomics.wait(shared, 1, 0); // the worker reads its own identity while this thread is the owner
    return Atomics.load(shared, 1) - 1;
  });
  await new Promise((r) => worker.once('exit', r));
  assert.equal(workerFsuid, 0);
});

test('bad arguments are a TypeError and fn never runs', () => {
  let ran = false;
  const fn = () => (ran = true);
  for (const args of [[undefined, 1, fn], [1, '2', fn], [-1, 1, fn], [1, 4294967295, fn], [1.5, 1, fn], [NaN, 1, fn], [1, 1, 'fn'], [1, 1]]) {
    assert.throws(() => addon.withFsIds(...args), TypeError, JSON.stringify(args.map(String)));
  }
  assert.equal(ran, false);
});

test('a launcher that cannot take the identity: an error naming the step and errno, fn not run', (t) => {
  // As an unprivileged uid, setgroups is refused.
  const script = `
    const { loadAddon } = await import(${JSON.stringify(new URL('../../dist/native/addon.js', import.meta.url).href)});
    let ran = false;
    try { loadAddon().withFsIds(${AGENT.uid + 1}, ${AGENT.gid + 1}, () => (ran = true)); console.log('no error'); }
    catch (e) { console.log(JSON.stringify({ step: e.step, errno: e.errno, message: e.message, ran })); }`;
  const opts = isRoot ? { uid: AGENT.uid, gid: AGENT.gid } : {};
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { ...opts, encoding: 'utf8', cwd: '/' });
  const r = JSON.parse(out);
  assert.deepEqual({ step: r.step, errno: r.errno, ran: r.ran }, { step: 'setgroups', errno: 1, ran: false });
  assert.match(r.message, /setgroups.*errno 1/);
  t.diagnostic(r.message);
});

test('asOwner: runs fn as the owner for a root launcher, directly without an owner', needsRoot, () => {
  assert.equal(asOwner(undefined, () => threadIds().fsuid), 0);
  assert.equal(asOwner(AGENT, () => threadIds().fsuid), AGENT.uid);
  assert.deepEqual(fsOwnerOf({ hostUid: 0, uid: 7, gid: 8 }), { uid: 7, gid: 8 });
  assert.equal(fsOwnerOf({ hostUid: 1000, uid: 1000, gid: 1000 }), undefined);
});
