// `latchgate verify` answers the state checks' look-ups (chainedRowsOf) from
// what its chain walk learnt of every row (ChainIndex) instead of a scan of
// the whole table per look-up. The answer must be the scan's, row for row,
// on a ledger full of the edits an attacker makes: hashes left stale, the
// event_type column changed, event_json that is not JSON, not an object,
// spaced out, or naming a type only deep inside.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Ledger, eventHash } from '../../dist/ledger/ledger.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { chainedRowsOf, EPOCH_RECORDS, POLICY_RECORDS } from '../../dist/ledger/state-record.js';
import { canonicalize } from '../../dist/crypto/jcs.js';
import { prng, tempDir } from '../fixtures/unit/helpers.mjs';

const TYPES = ['admin_revoke_all', 'state_baseline', 'policy_grant', 'action_call', 'lease_issued', 'key_history_roots'];
const LOOKUPS = [EPOCH_RECORDS, POLICY_RECORDS, ['action_call'], ['key_history_roots'], ['lease_issued', 'admin_revoke_all'], ['never_recorded']];

/** A ledger's rows written straight into the table (the chain does not matter here, only what each row says). */
function fill(db, seed) {
  const r = prng(seed);
  const insert = db.prepare('INSERT INTO audit_events (trace_id, timestamp, event_type, event_json, hash) VALUES (?, ?, ?, ?, ?)');
  for (let i = 0; i < 300; i++) {
    const type = r.pick(TYPES);
    const event = { event_type: type, trace_id: `t-${seed}-${i}`, timestamp: '2030-01-01T00:00:00.000Z', details: { epoch: i, policy_digest: `sha256:${'a'.repeat(64)}` } };
    // Another type's name deep inside: the scan's text test finds it, the parsed type then rules it out.
    if (r.chance(0.2)) event.details.inner = { event_type: r.pick(TYPES) };
    let json = canonicalize(event);
    let column = type;
    let hash = eventHash(json);
    switch (r.below(10)) {
      case 0: hash = eventHash(`${json} `); break; // edited without its hash
      case 1: column = r.pick(TYPES); break; // the indexed column changed
      case 2: json = `not json "event_type":${JSON.stringify(type)}`; hash = eventHash(json); break;
      case 3: json = JSON.stringify(`"event_type":${JSON.stringify(type)}`); hash = eventHash(json); break; // JSON, not an object
      case 4: json = json.replace('"event_type":', '"event_type": '); hash = eventHash(json); break; // spaced: the scan's text test misses it
      case 5: json = canonicalize({ ...event, event_type: 7, note: `"event_type":${JSON.stringify(column)}` }); hash = eventHash(json); break;
      default: break;
    }
    insert.run(event.trace_id, event.timestamp, column, json, hash);
  }
  // Rows the ledger never writes: ids of 0 and below.
  const ids = db.prepare('INSERT INTO audit_events (id, trace_id, timestamp, event_type, event_json, hash) VALUES (?, ?, ?, ?, ?, ?)');
  for (const id of [0, -7]) {
    const json = canonicalize({ event_type: 'admin_revoke_all', trace_id: `t-${seed}-id${id}`, details: { epoch: 99 } });
    ids.run(id, `t-${seed}-id${id}`, '2030-01-01T00:00:00.000Z', 'admin_revoke_all', json, eventHash(json));
  }
}

test('property (5 seeds): the look-ups verify answers from its chain walk are the scan\'s, row for row, and no scan is made', (t) => {
  const dir = tempDir(t, 'latchgate-chain-index-');
  const keys = new KeyStore(join(dir, 'keys'));
  for (let seed = 1; seed <= 5; seed++) {
    const ledger = Ledger.open(join(dir, `ledger-${seed}.db`));
    fill(ledger.db, seed);
    const scanned = LOOKUPS.map((types) => [...chainedRowsOf(ledger.db, types)]);
    let indexed;
    const scans = [];
    const checker = (db) => {
      const prepare = db.prepare;
      db.prepare = function (sql) {
        if (/NOT INDEXED/.test(sql)) scans.push(sql);
        return prepare.call(this, sql);
      };
      try {
        indexed = LOOKUPS.map((types) => [...chainedRowsOf(db, types)]);
      } finally {
        db.prepare = prepare;
      }
      return { baseline: false, values: {}, mismatches: [] };
    };
    verifyLedger(ledger.db, keys, ledger.db.name, checker);
    assert.deepEqual(scans, [], `seed ${seed}: verify scanned the table`);
    LOOKUPS.forEach((types, i) => assert.deepEqual(indexed[i], scanned[i], `seed ${seed}: ${types.join(', ')}`));
    assert.ok(scanned.some((rows) => rows.some((row) => row.edited)) && scanned.some((rows) => rows.some((row) => !row.edited)), `seed ${seed}: edited and sound rows both looked up`);
    // Outside verify the scan is back, with the same answer.
    assert.deepEqual([...chainedRowsOf(ledger.db, ['action_call'])], scanned[2]);
    ledger.db.close();
  }
});
