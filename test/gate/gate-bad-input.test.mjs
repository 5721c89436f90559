// Bad input: each refusal gets its exact error code and leaves
// an audit event naming that code. Admin acts record the operator.
//
// The tests run as one uid, so "a lease used by another principal" uses a
// second, box-style socket on the same gate whose callers are another
// principal (as `latchgate sandbox` serves a box), not a second uid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { Agent, BASE_URL, grantAll, request } from '../helpers/gate.mjs';
import { admin, boxSocket, eventsSince, eventsWithCode, gateFor, lastEventId, sleep } from '../helpers/gate-faults.mjs';

const EXEC = '/v1/actions/t_ok/execute';

/** Runs `send`, checks status and error code, and that one new audit event names the code. */
async function refused(g, send, status, code) {
  const before = lastEventId(g);
  const r = await send();
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status} ${r.text}`);
  assert.equal(r.body?.error, code, r.text);
  const evs = eventsWithCode(g, before, code);
  assert.equal(evs.length, 1, `one audit event with error.code ${code}; new events: ${JSON.stringify(eventsSince(g, before).map((e) => [e.event_type, e.error?.code]))}`);
  assert.ok(['deny', 'error'].includes(evs[0].decision), `the event is a refusal: ${evs[0].decision}`);
  return { r, event: evs[0] };
}

async function setup(t, opts) {
  const g = await gateFor(t, opts);
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  return { g, a };
}

/** Headers of a correctly signed execute request, for sending a raw body. */
async function signedHeaders(a, path = EXEC, method = 'POST') {
  return { authorization: `DPoP ${a.lease_jwt}`, dpop: await a.proof(method, path) };
}

test('malformed JSON body: 400 malformed_json, audited', async (t) => {
  const { g, a } = await setup(t);
  const { event } = await refused(g, async () => request(g.socket, 'POST', EXEC, { raw: '{"n":', headers: await signedHeaders(a) }), 400, 'malformed_json');
  assert.equal(event.subject.principal, 'tester', 'the caller is known from the socket even when the body is not');
});

test('a body over 1 MiB: 413 body_too_large, audited', async (t) => {
  const { g, a } = await setup(t);
  const big = JSON.stringify({ n: 1, note: 'x'.repeat(1.5 * 1024 * 1024) });
  await refused(g, async () => request(g.socket, 'POST', EXEC, { raw: big, headers: await signedHeaders(a) }), 413, 'body_too_large');
  // The gate still serves afterwards.
  const ok = await a.execute('t_ok', { n: 1 });
  assert.equal(ok.status, 200, ok.text);
});

test("a body within 1 MiB but over the action's max_request_bytes: 413 body_too_large, audited", async (t) => {
  const { g, a } = await setup(t);
  await refused(g, () => a.execute('t_ok', { n: 1, note: 'y'.repeat(2000) }), 413, 'body_too_large');
});

test('wrong content type (text/plain): 415 unsupported_media_type, audited', async (t) => {
  const { g, a } = await setup(t);
  await refused(
    g,
    async () => request(g.socket, 'POST', EXEC, { raw: '{"n":1}', headers: { ...(await signedHeaders(a)), 'content-type': 'text/plain' } }),
    415,
    'unsupported_media_type',
  );
});

test('schema violation: 422 schema_violation naming the JSON pointer, audited', async (t) => {
  const { g, a } = await setup(t);
  const { r, event } = await refused(g, () => a.execute('t_ok', { n: -1 }), 422, 'schema_violation');
  assert.match(r.body.message, /\/n\b/);
  assert.ok(r.body.errors.some((e) => e.pointer === '/n'), JSON.stringify(r.body.errors));
  assert.equal(event.event_type, 'action_call');
  assert.equal(event.subject.session_id, a.session_id);
  const wrongType = await a.execute('t_ok', { n: 'one' });
  assert.equal(wrongType.status, 422);
  assert.ok(wrongType.body.errors.some((e) => e.pointer === '/n'), JSON.stringify(wrongType.body.errors));
});

test('a replayed DPoP proof: the second use is 401 replay_detected, audited', async (t) => {
  const { g, a } = await setup(t);
  const proof = await a.proof('POST', EXEC);
  const first = await a.execute('t_ok', { n: 1 }, { proof });
  assert.equal(first.status, 200, first.text);
  await refused(g, () => a.execute('t_ok', { n: 2 }, { proof }), 401, 'replay_detected');
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 1, 'the replay ran nothing');
});

test('a proof for another URL: 401 invalid_dpop, audited', async (t) => {
  const { g, a } = await setup(t);
  const proof = await a.proof('POST', '/v1/actions/t_fail/execute');
  const { r } = await refused(g, () => a.execute('t_ok', { n: 1 }, { proof }), 401, 'invalid_dpop');
  assert.match(r.body.message, /htu/);
  // Another host under the same path is another URL too. The same refusal
  // again from the same caller is counted into a summary (src/ledger/coalesce.ts),
  // written when the gate closes at the latest.
  const { makeProof } = await import('../../dist/gate/auth/client.js');
  const otherHost = await makeProof({ key: a.key, method: 'POST', url: `http://evil.example${EXEC}`, leaseJwt: a.lease_jwt });
  const before = lastEventId(g);
  const again = await a.execute('t_ok', { n: 1 }, { proof: otherHost });
  assert.equal(again.status, 401, again.text);
  assert.equal(again.body.error, 'invalid_dpop');
  g.gate.close();
  const evs = eventsWithCode(g, before, 'invalid_dpop');
  assert.equal(evs.length, 1, JSON.stringify(evs));
  assert.equal(evs[0].details.coalesced.count, 1);
  assert.match(evs[0].details.coalesced.samples[0], /htu/);
});

test('a proof for another method: 401 invalid_dpop, audited', async (t) => {
  const { g, a } = await setup(t);
  const proof = await a.proof('GET', EXEC);
  const { r } = await refused(g, () => a.execute('t_ok', { n: 1 }, { proof }), 401, 'invalid_dpop');
  assert.match(r.body.message, /htm/);
});

test('a lease signed by another gate\'s key: 401 invalid_lease, audited', async (t) => {
  const { g } = await setup(t);
  const other = await gateFor(t);
  const stranger = new Agent(other.socket);
  await stranger.lease();
  // Same principal, valid DPoP proof for this gate's URL, but the lease key is the other gate's.
  stranger.socket = g.socket;
  const { r } = await refused(g, () => stranger.execute('t_ok', { n: 1 }), 401, 'invalid_lease');
  assert.match(r.body.message, /unknown key|signature/);
});

test('an expired lease (leaseTtlSeconds: 1): 401 lease_expired, audited', async (t) => {
  const { g, a } = await setup(t, { config: { leaseTtlSeconds: 1 } });
  await sleep(2100);
  await refused(g, () => a.execute('t_ok', { n: 1 }), 401, 'lease_expired');
});

test('missing Authorization: 401 missing_auth_header; missing DPoP: 401 missing_dpop_header; both audited', async (t) => {
  const { g, a } = await setup(t);
  await refused(g, () => request(g.socket, 'POST', EXEC, { body: { n: 1 } }), 401, 'missing_auth_header');
  await refused(g, () => request(g.socket, 'POST', EXEC, { body: { n: 1 }, headers: { authorization: `DPoP ${a.lease_jwt}` } }), 401, 'missing_dpop_header');
  await refused(
    g,
    async () => request(g.socket, 'POST', EXEC, { body: { n: 1 }, headers: { authorization: `Bearer ${a.lease_jwt}`, dpop: await a.proof('POST', EXEC) } }),
    401,
    'invalid_auth_scheme',
  );
});

test('a proof signed by another key than the lease is bound to: 401 key_binding_failed, audited', async (t) => {
  const { g, a } = await setup(t);
  const b = new Agent(g.socket);
  await b.lease();
  const { makeProof } = await import('../../dist/gate/auth/client.js');
  const proof = await makeProof({ key: b.key, method: 'POST', url: `${BASE_URL}${EXEC}`, leaseJwt: a.lease_jwt });
  await refused(g, () => a.execute('t_ok', { n: 1 }, { proof }), 401, 'key_binding_failed');
});

test('a lease used by another principal: 403 identity_forbidden, audited, nothing runs', async (t) => {
  const { g, a } = await setup(t);
  const otherSocket = await boxSocket(t, g, 'other-agent');
  // The thief has the lease and even the DPoP key; the transport says it is someone else.
  const thief = Object.assign(new Agent(otherSocket), { key: a.key, lease_jwt: a.lease_jwt, session_id: a.session_id });
  const stolen = await a.proof('POST', EXEC);
  const { event } = await refused(g, () => thief.execute('t_ok', { n: 1 }, { proof: stolen }), 403, 'identity_forbidden');
  assert.equal(event.subject.principal, 'other-agent');
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 0);
  // The refused use did not use the proof up: it is still good for the lease's holder.
  const own = await a.execute('t_ok', { n: 3 }, { proof: stolen });
  assert.equal(own.status, 200, own.text);
  // Its receipts are not readable from there either.
  const mine = await a.execute('t_ok', { n: 2 });
  assert.equal(mine.status, 200, mine.text);
  const leased = new Agent(otherSocket);
  await leased.lease();
  const peek = await leased.signed('GET', `/v1/receipts/${mine.body.receipt_id}`);
  assert.equal(peek.status, 404, peek.text);
  assert.equal(peek.body.error, 'receipt_not_found');
});

test('revoke-all on the admin socket: an old lease gets 401 lease_revoked; the act records the operator', async (t) => {
  const { g, a } = await setup(t);
  const ok = await a.execute('t_ok', { n: 1 });
  assert.equal(ok.status, 200, ok.text);
  const before = lastEventId(g);
  const rv = await admin(g, 'POST', '/v1/admin/revoke-all');
  assert.equal(rv.status, 200, rv.text);
  assert.equal(rv.body.epoch, 1);
  const act = eventsSince(g, before).find((e) => e.event_type === 'admin_revoke_all');
  assert.ok(act, 'the revocation is recorded');
  assert.equal(act.operator.name, 'op');
  assert.equal(act.operator.uid, process.getuid());
  assert.equal(act.details.epoch, 1);

  await refused(g, () => a.execute('t_ok', { n: 2 }), 401, 'lease_revoked');
  // A lease issued after the revocation works.
  const fresh = new Agent(g.socket);
  await fresh.lease();
  const r = await fresh.execute('t_ok', { n: 3 });
  assert.equal(r.status, 200, r.text);
});

test('drain on the admin socket: executions get 503 draining; the act records the operator', async (t) => {
  const { g, a } = await setup(t);
  const before = lastEventId(g);
  const d = await admin(g, 'POST', '/v1/admin/drain');
  assert.equal(d.status, 200, d.text);
  assert.equal(d.body.draining, true);
  const act = eventsSince(g, before).find((e) => e.event_type === 'admin_drain');
  assert.ok(act);
  assert.equal(act.operator.name, 'op');
  await refused(g, () => a.execute('t_ok', { n: 1 }), 503, 'draining');
  const ready = await request(g.socket, 'GET', '/readyz');
  assert.equal(ready.body.status, 'degraded');
  assert.equal(g.db.prepare('SELECT count(*) AS n FROM execution_intents').get().n, 0);
});

test('admin routes on the client socket are 404 route_not_found, and audited', async (t) => {
  const { g, a } = await setup(t);
  const held = await a.execute('t_high', { n: 1 });
  assert.equal(held.status, 202, held.text);
  for (const [method, path] of [
    ['POST', '/v1/admin/revoke-all'],
    ['POST', '/v1/admin/drain'],
    ['GET', '/v1/approvals'],
    ['GET', `/v1/approvals/${held.body.approval_id}`],
    ['POST', `/v1/approvals/${held.body.approval_id}/approve`],
    ['POST', `/v1/approvals/${held.body.approval_id}/deny`],
    ['GET', '/v1/audit/events'],
    ['GET', '/v1/audit/verify'],
    ['POST', '/v1/admin/policy/grant'],
    ['GET', '/v1/admin/tokens'],
  ]) {
    const before = lastEventId(g);
    const r = await request(g.socket, method, path, method === 'POST' ? { body: {} } : {});
    assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
    assert.equal(r.body.error, 'route_not_found');
    assert.equal(eventsSince(g, before).filter((e) => e.event_type.startsWith('admin_') || e.event_type.startsWith('approval_')).length, 0, `${method} ${path} did nothing`);
  }
  assert.equal(g.ctx.state.epoch, 0);
  assert.equal(g.ctx.state.draining, false);
  assert.equal(g.ctx.approvals.get(held.body.approval_id).status, 'pending');
});

test('the receipt public keys are served to clients too (to verify their receipts), with no operator act recorded', async (t) => {
  const { g } = await setup(t);
  const before = lastEventId(g);
  const r = await request(g.socket, 'GET', '/v1/receipt-keys');
  assert.equal(r.status, 200, r.text);
  assert.ok(r.body.keys.length >= 1);
  for (const k of r.body.keys) {
    assert.equal(k.kty, 'OKP');
    assert.equal(k.d, undefined, 'a private key part was published');
  }
  assert.equal(eventsSince(g, before).filter((e) => e.event_type.startsWith('admin_')).length, 0);
  const op = await request(g.adminSocket, 'GET', '/v1/receipt-keys');
  assert.deepEqual(op.body, r.body);
  assert.equal(eventsSince(g, before).filter((e) => e.event_type === 'admin_receipt_keys_read').length, 1, "the operator's read is recorded");
});

test('every refusal above leaves the chain intact', async (t) => {
  const { g, a } = await setup(t);
  await request(g.socket, 'POST', EXEC, { raw: '{"n":', headers: await signedHeaders(a) });
  await request(g.socket, 'POST', EXEC, { raw: '{"n":1}', headers: { ...(await signedHeaders(a)), 'content-type': 'text/plain' } });
  await a.execute('t_ok', { n: -1 });
  await request(g.socket, 'POST', EXEC, { body: { n: 1 } });
  const v = verifyLedger(g.db, g.ctx.keys);
  assert.equal(v.intact, true, JSON.stringify(v.first_bad));
  assert.ok(v.total_events >= 5);
});

test('a refusal whose message the request would make huge (long unknown field names) is answered and recorded as its own event with each name cut short', async (t) => {
  const { noopProvider } = await import('../../dist/gate/builtin-providers.js');
  const { EVENT_MESSAGE_MAX } = await import('../../dist/gate/audit.js');
  const g = await gateFor(t, { config: { manifestDirs: [] }, providers: { 'builtin:fs': noopProvider } });
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  // Within fs_write's request limit, but each name would appear twice in the answer, 20 times: 1.2 MB of it.
  const body = { path: 'src/a', content_base64: '' };
  for (let i = 0; i < 20; i++) body[`${'k'.repeat(30000)}${i}`] = 0;
  const { r, event } = await refused(g, () => a.execute('fs_write', body), 422, 'schema_violation');
  assert.equal(r.body.errors.length, 20);
  for (const e of r.body.errors) assert.match(e.pointer, /^\/k{255}…$/);
  assert.ok(r.text.length < 40_000, `${r.text.length} characters`);
  assert.equal(event.event_type, 'action_call');
  assert.equal(event.action.action_id, 'fs_write');
  assert.ok(event.error.message.length < EVENT_MESSAGE_MAX + 100, `${event.error.message.length}`);
  assert.equal(verifyLedger(g.db, g.ctx.keys).intact, true);
});
