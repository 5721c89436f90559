// The gate's setup, shared by `latchgate up`, the gate commands and every
// `latchgate sandbox`: configuration (used only when trusted,
// config/trust.ts) with safe first-run defaults (the user running latchgate
// is its only principal and operator), the state and runtime directories,
// and opening the gate on the shared state.
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { stateDir } from '../config/paths.js';
import { resolveRuntimeDir } from '../config/runtime-dir.js';
import type { GateFileConfig, LatchgateConfig } from '../config/latchgate-toml.js';
import { loadTrustedConfig } from '../config/trust.js';
import type { TrustedPath } from '../config/trusted-paths.js';
import type { Caller } from './app.js';
import type { OpenedGate } from './factory.js';
import type { GateRole } from './instances.js';
import { LaunchError } from '../core/errors.js';

export interface GateSetup {
  config: LatchgateConfig;
  gate: GateFileConfig;
  stateDir: string;
  runtimeDir: string;
  clientSocket: string;
  adminSocket: string;
  /** Real paths of the configuration files read (a sandbox adds its --sandbox-config file). */
  configFiles: string[];
  /** What those files name that the host trusts or runs (config/trusted-paths.ts). */
  trustedPaths: TrustedPath[];
}

export function gateSetup(configFile?: string): GateSetup {
  const { config, files, trustedPaths } = loadTrustedConfig(configFile);
  const g = config.gate;
  const uid = process.getuid!();
  const me = userInfo().username;
  // First run, nothing configured: this user may call actions and administer.
  if (g.principals.size === 0) g.principals.set(uid, { name: me, scopes: ['tools:call', 'audit:read'] });
  if (g.operators.size === 0) g.operators.set(me, { uid });
  // Made (and, as /tmp's fallback, checked) now: the name is ours before any socket goes in it.
  const rt = resolveRuntimeDir({ configured: g.runtimeDir, create: true });
  return {
    config,
    gate: g,
    stateDir: g.stateDir ?? stateDir(),
    runtimeDir: rt,
    clientSocket: join(rt, 'gate.sock'),
    adminSocket: join(rt, 'gate-admin.sock'),
    configFiles: files,
    trustedPaths,
  };
}

export function operatorsByUid(g: GateFileConfig): Map<number, string> {
  return new Map([...g.operators].map(([name, o]) => [o.uid, name]));
}

/** The local user as an operator, for admin acts run by the CLI itself. */
export function localOperator(s: GateSetup): Caller {
  const uid = process.getuid!();
  const name = operatorsByUid(s.gate).get(uid);
  if (!name) {
    throw new LaunchError(`uid ${uid} is not an operator; add [operators.<name>] uid = ${uid} to ${s.config.file ?? 'latchgate.toml'}`);
  }
  return { principal: `operator:${name}`, scopes: [], uid, operator: name, transport: 'unix' };
}

/** The shared state under a state directory: the ledger and the key store. */
export function stateFiles(stateDir: string): { ledger: string; keys: string } {
  return { ledger: join(stateDir, 'ledger.sqlite3'), keys: join(stateDir, 'keys') };
}

/** Loads the gate's modules only when a command needs them (sandbox start-up stays light). */
export async function openSharedGate(s: GateSetup, role: GateRole): Promise<OpenedGate> {
  const { openGate } = await import('./factory.js');
  const { ownPaths } = await import('./own-paths.js');
  return openGate({ stateDir: s.stateDir, config: s.gate, role, ownPaths: ownPaths(s), ...(s.config.secrets ? { secrets: s.config.secrets } : {}) });
}
