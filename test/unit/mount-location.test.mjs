// Where a path lies on disk (mount-location.ts), so a writable mount that
// shows latchgate's own paths through another mount of the same directory
// (a bind mount) is found like one that holds them by path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diskLocation, insideOnDisk, mountTable } from '../../dist/core/mount-location.js';
import { refuseWritableOwnPaths } from '../../dist/sandbox/own-paths.js';
import { LaunchError } from '../../dist/core/errors.js';

// /home on 8:1; /srv/alias shows /u/.local of it (a bind mount); /mnt/with space is 8:2.
const TEXT = [
  '22 1 0:20 / / rw - overlay overlay rw',
  '30 22 8:1 / /home rw - ext4 /dev/sda1 rw',
  '31 22 8:1 /u/.local /srv/alias rw - ext4 /dev/sda1 rw',
  '32 22 8:2 /data /mnt/with\\040space rw - ext4 /dev/sdb1 rw',
  '33 22 8:1 /u/tools /work/proj/vendor rw - ext4 /dev/sda1 rw',
  '',
].join('\n');
const table = mountTable(TEXT);

test('a path lies on the filesystem of the deepest mount above it, at that mount\'s root joined with the rest', () => {
  assert.deepEqual(diskLocation('/srv/alias/state/latchgate', table), { dev: '8:1', path: '/u/.local/state/latchgate' });
  assert.deepEqual(diskLocation('/home/u/.local/state/latchgate', table), { dev: '8:1', path: '/u/.local/state/latchgate' });
  assert.deepEqual(diskLocation('/mnt/with space/x', table), { dev: '8:2', path: '/data/x' });
  assert.deepEqual(diskLocation('/srv', table), { dev: '0:20', path: '/srv' });
});

test('inside on disk: through a bind mount in both directions, by path as before, not across filesystems', () => {
  assert.ok(insideOnDisk('/srv/alias', '/home/u/.local/state/latchgate', table));
  assert.ok(insideOnDisk('/home/u/.local/state', '/srv/alias/state/x', table));
  assert.ok(insideOnDisk('/srv', '/srv/alias', table)); // by path
  assert.ok(!insideOnDisk('/srv/alias', '/home/u/project', table));
  assert.ok(!insideOnDisk('/mnt/with space', '/home/u/.local/state', table));
  // A mount below the outer tree counts: the box binds the tree with it.
  assert.ok(insideOnDisk('/work/proj', '/home/u/tools/latchgate/dist', table));
  assert.ok(!insideOnDisk('/work/proj', '/home/u/other', table));
});

test('a writable mount that shows the state directory through a bind mount is refused; one beside it is not', () => {
  const own = [{ path: '/home/u/.local/state/latchgate', type: 'dir', what: 'state directory (trust store, ledger, keys)' }];
  assert.throws(() => refuseWritableOwnPaths(['/srv/alias'], own, table), (e) => e instanceof LaunchError && /\/srv\/alias: refused as a writable mount: it holds latchgate's state directory .* through another mount of the same directory/.test(e.message));
  assert.throws(() => refuseWritableOwnPaths(['/srv/alias/state/latchgate/keys'], own, table), (e) => e instanceof LaunchError && /it is through another mount of the same directory, latchgate's state directory/.test(e.message));
  assert.doesNotThrow(() => refuseWritableOwnPaths(['/home/u/project', '/mnt/with space'], own, table));
  // By path, as before: inside is refused; holding it is for the protection to keep read-only.
  assert.throws(() => refuseWritableOwnPaths(['/home/u/.local/state/latchgate/ledger'], own, table), /it is inside latchgate's state directory/);
  assert.doesNotThrow(() => refuseWritableOwnPaths(['/home/u'], own, table));
});
