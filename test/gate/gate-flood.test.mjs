// A flood of unauthenticated requests on the gate's client socket: 2000
// executes without a lease, then 400 more naming made-up actions (each a new
// target, to get past the counting). The ledger grows by a bounded number of
// events; the first refusal is in full, the rest are counted into summaries
// whose counts add up to exactly the refusals made; a different refusal
// during the flood, and the same refusal from another caller, are in full at
// once; an agent with a lease keeps executing; the chain verifies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { KeyStore } from '../../dist/keys/store.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { COALESCE_DEFAULTS } from '../../dist/ledger/coalesce.js';
import { Agent, grantAll, request, startGate } from '../helpers/gate.mjs';
import { boxSocket, eventsSince, lastEventId } from '../helpers/gate-faults.mjs';
import { NEEDS_ROOT, openSocketDir, runAs, systemUser } from '../helpers/other-uid.mjs';

const FLOOD = 2000;
const TARGETS = 400;
const EXEC = '/v1/actions/t_ok/execute';
const UNLIMITED = { requestsPerSecond: 1_000_000, requestBurst: 1_000_000 };

/** Sends `n` requests made by `make(i)` from 50 concurrent clients; returns the count of each status and error. */
async function flood(n, make, { at, run } = {}) {
  const seen = {};
  let next = 0;
  let during;
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (next < n) {
      const i = next++;
      if (i === at) during = run();
      const r = await make(i);
      const k = `${r.status} ${r.body?.error}`;
      seen[k] = (seen[k] ?? 0) + 1;
    }
  }));
  return { seen, during: await during };
}

const counted = (events) => events.reduce((n, e) => n + (e.details?.coalesced?.count ?? 1), 0);

test('an unauthenticated flood on the gate: counted, bounded, the real trail in full, the gate still serving', async (t) => {
  // One uid floods here and its agent must keep executing: the per-peer rate (gate-rate-limit.test.mjs) is set out of reach.
  const g = await startGate({ config: UNLIMITED });
  let closed = false;
  t.after(() => (closed ? rmSync(g.stateDir, { recursive: true, force: true }) : g.close()));
  grantAll(g);
  const agent = new Agent(g.socket);
  await agent.lease();
  const other = await boxSocket(t, g, 'other-agent');
  const start = lastEventId(g);

  const mid = async () => {
    // A different refusal during the flood: in the ledger, in full, by the time it is answered.
    const noDpop = await request(g.socket, 'POST', EXEC, { body: { n: 1 }, headers: { authorization: `DPoP ${agent.lease_jwt}` } });
    assert.equal(noDpop.body?.error, 'missing_dpop_header', noDpop.text);
    const written = eventsSince(g, start).filter((e) => e.error?.code === 'missing_dpop_header');
    // The same refusal as the flood's, from another caller: its own first, in full.
    const fromOther = await request(other, 'POST', EXEC, { body: { n: 1 } });
    assert.equal(fromOther.body?.error, 'missing_auth_header', fromOther.text);
    const otherWritten = eventsSince(g, start).filter((e) => e.subject?.principal === 'other-agent');
    // The legitimate path keeps working.
    const ok = await agent.execute('t_ok', { n: 1 });
    return { written, otherWritten, ok };
  };
  const { seen, during } = await flood(FLOOD, () => request(g.socket, 'POST', EXEC, { body: { n: 1 } }), { at: FLOOD / 2, run: mid });
  assert.deepEqual(seen, { '401 missing_auth_header': FLOOD }, 'every request refused with its own answer');
  assert.equal(during.written.length, 1, 'the different refusal is written at once');
  assert.equal(during.written[0].details?.coalesced, undefined, 'and in full');
  assert.match(during.written[0].error.message, /DPoP/);
  assert.equal(during.otherWritten.length, 1, "another caller's refusal is not counted into this caller's");
  assert.equal(during.otherWritten[0].details?.coalesced, undefined);
  assert.equal(during.ok.status, 200, `an agent with a lease executes during the flood: ${during.ok.text}`);

  // Made-up actions: every one a new target, so past the cap they are counted too.
  const targets = await flood(TARGETS, (i) => request(g.socket, 'POST', `/v1/actions/made-up-${i}/execute`, { body: { n: 1 } }));
  assert.deepEqual(targets.seen, { '401 missing_auth_header': TARGETS });

  const total = lastEventId(g);
  await g.close({ keepState: true }); // writes what is still counted
  closed = true;
  const ledger = Ledger.open(path.join(g.stateDir, 'ledger.sqlite3'));
  t.after(() => ledger.db.close());
  const rows = ledger.db.prepare('SELECT id, event_json FROM audit_events WHERE id > ? ORDER BY id').all(start);
  const events = rows.map((r) => ({ id: r.id, ...JSON.parse(r.event_json) }));
  const bytes = rows.reduce((n, r) => n + r.event_json.length, 0);
  t.diagnostic(`${events.length} events, ${bytes} bytes in the ledger for ${FLOOD + TARGETS + 3} refusals`);
  assert.ok(total - start < 60, `${total - start} events while the flood ran`);
  assert.ok(events.length < 80 && bytes < 64 * 1024, `${events.length} events, ${bytes} bytes for ${FLOOD + TARGETS + 3} refusals`);

  const refusals = events.filter((e) => e.subject?.principal === 'tester' && e.error?.code === 'missing_auth_header');
  const mine = refusals.filter((e) => e.action?.action_id === 't_ok');
  assert.equal(counted(mine), FLOOD, 'full events plus counts = the refusals made');
  assert.equal(mine.filter((e) => !e.details?.coalesced).length, 1, 'one in full');
  assert.equal(mine[0].details?.coalesced, undefined, 'the first is the one in full');
  assert.equal(mine[0].event_type, 'action_call');
  assert.match(mine[0].error.message, /Authorization/);
  const summary = mine.at(-1).details.coalesced;
  assert.ok(summary.count >= 1 && summary.first_at <= summary.last_at, JSON.stringify(summary));
  assert.deepEqual(mine.at(-1).action, { action_id: 't_ok' });

  // Each made-up action is a new kind: in full while the caller holds fewer than maxKinds kinds,
  // then counted into the caller's over-cap summary, which says the cap was hit.
  const madeUp = refusals.filter((e) => e.action?.action_id.startsWith('made-up-'));
  const cap = events.filter((e) => e.details?.coalesced?.over_cap);
  assert.ok(cap.every((e) => e.event_type === 'action_call' && e.decision === 'deny' && e.subject.principal === 'tester'));
  assert.ok(madeUp.every((e) => !e.details?.coalesced), 'a made-up action is never repeated: no kind summary');
  assert.equal(madeUp.length + counted(cap), TARGETS, 'full events plus the over-cap counts = the refusals made');
  assert.ok(madeUp.length >= COALESCE_DEFAULTS.maxKinds - 2 && madeUp.length < TARGETS / 4, `${madeUp.length} made-up actions in full`);
  assert.ok(cap.length >= 1, 'the cap being hit is itself recorded');
  for (const e of cap) {
    assert.equal(e.details.coalesced.over_cap.max_kinds, COALESCE_DEFAULTS.maxKinds);
    assert.ok(e.details.coalesced.samples.length <= COALESCE_DEFAULTS.maxSamples);
    assert.match(e.details.coalesced.samples[0], /^missing_auth_header made-up-\d+$/);
  }

  // Nothing else was counted away: the agent's execution and lease are there in full.
  assert.ok(events.some((e) => e.event_type === 'action_call' && e.decision === 'allow' && e.subject?.session_id === agent.session_id));

  const r = verifyLedger(ledger.db, new KeyStore(path.join(g.stateDir, 'keys')));
  assert.equal(r.first_bad, null, JSON.stringify(r.first_bad));
  assert.deepEqual(r.receipts.bad, []);
});

// A local uid that is no principal floods the client socket: 2000 requests,
// refused as unauthenticated and, past its rate, as rate_limited. Its
// refusals are counted against its peer uid (the summaries name it), the
// counts add up to every request it made, a legitimate agent is unaffected,
// and the chain verifies.
test('a flood from an unmapped uid: counted against its peer uid, bounded, every refusal accounted for', { skip: NEEDS_ROOT }, async (t) => {
  const stranger = systemUser('lgstranger');
  const g = await startGate();
  let closed = false;
  t.after(() => (closed ? rmSync(g.stateDir, { recursive: true, force: true }) : g.close()));
  grantAll(g);
  openSocketDir(g.socket);
  const start = lastEventId(g);
  const peer = `uid:${stranger.uid}`;

  const flooding = runAs(stranger, 'request-flood.mjs', [g.socket, FLOOD, 'POST', EXEC, 20]);
  const agent = new Agent(g.socket);
  await agent.lease();
  const ok = await agent.execute('t_ok', { n: 1 });
  const { seen } = await flooding;
  assert.equal(ok.status, 200, `a mapped agent executes while another uid floods: ${ok.text}`);
  const answered = Object.values(seen).reduce((a, b) => a + b, 0);
  assert.equal(answered, FLOOD, JSON.stringify(seen));
  assert.ok(Object.keys(seen).every((k) => k === '401 identity_unauthenticated' || k === '429 rate_limited'), JSON.stringify(seen));
  assert.ok(seen['401 identity_unauthenticated'] >= 1, JSON.stringify(seen));

  await g.close({ keepState: true }); // writes what is still counted
  closed = true;
  const ledger = Ledger.open(path.join(g.stateDir, 'ledger.sqlite3'));
  t.after(() => ledger.db.close());
  const events = ledger.db.prepare('SELECT event_json FROM audit_events WHERE id > ? ORDER BY id').all(start).map((r) => JSON.parse(r.event_json));
  const theirs = events.filter((e) => e.details?.peer === peer);
  t.diagnostic(`${events.length} events for ${FLOOD} refusals of ${peer}: ${JSON.stringify(seen)}`);
  assert.equal(counted(theirs), FLOOD, 'full events plus counts = every request of the flood');
  for (const [k, n] of Object.entries(seen)) {
    const code = k.split(' ')[1];
    assert.equal(counted(theirs.filter((e) => e.error.code === code)), n, `${code}: counted as answered`);
    assert.equal(theirs.filter((e) => e.error.code === code && !e.details.coalesced).length, 1, `${code}: the first in full`);
  }
  assert.ok(theirs.every((e) => e.event_type === 'request_refused' && e.subject.principal === 'unknown'));
  assert.ok(events.length < 40, `${events.length} events for ${FLOOD} refusals`);
  assert.ok(events.some((e) => e.event_type === 'action_call' && e.decision === 'allow' && e.subject?.session_id === agent.session_id), "the agent's execution in full");

  const r = verifyLedger(ledger.db, new KeyStore(path.join(g.stateDir, 'keys')));
  assert.equal(r.first_bad, null, JSON.stringify(r.first_bad));
});
