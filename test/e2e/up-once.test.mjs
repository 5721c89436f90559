// One `latchgate up` per runtime directory and per state directory: a second
// one exits 4 with one line naming the first's pid and socket, and leaves the
// first serving (its sockets are not unlinked). A gate killed with SIGKILL
// leaves its lock file and sockets behind; they do not block the next `up`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnUp } from '../helpers/up.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-up-once-'));
const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'config') };
const gates = [];

after(async () => {
  for (const g of gates) {
    if (g.exitCode === null && g.signalCode === null) {
      g.kill('SIGKILL');
      await new Promise((r) => g.once('exit', r));
    }
  }
  rmSync(home, { recursive: true, force: true });
});

/** `latchgate up --json` in the background: its ready line, or how it ended. */
async function startUp(extraEnv = {}) {
  const { proc, ready, output } = await spawnUp(CLI, { env: { ...env, ...extraEnv } });
  gates.push(proc);
  assert.equal(ready?.status, 'ready', `up did not start: ${output()}`);
  return { proc, info: ready };
}

/** A second `up` run to its end (it must not start: a bound keeps a broken one from hanging the suite). */
function secondUp(extraEnv = {}) {
  const r = spawnSync(process.execPath, [CLI, 'up', '--json'], { env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL' });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

function healthy(socketPath) {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/healthz' }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

test('a second up on the same sockets or the same state exits 4, naming the running one; the first keeps serving; after kill -9 a new up starts', async () => {
  const first = await startUp();
  assert.ok(await healthy(first.info.client_socket));

  const again = secondUp();
  assert.equal(again.code, 4, `expected exit 4: ${again.signal ?? ''} ${again.out}${again.err}`);
  assert.equal(again.out, '', 'no ready line');
  const lines = again.err.trimEnd().split('\n');
  assert.equal(lines.length, 1, again.err);
  assert.ok(lines[0].includes(`pid ${first.proc.pid}`), lines[0]);
  assert.ok(lines[0].includes(first.info.client_socket), lines[0]);
  assert.match(lines[0], /^latchgate: a gate is already running .*kill \d+/);
  assert.ok(await healthy(first.info.client_socket), 'its client socket still answers');
  assert.ok(await healthy(first.info.admin_socket), 'its admin socket still answers');

  // Other sockets, the same ledger: refused too, naming where the running one serves.
  const otherRun = path.join(home, 'run-2');
  const sameState = secondUp({ XDG_RUNTIME_DIR: otherRun });
  assert.equal(sameState.code, 4, sameState.err);
  assert.ok(sameState.err.includes(`pid ${first.proc.pid}`) && sameState.err.includes(first.info.client_socket), sameState.err);
  assert.ok(!existsSync(path.join(otherRun, 'latchgate', 'gate.sock')), 'it bound nothing');

  // Killed without a chance to clean up: the lock file and both sockets stay.
  first.proc.kill('SIGKILL');
  await new Promise((r) => first.proc.once('exit', r));
  assert.ok(existsSync(first.info.client_socket) && existsSync(path.join(path.dirname(first.info.client_socket), 'up.lock')), 'leftovers of the killed gate');
  assert.equal(await healthy(first.info.client_socket), false);

  const next = await startUp();
  assert.equal(next.info.client_socket, first.info.client_socket);
  assert.ok(await healthy(next.info.client_socket), 'the new gate serves on the same socket');
  next.proc.kill('SIGTERM');
  assert.equal(await new Promise((r) => next.proc.once('exit', r)), 0);
});

test('up --help documents exit 4', () => {
  const r = spawnSync(process.execPath, [CLI, 'up', '--help'], { env, encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^ {2}4 {4}a gate is already running on the same runtime or state directory$/m);
});
