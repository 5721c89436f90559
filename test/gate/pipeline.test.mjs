// The gate's pipeline: the stages run in the order the README lists them,
// one module each; an auto-allowed call pre-checks its targets once; an
// approved execution resumes after the hold on the plan its approval stored,
// re-checking what the wait may have changed; and an approval stored before
// approvals kept the held event still resumes; and a subscriber in the
// gate's process hears how long each step of an execution took.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { canonicalHash } from '../../dist/crypto/jcs.js';
import { HostAllowlist } from '../../dist/egress/allowlist.js';
import { openDb } from '../../dist/ledger/db.js';
import { PIPELINE, RESUME_AFTER_APPROVAL, STAGE_NAMES, STEP_NAMES } from '../../dist/gate/pipeline.js';
import { STAGE_TIMING_CHANNEL } from '../../dist/gate/stage-timing.js';
import { AGENT, Agent, FIXTURE_MANIFESTS, grantAll, startGate } from '../helpers/gate.mjs';
import { admin, eventsSince, gateFor, lastEventId, tempDir, waitFor } from '../helpers/gate-faults.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const poll = (a, id) => a.signed('GET', `/v1/approvals/${id}/poll`);

/** The stage names of the README's numbered list, in its order, and the stage it says an approval resumes at. */
function readmeStages() {
  const text = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = text.indexOf('An execution runs these stages');
  assert.ok(start >= 0, 'the README describes the stages');
  const section = text.slice(start, text.indexOf('\nHTTP API', start));
  return {
    order: [...section.matchAll(/^\d+\. `(\w+)`/gm)].map((m) => m[1]),
    resumesAt: /An approved execution resumes at `(\w+)`/.exec(section)?.[1],
  };
}

test('the stages run in the order the README lists them, and an approval resumes where it says', () => {
  const doc = readmeStages();
  assert.deepEqual(STAGE_NAMES, doc.order);
  assert.equal(RESUME_AFTER_APPROVAL, doc.resumesAt);
  assert.equal(STAGE_NAMES[STAGE_NAMES.indexOf('holdForApproval') + 1], RESUME_AFTER_APPROVAL);
  assert.equal(new Set(STAGE_NAMES).size, STAGE_NAMES.length, 'each name once');
});

test('each stage is the export of its own module, src/gate/stages/<its name in kebab case>.ts', async () => {
  const stages = PIPELINE.flatMap((s) => s.together ?? [s]);
  assert.equal(stages.length, STAGE_NAMES.length);
  for (const stage of stages) {
    const file = stage.name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    assert.ok(existsSync(path.join(ROOT, 'src/gate/stages', `${file}.ts`)), `src/gate/stages/${file}.ts`);
    const mod = await import(`../../dist/gate/stages/${file}.js`);
    assert.equal(mod[stage.name], stage, `${file}.js exports ${stage.name}`);
  }
});

test('an auto-allowed call expands its template and checks its host once', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease();
  const matches = t.mock.method(HostAllowlist.prototype, 'matches');
  const r = await a.execute('t_http_honest', { id: 'item-1', note: 'once' });
  assert.equal(r.status, 200, r.text);
  assert.equal(matches.mock.callCount(), 1, 'the pre-check of the targets ran more than once');
  assert.deepEqual(matches.mock.calls[0].arguments, ['api.example.com']);
  assert.equal(g.transport.calls.length, 1);
});

/** A gate with t_http_high: t_http_honest's template at high risk, so a human must approve it. */
async function gateWithHeldTemplate(t, opts = {}) {
  const dir = tempDir(t, 'latchgate-held-manifests-');
  const honest = readFileSync(path.join(FIXTURE_MANIFESTS, 't_http_honest.yaml'), 'utf8');
  const high = honest.replace('action_id: "t_http_honest"', 'action_id: "t_http_high"').replace('risk_level: "low"', 'risk_level: "high"');
  writeFileSync(path.join(dir, 't_http_high.yaml'), `${high}verification_config: { required_fields: [status_code] }\n`);
  const config = { manifestDirs: [FIXTURE_MANIFESTS, dir] };
  const g = opts.gate ? await opts.gate(config) : await gateFor(t, { config });
  grantAll(g);
  return { g, config };
}

async function hold(g, a, body) {
  const held = await a.execute('t_http_high', body);
  assert.equal(held.status, 202, held.text);
  return held.body;
}

test('an approved execution resumes after the hold: no second authentication, validation or policy decision; the targets, one debit, one run', async (t) => {
  const { g } = await gateWithHeldTemplate(t);
  const a = new Agent(g.agentSocket);
  await a.lease({ budgets: { max_calls: 5 } });
  const held = await hold(g, a, { id: 'item-2', note: 'approve me' });
  const before = lastEventId(g);

  const decide = t.mock.method(g.ctx.policy, 'decide');
  const validate = t.mock.method(g.ctx.registry, 'validateRequest');
  const debit = t.mock.method(g.ctx.budgets, 'debit');
  const matches = t.mock.method(HostAllowlist.prototype, 'matches');
  // An operator's approval carries no lease: a second authentication would refuse it while draining.
  g.ctx.state.draining = true;
  const ap = await admin(g, 'POST', `/v1/approvals/${held.approval_id}/approve`, {});
  assert.equal(ap.status, 200, ap.text);
  assert.equal(ap.body.http_status, 200, JSON.stringify(ap.body));
  assert.equal(decide.mock.callCount(), 0, 'the policy decided again');
  assert.equal(validate.mock.callCount(), 0, 'the request was validated again');
  assert.equal(matches.mock.callCount(), 1, 'an approved plan expands its template again (the expanded call is not stored), once');
  assert.equal(debit.mock.callCount(), 1);
  assert.equal(g.transport.calls.length, 1, 'the provider ran once');
  assert.equal(g.transport.calls[0].url, 'https://api.example.com/items/item-2');
  assert.equal(g.ctx.budgets.snapshot(a.session_id).calls_remaining, 4);

  // The run's event carries on from the held request's: who, what, and the policy, now with the approval.
  const evs = eventsSince(g, before).filter((e) => e.event_type === 'action_call');
  assert.equal(evs.length, 1);
  const [final] = evs;
  assert.equal(final.decision, 'allow');
  assert.deepEqual(final.approval, { approval_id: held.approval_id, approved_by: 'op' });
  assert.equal(final.subject.session_id, a.session_id);
  assert.equal(final.subject.identity_method, 'box');
  assert.equal(final.action.action_trust_verdict, 'digest_ok');
  assert.equal(final.action.risk_level, 'high');
  assert.equal(final.request.request_hash, held.request_hash);
  assert.equal(final.policy.decision, 'allow');
  assert.deepEqual(final.budgets_before, { calls_remaining: 5 });
  assert.deepEqual(final.budgets_after, { calls_remaining: 4 });
  assert.notEqual(final.trace_id, held.trace_id, 'the approved run is a trace of its own');
});

/** Rewrites an approval's stored plan, keeping plan_hash consistent with it (as a bug or an edit of the store would). */
function rewritePlan(g, id, edit) {
  const row = g.db.prepare('SELECT plan_json FROM approvals WHERE approval_id = ?').get(id);
  const plan = edit(JSON.parse(row.plan_json));
  g.db.prepare('UPDATE approvals SET plan_json = ?, plan_hash = ? WHERE approval_id = ?').run(JSON.stringify(plan), canonicalHash(plan), id);
}

for (const c of [
  { what: 'a request that no longer matches its hash', edit: (p) => ({ ...p, request: { ...p.request, note: 'edited' } }), status: 409, code: 'approval_mismatch', message: /stored request does not match its hash/ },
  { what: 'an action whose digest changed', edit: (p) => ({ ...p, core: { ...p.core, action_digest: `sha256:${'0'.repeat(64)}` } }), status: 403, code: 'action_digest_mismatch', message: /changed since the plan was made/ },
]) {
  test(`the resumed run re-checks the stored plan first: ${c.what} is refused (${c.code}), recorded once with the approval, and nothing runs`, async (t) => {
    const { g } = await gateWithHeldTemplate(t);
    const a = new Agent(g.agentSocket);
    await a.lease({ budgets: { max_calls: 5 } });
    const held = await hold(g, a, { id: 'item-3', note: 'as held' });
    rewritePlan(g, held.approval_id, c.edit);
    const before = lastEventId(g);

    const ap = await admin(g, 'POST', `/v1/approvals/${held.approval_id}/approve`, {});
    assert.equal(ap.status, c.status, ap.text);
    assert.equal(ap.body.error, c.code);
    assert.match(ap.body.message, c.message);
    assert.equal(g.transport.calls.length, 0);
    assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 0);
    assert.equal(g.ctx.budgets.snapshot(a.session_id).calls_remaining, 5, 'nothing was debited');

    const evs = eventsSince(g, before);
    assert.deepEqual(evs.map((e) => e.event_type), ['approval_granted', 'action_call'], 'the refusal is recorded once, not again as a refused request');
    const refused = evs[1];
    assert.equal(refused.decision, 'deny');
    assert.equal(refused.error.code, c.code);
    assert.deepEqual(refused.approval, { approval_id: held.approval_id, approved_by: 'op' });

    const p = await poll(a, held.approval_id);
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(p.body.result, { status: c.status, body: ap.body });
  });
}

test("an approval stored before plans held the lease's epoch and expiry is refused on approve (fail closed), recorded, and nothing runs", async (t) => {
  const { g } = await gateWithHeldTemplate(t);
  const a = new Agent(g.agentSocket);
  await a.lease({ budgets: { max_calls: 5 } });
  const held = await hold(g, a, { id: 'item-6', note: 'from before the epoch was kept' });
  rewritePlan(g, held.approval_id, (p) => {
    const { lease_epoch: _e, lease_expires_at: _x, ...session } = p.session;
    return { ...p, session };
  });
  const before = lastEventId(g);

  const ap = await admin(g, 'POST', `/v1/approvals/${held.approval_id}/approve`, {});
  assert.equal(ap.status, 409, ap.text);
  assert.equal(ap.body.error, 'approval_revoked');
  assert.match(ap.body.message, /without its lease's epoch and expiry/);
  assert.equal(g.transport.calls.length, 0);
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 0);
  assert.equal(g.ctx.budgets.snapshot(a.session_id).calls_remaining, 5, 'nothing was debited');
  assert.equal(g.ctx.approvals.get(held.approval_id).status, 'revoked');
  const evs = eventsSince(g, before);
  assert.equal(evs.filter((e) => e.event_type === 'approval_granted' || e.event_type === 'action_call').length, 0);
  assert.equal(evs.find((e) => e.event_type === 'approval_revoked')?.details.cause, 'lease_unknown');
});

test('an approval stored before approvals kept the held event (an older ledger) still resumes, its event made from its plan', async (t) => {
  const stateDir = tempDir(t, 'latchgate-old-approval-');
  let first;
  const { config } = await gateWithHeldTemplate(t, { gate: async (cfg) => (first = await startGate({ stateDir, config: cfg })) });
  const a = new Agent(first.agentSocket);
  await a.lease();
  const held = await hold(first, a, { id: 'item-4', note: 'from before' });
  await first.close({ keepState: true });

  // The approvals table as it was before the held event was kept.
  const db = openDb(path.join(stateDir, 'ledger.sqlite3'));
  for (const c of ['event_json', 'requester_transport', 'requester_uid']) db.exec(`ALTER TABLE approvals DROP COLUMN ${c}`);
  db.close();

  const g = await gateFor(t, { stateDir, config });
  const before = lastEventId(g);
  const ap = await admin(g, 'POST', `/v1/approvals/${held.approval_id}/approve`, {});
  assert.equal(ap.status, 200, ap.text);
  assert.equal(ap.body.http_status, 200, JSON.stringify(ap.body));
  assert.equal(g.transport.calls.length, 1);

  const final = eventsSince(g, before).find((e) => e.event_type === 'action_call');
  assert.equal(final.decision, 'allow');
  assert.equal(final.subject.principal, AGENT);
  assert.equal(final.subject.session_id, a.session_id);
  assert.match(final.subject.lease_jti, /\S/);
  assert.equal(final.subject.identity_method, undefined, 'the plan does not say how the client was identified');
  assert.equal(final.action.action_id, 't_http_high');
  assert.equal(final.request.request_hash, held.request_hash);
  assert.equal(final.policy.decision, 'allow');
  assert.deepEqual(final.approval, { approval_id: held.approval_id, approved_by: 'op' });
});

test('with weaker isolation asked for by name, every event of an execution says so: run, refused, held, approved', async (t) => {
  const { g } = await gateWithHeldTemplate(t);
  g.ctx.settings.sandboxDegraded = true;
  const a = new Agent(g.agentSocket);
  await a.lease();
  const before = lastEventId(g);
  assert.equal((await a.execute('t_ok', { n: 1 })).status, 200);
  assert.equal((await a.execute('t_ok', { n: 'not a number' })).status, 422);
  const held = await hold(g, a, { id: 'item-5', note: 'degraded' });
  assert.equal((await admin(g, 'POST', `/v1/approvals/${held.approval_id}/approve`, {})).status, 200);

  const evs = eventsSince(g, before);
  const calls = evs.filter((e) => e.event_type === 'action_call');
  assert.deepEqual(calls.map((e) => e.decision), ['allow', 'deny', 'pending_approval', 'allow']);
  for (const e of evs) assert.equal(e.sandbox_degraded, true, `${e.event_type} ${e.decision}`);
});

test('a subscriber in the gate hears each step of an execution end, with its time, and of a refused one the steps before the refusal', async (t) => {
  const g = await gateFor(t);
  const heard = [];
  const listen = (m) => heard.push(m);
  subscribe(STAGE_TIMING_CHANNEL, listen);
  t.after(() => unsubscribe(STAGE_TIMING_CHANNEL, listen));
  const a = new Agent(g.agentSocket);
  await a.lease();
  const of = (traceId) => heard.filter((m) => m.trace_id === traceId);

  // No grant yet: the policy refuses, and only the steps before it ended.
  const denied = await a.execute('t_ok', { n: 1 });
  assert.equal(denied.body.error, 'policy_denied', denied.text);
  const refused = heard.splice(0);
  assert.deepEqual(refused.map((m) => m.step), STEP_NAMES.slice(0, STEP_NAMES.indexOf('decidePolicy')));
  assert.equal(new Set(refused.map((m) => m.trace_id)).size, 1, 'one execution');

  grantAll(g);
  const r = await a.execute('t_ok', { n: 2 });
  assert.equal(r.status, 200, r.text);
  // Each waits inside its step, so ends before it; the answer is written after the last.
  const expected = STEP_NAMES.flatMap((step) =>
    step === 'dispatch'
      ? ['dispatch: the intent durable', "dispatch: the provider's outcome", step]
      : step === 'verifyAndReceipt'
        ? ['verifyAndReceipt: the receipt signed', 'verifyAndReceipt: the receipt and its event committed', 'verifyAndReceipt: durable (the answer made meanwhile)', step]
        : [step],
  );
  // The answer's write may end just after the client read it.
  await waitFor(() => of(r.body.trace_id).some((m) => m.step === 'the answer written'), { what: 'the answer written' });
  const mine = of(r.body.trace_id);
  assert.deepEqual(mine.map((m) => m.step), [...expected, 'the answer written']);
  for (const m of mine) assert.ok(Number.isFinite(m.ms) && m.ms >= 0, `${m.step}: ${m.ms}`);
  const total = (step) => mine.find((m) => m.step === step).ms;
  assert.ok(total('dispatch') >= total('dispatch: the intent durable') + total("dispatch: the provider's outcome") - 0.01, 'a step takes at least its waits');

  // Unsubscribed: nothing more is heard.
  unsubscribe(STAGE_TIMING_CHANNEL, listen);
  const before = heard.length;
  assert.equal((await a.execute('t_ok', { n: 3 })).status, 200);
  assert.equal(heard.length, before);
});

