// `latchgate verify` against someone who can write the state directory, with
// signed checkpoints of the ledger's tree (src/ledger/tree-verify.ts). A
// ledger is written by the real code (`latchgate checkpoint` on a fresh state
// directory opens the gate; then the Ledger, the key store and the
// checkpoint store in this process, with a rotation of the checkpoint key in
// between), then each test copies it, damages the copy for real (the sqlite3
// CLI; the attacker's own recompute script where hashes must be redone) and
// runs `latchgate verify`: exit 2 naming the damage. The chain alone passes
// each of these damages (asserted): only the checkpoints show them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Ledger, eventHash } from '../../dist/ledger/ledger.js';
import { KeyStore } from '../../dist/keys/store.js';
import { TreeCheckpoints } from '../../dist/ledger/tree-checkpoints.js';
import { CheckpointPublisher, LogSink } from '../../dist/ledger/checkpoint-sinks.js';
import { canonicalize } from '../../dist/crypto/jcs.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const base = mkdtempSync(path.join(os.tmpdir(), 'latchgate-cp-tamper-'));
after(() => rmSync(base, { recursive: true, force: true }));

const envOf = (home) => ({ PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'config') });
const stateOf = (home) => path.join(home, 'state', 'latchgate');
const ledgerOf = (home) => path.join(stateOf(home), 'ledger.sqlite3');

function lg(home, ...args) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: envOf(home), encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** latchgate verify --json: the exit code, the report, and the human text of the same run's findings. */
function verify(home, ...args) {
  const r = lg(home, 'verify', '--json', ...args);
  assert.ok(r.out, r.err);
  return { code: r.code, report: JSON.parse(r.out), err: r.err };
}

const sql = (home, statements) => execFileSync('sqlite3', [ledgerOf(home), statements], { encoding: 'utf8' });
const problems = (report) => report.checkpoints.problems.map((p) => `${p.kind}: ${p.message}`).join('\n');

/** The chain walk, the receipts, the key histories and the database itself all pass: the damage is one the chain cannot show. */
function assertChainPasses(report) {
  assert.equal(report.first_bad, null, JSON.stringify(report.first_bad));
  assert.deepEqual(report.state?.mismatches ?? [], []);
  assert.equal(report.database.ok, true);
}

function assertCaught(r, kind, re) {
  assert.equal(r.code, 2, `verify passed: ${JSON.stringify(r.report.checkpoints)}`);
  assert.equal(r.report.intact, false);
  assert.equal(r.report.checkpoints.ok, false);
  const p = r.report.checkpoints.problems.find((x) => x.kind === kind);
  assert.ok(p, `no ${kind} problem among:\n${problems(r.report)}`);
  assert.match(p.message, re);
}

const event = (i) => ({ event_type: 'admin_drain', decision: i % 3 ? 'allow' : 'deny', operator: { name: 'op' }, subject: { principal: 'op' }, details: {} });
let sizes;
let external;
let vkeyAtExternal;

before(() => {
  const home = path.join(base, 'base');
  // A fresh state directory, opened by the gate: the first checkpoint, and the checkpoint key's root recorded.
  const first = lg(home, 'checkpoint', '--json');
  assert.equal(first.code, 0, first.err);
  vkeyAtExternal = lg(home, 'checkpoint', '--print-key').out.trim();
  const ledger = Ledger.open(ledgerOf(home));
  const keys = new KeyStore(path.join(stateOf(home), 'keys'));
  const store = new TreeCheckpoints(ledger, keys);
  const log = new CheckpointPublisher(store, [new LogSink(path.join(stateOf(home), 'checkpoints.log'))]);
  const grow = async (n) => {
    for (let i = 0; i < n; i++) ledger.append(event(i));
    store.signCheckpoint();
    await log.publish();
  };
  return (async () => {
    await grow(20);
    // The checkpoint an auditor keeps elsewhere.
    external = path.join(base, 'kept-elsewhere.checkpoint');
    writeFileSync(external, store.latestCheckpoint().note);
    keys.rotate('checkpoint');
    await grow(20);
    await grow(9);
    for (let i = 0; i < 5; i++) ledger.append(event(i)); // not covered by any checkpoint yet
    sizes = store.listCheckpoints().map((c) => c.size);
    ledger.db.close();
  })();
});

/** A copy of the state written in before(). */
function copy(name) {
  const home = path.join(base, name);
  cpSync(path.join(base, 'base'), home, { recursive: true });
  return home;
}

test('an intact ledger with checkpoints signed before and after a key rotation verifies; so does the checkpoint kept elsewhere, with the key kept then', () => {
  const home = copy('intact');
  assert.equal(sizes.length, 4);
  const r = verify(home, '--checkpoint', external, '--trusted-key', vkeyAtExternal);
  assert.equal(r.code, 0, problems(r.report));
  assert.equal(r.report.checkpoints.stored, 4);
  assert.equal(r.report.checkpoints.log.entries, 4);
  assert.equal(r.report.checkpoints.external.extended, true);
  assert.equal(r.report.checkpoints.external.key, 'given');
  const human = lg(home, 'verify', '--checkpoint', external);
  assert.equal(human.code, 0, human.out);
  assert.match(human.out, /Checkpoints: 4 signed, the latest of size \d+ .*recomputed from the \d+ events/);
  assert.match(human.out, /signed by a checkpoint key of THIS state directory's key history \(no --trusted-key/);
});

test('the ledger grew after the checkpoint kept elsewhere: it still verifies against it', () => {
  const home = copy('grew');
  const ledger = Ledger.open(ledgerOf(home));
  for (let i = 0; i < 40; i++) ledger.append(event(i));
  ledger.db.close();
  assert.equal(lg(home, 'checkpoint').code, 0);
  const r = verify(home, '--checkpoint', external, '--trusted-key', vkeyAtExternal);
  assert.equal(r.code, 0, problems(r.report));
  assert.ok(r.report.checkpoints.tree_size > r.report.checkpoints.external.size + 40);
});

// What an attacker who cuts the newest events also makes fit, so that the
// chain and its evidence alone pass: the id counter, and the receipts and
// intents of the events cut.
const TAIL_FITTED = `UPDATE sqlite_sequence SET seq = (SELECT max(id) FROM audit_events) WHERE name = 'audit_events';
     DELETE FROM receipts WHERE trace_id NOT IN (SELECT trace_id FROM audit_events);
     DELETE FROM execution_intents WHERE trace_id NOT IN (SELECT trace_id FROM audit_events);`;

/** Keeps the first `keep` events and makes the chain, the id counter, the evidence and the stored tree fit, as an attacker would. */
function cutTail(home, keep, { dropCheckpoints = false } = {}) {
  const tree = attackerTree(home, keep);
  sql(
    home,
    `${dropCheckpoints ? 'DELETE FROM checkpoints; ' : ''}DELETE FROM audit_events WHERE id > (SELECT id FROM audit_events ORDER BY id LIMIT 1 OFFSET ${keep - 1});
     UPDATE ledger_metadata SET value = (SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1) WHERE key = 'chain_head';
     ${TAIL_FITTED}
     DELETE FROM merkle_nodes WHERE pos >= ${tree.nodes}; UPDATE ledger_metadata SET value = '${tree.state}' WHERE key = 'merkle_tree';`,
  );
}

test('the newest events deleted back past a checkpoint, chain_head and the stored tree made to fit: truncated below the checkpoint', () => {
  const home = copy('truncated');
  const keep = sizes[1] - 3; // below the second checkpoint
  cutTail(home, keep);
  const r = verify(home);
  assertChainPasses(r.report);
  assertCaught(r, 'truncated', new RegExp(`truncated below the checkpoint: the checkpoint of size ${sizes[1]} .* the ledger holds ${keep}`));
  assert.match(lg(home, 'verify').out, /Checkpoints FAIL: the ledger was truncated below the checkpoint/);
  // Nothing is signed over the cut: that would launder it.
  const before = sql(home, 'SELECT count(*) FROM checkpoints;');
  const refused = lg(home, 'checkpoint');
  assert.equal(refused.code, 2, refused.out);
  assert.match(refused.err, /no checkpoint signed: the ledger's tree holds \d+ events, fewer than the latest checkpoint \(size \d+\): events were deleted/);
  assert.equal(sql(home, 'SELECT count(*) FROM checkpoints;'), before);
  assert.match(sql(home, `SELECT event_json FROM audit_events WHERE event_type = 'checkpoint_refused';`), /"reason":"checkpoint_truncated"/);
});

test('every event deleted, chain_head emptied, the stored tree emptied: truncated', () => {
  const home = copy('emptied');
  sql(home, `DELETE FROM audit_events; UPDATE ledger_metadata SET value = '' WHERE key = 'chain_head'; DELETE FROM merkle_nodes; UPDATE ledger_metadata SET value = '{"size":0,"last_event_id":0}' WHERE key = 'merkle_tree'; DELETE FROM sqlite_sequence;`);
  const r = verify(home);
  assert.equal(r.report.first_bad, null, 'the chain of an empty ledger holds');
  assertCaught(r, 'truncated', /the ledger holds 0/);
});

test('a denial rewritten into an allow, every later hash, chain_head and the stored tree recomputed (the attacker\'s script): history was rewritten', () => {
  const home = copy('rewritten');
  const victim = rewrite(home, (e) => e.decision === 'deny' && e.event_type === 'admin_drain', (e) => (e.decision = 'allow'));
  assert.ok(victim < sizes[1], 'the edited event is covered by a checkpoint');
  const r = verify(home);
  assertChainPasses(r.report);
  assertCaught(r, 'rewritten', /history was rewritten: the root of the first \d+ events, recomputed from the events/);
  // With the checkpoint kept elsewhere, the same words.
  const x = verify(home, '--checkpoint', external, '--trusted-key', vkeyAtExternal);
  assert.ok(x.report.checkpoints.problems.some((p) => p.kind === 'rewritten' && p.where === external), problems(x.report));
});

test('a checkpoint signed by a key of the attacker\'s (under the right name), or by one added to the key history by hand: refused', () => {
  const home = copy('forged-key');
  const db = new Database(ledgerOf(home));
  const row = db.prepare('SELECT * FROM checkpoints ORDER BY size DESC LIMIT 1').get();
  const text = row.note.slice(0, row.note.indexOf('\n\n') + 1);
  const attacker = generateKeyPairSync('ed25519');
  const forged = signNote(text, row.origin, attacker);
  db.prepare('UPDATE checkpoints SET note = ? WHERE size = ?').run(forged, row.size);
  db.close();
  const r = verify(home);
  assertCaught(r, 'unknown_key', /not signed by any checkpoint key of the endorsed key history/);
  // The attacker's key written into the history file, as a new entry: the history's chain refuses it.
  const jwks = path.join(stateOf(home), 'keys', 'checkpoint-keys.jwks');
  const h = JSON.parse(readFileSync(jwks, 'utf8'));
  const x = attacker.publicKey.export({ format: 'jwk' }).x;
  h.keys.push({ ...h.keys.at(-1), x, kid: thumbprint(x) });
  writeFileSync(jwks, JSON.stringify(h, null, 2));
  const again = verify(home);
  assertCaught(again, 'unknown_key', /not signed by any checkpoint key/);
});

test('a checkpoint whose root was edited (in its note and columns), not signed again: refused', () => {
  const home = copy('forged-root');
  const db = new Database(ledgerOf(home));
  const row = db.prepare('SELECT * FROM checkpoints ORDER BY size LIMIT 1 OFFSET 1').get();
  const root = createHash('sha256').update('another history').digest();
  const lines = row.note.split('\n');
  lines[2] = root.toString('base64');
  db.prepare('UPDATE checkpoints SET note = ?, root = ? WHERE size = ?').run(lines.join('\n'), root, row.size);
  db.close();
  assertCaught(verify(home), 'forged', /changed after it was signed/);
  // The columns alone edited: the row disagrees with its note.
  const home2 = copy('forged-columns');
  sql(home2, `UPDATE checkpoints SET root = randomblob(32) WHERE size = ${row.size};`);
  assertCaught(verify(home2), 'edited', new RegExp(`row of size ${row.size} has root .* which its signed note does not say`));
});

test('history rewritten and the checkpoints signed again with the stolen key, checkpoints.log kept: a fork', () => {
  const home = copy('fork');
  rewrite(home, (e) => e.decision === 'deny' && e.event_type === 'admin_drain', (e) => (e.decision = 'allow'));
  // The attacker holds the state directory, so the checkpoint key too: the table is signed anew over the
  // rewritten tree, at a size the log holds a checkpoint of too (the newest events trimmed to reach one).
  const logged = sizes[2];
  cutTail(home, logged, { dropCheckpoints: true });
  const l2 = Ledger.open(ledgerOf(home));
  const s2 = new TreeCheckpoints(l2, new KeyStore(path.join(stateOf(home), 'keys')));
  assert.equal(s2.signCheckpoint().size, logged);
  l2.db.close();
  const r = verify(home);
  assertChainPasses(r.report);
  assertCaught(r, 'fork', new RegExp(`two checkpoints of size ${logged} have different roots`));
});

test('the checkpoints table emptied: the ones in checkpoints.log, or kept elsewhere, were deleted from it', () => {
  const home = copy('table-emptied');
  sql(home, 'DELETE FROM checkpoints;');
  const r = verify(home);
  assertChainPasses(r.report);
  assertCaught(r, 'deleted', /in .*checkpoints\.log \(checkpoints\.log entry 1\) is not in the checkpoints table: it was deleted/);
  // The log removed too: the checkpoint kept elsewhere still shows it.
  rmSync(path.join(stateOf(home), 'checkpoints.log'));
  const x = verify(home, '--checkpoint', external, '--trusted-key', vkeyAtExternal);
  assertCaught(x, 'deleted', /kept-elsewhere\.checkpoint.* is not in the checkpoints table/);
});

test('the checkpoint kept elsewhere, against a ledger cut below it, or checked with a key that did not sign it', () => {
  const home = copy('external');
  const size = Number(readFileSync(external, 'utf8').split('\n')[1]);
  cutTail(home, size - 2, { dropCheckpoints: true });
  rmSync(path.join(stateOf(home), 'checkpoints.log'));
  const alone = verify(home);
  assert.equal(alone.code, 0, 'with the table and log gone, nothing in the state directory shows it');
  const r = verify(home, '--checkpoint', external, '--trusted-key', vkeyAtExternal);
  assertCaught(r, 'truncated', new RegExp(`truncated below the checkpoint: the checkpoint of size ${size} \\(${external.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)`));
  const other = lg(path.join(base, 'another-ledger'), 'checkpoint', '--print-key').out.trim();
  const w = verify(home, '--checkpoint', external, '--trusted-key', other);
  assertCaught(w, 'unknown_key', /not signed by the key given with --trusted-key/);
  const bad = lg(home, 'verify', '--checkpoint', path.join(base, 'no-such-file'));
  assert.equal(bad.code, 1);
  assert.match(bad.err, /--checkpoint .*no-such-file cannot be read \(ENOENT\)/);
  const notes = path.join(base, 'not-a-checkpoint.txt');
  writeFileSync(notes, 'meeting notes\n');
  const notCp = lg(home, 'verify', '--checkpoint', notes);
  assert.equal(notCp.code, 1);
  assert.match(notCp.err, /--checkpoint .*not-a-checkpoint\.txt is not a signed checkpoint \(the note has no blank line before its signatures\)/);
  const badKey = lg(home, 'verify', '--checkpoint', external, '--trusted-key', 'latchgate+12345678+AAAA');
  assert.equal(badKey.code, 1);
  assert.match(badKey.err, /--trusted-key is not a verifier key \(the verifier key is not base64 of 0x01/);
  assert.match(lg(home, 'verify', '--trusted-key', vkeyAtExternal).err, /--trusted-key checks the checkpoint given with --checkpoint FILE/);
});

test('checkpoints.log cut short in the middle of a note: reported, naming the entry', () => {
  const home = copy('torn-log');
  const log = path.join(stateOf(home), 'checkpoints.log');
  appendFileSync(log, readFileSync(log, 'utf8').split('\n\n')[0] + '\n');
  const r = verify(home);
  assertCaught(r, 'malformed', /checkpoints\.log entry 5 is not a signed checkpoint: it ends without a signature line/);
});

// ---------------------------------------------------------------- the attacker's tools

/** A signed note as anyone can make one: text, blank line, "— name base64(keyID || sig)". */
function signNote(text, name, { privateKey, publicKey }) {
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
  const id = createHash('sha256').update(Buffer.concat([Buffer.from(name), Buffer.from([0x0a, 0x01]), raw])).digest().subarray(0, 4);
  const sig = sign(null, Buffer.from(text), privateKey);
  return `${text}\n\u2014 ${name} ${Buffer.concat([id, sig]).toString('base64')}\n`;
}

function thumbprint(x) {
  return createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest('base64url');
}

/**
 * Edits the first event `pick` selects, then recomputes every later
 * event's prev_hash and hash, chain_head, and the whole stored tree, as an
 * attacker with the file and the published format would. Returns the index
 * (from 0) of the edited event.
 */
function rewrite(home, pick, edit) {
  const db = new Database(ledgerOf(home));
  const rows = db.prepare('SELECT id, event_json FROM audit_events ORDER BY id').all();
  const at = rows.findIndex((r) => pick(JSON.parse(r.event_json)));
  assert.ok(at >= 0);
  let prev = at === 0 ? null : eventHash(rows[at - 1].event_json);
  db.transaction(() => {
    for (const r of rows.slice(at)) {
      const e = JSON.parse(r.event_json);
      if (r === rows[at]) edit(e);
      e.prev_hash = prev;
      const json = canonicalize(e);
      prev = eventHash(json);
      db.prepare('UPDATE audit_events SET event_json = ?, hash = ?, decision = ? WHERE id = ?').run(json, prev, e.decision ?? null, r.id);
    }
    db.prepare(`UPDATE ledger_metadata SET value = ? WHERE key = 'chain_head'`).run(prev);
  })();
  db.close();
  const tree = attackerTree(home);
  const d2 = new Database(ledgerOf(home));
  d2.transaction(() => {
    d2.exec('DELETE FROM merkle_nodes');
    const ins = d2.prepare('INSERT INTO merkle_nodes(pos, hash, event_id) VALUES (?, ?, ?)');
    tree.rows.forEach((n, pos) => ins.run(pos, n.hash, n.event_id));
    d2.prepare(`UPDATE ledger_metadata SET value = ? WHERE key = 'merkle_tree'`).run(tree.state);
  })();
  d2.close();
  return at;
}

/** RFC 9162's tree over the first `count` events (all by default), as merkle_nodes stores it: post-order, one row per complete subtree. */
function attackerTree(home, count) {
  const db = new Database(ledgerOf(home), { readonly: true });
  const events = db.prepare('SELECT id, event_json FROM audit_events ORDER BY id').all().slice(0, count);
  db.close();
  const h = (...parts) => createHash('sha256').update(Buffer.concat(parts)).digest();
  const rows = [];
  const stack = [];
  for (const e of events) {
    let node = { hash: h(Buffer.from([0]), Buffer.from(e.event_json)), level: 0 };
    rows.push({ hash: node.hash, event_id: e.id });
    while (stack.length && stack.at(-1).level === node.level) {
      const left = stack.pop();
      node = { hash: h(Buffer.from([1]), left.hash, node.hash), level: node.level + 1 };
      rows.push({ hash: node.hash, event_id: null });
    }
    stack.push(node);
  }
  return { rows, nodes: rows.length, state: JSON.stringify({ size: events.length, last_event_id: events.at(-1)?.id ?? 0 }) };
}
