// `latchgate verify` on a state directory an older latchgate wrote, as an
// auditor receives it: a copy, then a read-only mount of that copy.
// Verification only reads: every file stays as it was (path, mode, size,
// mtime, content), nothing is created, and on the read-only mount the ledger
// is still reported intact. The first signature afterwards (here a rotation)
// still migrates the old key files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyStateV1, isRoot, STATE_V1, tempDir, treeSnapshot } from '../fixtures/unit/helpers.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const expected = JSON.parse(readFileSync(join(STATE_V1, 'expected.json'), 'utf8'));

/** A home whose XDG state directory is a copy of the old state; no configuration (first-run defaults). */
function setup(t) {
  const home = tempDir(t, 'latchgate-verify-ro-');
  mkdirSync(join(home, 'state'));
  const state = copyStateV1(join(home, 'state', 'latchgate'));
  const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'config'), XDG_RUNTIME_DIR: join(home, 'run') };
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { env, cwd: home, encoding: 'utf8' });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  return { home, state, lg: (...args) => run(process.execPath, [CLI, ...args]), run };
}

function assertIntact(r) {
  assert.equal(r.code, 0, r.err || r.out);
  const report = JSON.parse(r.out);
  assert.equal(report.intact, true, r.out);
  assert.equal(report.first_bad, null);
  assert.ok(report.total_events > 0);
  assert.deepEqual(report.receipts, { total: expected.receipts.length, bad: [] });
  return report;
}

// Only root may mount; unshare -m keeps the mount in a namespace of its own.
const canMount = isRoot && spawnSync('unshare', ['-m', 'true']).status === 0;

test('latchgate verify on a copy of an old state directory: intact, and not one file created, moved or changed', (t) => {
  const s = setup(t);
  const before = treeSnapshot(s.home);
  assertIntact(s.lg('verify', '--json'));
  assert.match(s.lg('verify').out, /intact/i);
  assert.deepEqual(treeSnapshot(s.home), before);
});

test('latchgate verify on a read-only mount of it: still intact', { skip: canMount ? undefined : 'needs root and unshare -m to mount read-only' }, (t) => {
  const s = setup(t);
  const before = treeSnapshot(s.home);
  const script = [
    'set -e',
    'mount --bind "$1" "$1"',
    'mount -o remount,bind,ro "$1"',
    // The mount must really refuse writes, root's included, or this test proves nothing.
    'if touch "$1/keys/probe" 2>/dev/null; then echo "$1 is still writable" >&2; exit 99; fi',
    'exec "$2" "$3" verify --json',
  ].join('\n');
  const r = s.run('unshare', ['-m', 'sh', '-c', script, 'sh', s.state, process.execPath, CLI]);
  assert.notEqual(r.code, 99, r.err);
  assertIntact(r);
  assert.deepEqual(treeSnapshot(s.home), before);
});

test('after verifying, the first signature still carries the old key files over; verify stays intact', (t) => {
  const s = setup(t);
  assertIntact(s.lg('verify', '--json'));
  const keysDir = join(s.state, 'keys');
  assert.ok(existsSync(join(keysDir, 'lease-signing-key.pem')), 'verification moved nothing');
  const r = s.lg('keys', 'rotate', '--kind', 'lease', '--json');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(readdirSync(keysDir).filter((n) => n.startsWith('lease')).sort(), ['lease-keys.jwks', 'lease.key']);
  const history = JSON.parse(readFileSync(join(keysDir, 'lease-keys.jwks'), 'utf8')).keys;
  assert.deepEqual(history.map((e) => e.legacy_kid), [...expected.kids.lease, undefined]);
  assert.equal(history[2].kid, JSON.parse(r.out).kid);
  assertIntact(s.lg('verify', '--json'));
});

test('latchgate verify fails loudly, with the fix, on a key history others can write and on a missing ledger', (t) => {
  const s = setup(t);
  const history = join(s.state, 'keys', 'receipt-keys.jwks');
  chmodSync(history, 0o666);
  const unsafe = s.lg('verify');
  assert.equal(unsafe.code, 1);
  assert.match(unsafe.err, /^latchgate: key history .*receipt-keys\.jwks is writable by group or others/);
  assert.ok(unsafe.err.includes(`Fix: chmod 644 ${history}`), unsafe.err);
  chmodSync(history, 0o644);
  rmSync(join(s.state, 'ledger.sqlite3'));
  const missing = s.lg('verify');
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^latchgate: no ledger at .*ledger\.sqlite3\. Fix: /);
  assert.equal(existsSync(join(s.state, 'ledger.sqlite3')), false, 'none is made');
});
