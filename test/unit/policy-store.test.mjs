// PolicyStore: policy data in SQLite, seeded from policies/data.json, edited
// by grant/revoke, seen by a second connection (another process) on the same
// file, and decided on by the Cedar engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { openDb } from '../../dist/ledger/db.js';
import { PolicyStore, PolicyStoreError, policyDigest, readPolicyData, readPolicyDataFile } from '../../dist/policy/store.js';
import { canonicalHash } from '../../dist/crypto/jcs.js';
import { CedarEngine } from '../../dist/policy/cedar.js';
import { input } from '../fixtures/policy/inputs.mjs';
import { tempDir } from '../fixtures/unit/helpers.mjs';

function twoConnections(t) {
  const file = join(tempDir(t, 'latchgate-policy-'), 'state', 'ledger.db');
  const a = openDb(file);
  const b = openDb(file);
  t.after(() => {
    a.close();
    b.close();
  });
  return { file, a, b };
}

test('seeded once from policies/data.json: deny until granted', (t) => {
  const { a, b } = twoConnections(t);
  const s1 = new PolicyStore(a);
  const s2 = new PolicyStore(b); // second opener does not seed again
  assert.equal(s1.version(), 1);
  assert.equal(s2.version(), 1);
  assert.deepEqual(s1.data(), { acl: { '*': { allowed_actions: [], allowed_sinks: [] } }, allowlist: {} });
  assert.deepEqual(s2.data(), s1.data());
  assert.deepEqual(readPolicyDataFile(), s1.data());
  assert.deepEqual(s1.list(), [{ principal: '*', allowed_actions: [], allowed_sinks: [], inherits_wildcard: false }]);
});

test('grant and revoke return ledger descriptions and bump the version only on change', (t) => {
  const { a } = twoConnections(t);
  const s = new PolicyStore(a);
  const g = s.grant('agent-1', ['http_fetch', 'github_read', 'http_fetch'], ['http_read']);
  assert.deepEqual(g, {
    event_type: 'policy_grant',
    details: {
      principal: 'agent-1',
      actions: ['github_read', 'http_fetch'],
      sinks: ['http_read'],
      added_actions: ['github_read', 'http_fetch'],
      added_sinks: ['http_read'],
      created_entry: true,
      changed: true,
      store_version_before: 1,
      store_version_after: 2,
      policy_digest: canonicalHash(s.data()),
    },
  });
  assert.equal(policyDigest(s.data()), canonicalHash(readPolicyData(a)), 'the digest is over the data as the tables hold it');
  const again = s.grant('agent-1', ['http_fetch']);
  assert.equal(again.details.changed, false);
  assert.deepEqual(again.details.added_actions, []);
  assert.equal(s.version(), 2);

  const inh = s.grant('agent-1', [], [], { inheritsWildcard: true });
  assert.equal(inh.details.changed, true);
  assert.equal(inh.details.inherits_wildcard, true);
  assert.equal(s.data().acl['agent-1'].inherits_wildcard, true);

  const r = s.revoke('agent-1', ['http_fetch', 'never_granted'], { sinks: ['http_read'] });
  assert.equal(r.event_type, 'policy_revoke');
  assert.deepEqual(r.details.removed_actions, ['http_fetch']);
  assert.deepEqual(r.details.removed_sinks, ['http_read']);
  assert.equal(r.details.removed_entry, false);
  assert.deepEqual(s.data().acl['agent-1'], { allowed_actions: ['github_read'], allowed_sinks: [], inherits_wildcard: true });

  // an emptied entry stays (it blocks the wildcard) until removed
  s.revoke('agent-1', ['github_read']);
  assert.deepEqual(s.show('agent-1').has_entry, true);
  const rm = s.revoke('agent-1', [], { removeEntry: true });
  assert.equal(rm.details.removed_entry, true);
  assert.equal(s.show('agent-1').has_entry, false);
  assert.equal(s.revoke('agent-1', ['x']).details.changed, false);
});

test('show: the entry, the wildcard applied, the allowlist', (t) => {
  const { a } = twoConnections(t);
  const s = new PolicyStore(a);
  s.grant('*', ['http_fetch'], ['http_read']);
  s.grant('alice', ['fs_write'], ['fs_write'], { inheritsWildcard: true });
  s.grant('bob', ['fs_read']);
  const add = s.allowlistAdd('fs_write', 'alice');
  assert.deepEqual(add.event_type, 'policy_allowlist_add');
  assert.equal(add.details.changed, true);
  assert.deepEqual(s.show('alice'), {
    principal: 'alice', has_entry: true, allowed_actions: ['fs_write'], allowed_sinks: ['fs_write'], inherits_wildcard: true,
    effective_actions: ['fs_write', 'http_fetch'], effective_sinks: ['fs_write', 'http_read'], allowlisted_actions: ['fs_write'],
  });
  assert.deepEqual(s.show('bob').effective_actions, ['fs_read']);
  assert.deepEqual(s.show('nobody').effective_actions, ['http_fetch']);
  assert.equal(s.show('nobody').has_entry, false);
  assert.deepEqual(s.list().map((e) => e.principal), ['*', 'alice', 'bob']);
  const all = s.show();
  assert.equal(all.store_version, s.version());
  assert.deepEqual(all.data.allowlist, { fs_write: { alice: true } });
  assert.equal(s.allowlistRemove('fs_write', 'alice').details.changed, true);
  assert.deepEqual(s.data().allowlist, {});
});

test('two connections on one file see each other\'s changes (cache invalidated by the counter)', (t) => {
  const { a, b } = twoConnections(t);
  const s1 = new PolicyStore(a);
  const s2 = new PolicyStore(b);
  const before = s2.data();
  assert.equal(s2.data(), before, 'unchanged data is the same object');
  assert.ok(Object.isFrozen(before) && Object.isFrozen(before.acl['*'].allowed_actions));

  s1.grant('agent-1', ['http_fetch'], ['http_read']);
  const after = s2.data();
  assert.notEqual(after, before);
  assert.deepEqual(after.acl['agent-1'], { allowed_actions: ['http_fetch'], allowed_sinks: ['http_read'] });

  s2.revoke('agent-1', ['http_fetch']);
  assert.deepEqual(s1.data().acl['agent-1'].allowed_actions, []);
  assert.equal(s1.version(), s2.version());
});

test('names are checked; a custom seed is used once', (t) => {
  const { a, file } = twoConnections(t);
  assert.throws(() => new PolicyStore(a, { seed: { acl: { x: { allowed_actions: 'no' } }, allowlist: {} } }), PolicyStoreError);
  const s = new PolicyStore(a, { seed: { acl: { ci: { allowed_actions: ['build'], allowed_sinks: [] } }, allowlist: { build: { ci: true } } } });
  assert.deepEqual(s.data(), { acl: { ci: { allowed_actions: ['build'], allowed_sinks: [] } }, allowlist: { build: { ci: true } } });
  assert.deepEqual(new PolicyStore(a).data(), s.data(), 'not re-seeded from data.json');
  for (const bad of ['', 'a\nb', 'x'.repeat(300), 3]) assert.throws(() => s.grant(bad, ['a']), PolicyStoreError);
  assert.throws(() => s.grant('p', ['ok', '']), PolicyStoreError);
  assert.throws(() => s.grant('*', [], [], { inheritsWildcard: true }), PolicyStoreError);
  // a principal named like an Object.prototype key stays plain data
  s.grant('__proto__', ['build']);
  assert.deepEqual(Object.keys(s.data().acl).sort(), ['__proto__', 'ci']);
  assert.deepEqual(s.data().acl['__proto__'].allowed_actions, ['build']);

  const bad = join(file, '..', 'bad-data.json');
  writeFileSync(bad, '{"acl": {}, "allowlist": {}, "extra": 1}');
  assert.throws(() => readPolicyDataFile(bad), /does not match/);
});

test('the Cedar engine decides on the store\'s data; a grant in one process opens the gate in the other', async (t) => {
  const { a, b } = twoConnections(t);
  const cli = new PolicyStore(a);
  const gate = new PolicyStore(b);
  const engine = CedarEngine.load();
  const i = input({ principal: 'agent-7' });
  const d0 = await engine.decide(i, gate.data());
  assert.equal(d0.allow, false);
  assert.ok(d0.deny_reason.startsWith('deny-not-in-acl'));

  cli.grant('agent-7', ['http_fetch'], ['http_read']);
  const d1 = await engine.decide(i, gate.data());
  assert.equal(d1.allow, true);
  assert.notEqual(d1.policy_version, d0.policy_version);

  cli.revoke('agent-7', ['http_fetch']);
  assert.equal((await engine.decide(i, gate.data())).allow, false);
});

test('a change whose recorder throws is rolled back, and the next change does not see its data', (t) => {
  const { a } = twoConnections(t);
  const s = new PolicyStore(a);
  const seen = [];
  assert.throws(() => s.grant('mallory', ['http_fetch'], [], {}, (c) => {
    seen.push(c.details.policy_digest);
    throw new Error('the ledger refused the event');
  }), /ledger refused/);
  assert.equal(s.version(), 1);
  assert.equal(s.data().acl.mallory, undefined, 'the grant did not stay');
  // The next change takes the same version number: it must not be served the rolled-back snapshot.
  const g = s.grant('alice', ['github_read'], [], {}, (c) => seen.push(c.details.policy_digest));
  assert.equal(g.details.store_version_after, 2);
  assert.equal(s.data().acl.mallory, undefined);
  assert.deepEqual(s.data().acl.alice.allowed_actions, ['github_read']);
  assert.equal(seen[1], canonicalHash(readPolicyData(a)), 'the recorder got the digest of the data as committed');
  assert.notEqual(seen[0], seen[1]);
});
