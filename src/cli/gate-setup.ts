// What the gate commands share: configuration (used only when trusted,
// config/trust.ts) with safe first-run defaults (the user running latchgate
// is its only principal and operator), the state and runtime directories,
// latchgate's own files that a box must not write, and opening the gate on
// the shared state.
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { userInfo } from 'node:os';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { runtimeDir, stateDir, userConfigDir } from '../config/paths.js';
import type { GateFileConfig, LatchgateConfig } from '../config/latchgate-toml.js';
import { loadTrustedConfig } from '../config/trust.js';
import type { Caller } from '../gate/app.js';
import type { OpenedGate } from '../gate/factory.js';
import { LaunchError } from '../core/errors.js';
import type { ProtectRequest } from '../sandbox/protected-paths.js';

export interface GateSetup {
  config: LatchgateConfig;
  gate: GateFileConfig;
  stateDir: string;
  runtimeDir: string;
  clientSocket: string;
  adminSocket: string;
  /** Real paths of the configuration files read (a sandbox adds its --sandbox-config file). */
  configFiles: string[];
}

export function gateSetup(configFile?: string): GateSetup {
  const { config, files } = loadTrustedConfig(configFile);
  const g = config.gate;
  const uid = process.getuid!();
  const me = userInfo().username;
  // First run, nothing configured: this user may call actions and administer.
  if (g.principals.size === 0) g.principals.set(uid, { name: me, scopes: ['tools:call', 'audit:read'] });
  if (g.operators.size === 0) g.operators.set(me, { uid });
  const rt = g.runtimeDir ?? runtimeDir();
  return {
    config,
    gate: g,
    stateDir: g.stateDir ?? stateDir(),
    runtimeDir: rt,
    clientSocket: join(rt, 'gate.sock'),
    adminSocket: join(rt, 'gate-admin.sock'),
    configFiles: files,
  };
}

/** A path latchgate itself depends on, with what it is (for error messages). */
export interface OwnPath extends ProtectRequest {
  what: string;
}

/** The real path of p, or of its deepest existing ancestor with the rest appended. */
function realish(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    const up = dirname(p);
    return up === p ? p : join(realish(up), basename(p));
  }
}

/**
 * latchgate's own files, kept read-only inside every box whose writable
 * roots hold them (a missing one gets a read-only placeholder, so it cannot
 * be created): the configuration files read, the user config directory, the
 * state directories (trust store, ledger, keys) and the runtime directory.
 * The state and runtime directories are created now (mode 0700, as the gate
 * creates them), so a box never gets a placeholder there that the launcher
 * would then fill with its ledger.
 */
export function prepareOwnPaths(s: GateSetup, env: NodeJS.ProcessEnv = process.env): OwnPath[] {
  const list: OwnPath[] = [
    ...s.configFiles.map((path) => ({ path, type: 'file' as const, what: 'configuration file' })),
    { path: userConfigDir(env), type: 'dir', what: 'user config directory' },
    { path: stateDir(env), type: 'dir', what: 'state directory (trust store, ledger, keys)' },
    { path: s.stateDir, type: 'dir', what: 'state directory (ledger, keys)' },
    { path: s.runtimeDir, type: 'dir', what: 'runtime directory' },
  ];
  for (const o of list.slice(-3)) {
    try {
      // Parents with the usual mode: one the box's user cannot search would keep the box from being built.
      mkdirSync(dirname(o.path), { recursive: true });
      if (!existsSync(o.path)) mkdirSync(o.path, { mode: 0o700 });
    } catch {
      // Left missing: the box gets a read-only placeholder there instead.
    }
  }
  const seen = new Set<string>();
  return list.map((o) => ({ ...o, path: realish(o.path) })).filter((o) => !seen.has(o.path) && !!seen.add(o.path));
}

/** A writable root that is one of latchgate's own paths or lies inside one cannot be protected: refused. */
export function refuseWritableOwnPaths(writableRoots: readonly string[], own: readonly OwnPath[]): void {
  for (const root of writableRoots) {
    for (const o of own) {
      const r = relative(o.path, root);
      if (r === '' || (!r.startsWith('..') && !isAbsolute(r))) {
        throw new LaunchError(`${root}: refused as a writable mount: it is ${r === '' ? '' : 'inside '}latchgate's ${o.what} ${o.path}, which a box must not write; mount a directory that does not hold it`);
      }
    }
  }
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

/** Loads the gate's modules only when a command needs them (sandbox start-up stays light). */
export async function openSharedGate(s: GateSetup): Promise<OpenedGate> {
  const { openGate } = await import('../gate/factory.js');
  return openGate({ stateDir: s.stateDir, config: s.gate });
}
