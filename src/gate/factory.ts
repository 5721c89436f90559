// Builds a gate from configuration: one SQLite file and one key directory
// under the state dir, shared by `latchgate up` and every `latchgate sandbox`.
import { readFileSync } from 'node:fs';
import type { SecureContext } from 'node:tls';
import { join } from 'node:path';
import type { GateFileConfig, SecretsFileConfig } from '../config/latchgate-toml.js';
import { LaunchError } from '../core/errors.js';
import { Checkpointer } from '../ledger/checkpointer.js';
import { CHECKPOINT_LOG, CheckpointPublisher, LogSink, sinksFromConfig, type CheckpointSink } from '../ledger/checkpoint-sinks.js';
import { CheckpointSchedule, DEFAULT_EVERY_EVENTS, DEFAULT_EVERY_SECONDS } from '../ledger/checkpoint-schedule.js';
import { TreeCheckpoints } from '../ledger/tree-checkpoints.js';
import { immediate, openDb, WalSync, type Db } from '../ledger/db.js';
import type { StateMismatch } from '../ledger/state-record.js';
import { KeyStore } from '../keys/store.js';
import { Ledger, type ExecutionIntent } from '../ledger/ledger.js';
import { cedarCheckedAtBuild, loadedAtBuild, type PolicySet } from '../policy/cedar-checked.js';
import { DeferredPolicyEngine } from '../policy/deferred-engine.js';
import { PolicyStore } from '../policy/store.js';
import { Approvals } from './approvals.js';
import { ReplayCache } from './auth/replay.js';
import { Budgets } from './budget.js';
import { BudgetRules } from './budget-rules.js';
import { noopProvider } from './builtin-providers.js';
import { GateState, type GateContext } from './context.js';
import { GateError } from './errors.js';
import { peerLimits } from './peer-limits.js';
import { Gate } from './service.js';
import { GateInstances, type GateRole } from './instances.js';
import { recordInterrupted } from './interrupted.js';
import { fileURLToPath } from 'node:url';
import { KeyWatch } from './key-watch.js';
import { PROVIDER_LOG, ProviderLogFile } from './provider-log.js';
import type { OwnPath } from './own-paths.js';
import { installProtectedDirs } from './install-paths.js';
import { ProviderTable, type HttpTransport, type Provider } from './providers.js';
import { ChainedPolicy } from './policy-guard.js';
import { Registry } from './registry.js';
import { ClientTokens } from './tokens.js';
import { IdempotencyKeys } from './idempotency.js';
import { stateFiles } from './setup.js';
import { recordBaseline } from './state-baseline.js';
import { recordAndPinKeyRoots } from '../ledger/key-roots.js';
import { checkChainedState } from './state-check.js';
import { parsePins } from '../egress/ssrf.js';
import { extraCaCerts } from '../egress/trust-roots.js';
import { upstreamProxyFrom, type UpstreamProxy } from '../egress/upstream-proxy.js';
import { secureContextFor } from '../providers/http-transport.js';
import { appendEvent } from './audit.js';
import { GateSecrets } from './secret-sources.js';
import { checkSopsStore, describeSources, secretFiles, sopsStore } from '../secrets/sops-store.js';
import type { ProviderHostSettings } from './provider-hosts.js';
import { WasmProviders } from './wasm-providers.js';
import { BUDGET_HISTORY, budgetRestoredMessage, restoreBudgetCounts } from './budget-check.js';

import { DEFAULTS } from './defaults.js';

/** Beside the ledger: `latchgate reload` touches it, every gate process on the state directory drops its cached secrets. */
export const SECRETS_RELOAD_MARKER = 'secrets-reload';

export { DEFAULTS };

export interface OpenGateOptions {
  stateDir: string;
  config: GateFileConfig;
  /** Extra providers by digest, written in TypeScript (tests); the WebAssembly ones come from the manifests (src/gate/wasm-providers.ts). */
  providers?: Record<string, Provider>;
  transport?: HttpTransport;
  sandboxDegraded?: boolean;
  /** Load the package's definitions/manifests (default true). */
  builtinManifests?: boolean;
  /** Published in this process's instance file (default 'other'). */
  role?: GateRole;
  /** The fs root when [providers.fs] sets none: a box's workspace. */
  fsRoot?: string;
  /** [secrets]: the SOPS file and its age key (absent: the defaults). */
  secrets?: SecretsFileConfig;
  /** latchgate's own files and directories (src/gate/own-paths.ts): no provider reads or writes them; the state directory always. */
  ownPaths?: readonly OwnPath[];
}

/** The package this gate runs from (dist/gate/factory.js is two levels down). */
const INSTALL_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** [gate.resolve], [gate] extra_ca_certs and [providers.fs] as every provider call's hosts use them. */
function providerHostSettings(c: GateFileConfig, fsRoot: string | undefined, secrets: GateSecrets, protect: Pick<ProviderHostSettings, 'protectedFiles' | 'protectedDirs'>): ProviderHostSettings {
  const ca = extraCaCerts(
    (c.extraCaCerts ?? []).map((f) => {
      try {
        return readFileSync(f, 'utf8');
      } catch (e) {
        throw new GateError('invalid_request', `[gate] extra_ca_certs: ${f} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix the path or remove it`);
      }
    }),
    '[gate] extra_ca_certs',
  );
  const fs = c.providers?.fs;
  let trust: SecureContext | undefined;
  return {
    pins: parsePins(c.resolve ?? new Map(), '[gate.resolve]'),
    trust: () => (trust ??= secureContextFor(ca)),
    upstreamProxy: gateUpstreamProxy(c),
    secrets,
    ...protect,
    fs: { principals: fs?.principals ?? new Map(), actions: fs?.actions ?? new Map(), ...(fs?.root ?? fsRoot ? { root: fs?.root ?? fsRoot } : {}) },
  };
}

/** [gate] upstream_proxy over the gate's https_proxy / HTTPS_PROXY (src/egress/upstream-proxy.ts). */
function gateUpstreamProxy(c: GateFileConfig): UpstreamProxy | null {
  try {
    return upstreamProxyFrom({ upstreamProxy: c.upstreamProxy, noProxy: c.noProxy, section: '[gate]' }, process.env);
  } catch (e) {
    throw new GateError('invalid_request', (e as Error).message);
  }
}

/**
 * The gate's secrets: the SOPS store [secrets] asks for (src/secrets/sops-store.ts),
 * then LATCHGATE_SECRET_*. `latchgate up` reads the file at start and does
 * not serve with one it cannot read; other roles read it at first use (a
 * box's launcher has checked it already; `latchgate audit` needs none).
 */
async function gateSecrets(c: SecretsFileConfig | undefined, stateDir: string, role: GateRole): Promise<{ secrets: GateSecrets; sources: string }> {
  const reloadMarker = join(stateDir, SECRETS_RELOAD_MARKER);
  const store = sopsStore(c, { reloadMarker });
  const values = role === 'up' ? await checkSopsStore(store, 'latchgate up') : undefined;
  return { secrets: new GateSecrets(store.resolver, reloadMarker), sources: describeSources(store, values) };
}

/**
 * The engine [policy] names, checked now and loaded at its first decision
 * (src/policy/deferred-engine.ts): the modules too, so a command that never
 * decides never loads Cedar or OPA.
 */
export function policyEngine(c: GateFileConfig['policy'], cedarSet?: PolicySet): DeferredPolicyEngine {
  const kind = c.engine ?? 'cedar';
  // cedarSet: the texts read (and checked) at open, so the first decision cannot see another file; the Cedar
  // package is checked again as it is loaded, so what was checked is what runs.
  if (kind === 'cedar') {
    return new DeferredPolicyEngine(kind, async () => {
      if (cedarSet && !loadedAtBuild(cedarSet)) throw new Error(`the Cedar package (@cedar-policy/cedar-wasm) changed after this gate opened; every decision is a deny until the gate is restarted on an intact installation (npm ci, or reinstall latchgate)`);
      return (await import('../policy/cedar.js')).CedarEngine.load(cedarSet ?? {});
    });
  }
  if (kind === 'opa-wasm') {
    const file = c.opaWasm;
    if (!file) throw new GateError('invalid_request', '[policy] engine = "opa-wasm" needs opa_wasm = "<path to policy.wasm built with opa build -t wasm>"');
    return new DeferredPolicyEngine(kind, async () => (await import('../policy/opa.js')).OpaWasmEngine.load(file));
  }
  if (kind === 'opa-server') {
    const url = c.opaUrl;
    if (!url) throw new GateError('invalid_request', '[policy] engine = "opa-server" needs opa_url = "http://127.0.0.1:8181/v1/data/latchgate/decision"');
    return new DeferredPolicyEngine(kind, async () => new (await import('../policy/opa.js')).OpaServerEngine(url, { timeoutMs: c.opaTimeoutMs ?? 1000 }));
  }
  throw new GateError('invalid_request', `[policy] engine = ${JSON.stringify(kind)}: expected "cedar", "opa-wasm" or "opa-server"`);
}

/** Principals by name: the scopes of every uid configured as that name. */
function principalScopes(configured: Iterable<{ name: string; scopes: string[] }>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of configured) out.set(p.name, [...new Set([...(out.get(p.name) ?? []), ...p.scopes])]);
  return out;
}

/** The operator's budgets; one that names an action no manifest defines would never bite, so it is refused. */
function budgetRules(c: GateFileConfig['budgets'], registry: Registry): BudgetRules {
  const rules = new BudgetRules(c);
  for (const a of rules.actionIds()) {
    if (!registry.get(a.action_id)) throw new LaunchError(`latchgate.toml ${a.section}: no action ${JSON.stringify(a.action_id)} is registered; expected an action id from latchgate actions (a typo would leave the action unlimited)`);
  }
  return rules;
}

export interface OpenedGate {
  db: Db;
  ctx: GateContext;
  gate: Gate;
  /**
   * The state kept outside the chain that differs from it, as found at open
   * (empty when all is well). Requests relying on it are refused
   * (state_tampered); `latchgate up` refuses to start.
   */
  tampered: StateMismatch[];
  /** Where the gate's secrets come from (no value): for start-up output. */
  secretSources: string;
  /** The ledger's signed checkpoints and where they go (docs/EVIDENCE.md); schedule: the gates that sign as they run (`up`, a box's). */
  checkpoints: { store: TreeCheckpoints; publisher: CheckpointPublisher; schedule?: CheckpointSchedule };
  /** Signs and publishes a last checkpoint (gate shutdown): call before close(). */
  finalCheckpoint(): Promise<void>;
  close(): void;
}

export async function openGate(o: OpenGateOptions): Promise<OpenedGate> {
  const files = stateFiles(o.stateDir);
  const dbPath = files.ledger;
  const db = openDb(dbPath);
  // A serving gate's checkpoints copy the WAL into the database with fsyncs:
  // not inside a request's commit (SQLite's automatic ones would), but in a
  // worker. A command's gate (cli) commits a few times and closes: SQLite's
  // own checkpoints, and the one at the last connection's close, do, without
  // a worker's start-up on every command.
  const serving = o.role !== 'cli';
  if (serving) db.pragma('wal_autocheckpoint = 0');
  const ledger = new Ledger(db).migrate();
  const checkpoints = dbPath === ':memory:' || !serving ? undefined : new Checkpointer(dbPath);
  const keys = new KeyStore(files.keys);
  const registry = new Registry(db, o.config.manifestDirs, { builtin: o.builtinManifests ?? true, ...(o.config.schemaCheckMs !== undefined ? { schemaCheckMs: o.config.schemaCheckMs } : {}) });
  registry.migrate();
  registry.load();
  // A refusal to open leaves nothing running (the checkpoint worker would keep the process alive).
  const fail = (e: unknown): never => {
    checkpoints?.close();
    db.close();
    throw e;
  };
  let rules!: BudgetRules;
  let sinks!: CheckpointSink[];
  let policy!: DeferredPolicyEngine;
  try {
    rules = budgetRules(o.config.budgets, registry);
    sinks = sinksFromConfig(o.config.checkpoints?.sinks ?? new Map());
    // A gate that serves loads its engine now, so a broken one is said before anyone is answered;
    // a box's, on the Cedar policy set the build loaded, at its first decision (most boxes never decide), from the texts read now.
    const checked = o.role === 'sandbox' && (o.config.policy.engine ?? 'cedar') === 'cedar' ? cedarCheckedAtBuild() : undefined;
    policy = policyEngine(o.config.policy, checked);
    if (serving && !checked) await policy.ready();
  } catch (e) {
    fail(e);
  }
  const budgets = new Budgets(db, rules);
  budgets.migrate();
  const ttl = o.config.approvalTtlSeconds ?? DEFAULTS.approvalTtlSeconds;
  const approvals = new Approvals(db, ttl);
  approvals.migrate();
  const tokens = new ClientTokens(db);
  tokens.migrate();
  const idempotency = new IdempotencyKeys(db);
  idempotency.migrate();
  // The policy data (seeded on first open), the epoch table and the baseline
  // recording both (on the first start that finds none) in one transaction.
  const { policyStore, state } = immediate(db, () => {
    const policyStore = new PolicyStore(db);
    const state = new GateState(db);
    recordBaseline(ledger, policyStore, o.sandboxDegraded ?? false);
    return { policyStore, state };
  });
  // Every signing key exists (or an older history is sealed) before its root is recorded and pinned.
  try {
    for (const kind of ['lease', 'grant', 'receipt', 'checkpoint'] as const) keys.current(kind);
    immediate(db, () => recordAndPinKeyRoots(ledger, keys));
  } catch (e) {
    fail(e);
  }
  const restored = restoreBudgetCounts(ledger);
  if (restored.length) process.stderr.write(`latchgate: warning: ${budgetRestoredMessage(restored)}\n`);
  const found = checkChainedState(db, keys).mismatches;
  // What happened in the past (a window overspent) is reported; what the gate would rely on now fails closed.
  for (const m of found.filter((x) => x.table === BUDGET_HISTORY)) process.stderr.write(`latchgate: warning: ${m.message}\n`);
  const tampered = found.filter((x) => x.table !== BUDGET_HISTORY);
  const instances = new GateInstances(o.stateDir, o.role ?? 'other');
  let interrupted: ExecutionIntent[] = [];
  try {
    interrupted = recordInterrupted(ledger, instances);
  } catch (e) {
    instances.close();
    fail(e);
  }
  if (interrupted.length) {
    process.stderr.write(
      `latchgate: warning: ${interrupted.length} execution(s) stopped between intent and receipt (grant ${interrupted.map((i) => i.grant_id).join(', ')}); recorded as execution_interrupted. Their outcome is unknown: check whether the side effect happened (latchgate verify lists them)\n`,
    );
  }
  const providers = new ProviderTable();
  providers.register('builtin:noop', noopProvider);
  for (const [digest, p] of Object.entries(o.providers ?? {})) providers.register(digest, p);
  let providerHosts!: ProviderHostSettings;
  let secretSources!: string;
  try {
    const s = await gateSecrets(o.secrets, o.stateDir, o.role ?? 'other');
    secretSources = s.sources;
    const own: OwnPath[] = [...(o.ownPaths ?? []), { path: o.stateDir, type: 'dir', what: 'state directory (ledger, keys)' }, { path: INSTALL_ROOT, type: 'dir', what: 'installation (the code every later latchgate command runs)' }];
    providerHosts = providerHostSettings(o.config, o.fsRoot, s.secrets, {
      protectedFiles: [...secretFiles(o.secrets), ...own.filter((p) => p.type === 'file').map((p) => p.path)],
      // And, readable but never written, every directory the host runs latchgate's code from.
      protectedDirs: [...own.filter((p) => p.type === 'dir').map(({ path, what }) => ({ path, what })), ...installProtectedDirs()],
    });
  } catch (e) {
    fail(e);
  }
  const pc = o.config.providers;
  const wasm = new WasmProviders({ cacheDir: join(o.stateDir, 'provider-cache'), ...(pc?.poolSize ? { poolSize: pc.poolSize } : {}), ...(pc?.queueLimit ? { queueLimit: pc.queueLimit } : {}) });
  wasm.register(providers, registry.list());
  const ctx: GateContext = {
    db,
    ledger,
    keys,
    replay: new ReplayCache(db),
    registry,
    policy,
    policyStore,
    policyData: new ChainedPolicy(db, policyStore),
    budgets,
    approvals,
    idempotency,
    tokens,
    providers,
    wasm,
    providerHosts,
    ...(o.transport ? { transport: o.transport } : {}),
    settings: {
      publicBaseUrl: o.config.publicBaseUrl ?? DEFAULTS.publicBaseUrl,
      leaseTtlSeconds: o.config.leaseTtlSeconds ?? DEFAULTS.leaseTtlSeconds,
      maxBodyBytes: o.config.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
      grantTtlSeconds: DEFAULTS.grantTtlSeconds,
      sandboxDegraded: o.sandboxDegraded ?? false,
      principals: principalScopes(o.config.principals.values()),
      limits: peerLimits(o.config),
    },
    state,
    instances,
    keyWatch: new KeyWatch(keys, instances),
    wal: new WalSync(dbPath),
    providerLog: new ProviderLogFile(join(o.stateDir, PROVIDER_LOG)),
  };
  const gate = new Gate(ctx);
  const store = new TreeCheckpoints(ledger, keys);
  const publisher = new CheckpointPublisher(store, [new LogSink(join(o.stateDir, CHECKPOINT_LOG)), ...sinks], (e) => appendEvent(ctx, e));
  const cp = o.config.checkpoints;
  const schedule =
    o.role === 'up' || o.role === 'sandbox'
      ? new CheckpointSchedule(store, publisher, { everyEvents: cp?.everyEvents ?? DEFAULT_EVERY_EVENTS, everySeconds: cp?.everySeconds ?? DEFAULT_EVERY_SECONDS, record: (e) => appendEvent(ctx, e) }).start()
      : undefined;
  return {
    db,
    ctx,
    gate,
    tampered,
    secretSources,
    checkpoints: { store, publisher, ...(schedule ? { schedule } : {}) },
    finalCheckpoint: async () => {
      gate.close(); // its counted refusals first: the last checkpoint covers them
      await schedule?.stop();
    },
    close: () => {
      schedule?.halt();
      gate.close(); // its counted refusals, while the ledger is open
      checkpoints?.close();
      ctx.keyWatch.close();
      ctx.instances.close();
      ctx.wal.close();
      ctx.providerLog.close();
      void wasm.close();
      void registry.close();
      db.close();
    },
  };
}
