// The policy data as decisions and changes may use it: checked against the
// digest the chain recorded last (src/gate/state-check.ts). Free while
// nothing was written (ChangeStamp), cheap while neither the store's change
// counter nor the chain's newest policy record moved (one statement);
// otherwise the data is read again and its digest compared, in one snapshot
// with the record.
import type { Db } from '../ledger/db.js';
import { ChangeStamp, immediate } from '../ledger/db.js';
import { newestRecordSql, POLICY_RECORDS, recordedPolicyDigest } from '../ledger/state-record.js';
import type { PolicyData } from '../policy/engine.js';
import type { PolicyChange, PolicyStore } from '../policy/store.js';
import { policyMismatch, schemaObjects, stateTampered } from './state-check.js';

export class ChainedPolicy {
  private readonly probe;
  /** The snapshot last found to match the chain, with the newest record id and the store version it was read at. */
  private known: { version: number; newest: number; recordId: number; data: PolicyData } | undefined;
  /** The change stamp `known` was last found true at. */
  private knownAt = '';
  private readonly changes: ChangeStamp;

  constructor(
    private readonly db: Db,
    private readonly store: PolicyStore,
  ) {
    this.probe = db.prepare(`SELECT (SELECT value FROM policy_meta WHERE key = 'version') AS version, ${newestRecordSql(POLICY_RECORDS)} AS newest`);
    this.changes = ChangeStamp.of(db);
  }

  /** The policy data; throws GateError state_tampered (503) when it differs from what the chain recorded. */
  data(): PolicyData {
    // Nothing written since the last look (by another connection, or a policy change or record by this one): the data stands.
    const stamp = this.changes.current();
    if (this.known && this.knownAt === stamp) return this.known.data;
    const p = this.probe.get() as { version: number; newest: number };
    const data = this.known && p.version === this.known.version && p.newest === this.known.newest ? this.known.data : this.db.transaction(() => this.check())();
    this.knownAt = stamp;
    return data;
  }

  /** Checks the data against the chain inside the caller's transaction; returns it. */
  private check(): PolicyData {
    // A trigger could make a change write other data than the digest its event records.
    const schema = schemaObjects(this.db);
    if (schema.length) throw stateTampered(schema[0]!);
    const p = this.probe.get() as { version: number; newest: number };
    const data = this.store.reload(); // the tables as they are, not a snapshot kept under an unchanged counter
    const rec = recordedPolicyDigest(this.db);
    const m = policyMismatch(this.store.digest(), rec, this.known?.recordId);
    if (m) throw stateTampered(m);
    this.known = { version: p.version, newest: p.newest, recordId: rec!.id, data };
    return data;
  }

  /**
   * A change of the policy data: refused while the data already differs from
   * the chain (a change must not launder an edit into the record); `change`
   * makes it and appends its event, all in one transaction.
   */
  change(fn: () => PolicyChange): PolicyChange {
    return immediate(this.db, () => {
      this.check();
      return fn();
    });
  }
}
