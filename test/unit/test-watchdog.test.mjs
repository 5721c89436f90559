// The suite's runner (scripts/run-tests.mjs) kills a test file that runs over
// its limit, after naming it and what it waited on, so a stuck test fails the
// run with a name instead of holding it until CI's own timeout; the files
// after it still run and report, and the run says what CPU each file used.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STUCK = 'test/fixtures/unit/watchdog-stuck.test.mjs';
const LATER = 'test/fixtures/unit/watchdog-z-later.test.mjs';

// Without NODE_TEST_CONTEXT: this test's runner set it, and a nested `node --test` would take itself for one of its files.
const envWith = (env) => ({ ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), LATCHGATE_TEST_FILE_LIMIT_SECONDS: '3', ...env });

function runTests(env, files = [STUCK, LATER]) {
  return spawnSync(process.execPath, ['scripts/run-tests.mjs', ...files], {
    cwd: ROOT,
    encoding: 'utf8',
    env: envWith(env),
    timeout: 120_000, // the watchdog's own failure must not hold this suite
  });
}

const alive = (marker) => spawnSync('pgrep', ['-f', marker]).status === 0;

test('a file waiting on the event loop past its limit: named with its open timer, killed, failed; its passed test and the next file still reported', () => {
  const r = runTests({ WATCHDOG_STUCK: 'timer' });
  assert.equal(r.error, undefined, 'the run ended by itself');
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`run-tests: ${STUCK} has run \\d+ s, over the limit of 3 s \\(LATCHGATE_TEST_FILE_LIMIT_SECONDS\\); it is killed, and fails`));
  assert.match(r.stderr, /JavaScript: idle \(waiting on the event loop\)/);
  assert.match(r.stderr, /active handles: .*timer/);
  assert.match(r.stderr, new RegExp(`run-tests: killed: ${STUCK} \\(why, and what each waited on, is above\\)`));
  assert.match(r.stdout, /^ok \d+ - passes before the stuck one$/m);
  assert.match(r.stdout, /^not ok \d+ - .*watchdog-stuck\.test\.mjs/m);
  assert.match(r.stdout, /^ok \d+ - a file after the stuck one still runs$/m);
  // The CPU table lists the file that ended, not the one killed.
  assert.match(r.stderr, new RegExp(`test files, the 1 that used most CPU of 1 \\(each file's process and the children it waited for; \\d+ s in all\\):\\n +\\d+\\.\\d s  ${LATER}\\n`));
});

test('a file blocked in a synchronous child process: the child is in the tree shown, and killed with it', () => {
  const sleep = '119.37'; // a marker no other process has
  const r = runTests({ WATCHDOG_STUCK: 'sync', WATCHDOG_SLEEP: sleep });
  assert.equal(r.error, undefined, 'the run ended by itself');
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`pid \\d+ \\(parent \\d+\\) state S, waiting in \\S+, \\d+ s: sleep ${sleep}`));
  assert.match(r.stderr, /no diagnostic report within 3 s: its main thread is blocked outside JavaScript/);
  assert.equal(alive(`sleep ${sleep}`), false, 'the stuck file\'s child was killed too');
});

test('a run told to stop (CI\'s own timeout) first names the files still running, and on what they wait', async () => {
  const child = spawn(process.execPath, ['scripts/run-tests.mjs', STUCK, LATER], { cwd: ROOT, env: envWith({ LATCHGATE_TEST_FILE_LIMIT_SECONDS: '600', WATCHDOG_STUCK: 'timer' }) });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  while (!/^ok \d+ - passes before the stuck one$/m.test(out)) await once(child.stdout, 'data');
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  clearTimeout(killer);
  assert.notEqual(code, 0);
  assert.match(err, new RegExp(`run-tests: ${STUCK} has run \\d+ s, the run was told to stop; it is killed, and fails`));
  assert.match(err, /active handles: .*timer/);
});

test('a run over its own limit is stopped: the files still running are named, and it fails', () => {
  const r = runTests({ LATCHGATE_TEST_FILE_LIMIT_SECONDS: '600', LATCHGATE_TEST_RUN_LIMIT_SECONDS: '3', WATCHDOG_STUCK: 'timer' });
  assert.equal(r.error, undefined, 'the run ended by itself');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /run-tests: the run has gone on for 3 s \(LATCHGATE_TEST_RUN_LIMIT_SECONDS\): it is stopped, and fails/);
  assert.match(r.stderr, new RegExp(`run-tests: ${STUCK} has run \\d+ s, the run was told to stop; it is killed, and fails`));
});

test('files that end in time are left alone; a limit that is not a number is refused before any test runs', () => {
  const ok = runTests({}, [LATER]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.doesNotMatch(ok.stderr, /run-tests: .*killed/);
  const bad = runTests({ LATCHGATE_TEST_FILE_LIMIT_SECONDS: 'ten' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /LATCHGATE_TEST_FILE_LIMIT_SECONDS: expected a number of seconds above 0, got "ten"/);
  assert.equal(bad.stdout, '');
  const badRun = runTests({ LATCHGATE_TEST_RUN_LIMIT_SECONDS: '-1' });
  assert.equal(badRun.status, 2);
  assert.match(badRun.stderr, /LATCHGATE_TEST_RUN_LIMIT_SECONDS: expected a number of seconds above 0, got "-1"/);
});
