// The key histories against the ledger (src/ledger/key-roots.ts): whoever
// can write the state directory cannot make a key of their own verify or
// sign, by adding it to a history or by replacing a history (and its key
// file) with a chain of their own, whether the gate runs or not. Rotation,
// the legitimate change, keeps every root and every receipt verifying.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, sign } from 'node:crypto';
import path from 'node:path';
import { KeyStore } from '../../dist/keys/store.js';
import { jwkThumbprint, rawPublicKey } from '../../dist/keys/ed25519.js';
import { endorse } from '../../dist/keys/chain.js';
import { verifyLedgerFile } from '../../dist/ledger/verify.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { signReceipt, verifyReceipt } from '../../dist/ledger/receipt.js';
import { checkChainedState } from '../../dist/gate/state-check.js';
import { Agent, grantAll, startGate } from '../helpers/gate.mjs';
import { admin, gateFor, tempDir } from '../helpers/gate-faults.mjs';

const keysDir = (stateDir) => path.join(stateDir, 'keys');
const verify = (stateDir) => verifyLedgerFile(path.join(stateDir, 'ledger.sqlite3'), new KeyStore(keysDir(stateDir)), checkChainedState);
const roots = (g) => g.ctx.ledger.query({ event_type: 'key_history_roots', limit: 100 });

/** A gate on a kept state dir, with one receipt signed. */
async function gateWithReceipt(t, stateDir) {
  const g = await startGate({ stateDir });
  let open = true;
  t.after(() => open && g.close({ keepState: true }));
  const close = g.close.bind(g);
  g.close = (o) => ((open = false), close(o));
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  const r = await a.execute('t_ok', { n: 1 });
  assert.equal(r.status, 200, r.text);
  return { g, a, receipt: r.body.receipt_id };
}

/** The receipt key files replaced by a chain of the attacker's own (a root that endorses itself). */
function replaceReceiptChain(stateDir) {
  const dir = path.join(stateDir, 'attacker-keys');
  const ks = new KeyStore(dir);
  ks.current('receipt');
  for (const f of ['receipt.key', 'receipt-keys.jwks']) copyFileSync(path.join(dir, f), path.join(keysDir(stateDir), f));
  return ks;
}

test('a gate records each key history\'s root once; rotations keep the roots, and every receipt verifies', async (t) => {
  const stateDir = tempDir(t, 'latchgate-roots-');
  const { g, a } = await gateWithReceipt(t, stateDir);
  const [first] = roots(g);
  assert.equal(roots(g).length, 1);
  for (const kind of ['lease', 'grant', 'receipt']) assert.equal(first.details.roots[kind], g.ctx.keys.chain(kind).root, kind);
  assert.equal((await admin(g, 'POST', '/v1/admin/keys/rotate', { kind: 'receipt' })).status, 200);
  assert.equal((await a.execute('t_ok', { n: 2 })).status, 200);
  await g.close({ keepState: true });
  const again = await gateFor(t, { stateDir });
  assert.equal(roots(again).length, 1, 'nothing new to record');
  assert.deepEqual(again.tampered, []);
  const v = verify(stateDir);
  assert.equal(v.intact, true, JSON.stringify(v.state));
  assert.equal(v.receipts.total, 2);
  assert.equal(v.state.values['key_root.receipt'].recorded, first.details.roots.receipt);
});

test('attack, gate stopped: a receipt key history replaced by a chain of one\'s own is refused at start and by verify; its forged receipt does not verify', async (t) => {
  const stateDir = tempDir(t, 'latchgate-roots-');
  const { g, receipt } = await gateWithReceipt(t, stateDir);
  const real = JSON.parse(g.db.prepare('SELECT receipt_json FROM receipts WHERE receipt_id = ?').pluck().get(receipt));
  await g.close({ keepState: true });
  const attacker = replaceReceiptChain(stateDir);

  const reopened = await gateFor(t, { stateDir });
  const m = reopened.tampered.find((x) => x.table === 'keys/receipt-keys.jwks');
  assert.ok(m, JSON.stringify(reopened.tampered));
  assert.match(m.message, /has root \S+, but the ledger's chain recorded root \S+ .*the key history was replaced.*Fix: restore the keys\/ directory/);
  // A receipt the attacker signs with its own key: the reopened gate, pinned to the recorded root, refuses it.
  const forged = signReceipt(attacker, { ...real, outcome: 'verified' });
  assert.deepEqual(verifyReceipt(attacker, forged), { ok: true }, 'it verifies against the attacker\'s own history');
  assert.equal(verifyReceipt(reopened.ctx.keys, forged).ok, false, 'not against the pinned one');
  const v = verify(stateDir);
  assert.equal(v.intact, false);
  assert.ok(v.state.mismatches.some((x) => x.table === 'keys/receipt-keys.jwks'));
  assert.equal(v.receipts.bad.length, 1, 'the real receipt no longer finds its key in the replaced history');
  assert.equal(roots(reopened).length, 1, 'a different root is never recorded over the old one');
});

test('attack, gate running: histories swapped under a running gate sign and verify nothing', async (t) => {
  const stateDir = tempDir(t, 'latchgate-roots-');
  const { g, a, receipt } = await gateWithReceipt(t, stateDir);
  const attacker = replaceReceiptChain(stateDir);
  const r = await a.execute('t_ok', { n: 3 });
  assert.notEqual(r.status, 200, 'no receipt is signed with the swapped-in key');
  assert.equal(g.db.prepare('SELECT count(*) FROM receipts').pluck().get(), 1);
  const kid = attacker.current('receipt').kid;
  const look = g.ctx.keys.keyAt('receipt', kid, new Date());
  assert.equal(look.key, undefined);
  assert.match(look.reason, /root the ledger recorded: the key history was replaced/);
  const stored = JSON.parse(g.db.prepare('SELECT receipt_json FROM receipts WHERE receipt_id = ?').pluck().get(receipt));
  assert.equal(verifyReceipt(g.ctx.keys, stored).ok, false, 'the running gate trusts no key of the swapped history');
  assert.equal(verifyReceipt(g.ctx.keys, signReceipt(attacker, stored)).ok, false, "nor a receipt signed by the attacker's key");
});

test('attack: a key appended to the receipt history by hand: the gate refuses to start, verify names it, nothing signed by it verifies', async (t) => {
  const stateDir = tempDir(t, 'latchgate-roots-');
  const { g } = await gateWithReceipt(t, stateDir);
  await g.close({ keepState: true });
  const file = path.join(keysDir(stateDir), 'receipt-keys.jwks');
  const h = JSON.parse(readFileSync(file, 'utf8'));
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = rawPublicKey(publicKey);
  const e = { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url'), kid: jwkThumbprint(raw), use: 'sig', alg: 'EdDSA', created_at: new Date().toISOString() };
  e.endorsement = endorse('receipt', h.keys, e, privateKey, h.keys.at(-1).kid);
  writeFileSync(file, JSON.stringify({ keys: [...h.keys.map((k) => ({ ...k, retired_at: k.retired_at ?? e.created_at })), e] }, null, 2));
  await assert.rejects(startGate({ stateDir }), /the receipt key history cannot be trusted to sign with: key \S+ \(entry 1 of the receipt key history\) carries an endorsement by \S+ that does not verify.*Fix: restore/);
  const v = verify(stateDir);
  assert.equal(v.intact, false);
  assert.match(v.state.mismatches.find((x) => x.table === 'keys/receipt-keys.jwks').message, /does not verify: the history was edited.*; no receipt key verifies or signs until it is fixed/);
  const ks = new KeyStore(keysDir(stateDir));
  assert.equal(ks.verify('receipt', e.kid, Buffer.from('x'), sign(null, Buffer.from('x'), privateKey).toString('hex'), { signedAt: new Date() }), false);
});

test('attack: the key files rolled back to a copy from before a rotation: the running gate signs nothing with the retired key, the restarted gate refuses to start, verify reports it', async (t) => {
  const stateDir = tempDir(t, 'latchgate-roots-');
  const { g, a } = await gateWithReceipt(t, stateDir);
  const saved = ['receipt.key', 'receipt-keys.jwks'].map((f) => [f, readFileSync(path.join(keysDir(stateDir), f))]);
  const rot = await admin(g, 'POST', '/v1/admin/keys/rotate', { kind: 'receipt', wait_seconds: 0 });
  assert.equal(rot.status, 200, rot.text);
  assert.equal((await a.execute('t_ok', { n: 4 })).status, 200, 'the legitimate path: the rotated key signs');
  for (const [f, bytes] of saved) writeFileSync(path.join(keysDir(stateDir), f), bytes, { mode: f.endsWith('.key') ? 0o600 : 0o644 });
  const before = g.db.prepare('SELECT count(*) FROM receipts').pluck().get();
  assert.notEqual((await a.execute('t_ok', { n: 5 })).status, 200, 'no receipt signed by the retired key');
  assert.equal(g.db.prepare('SELECT count(*) FROM receipts').pluck().get(), before);
  assert.match(g.ctx.keys.keyAt('receipt', saved.length && JSON.parse(saved[1][1]).keys.at(-1).kid, new Date()).reason, /no longer lists key \S+, which was already current: the key files were rolled back/);
  await g.close({ keepState: true });
  await assert.rejects(gateFor(t, { stateDir }).then((r) => (r.tampered.length ? Promise.reject(new Error(r.tampered[0].message)) : r)), /does not list key \S+, which the rotation recorded in admin_keys_rotated event id=\d+ made current: the key files were rolled back/);
  const v = verify(stateDir);
  assert.equal(v.intact, false);
  assert.ok(v.state.mismatches.some((m) => /rolled back/.test(m.message)));
});

test('attack: the receipt history replaced, every receipt re-signed with it, and a key_history_roots event naming its root appended to the chain (no key needed): the first recorded root stands, the gate pins it, verify names the appended event', async (t) => {
  const stateDir = tempDir(t, 'latchgate-roots-');
  const { g, receipt } = await gateWithReceipt(t, stateDir);
  const [first] = roots(g);
  await g.close({ keepState: true });
  const attacker = replaceReceiptChain(stateDir);
  const ledger = Ledger.open(path.join(stateDir, 'ledger.sqlite3'));
  t.after(() => ledger.db.open && ledger.db.close());
  // result_hash does not cover the signature fields: re-signed, each receipt still matches the receipt_hash its event recorded.
  for (const row of ledger.db.prepare('SELECT receipt_id, receipt_json FROM receipts').all()) {
    ledger.db.prepare('UPDATE receipts SET receipt_json = ? WHERE receipt_id = ?').run(JSON.stringify(signReceipt(attacker, JSON.parse(row.receipt_json))), row.receipt_id);
  }
  ledger.append({ event_type: 'key_history_roots', decision: 'allow', details: { roots: { ...first.details.roots, receipt: attacker.chain('receipt').root } } });
  const appended = ledger.db.prepare('SELECT max(id) AS id FROM audit_events').get();
  ledger.db.close();

  const v = verify(stateDir);
  assert.equal(v.first_bad, null, 'the chain itself holds: the event was appended as the ledger appends');
  assert.equal(v.intact, false);
  const m = v.state.mismatches.find((x) => x.table === 'keys/receipt-keys.jwks');
  assert.ok(m, JSON.stringify(v.state));
  assert.equal(m.recorded, first.details.roots.receipt, 'the first recorded root is the one that counts');
  assert.match(m.message, new RegExp(`recorded root ${first.details.roots.receipt} .*and then root ${attacker.chain('receipt').root} \\(event id=${appended.id}\\): a root is recorded once and never changes.*Fix: `));
  assert.equal(v.state.values['key_root.receipt'].recorded, first.details.roots.receipt);

  const reopened = await gateFor(t, { stateDir });
  assert.ok(reopened.tampered.some((x) => x.table === 'keys/receipt-keys.jwks'), JSON.stringify(reopened.tampered));
  const stored = JSON.parse(reopened.db.prepare('SELECT receipt_json FROM receipts WHERE receipt_id = ?').pluck().get(receipt));
  assert.equal(verifyReceipt(reopened.ctx.keys, stored).ok, false, 'the gate pins the first root: the re-signed receipt verifies with nothing');
});
