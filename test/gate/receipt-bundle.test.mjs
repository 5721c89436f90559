// Receipt bundles of a real gate, end to end: an action runs, its receipt is
// exported (`latchgate receipts export`), and the bundle verifies with the
// keys the gate publishes, with the CLI and in the page; bundles exported
// before and after a receipt key rotation still verify; each part tampered
// with fails the named check; exports that cannot be right are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportReceiptBundle } from '../../dist/ledger/receipt-bundle.js';
import { verifyBundle } from '../../dist/verify/bundle.js';
import { parseTrustedKeys, mergeTrustedKeys } from '../../dist/verify/trusted-keys.js';
import { Agent, grantAll, request, startGate } from '../helpers/gate.mjs';
import { admin } from '../helpers/gate-faults.mjs';
import { openVerifyPage, verifyInPage } from '../helpers/verify-page.mjs';
import { signReceipt2 } from '../helpers/bundle-fixture.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

function setup(t) {
  const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-bundle-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'config') };
  const lg = (...args) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  return { home, stateDir: path.join(home, 'state', 'latchgate'), lg, file: (name) => path.join(home, name) };
}

/** What an auditor is given: the published receipt keys (no authentication needed) and the checkpoint key. */
async function auditorKeys(g, vkey) {
  const published = await request(g.socket, 'GET', '/.well-known/latchgate-receipt-keys.json');
  assert.equal(published.status, 200, published.text);
  return { jwks: published.text, vkey };
}

const trusted = (keys) => mergeTrustedKeys(parseTrustedKeys(keys.jwks, 'jwks'), parseTrustedKeys(keys.vkey, 'vkey'));

/** A state directory, a real gate on it with every action granted, an agent with a lease, and one run's receipt id. */
async function gateWithReceipt(t) {
  const s = setup(t);
  const g = await startGate({ stateDir: s.stateDir });
  t.after(() => g.close({ keepState: true }));
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  const run = await a.execute('t_ok', { n: 1 });
  assert.equal(run.status, 200, run.text);
  return { s, g, a, receiptId: run.body.receipt_id };
}

test('a real receipt: exported, verified with the published keys by the CLI and the page; still verifying after a key rotation; each tampering named', async (t) => {
  const { s, g, a, receiptId: r1 } = await gateWithReceipt(t);

  // No checkpoint covers the new event: export signs one (the CLI is the gate's operator).
  const e1 = s.lg('receipts', 'export', r1, '--out', s.file('r1.json'), '--json');
  assert.equal(e1.code, 0, e1.err);
  assert.equal(JSON.parse(e1.out).checkpoint_signed, true);
  const again = s.lg('receipts', 'export', r1, '--out', s.file('r1.json'));
  assert.equal(again.code, 1);
  assert.match(again.err, /--out .*r1\.json exists/);
  const printed = s.lg('checkpoint', '--print-key');
  assert.equal(printed.code, 0, printed.err);
  const vkey = printed.out.trim();
  const keysBefore = await auditorKeys(g, vkey);
  writeFileSync(s.file('keys-before.json'), keysBefore.jwks);
  const v1 = s.lg('receipts', 'verify', s.file('r1.json'), '--trusted-key', s.file('keys-before.json'), '--trusted-key', keysBefore.vkey, '--request', writeJson(s.file('req1.json'), { n: 1 }));
  assert.equal(v1.code, 0, v1.out + v1.err);
  assert.match(v1.out, /^verified: receipt /m);

  // The receipt key is rotated (the old one kept by a thief), another action runs, a checkpoint is signed after it.
  const stolen = readFileSync(path.join(s.stateDir, 'keys', 'receipt.key'), 'utf8');
  const rotated = await admin(g, 'POST', '/v1/admin/keys/rotate', { kind: 'receipt' });
  assert.equal(rotated.status, 200, rotated.text);
  const run2 = await a.execute('t_ok', { n: 2 });
  assert.equal(run2.status, 200, run2.text);
  const r2 = run2.body.receipt_id;
  const { store } = g.checkpoints;
  store.signCheckpoint();
  await a.execute('t_ok', { n: 3 });
  store.signCheckpoint();

  const e2 = s.lg('receipts', 'export', r2, '--out', s.file('r2.json'), '--newer', '--json');
  assert.equal(e2.code, 0, e2.err);
  const facts2 = JSON.parse(e2.out);
  assert.equal(facts2.checkpoint_signed, false);
  assert.ok(facts2.newer_checkpoint_size > facts2.checkpoint_size);
  // The first receipt again, now with a newer checkpoint.
  writeJson(s.file('r1-newer.json'), exportReceiptBundle(g.ctx.ledger, g.ctx.keys, store, r1, { newer: true }).bundle);

  const keys = await auditorKeys(g, vkey);
  assert.equal(JSON.parse(keys.jwks).keys.filter((k) => k.retired_at).length, 1);
  writeFileSync(s.file('keys.json'), keys.jwks);
  for (const name of ['r1.json', 'r2.json', 'r1-newer.json']) {
    const v = s.lg('receipts', 'verify', s.file(name), '--trusted-key', s.file('keys.json'), '--trusted-key', keys.vkey, '--json');
    assert.equal(v.code, 0, `${name}: ${v.out}`);
    const report = JSON.parse(v.out);
    assert.equal(report.verdict, 'verified');
    assert.equal(report.checks.find((c) => c.id === 'consistency').status, name === 'r1.json' ? 'not_checked' : 'ok');
  }
  const b1 = JSON.parse(readFileSync(s.file('r1.json'), 'utf8'));
  const b2 = JSON.parse(readFileSync(s.file('r2.json'), 'utf8'));
  assert.notEqual(b1.receipt.signing_key_id, b2.receipt.signing_key_id);
  // The bundle exported before the rotation carries the key as it was then (not retired); the published history says retired, after it signed.
  assert.equal(b1.receipt_key.retired_at, undefined);

  // Tampering with each part, checked with the published keys.
  const T = trusted(keys);
  const tampered = (b, change) => {
    const c = structuredClone(b);
    change(c);
    return JSON.stringify(c);
  };
  const cases = [
    ['receipt_hash', tampered(b2, (c) => (c.receipt.principal = 'someone-else'))],
    ['receipt_signature', tampered(b2, (c) => (c.receipt.receipt_signature = c.receipt.receipt_signature.replace(/^../, '00')))],
    ['event', tampered(b2, (c) => (c.event.canonical_json = c.event.canonical_json.replace(r2, r1)))],
    ['inclusion', tampered(b2, (c) => (c.event.canonical_json = c.event.canonical_json.replace('"decision":"allow"', '"decision":"alloW"')))],
    ['inclusion', tampered(b2, (c) => (c.inclusion_proof[0] = Buffer.alloc(32, 5).toString('base64')))],
    ['inclusion', tampered(b2, (c) => (c.event.leaf_index += 1))],
    ['checkpoint', tampered(b2, (c) => (c.checkpoint.note = c.checkpoint.note.replace(/\n(\d+)\n/, (_, n) => `\n${Number(n) + 1}\n`)))],
    ['consistency', tampered(b2, (c) => (c.newer_checkpoint.consistency_proof = c.newer_checkpoint.consistency_proof.slice(1)))],
    // A receipt forged with the stolen, retired key, dated now: that key signs nothing after its retirement.
    ['receipt_key_validity', tampered(b2, (c) => {
      c.receipt = signReceipt2({ ...c.receipt, normalized_result: { kind: 'success', summary: 'forged' }, finished_at: new Date().toISOString() }, { privateKey: stolen, kid: b1.receipt.signing_key_id });
    })],
  ];
  for (const [check, text] of cases) {
    const r = verifyBundle(text, { trusted: T });
    assert.equal(r.verdict, 'failed', check);
    assert.equal(r.first_failure.id, check, `${check}: ${r.summary}`);
  }
  const viaCli = s.lg('receipts', 'verify', writeText(s.file('bad.json'), cases[4][1]), '--trusted-key', s.file('keys.json'), '--trusted-key', keys.vkey);
  assert.equal(viaCli.code, 2);
  assert.match(viaCli.out, /^NOT VERIFIED: inclusion failed/m);

  // The same bundles in the page, opened from disk.
  const { browser, page, requests } = await openVerifyPage();
  t.after(() => browser.close());
  const pasted = { receiptKeys: keys.jwks, checkpointKeys: keys.vkey };
  for (const name of ['r1.json', 'r2.json', 'r1-newer.json']) {
    const r = await verifyInPage(page, readFileSync(s.file(name), 'utf8'), pasted);
    assert.equal(r.verdict, 'verified', `${name}: ${r.summary}`);
  }
  const withRequest = await verifyInPage(page, readFileSync(s.file('r2.json'), 'utf8'), { ...pasted, request: JSON.stringify({ n: 2 }) });
  assert.equal(withRequest.checks.request, 'ok');
  for (const [check, text] of cases) {
    const r = await verifyInPage(page, text, pasted);
    assert.equal(r.checks[check], 'failed', `${check}: ${r.summary}`);
  }
  assert.deepEqual(requests.filter((u) => !u.startsWith('file://') && !u.startsWith('blob:')), []);
});

test('export refuses what it cannot vouch for: an unknown id, a format-1 receipt, an edited receipt, an event not yet in any checkpoint when it cannot sign', async (t) => {
  const { s, g, receiptId: id } = await gateWithReceipt(t);
  const { store } = g.checkpoints;
  const exp = (rid, opts) => exportReceiptBundle(g.ctx.ledger, g.ctx.keys, store, rid, opts);
  const refused = (code, re) => (e) => e.name === 'BundleExportError' && e.code === code && re.test(e.message);

  assert.throws(() => exp(id, { signCheckpoint: null }), refused('no_checkpoint', /no signed checkpoint covers .*run `latchgate checkpoint`/));
  const { bundle, signed } = exp(id, { signCheckpoint: () => store.signCheckpoint() });
  assert.ok(signed && signed.size > bundle.event.leaf_index);
  assert.equal(verifyBundle(JSON.stringify(bundle), { trusted: { receiptKeys: g.ctx.keys.jwks('receipt').keys, checkpointKeys: [store.currentVerifierKey()] } }).verdict, 'verified');
  // Now covered: no signing needed.
  assert.equal(exp(id, { signCheckpoint: null }).signed, undefined);

  assert.throws(() => exp('no-such-receipt'), refused('no_receipt', /no receipt "no-such-receipt"/));
  const cli = s.lg('receipts', 'export', 'no-such-receipt');
  assert.equal(cli.code, 1);
  assert.match(cli.err, /receipts export: no receipt "no-such-receipt"/);

  // A format-1 receipt (as an older latchgate wrote them).
  const { receipt_format: _f, action_id: _a, action_version: _v, action_digest: _d, principal: _p, session_id: _s, request_hash: _r, grant_hash: _g, grant_key_id: _k, response_hash: _h, ...format1 } = g.ctx.ledger.getReceipt(id);
  g.ctx.ledger.writeReceipt({ ...format1, receipt_id: 'old-receipt', grant_id: 'old-grant' });
  assert.throws(() => exp('old-receipt'), refused('format_1', /format-1 receipt: export needs a receipt written by a latchgate that writes receipt_format 2/));

  // The stored receipt edited (its event and signature left alone).
  g.db.prepare(`UPDATE receipts SET receipt_json = replace(receipt_json, '"principal":"tester"', '"principal":"admin"') WHERE receipt_id = ?`).run(id);
  assert.notEqual(g.ctx.ledger.getReceipt(id).principal, 'tester');
  assert.throws(() => exp(id), refused('bad_receipt', /does not verify here: result_hash does not match/));
});

function writeJson(file, value) {
  writeFileSync(file, JSON.stringify(value));
  return file;
}

function writeText(file, text) {
  writeFileSync(file, text);
  return file;
}
