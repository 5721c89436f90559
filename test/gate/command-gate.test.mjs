// What a command's gate (`latchgate audit`, `tokens`, `policy`: opened,
// used for one act, closed) costs: the shipped manifests come as the build
// read them (src/gate/manifest-yaml.ts), so no YAML parser is loaded, nor the
// schema compiler (their validators are the build's), the JOSE library (no
// lease is made or checked) or the credential proxy; and it starts no WAL
// checkpointer thread, its writes being checkpointed as it closes. An
// operator's manifest directory is still read and parsed. A box's gate, on
// the Cedar policy set the build loaded (src/policy/cedar-checked.ts),
// leaves Cedar to its first decision, which it then makes; `latchgate up`'s
// loads it at start. No gate loads fastify's schema compilers (its routes
// declare no schemas).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openGate } from '../../dist/gate/factory.js';
import { gateConfig } from '../helpers/gate.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const HOOK = fileURLToPath(new URL('../fixtures/record-loads.mjs', import.meta.url));
const MANIFEST = fileURLToPath(new URL('../fixtures/gate-manifests/t_ok.yaml', import.meta.url));
const FACTORY = new URL('../../dist/gate/factory.js', import.meta.url).href;
const HELPERS = new URL('../helpers/gate.mjs', import.meta.url).href;
const INPUTS = new URL('../fixtures/policy/inputs.mjs', import.meta.url).href;

/** Packages only a serving gate, or another command, needs. */
const HEAVY = [
  ['the YAML parser', /\/node_modules\/yaml\//],
  ['the schema compiler', /\/node_modules\/ajv\/dist\/(2020|core|compile)/],
  ['the JOSE library', /\/node_modules\/jose\//],
  ['the credential proxy', /\/node_modules\/http-proxy\/|\/dist\/egress\/credential-proxy\.js$/],
];

function run(home, args, configText) {
  const loads = join(home, 'loads.txt');
  rmSync(loads, { force: true });
  const env = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: join(home, 'cfg'), XDG_STATE_HOME: join(home, 'state'), XDG_DATA_HOME: join(home, 'data'), RECORD_LOADS: loads };
  // The user's own configuration file: trusted as it is.
  mkdirSync(join(home, 'cfg', 'latchgate'), { recursive: true });
  writeFileSync(join(home, 'cfg', 'latchgate', 'latchgate.toml'), configText ?? '');
  const r = spawnSync(process.execPath, ['--import', HOOK, CLI, ...args], { encoding: 'utf8', env });
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return { out: r.stdout, modules: readFileSync(loads, 'utf8').split('\n').filter(Boolean) };
}

test("a command's gate loads no YAML parser, schema compiler, JOSE library or credential proxy; an operator's manifests are still parsed", (t) => {
  const home = mkdtempSync(join(tmpdir(), 'latchgate-command-gate-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  for (const args of [['audit', '--json'], ['actions', '--json'], ['tokens', 'list', '--json'], ['policy', 'grant', 'someone', 'http_fetch']]) {
    const { modules } = run(home, args);
    for (const [what, re] of HEAVY) assert.deepEqual(modules.filter((m) => re.test(m)), [], `${args.join(' ')} loaded ${what}`);
  }
  // The shipped actions are all there, read from the build's values.
  const shipped = JSON.parse(run(home, ['actions', '--json']).out).map((a) => a.action_id);
  assert.ok(shipped.includes('http_fetch') && shipped.includes('fs_read'), shipped.join(' '));

  // An operator's manifest is no build's value: parsed, and listed beside the shipped ones.
  const dir = join(home, 'manifests');
  mkdirSync(dir);
  writeFileSync(join(dir, 't_ok.yaml'), readFileSync(MANIFEST));
  const own = run(home, ['actions', '--json'], `[gate]\nmanifest_dirs = [${JSON.stringify(dir)}]\n`);
  assert.ok(own.modules.some((m) => HEAVY[0][1].test(m)), 'the YAML parser read the operator manifest');
  const ids = JSON.parse(own.out).map((a) => a.action_id);
  assert.ok(ids.includes('t_ok') && ids.includes('http_fetch'), ids.join(' '));
});

const threads = async () => Number(/^Threads:\s+(\d+)/m.exec(await readFile('/proc/self/status', 'utf8'))[1]);

test("a command's gate starts no thread and checkpoints its writes as it closes; a serving gate starts its WAL checkpointer", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'latchgate-command-gate-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await threads(); // libuv's thread pool runs before the counts are taken
  for (const [role, added] of [['cli', 0], ['up', 1]]) {
    const state = join(dir, role);
    const before = await threads();
    const g = await openGate({ stateDir: state, config: gateConfig(), role });
    assert.equal((await threads()) - before, added, `${role}: threads started`);
    assert.ok(g.gate.admin.auditEvents({ limit: '5' }).length > 0, 'the gate wrote its start');
    g.close();
    if (role === 'cli') assert.ok(!existsSync(join(state, 'ledger.sqlite3-wal')), 'the WAL was checkpointed into the ledger at close');
    // The checkpointer's thread ends after its current checkpoint.
    for (let i = 0; i < 100 && (await threads()) !== before; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await threads(), before, `${role}: threads left after close`);
  }
});

/** The modules a process loads that opens a gate of `role` in `state` and runs `then` (a function body of g). */
function openIn(state, role, then = '') {
  const loads = join(state, `${role}-loads.txt`);
  const script = `const { openGate } = await import(${JSON.stringify(FACTORY)}); const { gateConfig } = await import(${JSON.stringify(HELPERS)});
    const g = await openGate({ stateDir: ${JSON.stringify(join(state, role))}, config: gateConfig(), role: ${JSON.stringify(role)} });
    ${then}
    g.close(); process.exit(0);`;
  const r = spawnSync(process.execPath, ['--import', HOOK, '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, RECORD_LOADS: loads } });
  assert.equal(r.status, 0, `${role}: ${r.stderr}`);
  return { out: r.stdout, modules: readFileSync(loads, 'utf8').split('\n').filter(Boolean) };
}

const CEDAR = /\/node_modules\/@cedar-policy\//;
// The gate's test manifests need ajv's compiler of the gate's own: fastify's wrappers of it are what must not come.
const FASTIFY_COMPILERS = /\/node_modules\/@fastify\/(ajv-compiler|fast-json-stringify-compiler)\//;

test("a box's gate loads Cedar at its first decision, and decides; `up`'s loads it at start; no gate loads fastify's schema compilers", (t) => {
  const state = mkdtempSync(join(tmpdir(), 'latchgate-serving-gate-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const box = openIn(state, 'sandbox');
  assert.deepEqual(box.modules.filter((m) => CEDAR.test(m)), [], "a box's gate that never decided loaded Cedar");
  assert.deepEqual(box.modules.filter((m) => FASTIFY_COMPILERS.test(m)), [], "a box's gate loaded fastify's schema compilers");
  // Its first decision loads Cedar and decides by the shipped policy: granted, allowed; not granted, denied.
  const decided = openIn(state, 'sandbox', `const { input } = await import(${JSON.stringify(INPUTS)});
    const acl = { carol: { allowed_actions: ['http_fetch'], allowed_sinks: ['http_read'] } };
    for (const data of [{ acl, allowlist: {} }, { acl: {}, allowlist: {} }]) console.log(JSON.stringify(await g.ctx.policy.decide(input(), data)));`);
  assert.ok(decided.modules.some((m) => CEDAR.test(m)), 'the first decision loaded Cedar');
  const [granted, refused] = decided.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(granted.allow, true, decided.out);
  assert.equal(refused.allow, false, decided.out);
  assert.match(refused.deny_reason, /^deny-not-in-acl:/, decided.out);
  const up = openIn(state, 'up');
  assert.ok(up.modules.some((m) => CEDAR.test(m)), "`up`'s gate loads Cedar at start");
  assert.deepEqual(up.modules.filter((m) => FASTIFY_COMPILERS.test(m)), [], "`up`'s gate loaded fastify's schema compilers");
});
