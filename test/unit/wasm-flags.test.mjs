// src/runtime/wasm-flags.ts: Wasm compiled by Liftoff alone (TurboFan's
// background compiles cost short-lived gates and boxes more than they gain),
// set before any module that compiles Wasm runs. A hot Wasm loop stays
// Liftoff code with the flags; without them V8 tiers it up to TurboFan (the
// check can fail). Node 24 in the CI matrix runs this file too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const fixture = fileURLToPath(new URL('../fixtures/runtime/wasm-tier.mjs', import.meta.url));
const tier = (...args) => {
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', fixture, ...args], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
};

test('with the flags a hot Wasm function stays Liftoff code; without them V8 tiers it up to TurboFan', () => {
  assert.deepEqual(tier(), { total: 20020000000, liftoff: true, turbofan: false });
  assert.deepEqual(tier('without'), { total: 20020000000, liftoff: false, turbofan: true });
});

test('every module that compiles or calls Wasm loads the flags first', () => {
  for (const m of ['policy/cedar.js', 'policy/opa.js', 'providers/runtime-worker.js', 'providers/runtime-compile-job.js']) {
    const text = readFileSync(fileURLToPath(new URL(`../../dist/${m}`, import.meta.url)), 'utf8');
    const first = /^import\s[^;]*?['"]([^'"]+)['"]/m.exec(text)?.[1];
    assert.equal(first, '../runtime/wasm-flags.js', `dist/${m}: its first import is ${first}`);
  }
});
