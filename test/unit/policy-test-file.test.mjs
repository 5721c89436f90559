// Policy test files and `latchgate policy test`: the shipped cases of the
// default policy pass, cover every rule, and each fails when its
// expectation is changed; a bad file is refused naming the file, the line,
// the case and the field; the parser, fuzzed with seeded mutations of good
// files, returns valid cases or PolicyTestFileError and nothing else; the
// command exits 0, 1 on a failed case, 2 on a bad file or policy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { CedarEngine } from '../../dist/policy/cedar.js';
import { validateInput } from '../../dist/policy/engine.js';
import { DEFAULT_TEST_INPUT, parsePolicyTestFile, PolicyTestFileError, readPolicyTestFile } from '../../dist/policy/test-file.js';
import { runPolicyTests } from '../../dist/policy/test-run.js';
import { prng, tempDir } from '../fixtures/unit/helpers.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const POLICIES = fileURLToPath(new URL('../../policies', import.meta.url));
const SHIPPED = path.join(POLICIES, 'tests', 'default.yaml');
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 0x7e57_f11e;
const FUZZ_CASES = 1000;

const engine = CedarEngine.load();
const OUTCOMES = ['allow', 'deny', 'pending_approval'];

test('the shipped cases of the default policy pass, and name every rule of it', async () => {
  const cases = readPolicyTestFile(SHIPPED);
  assert.ok(cases.length >= 30);
  const run = await runPolicyTests(engine, cases);
  assert.equal(run.failed, 0, JSON.stringify(run.results.filter((r) => !r.pass), null, 2));
  const named = new Set(cases.map((c) => c.expect_reason));
  for (const id of engine.policies.keys()) assert.ok(named.has(id), `no case expects the rule ${id}`);
});

test('each shipped case fails when its expectation is changed (none passes whatever the policy says)', async () => {
  const cases = readPolicyTestFile(SHIPPED);
  for (const c of cases) {
    for (const other of OUTCOMES.filter((o) => o !== c.expect)) {
      const { results } = await runPolicyTests(engine, [{ ...c, expect: other }]);
      assert.equal(results[0].pass, false, `${c.name}: expecting ${other} passes too`);
    }
    if (c.expect_reason) {
      const { results } = await runPolicyTests(engine, [{ ...c, expect_reason: 'some-other-rule' }]);
      assert.equal(results[0].pass, false, `${c.name}: any reason passes`);
    }
  }
});

test('a deny names its rule only by the policy that named the reason: a case can pin which rule wins', async () => {
  const [c] = parsePolicyTestFile('cases:\n  - name: two rules deny\n    input: { action_trust_verdict: untrusted }\n    expect: deny\n    expect_reason: deny-not-in-acl\n', 't.yaml');
  const { results } = await runPolicyTests(engine, [c]);
  assert.equal(results[0].pass, false, 'deny-not-in-acl also denied, but deny-untrusted named the reason');
  assert.deepEqual(results[0].determining_policies, ['deny-untrusted', 'deny-not-in-acl']);
});

test('defaults: members a case does not give come from the file\'s input, then DEFAULT_TEST_INPUT; data defaults to no grants', () => {
  const cases = parsePolicyTestFile('input: { principal: alice }\ncases:\n  - name: a\n    expect: deny\n  - name: b\n    input: { principal: bob, fs_path: /x }\n    expect: deny\n', 'd.yaml');
  assert.deepEqual(cases[0].input, { ...DEFAULT_TEST_INPUT, principal: 'alice' });
  assert.deepEqual(cases[1].input, { ...DEFAULT_TEST_INPUT, principal: 'bob', fs_path: '/x' });
  assert.deepEqual(cases[0].data, { acl: {}, allowlist: {} });
  assert.equal(cases[1].line, 5);
  assert.equal(validateInput(DEFAULT_TEST_INPUT).ok, true);
  // JSON is read too.
  const j = parsePolicyTestFile(JSON.stringify({ cases: [{ name: 'j', expect: 'allow', data: { acl: {}, allowlist: {} } }] }), 'j.json');
  assert.equal(j[0].name, 'j');
});

test('a bad file is refused naming the file, the line, the case and the field', () => {
  const bad = [
    ['cases: [\n', /^f\.yaml:\d+: not valid YAML or JSON/],
    ['- 1\n- 2\n', /^f\.yaml:1: expected a mapping with cases .*, got a list/],
    ['cases: []\n', /^f\.yaml:1: cases: expected a list of one case or more, got a list/],
    ['case:\n  - name: x\n', /^f\.yaml:1: case: not a key of a policy test file; did you mean cases\?/],
    ['cases:\n  - just text\n', /^f\.yaml:2: cases\[0\]: expected a mapping \(name, input, expect\.\.\.\), got string "just text"/],
    ['cases:\n  - expect: allow\n', /^f\.yaml:2: cases\[0\]\.name: expected a non-empty name, got undefined/],
    ['cases:\n  - name: x\n    expect: allow\n  - name: x\n    expect: deny\n', /^f\.yaml:4: cases\[1\] \("x"\)\.name: the name is taken by cases\[0\]/],
    ['cases:\n  - name: x\n    expect: allowed\n', /^f\.yaml:3: cases\[0\] \("x"\)\.expect: expected one of allow, deny, pending_approval, got string "allowed"/],
    ['cases:\n  - name: x\n    expect: deny\n    expect_reason: 3\n', /^f\.yaml:4: cases\[0\] \("x"\)\.expect_reason: expected a deny_reason or a policy id, got number 3/],
    ['cases:\n  - name: x\n    expct: allow\n', /^f\.yaml:3: cases\[0\] \("x"\)\.expct: not a key of a case; did you mean expect\?/],
    ['cases:\n  - name: x\n    expect: allow\n    input:\n      principle: bob\n', /^f\.yaml:5: cases\[0\] \("x"\)\.input\.principle: not a member of the decision input; did you mean principal\?/],
    ['cases:\n  - name: x\n    expect: allow\n    input: [a]\n', /^f\.yaml:4: cases\[0\] \("x"\)\.input: expected a mapping of decision input members, got a list/],
    ['cases:\n  - name: x\n    expect: allow\n    input:\n      scopes: tools:call\n', /^f\.yaml:5: cases\[0\] \("x"\)\.input\.scopes: must be array \(the input, defaults filled in, must match policies\/decision-input\.schema\.json\)$/],
    ['cases:\n  - name: x\n    expect: allow\n    input:\n      budgets_before: { calls_remaining: 1.5 }\n', /^f\.yaml:5: cases\[0\] \("x"\)\.input\.budgets_before\.calls_remaining: must be integer/],
    ['input:\n  action_risk_level: hgh\ncases:\n  - name: x\n    expect: allow\n', /^f\.yaml:2: cases\[0\] \("x"\)\.input\.action_risk_level: must be equal to one of the allowed values .*; the value is the file's input$/],
    ['cases:\n  - name: x\n    expect: allow\n    data: { acl: { bob: { allowed_actions: [a] } }, allowlist: {} }\n', /^f\.yaml:4: cases\[0\] \("x"\)\.data: \/acl\/bob: must have required property 'allowed_sinks' \(policy data must match policies\/data\.schema\.json\)/],
    ['data: []\ncases:\n  - name: x\n    expect: allow\n', /^f\.yaml:1: data: expected policy data \(acl, allowlist\), got a list/],
    ['cases:\n  - name: x\n    name: y\n    expect: allow\n', /^f\.yaml:\d+: not valid YAML or JSON: Map keys must be unique/],
  ];
  for (const [text, want] of bad) {
    assert.throws(() => parsePolicyTestFile(text, 'f.yaml'), (e) => e instanceof PolicyTestFileError && want.test(e.message), `${JSON.stringify(text)} -> ${want}`);
  }
});

// ---- fuzz -------------------------------------------------------------------

const PIECES = [':', ' ', '\n', '- ', '[', ']', '{', '}', ',', '"', "'", '#', '&a', '*a', '!!binary', '!!set', '? ', '|', '>', '\t', '\0', '😀', 'null', '~', 'true', '1e400', '-0', '0x10',
  'cases', 'name', 'input', 'data', 'expect', 'expect_reason', 'allow', 'deny', 'pending_approval', 'principal', 'scopes', 'budgets_before', 'calls_remaining', 'acl', 'allowlist', '__proto__', 'constructor'];
const VALUES = [null, true, 0, -1, 1.5, 2 ** 60, '', 'x', [], {}, [1], { a: 1 }, ['tools:call'], { calls_remaining: 1 }, 'allow', { acl: {}, allowlist: {} }];

function mutate(rnd, text) {
  let t = text;
  for (let k = 1 + rnd.below(4); k > 0; k--) {
    const at = rnd.below(t.length + 1);
    switch (rnd.below(4)) {
      case 0:
        t = t.slice(0, at) + rnd.pick(PIECES) + t.slice(at);
        break;
      case 1:
        t = t.slice(0, at) + t.slice(at + 1 + rnd.below(8));
        break;
      case 2: {
        const lines = t.split('\n');
        const i = rnd.below(lines.length);
        lines.splice(i, 0, lines[rnd.below(lines.length)]);
        t = lines.join('\n');
        break;
      }
      default:
        t = t.slice(0, at);
    }
  }
  return t;
}

function structural(rnd) {
  const input = { principal: 'p' };
  const c = { name: 'a', expect: 'allow', input };
  const doc = { cases: [c] };
  const spots = [
    () => (input[rnd.pick(['principal', 'scopes', 'budgets_before', 'fs_path', 'nope'])] = rnd.pick(VALUES)),
    () => (c[rnd.pick(['name', 'expect', 'expect_reason', 'data', 'input', 'x'])] = rnd.pick(VALUES)),
    () => (doc[rnd.pick(['cases', 'input', 'data', 'description'])] = rnd.pick(VALUES)),
    () => Array.isArray(doc.cases) && doc.cases.push(rnd.pick(VALUES)),
  ];
  for (let k = 1 + rnd.below(3); k > 0; k--) rnd.pick(spots)();
  return rnd.chance(0.5) ? stringify(doc) : JSON.stringify(doc);
}

test(`fuzz (seed ${SEED}, ${FUZZ_CASES} cases): the parser returns valid cases or a PolicyTestFileError naming the file, nothing else`, () => {
  const rnd = prng(SEED);
  const shipped = readFileSync(SHIPPED, 'utf8');
  const small = 'input: { principal: alice }\ndata: { acl: { alice: { allowed_actions: [a], allowed_sinks: [] } }, allowlist: {} }\ncases:\n  - name: one\n    input: { action_id: a }\n    expect: allow\n    expect_reason: allow-default\n  - name: two\n    expect: deny\n';
  let good = 0;
  let refused = 0;
  for (let n = 0; n < FUZZ_CASES; n++) {
    const text = n % 3 === 0 ? structural(rnd) : mutate(rnd, rnd.chance(0.1) ? shipped : small);
    let cases;
    try {
      cases = parsePolicyTestFile(text, 'fuzz.yaml');
    } catch (e) {
      assert.ok(e instanceof PolicyTestFileError, `seed ${SEED} case ${n}: ${e?.stack}\n${JSON.stringify(text)}`);
      assert.ok(e.message.startsWith('fuzz.yaml'), e.message);
      refused++;
      continue;
    }
    for (const c of cases) {
      assert.equal(validateInput(c.input).ok, true, `seed ${SEED} case ${n}: an invalid input passed\n${JSON.stringify(text)}`);
      assert.ok(OUTCOMES.includes(c.expect));
      assert.equal(typeof c.name, 'string');
    }
    good++;
  }
  assert.ok(good > 20 && refused > 200, `${good} parsed, ${refused} refused`);
});

// ---- the command ------------------------------------------------------------

function lgTest(...args) {
  const r = spawnSync(process.execPath, [CLI, 'policy', 'test', ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('latchgate policy test: 0 when every case passes (the shipped ones by default), 1 on a failed case, 2 on a bad file or policy', (t) => {
  const ok = lgTest('--json');
  assert.equal(ok.code, 0, ok.err);
  const run = JSON.parse(ok.out);
  assert.equal(run.failed, 0);
  assert.equal(run.passed, readPolicyTestFile(SHIPPED).length);

  const dir = tempDir(t, 'latchgate-policy-test-');
  writeFileSync(path.join(dir, 'a.yaml'), 'cases:\n  - name: granted\n    data: { acl: { tester: { allowed_actions: [test_action], allowed_sinks: [] } }, allowlist: {} }\n    expect: allow\n  - name: wrong\n    expect: allow\n');
  const failed = lgTest(dir);
  assert.equal(failed.code, 1, failed.err);
  assert.match(failed.out, /^ok {4}granted/m);
  assert.match(failed.out, /^FAIL {2}wrong {2}\(.*a\.yaml:5\): expected allow, got deny \(deny-not-in-acl: /m);
  assert.match(failed.out, /1 passed, 1 failed/);

  mkdirSync(path.join(dir, 'bad'));
  writeFileSync(path.join(dir, 'bad', 'b.json'), '{"cases": [{"name": "x", "expect": "maybe"}]}');
  const bad = lgTest(path.join(dir, 'bad'), dir);
  assert.equal(bad.code, 2, bad.err);
  assert.match(bad.err, /b\.json:1: cases\[0\] \("x"\)\.expect: expected one of allow, deny, pending_approval, got string "maybe"/);
  assert.equal(bad.out, '', 'no case runs while a file is bad');

  const noPolicy = lgTest('--policy', dir);
  assert.equal(noPolicy.code, 2);
  assert.match(noPolicy.err, /holds neither latchgate\.cedar/);
});
