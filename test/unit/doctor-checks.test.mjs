// Doctor checks that depend only on sysctl values, through a fake reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appArmorProfile, userNamespaceChecks } from '../../dist/doctor/checks.js';

const sysctl = (values) => {
  const asked = [];
  const read = (path) => {
    asked.push(path);
    return values[path.replace(/^\/proc\/sys\//, '').replace(/\//g, '.')];
  };
  return { read, asked };
};

const byName = (checks) => Object.fromEntries(checks.map((c) => [c.name, c]));

test('a host that allows user namespaces: one ok check, nothing failing', () => {
  for (const uid of [0, 1000]) {
    const { read, asked } = sysctl({ 'user.max_user_namespaces': '63429', 'kernel.unprivileged_userns_clone': '1', 'kernel.apparmor_restrict_unprivileged_userns': '0' });
    const checks = userNamespaceChecks(uid, read);
    assert.deepEqual(checks.map((c) => [c.name, c.status]), [['user namespaces', 'ok']]);
    assert.match(checks[0].detail, /63429/);
    assert.ok(asked.includes('/proc/sys/user/max_user_namespaces'));
    assert.ok(asked.includes('/proc/sys/kernel/apparmor_restrict_unprivileged_userns'));
  }
});

test('missing sysctls (older or non-Ubuntu kernels) are not failures', () => {
  const checks = userNamespaceChecks(1000, () => undefined);
  assert.deepEqual(checks.map((c) => c.status), ['ok']);
  assert.match(checks[0].detail, /unknown/);
});

test('max_user_namespaces=0 fails with a fix, for root too', () => {
  for (const uid of [0, 1000]) {
    const c = byName(userNamespaceChecks(uid, sysctl({ 'user.max_user_namespaces': '0' }).read))['user namespaces'];
    assert.equal(c.status, 'fail');
    assert.match(c.detail, /max_user_namespaces is 0/);
    assert.match(c.fix, /sysctl -w user\.max_user_namespaces=\d+/);
    assert.match(c.fix, /sysctl\.d/);
  }
});

test('Debian unprivileged_userns_clone=0 fails for a normal user only', () => {
  const values = { 'user.max_user_namespaces': '100', 'kernel.unprivileged_userns_clone': '0' };
  const user = byName(userNamespaceChecks(1000, sysctl(values).read))['unprivileged user namespaces'];
  assert.equal(user.status, 'fail');
  assert.match(user.fix, /kernel\.unprivileged_userns_clone=1/);
  assert.equal(byName(userNamespaceChecks(0, sysctl(values).read))['unprivileged user namespaces'], undefined);
});

test('apparmor_restrict_unprivileged_userns=1 fails for uid 1000 with the profile as the fix; not reported for root', () => {
  const values = { 'user.max_user_namespaces': '100', 'kernel.apparmor_restrict_unprivileged_userns': '1' };
  const checks = userNamespaceChecks(1000, sysctl(values).read);
  const c = checks.find((x) => /AppArmor/.test(x.name));
  assert.ok(c, JSON.stringify(checks));
  assert.equal(c.status, 'fail');
  assert.match(c.detail, /apparmor_restrict_unprivileged_userns=1/);
  assert.match(c.fix, /--print-apparmor-profile/);
  const root = userNamespaceChecks(0, sysctl(values).read);
  assert.ok(!root.some((x) => /AppArmor/.test(x.name)), JSON.stringify(root));
  assert.ok(root.every((x) => x.status !== 'fail'));
  // Trailing whitespace as read from /proc is the caller's to trim; '1' exactly is the signal.
  assert.ok(!userNamespaceChecks(1000, sysctl({ 'kernel.apparmor_restrict_unprivileged_userns': '0' }).read).some((x) => x.status === 'fail'));
});

test('every failing check carries a fix', () => {
  const values = { 'user.max_user_namespaces': '0', 'kernel.unprivileged_userns_clone': '0', 'kernel.apparmor_restrict_unprivileged_userns': '1' };
  const checks = userNamespaceChecks(1000, sysctl(values).read);
  assert.equal(checks.filter((c) => c.status === 'fail').length, 3);
  for (const c of checks) if (c.status === 'fail') assert.ok(c.fix && c.fix.length > 10, c.name);
});

test('appArmorProfile grants userns to the given Node binary', () => {
  const p = appArmorProfile('/opt/node-v20/bin/node');
  assert.match(p, /^\s*userns,\s*$/m);
  assert.match(p, /^profile latchgate-node "\/opt\/node-v20\/bin\/node" flags=\(unconfined\) \{$/m);
  assert.match(p, /^abi <abi\/4\.0>,$/m);
  assert.match(p, /apparmor_parser -r \/etc\/apparmor\.d\/latchgate-node/);
  assert.ok(p.trimEnd().endsWith('}'));
  // Braces balance and the rule is inside the profile block.
  assert.equal((p.match(/\{/g) ?? []).length, (p.match(/\}/g) ?? []).length);
  assert.ok(p.indexOf('userns,') > p.indexOf('profile latchgate-node'));
  // The default is this very Node.
  assert.ok(appArmorProfile().includes(`\nprofile latchgate-node "${process.execPath}" flags=(unconfined) {\n`));
});

test('appArmorProfile quotes a Node path with spaces (AppArmor would not parse it bare)', () => {
  const p = appArmorProfile('/home/al ice/.nvm/versions/node/v20/bin/node');
  const line = p.split('\n').find((l) => l.startsWith('profile latchgate-node '));
  assert.equal(line, 'profile latchgate-node "/home/al ice/.nvm/versions/node/v20/bin/node" flags=(unconfined) {');
});
