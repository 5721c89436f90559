// What configures a launch: latchgate.toml (or --config) with --sandbox-config
// replacing its agent section, then the agent profile, read once, merged
// with it and the flags (profile, then latchgate.toml, then flags).
import { realpathSync } from 'node:fs';
import { normalizeAllowHost } from '../config/hosts.js';
import { applyProfileArgs, describeProfile, loadProfile, mergeProfile, type AgentProfile, type EffectiveProfile } from '../config/profiles.js';
import type { LatchgateConfig, SandboxFileConfig } from '../config/latchgate-toml.js';
import { loadTrustedSandboxConfig } from '../config/trust.js';
import { gateSetup, type GateSetup } from '../gate/setup.js';
import { hostFacts, resolveIdentity } from './identity.js';

/** The launch as the command line asks for it (flags parsed, repeatable ones as lists). */
export interface LaunchFlags {
  workspace?: string;
  ro: string[];
  rw: string[];
  passEnv: string[];
  allowHost: string[];
  profile?: string;
  config?: string;
  sandboxConfig?: string;
  strictNet?: boolean;
  rlimitNofile?: number;
  rlimitNproc?: number;
  tmpSize?: string;
  allowDegraded?: boolean;
  allowHomeWorkspace?: boolean;
  trustNewRepos?: boolean;
  allowRelativePath?: boolean;
  /** Run although latchgate's installation has hard links a writable mount could reach (recorded as degraded). */
  trustLinkedInstall?: boolean;
  /** false: --no-gate-tools. */
  gateTools?: boolean;
}

/** Reads an agent profile by name or alias (tests count the reads). */
export type ProfileLoader = (name: string) => AgentProfile;

/** The gate's setup with --sandbox-config, if given, in place of latchgate.toml's agent section. */
export function launchSetup(f: Pick<LaunchFlags, 'config' | 'sandboxConfig'>): GateSetup {
  const setup = gateSetup(f.config);
  if (f.sandboxConfig) {
    const { agent, file, trustedPaths } = loadTrustedSandboxConfig(f.sandboxConfig);
    setup.configFiles.push(file);
    setup.trustedPaths.push(...trustedPaths);
    setup.config = withAgentSection(setup.config, agent, f.sandboxConfig);
  }
  return setup;
}

/** The agent section replaced; limits and network stay those of latchgate.toml. */
export function withAgentSection(config: LatchgateConfig, agent: SandboxFileConfig, file: string): LatchgateConfig {
  const sb = config.sandbox;
  return { ...config, sandbox: { ...agent, limits: sb.limits, strictNet: sb.strictNet, network: sb.network }, file: config.file ?? file };
}

/** The workspace asked for, not yet checked. */
export function workspaceOf(f: LaunchFlags, config: LatchgateConfig): string {
  return f.workspace ?? config.sandbox.workspace ?? process.cwd();
}

export interface AgentSettings {
  /** The profile merged with latchgate.toml and the flags. */
  effective: EffectiveProfile;
  /** Allowed hosts, normalised, in merge order: profile, latchgate.toml, --allow-host. */
  allowHosts: string[];
  /** The command given, else the profile's, with the profile's arguments. */
  command: string[];
  /** Who the box is to the gate: [sandbox.agent] principal, else one per profile, else the default. */
  principal: string;
}

/** The principal of a box with neither a profile nor [sandbox.agent] principal. */
export const DEFAULT_BOX_PRINCIPAL = 'sandbox-agent';

/** home: the box's HOME, where the profile's ~ paths point. */
export function agentSettings(cmd: string[], f: LaunchFlags, config: LatchgateConfig, home: string, load: ProfileLoader = loadProfile): AgentSettings {
  const profile = f.profile !== undefined ? load(f.profile) : undefined;
  const file = config.sandbox;
  const source = config.file ?? 'latchgate.toml';
  const gateTools = f.gateTools !== false && file.gateTools;
  const effective = mergeProfile(profile, file, { allowHost: f.allowHost, ro: f.ro, rw: f.rw, passEnv: f.passEnv, gateTools }, { env: process.env, home, ...(process.env.HOME ? { hostHome: process.env.HOME } : {}) });
  const allowHosts = [
    ...new Set([
      ...(profile?.allowHosts ?? []).map((h) => normalizeAllowHost(h, `${profile!.file}: allow_hosts`)),
      ...file.allowHosts.map((h) => normalizeAllowHost(h, `${source}: [sandbox.agent] allow_hosts`)),
      ...f.allowHost.map((h) => normalizeAllowHost(h)),
    ]),
  ];
  const principal = file.principal ?? (profile ? `sandbox-${profile.name}` : DEFAULT_BOX_PRINCIPAL);
  return { effective, allowHosts, command: applyProfileArgs(cmd.length > 0 ? cmd : effective.command, effective), principal };
}

/** --print-profile: the effective profile and its allowed hosts; never a key. */
export function profileView(cmd: string[], f: LaunchFlags, setup: GateSetup) {
  let home = process.env.HOME ?? '/';
  try {
    home = resolveIdentity(hostFacts(realpathSync(workspaceOf(f, setup.config)))).home;
  } catch {
    // the workspace is checked at launch; HOME stands in for the listing
  }
  const a = agentSettings(cmd, f, setup.config, home);
  return { ...describeProfile(a.effective, a.command), allow_hosts: a.allowHosts, principal: a.principal };
}
