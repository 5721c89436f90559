// `latchgate sandbox`: parse, plan, print or run. No logic beyond that.
import { Command, Option } from 'commander';
import { normalizeAllowHost } from '../config/hosts.js';
import { applyProfileArgs, describeProfile, listProfiles, loadProfile, mergeProfile, type EffectiveProfile } from '../config/profiles.js';
import type { BoxGate } from '../sandbox/box-gate.js';
import { gateSetup, type GateSetup } from '../gate/setup.js';
import { prepareOwnPaths, refuseWritableOwnPaths } from '../sandbox/own-paths.js';
import { loadAddon } from '../native/addon.js';
import { LaunchError } from '../core/errors.js';
import { hostFacts, resolveIdentity } from '../sandbox/identity.js';
import { buildSandboxPlan, readHardLimits, type SandboxPlan } from '../sandbox/plan.js';
import { runSandbox, type RunResult } from '../sandbox/supervisor.js';
import type { GitFinding } from '../sandbox/git-check.js';
import { describeStateMerge, stateDirName, type StateMergeReport } from '../sandbox/state-files.js';
import { realpathSync } from 'node:fs';
import { hostHomes } from '../sandbox/home-workspace.js';
import { join } from 'node:path';
import { DEFAULTS } from '../gate/defaults.js';

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

function positiveInt(flag: string) {
  return (v: string) => {
    if (!/^\d+$/.test(v) || Number(v) <= 0) throw new LaunchError(`${flag} ${v}: expected a positive integer`);
    return Number(v);
  };
}

interface SandboxFlags {
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
  dryRun?: boolean;
  json?: boolean;
  allowDegraded?: boolean;
  printProfile?: boolean;
  allowHomeWorkspace?: boolean;
  trustNewRepos?: boolean;
}

export function sandboxCommand(): Command {
  return new Command('sandbox')
    .summary('run an agent or command in an isolated box')
    .description(
      'Run CMD (default: your shell) in a box of its own: new user, mount, PID, network, UTS, IPC and ' +
        'cgroup namespaces; a root assembled from read-only system trees; the workspace read-write at its ' +
        'real path; a private HOME and /tmp; loopback-only networking; Landlock; seccomp; no capabilities.',
    )
    .addHelpText(
      'after',
      [
        '',
        'Exit status:',
        "  the command's own, or 128+N if signal N killed it",
        '  125  latchgate itself failed (bad option, missing workspace, kernel refusal)',
        '  126  CMD was found but cannot be executed',
        '  127  CMD was not found inside the box',
        '',
        'Examples:',
        '  latchgate sandbox                          your shell, in the current directory',
        '  latchgate sandbox -- make test             one command',
        '  latchgate sandbox --ro /opt/sdk --pass-env GOFLAGS -- go test ./...',
        '  latchgate sandbox --dry-run -- npm test    print the launch plan as JSON',
      ].join('\n'),
    )
    .argument('[cmd...]', 'command and arguments (put them after --)')
    .option('--workspace <dir>', 'directory mounted read-write at its own path (default: current directory)')
    .option('--ro <path>', 'extra read-only mount at the same path (repeatable)', collect)
    .addOption(new Option('--ro-mount <path>', 'alias of --ro').hideHelp().argParser(collect))
    .option('--rw <path>', 'extra read-write mount at the same path (repeatable)', collect)
    .option('--pass-env <var>', 'pass this host environment variable into the box (repeatable)', collect)
    .option('--allow-host <host>', 'allow egress to this host through the proxy (repeatable)', collect)
    .option('--profile <name>', 'agent profile: claude-code, codex, cursor, opencode, aider')
    .option('--config <file>', 'latchgate.toml to read [sandbox.*] settings from')
    .option('--sandbox-config <file>', 'a standalone file with the [sandbox.agent] keys at its top level (replaces that section)')
    .option('--strict-net', 'Landlock TCP rules: no bind, connect only to latchgate\'s exits')
    .option('--rlimit-nofile <n>', 'open-file limit inside the box (default 65536)', positiveInt('--rlimit-nofile'))
    .option('--rlimit-nproc <n>', 'process limit inside the box (default 4096)', positiveInt('--rlimit-nproc'))
    .option('--tmp-size <size>', 'memory budget shared by /tmp, HOME and /dev/shm (default 50%)')
    .option('--dry-run', 'print the launch plan as JSON and exit')
    .option('--json', 'print a JSON summary on stderr at exit')
    .option('--print-profile', 'print the effective agent profile (--profile merged with latchgate.toml and flags) as JSON and exit; never a key')
    .option('--allow-degraded', 'run without Landlock when the kernel has none (recorded as degraded)')
    .option('--allow-home-workspace', 'allow a workspace that is (or contains) a home directory; its dotfiles stay read-only (recorded)')
    .option('--trust-new-repos', 'keep git repositories and .git pointers the box creates instead of disabling them at exit (recorded)')
    .action(async (cmd: string[], flags: SandboxFlags & { roMount?: string[] }) => {
      flags.ro = [...(flags.ro ?? []), ...(flags.roMount ?? [])];
      flags.rw ??= [];
      flags.passEnv ??= [];
      flags.allowHost ??= [];
      process.exitCode = await runSandboxCommand(cmd, flags);
    });
}

export const DEFAULT_BOX_PRINCIPAL = 'sandbox-agent';

/** The flag that asked for each weaker mode a plan records. */
const DEGRADED_FLAG: Record<string, string> = {
  'landlock-unavailable': '--allow-degraded',
  'home-workspace': '--allow-home-workspace',
  'trust-new-repos': '--trust-new-repos',
};

type EgressModule = typeof import('../sandbox/box-egress.js');

function planFrom(
  cmd: string[],
  f: SandboxFlags,
  setup: GateSetup,
  makeGate: (identity: { uid: number; gid: number }, principal: string) => BoxGate | undefined,
  egressMod: EgressModule | undefined,
): { plan: SandboxPlan; egress: ReturnType<EgressModule['planEgress']> } {
  const cfg = setup.config;
  const source = cfg.file ?? 'latchgate.toml';
  const workspace = f.workspace ?? cfg.sandbox.workspace ?? process.cwd();
  let wsReal: string;
  try {
    wsReal = realpathSync(workspace);
  } catch {
    throw new LaunchError(`--workspace ${workspace}: no such directory; create it or pass an existing one`);
  }
  const facts = hostFacts(wsReal);
  const identity = resolveIdentity(facts);
  const eff = effective(f, cfg.sandbox, identity.home);
  // The egress plan sees the merged routes (optional ones without a key dropped).
  const file = { ...cfg.sandbox, credentials: eff.credentials as typeof cfg.sandbox.credentials };
  const allowHosts = hostsFor(f, cfg.sandbox, source);
  const egress = egressMod?.planEgress([...new Set(allowHosts)], file, process.env, source);
  const principal = file.principal ?? DEFAULT_BOX_PRINCIPAL;
  const boxGate = makeGate(identity, principal);
  const tty = process.stdin.isTTY;
  const out = process.stdout.isTTY ? process.stdout : undefined;
  const own = prepareOwnPaths(setup);
  const plan = buildSandboxPlan(
    {
      workspace,
      ro: eff.ro,
      rw: eff.rw,
      passEnv: eff.passEnv,
      allowHosts: [...new Set(allowHosts)],
      ...(eff.profile ? { profile: eff.profile } : {}),
      command: commandFor(cmd, eff),
      extraEnv: eff.env,
      extraPath: eff.discovery?.path ?? [],
      protect: [...eff.protected, ...own],
      files: eff.files,
      stateFiles: { dir: f.dryRun ? '(a directory created at launch)' : stateDirName(), files: eff.stateFiles },
      strictNet: f.strictNet ?? file.strictNet ?? false,
      allowDegraded: f.allowDegraded ?? false,
      allowHomeWorkspace: f.allowHomeWorkspace ?? false,
      trustNewRepos: f.trustNewRepos ?? false,
      baselineDir: setup.runtimeDir,
      limits: { nofile: f.rlimitNofile ?? file.limits.nofile, nproc: f.rlimitNproc ?? file.limits.nproc, tmpSize: f.tmpSize ?? file.limits.tmpSize },
      listenPorts: egress?.listenPorts ?? [],
      ...(egress ? { egress: { env: egress.env, description: egressMod!.describeEgress(egress), proxySocket: boxGate ? join(boxGate.dir, 'proxy.sock') : '(a socket created at launch)' } } : {}),
      gate: { socket: boxGate?.socketPath ?? '(a socket created at launch)', principal, publicBaseUrl: setup.gate.publicBaseUrl ?? DEFAULTS.publicBaseUrl },
    },
    {
      identity,
      env: process.env,
      landlockAbi: loadAddon().landlockAbi(),
      hardLimits: readHardLimits(),
      terminal: tty ? { rows: out?.rows || 24, cols: out?.columns || 80 } : null,
      homes: hostHomes(facts.passwd, [process.env.HOME, identity.home]),
    },
  );
  refuseWritableOwnPaths(plan.writableRoots, own);
  return { plan, egress };
}

/** Profile, then latchgate.toml [sandbox.agent], then flags (config/profiles.ts mergeProfile). */
function effective(f: SandboxFlags, file: GateSetup['config']['sandbox'], home: string): EffectiveProfile {
  const profile = f.profile !== undefined ? loadProfile(f.profile) : undefined;
  return mergeProfile(profile, file, { allowHost: f.allowHost, ro: f.ro, rw: f.rw, passEnv: f.passEnv }, { env: process.env, home, ...(process.env.HOME ? { hostHome: process.env.HOME } : {}) });
}

/** Allowed hosts, normalised, in merge order: profile, latchgate.toml, --allow-host. */
function hostsFor(f: SandboxFlags, file: GateSetup['config']['sandbox'], source: string): string[] {
  const profile = f.profile !== undefined ? loadProfile(f.profile) : undefined;
  return [
    ...new Set([
      ...(profile?.allowHosts ?? []).map((h) => normalizeAllowHost(h, `${profile!.file}: allow_hosts`)),
      ...file.allowHosts.map((h) => normalizeAllowHost(h, `${source}: [sandbox.agent] allow_hosts`)),
      ...f.allowHost.map((h) => normalizeAllowHost(h)),
    ]),
  ];
}

function commandFor(cmd: string[], eff: EffectiveProfile): string[] {
  return applyProfileArgs(cmd.length > 0 ? cmd : eff.command, eff);
}

/** `latchgate profiles [--json]`: the built-in agent profiles. */
export function profilesCommand(): Command {
  return new Command('profiles')
    .summary('list the built-in agent profiles')
    .description('List the built-in agent profiles (profiles/*.toml) with their aliases and default commands; use one with `latchgate sandbox --profile NAME`, and see its effective form with --print-profile.')
    .option('--json', 'print them as JSON')
    .action((o: { json?: boolean }) => {
      const all = listProfiles();
      if (o.json) {
        process.stdout.write(JSON.stringify(all, null, 2) + '\n');
        return;
      }
      const w = Math.max(...all.map((p) => p.name.length));
      for (const p of all) {
        process.stdout.write(`${p.name.padEnd(w)}  ${p.command.join(' ')}${p.aliases.length ? `  (aliases: ${p.aliases.join(', ')})` : ''}  ${p.description}\n`);
      }
    });
}

/**
 * Says on stderr and in the ledger what the box left that the host would
 * run; a piece that could not be disabled is a launcher failure (exit 125).
 */
function reportHostExec(findings: GitFinding[], gate: BoxGate): LaunchError | undefined {
  for (const f of findings) {
    process.stderr.write(`latchgate: ${f.action === 'failed' ? 'DANGER: ' : ''}${f.message}\n`);
    gate.record({
      event_type: 'sandbox_host_exec',
      decision: f.action === 'kept' || f.action === 'reported' ? 'allow' : 'deny',
      subject: { principal: gate.principal },
      details: { kind: f.kind, path: f.path, action: f.action, ...(f.moved ? { moved_to: f.moved.to } : {}), ...(f.gitlinks ? { gitlinks: f.gitlinks } : {}) },
    });
  }
  const failed = findings.filter((f) => f.action === 'failed');
  if (failed.length === 0) return undefined;
  return new LaunchError(`latchgate: ${failed.length} thing(s) the box left could not be disabled (see above); remove them before running git there`);
}

function summary(plan: SandboxPlan | undefined, r: RunResult | undefined, error: LaunchError | undefined, startedMs: number) {
  return {
    exitCode: error?.exitCode ?? r?.exitCode ?? 125,
    durationMs: Math.round((r?.durationMs ?? performance.now() - startedMs) * 1000) / 1000,
    boxSetupMs: r?.boxSetupMs ?? null,
    signal: r?.signal ?? null,
    error: error?.message ?? null,
    isolation: plan
      ? {
          namespaces: plan.namespaces,
          uid: plan.identity.uid,
          landlock: { abi: plan.landlock.abi, status: plan.landlock.status, strictNet: plan.network.strictNet },
          seccomp: true,
          noNewPrivs: plan.noNewPrivs,
          capabilities: plan.capabilities,
          terminal: plan.terminal.mode,
        }
      : null,
    degraded: plan?.degraded ?? [],
    hostExecution: (r?.hostExec ?? []).map((f) => ({ kind: f.kind, path: f.path, action: f.action, ...(f.moved ? { movedTo: f.moved.to } : {}), ...(f.gitlinks ? { gitlinks: f.gitlinks } : {}) })),
  };
}

/** Says on stderr and in the ledger what became of each state file (key paths only, never values). */
function reportStateFiles(reports: StateMergeReport[], gate: BoxGate): void {
  for (const r of reports) {
    const line = describeStateMerge(r);
    if (line) process.stderr.write(`${line}\n`);
    gate.record({
      event_type: 'state_file_merge',
      decision: r.outcome === 'kept-aside' || r.dropped.length > 0 ? 'deny' : 'allow',
      subject: { principal: gate.principal },
      details: { path: r.path, outcome: r.outcome, dropped: r.dropped, ...(r.keptAt ? { kept_at: r.keptAt } : {}), ...(r.reason ? { reason: r.reason } : {}) },
    });
  }
}

export async function runSandboxCommand(cmd: string[], f: SandboxFlags): Promise<number> {
  const t0 = performance.now();
  let plan: SandboxPlan | undefined;
  let result: RunResult | undefined;
  let error: LaunchError | undefined;
  let boxGate: BoxGate | undefined;
  let boxEgress: import('../sandbox/box-egress.js').BoxEgress | undefined;
  try {
    const setup = gateSetup(f.config);
    if (f.sandboxConfig) {
      const { loadTrustedSandboxConfig } = await import('../config/trust.js');
      const { agent, file } = loadTrustedSandboxConfig(f.sandboxConfig);
      setup.configFiles.push(file);
      // The agent section is replaced; limits and network stay those of latchgate.toml.
      const sb = setup.config.sandbox;
      setup.config.sandbox = { ...agent, limits: sb.limits, strictNet: sb.strictNet, network: sb.network };
      setup.config.file = setup.config.file ?? f.sandboxConfig;
    }
    if (f.printProfile) {
      if (f.profile === undefined) throw new LaunchError('--print-profile: give --profile NAME (see `latchgate profiles`)');
      let home = process.env.HOME ?? '/';
      const ws = f.workspace ?? setup.config.sandbox.workspace ?? process.cwd();
      try {
        home = resolveIdentity(hostFacts(realpathSync(ws))).home;
      } catch {
        // the workspace is checked at launch; HOME stands in for the listing
      }
      const eff = effective(f, setup.config.sandbox, home);
      const allowHosts = hostsFor(f, setup.config.sandbox, setup.config.file ?? 'latchgate.toml');
      process.stdout.write(JSON.stringify({ ...describeProfile(eff, commandFor(cmd, eff)), allow_hosts: allowHosts }, null, 2) + '\n');
      return 0;
    }
    const { BoxGate } = await import('../sandbox/box-gate.js');
    const sb = setup.config.sandbox;
    // The egress modules load only for boxes that have exits to the network.
    const egressMod = f.profile !== undefined || f.allowHost.length > 0 || sb.allowHosts.length > 0 || sb.credentials.size > 0 ? await import('../sandbox/box-egress.js') : undefined;
    const planned = planFrom(cmd, f, setup, (agent, principal) => (f.dryRun ? undefined : (boxGate = new BoxGate(setup, principal, agent))), egressMod);
    plan = planned.plan;
    if (f.dryRun) {
      process.stdout.write(JSON.stringify(plan, null, 2) + '\n');
      return 0;
    }
    await boxGate!.listen();
    if (plan.degraded.length > 0) {
      for (const d of plan.degraded) process.stderr.write(`latchgate: WARNING: running degraded (${d}): asked for with ${DEGRADED_FLAG[d] ?? '--allow-degraded'}\n`);
      // A weaker mode is recorded in the ledger, not only said.
      boxGate!.sandboxDegraded = true;
      const { opened } = await boxGate!.open();
      opened.gate.event({ event_type: 'sandbox_degraded', decision: 'allow', subject: { principal: boxGate!.principal }, details: { degraded: plan.degraded, workspace: plan.workspace } });
    }
    if (planned.egress) {
      const gate = boxGate!;
      boxEgress = new egressMod!.BoxEgress(planned.egress, (e) => gate.record({ ...e, subject: { principal: gate.principal } }));
      await boxEgress.start(join(gate.dir, 'proxy.sock'));
    }
    const egress = boxEgress;
    result = await runSandbox(plan, {
      onListen: (fds) => {
        egress!.serve(fds).catch((e) => process.stderr.write(`latchgate: the egress proxies could not start: ${(e as Error).message}\n`));
      },
    });
    for (const w of result.warnings ?? []) process.stderr.write(`latchgate: warning: ${w}\n`);
    error = result.error ?? reportHostExec(result.hostExec ?? [], boxGate!);
    reportStateFiles(result.stateFiles ?? [], boxGate!);
  } catch (e) {
    if (!(e instanceof LaunchError)) throw e;
    error = e;
  } finally {
    await boxEgress?.close();
    await boxGate?.close();
  }
  if (error) process.stderr.write(`${error.message.startsWith('latchgate:') ? '' : 'latchgate: '}${error.message}\n`);
  if (f.json) process.stderr.write(JSON.stringify(summary(plan, result, error, t0)) + '\n');
  return error?.exitCode ?? result?.exitCode ?? 125;
}
