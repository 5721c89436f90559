// An agent's request, or a provider's answer, that makes an operator's schema
// costly to check (a pattern that backtracks, uniqueItems over many objects,
// $ref branches that double at each level, thousands of anyOf branches, an
// error list of millions) cannot hold the gate: the check runs in a worker,
// other requests are answered meanwhile, and past [gate] schema_check_ms the
// document is refused, the answer with a receipt. Next to each attack, the
// same action's legitimate call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Agent, FIXTURE_MANIFESTS, grantAll } from '../helpers/gate.mjs';
import { gateFor, tempDir } from '../helpers/gate-faults.mjs';

const DEADLINE_MS = 1500;

const manifest = (id, io) => `# ${id}: an operator's action whose schema is costly on some documents.
# Risk rationale: test fixture.
action_id: "${id}"
version: "1.0.0"
provider_module_digest: "builtin:test_success"
io: ${JSON.stringify({ max_request_bytes: 1048576, ...io })}
risk_level: "low"
verifier_kind: none
declared_side_effects: ["http_read"]
`;

/** Each nesting level applies n twice to the next: 2^depth checks of a request `depth` levels deep. */
const DOUBLING = { type: 'object', $defs: { n: { type: 'object', properties: { c: { allOf: [{ $ref: '#/$defs/n' }, { $ref: '#/$defs/n' }] }, v: { type: 'integer' } } } }, $ref: '#/$defs/n' };
const FIELDS = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7'];
const nested = (depth, leaf = {}) => (depth === 0 ? leaf : { c: nested(depth - 1, leaf) });

async function costlyGate(t) {
  const dir = tempDir(t, 'latchgate-costly-manifests-');
  writeFileSync(path.join(dir, 't_pattern.yaml'), manifest('t_pattern', { request_schema: { type: 'object', properties: { s: { type: 'string', pattern: '^(a|a?)+$' } } } }));
  writeFileSync(path.join(dir, 't_doubling.yaml'), manifest('t_doubling', { request_schema: DOUBLING }));
  // test_success echoes the request: the agent chooses the answer the response schema checks.
  const items = { type: 'array', items: { type: 'object' } };
  writeFileSync(path.join(dir, 't_unique.yaml'), manifest('t_unique', {
    request_schema: { type: 'object', properties: { items } },
    response_schema: { type: 'object', properties: { echo: { type: 'object', properties: { items: { ...items, uniqueItems: true } } } } },
  }));
  // No keyword the cost class names: ten ordinary record types. Each {} in `records` breaks every
  // required field of every branch, 81 errors from 3 bytes.
  const branch = (i) => ({ type: 'object', required: ['kind', ...FIELDS], properties: { kind: { const: `t${i}` }, ...Object.fromEntries(FIELDS.map((f) => [f, { type: 'string' }])) } });
  writeFileSync(path.join(dir, 't_records.yaml'), manifest('t_records', { request_schema: { type: 'object', required: ['records'], properties: { records: { type: 'array', items: { anyOf: Array.from({ length: 10 }, (_, i) => branch(i)) } } } } }));
  const g = await gateFor(t, { config: { manifestDirs: [FIXTURE_MANIFESTS, dir], schemaCheckMs: DEADLINE_MS } });
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease({ budgets: { max_calls: 100 } });
  return { g, a };
}

/**
 * Sends the attack and, once its check has begun (`check`: the registry's
 * validateRequest or validateResponse), an ordinary call; resolves both
 * answers and the order in which the ordinary call was answered, the check
 * ended and the attack was answered. This process is the gate's: a check on
 * the main thread would end before the ordinary call was even sent.
 */
async function attackBeside(t, g, a, check, actionId, body) {
  const order = [];
  let begun;
  const checking = new Promise((r) => (begun = r));
  const registry = g.ctx.registry;
  const original = registry[check];
  t.mock.method(registry, check, function (...args) {
    if (args[0] !== actionId) return original.apply(this, args);
    begun();
    const verdict = original.apply(this, args);
    void Promise.resolve(verdict).then(() => order.push('checked'));
    return verdict;
  });
  const attack = a.execute(actionId, body).then((r) => (order.push('attack'), r));
  await checking;
  const ordinary = await a.execute('t_ok', { n: 1 }).then((r) => (order.push('ordinary'), r));
  return { attack: await attack, ordinary, order };
}

test('a request whose pattern backtracks for seconds is refused at the deadline, while the gate answers others; the same pattern judges ordinary requests', async (t) => {
  const { g, a } = await costlyGate(t);
  const ok = await a.execute('t_pattern', { s: 'aaaa' });
  assert.equal(ok.status, 200, ok.text);
  const bad = await a.execute('t_pattern', { s: 'ab' });
  assert.equal(bad.status, 422, bad.text);
  assert.deepEqual(bad.body.errors, [{ pointer: '/s', message: 'must match pattern "^(a|a?)+$"' }]);

  // On the main thread, minutes (each further a about doubles the steps).
  const { attack, ordinary, order } = await attackBeside(t, g, a, 'validateRequest', 't_pattern', { s: `${'a'.repeat(30)}b` });
  assert.equal(ordinary.status, 200, ordinary.text);
  assert.deepEqual(order, ['ordinary', 'checked', 'attack'], 'the gate answered nothing while it checked the pattern');
  assert.equal(attack.status, 422, attack.text.slice(0, 500));
  assert.equal(attack.body.error, 'schema_violation');
  assert.match(attack.body.message, new RegExp(`not checked: the check took longer than ${DEADLINE_MS} ms`));
  assert.equal(g.transport.calls.length, 0);
  const again = await a.execute('t_pattern', { s: 'a' });
  assert.equal(again.status, 200, `a new checker after the ended one: ${again.text}`);
});

test('a request whose $ref branches double at each level is refused at the deadline, while the gate answers others; a shallow one is judged', async (t) => {
  const { g, a } = await costlyGate(t);
  const ok = await a.execute('t_doubling', nested(3, { v: 1 }));
  assert.equal(ok.status, 200, ok.text);
  const bad = await a.execute('t_doubling', nested(3, { v: 'x' }));
  assert.equal(bad.status, 422, bad.text);
  assert.match(bad.body.message, /\/c\/c\/c\/v: must be integer/);

  const { attack, ordinary, order } = await attackBeside(t, g, a, 'validateRequest', 't_doubling', nested(30, { v: 1 }));
  assert.equal(ordinary.status, 200, ordinary.text);
  assert.deepEqual(order, ['ordinary', 'checked', 'attack']);
  assert.equal(attack.status, 422, attack.text.slice(0, 500));
  assert.match(attack.body.message, /not checked: the check took longer than/);
});

test('a provider answer whose uniqueItems check is quadratic is refused at the deadline with a receipt, while the gate answers others; a short one is judged', async (t) => {
  const { g, a } = await costlyGate(t);
  const ok = await a.execute('t_unique', { items: [{ a: 1 }, { a: 2 }] });
  assert.equal(ok.status, 200, ok.text);
  const dup = await a.execute('t_unique', { items: [{ a: 1 }, { a: 1 }] });
  assert.equal(dup.status, 502, dup.text);
  assert.equal(dup.body.error, 'response_schema_violation');
  assert.match(dup.body.message, /must NOT have duplicate items/);

  // Distinct lists that differ only at their start (compared from the end): every pair compared element by element.
  const items = Array.from({ length: 13000 }, (_, i) => ({ l: [i, ...new Array(30).fill(0)] }));
  const { attack, ordinary, order } = await attackBeside(t, g, a, 'validateResponse', 't_unique', { items });
  assert.equal(ordinary.status, 200, ordinary.text);
  assert.deepEqual(order, ['ordinary', 'checked', 'attack']);
  assert.equal(attack.status, 502, attack.text.slice(0, 500));
  assert.equal(attack.body.error, 'response_schema_violation');
  assert.match(attack.body.message, /not checked: the check took longer than/);
  // The effect happened: its receipt says it failed, and why.
  const receipt = g.ctx.ledger.getReceipt(attack.body.receipt_id);
  assert.equal(receipt.failure_class, 'provider_error');
  assert.match(receipt.normalized_result.reason, /not checked/);
});

test('a request of ordinary record types that breaks every field of every branch is refused with its first errors, listing all of them outlived the deadline; the gate answered others meanwhile', async (t) => {
  const { g, a } = await costlyGate(t);
  const record = { kind: 't3', ...Object.fromEntries(FIELDS.map((f) => [f, 'x'])) };
  const ok = await a.execute('t_records', { records: [record, record] });
  assert.equal(ok.status, 200, ok.text);
  const bad = await a.execute('t_records', { records: [record, { ...record, f0: 1 }] });
  assert.equal(bad.status, 422, bad.text);
  assert.ok(bad.body.errors.some((e) => e.pointer === '/records/1/f0'), bad.text);

  // About 1 MB. On the main thread, listing every error (81 for each 3-byte {}): minutes, then out of memory for the whole gate.
  const large = await attackBeside(t, g, a, 'validateRequest', 't_records', { records: new Array(330_000).fill({}) });
  assert.equal(large.ordinary.status, 200, large.ordinary.text);
  assert.deepEqual(large.order, ['ordinary', 'checked', 'attack']);
  assert.equal(large.attack.status, 422, large.attack.text.slice(0, 500));
  assert.ok(large.attack.body.errors.length >= 1 && large.attack.body.errors.every((e) => e.pointer.startsWith('/records/0')), large.attack.text.slice(0, 500));
});

test('a request that is valid but costly to find so (thousands of anyOf branches, each failing before the last) is refused at the deadline, while the gate answers others', async (t) => {
  const dir = tempDir(t, 'latchgate-branchy-manifests-');
  // Nothing in it but types: what costs is that each item fails 2,000 branches before `true` takes it.
  const items = { anyOf: [...new Array(2000).fill({ type: 'string' }), true] };
  writeFileSync(path.join(dir, 't_branchy.yaml'), manifest('t_branchy', { max_request_bytes: 65536, request_schema: { type: 'object', properties: { list: { type: 'array', items } } } }));
  const g = await gateFor(t, { config: { manifestDirs: [FIXTURE_MANIFESTS, dir], schemaCheckMs: DEADLINE_MS } });
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease({ budgets: { max_calls: 100 } });
  const ok = await a.execute('t_branchy', { list: [0, 'x'] });
  assert.equal(ok.status, 200, ok.text);
  // About 64 KB: on the main thread, 64 million failed branches (over a minute here).
  const { attack, ordinary, order } = await attackBeside(t, g, a, 'validateRequest', 't_branchy', { list: new Array(32_000).fill(0) });
  assert.equal(ordinary.status, 200, ordinary.text);
  assert.deepEqual(order, ['ordinary', 'checked', 'attack']);
  assert.equal(attack.status, 422, attack.text.slice(0, 500));
  assert.match(attack.body.message, /not checked: the check took longer than/);
});
