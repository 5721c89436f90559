// Everything the pipeline stages use, built once per gate process.
import { ChangeStamp, immediate, type Db, type WalSync } from '../ledger/db.js';
import { EPOCH_RECORDS, epochRegression, newestRecordSql, recordedEpoch } from '../ledger/state-record.js';
import type { KeyStore } from '../keys/store.js';
import type { Ledger } from '../ledger/ledger.js';
import type { PolicyDecider } from '../policy/deferred-engine.js';
import type { PolicyStore } from '../policy/store.js';
import type { Approvals } from './approvals.js';
import type { IdempotencyKeys } from './idempotency.js';
import type { ReplayCache } from './auth/replay.js';
import type { Budgets } from './budget.js';
import type { HttpTransport, ProviderTable } from './providers.js';
import type { ProviderHostSettings } from './provider-hosts.js';
import type { WasmProviders } from './wasm-providers.js';
import type { PeerLimitSettings } from './peer-limits.js';
import type { Registry } from './registry.js';
import type { ClientTokens } from './tokens.js';
import type { GateInstances } from './instances.js';
import { epochGoneBack, epochMismatch, readTableEpoch, stateTampered } from './state-check.js';
import type { ChainedPolicy } from './policy-guard.js';
import type { KeyWatch } from './key-watch.js';
import type { ProviderLogFile } from './provider-log.js';

export interface GateSettings {
  publicBaseUrl: string;
  leaseTtlSeconds: number;
  maxBodyBytes: number;
  /** Grants expire this long after issue (they are consumed at once). */
  grantTtlSeconds: number;
  /** Recorded on every event when the box runs with weaker isolation asked for by name. */
  sandboxDegraded: boolean;
  /** The configured principals by name, with the scopes each may hold (what a client token may name). */
  principals: ReadonlyMap<string, readonly string[]>;
  /** What one peer may ask: requests per second, connections, timeouts. */
  limits: PeerLimitSettings;
}

export interface GateContext {
  db: Db;
  ledger: Ledger;
  /** Every signing key (src/keys/: lease, grant, receipt, checkpoint; one key per kind). */
  keys: KeyStore;
  replay: ReplayCache;
  registry: Registry;
  policy: PolicyDecider;
  policyStore: PolicyStore;
  /** The policy data, checked against the chain: what decisions and changes use. */
  policyData: ChainedPolicy;
  budgets: Budgets;
  approvals: Approvals;
  /** Idempotency keys and the answers they got. */
  idempotency: IdempotencyKeys;
  /** The credentials of callers on the TCP listener. */
  tokens: ClientTokens;
  providers: ProviderTable;
  /** The WebAssembly providers' runtime, and the actions whose provider was refused (with why). */
  wasm: WasmProviders;
  /** What every provider call's host functions are made from (src/gate/provider-hosts.ts). */
  providerHosts: ProviderHostSettings;
  /** A plain HTTP transport for providers written in TypeScript (tests). */
  transport?: HttpTransport;
  settings: GateSettings;
  state: GateState;
  instances: GateInstances;
  /** Publishes, in this process's instance file, the kids it signs with (read again when a key file changed). */
  keyWatch: KeyWatch;
  /** Makes the commits so far durable (before dispatch, before a receipt is announced). */
  wal: WalSync;
  /** Where the providers' log lines go (src/gate/provider-log.ts). */
  providerLog: ProviderLogFile;
}

/**
 * Revocation epoch (persisted in gate_state, shared by processes, recorded in
 * the chain by every advance) and drain flag (this process). Every read of
 * the epoch is checked against the chain (src/gate/state-check.ts): not at
 * all while nothing was written (ChangeStamp), cheaply while neither the
 * table nor the chain's newest epoch record moved (one statement), by
 * reading that record again when either did.
 */
export class GateState {
  draining = false;
  private readonly db: Db;
  private readonly probe;
  private readonly setEpoch;
  /** The newest chain record this process checked the table against: its row id and value. */
  private known: { id: number; value: number } | undefined;
  /** The change stamp `known` was last found true at. */
  private knownAt = '';
  private readonly changes: ChangeStamp;

  constructor(db: Db) {
    this.db = db;
    db.exec('CREATE TABLE IF NOT EXISTS gate_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    db.prepare("INSERT OR IGNORE INTO gate_state (key, value) VALUES ('revocation_epoch', '0')").run();
    this.probe = db.prepare(`SELECT (SELECT CAST(value AS INTEGER) FROM gate_state WHERE key = 'revocation_epoch') AS epoch, ${newestRecordSql(EPOCH_RECORDS)} AS id`);
    this.setEpoch = db.prepare("UPDATE gate_state SET value = ? WHERE key = 'revocation_epoch'");
    this.changes = ChangeStamp.of(db);
  }

  /**
   * The epoch, read from the store every time (another process may have
   * revoked). Throws GateError state_tampered (503) when the table differs
   * from the chain's newest record of it.
   */
  get epoch(): number {
    // Nothing written since the last look (by another connection, or a record or the table by this one): the answer stands.
    const stamp = this.changes.current();
    if (this.known && this.knownAt === stamp) return this.known.value;
    const p = this.probe.get() as { epoch: number | null; id: number };
    if (this.known && p.id === this.known.id && p.epoch === this.known.value) {
      this.knownAt = stamp;
      return p.epoch;
    }
    // The table and the record read in one snapshot: a revoke committing meanwhile changes both or neither.
    const { epoch, rec, back } = this.db.transaction(() => ({ epoch: readTableEpoch(this.db), rec: recordedEpoch(this.db), back: epochRegression(this.db) }))();
    const m = epochMismatch(epoch, rec, this.known?.id) ?? epochGoneBack(epoch, back);
    if (m) throw stateTampered(m);
    this.known = { id: rec!.id, value: rec!.value };
    this.knownAt = stamp;
    return rec!.value;
  }

  /**
   * Every lease and grant issued before is refused from now on. The new
   * epoch is one past both the table's and the chain's (so a lowered table
   * is repaired), and `record` appends the event carrying it in the same
   * transaction. Works while the table differs from the chain: it is the fix.
   */
  advanceEpoch(record: (epoch: number) => void): number {
    return immediate(this.db, () => {
      const next = Math.max(readTableEpoch(this.db) ?? 0, recordedEpoch(this.db)?.value ?? 0, epochRegression(this.db)?.earlier.epoch ?? 0) + 1;
      this.setEpoch.run(String(next));
      this.changes.noteOwnWrite();
      record(next);
      return next;
    });
  }
}
