// The policy data rebuilt from the chain (src/policy/data-history.ts): a
// real PolicyStore makes seeded random grants, revokes and allowlist
// changes (names whose UTF-8 and UTF-16 orders differ among them), and
// after each change the data rebuilt from the change events alone is
// exactly the store's. A change event edited to say something else, a
// complete record that is missing or does not match its digest, leave the
// data unknown instead of wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../../dist/ledger/db.js';
import { PolicyStore, PolicyStoreError, policyDigest } from '../../dist/policy/store.js';
import { dataRecord, dataVersionOf, KEPT_STATES, PolicyDataHistory, RECORDED_DATA_MAX_BYTES } from '../../dist/policy/data-history.js';
import { prng } from '../fixtures/unit/helpers.mjs';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 0x5eed_da7a;
const STEPS = 400;
// '\uFF01' sorts after '😀' by UTF-16 code units and before it by UTF-8 bytes (SQLite's order).
const PRINCIPALS = ['*', 'alice', 'bob', 'ü', '😀', '\uFF01', '__proto__'];
const NAMES = ['a', 'b', 'http_fetch', 'é', '😀x', '\uFF01y', 'constructor'];

const version = (digest) => digest.slice('sha256:'.length, 'sha256:'.length + 16);
const store = () => {
  const db = openDb(':memory:');
  return { db, s: new PolicyStore(db) };
};
const baseline = (s) => ({ event_type: 'state_baseline', trace_id: 'base', details: { policy_digest: s.digest(), ...dataRecord(s.data()) } });
const eventOf = (change, n) => ({ event_type: change.event_type, trace_id: `t${n}`, details: change.details });

function randomChange(rnd, s) {
  const some = (xs) => xs.filter(() => rnd.chance(0.35));
  const p = rnd.pick(PRINCIPALS);
  switch (rnd.below(5)) {
    case 0:
    case 1:
      return s.grant(p, some(NAMES), some(NAMES), rnd.chance(0.3) ? { inheritsWildcard: rnd.chance(0.5) } : {});
    case 2:
      return s.revoke(p, some(NAMES), { sinks: some(NAMES), removeEntry: rnd.chance(0.2) });
    case 3:
      return s.allowlistAdd(rnd.pick(NAMES), p);
    default:
      return s.allowlistRemove(rnd.pick(NAMES), p);
  }
}

test(`seeded random changes of a real store (seed ${SEED}): after each, the data rebuilt from the events is exactly the store's`, () => {
  const rnd = prng(SEED);
  const { db, s } = store();
  const h = new PolicyDataHistory();
  h.apply(baseline(s));
  const states = new Map([[version(s.digest()), structuredClone(s.data())]]);
  let applied = 0;
  for (let i = 0; i < STEPS; i++) {
    let change;
    try {
      change = randomChange(rnd, s);
    } catch (e) {
      if (e instanceof PolicyStoreError) continue; // "*" cannot inherit from itself
      throw e;
    }
    h.apply(eventOf(change, i));
    applied++;
    const v = version(change.details.policy_digest);
    assert.equal(change.details.policy_digest, policyDigest(s.data()));
    assert.deepEqual(h.lookup(v), { data: s.data() }, `seed ${SEED}, step ${i}: ${JSON.stringify(change.details)}`);
    states.set(v, structuredClone(s.data()));
  }
  assert.ok(applied > STEPS / 2, `${applied} changes applied`);
  assert.ok(states.size > 50, `${states.size} distinct states`);
  // Every state seen is still found, by its version, whatever came after.
  for (const [v, data] of states) assert.deepEqual(h.lookup(v), { data });
  db.close();
});

test('a change event edited to say something else is not believed: the data is unknown until a known state is named again', () => {
  const { db, s } = store();
  const h = new PolicyDataHistory();
  h.apply(baseline(s));
  const start = s.digest();
  const grant = s.grant('alice', ['a'], ['x']);
  const edited = structuredClone(eventOf(grant, 1));
  edited.details.added_actions = ['a', 'b']; // claims more than was granted; the digest is the real one
  h.apply(edited);
  const after = version(grant.details.policy_digest);
  const lost = h.lookup(after);
  assert.match(lost.problem, /the data rebuilt has digest sha256:[0-9a-f]{64}, the event recorded sha256:/);
  // The next change cannot be applied to unknown data...
  const grant2 = s.grant('alice', ['c'], []);
  h.apply(eventOf(grant2, 2));
  assert.match(h.lookup(version(grant2.details.policy_digest)).problem, /the data before it is unknown/);
  // ...until an event names a state whose digest is known: revoking both returns to the start.
  const revoke = s.revoke('alice', ['a', 'c'], { sinks: ['x'], removeEntry: true });
  assert.equal(revoke.details.policy_digest, start);
  h.apply(eventOf(revoke, 3));
  const g3 = s.grant('bob', ['z'], []);
  h.apply(eventOf(g3, 4));
  assert.deepEqual(h.lookup(version(g3.details.policy_digest)), { data: s.data() });
  db.close();
});

test('complete records: a baseline without the data (an older ledger) or with data_omitted, or data that does not match its digest, starts nothing', () => {
  const { db, s } = store();
  const cases = [
    [{ policy_digest: s.digest() }, /does not carry the data \(written before the chain recorded it\)/],
    [{ policy_digest: s.digest(), data_omitted: 'the policy data is 999999 bytes, over the 131072 an event carries' }, /left the data out: the policy data is 999999 bytes/],
    [{ policy_digest: s.digest(), data: { acl: { eve: { allowed_actions: ['all'], allowed_sinks: [] } }, allowlist: {} } }, /the data rebuilt has digest .*, the event recorded/],
    [{ policy_digest: s.digest(), data: { acl: 'nope', allowlist: {} } }, /does not match policies\/data\.schema\.json/],
    [{ data: s.data() }, /records no policy_digest/],
  ];
  for (const [details, want] of cases) {
    const h = new PolicyDataHistory();
    h.apply({ event_type: 'state_baseline', trace_id: 'b', details });
    const r = h.lookup(version(s.digest()));
    assert.match(r.problem ?? '', want, JSON.stringify(details));
  }
  // policy_accepted carries the data too, and starts the history again.
  const h = new PolicyDataHistory();
  h.apply({ event_type: 'state_baseline', trace_id: 'b', details: { policy_digest: s.digest() } });
  s.grant('carol', ['q'], []);
  h.apply({ event_type: 'policy_accepted', trace_id: 'acc', details: { policy_digest: s.digest(), recorded_digest: null, store_version: 2, ...dataRecord(s.data()) } });
  assert.deepEqual(h.lookup(version(s.digest())), { data: s.data() });
  db.close();
});

test('dataRecord carries the data up to RECORDED_DATA_MAX_BYTES and says why beyond; dataVersionOf reads policy_version', () => {
  const small = { acl: { a: { allowed_actions: ['x'], allowed_sinks: [] } }, allowlist: {} };
  assert.deepEqual(dataRecord(small), { data: small });
  const acl = {};
  for (let i = 0; i * 60 < RECORDED_DATA_MAX_BYTES; i++) acl[`principal-${i}`] = { allowed_actions: [`action-${i}`], allowed_sinks: [] };
  const big = dataRecord({ acl, allowlist: {} });
  assert.equal(big.data, undefined);
  assert.match(big.data_omitted, new RegExp(`^the policy data is \\d+ bytes, over the ${RECORDED_DATA_MAX_BYTES} an event carries$`));
  assert.equal(dataVersionOf('61e5b8497ff97e6f.086467e3399ad17f'), '086467e3399ad17f');
  for (const v of ['61e5b8497ff97e6f.invalid', 'opa-server:v1', '', undefined, 42, '61e5b8497ff97e6f.086467e3399ad17f0']) assert.equal(dataVersionOf(v), null, String(v));
});

test(`at most ${KEPT_STATES} states are kept, the most recently made or used: an older one is reported, not guessed`, () => {
  const h = new PolicyDataHistory();
  const dataOf = (i) => ({ acl: { [`p${i}`]: { allowed_actions: ['a'], allowed_sinks: [] } }, allowlist: {} });
  const versions = [];
  for (let i = 0; i <= KEPT_STATES + 1; i++) {
    const data = dataOf(i);
    h.apply({ event_type: 'policy_accepted', trace_id: `a${i}`, details: { policy_digest: policyDigest(data), recorded_digest: null, store_version: i, data } });
    versions.push(version(policyDigest(data)));
    if (i === 5) assert.deepEqual(h.lookup(versions[1]), { data: dataOf(1) }); // used: kept longer
  }
  assert.match(h.lookup(versions[0]).problem, new RegExp(`not rebuilt from the chain before this event \\(or is older than the ${KEPT_STATES} states kept\\)`));
  assert.deepEqual(h.lookup(versions[1]), { data: dataOf(1) });
  assert.match(h.lookup(versions[2]).problem, /older than/);
  assert.deepEqual(h.lookup(versions.at(-1)), { data: dataOf(KEPT_STATES + 1) });
});
