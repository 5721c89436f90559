// key_source of a credential route, for real: env: variables, file: key
// files (their mode, type and first line), cmd: programs run without a shell
// (exit status, time limit, empty output, stderr never shown) and sops:
// names; every bad spec is refused naming the field. No message ever holds
// the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parseKeySource } from '../../dist/config/key-source.js';
import { resolveKeySource } from '../../dist/secrets/key-source.js';
import { LaunchError } from '../../dist/core/errors.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const KEY = 'sk-test-' + 'k'.repeat(24);
const FIELD = '[sandbox.agent.credentials.x] key "key_source"';
const env = { A_KEY: KEY, EMPTY: '', PATH: process.env.PATH };

async function refused(promise, ...patterns) {
  const e = await promise.then(
    () => assert.fail('expected a LaunchError'),
    (x) => x,
  );
  assert.ok(e instanceof LaunchError, `expected a LaunchError, got ${e?.stack ?? e}`);
  for (const p of patterns) assert.ok(typeof p === 'string' ? e.message.includes(p) : p.test(e.message), `${e.message}\nlacks ${p}`);
  assert.ok(!e.message.includes(KEY), `the message holds the key: ${e.message}`);
  return e;
}

test('parse: the four forms, and every bad spec names the field and the forms expected', () => {
  assert.deepEqual(parseKeySource('env:A_KEY'), { kind: 'env', variable: 'A_KEY' });
  assert.deepEqual(parseKeySource('sops:ANTHROPIC_API_KEY'), { kind: 'sops', name: 'ANTHROPIC_API_KEY' });
  assert.deepEqual(parseKeySource('file:/run/keys/a'), { kind: 'file', path: '/run/keys/a' });
  assert.deepEqual(parseKeySource('file:~/.keys/a'), { kind: 'file', path: '~/.keys/a' });
  assert.deepEqual(parseKeySource('cmd:["pass","show","anthropic"]'), { kind: 'cmd', argv: ['pass', 'show', 'anthropic'] });
  for (const bad of ['A_KEY', 'env:', 'env:1A', 'env:A-B', ' env:A', '', 'sops:', 'sops:a-b', 'file:relative/k', 'file:', 'cmd:', 'cmd:pass show', 'cmd:[]', 'cmd:[""]', 'cmd:["a",1]', 'cmd:{"a":1}', 'vault:x', 42]) {
    assert.throws(() => parseKeySource(bad, FIELD), (e) => e instanceof LaunchError && e.message.startsWith(`${FIELD} ${JSON.stringify(bad)}: `) && e.message.includes('"sops:NAME"'), String(bad));
  }
});

test('env: the variable, undefined when unset or empty', async () => {
  assert.equal(await resolveKeySource('env:A_KEY', { env }), KEY);
  assert.equal(await resolveKeySource('env:UNSET', { env }), undefined);
  assert.equal(await resolveKeySource('env:EMPTY', { env }), undefined);
});

test('file: the first line of a regular file of mode 600; readable by others, not a file, missing or empty: refused naming chmod 600', async (t) => {
  const dir = tempDir(t);
  const f = join(dir, 'key');
  writeFileSync(f, `${KEY}\nsecond line\n`, { mode: 0o600 });
  assert.equal(await resolveKeySource(`file:${f}`, { env }), KEY);
  mkdirSync(join(dir, 'home', '.keys'), { recursive: true });
  writeFileSync(join(dir, 'home', '.keys', 'k'), `${KEY}\r\n`, { mode: 0o400 });
  assert.equal(await resolveKeySource('file:~/.keys/k', { env, home: join(dir, 'home') }), KEY);
  for (const mode of [0o640, 0o604, 0o660, 0o644, 0o620]) {
    chmodSync(f, mode);
    await refused(resolveKeySource(`file:${f}`, { env }, FIELD), FIELD, `chmod 600 ${f}`, mode.toString(8));
  }
  chmodSync(f, 0o600);
  await refused(resolveKeySource(`file:${dir}`, { env }, FIELD), 'not a regular file');
  await refused(resolveKeySource(`file:/dev/null`, { env }, FIELD), 'not a regular file');
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  chmodSync(join(dir, 'fifo'), 0o600);
  await refused(resolveKeySource(`file:${join(dir, 'fifo')}`, { env }, FIELD), 'not a regular file');
  await refused(resolveKeySource(`file:${join(dir, 'none')}`, { env }, FIELD), 'ENOENT', 'chmod 600');
  writeFileSync(join(dir, 'empty'), '\nkey on line two\n', { mode: 0o600 });
  await refused(resolveKeySource(`file:${join(dir, 'empty')}`, { env }, FIELD), 'first line is empty');
  // A symlink is followed to the file it names, whose own mode counts.
  symlinkSync(f, join(dir, 'link'));
  assert.equal(await resolveKeySource(`file:${join(dir, 'link')}`, { env }), KEY);
  chmodSync(f, 0o644);
  await refused(resolveKeySource(`file:${join(dir, 'link')}`, { env }, FIELD), 'chmod 600');
});

test('cmd: the first line a program prints, run without a shell; failure, timeout, empty output each a clear error, stderr never shown', async (t) => {
  const node = process.execPath;
  const js = (code) => `cmd:${JSON.stringify([node, '-e', code])}`;
  assert.equal(await resolveKeySource(js(`process.stdout.write(process.env.A_KEY + "\\nmore\\n")`), { env }), KEY);
  // No shell: metacharacters are plain arguments.
  assert.equal(await resolveKeySource('cmd:["echo","a;b","$(id)","`id`"]', { env }), 'a;b $(id) `id`');
  await refused(resolveKeySource(js(`console.error(process.env.A_KEY); process.exit(3)`), { env }, FIELD), FIELD, 'exited with status 3', /wrote \d+ bytes to stderr, not shown/);
  const slow = await refused(resolveKeySource(js('setTimeout(() => {}, 60000)'), { env, timeoutMs: 300 }, FIELD), 'did not finish within 0.3 s and was killed');
  assert.ok(slow);
  await refused(resolveKeySource(js('process.stdout.write("\\n" + "late")'), { env }, FIELD), 'printed nothing on its first line');
  await refused(resolveKeySource(js(''), { env }, FIELD), 'printed nothing');
  await refused(resolveKeySource(js('process.kill(process.pid, "SIGTERM")'), { env }, FIELD), 'killed by SIGTERM');
  await refused(resolveKeySource('cmd:["latchgate-no-such-program-x"]', { env }, FIELD), 'was not found');
  const dir = tempDir(t);
  await refused(resolveKeySource(js(`process.stdout.write("x".repeat(70000))`), { env }, FIELD), 'more than 65536 bytes');
  assert.ok(dir);
});

test('cmd: the program gets the launcher environment without its secrets, and with what password managers need', async () => {
  const node = process.execPath;
  const host = {
    PATH: process.env.PATH,
    HOME: '/home/u',
    GNUPGHOME: '/home/u/.gnupg',
    GPG_TTY: '/dev/pts/1',
    XDG_RUNTIME_DIR: '/run/user/1',
    DISPLAY: ':0',
    SOPS_AGE_KEY_FILE: '/home/u/age.txt',
    LATCHGATE_SECRET_API_KEY: 'gate-secret',
    SOPS_AGE_KEY: 'AGE-SECRET-KEY-1XYZ',
    A_KEY: KEY,
  };
  const print = `cmd:${JSON.stringify([node, '-e', 'process.stdout.write(Object.keys(process.env).sort().join(",") + "\\n")'])}`;
  // A_KEY is the variable another route's env: source reads.
  const seen = (await resolveKeySource(print, { env: host, secretVariables: ['A_KEY'] })).split(',');
  for (const kept of ['PATH', 'HOME', 'GNUPGHOME', 'GPG_TTY', 'XDG_RUNTIME_DIR', 'DISPLAY', 'SOPS_AGE_KEY_FILE']) assert.ok(seen.includes(kept), `${kept} missing: ${seen}`);
  for (const secret of ['LATCHGATE_SECRET_API_KEY', 'SOPS_AGE_KEY', 'A_KEY']) assert.ok(!seen.includes(secret), `${secret} reached the program: ${seen}`);
});

test('sops: the store\'s value; none configured is an error naming the fix', async () => {
  const store = { get: async (n) => (n === 'ANTHROPIC_API_KEY' ? KEY : undefined) };
  assert.equal(await resolveKeySource('sops:ANTHROPIC_API_KEY', { env, sops: () => store }), KEY);
  assert.equal(await resolveKeySource('sops:OTHER', { env, sops: () => store }), undefined);
  await refused(resolveKeySource('sops:ANTHROPIC_API_KEY', { env }, FIELD), 'no SOPS secrets file', 'latchgate secrets set ANTHROPIC_API_KEY');
});

/** Whether p settles within ms of real time (setImmediate turns: the test's mocked setTimeout cannot wait). */
async function settlesWithin(p, ms) {
  let settled = false;
  p.then(() => (settled = true), () => (settled = true));
  const end = Date.now() + ms;
  while (!settled && Date.now() < end) await new Promise((r) => setImmediate(r));
  return settled;
}

test('cmd: without a time limit given, a program is killed after 5 s, not before', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  // It ends itself after 20 s (its own clock, not mocked), so a failing run leaves no process behind.
  const running = resolveKeySource(`cmd:${JSON.stringify([process.execPath, '-e', 'setTimeout(() => {}, 20000)'])}`, { env }, FIELD);
  t.mock.timers.tick(4999);
  assert.equal(await settlesWithin(running, 500), false, 'the program was stopped before 5 s');
  t.mock.timers.tick(1);
  assert.equal(await settlesWithin(running, 15000), true, 'the program still runs after 5 s');
  await refused(running, FIELD, 'did not finish within 5 s and was killed');
});
