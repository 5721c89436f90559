// Differential test: the Cedar policy against a plain reading of upstream's
// Rego else-chain (first match wins), on random inputs and random policy
// data. A failure prints its seed; rerun with POLICY_SEED=<seed>.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { posix } from 'node:path';
import { CedarEngine } from '../../dist/policy/cedar.js';
import { prng } from '../fixtures/unit/helpers.mjs';

const engine = CedarEngine.load();

// Sensitive paths as documented in policies/README.md (the `like` reading of
// each glob: "*" crosses "/", directories named by "/**" match themselves).
const SENSITIVE = [
  /\/\.env$/, /\/\.env\./, /\/secrets$/, /\/secrets\//, /\/\.ssh$/, /\/\.ssh\//, /\/\.aws\/credentials$/,
  /\/\.config\/gcloud$/, /\/\.config\/gcloud\//, /\/\.azure$/, /\/\.azure\//, /\/\.kube\/config$/, /\/\.docker\/config\.json$/,
];

function reference(i, d) {
  const deny = (id) => ({ allow: false, requires_approval: false, rule: id });
  if (i.action_trust_verdict !== 'digest_ok') return deny('deny-untrusted');
  const own = Object.hasOwn(d.acl, i.principal) ? d.acl[i.principal] : undefined;
  const wild = d.acl['*'];
  const useWild = !own || own.inherits_wildcard === true;
  const actions = new Set([...(own?.allowed_actions ?? []), ...(useWild && wild ? wild.allowed_actions : [])]);
  if (!actions.has(i.action_id)) return deny('deny-not-in-acl');
  if (!i.scopes.includes('tools:call')) return deny('deny-missing-tools-call-scope');
  if (!i.required_scopes.every((s) => i.scopes.includes(s))) return deny('deny-missing-required-scope');
  if (i.budgets_before.calls_remaining <= 0) return deny('deny-budget-calls-exhausted');
  if (i.budgets_before.cost_remaining !== undefined && i.budgets_before.cost_remaining < 0) return deny('deny-budget-cost-exhausted');
  const sinks = new Set([...(own?.allowed_sinks ?? []), ...(useWild && wild ? wild.allowed_sinks : [])]);
  if (!i.requested_sinks.every((s) => sinks.has(s))) return deny('deny-sink-not-allowed');
  if (d.allowlist[i.action_id]?.[i.principal] === true) return { allow: true, requires_approval: false, rule: 'allow-allowlisted' };
  let p = i.fs_path;
  if (p !== undefined) {
    p = posix.normalize(p.startsWith('/') ? p : `/${p}`);
    while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  }
  const approval =
    i.action_risk_level === 'high' || i.action_risk_level === 'critical' ||
    (i.action_category === 'fs' && p !== undefined && SENSITIVE.some((re) => re.test(p))) ||
    i.unresolved_domains.length > 0 || i.unresolved_paths.length > 0;
  return { allow: true, requires_approval: approval, rule: null };
}

const PATHS = [
  undefined, '.env', '/a/.env', '/a/.envrc', '/a/.env.local', 'x/secrets/y', '/a/my-secrets/b', '/h/.ssh/id', '/h/.sshx',
  '/h/.aws/credentials', '/h/.aws/config', '/h/.config/gcloud/c.json', '/h/.azure', '/h/.kube/config', '/h/.docker/config.json',
  '/a/b/../.env', '/a/.env/../b', '/srv/app/main.ts', 'secrets', '/a//.ssh/', '/a/.env.d/x',
];

function subset(r, xs, p = 0.5) {
  return xs.filter(() => r.chance(p));
}

function randomCase(r) {
  const principals = ['alice', 'bob', 'carol', 'dave'];
  const actions = ['http_fetch', 'wiki_read', 'fs_read', 'fs_write', 'deploy', 'other'];
  const sinks = ['http_read', 'http_write', 'fs_write', 'http_delete'];
  const acl = {};
  if (r.chance(0.85)) acl['*'] = { allowed_actions: subset(r, actions, 0.6), allowed_sinks: subset(r, sinks, 0.7) };
  for (const p of principals) {
    if (r.chance(0.6)) {
      acl[p] = { allowed_actions: subset(r, actions, 0.6), allowed_sinks: subset(r, sinks, 0.7) };
      if (r.chance(0.5)) acl[p].inherits_wildcard = r.chance(0.7);
    }
  }
  const allowlist = {};
  for (const a of actions) if (r.chance(0.3)) allowlist[a] = Object.fromEntries(subset(r, principals).map((p) => [p, true]));
  const i = {
    principal: r.pick(principals),
    session_id: 's',
    scopes: [...(r.chance(0.9) ? ['tools:call'] : []), ...subset(r, ['repo:read', 'repo:write'], 0.7)],
    required_scopes: subset(r, ['repo:read', 'repo:write']).filter(() => r.chance(0.5)),
    action_id: r.pick(actions),
    action_version: '1',
    action_risk_level: r.pick(['low', 'low', 'medium', 'high', 'critical']),
    action_trust_verdict: r.chance(0.85) ? 'digest_ok' : r.pick(['digest_mismatch', 'untrusted']),
    action_category: r.pick(['http', 'fs', 'fs']),
    request_hash: 'c'.repeat(64),
    requested_sinks: subset(r, sinks, 0.25),
    requested_secrets: [],
    egress_profile: 'none',
    budgets_before: { calls_remaining: r.pick([-1, 0, 1, 7, 9, 20]) },
    unresolved_domains: r.chance(0.15) ? ['new.example'] : [],
    unresolved_paths: r.chance(0.15) ? ['/x'] : [],
  };
  if (r.chance(0.3)) i.budgets_before.cost_remaining = r.pick([-2, -0.5, 0, 0.5, 3]);
  const p = r.pick(PATHS);
  if (p !== undefined) i.fs_path = p;
  return { i, d: { acl, allowlist } };
}

test('Cedar policy == upstream else-chain on 1500 random cases', async (t) => {
  const seed = Number(process.env.POLICY_SEED ?? Date.now() % 1e9);
  t.diagnostic(`seed ${seed}`);
  const r = prng(seed);
  const seen = new Map();
  for (let n = 0; n < 1500; n++) {
    const { i, d } = randomCase(r);
    const want = reference(i, d);
    const got = await engine.decide(i, d);
    const ctx = `seed ${seed} case ${n}: ${JSON.stringify({ i, d })}\nwant ${JSON.stringify(want)}\ngot ${JSON.stringify(got)}`;
    assert.equal(got.allow, want.allow, ctx);
    assert.equal(got.requires_approval, want.requires_approval, ctx);
    if (!want.allow) assert.equal(got.determining_policies[0], want.rule, ctx);
    if (want.rule === 'allow-allowlisted') assert.deepEqual(got.determining_policies, ['allow-allowlisted'], ctx);
    const k = want.rule ?? (want.requires_approval ? 'approval' : 'allow');
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  t.diagnostic(JSON.stringify(Object.fromEntries(seen)));
  // every outcome of the chain was exercised
  for (const k of ['deny-untrusted', 'deny-not-in-acl', 'deny-missing-tools-call-scope', 'deny-missing-required-scope',
    'deny-budget-calls-exhausted', 'allow-allowlisted', 'approval', 'allow']) {
    assert.ok((seen.get(k) ?? 0) > 0, `no case reached ${k} (seed ${seed})`);
  }
});
