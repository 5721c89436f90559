// `latchgate` without a command prints its help on stderr and exits 1, as git
// does (so does a command group without its subcommand); `--help` and `help`
// print it on stdout and exit 0. The help names the files, the runtime
// directory's /tmp fallback and the exit codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const run = (...args) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: process.env.HOME } });

test('no command: the help on stderr, exit 1, nothing on stdout', () => {
  const r = run();
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^Usage: latchgate \[options\] \[command\]/);
  assert.equal(r.stderr, run('--help').stdout, 'the same help --help prints');
});

test('a command group without its subcommand: its help on stderr, exit 1', () => {
  const r = run('approvals');
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^Usage: latchgate approvals \[options\] \[command\]/);
});

test('--help and help: on stdout, exit 0; an unknown command stays a usage error (125)', () => {
  for (const args of [['--help'], ['help'], ['approvals', '--help'], ['help', 'approvals']]) {
    const r = run(...args);
    assert.equal(r.status, 0, args.join(' '));
    assert.equal(r.stderr, '', args.join(' '));
    assert.match(r.stdout, /^Usage: latchgate/, args.join(' '));
  }
  const bad = run('nope');
  assert.equal(bad.status, 125);
  assert.match(bad.stderr, /^latchgate: unknown command 'nope'; see `latchgate --help`\n$/);
});

test('the help documents the files, the /tmp runtime directory and the exit codes', () => {
  const help = run('--help').stdout;
  assert.match(help, /\$XDG_RUNTIME_DIR\/latchgate +the gate's sockets; without XDG_RUNTIME_DIR,\n +\/tmp\/latchgate-<uid>, made mode 0700 and refused/);
  assert.match(help, /^Exit status:\n {2}0 +done\n {2}1 +no command given/m);
  assert.match(help, /^ {2}125 +a usage error, or latchgate itself failed$/m);
});

test('a reader that goes away (`latchgate profiles | head`): exit 141 as after SIGPIPE, no stack trace', async () => {
  for (const args of [['profiles'], ['--help']]) {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: process.env.HOME } });
    child.stdout.destroy(); // the read end closed before the command writes
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 141, `${args.join(' ')}: ${err}`);
    assert.equal(err, '', args.join(' '));
  }
});
