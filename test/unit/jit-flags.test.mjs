// A serving process (a gate, latchgate mcp serve) has V8 optimize its code
// sooner (src/runtime/jit-flags.ts): the flag for each V8, and what it does,
// measured in a child process as the calls of a small function V8 runs before
// it optimizes it (test/fixtures/unit/jit-probe-child.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { servingJitFlag } from '../../dist/runtime/jit-flags.js';

const CHILD = fileURLToPath(new URL('../fixtures/unit/jit-probe-child.mjs', import.meta.url));

function callsBeforeOptimized(mode) {
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--no-concurrent-recompilation', CHILD, mode], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(r.status, 0, `${mode}: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /unrecognized flag/, `${mode}: a flag this V8 does not know`);
  return Number(r.stdout.trim().split('\n').at(-1));
}

test('the flag by V8: a smaller interrupt budget on 11, TurboFan after 400 calls on 12, nothing on 13 and later', () => {
  assert.equal(servingJitFlag('11.3.244.8-node.33'), '--interrupt-budget=8192');
  assert.equal(servingJitFlag('12.4.254.21-node.33'), '--invocation-count-for-turbofan=400');
  assert.equal(servingJitFlag('13.6.233.10-node.28'), null);
  assert.equal(servingJitFlag('14.1.0'), null);
});

test('a gate that has answered a request and latchgate mcp serve have their code optimized sooner; a plain process and a gate that answered nothing keep V8 as it is', () => {
  const plain = callsBeforeOptimized('plain');
  assert.ok(plain > 0 && plain < 20000, `the probe's function was never optimized (${plain})`);
  assert.equal(callsBeforeOptimized('idle-gate'), plain, 'a gate that answered nothing (a box whose agent never calls it)');
  const flag = servingJitFlag();
  for (const mode of ['tune', 'gate', 'mcp']) {
    const n = callsBeforeOptimized(mode);
    if (flag === null) assert.equal(n, plain, `${mode}: V8 ${process.versions.v8} is left as it is`);
    else assert.ok(n < plain / 2, `${mode}: optimized after ${n} calls, a plain process after ${plain} (${flag})`);
  }
});
