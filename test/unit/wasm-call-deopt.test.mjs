// Node 20's and 22's V8 crash the process when TurboFan code that inlined a call into
// Wasm returning an externref (every cedar-wasm call) is deoptimized while
// that call runs; src/runtime/wasm-flags.ts turns the inlining off.
// The same scenario is run through the real CedarEngine with the workaround
// and with it undone: the first must answer, the second shows the crash is
// real on the Node versions that have the bug.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../fixtures/runtime/cedar-deopt-during-call.mjs', import.meta.url));
const run = (...args) => spawnSync(process.execPath, ['--allow-natives-syntax', script, ...args], { encoding: 'utf8', timeout: 60_000 });

test('a Cedar decision survives its caller being deoptimized during the call into Wasm', () => {
  const r = run();
  assert.equal(r.signal, null, `the process died (${r.signal}): ${r.stderr.slice(0, 600)}`);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.turbofanned, true, 'the scenario must run optimized code, or it proves nothing');
  // carol has no ACL entry; the wildcard allows http_fetch with sink http_read.
  assert.deepEqual({ allow: out.allow, determining_policies: out.determining_policies }, { allow: true, determining_policies: ['allow-default'] });
});

// Measured: V8 11.3 (Node 20) and 12.4 (Node 22) crash; 13.6 (Node 24) answers, the workaround kept there all the same.
const crashes = Number(process.versions.node.split('.')[0]) < 24;

test(`with JS->Wasm call inlining back on, the same scenario ${crashes ? 'kills the process (the V8 bug is real here)' : 'answers too (this V8 has the bug fixed)'}`, () => {
  const r = run('reenable');
  if (!crashes) {
    assert.equal(r.status, 0, `V8 ${process.versions.v8}: ${r.signal ?? ''} ${r.stderr.slice(0, 600)}`);
    assert.equal(JSON.parse(r.stdout).turbofanned, true);
    return;
  }
  assert.equal(r.status, null, `expected a crash, got exit ${r.status}: ${r.stdout}${r.stderr.slice(0, 300)}`);
  assert.equal(r.signal, 'SIGTRAP');
  assert.match(r.stderr, /unreachable code/);
  assert.match(r.stderr, /Deoptimizer::DoComputeBuiltinContinuation/);
});
