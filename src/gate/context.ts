// Everything the pipeline stages use, built once per gate process.
import type { Db, WalSync } from '../ledger/db.js';
import type { KeyStore } from '../keys/store.js';
import type { Ledger } from '../ledger/ledger.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { PolicyStore } from '../policy/store.js';
import type { Approvals } from './approvals.js';
import type { ReplayCache } from './auth/replay.js';
import type { Budgets } from './budget.js';
import type { HttpTransport, ProviderTable } from './providers.js';
import type { Registry } from './registry.js';
import type { GateInstances } from './instances.js';
import type { KeyWatch } from './key-watch.js';

export interface GateSettings {
  publicBaseUrl: string;
  leaseTtlSeconds: number;
  maxBodyBytes: number;
  /** Grants expire this long after issue (they are consumed at once). */
  grantTtlSeconds: number;
  /** Recorded on every event when the box runs with weaker isolation asked for by name. */
  sandboxDegraded: boolean;
}

export interface GateContext {
  db: Db;
  ledger: Ledger;
  /** Every signing key (src/keys/: lease, grant, receipt, checkpoint; one key per kind). */
  keys: KeyStore;
  replay: ReplayCache;
  registry: Registry;
  policy: PolicyEngine;
  policyStore: PolicyStore;
  budgets: Budgets;
  approvals: Approvals;
  providers: ProviderTable;
  /** Host HTTP transport for providers (the providers issue supplies the real one). */
  transport?: HttpTransport;
  settings: GateSettings;
  state: GateState;
  instances: GateInstances;
  /** Publishes, in this process's instance file, the kids it signs with (read again when a key file changed). */
  keyWatch: KeyWatch;
  /** Makes the commits so far durable (before dispatch, before a receipt is announced). */
  wal: WalSync;
}

/** Revocation epoch (persisted, shared by processes) and drain flag (this process). */
export class GateState {
  draining = false;
  private readonly readEpoch;
  private readonly bumpEpoch;

  constructor(db: Db) {
    db.exec('CREATE TABLE IF NOT EXISTS gate_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    db.prepare("INSERT OR IGNORE INTO gate_state (key, value) VALUES ('revocation_epoch', '0')").run();
    this.readEpoch = db.prepare("SELECT CAST(value AS INTEGER) FROM gate_state WHERE key = 'revocation_epoch'").pluck();
    this.bumpEpoch = db.prepare("UPDATE gate_state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revocation_epoch'");
  }

  /** Read from the store every time: another process may have revoked. */
  get epoch(): number {
    return this.readEpoch.get() as number;
  }

  /** Every lease and grant issued before is refused from now on. */
  advanceEpoch(): number {
    this.bumpEpoch.run();
    return this.epoch;
  }
}
