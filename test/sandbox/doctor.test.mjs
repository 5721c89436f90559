// C: `latchgate doctor` on this host (which gives full isolation), and the
// AppArmor profile it prints for Ubuntu's user-namespace restriction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, distDir, testUser } from '../helpers/sandbox.mjs';

function doctor(mode, args, cwd) {
  const u = testUser();
  const opts = { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' }, ...(cwd ? { cwd } : {}) };
  if (mode === 'user' && process.getuid() === 0) Object.assign(opts, { uid: u.uid, gid: u.gid });
  return spawnSync(process.execPath, [path.join(distDir(mode), 'cli', 'main.js'), 'doctor', ...args], opts);
}

for (const mode of MODES) {
  test(`[${mode}] doctor --json reports full isolation, exit 0, with a live probe`, { skip: skipReason(mode) }, () => {
    const r = doctor(mode, ['--json']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.isolation, 'full');
    assert.ok(report.landlockAbi >= 1);
    const names = report.checks.map((c) => c.name);
    for (const n of ['user namespaces', 'Landlock', 'seccomp', 'PTYs', 'cgroups', 'live probe']) assert.ok(names.includes(n), `${n} checked`);
    const probe = report.checks.find((c) => c.name === 'live probe');
    assert.equal(probe.status, 'ok', probe.detail);
  });
}

test('doctor prints the text report and an AppArmor profile granting userns to this node', () => {
  const r = doctor('root', []);
  assert.match(r.stdout, /^isolation: full$/m);
  const p = doctor('root', ['--print-apparmor-profile']);
  assert.equal(p.status, 0);
  assert.match(p.stdout, /^\s+userns,$/m);
  assert.ok(p.stdout.includes(`profile latchgate-node "${process.execPath}" `));
});

test('[root] doctor says whether a root-owned workspace here can be idmapped: ok on this disk, a warning with the fix on ramfs', { skip: skipReason('root') }, (t) => {
  const check = (cwd) => JSON.parse(doctor('root', ['--json'], cwd).stdout).checks.find((c) => c.name === 'idmapped workspace (root launches)');
  const disk = mkdtempSync(path.join(os.tmpdir(), 'latchgate-doctor-'));
  t.after(() => rmSync(disk, { recursive: true, force: true }));
  const ok = check(disk);
  assert.equal(ok?.status, 'ok', JSON.stringify(ok));
  const ram = mkdtempSync(path.join(os.tmpdir(), 'latchgate-doctor-ramfs-'));
  execFileSync('mount', ['-t', 'ramfs', 'latchgate-test', ram]);
  t.after(() => {
    execFileSync('umount', [ram]);
    rmSync(ram, { recursive: true, force: true });
  });
  const warn = check(ram);
  assert.equal(warn?.status, 'warn', JSON.stringify(warn));
  assert.match(warn.detail, /cannot idmap .*EINVAL.*refused/);
  assert.match(warn.fix, /SUDO_UID/);
});
