// What a decision event keeps of its input (src/policy/recorded-input.ts):
// seeded random inputs, recorded as the pipeline records them and stored as
// the ledger stores events (RFC 8785 canonical JSON), come back exactly;
// what the event already holds is not stored twice, nor are empty lists; an
// event without the input, or without a field the input needs, says which.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalize } from '../../dist/crypto/jcs.js';
import { inputOfEvent, recordedInput } from '../../dist/policy/recorded-input.js';
import { validateInput } from '../../dist/policy/engine.js';
import { input as baseInput } from '../fixtures/policy/inputs.mjs';
import { prng } from '../fixtures/unit/helpers.mjs';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 0x1a_9e_c0;
const CASES = 1000;
const WORDS = ['tools:call', 'http_read', 'fs_write', 'é', '😀', 'a b', '{{host}}', 'x'.repeat(200), '"', '\\', '\u2028'];

/** The event the pipeline writes for a decision on `input` (src/gate/stages/validate-request.ts, authenticate.ts, decide-policy.ts). */
function eventFor(input) {
  return {
    event_type: 'action_call',
    subject: { principal: input.principal, session_id: input.session_id, lease_jti: 'j', identity_method: 'unix' },
    action: { action_id: input.action_id, action_version: input.action_version, action_digest: 'sha256:00', action_trust_verdict: input.action_trust_verdict, risk_level: input.action_risk_level },
    request: { request_hash: input.request_hash },
    policy: { policy_version: 'v', decision: 'allow', determining_policies: [], input: recordedInput(input) },
  };
}

const stored = (e) => JSON.parse(canonicalize(e));

function randomInput(rnd) {
  const list = () => (rnd.chance(0.5) ? [] : Array.from({ length: 1 + rnd.below(3) }, () => rnd.pick(WORDS)));
  const numbers = [0, 1, -1, 7, 2 ** 53 - 1, -(2 ** 53 - 1), 0.5, 1e-7, 123.456, 1e15 + 0.25];
  const i = baseInput({
    principal: rnd.pick(['carol', 'ü', '😀 agent']),
    scopes: list(),
    required_scopes: list(),
    action_risk_level: rnd.pick(['low', 'medium', 'high', 'critical']),
    action_trust_verdict: rnd.pick(['digest_ok', 'digest_mismatch', 'untrusted']),
    action_category: rnd.pick(['http', 'fs', 'other']),
    requested_sinks: list(),
    requested_secrets: list(),
    egress_profile: rnd.pick(['none', 'proxy_allowlist']),
    budgets_before: rnd.chance(0.5) ? { calls_remaining: Math.trunc(rnd.pick(numbers)) } : { calls_remaining: Math.trunc(rnd.pick(numbers)), cost_remaining: rnd.pick(numbers) },
    unresolved_domains: list(),
    unresolved_paths: list(),
  });
  if (rnd.chance(0.4)) i.fs_path = rnd.pick(['/home/u/.env', 'a/../b', '😀/x']);
  return i;
}

test(`seeded random inputs (seed ${SEED}) come back exactly from the event as the ledger stores it`, () => {
  const rnd = prng(SEED);
  for (let n = 0; n < CASES; n++) {
    const input = randomInput(rnd);
    assert.equal(validateInput(input).ok, true, validateInput(input).error);
    const e = stored(eventFor(input));
    assert.deepEqual(inputOfEvent(e), { input }, `seed ${SEED}, case ${n}`);
    // Nothing the event holds elsewhere, and no empty list, is in policy.input.
    const rec = e.policy.input;
    for (const k of ['principal', 'session_id', 'action_id', 'action_version', 'action_risk_level', 'action_trust_verdict', 'request_hash']) assert.equal(rec[k], undefined, k);
    for (const [k, v] of Object.entries(rec)) if (Array.isArray(v)) assert.ok(v.length > 0, `${k} is empty`);
  }
});

test('the common call records little: action_category, egress_profile, budgets_before and the lists that are not empty', () => {
  const rec = recordedInput(baseInput());
  assert.deepEqual(rec, { action_category: 'http', egress_profile: 'proxy_allowlist', budgets_before: { calls_remaining: 10 }, scopes: ['tools:call'], requested_sinks: ['http_read'] });
  assert.ok(canonicalize(rec).length < 160, canonicalize(rec));
});

test('an event without the input, or without a field the input needs, says which', () => {
  const good = stored(eventFor(baseInput()));
  const without = (mutate) => {
    const e = structuredClone(good);
    mutate(e);
    return inputOfEvent(e);
  };
  assert.match(without((e) => delete e.policy.input).problem, /^policy\.input is absent \(the event was written before decisions recorded their input\)$/);
  assert.match(without((e) => delete e.policy).problem, /policy\.input is absent/);
  assert.match(without((e) => (e.policy.input = ['x'])).problem, /policy\.input is not an object/);
  assert.match(without((e) => delete e.subject.session_id).problem, /subject\.session_id is absent \(policy input member session_id\)/);
  assert.match(without((e) => delete e.action.risk_level).problem, /action\.risk_level is absent/);
  assert.match(without((e) => delete e.request).problem, /request\.request_hash is absent/);
});

test('a recorded "__proto__" member stays a member of the input (the schema then refuses it), never its prototype', () => {
  const e = stored(eventFor(baseInput()));
  e.policy.input = JSON.parse(`{"__proto__": {"scopes": ["admin"]}, ${JSON.stringify(e.policy.input).slice(1)}`);
  const { input } = inputOfEvent(e);
  assert.equal(Object.getPrototypeOf(input), Object.prototype);
  assert.ok(Object.prototype.hasOwnProperty.call(input, '__proto__'));
  assert.equal(validateInput(input).ok, false);
});
