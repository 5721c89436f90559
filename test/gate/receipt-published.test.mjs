// A receipt handed to a third party, checked with nothing but what the gate
// publishes: the receipt keys at /.well-known/latchgate-receipt-keys.json (no
// authentication, over the real socket) and docs/FORMATS.md. The verifier
// below is written from that page alone (JCS from src/crypto/jcs.ts, Ed25519
// from node:crypto with the published JWK); it checks the keys' endorsement
// chain, then receipts the real gate produced, before and after a rotation,
// one of them approved, and refuses what the page says must be refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { canonicalize } from '../../dist/crypto/jcs.js';
import { verifyReceiptWith } from '../../dist/sdk/receipts.js';
import { Agent, grantAll, request } from '../helpers/gate.mjs';
import { admin, gateFor } from '../helpers/gate-faults.mjs';

// ------------------------------------------------ the independent verifier (docs/FORMATS.md)
const sha256hex = (bytes) => createHash('sha256').update(bytes).digest('hex');
const jcs = (v) => Buffer.from(canonicalize(v), 'utf8');
const thumbprint = (x) => createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`, 'utf8').digest('base64url');
const ed25519 = (x, msg, sig) => verify(null, msg, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' }), sig);
const FORMAT1 = ['receipt_id', 'grant_id', 'provider_module_digest', 'provider_receipt', 'normalized_result', 'verification_outcome', 'effect_evidence', 'started_at', 'finished_at', 'failure_class'];

/** The trusted receipt keys by kid (aliases included), after checking the endorsement chain; throws when it does not hold. */
function trustedKeys(published) {
  const history = published.keys.filter((e) => e.kid === thumbprint(e.x)); // aliases out
  let root;
  history.forEach((e, i) => {
    if (!e.endorsement) {
      assert.equal(root, undefined, `entry ${i}: only entries before the root go unendorsed`);
      return;
    }
    const self = e.endorsement.by === e.kid;
    assert.ok(self ? root === undefined : root !== undefined && history[i - 1].kid === e.endorsement.by, `entry ${i}: endorsed by the entry before it, or the one root`);
    const signer = self ? e : history[i - 1];
    const payload = jcs({ typ: 'latchgate-key-endorsement/1', kind: 'receipt', prior: `sha256:${sha256hex(jcs(history.slice(0, i)))}`, key: { x: e.x, kid: e.kid, created_at: e.created_at } });
    assert.ok(ed25519(signer.x, payload, Buffer.from(e.endorsement.sig, 'base64url')), `entry ${i}: its endorsement verifies`);
    if (self) root = e.kid;
  });
  assert.ok(root, 'the history has a root');
  return { root, byKid: new Map(published.keys.map((e) => [e.kid, e])) };
}

/** { ok: true } or { ok: false, reason }, by the page's four steps. */
function verifyIndependently(keys, receipt) {
  let h;
  if (receipt.receipt_format === undefined) h = Object.fromEntries(FORMAT1.map((k) => [k, receipt[k] ?? null]));
  else if (receipt.receipt_format === 2) {
    h = { ...receipt };
    for (const k of ['result_hash', 'receipt_signature', 'signing_key_id']) delete h[k];
  } else return { ok: false, reason: 'unknown receipt_format' };
  if (sha256hex(jcs(h)) !== receipt.result_hash) return { ok: false, reason: 'result_hash' };
  const key = keys.byKid.get(receipt.signing_key_id);
  if (!key) return { ok: false, reason: 'unknown key' };
  const at = Math.max(Date.parse(receipt.started_at), Date.parse(receipt.finished_at));
  if (key.retired_at !== undefined && !(at <= Date.parse(key.retired_at))) return { ok: false, reason: 'retired' };
  if (!/^[0-9a-f]{128}$/.test(receipt.receipt_signature)) return { ok: false, reason: 'signature encoding' };
  return ed25519(key.x, Buffer.from(receipt.result_hash, 'ascii'), Buffer.from(receipt.receipt_signature, 'hex')) ? { ok: true } : { ok: false, reason: 'signature' };
}

// ------------------------------------------------ the gate

test('receipts of the real gate verify with the published keys and docs/FORMATS.md alone; edits, downgrades and a retired key are refused', async (t) => {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.agentSocket);
  await a.lease();
  const first = await a.execute('t_ok', { n: 1 });
  assert.equal(first.status, 200, first.text);
  const held = await a.execute('t_high', { n: 7 });
  assert.equal(held.status, 202, held.text);
  const approved = await admin(g, 'POST', `/v1/approvals/${held.body.approval_id}/approve`, {});
  assert.equal(approved.body.http_status, 200, approved.text);
  const stolen = readFileSync(path.join(g.stateDir, 'keys', 'receipt.key'), 'utf8');
  assert.equal((await admin(g, 'POST', '/v1/admin/keys/rotate', { kind: 'receipt' })).status, 200);
  const third = await a.execute('t_ok', { n: 3 });
  assert.equal(third.status, 200, third.text);

  // Published with no authentication: no lease, no proof, no token; on the box's socket and the local one alike.
  const published = await request(g.agentSocket, 'GET', '/.well-known/latchgate-receipt-keys.json');
  assert.equal(published.status, 200, published.text);
  assert.deepEqual((await request(g.socket, 'GET', '/.well-known/latchgate-receipt-keys.json')).body, published.body);
  assert.equal(published.body.keys.length, 2);
  const [old, current] = published.body.keys;
  assert.ok(old.created_at && old.retired_at && current.created_at && current.retired_at === undefined);
  assert.deepEqual(old.endorsement.by, old.kid, 'the root endorses itself');
  assert.deepEqual(current.endorsement.by, old.kid, 'the next key is endorsed by the one it replaced');
  const keys = trustedKeys(published.body);
  // The root is the one the chain recorded.
  const roots = (await admin(g, 'GET', '/v1/audit/events?event_type=key_history_roots')).body.events;
  assert.equal(roots[0].details.roots.receipt, keys.root);

  const receipts = [];
  for (const [answer, body] of [[first.body, { n: 1 }], [approved.body.result, { n: 7 }], [third.body, { n: 3 }]]) {
    const got = await a.signed('GET', `/v1/receipts/${answer.receipt_id}`);
    assert.equal(got.status, 200, got.text);
    const r = got.body;
    assert.deepEqual(verifyIndependently(keys, r), { ok: true }, JSON.stringify(r));
    assert.equal(verifyReceiptWith(keys.byKid, r).ok, true, 'the SDK agrees');
    // What it binds, checked against what the client itself knows.
    assert.equal(r.receipt_format, 2);
    assert.equal(r.principal, 'agent');
    assert.equal(r.session_id, a.session_id);
    assert.equal(r.action_id, answer.action_id);
    assert.equal(r.trace_id, answer.trace_id);
    assert.equal(r.grant_id, answer.grant_id);
    assert.equal(r.request_hash, `sha256:${sha256hex(jcs(body))}`);
    assert.equal(r.response_hash, `sha256:${sha256hex(jcs(answer.output))}`);
    assert.match(r.grant_hash, /^sha256:[0-9a-f]{64}$/);
    assert.equal(r.grant_key_id, g.ctx.keys.current('grant').kid);
    assert.match(r.action_digest, /^sha256:[0-9a-f]{64}$/);
    // The chained event of its trace carries its id and hash.
    const [event] = (await admin(g, 'GET', `/v1/audit/events?trace_id=${r.trace_id}`)).body.events;
    assert.equal(event.execution.receipt_id, r.receipt_id);
    assert.equal(event.execution.receipt_hash, r.result_hash);
    assert.equal(event.execution.response_hash, r.response_hash);
    receipts.push(r);
  }
  assert.deepEqual(receipts.map((r) => r.signing_key_id), [old.kid, old.kid, current.kid]);
  assert.deepEqual([receipts[1].approved_by, typeof receipts[1].approval_hash], ['op', 'string']);
  assert.equal(receipts[0].approved_by, undefined);

  // Refused: a member added (covered though unknown), a member changed, the format removed, a signature re-encoded.
  const [r0] = receipts;
  for (const [what, edited] of [
    ['a member added', { ...r0, note: 'added later' }],
    ['the principal changed', { ...r0, principal: 'someone-else' }],
    ['receipt_format removed', (({ receipt_format: _f, ...rest }) => rest)(r0)],
    ['the signature in upper case', { ...r0, receipt_signature: r0.receipt_signature.toUpperCase() }],
  ]) {
    assert.equal(verifyIndependently(keys, edited).ok, false, what);
    assert.equal(verifyReceiptWith(keys.byKid, edited).ok, false, `${what} (SDK)`);
  }
  // Signed with the retired key (kept by whoever copied it) and dated after its retirement.
  const later = new Date(Date.parse(old.retired_at) + 1000).toISOString();
  const { result_hash: _h, receipt_signature: _s, signing_key_id: _k, ...unsigned } = { ...r0, started_at: later, finished_at: later };
  const resultHash = sha256hex(jcs(unsigned));
  const forged = { ...unsigned, result_hash: resultHash, signing_key_id: old.kid, receipt_signature: sign(null, Buffer.from(resultHash, 'ascii'), createPrivateKey(stolen)).toString('hex') };
  assert.deepEqual(verifyIndependently(keys, forged), { ok: false, reason: 'retired' });
  // A key added to the list by hand: unendorsed, or endorsing itself as a second root, it breaks the chain.
  const { privateKey: pk, publicKey: pub } = generateKeyPairSync('ed25519');
  const x = pub.export({ format: 'jwk' }).x;
  const added = { kty: 'OKP', crv: 'Ed25519', x, kid: thumbprint(x), use: 'sig', alg: 'EdDSA', created_at: new Date().toISOString() };
  assert.throws(() => trustedKeys({ keys: [...published.body.keys, added] }), /only entries before the root go unendorsed/);
  const payload = jcs({ typ: 'latchgate-key-endorsement/1', kind: 'receipt', prior: `sha256:${sha256hex(jcs(published.body.keys))}`, key: { x, kid: added.kid, created_at: added.created_at } });
  const selfRoot = { ...added, endorsement: { by: added.kid, sig: sign(null, payload, pk).toString('base64url') } };
  assert.throws(() => trustedKeys({ keys: [...published.body.keys, selfRoot] }), /endorsed by the entry before it, or the one root/);
});
