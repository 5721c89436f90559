// The first start of a gate on a ledger that holds no record of the policy
// data's digest (a ledger from before the chain recorded the state kept
// outside it, or a new one): one state_baseline event records the current
// revocation epoch and policy digest, so that every later check has a value
// to compare with. Written in the transaction that reads what it records;
// a second gate starting at the same time finds the first one's baseline.
// The epoch it records is the higher of the table's and the chain's last
// admin_revoke_all (older gates recorded every revocation too): a table
// lowered before the baseline is still caught.
import type { Ledger } from '../ledger/ledger.js';
import { immediate } from '../ledger/db.js';
import { recordedEpoch, recordedPolicyDigest } from '../ledger/state-record.js';
import { dataRecord } from '../policy/data-history.js';
import type { PolicyStore } from '../policy/store.js';
import { readTableEpoch } from './state-check.js';

/** Records the baseline when the chain has none; returns whether it wrote one. */
export function recordBaseline(ledger: Ledger, store: PolicyStore, sandboxDegraded = false): boolean {
  const db = ledger.db;
  return immediate(db, () => {
    if (recordedPolicyDigest(db)) return false;
    const table = readTableEpoch(db) ?? 0;
    const epoch = Math.max(table, recordedEpoch(db)?.value ?? 0);
    ledger.appendInTransaction({
      event_type: 'state_baseline',
      decision: 'allow',
      // The complete data too: the start the chain rebuilds the policy data from (src/policy/data-history.ts).
      details: { epoch, epoch_in_table: table, policy_digest: store.digest(), store_version: store.version(), ...dataRecord(store.data()) },
      ...(sandboxDegraded ? { sandbox_degraded: true } : {}),
    });
    return true;
  });
}
