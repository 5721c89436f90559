// The policy engine is loaded when a gate that serves opens, and by the first
// decision in a command's gate (`latchgate audit` and the like never decide,
// and never load Cedar's WebAssembly). A serving gate with an engine that
// does not load refuses to open; a command's gate opens, and a decision it
// makes with such an engine is a deny.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, grantAll, startGate } from '../helpers/gate.mjs';

test('an engine that does not load: a serving gate refuses to open; a command\'s gate opens, acts, and answers its one decision with policy_engine_unavailable (503), nothing executed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'latchgate-deferred-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = { policy: { engine: 'opa-wasm', opaWasm: join(dir, 'no-such-policy.wasm') } };
  for (const role of ['up', 'sandbox', 'other']) {
    await assert.rejects(startGate({ stateDir: join(dir, role), config, role }), /no-such-policy\.wasm/, role);
  }
  const g = await startGate({ stateDir: join(dir, 'cli'), config, role: 'cli' });
  t.after(() => g.close());
  grantAll(g);
  assert.ok(g.gate.admin.auditEvents({ limit: '5' }).length > 0);
  const a = new Agent(g.socket);
  await a.lease();
  const r = await a.execute('t_ok', { n: 1, note: 'x' });
  assert.equal(r.status, 503, r.text);
  assert.equal(r.body.error, 'policy_engine_unavailable', r.text);
});

test('a command that never decides never loads the policy engine; one gate that decides loads it once', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'latchgate-deferred-cli-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const loads = join(home, 'loads.txt');
  const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
  const hook = fileURLToPath(new URL('../fixtures/record-loads.mjs', import.meta.url));
  const env = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: join(home, 'cfg'), XDG_STATE_HOME: join(home, 'state'), XDG_DATA_HOME: join(home, 'data'), RECORD_LOADS: loads };
  for (const args of [['audit', '--json'], ['tokens', 'list', '--json'], ['policy', 'grant', 'someone', 'http_fetch']]) {
    rmSync(loads, { force: true });
    const r = spawnSync(process.execPath, ['--import', hook, cli, ...args], { encoding: 'utf8', env });
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    const engines = readFileSync(loads, 'utf8').split('\n').filter((u) => /@cedar-policy|\/dist\/policy\/(cedar|opa)\.js$/.test(u));
    assert.deepEqual(engines, [], args.join(' '));
  }
  // The library's default role decides as it opens: Cedar is loaded (the check above would see it).
  const g = await startGate({});
  t.after(() => g.close());
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  assert.equal((await a.execute('t_ok', { n: 1, note: 'x' })).status, 200);
});
