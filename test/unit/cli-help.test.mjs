// `latchgate` without a command prints its help on stderr and exits 1, as git
// does (so does a command group without its subcommand); `--help` and `help`
// print it on stdout and exit 0. The help names the files, the runtime
// directory's /tmp fallback and the exit codes. A command loads its own
// modules, not every other command's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

test('every command the help lists starts on its own, and loads none of the modules only other commands need', () => {
  const names = [...run('--help').stdout.split(/^Commands:$/m)[1].split(/\n\n/)[0].matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]).filter((n) => n !== 'help');
  assert.ok(names.length >= 20, names.join(' '));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-loads-'));
  const loads = (...args) => {
    const file = path.join(dir, `${args.join('_').replace(/\W/g, '_')}.txt`);
    const r = spawnSync(process.execPath, ['--import', fileURLToPath(new URL('../fixtures/record-loads.mjs', import.meta.url)), CLI, ...args], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: process.env.HOME, RECORD_LOADS: file },
    });
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return { out: r.stdout, modules: readFileSync(file, 'utf8').split('\n').filter(Boolean).map((u) => u.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/')) };
  };
  try {
    for (const name of names) assert.match(loads(name, '--help').out, new RegExp(`^Usage: latchgate ${name} `), name);
    // What the gate alone needs (its pipeline, the JOSE library of its leases), and what the sandbox alone needs.
    const gateOnly = (m) => m.startsWith('dist/gate/pipeline') || m.startsWith('node_modules/jose/');
    const sandboxOnly = (m) => m.startsWith('dist/sandbox/');
    const all = loads('--help').modules;
    assert.ok(all.some(gateOnly) && all.some(sandboxOnly), 'the full help loads every command');
    const version = loads('--version');
    assert.match(version.out, /^\d+\.\d+\.\d+/);
    assert.deepEqual(version.modules.filter((m) => gateOnly(m) || sandboxOnly(m)), [], '--version loads no command');
    for (const [args, not] of [[['tokens', '--help'], [gateOnly, sandboxOnly]], [['audit', '--help'], [gateOnly, sandboxOnly]], [['sandbox', '--help'], [gateOnly]], [['profiles', '--json'], [gateOnly]]]) {
      const { modules } = loads(...args);
      for (const f of not) assert.deepEqual(modules.filter(f), [], args.join(' '));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
