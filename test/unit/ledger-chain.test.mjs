// Ledger: append, query, export, evidence tables, format refusal, and two
// processes appending to one file at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { Ledger, LedgerError, eventHash } from '../../dist/ledger/ledger.js';
import { openDb, immediate } from '../../dist/ledger/db.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { signReceipt } from '../../dist/ledger/receipt.js';
import { canonicalize, canonicalHash } from '../../dist/crypto/jcs.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const LEDGER_JS = fileURLToPath(new URL('../../dist/ledger/ledger.js', import.meta.url));

function fresh(t) {
  const dir = tempDir(t, 'latchgate-ledger-');
  const ledger = Ledger.open(join(dir, 'ledger.db'));
  t.after(() => ledger.db.close());
  return { dir, ledger };
}

// A lease_issued event carries its lease's details (src/core/event-catalogue.ts).
const LEASE = { scopes: ['tools:call'], budgets: null, expires_at: '2030-01-01T00:00:00.000Z' };
const ev = (i, extra = {}) => ({
  event_type: i % 3 === 0 ? 'lease_issued' : 'action_call',
  decision: ['allow', 'deny', 'pending_approval'][i % 3],
  subject: { principal: `agent-${i % 2}`, session_id: `s-${i % 4}` },
  action: { action_id: i % 2 ? 'http_fetch' : 'github_create_issue' },
  details: { n: i, ...(i % 3 === 0 ? LEASE : {}) },
  ...extra,
});

test('append: trace_id, ISO timestamp with ms, prev_hash chain, stored bytes are the canonical event', (t) => {
  const { ledger } = fresh(t);
  assert.equal(ledger.chainHead(), '');
  const a = ledger.append(ev(0));
  assert.match(a.trace_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.match(a.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(a.prev_hash, null);
  const b = ledger.append(ev(1, { trace_id: 'given-trace' }));
  assert.equal(b.trace_id, 'given-trace');
  assert.equal(b.prev_hash, canonicalHash(a));
  assert.equal(ledger.chainHead(), canonicalHash(b));
  const row = ledger.db.prepare('SELECT * FROM audit_events WHERE trace_id = ?').get('given-trace');
  assert.equal(row.event_json, canonicalize(b));
  assert.equal(row.hash, `sha256:${createHash('sha256').update(row.event_json).digest('hex')}`);
  assert.equal(row.principal, 'agent-1');
  assert.equal(row.session_id, 's-1');
  assert.equal(row.action_id, 'http_fetch');
  assert.equal(row.decision, 'deny');
  assert.equal(row.event_type, 'action_call');
  // a caller cannot choose timestamp or prev_hash
  const c = ledger.append({ event_type: 'admin_drain', decision: 'allow', subject: { principal: 'root' }, details: {}, timestamp: '1999-01-01T00:00:00.000Z', prev_hash: null, operator: { name: 'root', uid: 0 } });
  assert.notEqual(c.timestamp, '1999-01-01T00:00:00.000Z');
  assert.equal(c.prev_hash, canonicalHash(b));
  // undefined fields vanish, as in the stored bytes
  const d = ledger.append(ev(1, { approval: undefined }));
  assert.equal('approval' in d, false);
  assert.equal(verifyLedger(ledger.db, new KeyStore(join(tempDir(t), 'k'))).intact, true);
});

test('append: duplicate trace_id, missing event_type and oversized events are refused and leave the chain unchanged', (t) => {
  const { ledger } = fresh(t);
  ledger.append(ev(0, { trace_id: 'dup' }));
  const head = ledger.chainHead();
  assert.throws(() => ledger.append(ev(1, { trace_id: 'dup' })), (e) => e instanceof LedgerError && e.code === 'duplicate_trace_id');
  assert.throws(() => ledger.append({}), (e) => e instanceof LedgerError && e.code === 'bad_event');
  assert.throws(() => ledger.append(ev(1, { details: { blob: 'x'.repeat(300 * 1024) } })), /exceeds/);
  assert.equal(ledger.chainHead(), head);
  assert.equal(ledger.count(), 1);
});

test('appendInTransaction: refuses outside a transaction; inside one it commits or rolls back with the other writes', (t) => {
  const { ledger } = fresh(t);
  assert.throws(() => ledger.appendInTransaction(ev(0)), (e) => e.code === 'not_in_transaction');
  immediate(ledger.db, () => {
    ledger.appendInTransaction(ev(1));
    ledger.appendInTransaction(ev(2));
  });
  assert.equal(ledger.count(), 2);
  assert.throws(() =>
    immediate(ledger.db, () => {
      ledger.appendInTransaction(ev(3));
      throw new Error('boom');
    }),
  );
  assert.equal(ledger.count(), 2);
  // append() nested in an outer transaction becomes a savepoint, not a second BEGIN
  immediate(ledger.db, () => ledger.append(ev(4)));
  assert.equal(ledger.count(), 3);
  assert.equal(verifyLedger(ledger.db, new KeyStore(join(tempDir(t), 'k'))).intact, true);
});

test('query: filters, newest last, default limit 100, max 10000', (t) => {
  const { ledger } = fresh(t);
  const all = [];
  immediate(ledger.db, () => {
    for (let i = 0; i < 150; i++) all.push(ledger.appendInTransaction(ev(i)));
  });
  const latest = ledger.query();
  assert.equal(latest.length, 100);
  assert.deepEqual(latest.map((e) => e.details.n), all.slice(50).map((e) => e.details.n));
  assert.deepEqual(ledger.query({ limit: 3 }).map((e) => e.details.n), [147, 148, 149]);
  const expect = (f, pred) => assert.deepEqual(ledger.query({ ...f, limit: 10000 }).map((e) => e.trace_id), all.filter(pred).map((e) => e.trace_id), JSON.stringify(f));
  expect({ action: 'http_fetch' }, (e) => e.action.action_id === 'http_fetch');
  expect({ principal: 'agent-0' }, (e) => e.subject.principal === 'agent-0');
  expect({ decision: 'deny' }, (e) => e.decision === 'deny');
  expect({ event_type: 'lease_issued' }, (e) => e.event_type === 'lease_issued');
  expect({ session_id: 's-3' }, (e) => e.subject.session_id === 's-3');
  expect({ trace_id: all[7].trace_id }, (e) => e === all[7]);
  expect({ principal: 'agent-1', decision: 'allow', session_id: 's-1' }, (e) => e.subject.principal === 'agent-1' && e.decision === 'allow' && e.subject.session_id === 's-1');
  const mid = all[60].timestamp;
  expect({ after: mid }, (e) => e.timestamp >= mid);
  expect({ before: mid }, (e) => e.timestamp < mid);
  // an offset time is compared in UTC
  const local = `${new Date(Date.parse(mid) + 2 * 3600_000).toISOString().slice(0, 23)}+02:00`;
  expect({ after: local }, (e) => e.timestamp >= mid);
  assert.deepEqual(ledger.query({ principal: 'nobody' }), []);
  assert.throws(() => ledger.query({ limit: 10001 }), /maximum of 10000/);
  assert.throws(() => ledger.query({ limit: 0 }), /positive integer/);
  assert.throws(() => ledger.query({ after: 'yesterday-ish' }), /not a time/);
  // filter values are bound, never spliced into SQL
  assert.deepEqual(ledger.query({ principal: "x' OR '1'='1" }), []);
});

test('exportJsonl: streams every matching event, oldest first, exact stored bytes that re-verify as a chain', (t) => {
  const { ledger } = fresh(t);
  for (let i = 0; i < 30; i++) ledger.append(ev(i));
  const lines = [];
  const n = ledger.exportJsonl((l) => lines.push(l));
  assert.equal(n, 30);
  assert.ok(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')));
  const events = lines.map((l) => JSON.parse(l));
  assert.deepEqual(events, ledger.query({ limit: 30 }));
  let prev = null;
  for (const l of lines) {
    const e = JSON.parse(l);
    assert.equal(e.prev_hash, prev);
    assert.equal(canonicalize(e), l.slice(0, -1));
    prev = eventHash(l.slice(0, -1));
  }
  assert.equal(prev, ledger.chainHead());
  const denied = [];
  assert.equal(ledger.exportJsonl((l) => denied.push(JSON.parse(l)), { decision: 'deny' }), 10);
  assert.ok(denied.every((e) => e.decision === 'deny'));
  const tail = [];
  ledger.exportJsonl((l) => tail.push(JSON.parse(l).details.n), { limit: 2 });
  assert.deepEqual(tail, [28, 29]);
});

test('intents, one-shot grants and receipts; evidence commit is atomic', (t) => {
  const { dir, ledger } = fresh(t);
  const keys = new KeyStore(join(dir, 'keys'));
  const intent = (g) => ({ grant_id: g, trace_id: `t-${g}`, action_id: 'http_fetch', principal: 'agent-0', provider_module_digest: 'builtin:http_api', request_hash: 'sha256:00', started_at: new Date().toISOString() });
  assert.equal(ledger.consumeGrantAndWriteIntent(intent('g1')), true);
  assert.equal(ledger.consumeGrantAndWriteIntent(intent('g1')), false, 'a grant is one-shot');
  assert.equal(ledger.consumeGrant('g2', 'http_fetch', 'agent-0'), true);
  assert.equal(ledger.consumeGrant('g2', 'http_fetch', 'agent-0'), false);
  assert.equal(ledger.isGrantConsumed('g2'), true);
  assert.equal(ledger.isGrantConsumed('g3'), false);
  ledger.writeIntent({ ...intent('g2'), approved_by: 'alice' });
  assert.deepEqual(ledger.intentsWithoutReceipts().map((i) => i.grant_id), ['g1', 'g2']);
  assert.equal(ledger.intentsWithoutReceipts()[1].approved_by, 'alice');
  assert.equal('approved_by' in ledger.intentsWithoutReceipts()[0], false);

  const receipt = signReceipt(keys, {
    receipt_id: 'r1',
    grant_id: 'g1',
    trace_id: 't-g1',
    provider_module_digest: 'builtin:http_api',
    provider_receipt: { status: 200 },
    normalized_result: { kind: 'success', summary: 'ok' },
    verification_outcome: { status: 'verified' },
    effect_evidence: [],
    started_at: '2025-01-01T00:00:00.000Z',
    finished_at: '2025-01-01T00:00:00.010Z',
  });
  const final = ledger.commitEvidence(receipt, { ...ev(1), trace_id: 't-g1', decision: 'allow', execution: { grant_id: 'g1', receipt_id: 'r1' } });
  assert.equal(final.execution.receipt_id, 'r1');
  assert.deepEqual(ledger.getReceipt('r1'), receipt);
  assert.equal(ledger.getReceipt('nope'), null);
  assert.deepEqual(ledger.receiptsForGrant('g1'), [receipt]);
  assert.deepEqual(ledger.intentsWithoutReceipts().map((i) => i.grant_id), ['g2']);

  // the receipt and its audit event commit together or not at all
  const before = ledger.count();
  assert.throws(() => ledger.commitEvidence({ ...receipt, receipt_id: 'r2', grant_id: 'g2' }, ev(2, { trace_id: 't-g1' })), /already exists/);
  assert.equal(ledger.getReceipt('r2'), null);
  assert.equal(ledger.count(), before);
});

test('migrate: idempotent; a ledger with another chain_hash_format is refused with a clear error', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'ledger.db');
  const l1 = Ledger.open(path);
  l1.append(ev(0));
  l1.migrate();
  l1.db.close();
  const l2 = Ledger.open(path);
  assert.equal(l2.count(), 1);
  l2.db.prepare(`UPDATE ledger_metadata SET value = 'plain-sha256' WHERE key = 'chain_hash_format'`).run();
  l2.db.close();
  const db = openDb(path);
  t.after(() => db.close());
  assert.throws(
    () => new Ledger(db).migrate(),
    (e) => e instanceof LedgerError && e.code === 'ledger_format_mismatch' && /plain-sha256/.test(e.message) && /jcs-sha256/.test(e.message) && /Fix:/.test(e.message),
  );
});

const EGRESS_DENIAL = { host: 'api.test', port: 443, resolved_address: null, bytes_up: 0, bytes_down: 0, duration_ms: 0, reason: 'host_not_allowed', transport: 'unix', status: 403 };

test('two processes append 200 events each to the same file at once: 400 events, one unbroken chain', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'shared.db');
  Ledger.open(path).db.close();
  const startAt = Date.now() + 400;
  const script = `
    import { Ledger } from ${JSON.stringify(LEDGER_JS)};
    const [path, who, startAt] = process.argv.slice(1);
    const ledger = Ledger.open(path);
    while (Date.now() < Number(startAt)) {}
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 200; i++) {
      ledger.append({ event_type: 'egress', decision: 'deny', subject: { principal: who }, details: { ...${JSON.stringify(EGRESS_DENIAL)}, i } });
      Atomics.wait(pause, 0, 0, 1); // a gap between requests, as real traffic has: lets the other writer in
    }
    ledger.db.close();
  `;
  const run = (who) =>
    new Promise((resolve, reject) => {
      const p = spawn(process.execPath, ['--input-type=module', '-e', script, path, who, String(startAt)], { stdio: ['ignore', 'inherit', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d) => (err += d));
      p.on('error', reject);
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child ${who} exited ${code}: ${err}`))));
    });
  await Promise.all([run('A'), run('B')]);
  const ledger = Ledger.open(path);
  t.after(() => ledger.db.close());
  assert.equal(ledger.count(), 400);
  const report = verifyLedger(ledger.db, new KeyStore(join(dir, 'keys')));
  assert.equal(report.intact, true, JSON.stringify(report.first_bad));
  assert.equal(report.total_events, 400);
  assert.equal(report.verified_links, 399);
  const events = ledger.query({ limit: 400 });
  for (const who of ['A', 'B']) {
    assert.deepEqual(events.filter((e) => e.subject.principal === who).map((e) => e.details.i), [...Array(200).keys()]);
  }
  // they really interleaved (not one after the other)
  const switches = events.slice(1).filter((e, i) => e.subject.principal !== events[i].subject.principal).length;
  assert.ok(switches > 1, `expected interleaved appends, got ${switches} switches`);
});
