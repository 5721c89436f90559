// Builds a gate from configuration: one SQLite file and one key directory
// under the state dir, shared by `latchgate up` and every `latchgate sandbox`.
import type { GateFileConfig } from '../config/latchgate-toml.js';
import { Checkpointer } from '../ledger/checkpointer.js';
import { openDb, WalSync, type Db } from '../ledger/db.js';
import { KeyStore } from '../keys/store.js';
import { Ledger } from '../ledger/ledger.js';
import { CedarEngine } from '../policy/cedar.js';
import type { PolicyEngine } from '../policy/engine.js';
import { OpaServerEngine, OpaWasmEngine } from '../policy/opa.js';
import { PolicyStore } from '../policy/store.js';
import { Approvals } from './approvals.js';
import { ReplayCache } from './auth/replay.js';
import { Budgets } from './budget.js';
import { noopProvider } from './builtin-providers.js';
import { GateState, type GateContext } from './context.js';
import { GateError } from './errors.js';
import { Gate } from './service.js';
import { GateInstances, type GateRole } from './instances.js';
import { KeyWatch } from './key-watch.js';
import { ProviderTable, type HttpTransport, type Provider } from './providers.js';
import { Registry } from './registry.js';
import { stateFiles } from './setup.js';

import { DEFAULTS } from './defaults.js';

export { DEFAULTS };

export interface OpenGateOptions {
  stateDir: string;
  config: GateFileConfig;
  /** Extra providers by digest (tests; the providers issue adds the real ones). */
  providers?: Record<string, Provider>;
  transport?: HttpTransport;
  sandboxDegraded?: boolean;
  /** Load the package's definitions/manifests (default true). */
  builtinManifests?: boolean;
  /** Published in this process's instance file (default 'other'). */
  role?: GateRole;
}

export async function policyEngine(c: GateFileConfig['policy']): Promise<PolicyEngine> {
  const kind = c.engine ?? 'cedar';
  if (kind === 'cedar') return CedarEngine.load();
  if (kind === 'opa-wasm') {
    if (!c.opaWasm) throw new GateError('invalid_request', '[policy] engine = "opa-wasm" needs opa_wasm = "<path to policy.wasm built with opa build -t wasm>"');
    return OpaWasmEngine.load(c.opaWasm);
  }
  if (kind === 'opa-server') {
    if (!c.opaUrl) throw new GateError('invalid_request', '[policy] engine = "opa-server" needs opa_url = "http://127.0.0.1:8181/v1/data/latchgate/decision"');
    return new OpaServerEngine(c.opaUrl, { timeoutMs: c.opaTimeoutMs ?? 1000 });
  }
  throw new GateError('invalid_request', `[policy] engine = ${JSON.stringify(kind)}: expected "cedar", "opa-wasm" or "opa-server"`);
}

export interface OpenedGate {
  db: Db;
  ctx: GateContext;
  gate: Gate;
  close(): void;
}

export async function openGate(o: OpenGateOptions): Promise<OpenedGate> {
  const files = stateFiles(o.stateDir);
  const dbPath = files.ledger;
  const db = openDb(dbPath);
  // Checkpoints copy the WAL into the database with fsyncs: not inside a
  // request's commit (SQLite's automatic ones would), but in a worker.
  db.pragma('wal_autocheckpoint = 0');
  const ledger = new Ledger(db).migrate();
  const checkpoints = dbPath === ':memory:' ? undefined : new Checkpointer(dbPath);
  const keys = new KeyStore(files.keys);
  const registry = new Registry(db, o.config.manifestDirs, { builtin: o.builtinManifests ?? true });
  registry.migrate();
  registry.load();
  const budgets = new Budgets(db);
  budgets.migrate();
  const ttl = o.config.approvalTtlSeconds ?? DEFAULTS.approvalTtlSeconds;
  const approvals = new Approvals(db, ttl);
  approvals.migrate();
  const instances = new GateInstances(o.stateDir, o.role ?? 'other');
  const providers = new ProviderTable();
  providers.register('builtin:noop', noopProvider);
  for (const [digest, p] of Object.entries(o.providers ?? {})) providers.register(digest, p);
  const ctx: GateContext = {
    db,
    ledger,
    keys,
    replay: new ReplayCache(db),
    registry,
    policy: await policyEngine(o.config.policy),
    policyStore: new PolicyStore(db),
    budgets,
    approvals,
    providers,
    ...(o.transport ? { transport: o.transport } : {}),
    settings: {
      publicBaseUrl: o.config.publicBaseUrl ?? DEFAULTS.publicBaseUrl,
      leaseTtlSeconds: o.config.leaseTtlSeconds ?? DEFAULTS.leaseTtlSeconds,
      maxBodyBytes: o.config.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
      grantTtlSeconds: DEFAULTS.grantTtlSeconds,
      sandboxDegraded: o.sandboxDegraded ?? false,
    },
    state: new GateState(db),
    instances,
    keyWatch: new KeyWatch(keys, instances),
    wal: new WalSync(dbPath),
  };
  const gate = new Gate(ctx);
  return {
    db,
    ctx,
    gate,
    close: () => {
      gate.close(); // its counted refusals, while the ledger is open
      checkpoints?.close();
      ctx.keyWatch.close();
      ctx.instances.close();
      ctx.wal.close();
      db.close();
    },
  };
}
