// Receipts as evidence against someone who can write the state directory.
// A real gate writes a state directory (executions, one approved, a receipt
// key rotation, an admin act last); each case damages a copy of it for real,
// with the sqlite3 command or by editing the key history file, and
// `latchgate verify` must exit 2 naming the damage; the untouched copy exits 0.
// The forgeries that an attacker can chain properly (receipt, event naming it
// with its hash, chain_head moved) are caught by the key rules alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { canonicalize } from '../../dist/crypto/jcs.js';
import { jwkThumbprint } from '../../dist/keys/ed25519.js';
import { eventHash } from '../../dist/ledger/ledger.js';
import { computeResultHash } from '../../dist/ledger/receipt.js';
import { Agent, grantAll, startGate } from '../helpers/gate.mjs';
import { admin, cliVerify, sqlite3 } from '../helpers/gate-faults.mjs';

let base;
/** What the real gate left: its receipts (oldest first), the receipt key before the rotation (kept by the attacker), and the kids. */
const made = {};

before(async () => {
  const g = await startGate();
  base = g.stateDir;
  try {
    grantAll(g);
    const a = new Agent(g.agentSocket);
    await a.lease();
    assert.equal((await a.execute('t_ok', { n: 1 })).status, 200);
    assert.equal((await a.execute('t_fail', { n: 1 })).status, 502);
    const held = await a.execute('t_high', { n: 1 });
    assert.equal(held.status, 202, held.text);
    assert.equal((await admin(g, 'POST', `/v1/approvals/${held.body.approval_id}/approve`, {})).status, 200);
    made.stolen = readFileSync(path.join(base, 'keys', 'receipt.key'), 'utf8');
    made.oldKid = g.ctx.keys.current('receipt').kid;
    const rotated = await admin(g, 'POST', '/v1/admin/keys/rotate', { body: undefined });
    assert.equal(rotated.status, 200, rotated.text);
    made.newKid = rotated.body.kid;
    assert.equal((await a.execute('t_ok', { n: 2 })).status, 200);
    assert.equal((await admin(g, 'POST', '/v1/admin/drain', {})).status, 200);
    made.receipts = g.db.prepare('SELECT receipt_json FROM receipts ORDER BY created_at').pluck().all().map((j) => JSON.parse(j));
    made.retiredAt = g.ctx.keys.jwks('receipt').keys.find((k) => k.kid === made.oldKid).retired_at;
  } finally {
    await g.close({ keepState: true });
  }
  // The checkpoint worker closes its connection after close() returns; the last connection to close
  // folds the WAL into the database and removes it. Copies are taken once that has happened.
  for (let i = 0; i < 200 && existsSync(path.join(base, 'ledger.sqlite3-wal')); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(existsSync(path.join(base, 'ledger.sqlite3-wal')), false, 'the ledger\'s WAL is still there 10 s after the gate closed');
  assert.equal(made.receipts.length, 4);
  assert.ok(made.receipts.every((r) => r.receipt_format === 2));
});

after(() => rmSync(base, { recursive: true, force: true }));

/** A copy of the gate's state directory, removed after the test. */
function copy(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-evidence-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(base, dir, { recursive: true });
  return { dir, ledger: path.join(dir, 'ledger.sqlite3') };
}

const q = (v) => (v === null || v === undefined ? 'NULL' : typeof v === 'number' ? String(v) : `'${String(v).replaceAll("'", "''")}'`);

/** Reads rows of the copy (reading is not the damage: no writes). */
function read(file, sql, ...args) {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all(...args);
  } finally {
    db.close();
  }
}

function assertBroken(r, what) {
  assert.equal(r.code, 2, `${what}: latchgate verify exited ${r.code}\n${r.text}${r.stderr}`);
  assert.equal(r.report.intact, false, what);
}

/** A receipt as the gate signs it (format 2, every member hashed), signed by privateKey as kid. */
function forgeReceipt(fields, privateKey, kid) {
  const r = { ...fields };
  delete r.result_hash;
  delete r.receipt_signature;
  delete r.signing_key_id;
  const result_hash = computeResultHash(r);
  return { ...r, result_hash, signing_key_id: kid, receipt_signature: sign(null, Buffer.from(result_hash, 'ascii'), privateKey).toString('hex') };
}

/** A new execution's fields, dated now, from the first real receipt. */
function newExecution(id) {
  const now = new Date().toISOString();
  return { ...made.receipts[0], receipt_id: `r-forged-${id}`, grant_id: `g-forged-${id}`, trace_id: `t-forged-${id}`, started_at: now, finished_at: now };
}

/**
 * Inserts a receipt and an action_call event naming it (with its hash) at the
 * end of the chain, chain_head moved: everything the gate itself would write,
 * but for the signature, which is the forger's.
 */
function insertChained(file, receipt) {
  const [{ value: head }] = read(file, `SELECT value FROM ledger_metadata WHERE key = 'chain_head'`);
  const event = {
    event_type: 'action_call',
    trace_id: receipt.trace_id,
    timestamp: receipt.finished_at,
    decision: 'allow',
    subject: { principal: receipt.principal, session_id: receipt.session_id },
    action: { action_id: receipt.action_id },
    execution: { grant_id: receipt.grant_id, receipt_id: receipt.receipt_id, receipt_hash: receipt.result_hash },
    prev_hash: head,
  };
  const json = canonicalize(event);
  const hash = eventHash(json);
  sqlite3(
    file,
    `BEGIN;
     INSERT INTO receipts(receipt_id, grant_id, trace_id, receipt_json, created_at) VALUES (${[receipt.receipt_id, receipt.grant_id, receipt.trace_id, canonicalize(receipt), receipt.finished_at].map(q).join(', ')});
     INSERT INTO audit_events(trace_id, timestamp, event_type, principal, session_id, action_id, decision, event_json, hash)
       VALUES (${[event.trace_id, event.timestamp, 'action_call', receipt.principal, receipt.session_id, receipt.action_id, 'allow', json, hash].map(q).join(', ')});
     UPDATE ledger_metadata SET value = ${q(hash)} WHERE key = 'chain_head';
     COMMIT;`,
  );
}

test('the state directory as the gate left it: latchgate verify exits 0, every receipt verified and named', (t) => {
  const r = cliVerify(t, copy(t).dir, { text: true });
  assert.equal(r.code, 0, r.text + r.stderr);
  assert.equal(r.report.intact, true);
  assert.deepEqual(r.report.receipts, { total: 4, bad: [] });
  assert.deepEqual(r.report.intents_without_receipts, []);
  assert.match(r.text, /^Ledger integrity verified: \d+ events/);
});

test('a receipt deleted, with or without its intent: exit 2, naming the receipt and the event that names it', (t) => {
  const victim = made.receipts[1];
  for (const sql of [`DELETE FROM receipts WHERE receipt_id = ${q(victim.receipt_id)};`, `DELETE FROM receipts WHERE receipt_id = ${q(victim.receipt_id)}; DELETE FROM execution_intents WHERE grant_id = ${q(victim.grant_id)};`]) {
    const c = copy(t);
    const [event] = read(c.ledger, 'SELECT id FROM audit_events WHERE trace_id = ?', victim.trace_id);
    sqlite3(c.ledger, sql);
    const r = cliVerify(t, c.dir, { text: true });
    assertBroken(r, sql);
    assert.equal(r.report.first_bad, null, 'the chain itself holds');
    const reason = `missing: event id=${event.id} (trace_id ${victim.trace_id}) names this receipt, which is not in the receipts table: it was deleted`;
    assert.deepEqual(r.report.receipts.bad, [{ receipt_id: victim.receipt_id, reason }]);
    assert.ok(r.text.includes(`receipt ${victim.receipt_id}: ${reason}`), r.text);
  }
});

test('a format-2 receipt stripped of receipt_format (to hash as format 1, over fewer members): exit 2', (t) => {
  const c = copy(t);
  const victim = made.receipts[0];
  sqlite3(c.ledger, `UPDATE receipts SET receipt_json = json_remove(receipt_json, '$.receipt_format') WHERE receipt_id = ${q(victim.receipt_id)};`);
  const r = cliVerify(t, c.dir);
  assertBroken(r, 'downgrade');
  assert.deepEqual(r.report.receipts.bad, [{ receipt_id: victim.receipt_id, reason: 'result_hash does not match the receipt fields: the receipt was edited' }]);
});

test('a receipt signed with the current receipt key (read from the state directory) that no chained event names: exit 2', (t) => {
  const c = copy(t);
  const key = createPrivateKey(readFileSync(path.join(c.dir, 'keys', 'receipt.key'), 'utf8'));
  const forged = forgeReceipt(newExecution('unnamed'), key, made.newKid);
  sqlite3(c.ledger, `INSERT INTO receipts(receipt_id, grant_id, trace_id, receipt_json, created_at) VALUES (${[forged.receipt_id, forged.grant_id, forged.trace_id, canonicalize(forged), forged.finished_at].map(q).join(', ')});`);
  const r = cliVerify(t, c.dir);
  assertBroken(r, 'unnamed receipt');
  assert.deepEqual(r.report.receipts.bad, [{ receipt_id: forged.receipt_id, reason: 'no chained event names this receipt: no event of its trace (t-forged-unnamed) is in the ledger; it was added to the receipts table outside the gate' }]);
});

test('event ids with a gap (an event moved to a later id), or events cut off the end with chain_head moved back: exit 2', (t) => {
  const c = copy(t);
  const [{ n: last }] = read(c.ledger, 'SELECT max(id) AS n FROM audit_events');
  sqlite3(c.ledger, `UPDATE audit_events SET id = ${last + 3} WHERE id = ${last};`);
  let r = cliVerify(t, c.dir);
  assertBroken(r, 'gap');
  assert.deepEqual(r.report.first_bad, { id: last, trace_id: null, reason: `missing: events id=${last}..${last + 2} are not there, and event id=${last + 3} links to event id=${last - 1}: events were deleted and the ids of others changed` });

  const d = copy(t);
  const [prev] = read(d.ledger, 'SELECT hash FROM audit_events WHERE id = ?', last - 1);
  sqlite3(d.ledger, `DELETE FROM audit_events WHERE id = ${last}; UPDATE ledger_metadata SET value = ${q(prev.hash)} WHERE key = 'chain_head';`);
  r = cliVerify(t, d.dir, { text: true });
  assertBroken(r, 'tail cut');
  assert.deepEqual(r.report.first_bad, { id: last, trace_id: null, reason: `missing: chain_head was moved back to the event before them; the last event (id=${last}) was deleted (sqlite_sequence records id=${last} as handed out)` });
  assert.match(r.text, new RegExp(`^BROKEN at id=${last} trace_id=\\(missing\\): missing: chain_head was moved back`));
});

test('a receipt forged with the rotated-out receipt key and chained like the gate would: exit 2, the retired key signs nothing after its retirement', (t) => {
  const c = copy(t);
  const forged = forgeReceipt(newExecution('retired'), createPrivateKey(made.stolen), made.oldKid);
  insertChained(c.ledger, forged);
  const r = cliVerify(t, c.dir);
  assertBroken(r, 'retired key');
  assert.equal(r.report.first_bad, null, 'the forger chained it properly');
  assert.deepEqual(r.report.state.mismatches, []);
  assert.deepEqual(r.report.receipts.bad, [
    { receipt_id: forged.receipt_id, reason: `key ${made.oldKid} was retired at ${made.retiredAt}; the signed receipt is dated ${forged.finished_at}, after that: a retired key signs nothing after its retirement` },
  ]);
  // The same forgery with the current key (the forger can read it too) is the limit of what a ledger can show on its own.
  const d = copy(t);
  insertChained(d.ledger, forgeReceipt(newExecution('current'), createPrivateKey(readFileSync(path.join(d.dir, 'keys', 'receipt.key'), 'utf8')), made.newKid));
  assert.equal(cliVerify(t, d.dir).code, 0, 'without signed checkpoints kept elsewhere, nothing tells it apart');
});

test('a key appended to the receipt key history by hand (unendorsed, or with a forged endorsement) and a receipt it signed: exit 2', (t) => {
  for (const endorsed of [false, true]) {
    const c = copy(t);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const x = publicKey.export({ format: 'jwk' }).x;
    const kid = jwkThumbprint(Buffer.from(x, 'base64url'));
    const file = path.join(c.dir, 'keys', 'receipt-keys.jwks');
    const history = JSON.parse(readFileSync(file, 'utf8'));
    const entry = { kty: 'OKP', crv: 'Ed25519', x, kid, use: 'sig', alg: 'EdDSA', created_at: new Date().toISOString() };
    if (endorsed) entry.endorsement = { by: made.newKid, sig: sign(null, Buffer.from('not the endorsement payload'), privateKey).toString('base64url') };
    history.keys.at(-1).retired_at = entry.created_at;
    history.keys.push(entry);
    writeFileSync(file, `${JSON.stringify(history, null, 2)}\n`);
    const forged = forgeReceipt(newExecution(`appended-${endorsed}`), privateKey, kid);
    insertChained(c.ledger, forged);
    const r = cliVerify(t, c.dir);
    assertBroken(r, `appended key (endorsed: ${endorsed})`);
    assert.equal(r.report.first_bad, null);
    const why = endorsed
      ? `key ${kid} (entry 2 of the receipt key history) carries an endorsement by ${made.newKid} that does not verify: the history was edited or a key was added to it by hand; restore it from a backup`
      : `key ${kid} (entry 2 of the receipt key history) is not endorsed by the key before it: the history was edited or a key was added to it by hand; restore it from a backup`;
    assert.deepEqual(r.report.receipts.bad.find((b) => b.receipt_id === forged.receipt_id), { receipt_id: forged.receipt_id, reason: why });
    // And every receipt key stops verifying: the history cannot be trusted at all.
    assert.equal(r.report.receipts.bad.length, 5);
    assert.ok(r.report.state.mismatches.some((m) => m.table === 'keys/receipt-keys.jwks' && m.message.includes(why)), JSON.stringify(r.report.state.mismatches));
  }
});
