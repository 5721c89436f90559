// The contract between src/ and the addon, read from both sides' sources: the
// generated numbers are current and alike on both sides and each is used,
// parse_plan reads exactly the keys NativePlan declares (with their types) and
// toNativePlan sends, the addon exports what NativeAddon declares, every
// ChildPlan field is set and read, and the box's child side neither allocates
// nor throws. The last tests show each check failing on a changed copy of the
// sources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HEADER, MODULE, SOURCE, renderProtocol } from '../../scripts/gen-protocol.mjs';
import { MSG, OP, STEP, STEP_NAMES, loadAddon } from '../../dist/native/addon.js';
import { buildSandboxPlan } from '../../dist/sandbox/plan.js';
import { resolveIdentity } from '../../dist/sandbox/identity.js';
import { toNativePlan } from '../../dist/sandbox/native-plan.js';
import {
  childPlanProblems,
  childSideProblems,
  compareKeys,
  cppEnums,
  cppPlanKeys,
  missingKeys,
  protocolUsage,
  tsMethods,
  tsPlanKeys,
  undeclaredKeys,
  valueKeys,
  SET_ID_WRAPPER,
} from '../helpers/native-contract.mjs';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (file) => readFileSync(join(ROOT, file), 'utf8');

function* files(dir, ext) {
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p, ext);
    else if (e.name.endsWith(ext)) yield p;
  }
}

const header = read(HEADER);
const spawnCc = read('native/spawn.cc');
const commonH = read('native/common.h');
const addonTs = read('src/native/addon.ts');
const cc = new Map([...files('native', '.cc')].map((f) => [f, read(f)]));
const src = new Map([...files('src', '.ts')].filter((f) => f !== MODULE).map((f) => [f, read(f)]));
// The child side: every file without Node-API, directly or through a header of native/.
const nodeHeaders = [...files('native', '.h')].filter((f) => /#include <napi\.h>/.test(read(f))).map((f) => relative('native', f));
const usesNode = (text) => /#include <napi\.h>/.test(text) || nodeHeaders.some((h) => text.includes(`#include "${h}"`));
const child = new Map([...cc].filter(([, text]) => !usesNode(text)));

test('native/protocol.gen.h and src/native/protocol.gen.ts are what native/protocol.json gives (run node scripts/gen-protocol.mjs)', () => {
  const { header: h, module } = renderProtocol(JSON.parse(read(SOURCE)));
  assert.equal(header, h, `${HEADER} is stale`);
  assert.equal(read(MODULE), module, `${MODULE} is stale`);
});

test('the addon and src/native/ give each step, message and mount operation the same name and number', () => {
  const cpp = cppEnums(header);
  const strip = ({ enum: _, ...values }) => values;
  assert.deepEqual(Object.keys(cpp).sort(), ['MSG', 'OP', 'STEP']);
  assert.deepEqual(strip(cpp.STEP), { ...STEP });
  assert.deepEqual(strip(cpp.MSG), { ...MSG });
  assert.deepEqual(strip(cpp.OP), { ...OP });
  const max = Math.max(...Object.values(STEP));
  assert.equal(STEP_NAMES.length, max + 1, 'a text for every step, indexed by its number');
  for (const v of Object.values(STEP)) assert.ok(STEP_NAMES[v], `step ${v} has a text`);
  // common.h takes them from the generated header and declares none of its own.
  assert.match(commonH, /#include "protocol\.gen\.h"/);
  assert.doesNotMatch(commonH, /\benum\b/);
  assert.doesNotMatch(addonTs, /^export const (STEP|MSG|OP|STEP_NAMES)\b/m);
});

test('every step is reported by a fail() of native/, every message sent by native/ and read by src/, every mount operation made by native/ and planned by src/', () => {
  assert.deepEqual(protocolUsage(cppEnums(header), cc, src), []);
});

test('parse_plan reads exactly the keys NativePlan declares, each with the type it declares', () => {
  assert.deepEqual(compareKeys(cppPlanKeys(spawnCc), tsPlanKeys(addonTs), 'parse_plan (native/spawn.cc)', 'NativePlan (src/native/addon.ts)'), []);
});

test('toNativePlan sends every key NativePlan declares and no other, each of the declared type', (t) => {
  const ws = tempDir(t);
  const identity = resolveIdentity({
    uid: 1000,
    gid: 1000,
    env: {},
    passwd: 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n',
    group: 'root:x:0:\nalice:x:1000:\n',
    workspaceOwner: { uid: 1000, gid: 1000 },
  });
  // Everything that fills an optional part: a terminal, ports, TCP rules, a read-only tree.
  const plan = buildSandboxPlan(
    { workspace: ws, ro: ['/usr'], rw: [], passEnv: [], allowHosts: [], command: ['/bin/true'], strictNet: true, allowDegraded: false, limits: {}, listenPorts: [8123] },
    { identity, env: { PATH: '/usr/bin:/bin' }, landlockAbi: 7, hardLimits: { nofile: 1024, nproc: 1024 }, terminal: { rows: 24, cols: 80 }, homes: [] },
  );
  const native = toNativePlan(plan, 40);
  const sent = valueKeys(native);
  const declared = tsPlanKeys(addonTs);
  assert.deepEqual(undeclaredKeys(sent, declared), []);
  assert.deepEqual(missingKeys(sent, declared), []);
  for (const key of ['landlock.ports[].port', 'pty.rows', 'ops[].src', 'ops[].data', 'ops[].mode', 'ops[].readonly', 'ops[].recursive', 'ports']) {
    assert.ok(sent.has(key), `the plan of this test sends ${key}`);
  }
});

test('the addon exports exactly the functions NativeAddon declares', () => {
  const addon = loadAddon();
  assert.deepEqual(Object.keys(addon).sort(), tsMethods(addonTs, 'NativeAddon').sort());
  for (const [name, value] of Object.entries(addon)) assert.equal(typeof value, 'function', name);
});

test('every ChildPlan field is set by spawn.cc and read by the child', () => {
  assert.deepEqual(childPlanProblems(commonH, spawnCc, child), []);
});

test('the child side (from clone() to execve()) neither allocates nor throws, and every fail() names a step and an errno', () => {
  assert.deepEqual([...child.keys()].sort(), [
    'native/caps_rlimits.cc', 'native/child.cc', 'native/fdpass.cc', 'native/init.cc', 'native/landlock.cc',
    'native/mounts.cc', 'native/namespaces.cc', 'native/pty.cc', 'native/seccomp.cc',
  ]);
  assert.deepEqual(childSideProblems(child), []);
});

test("the built addon calls none of glibc's set-id wrappers (after the box's raw clone() they wait for the parent's threads, and hung a launch)", () => {
  const undefinedSymbols = execFileSync('nm', ['-D', '--undefined-only', join(ROOT, 'build', 'Release', 'latchgate.node')], { encoding: 'utf8' });
  const names = undefinedSymbols.split('\n').map((l) => l.trim().split(/\s+/).pop()?.replace(/@.*$/, '') ?? '');
  assert.ok(names.includes('syscall'), `nm listed no syscall import: ${undefinedSymbols.slice(0, 300)}`);
  assert.deepEqual(names.filter((n) => SET_ID_WRAPPER.test(`${n}(`)), []);
});

// ---- the checks above fail on a difference

test('the checks fail on a renamed, retyped or unread plan key', () => {
  const keys = (cppText, tsText = addonTs) => compareKeys(cppPlanKeys(cppText), tsPlanKeys(tsText), 'cpp', 'ts');
  assert.deepEqual(keys(spawnCc.replace('"stageDir"', '"stageDirectory"')), [
    'stageDirectory (string): in cpp, not in ts',
    'stageDir (string): in ts, not in cpp',
  ]);
  assert.deepEqual(keys(spawnCc.replace('get_string(env, o, "cwd"', 'get_number(env, o, "cwd"')), ['cwd: number in cpp, string in ts']);
  assert.deepEqual(keys(spawnCc.replace('opt_bool(env, op, "readonly"', 'get_bool(env, op, "readonly"')), [
    'ops[].readonly (boolean): in cpp, not in ts',
    'ops[].readonly? (boolean): in ts, not in cpp',
  ]);
  assert.deepEqual(keys(spawnCc, addonTs.replace('  capLast: number;', '  capLast: number;\n  extra: string[];')), ['extra (string[]): in ts, not in cpp']);
  assert.deepEqual(keys(spawnCc, addonTs.replace(/pty: \{ rows: number; cols: number \} \| null;/, 'pty: { rows: number; cols: number };')), ['pty: object | null in cpp, object in ts']);
  assert.throws(() => cppPlanKeys(spawnCc.replace('  p.cap_last = ', '  p.cap_last = o.Get("capLast").IsNumber();\n  p.cap_last = ')), /without an accessor/);
  assert.throws(() => cppPlanKeys(spawnCc.replace(/get_item\(env, a, i, "paths", &rule\)/, 'true')), /"path", &s: rule is not an object of the plan/);
  assert.throws(() => tsPlanKeys(addonTs.replace('  cwd: string;', '  cwd: string | number;')), /cwd/);
});

test('the checks fail on a plan that sends a key nothing declares, or lacks a declared one', () => {
  const declared = tsPlanKeys(addonTs);
  const plan = { uid: 1, landlock: { abi: 1, paths: [{ path: '/', access: 1, extra: 2 }] }, pty: null, ops: [] };
  assert.deepEqual(undeclaredKeys(valueKeys(plan), declared), ['landlock.paths[].extra (number): sent, not declared']);
  const missing = missingKeys(valueKeys(plan), declared);
  assert.ok(missing.includes('gid (number): declared, not sent'), missing.join('\n'));
  assert.ok(missing.includes('landlock.ports (object[]): declared, not sent'), missing.join('\n'));
  assert.ok(!missing.some((m) => m.startsWith('ops[].') || m.startsWith('pty.')), 'no item of an empty array, nothing under null');
});

test('the checks fail on a stale generated file, a number that differs, or a number nothing uses', () => {
  const json = JSON.parse(read(SOURCE));
  json.messages.values.push(['UNUSED', 'sent by nobody']);
  assert.notEqual(renderProtocol(json).header, header);
  json.messages.values.push(['UNUSED', 'twice']);
  assert.throws(() => renderProtocol(json), /names UNUSED twice/);

  const { enum: _, ...renumbered } = cppEnums(header.replace(/STEP_CAPS = \d+/, 'STEP_CAPS = 99')).STEP;
  assert.deepEqual(renumbered, { ...STEP, CAPS: 99 });
  assert.notDeepEqual(renumbered, { ...STEP });

  const extra = cppEnums(renderProtocol(JSON.parse(read(SOURCE).replace('["STDIO"', '["UNUSED", "x"], ["STDIO"').replace('["EXIT"', '["UNUSED", "x"], ["EXIT"').replace('["BUDGET_DIR"', '["UNUSED", "x"], ["BUDGET_DIR"'))).header);
  assert.deepEqual(protocolUsage(extra, cc, src), [
    'STEP_UNUSED: no fail() in native/ reports it',
    'MSG_UNUSED: native/ never sends it',
    'MSG_UNUSED: src/ never reads it',
    'OP_UNUSED: no case of native/ makes it',
    'OP_UNUSED: src/ never plans it',
  ]);
  const unread = new Map([...src].map(([f, text]) => [f, text.replaceAll('MSG.PRE_EXEC', 'MSG.EXIT')]));
  assert.deepEqual(protocolUsage(cppEnums(header), cc, unread), ['MSG_PRE_EXEC: src/ never reads it']);
});

test('the checks fail on a ChildPlan field nothing sets or reads, and on allocation or a bare fail() in the child', () => {
  const withField = commonH.replace('  int cap_last;', '  int cap_last;\n  int unused_field;');
  assert.deepEqual(childPlanProblems(withField, spawnCc, child), [
    'ChildPlan.unused_field: spawn.cc never sets it',
    'ChildPlan.unused_field: the child never reads it',
  ]);
  const bad = new Map([
    ['a.cc', '#include <string>\nvoid f() { std::string s = "x"; }'],
    ['b.cc', 'void g(const ChildPlan& p) { char* b = static_cast<char*>(malloc(4)); fail(p, 3); }'],
    ['c.cc', 'int h(const ChildPlan& p) { syscall(SYS_setgroups, 0, nullptr); return setresuid(p.uid, p.uid, p.uid); }'],
  ]);
  assert.deepEqual(childSideProblems(bad), [
    'a.cc: includes string',
    'a.cc: the C++ library (allocates) (std::)',
    'b.cc: malloc and friends (malloc()',
    'b.cc: fail(p, 3); does not name a step and an errno',
    "c.cc: a glibc set-id wrapper (it waits for the parent's threads; use syscall(SYS_...)) (setresuid()",
  ]);
});
