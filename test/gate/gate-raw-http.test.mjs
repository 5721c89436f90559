// Requests only a raw socket can send: duplicate credential headers, URLs
// the router cannot decode, broken HTTP. Each is refused in the gate's error
// format ({error, message}) and leaves one refusal event, like any other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rawRequest } from '../helpers/gate.mjs';
import { eventsSince, eventsWithCode, lastEventId, leasedGate } from '../helpers/gate-faults.mjs';

const EXEC = '/v1/actions/t_ok/execute';

const setup = leasedGate;

/** An HTTP/1.1 request as bytes: [name, value] header pairs kept in order and case, duplicates included. */
function http1(method, path, headers = [], body) {
  const h = [['Host', 'latchgate.local'], ...headers, ['Connection', 'close']];
  if (body !== undefined) h.push(['Content-Length', String(Buffer.byteLength(body))]);
  return `${method} ${path} HTTP/1.1\r\n${h.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body ?? ''}`;
}

/** Sends bytes; checks status, the gate's body format, and one new refusal event naming the code. */
async function refused(g, bytes, status, code) {
  const before = lastEventId(g);
  const r = await rawRequest(g.socket, bytes);
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status} ${r.text}`);
  assert.equal(r.body?.error, code, r.text);
  assert.equal(typeof r.body.message, 'string', r.text);
  assert.deepEqual(Object.keys(r.body).filter((k) => !['error', 'message'].includes(k)), [], `the gate's error format, not Fastify's: ${r.text}`);
  const evs = eventsWithCode(g, before, code);
  assert.equal(evs.length, 1, `one audit event with error.code ${code}; new events: ${JSON.stringify(eventsSince(g, before).map((e) => [e.event_type, e.error?.code]))}`);
  assert.equal(evs[0].event_type, 'request_refused');
  assert.ok(['deny', 'error'].includes(evs[0].decision), evs[0].decision);
  return { r, event: evs[0] };
}

const execHeaders = async (a, extra = []) => [['Authorization', `DPoP ${a.lease_jwt}`], ['DPoP', await a.proof('POST', EXEC)], ['Content-Type', 'application/json'], ...extra];

test('one Authorization and one DPoP header over a raw socket: the request runs', async (t) => {
  const { g, a } = await setup(t);
  const r = await rawRequest(g.socket, http1('POST', EXEC, await execHeaders(a), '{"n":1}'));
  assert.equal(r.status, 200, r.text);
});

test('a second Authorization header (any case) is 400 duplicate_header, audited, and nothing runs', async (t) => {
  const { g, a } = await setup(t);
  // Node would keep the first (valid) one and drop the second unseen.
  const { event } = await refused(g, http1('POST', EXEC, await execHeaders(a, [['Authorization', 'DPoP not-the-lease']]), '{"n":1}'), 400, 'duplicate_header');
  assert.equal(event.subject.principal, 'tester');
  assert.match(event.error.message, /Authorization/);
  // Repeats of one kind are counted into a summary, so the other spellings are checked by their answer.
  for (const name of ['AUTHORIZATION', 'authorization']) {
    const r = await rawRequest(g.socket, http1('POST', EXEC, await execHeaders(a, [[name, 'DPoP x']]), '{"n":1}'));
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body.error, 'duplicate_header');
  }
  assert.equal(g.db.prepare("SELECT count(*) AS n FROM audit_events WHERE event_json LIKE '%\"action_call\"%' AND event_json LIKE '%\"allow\"%'").get().n, 0, 'no call ran');
});

test('a second DPoP header is 400 duplicate_header, audited (Node would join the two values)', async (t) => {
  const { g, a } = await setup(t);
  const second = await a.proof('POST', EXEC);
  const { event } = await refused(g, http1('POST', EXEC, await execHeaders(a, [['dpop', second]]), '{"n":1}'), 400, 'duplicate_header');
  assert.match(event.error.message, /DPoP/);
});

test('a URL the router cannot decode: 400 invalid_request in the gate format, audited', async (t) => {
  const { g } = await setup(t);
  await refused(g, http1('GET', '/v1/actions/%E0%A4%A'), 400, 'invalid_request');
});

test('malformed HTTP (raw non-UTF-8 bytes in the URL): 400 invalid_request in the gate format, audited', async (t) => {
  const { g } = await setup(t);
  const bytes = Buffer.concat([Buffer.from('GET /v1/actions/'), Buffer.from([0xff, 0xfe]), Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')]);
  const { event } = await refused(g, bytes, 400, 'invalid_request');
  assert.match(event.error.message, /malformed HTTP/);
  assert.equal(event.subject.principal, 'tester', 'the peer is still identified from the socket');
});

test('an unparseable Content-Type: 415 unsupported_media_type, audited', async (t) => {
  const { g } = await setup(t);
  await refused(g, http1('POST', '/v1/leases', [['Content-Type', ';;;']], '{}'), 415, 'unsupported_media_type');
});

test('an unknown route: 404 route_not_found, audited; many unknown URLs are counted under one route', async (t) => {
  const { g } = await setup(t);
  const { event } = await refused(g, http1('GET', '/nope'), 404, 'route_not_found');
  assert.equal(event.details.route, 'GET (no route)');
  const before = lastEventId(g);
  for (let i = 0; i < 5; i++) assert.equal((await rawRequest(g.socket, http1('GET', `/nope/${i}`))).status, 404);
  assert.equal(eventsWithCode(g, before, 'route_not_found').length, 0, 'repeats of one kind are counted, not written one by one');
});
