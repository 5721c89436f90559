// The ledger's event catalogue (src/core/event-catalogue.ts): every event the
// real code writes fits its entry and lists nothing the entry does not, the
// ledger refuses any other event and writes nothing, docs/EVENTS.md is what
// the catalogue gives, and `latchgate audit --event-type` completes and
// suggests from it.
import { restoreBudgetCounts } from '../../dist/gate/budget-check.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EVENT_CATALOGUE, EVENT_TYPES, INDEXED_FIELDS, checkEvent, indexedFieldsOf, undeclaredFields } from '../../dist/core/event-catalogue.js';
import { EventRefusedError, Ledger, LedgerError, indexedColumns } from '../../dist/ledger/ledger.js';
import { immediate, openDb } from '../../dist/ledger/db.js';
import { DenialCoalescer } from '../../dist/ledger/coalesce.js';
import { denialKind } from '../../dist/ledger/denial-kinds.js';
import { KeyStore } from '../../dist/keys/store.js';
import { signReceipt } from '../../dist/ledger/receipt.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { GateInstances } from '../../dist/gate/instances.js';
import { recordInterrupted } from '../../dist/gate/interrupted.js';
import { BoxEvents } from '../../dist/sandbox/box-events.js';
import { PolicyStore } from '../../dist/policy/store.js';
import { ConnectProxy } from '../../dist/egress/connect-proxy.js';
import { HostAllowlist } from '../../dist/egress/allowlist.js';
import { CredentialProxy } from '../../dist/egress/credential-proxy.js';
import { auditCommand, resolveEventType } from '../../dist/cli/gate-commands.js';
import { Agent, grantAll, request } from '../helpers/gate.mjs';
import { admin, gateFor } from '../helpers/gate-faults.mjs';
import { prng, tempDir } from '../fixtures/unit/helpers.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/cli/main.js');
const GEN = join(ROOT, 'scripts/gen-event-docs.mjs');

/** A real ledger on a temporary SQLite file. */
function freshLedger(t) {
  const dir = tempDir(t, 'latchgate-events-');
  const ledger = new Ledger(openDb(join(dir, 'ledger.db'))).migrate();
  t.after(() => ledger.db.close());
  return { dir, ledger };
}

/** One event of each type as the real code wrote it, filled by the tests below (the refusal and fuzz tests start from them). */
const written = new Map();

/** Each stored event fits its entry, and carries no field or details key the entry does not list. */
function assertAllFit(events, where) {
  assert.ok(events.length > 0, `${where}: no events`);
  for (const e of events) {
    assert.equal(checkEvent(e), null, `${where}: ${JSON.stringify(e)}`);
    assert.deepEqual(undeclaredFields(e), [], `${where}: this ${e.event_type} event carries what src/core/event-catalogue.ts does not list: ${JSON.stringify(e)}`);
    const { timestamp: _t, prev_hash: _p, ...input } = e;
    const summary = e.details?.coalesced !== undefined;
    if (!written.has(e.event_type) || (!summary && written.get(e.event_type).details?.coalesced !== undefined)) written.set(e.event_type, input);
  }
}

const waitFor = async (fn, what) => {
  for (let i = 0; i < 500; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
};

test('catalogue entries: names, one-line meanings, known fields, details keys with a details field, emitters that exist and name the type', () => {
  const TOP = ['decision', 'subject', 'action', 'request', 'policy', 'budgets_before', 'budgets_after', 'execution', 'approval', 'operator', 'error', 'details'];
  assert.ok(EVENT_TYPES.length >= 20);
  for (const name of EVENT_TYPES) {
    const s = EVENT_CATALOGUE[name];
    assert.match(name, /^[a-z][a-z0-9_]*$/);
    assert.ok(s.meaning.length > 10 && !s.meaning.includes('\n') && !s.meaning.includes('|'), `${name}: meaning`);
    for (const [f, p] of Object.entries(s.fields)) {
      assert.ok(p === 'required' || p === 'optional', `${name}.${f}: ${p}`);
      const [top, key] = f.split('.');
      assert.ok(TOP.includes(top) && (key === undefined || (top !== 'details' && top !== 'decision')), `${name}: ${f} is not an event field`);
      if (key !== undefined) assert.ok(s.fields[top] !== undefined, `${name}: ${f} without ${top}`);
    }
    assert.equal(s.details !== undefined, s.fields.details !== undefined, `${name}: details keys go with a details field`);
    for (const [k, p] of Object.entries(s.details ?? {})) {
      assert.ok(p === 'required' || p === 'optional', `${name}.details.${k}`);
      if (p === 'required') assert.equal(s.fields.details, 'required', `${name}: details.${k} is required, so details is`);
    }
    assert.ok(s.emitters.length > 0, `${name}: emitters`);
    for (const m of s.emitters) assert.ok(existsSync(join(ROOT, m)), `${name}: emitter ${m} does not exist`);
    assert.ok(
      s.emitters.some((m) => readFileSync(join(ROOT, m), 'utf8').includes(`'${name}'`)),
      `${name}: none of ${s.emitters.join(', ')} names it`,
    );
  }
});

test('"counted" types are exactly the ones src/ledger/denial-kinds.ts may count', () => {
  for (const name of EVENT_TYPES) {
    const denial = { event_type: name, decision: 'deny', subject: { principal: 'p' }, action: { action_id: 'a' }, error: { code: 'c', message: 'm' }, details: { reason: 'r', route: 'x' } };
    assert.equal(denialKind(denial) !== null, EVENT_CATALOGUE[name].coalesced === true, name);
  }
});

test("indexed fields: the ledger's indexed columns, read from the fields named, each filtered by a `latchgate audit` option", (t) => {
  const { ledger } = freshLedger(t);
  const indexes = ledger.db.prepare(`SELECT name FROM pragma_index_list('audit_events')`).pluck().all();
  const columns = indexes.flatMap((i) => ledger.db.prepare(`SELECT name FROM pragma_index_info(?)`).pluck().all(i));
  assert.deepEqual([...new Set(columns)].sort(), INDEXED_FIELDS.map((f) => f.column).sort());
  const e = ledger.append({ event_type: 'action_call', decision: 'deny', subject: { principal: 'p', session_id: 's' }, action: { action_id: 'a' } });
  const cols = indexedColumns(e);
  for (const f of INDEXED_FIELDS) {
    const [top, key] = f.field.split('.');
    assert.equal(cols[f.column], key ? e[top][key] : e[top], f.column);
  }
  const options = auditCommand().options.map((o) => o.long);
  for (const f of INDEXED_FIELDS) for (const o of f.option.split(', ')) assert.ok(options.includes(o), `latchgate audit has ${o}`);
  // What a type can be filtered on follows from its fields.
  assert.deepEqual(indexedFieldsOf('lease_issued').map((f) => f.column), ['event_type', 'trace_id', 'timestamp', 'decision', 'principal', 'session_id']);
  assert.deepEqual(indexedFieldsOf('egress').map((f) => f.column), ['event_type', 'trace_id', 'timestamp', 'decision', 'principal']);
  assert.deepEqual(indexedFieldsOf('action_call').map((f) => f.column), INDEXED_FIELDS.map((f) => f.column));
});

test('the gate: leases, executions, approvals, refusals, their counted summaries and every admin act fit the catalogue', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease({ budgets: { max_calls: 20 } });
  assert.equal((await a.execute('t_ok', { n: 1 })).status, 200);
  // A retry with the same Idempotency-Key: answered from the first (idempotent_replay).
  for (let i = 0; i < 2; i++) assert.equal((await a.execute('t_ok', { n: 9 }, { headers: { 'idempotency-key': 'catalogue-key' } })).status, 200);
  assert.equal((await a.execute('t_fail', { n: 1 })).status, 502);
  // Held for approval: one approved, one denied, one left to expire, one left pending for the revocation.
  const held = [];
  for (let n = 0; n < 4; n++) {
    const r = await a.execute('t_high', { n });
    assert.equal(r.status, 202, r.text);
    held.push(r.body.approval_id);
  }
  assert.equal((await admin(g, 'POST', `/v1/approvals/${held[0]}/approve`, {})).status, 200);
  assert.equal((await admin(g, 'POST', `/v1/approvals/${held[1]}/deny`, { reason: 'no' })).status, 200);
  g.db.prepare('UPDATE approvals SET expires_at = ? WHERE approval_id = ?').run('2000-01-01T00:00:00.000Z', held[2]);
  g.gate.sweepApprovals();
  // Refusals without a session, each repeated: the first in full, the rest counted.
  for (let n = 0; n < 3; n++) {
    assert.ok((await request(g.socket, 'POST', '/v1/actions/t_ok/execute', { body: {} })).status >= 400);
    assert.equal((await request(g.socket, 'POST', '/v1/leases', { raw: '{not json', headers: { 'content-type': 'application/json' } })).status, 400);
    assert.ok((await request(g.socket, 'POST', '/v1/leases', { body: {} })).status >= 400);
  }
  for (const [path, body] of [
    ['/v1/admin/revoke-all', {}],
    ['/v1/admin/reload', {}],
    ['/v1/admin/secrets/reload', {}],
    ['/v1/admin/keys/rotate', { kind: 'grant' }],
    ['/v1/admin/policy/grant', { principal: 'someone', actions: ['t_ok'], sinks: [] }],
    ['/v1/admin/policy/revoke', { principal: 'someone', actions: ['t_ok'] }],
    ['/v1/admin/policy/accept', {}],
  ]) {
    const r = await admin(g, 'POST', path, body);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
  }
  const token = await admin(g, 'POST', '/v1/admin/tokens', { principal: 'tcp-client' });
  assert.equal(token.status, 201, token.text);
  assert.equal((await admin(g, 'POST', `/v1/admin/tokens/${token.body.token_id}/revoke`, {})).status, 200);
  assert.equal((await admin(g, 'POST', '/v1/admin/drain', {})).status, 200);
  assert.equal((await admin(g, 'GET', '/v1/receipt-keys')).status, 200);
  // A budget count lowered in the table, put back to the chain's as a gate opening the ledger does.
  g.db.prepare('UPDATE budget_windows SET calls_used = 0').run();
  assert.ok(restoreBudgetCounts(g.ctx.ledger).length > 0);
  g.gate.close(); // writes the counted summaries
  const events = g.ctx.ledger.query({ limit: 10_000 });
  assertAllFit(events, 'gate');
  const types = new Set(events.map((e) => e.event_type));
  for (const name of ['lease_issued', 'lease_denied', 'action_call', 'request_refused', 'approval_granted', 'approval_denied', 'approval_expired', 'approval_revoked', 'admin_revoke_all', 'admin_reload', 'admin_secrets_reloaded', 'admin_keys_rotated', 'policy_grant', 'policy_revoke', 'policy_accepted', 'state_baseline', 'admin_drain', 'admin_receipt_keys_read', 'client_token_created', 'client_token_revoked', 'budget_counts_restored']) {
    assert.ok(types.has(name), `the gate wrote ${name}`);
  }
  const summaries = events.filter((e) => e.details?.coalesced);
  assert.deepEqual([...new Set(summaries.map((e) => e.event_type))].sort(), ['action_call', 'lease_denied', 'request_refused']);
  assert.ok(events.some((e) => e.event_type === 'action_call' && e.execution?.receipt_id && e.execution?.receipt_hash), 'a final action_call, written with its receipt and its hash');
});

test('the egress exits: CONNECT proxy decisions, credential proxy requests and their counted summaries fit the catalogue', async (t) => {
  const { ledger } = freshLedger(t);
  // As the box records them (src/cli/sandbox.ts, src/sandbox/box-gate.ts): with the box's principal, repeated refusals counted.
  const box = new DenialCoalescer({ write: (e) => ledger.append(e), classify: denialKind, timer: false, maxKinds: 3 });
  const record = (e) => box.record({ ...e, subject: { principal: 'box' } }, 'box');
  /** Writes text to port, reads until the other side closes (or 3 s). */
  const exchange = (port, text, onData = () => undefined) =>
    new Promise((resolve) => {
      let got = '';
      const s = net.connect(port, '127.0.0.1', () => s.write(text));
      s.setTimeout(3000, () => s.destroy());
      s.on('data', (d) => {
        got += d;
        onData(s, got);
      });
      s.on('close', () => resolve(got));
      s.on('error', () => undefined);
    });

  // Credential proxy first: a route whose server is down (error), an unknown route three times (one kind), a CONNECT (refused).
  const dead = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => dead.once('listening', r));
  const deadPort = dead.address().port;
  await new Promise((r) => dead.close(r));
  const cred = new CredentialProxy({ routes: [{ name: 'dead', upstream: `https://127.0.0.1:${deadPort}`, header: 'x-api-key', format: '{}', key: 'sk-test-0123456789abcdef' }], record });
  const cport = await cred.listenTcp('127.0.0.1', 0);
  const get = (method, path) => exchange(cport, `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  await get('GET', '/dead/v1/x');
  for (let n = 0; n < 3; n++) await get('GET', `/nope/${n}`);
  await get('CONNECT', 'example.com:443');
  await waitFor(() => ledger.query({ event_type: 'credential_proxy' }).length === 3, 'the error, the first unknown route and the CONNECT, in full');
  await cred.close();

  // CONNECT proxy: a tunnel, a refused host in full, then over the cap of kinds: counted.
  const up = net.createServer((s) => s.on('error', () => undefined).pipe(s));
  await new Promise((r) => up.listen(0, '127.0.0.1', r));
  t.after(() => up.close());
  const proxy = new ConnectProxy({
    allowlist: new HostAllowlist(['api.test.example']),
    pinned: new Map([['api.test.example', { ip: '127.0.0.1', port: up.address().port }]]),
    lookup: async () => [],
    record,
  });
  const { port } = await proxy.listenTcp('127.0.0.1', 0);
  const tunnel = await exchange(port, 'CONNECT api.test.example:443 HTTP/1.1\r\n\r\n', (s, got) => got.includes('200') && s.end('x'));
  assert.match(tunnel, /^HTTP\/1\.1 200/);
  for (const host of ['a.example', 'b.example', 'c.example', 'a.example']) assert.match(await exchange(port, `CONNECT ${host}:443 HTTP/1.1\r\n\r\n`), /403/);
  await exchange(port, 'CONNECT api.test.example:22 HTTP/1.1\r\n\r\n');
  await exchange(port, 'GET http://api.test.example/ HTTP/1.1\r\nHost: api.test.example\r\n\r\n');
  await exchange(port, 'CONNECT %%% HTTP/1.1\r\n\r\n');
  await proxy.close();
  await waitFor(() => ledger.query({ event_type: 'egress', decision: 'allow' }).length === 1, 'the tunnel, recorded when it closed');
  box.close(); // writes the counted summaries

  const events = ledger.query({ limit: 10_000 });
  assertAllFit(events, 'egress');
  assert.deepEqual([...new Set(events.map((e) => e.event_type))].sort(), ['credential_proxy', 'egress']);
  const summaries = events.filter((e) => e.details?.coalesced);
  assert.ok(summaries.some((e) => e.event_type === 'egress' && e.details.coalesced.over_cap), 'an over-cap egress summary');
  assert.ok(summaries.some((e) => e.event_type === 'egress' && !e.details.coalesced.over_cap), 'a summary of one egress kind');
  assert.ok(summaries.some((e) => e.event_type === 'credential_proxy'), 'a credential proxy summary');
});

test('policy store changes, recorded as the admin socket records an act, fit the catalogue', (t) => {
  const { ledger } = freshLedger(t);
  const store = new PolicyStore(ledger.db);
  const act = (change) => ledger.append({ event_type: change.event_type, decision: 'allow', operator: { name: 'op', uid: 1000 }, subject: { principal: 'op', identity_method: 'unix' }, details: { ...change.details } });
  act(store.grant('alice', ['t_ok'], ['http_read'], { inheritsWildcard: true }));
  act(store.revoke('alice', ['t_ok'], { sinks: ['http_read'], removeEntry: true }));
  act(store.allowlistAdd('t_ok', 'alice'));
  act(store.allowlistRemove('t_ok', 'alice'));
  assertAllFit(ledger.query(), 'policy store');
});

test("the box launcher's reports, written by its event writer, fit the catalogue", async (t) => {
  const dir = tempDir(t, 'latchgate-box-events-');
  const events = new BoxEvents(dir, 'box-agent', true);
  await events.sandboxDegraded(['landlock'], '/home/u/w');
  events.hostExec({ kind: 'new-git-dir', path: '/home/u/w/sub/.git', action: 'disabled', moved: { from: '/home/u/w/sub/.git/HEAD', to: '/home/u/w/sub/.git/HEAD.latchgate-disabled' } });
  events.hostExec({ kind: 'new-gitlinks', path: '/home/u/w', action: 'reported', gitlinks: ['vendor/lib'] });
  events.stateFile({ path: '/home/u/.claude.json', outcome: 'kept-aside', dropped: ['/hooks'], keptAt: '/home/u/.claude.json.box', reason: 'changed on the host' });
  await events.close();
  const ledger = new Ledger(openDb(join(dir, 'ledger.sqlite3')));
  t.after(() => ledger.db.close());
  const written = ledger.query();
  assert.deepEqual(written.map((e) => e.event_type).sort(), ['sandbox_degraded', 'sandbox_host_exec', 'sandbox_host_exec', 'state_file_merge']);
  assertAllFit(written, 'launcher');
});

test('a gate that opens after another stopped between intent and receipt records the interruption, as the catalogue says', async (t) => {
  const { dir, ledger } = freshLedger(t);
  // An intent whose gate process is gone (its instance id holds no lock).
  ledger.consumeGrantAndWriteIntent({ grant_id: 'g-int', trace_id: 't-int', action_id: 't_ok', principal: 'tester', provider_module_digest: 'builtin:x', request_hash: 'sha256:00', started_at: new Date().toISOString(), instance_id: '00000000-0000-4000-8000-000000000000' });
  const instances = new GateInstances(dir);
  t.after(() => instances.close());
  assert.deepEqual(recordInterrupted(ledger, instances).map((i) => i.grant_id), ['g-int']);
  assertAllFit(ledger.query(), 'interrupted');
});

test('every catalogue entry was written by the code paths above', () => {
  assert.deepEqual([...written.keys()].sort(), [...EVENT_TYPES].sort());
});

/** The ledger is unchanged by a refused write. */
function assertRefused(ledger, fn, { eventType, field }) {
  const count = ledger.count();
  const head = ledger.chainHead();
  let err;
  assert.throws(fn, (e) => (err = e) instanceof EventRefusedError);
  assert.equal(err.code, 'bad_event');
  assert.equal(err.field, field);
  assert.equal(err.eventType, eventType);
  assert.ok(err.message.includes(field), `the message names ${field}: ${err.message}`);
  if (eventType) assert.ok(err.message.includes(eventType), `the message names ${eventType}: ${err.message}`);
  assert.equal(ledger.count(), count, 'nothing appended');
  assert.equal(ledger.chainHead(), head, 'the chain head did not move');
  return err;
}

test('an unknown event type, an unknown field or a field of the wrong shape is refused, naming type and field; nothing is written', (t) => {
  const { ledger } = freshLedger(t);
  ledger.append(written.get('admin_drain'));
  const typo = { ...written.get('action_call'), event_type: 'acton_call' };
  const err = assertRefused(ledger, () => ledger.append(typo), { eventType: 'acton_call', field: 'event_type' });
  assert.match(err.message, /did you mean "action_call"/);
  assertRefused(ledger, () => ledger.append({ event_type: 'x' }), { eventType: 'x', field: 'event_type' });
  assertRefused(ledger, () => ledger.append({}), { eventType: null, field: 'event_type' });
  assertRefused(ledger, () => ledger.append({ ...written.get('egress'), colour: 'red' }), { eventType: 'egress', field: 'colour' });
  assertRefused(ledger, () => ledger.append({ ...written.get('egress'), decision: 'maybe' }), { eventType: 'egress', field: 'decision' });
  assertRefused(ledger, () => ledger.append({ ...written.get('action_call'), subject: { principal: 7 } }), { eventType: 'action_call', field: 'subject.principal' });
  assertRefused(ledger, () => ledger.append({ ...written.get('admin_drain'), operator: { name: 'op', uid: '0' } }), { eventType: 'admin_drain', field: 'operator.uid' });
  assertRefused(ledger, () => ledger.append({ ...written.get('egress'), details: ['host'] }), { eventType: 'egress', field: 'details' });
  assertRefused(ledger, () => immediate(ledger.db, () => ledger.appendInTransaction(typo)), { eventType: 'acton_call', field: 'event_type' });
  // An event that names a receipt comes only with the receipt: append() cannot claim one.
  const claims = { ...written.get('action_call'), trace_id: 'claims-a-receipt', execution: { grant_id: 'g', receipt_id: 'r', receipt_hash: '00'.repeat(32) } };
  assertRefused(ledger, () => ledger.append(claims), { eventType: 'action_call', field: 'execution.receipt_id' });
  assertRefused(ledger, () => immediate(ledger.db, () => ledger.appendInTransaction(claims)), { eventType: 'action_call', field: 'execution.receipt_id' });
});

test('every required field of every type, when missing, is refused naming the type and the field; nothing is written', (t) => {
  const { ledger } = freshLedger(t);
  let cases = 0;
  for (const name of EVENT_TYPES) {
    const spec = EVENT_CATALOGUE[name];
    const full = structuredClone(written.get(name));
    delete full.trace_id;
    delete full.details?.coalesced;
    delete full.execution?.receipt_id; // (written only with its receipt)
    const required = [
      ...Object.entries(spec.fields).filter(([, p]) => p === 'required').map(([f]) => f),
      ...Object.entries(spec.details ?? {}).filter(([, p]) => p === 'required').map(([k]) => `details.${k}`),
    ];
    for (const path of required) {
      const e = structuredClone(full);
      const [top, key] = path.split('.');
      if (key === undefined) delete e[top];
      else delete e[top][key];
      assertRefused(ledger, () => ledger.append(e), { eventType: name, field: path });
      // undefined is absent too: it would not be written
      const u = structuredClone(full);
      if (key === undefined) u[top] = undefined;
      else u[top][key] = undefined;
      assertRefused(ledger, () => ledger.append(u), { eventType: name, field: path });
      cases++;
    }
    ledger.append(full); // and whole, it is written
  }
  assert.ok(cases > 60, `${cases} cases`);
  assert.equal(ledger.count(), EVENT_TYPES.length);
});

test('commitEvidence with an event that does not fit writes neither the event nor the receipt; the intent stays open', (t) => {
  const { dir, ledger } = freshLedger(t);
  const keys = new KeyStore(join(dir, 'keys'));
  ledger.consumeGrantAndWriteIntent({ grant_id: 'g1', trace_id: 't-g1', action_id: 't_ok', principal: 'tester', provider_module_digest: 'builtin:x', request_hash: 'sha256:00', started_at: new Date().toISOString() });
  const receipt = signReceipt(keys, {
    receipt_id: 'r1',
    grant_id: 'g1',
    trace_id: 't-g1',
    provider_module_digest: 'builtin:x',
    provider_receipt: null,
    normalized_result: { kind: 'success', summary: 'completed' },
    verification_outcome: { status: 'verified' },
    effect_evidence: [],
    started_at: '2025-01-01T00:00:00.000Z',
    finished_at: '2025-01-01T00:00:00.010Z',
  });
  const event = { event_type: 'action_call', trace_id: 't-g1', decision: 'allow', subject: { principal: 'tester' }, action: { action_id: 't_ok' }, execution: { grant_id: 'g1', receipt_id: 'r1' } };
  const { action: _a, ...noAction } = event;
  assertRefused(ledger, () => ledger.commitEvidence(receipt, noAction), { eventType: 'action_call', field: 'action' });
  assert.equal(ledger.getReceipt('r1'), null);
  assert.deepEqual(ledger.intentsWithoutReceipts().map((i) => i.grant_id), ['g1']);
  ledger.commitEvidence(receipt, event);
  assert.deepEqual(ledger.getReceipt('r1'), receipt);
  assert.deepEqual(ledger.intentsWithoutReceipts(), []);
});

test('property: 2400 random events at Ledger.append never crash it; a refusal names the field, and an event missing what its type requires is always refused', (t) => {
  const { dir, ledger } = freshLedger(t);
  const samples = [...written.values()].map((e) => {
    const c = structuredClone(e);
    delete c.trace_id;
    // An event naming a receipt is written only with it (commitEvidence; refused below).
    delete c.execution?.receipt_id;
    delete c.execution?.receipt_hash;
    return c;
  });
  const junk = (r, depth = 0) => {
    switch (r.below(depth > 1 ? 6 : 9)) {
      case 0: return null;
      case 1: return r.below(1000) - 500;
      case 2: return r.pick(['', 'x', 'deny', 'allow', 'p', 'a'.repeat(r.below(40))]);
      case 3: return r.chance(0.5);
      case 4: return undefined;
      case 5: return r.pick(EVENT_TYPES);
      case 6: return Array.from({ length: r.below(3) }, () => junk(r, depth + 1));
      default: return Object.fromEntries(Array.from({ length: r.below(4) }, () => [r.pick(['principal', 'action_id', 'code', 'name', 'reason', 'k', 'coalesced']), junk(r, depth + 1)]));
    }
  };
  const FIELDS = ['event_type', 'decision', 'subject', 'action', 'request', 'policy', 'budgets_before', 'budgets_after', 'execution', 'approval', 'operator', 'error', 'details', 'sandbox_degraded', 'trace_id', 'timestamp', 'prev_hash', 'extra'];
  /** What the catalogue requires of e and it lacks, worked out here independently of checkEvent. */
  const lacks = (e) => {
    const spec = EVENT_CATALOGUE[e.event_type];
    if (!spec || (spec.coalesced && e.details && typeof e.details === 'object' && e.details.coalesced !== undefined)) return [];
    const at = (path) => path.split('.').reduce((v, k) => (v && typeof v === 'object' ? v[k] : undefined), e);
    return [
      ...Object.entries(spec.fields).filter(([f, p]) => p === 'required' && at(f) === undefined).map(([f]) => f),
      ...Object.entries(spec.details ?? {}).filter(([k, p]) => p === 'required' && at(`details.${k}`) === undefined).map(([k]) => `details.${k}`),
    ];
  };
  let appended = 0;
  let refused = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const r = prng(seed);
    for (let i = 0; i < 60; i++) {
      const e = r.chance(0.8) ? structuredClone(r.pick(samples)) : {};
      for (let m = r.below(4); m > 0; m--) {
        const f = r.pick(FIELDS);
        const op = r.below(3);
        if (op === 0) delete e[f];
        else if (op === 1) e[f] = junk(r);
        else if (e.details && typeof e.details === 'object') delete e.details[r.pick(Object.keys(e.details).concat('x'))];
      }
      if (r.chance(0.1)) e.event_type = r.pick(['', 'acton_call', 'EGRESS', 7, null]);
      if (typeof e.trace_id === 'string' && e.trace_id !== '') e.trace_id = `${e.trace_id}-${seed}-${i}`;
      const where = `seed ${seed} #${i}: ${JSON.stringify(e)}`;
      const count = ledger.count();
      try {
        ledger.append(e);
        appended++;
        assert.equal(checkEvent(e), null, where);
        assert.deepEqual(lacks(e), [], `${where}: written though it lacks a required field`);
        assert.equal(ledger.count(), count + 1);
      } catch (err) {
        refused++;
        assert.ok(err instanceof LedgerError, `${where}: ${err.stack}`);
        assert.equal(ledger.count(), count, where);
        if (err.code === 'duplicate_trace_id') continue;
        assert.ok(err instanceof EventRefusedError, `${where}: ${err.message}`);
        assert.ok(typeof err.field === 'string' && err.field !== '' && err.message.includes(err.field), `${where}: ${err.message}`);
        assert.notEqual(checkEvent(e), null, where);
      }
    }
  }
  assert.ok(appended > 100 && refused > 100, `appended ${appended}, refused ${refused}`);
  assert.equal(verifyLedger(ledger.db, new KeyStore(join(dir, 'keys'))).intact, true);
});

test('docs/EVENTS.md is what scripts/gen-event-docs.mjs writes from the catalogue now', (t) => {
  const r = spawnSync(process.execPath, [GEN, '--check'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const doc = readFileSync(join(ROOT, 'docs/EVENTS.md'), 'utf8');
  for (const name of EVENT_TYPES) assert.ok(doc.includes(`| \`${name}\` | ${EVENT_CATALOGUE[name].meaning} |`), `${name} has its row`);
  // A stale copy is caught, with what to run.
  const dir = tempDir(t);
  const stale = join(dir, 'EVENTS.md');
  writeFileSync(stale, doc.replace(/^\| `egress` .*\n/m, ''));
  const s = spawnSync(process.execPath, [GEN, '--check', stale], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(s.status, 1);
  assert.match(s.stderr, /run `node scripts\/gen-event-docs\.mjs`/);
  assert.equal(readFileSync(stale, 'utf8'), doc.replace(/^\| `egress` .*\n/m, ''), '--check writes nothing');
  // Without --check it writes the file.
  const out = join(dir, 'new', 'EVENTS.md');
  assert.equal(spawnSync(process.execPath, [GEN, out], { cwd: ROOT }).status, 0);
  assert.equal(readFileSync(out, 'utf8'), doc);
});

test('latchgate audit --event-type: a name, or the start of exactly one; anything else is refused with the nearest names', () => {
  assert.equal(resolveEventType('egress'), 'egress');
  assert.equal(resolveEventType('lease_i'), 'lease_issued');
  assert.equal(resolveEventType('credential'), 'credential_proxy');
  assert.throws(() => resolveEventType('approval_'), /start of approval_expired, approval_granted, approval_denied/);
  assert.throws(() => resolveEventType('admin'), /admin_revoke_all/);
  assert.throws(() => resolveEventType('acton_call'), /nearest: action_call/);
  assert.throws(() => resolveEventType('lease_issue_d'), /nearest: lease_issued/);
  assert.throws(() => resolveEventType('zzzzzz'), (e) => /no event type/.test(e.message) && !/nearest/.test(e.message));
  // Every name resolves to itself, and every unique start of one to it.
  for (const name of EVENT_TYPES) {
    assert.equal(resolveEventType(name), name);
    for (let n = 1; n < name.length; n++) {
      const start = name.slice(0, n);
      if (EVENT_TYPES.filter((x) => x.startsWith(start)).length === 1) assert.equal(resolveEventType(start), name);
    }
  }
});

test('latchgate audit: --help lists every event type; a wrong --event-type is refused before the ledger is opened', (t) => {
  const home = tempDir(t);
  const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: join(home, 'state'), XDG_RUNTIME_DIR: join(home, 'run'), XDG_CONFIG_HOME: join(home, 'config') };
  const lg = (...args) => spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
  const help = lg('audit', '--help');
  assert.equal(help.status, 0, help.stderr);
  const w = Math.max(...EVENT_TYPES.map((n) => n.length));
  for (const name of EVENT_TYPES) assert.ok(help.stdout.includes(`\n  ${name.padEnd(w)}  ${EVENT_CATALOGUE[name].meaning}\n`), `--help lists ${name}`);
  const bad = lg('audit', '--event-type', 'acton_call');
  assert.equal(bad.status, 125, bad.stderr);
  assert.match(bad.stderr, /--event-type.*acton_call.*nearest: action_call/);
  assert.equal(existsSync(join(home, 'state')), false, 'nothing was opened');
  // A unique start runs the query with the full name (an empty ledger here).
  mkdirSync(join(home, 'run'), { recursive: true, mode: 0o700 });
  const ok = lg('audit', '--json', '--event-type', 'lease_i');
  assert.equal(ok.status, 0, ok.stderr);
  assert.deepEqual(JSON.parse(ok.stdout), []);
});

test("an event the catalogue refuses is the gate's fault (500), while a bad audit filter stays the caller's (400)", async () => {
  const { asGateError } = await import('../../dist/gate/audit.js');
  const refused = asGateError(new EventRefusedError('action_call event: decision is missing', 'action_call', 'decision'));
  assert.equal(refused.status, 500);
  assert.equal(refused.code, 'internal_error');
  assert.match(refused.message, /decision is missing.*nothing was executed/);
  assert.equal(asGateError(new LedgerError('limit: expected a positive integer')).status, 400);
});
