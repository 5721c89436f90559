// The default Cedar policy (policies/latchgate.cedar) through CedarEngine:
// upstream's decision order rule by rule, the sensitive-path patterns with
// their near misses, and every way the engine must fail closed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { CedarEngine, CedarPolicyError, normalizeFsPath } from '../../dist/policy/cedar.js';
import { DEFAULT_POLICY_DIR, ENGINE_FAILURE, DEFAULT_DENY_REASON } from '../../dist/policy/engine.js';
import { input, fsInput, data } from '../fixtures/policy/inputs.mjs';

const faults = [];
const engine = CedarEngine.load({ onFault: (f) => faults.push(f) });
const policyText = readFileSync(`${DEFAULT_POLICY_DIR}latchgate.cedar`, 'utf8');
const schemaText = readFileSync(`${DEFAULT_POLICY_DIR}latchgate.cedarschema`, 'utf8');

const decide = (i, d = data()) => engine.decide(i, d);

async function denied(i, id, d) {
  const r = await decide(i, d);
  assert.equal(r.allow, false, `expected a deny by ${id}, got ${JSON.stringify(r)}`);
  assert.equal(r.requires_approval, false);
  assert.equal(r.determining_policies[0], id, JSON.stringify(r));
  assert.ok(r.deny_reason.startsWith(`${id}: `), `deny_reason names the rule: ${r.deny_reason}`);
  return r;
}

async function allowed(i, { approval = false, by } = {}, d) {
  const r = await decide(i, d);
  assert.equal(r.allow, true, `expected an allow, got ${JSON.stringify(r)}`);
  assert.equal(r.requires_approval, approval, JSON.stringify(r));
  assert.equal(r.deny_reason, undefined);
  if (by) assert.deepEqual(r.determining_policies, by);
  return r;
}

test('every policy carries an id; forbids carry a reason; ids are the audit names', () => {
  const ids = [...engine.policies.keys()].sort();
  assert.deepEqual(ids, [
    'allow-allowlisted', 'allow-default', 'approval-high-risk', 'approval-sensitive-path',
    'approval-unresolved-domains', 'approval-unresolved-paths', 'deny-budget-calls-exhausted',
    'deny-budget-cost-exhausted', 'deny-missing-required-scope', 'deny-missing-tools-call-scope',
    'deny-not-in-acl', 'deny-sink-not-allowed', 'deny-untrusted',
  ]);
  for (const m of engine.policies.values()) if (m.effect === 'forbid') assert.ok(m.reason?.startsWith(`${m.id}: `), m.id);
  assert.equal(engine.kind, 'cedar');
  assert.equal(engine.version, createHash('sha256').update(`${policyText}\u0000${schemaText}`).digest('hex'));
});

test('1. trust verdict other than digest_ok denies', async () => {
  await denied(input({ action_trust_verdict: 'untrusted' }), 'deny-untrusted');
  await denied(input({ action_trust_verdict: 'digest_mismatch' }), 'deny-untrusted');
});

test('order: the first rule of the chain names the reason, all matching forbids are listed', async () => {
  const r = await denied(
    input({ action_trust_verdict: 'untrusted', principal: 'bob', scopes: [], budgets_before: { calls_remaining: 0 }, requested_sinks: ['x'] }),
    'deny-untrusted',
  );
  assert.deepEqual(r.determining_policies, [
    'deny-untrusted', 'deny-not-in-acl', 'deny-missing-tools-call-scope', 'deny-budget-calls-exhausted', 'deny-sink-not-allowed',
  ]);
  const r2 = await denied(input({ scopes: [], budgets_before: { calls_remaining: 0 } }), 'deny-missing-tools-call-scope');
  assert.deepEqual(r2.determining_policies, ['deny-missing-tools-call-scope', 'deny-budget-calls-exhausted']);
  const r3 = await denied(input({ budgets_before: { calls_remaining: 0 }, requested_sinks: ['fs_write'] }), 'deny-budget-calls-exhausted');
  assert.deepEqual(r3.determining_policies, ['deny-budget-calls-exhausted', 'deny-sink-not-allowed']);
});

test('2. ACL: no entry uses the wildcard; an entry without inherits_wildcard does not', async () => {
  await allowed(input({ principal: 'carol' }), { by: ['allow-default'] }); // wildcard grants http_fetch
  await denied(input({ principal: 'carol', action_id: 'fs_read', requested_sinks: [] }), 'deny-not-in-acl');
  await allowed(input({ principal: 'bob', action_id: 'fs_read', requested_sinks: [] }));
  await denied(input({ principal: 'bob', action_id: 'http_fetch', requested_sinks: [] }), 'deny-not-in-acl');
});

test('2. ACL: inherits_wildcard adds the wildcard actions to the own ones', async () => {
  await allowed(input({ principal: 'alice', action_id: 'fs_write', requested_sinks: ['fs_write'] }));
  await allowed(input({ principal: 'alice', action_id: 'wiki_read' }));
  await denied(input({ principal: 'alice', action_id: 'rm_rf' }), 'deny-not-in-acl');
  const d = data();
  d.acl.alice.inherits_wildcard = false;
  await denied(input({ principal: 'alice', action_id: 'wiki_read' }), 'deny-not-in-acl', d);
});

test('2. ACL: the shipped data.json denies until granted; no wildcard entry at all denies too', async () => {
  const shipped = JSON.parse(readFileSync(`${DEFAULT_POLICY_DIR}data.json`, 'utf8'));
  assert.deepEqual(shipped.acl, { '*': { allowed_actions: [], allowed_sinks: [] } });
  assert.deepEqual(shipped.allowlist, {});
  await denied(input(), 'deny-not-in-acl', { acl: shipped.acl, allowlist: shipped.allowlist });
  await denied(input(), 'deny-not-in-acl', { acl: {}, allowlist: {} });
  // "*" as a caller is refused by the input schema, it only names the wildcard entry
  assert.equal((await decide(input({ principal: '*' }))).deny_reason, ENGINE_FAILURE.inputInvalid);
});

test('3. scopes: tools:call and every required scope must be in the lease', async () => {
  await denied(input({ scopes: [] }), 'deny-missing-tools-call-scope');
  await denied(input({ scopes: ['tools:read'] }), 'deny-missing-tools-call-scope');
  await denied(input({ required_scopes: ['repo:write'] }), 'deny-missing-required-scope');
  await denied(input({ required_scopes: ['repo:write', 'repo:read'], scopes: ['tools:call', 'repo:read'] }), 'deny-missing-required-scope');
  await allowed(input({ required_scopes: ['repo:write', 'repo:read'], scopes: ['repo:read', 'tools:call', 'repo:write'] }));
});

test('4. budget: calls_remaining <= 0 denies; cost_remaining < 0 denies when present', async () => {
  await denied(input({ budgets_before: { calls_remaining: 0 } }), 'deny-budget-calls-exhausted');
  await denied(input({ budgets_before: { calls_remaining: -3 } }), 'deny-budget-calls-exhausted');
  await allowed(input({ budgets_before: { calls_remaining: 1 } }));
  await denied(input({ budgets_before: { calls_remaining: 5, cost_remaining: -1 } }), 'deny-budget-cost-exhausted');
  await denied(input({ budgets_before: { calls_remaining: 5, cost_remaining: -0.25 } }), 'deny-budget-cost-exhausted');
  await allowed(input({ budgets_before: { calls_remaining: 5, cost_remaining: 0 } }));
  await allowed(input({ budgets_before: { calls_remaining: 5, cost_remaining: 0.5 } }));
  await allowed(input({ budgets_before: { calls_remaining: Number.MAX_SAFE_INTEGER, cost_remaining: 1e15 } }));
});

test('5. sinks: every requested sink must be allowed (own, plus the wildcard where it applies)', async () => {
  await denied(input({ principal: 'carol', requested_sinks: ['http_write'] }), 'deny-sink-not-allowed');
  await denied(input({ principal: 'bob', action_id: 'fs_read', requested_sinks: ['http_read'] }), 'deny-sink-not-allowed');
  // alice: own http_write + inherited http_read, together
  await allowed(input({ principal: 'alice', action_id: 'github_create_issue', requested_sinks: ['http_write', 'http_read'] }));
  await denied(input({ principal: 'alice', action_id: 'github_create_issue', requested_sinks: ['http_write', 'http_delete'] }), 'deny-sink-not-allowed');
  await allowed(input({ principal: 'carol', requested_sinks: [] }));
});

test('6. allowlisted (action, principal) skips approval, never a deny', async () => {
  const crit = input({ principal: 'alice', action_id: 'deploy', action_risk_level: 'critical', requested_sinks: [] });
  await allowed(crit, { approval: true, by: ['approval-high-risk'] });
  const d = data({ allowlist: { deploy: { alice: true } } });
  await allowed(crit, { approval: false, by: ['allow-allowlisted'] }, d);
  await allowed({ ...crit, unresolved_domains: ['x.example'] }, { approval: false, by: ['allow-allowlisted'] }, d);
  await denied({ ...crit, budgets_before: { calls_remaining: 0 } }, 'deny-budget-calls-exhausted', d);
  // another principal's entry, or another action's, does not apply
  await allowed(crit, { approval: true }, data({ allowlist: { deploy: { bob: true }, other: { alice: true } } }));
});

test('7. approval for high and critical risk, not for low and medium', async () => {
  for (const risk of ['high', 'critical']) await allowed(input({ action_risk_level: risk }), { approval: true, by: ['approval-high-risk'] });
  for (const risk of ['low', 'medium']) await allowed(input({ action_risk_level: risk }), { approval: false, by: ['allow-default'] });
});

test('7. approval for unresolved domains and unresolved paths', async () => {
  await allowed(input({ unresolved_domains: ['new.example.com'] }), { approval: true, by: ['approval-unresolved-domains'] });
  await allowed(input({ unresolved_paths: ['/tmp/x'] }), { approval: true, by: ['approval-unresolved-paths'] });
  await allowed(input({ unresolved_paths: ['/tmp/x'], unresolved_domains: ['a.b'], action_risk_level: 'high' }), {
    approval: true,
    by: ['approval-high-risk', 'approval-unresolved-domains', 'approval-unresolved-paths'],
  });
});

// [fs_path, approval?] — true: the sensitive-path rule applies.
const PATHS = [
  ['/home/u/app/.env', true],
  ['.env', true],
  ['./.env', true],
  ['app/.env', true],
  ['/srv/app/.env.local', true],
  ['/srv/app/.env.production', true],
  ['/srv/secrets/db.txt', true],
  ['secrets/x', true],
  ['/srv/secrets', true],
  ['/srv/secrets/', true],
  ['/srv/a/secrets/b/c', true],
  ['/home/u/.ssh/id_ed25519', true],
  ['/home/u/.ssh', true],
  ['/home/u//.ssh//authorized_keys', true],
  ['/home/u/.aws/credentials', true],
  ['/home/u/.config/gcloud/application_default_credentials.json', true],
  ['/home/u/.config/gcloud', true],
  ['/home/u/.azure/accessTokens.json', true],
  ['/home/u/.kube/config', true],
  ['/home/u/.docker/config.json', true],
  ['/srv/app/public/../.env', true], // ".." resolved before matching
  ['/srv/x/../secrets/../.env', true],
  ['/srv/app/.env.d/override', true], // like's "*" crosses "/": wider than the glob, on purpose
  // near misses
  ['/srv/app/.envrc', false],
  ['/srv/app/foo.env', false],
  ['/srv/app/.environment', false],
  ['/srv/app/env', false],
  ['/srv/app/.ENV', false], // case-sensitive, like Linux
  ['/srv/my-secrets/x', false],
  ['/srv/secretsfile', false],
  ['/srv/secrets.txt', false],
  ['/home/u/.sshd/x', false],
  ['/home/u/ssh/id_rsa', false],
  ['/home/u/.aws/config', false],
  ['/home/u/.aws/credentials.bak', false],
  ['/home/u/gcloud/x', false],
  ['/home/u/.config/gcloudx/y', false],
  ['/home/u/azure/x', false],
  ['/home/u/.kube/cache/x', false],
  ['/srv/app/.env/../main.ts', false], // resolves to /srv/app/main.ts
  ['/srv/app/src/index.ts', false],
];

test('7. approval for sensitive fs paths, with near misses (glob semantics documented in policies/README.md)', async () => {
  for (const [p, approval] of PATHS) {
    const r = await decide(fsInput(p));
    assert.equal(r.allow, true, `${p}: ${JSON.stringify(r)}`);
    assert.equal(r.requires_approval, approval, `${p}: expected approval=${approval}, got ${JSON.stringify(r)}`);
    if (approval) assert.deepEqual(r.determining_policies, ['approval-sensitive-path'], p);
  }
  // only for fs actions
  await allowed(input({ fs_path: '/home/u/.ssh/id_rsa' }), { approval: false });
  // an fs action without a path is not a path match
  await allowed(fsInput(undefined), { approval: false });
});

test('normalizeFsPath: posix-normalised, anchored, no trailing slash', () => {
  assert.equal(normalizeFsPath('.env'), '/.env');
  assert.equal(normalizeFsPath('a/../b//c/'), '/b/c');
  assert.equal(normalizeFsPath('../../etc/passwd'), '/etc/passwd');
  assert.equal(normalizeFsPath('/'), '/');
  assert.equal(normalizeFsPath('///a/./b/'), '/a/b');
});

test('8. plain allow; policy_version = policy hash . data version', async () => {
  const r = await allowed(input(), { approval: false, by: ['allow-default'] });
  assert.match(r.policy_version, /^[0-9a-f]{16}\.[0-9a-f]{16}$/);
  assert.equal(r.policy_version.slice(0, 16), engine.version.slice(0, 16));
  const r2 = await decide(input(), data({ allowlist: { x: { y: true } } }));
  assert.notEqual(r2.policy_version, r.policy_version, 'a data change changes policy_version');
  const r3 = await decide(input(), data());
  assert.equal(r3.policy_version, r.policy_version, 'equal data, equal version');
});

test('9. default deny: no permit matched -> "no matching allow rule"', async () => {
  const only = CedarEngine.load({
    policyText: `@id("allow-low-only") permit (principal, action, resource) when { context.tool.risk_level == "low" };`,
  });
  const r = await only.decide(input({ action_risk_level: 'medium' }), data());
  assert.deepEqual(r, { allow: false, requires_approval: false, deny_reason: DEFAULT_DENY_REASON, determining_policies: [], policy_version: r.policy_version });
  assert.equal((await only.decide(input(), data())).allow, true);
});

test('engines on the same policy share the set Cedar pre-parsed once; each policy keeps its own, and each engine its own decisions', async () => {
  const lowOnly = `@id("allow-low-only") permit (principal, action, resource) when { context.tool.risk_level == "low" };`;
  const denyAll = `@id("deny-all") @reason("nothing") forbid (principal, action, resource);`;
  const a = CedarEngine.load({ policyText: lowOnly });
  const b = CedarEngine.load({ policyText: lowOnly });
  const c = CedarEngine.load({ policyText: denyAll });
  // Internal: the id under which Cedar holds the pre-parsed set.
  assert.equal(a.policySetId, b.policySetId, 'the same text: one set');
  assert.notEqual(a.policySetId, c.policySetId, 'another text: its own set');
  assert.notEqual(engine.policySetId, a.policySetId);
  assert.equal((await a.decide(input(), data())).allow, true);
  assert.equal((await b.decide(input({ action_risk_level: 'medium' }), data())).allow, false);
  const d = await c.decide(input(), data());
  assert.equal(d.allow, false);
  assert.deepEqual(d.determining_policies, ['deny-all']);
  assert.equal(b.counts.evaluated, 1, 'decisions are counted per engine');
  // A text that does not validate is refused every time, never taken from another's.
  for (let i = 0; i < 2; i++) assert.throws(() => CedarEngine.load({ policyText: `@id("x") permit (principal, action, resource) when { context.nope == 1 };` }), CedarPolicyError);
});

test('fail closed: an input that does not match decision-input.schema.json', async () => {
  const bad = [
    (() => { const i = input(); delete i.scopes; return i; })(),
    input({ extra: 1 }),
    input({ action_risk_level: 'extreme' }),
    input({ action_trust_verdict: 'ok' }),
    input({ request_hash: 'xyz' }),
    input({ budgets_before: { calls_remaining: 1.5 } }),
    input({ budgets_before: {} }),
    input({ fs_path: '/a/\u0000/.env' }),
    input({ principal: '' }),
    input({ scopes: 'tools:call' }),
    null,
    'input',
  ];
  faults.length = 0;
  for (const i of bad) {
    const r = await decide(i);
    assert.equal(r.allow, false, JSON.stringify(i));
    assert.equal(r.deny_reason, ENGINE_FAILURE.inputInvalid, JSON.stringify(i));
    assert.deepEqual(r.determining_policies, []);
  }
  assert.equal(faults.length, bad.length);
  assert.ok(faults.every((f) => f.engine === 'cedar' && f.reason === 'policy_input_invalid' && f.detail.length > 0));
  assert.match(faults[2].detail, /action_risk_level/);
  // a sha256:-prefixed request hash is fine
  await allowed(input({ request_hash: `sha256:${'0'.repeat(64)}` }));
});

test('fail closed: policy data that does not match data.schema.json', async () => {
  for (const d of [
    { acl: { '*': { allowed_actions: 'http_fetch', allowed_sinks: [] } }, allowlist: {} },
    { acl: {}, allowlist: { a: { b: 'yes' } } },
    { acl: {} },
    null,
  ]) {
    const r = await decide(input(), d);
    assert.equal(r.deny_reason, ENGINE_FAILURE.dataInvalid, JSON.stringify(d));
  }
});

test('fail closed: an answer that does not match decision-output.schema.json', async () => {
  const long = CedarEngine.load({ policyText: `@id("f") @reason("${'x'.repeat(2000)}") forbid (principal, action, resource);` });
  const r = await long.decide(input(), data());
  assert.equal(r.allow, false);
  assert.equal(r.deny_reason, ENGINE_FAILURE.invalidResponse);
});

/** A forbid whose condition overflows (an evaluation error) where calls_remaining > 0, and a permit. */
const OVERFLOWING = `
  @id("forbid-overflow") @reason("forbid-overflow: x")
  forbid (principal, action, resource) when { context.calls_remaining + 9223372036854775807 > 0 };
  @id("allow") permit (principal, action, resource);`;

test('fail closed: a policy that errors at evaluation (Cedar would skip it) denies', async () => {
  const seen = [];
  const e = CedarEngine.load({
    onFault: (f) => seen.push(f),
    policyText: OVERFLOWING,
  });
  const r = await e.decide(input(), data());
  assert.equal(r.allow, false);
  assert.equal(r.deny_reason, ENGINE_FAILURE.evaluationError);
  assert.match(seen[0].detail, /forbid-overflow/);
  // where it does not overflow, it simply applies
  assert.equal((await e.decide(input({ budgets_before: { calls_remaining: 0 } }), data())).deny_reason, 'forbid-overflow: x');
});

test('loading refuses policies it cannot account for', () => {
  const bad = {
    'no @id': `permit (principal, action, resource);`,
    'duplicate @id': `@id("a") permit (principal, action, resource); @id("a") permit (principal, action, resource);`,
    'forbid without @reason': `@id("f") forbid (principal, action, resource);`,
    'bad @approval': `@id("p") @approval("maybe") permit (principal, action, resource);`,
    'bad @order': `@id("p") @order("first") permit (principal, action, resource);`,
    'unknown attribute (strict validation)': `@id("p") permit (principal, action, resource) when { context.nope == 1 };`,
    'type error (strict validation)': `@id("p") permit (principal, action, resource) when { context.calls_remaining == "1" };`,
    'syntax error': `@id("p") permit (principal, action, resource) when { ;`,
    'empty set': `// nothing`,
  };
  for (const [what, policyText] of Object.entries(bad)) {
    assert.throws(() => CedarEngine.load({ policyText }), CedarPolicyError, what);
  }
  assert.throws(() => CedarEngine.load({ schemaText: 'namespace {' }), CedarPolicyError);
});

test('validateRequests: the same answers with per-request schema validation', async () => {
  const v = CedarEngine.load({ validateRequests: true });
  for (const i of [input(), input({ action_risk_level: 'high' }), fsInput('/a/.env', { budgets_before: { calls_remaining: 2, cost_remaining: 3 } }), input({ scopes: [] })]) {
    assert.deepEqual(await v.decide(i, data()), await engine.decide(i, data()));
  }
});

test('latency sanity: 1000 decisions (not a timed assertion)', async (t) => {
  const d = data();
  const variants = [input(), input({ principal: 'alice', action_id: 'deploy', action_risk_level: 'critical', requested_sinks: [] }), fsInput('/srv/app/.env'), input({ scopes: [] })];
  const times = [];
  for (let i = 0; i < 1000; i++) {
    const t0 = process.hrtime.bigint();
    const r = await engine.decide({ ...variants[i % variants.length], session_id: `s${i}` }, d);
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
    assert.equal(typeof r.allow, 'boolean');
  }
  times.sort((a, b) => a - b);
  t.diagnostic(`cedar decide: p50 ${times[500].toFixed(0)} µs, p99 ${times[990].toFixed(0)} µs, max ${times[999].toFixed(0)} µs`);
});

test('policy data is frozen at its first decision (engines cache per object)', async () => {
  const d = data();
  await decide(input(), d);
  assert.ok(Object.isFrozen(d) && Object.isFrozen(d.acl['*'].allowed_actions));
  assert.throws(() => d.acl['*'].allowed_actions.push('fs_read'), TypeError);
});

// ---- decisions remembered by exact request ----------------------------------------

test('legitimate: the same request under the same policies and data is decided by Cedar once, then remembered', async () => {
  const e = CedarEngine.load();
  const d = data();
  const first = await e.decide(input(), d);
  assert.deepEqual(e.counts, { evaluated: 1, remembered: 0 });
  const again = await e.decide(input(), data()); // an equal data object decides alike
  assert.deepEqual(again, first);
  assert.deepEqual(e.counts, { evaluated: 1, remembered: 1 });
  // What the caller does with an answer does not reach the next one.
  again.determining_policies.push('edited');
  again.allow = false;
  assert.deepEqual(await e.decide(input(), d), first);
});

test('attack: a remembered decision never outlives a change of what it was decided on', async () => {
  const e = CedarEngine.load();
  const carol = input({ principal: 'carol' });
  await allowedBy(e, carol, data());
  // The operator takes http_fetch away from the wildcard: denied at once, not the remembered allow.
  const revoked = data({ acl: { '*': { allowed_actions: ['wiki_read'], allowed_sinks: ['http_read'] } } });
  assert.equal((await e.decide(carol, revoked)).allow, false);
  // The budget runs out: the same call otherwise.
  assert.equal((await e.decide(input({ budgets_before: { calls_remaining: 0 } }), data())).allow, false);
  // Another principal, scope, sink or risk: each decided on its own.
  assert.equal((await e.decide(input({ principal: 'bob' }), data())).allow, false);
  assert.equal((await e.decide(input({ scopes: [] }), data())).allow, false);
  assert.equal((await e.decide(input({ requested_sinks: ['http_write'] }), data())).allow, false);
  assert.equal((await e.decide(input({ action_risk_level: 'high' }), data())).requires_approval, true);
  assert.equal(e.counts.remembered, 0, 'a changed request was answered from an earlier decision');
  // Other policies (a reload is another engine): their own decisions.
  const strict = CedarEngine.load({ policyText: '@id("no") @reason("no: nothing") forbid (principal, action, resource);' });
  assert.equal((await strict.decide(carol, data())).allow, false);
});

test('fail closed: an evaluation that failed is not remembered; each request reports its fault again', async () => {
  const seen = [];
  const e = CedarEngine.load({
    onFault: (f) => seen.push(f),
    policyText: OVERFLOWING,
  });
  for (let i = 0; i < 2; i++) assert.equal((await e.decide(input(), data())).deny_reason, ENGINE_FAILURE.evaluationError);
  assert.equal(seen.length, 2);
  assert.deepEqual(e.counts, { evaluated: 2, remembered: 0 });
});

test('attack: an input that reads otherwise the second time it is serialized gets what a fresh engine decides', async () => {
  const e = CedarEngine.load();
  await allowedBy(e, input(), data());
  // scopes: [] with a toJSON that says tools:call once, then []: the key and Cedar must read the same.
  let reads = 0;
  const scopes = [];
  Object.defineProperty(scopes, 'toJSON', { value: () => (reads++ === 0 ? ['tools:call'] : []) });
  const r = await e.decide(input({ scopes }), data());
  assert.equal(r.allow, false, JSON.stringify(r));
  assert.equal(r.determining_policies[0], 'deny-missing-tools-call-scope');
});

test('attack: another session of the same principal is decided by Cedar, not answered from this one\'s calls', async () => {
  const e = CedarEngine.load();
  await allowedBy(e, input({ session_id: 'sess-a' }), data());
  await allowedBy(e, input({ session_id: 'sess-b' }), data());
  assert.deepEqual(e.counts, { evaluated: 2, remembered: 0 });
});

test('attack: requests too large to keep are decided every time and never fill the memory', async () => {
  const e = CedarEngine.load();
  const long = input({ unresolved_domains: Array.from({ length: 40 }, (_, i) => `${String(i).padStart(3, '0')}.${'x'.repeat(240)}.example`) });
  for (let i = 0; i < 3; i++) assert.equal((await e.decide(long, data())).requires_approval, true);
  assert.deepEqual(e.counts, { evaluated: 3, remembered: 0 });
});

test('attack: data frozen at its top only is frozen throughout once decided on; asking for the request first freezes it too', async () => {
  const e = CedarEngine.load();
  const d = Object.freeze(data());
  await allowedBy(e, input(), d);
  assert.ok(Object.isFrozen(d.acl['*'].allowed_actions), 'an edit below a frozen top would change the data under the version already computed');
  assert.throws(() => d.acl['*'].allowed_actions.pop());
  const d2 = data();
  e.request(input(), d2);
  assert.ok(Object.isFrozen(d2.acl['*'].allowed_actions), 'the ACL was cached for data that can still change');
});

async function allowedBy(e, i, d) {
  const r = await e.decide(i, d);
  assert.equal(r.allow, true, JSON.stringify(r));
  return r;
}
