// `latchgate sandbox`: parse, call the launch (src/sandbox/launch.ts), print.
import { fstatSync } from 'node:fs';
import { Command, Option } from 'commander';
import { listProfiles } from '../config/profiles.js';
import { BOX_CA_BUNDLE } from '../core/box.js';
import { asLaunchError, LaunchError } from '../core/errors.js';
import { textTable } from '../core/text-table.js';
import { launchSetup, profileView, type LaunchFlags } from '../sandbox/launch-config.js';
import { planLaunch, prepareLaunch, runLaunch, type LaunchOutput } from '../sandbox/launch.js';
import type { SandboxPlan } from '../sandbox/plan.js';
import { describeNotice, type DenialReport } from '../sandbox/denials.js';
import { describeStateMerge } from '../sandbox/state-files.js';
import type { RunResult } from '../sandbox/supervisor.js';

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

function positiveInt(flag: string) {
  return (v: string) => {
    if (!/^\d+$/.test(v) || Number(v) <= 0) throw new LaunchError(`${flag} ${v}: expected a positive integer`);
    return Number(v);
  };
}

interface SandboxFlags extends LaunchFlags {
  dryRun?: boolean;
  json?: boolean;
  printProfile?: boolean;
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
        '  latchgate sandbox --profile claude-code    Claude Code, with the gate\'s actions as its MCP tools',
        '',
        'Inside the box, LATCHGATE_URL names the gate and `latchgate` / `latchgate-mcp` run read-only;',
        'the box is the gate principal sandbox-<profile> (or [sandbox.agent] principal): grant it',
        'actions on the host with `latchgate policy grant sandbox-claude-code http_fetch`.',
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
    .option('--no-gate-tools', "do not give the agent the gate's actions as MCP tools (its profile's [gate_tools])")
    .option('--trust-linked-install', "run although latchgate's installation has files with hard links on a writable mount's filesystem (a pnpm install), which the box could write through (recorded)")
    .option('--trust-new-repos', 'keep git repositories and .git pointers the box creates instead of disabling them at exit (recorded)')
    .option('--allow-relative-path', 'launch although your PATH has relative or empty entries (., bin, node_modules/.bin, ::), through which the box could plant the commands you type later (recorded)')
    .action(async (cmd: string[], flags: SandboxFlags & { roMount?: string[] }) => {
      flags.ro = [...(flags.ro ?? []), ...(flags.roMount ?? [])];
      flags.rw ??= [];
      flags.passEnv ??= [];
      flags.allowHost ??= [];
      process.exitCode = await runSandboxCommand(cmd, flags);
    });
}

/** The plan as printed: the CA bundle's write entry without its PEM text (network.egress.ca_bundle says what is in it). */
function shortCaBundle(_key: string, v: unknown): unknown {
  const e = v as { kind?: unknown; path?: unknown; content?: unknown } | null;
  if (e && e.kind === 'write' && e.path === BOX_CA_BUNDLE && typeof e.content === 'string') {
    return { ...e, content: `(${Buffer.byteLength(e.content)} bytes: the system's CA certificates and extra_ca_certs, see network.egress.ca_bundle)` };
  }
  return v;
}

/** The flag that asked for each weaker mode a plan records. */
const DEGRADED_FLAG: Record<string, string> = {
  'landlock-unavailable': '--allow-degraded',
  'home-workspace': '--allow-home-workspace',
  'trust-new-repos': '--trust-new-repos',
  'relative-path': '--allow-relative-path',
  'trust-linked-install': '--trust-linked-install',
};

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
      process.stdout.write(textTable(['NAME', 'COMMAND', 'ALIASES', 'DESCRIPTION'], all.map((p) => [p.name, p.command.join(' '), p.aliases.join(', '), p.description])) + '\n');
    });
}

function summary(plan: SandboxPlan | undefined, r: RunResult | undefined, error: LaunchError | undefined, startedMs: number, denials: DenialReport | undefined) {
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
          // A root-owned workspace given to that uid: the trees it sees through the idmap.
          idmapped: plan.identity.idmap?.trees ?? [],
          landlock: { abi: plan.landlock.abi, status: plan.landlock.status, strictNet: plan.network.strictNet },
          seccomp: true,
          noNewPrivs: plan.noNewPrivs,
          capabilities: plan.capabilities,
          terminal: plan.terminal.mode,
        }
      : null,
    degraded: plan?.degraded ?? [],
    hostExecution: (r?.hostExec ?? []).map((f) => ({ kind: f.kind, path: f.path, action: f.action, ...(f.moved ? { movedTo: f.moved.to } : {}), ...(f.gitlinks ? { gitlinks: f.gitlinks } : {}) })),
    denials: denials ?? { total: 0, connect: 0, credential: 0, dns: 0, hosts: [], otherHosts: 0 },
  };
}

/**
 * Whether the launcher's stderr is a terminal the agent draws on: the one
 * its own stderr is (no PTY), or the one its PTY is relayed to. Lines
 * written there while it runs would break its screen, so refusals are then
 * only said at exit.
 */
function stderrIsTheAgentsTerminal(plan: SandboxPlan): boolean {
  if (!process.stderr.isTTY) return false;
  if (plan.terminal.mode === 'inherit') return true;
  const rdev = (fd: number) => {
    try {
      return fstatSync(fd).rdev;
    } catch {
      return -1;
    }
  };
  const err = rdev(2);
  return err === rdev(0) || err === rdev(1);
}

/** The launch's own lines on stderr, as it runs; refusals as they happen only when live. */
function stderrOutput(live: boolean): LaunchOutput {
  return {
    degraded: (d) => process.stderr.write(`latchgate: WARNING: running degraded (${d}): asked for with ${DEGRADED_FLAG[d] ?? '--allow-degraded'}\n`),
    note: (n) => process.stderr.write(`latchgate: ${n}\n`),
    warning: (w) => process.stderr.write(`latchgate: warning: ${w}\n`),
    hostExec: (f) => process.stderr.write(`latchgate: ${f.action === 'failed' ? 'DANGER: ' : ''}${f.message}\n`),
    stateFile: (r) => {
      const line = describeStateMerge(r);
      if (line) process.stderr.write(`${line}\n`);
    },
    denied: (n) => {
      if (live) process.stderr.write(`latchgate: ${describeNotice(n)}\n`);
    },
  };
}

export async function runSandboxCommand(cmd: string[], f: SandboxFlags): Promise<number> {
  const t0 = performance.now();
  let plan: SandboxPlan | undefined;
  let result: RunResult | undefined;
  let error: LaunchError | undefined;
  let denials: DenialReport | undefined;
  try {
    const setup = launchSetup(f);
    if (f.printProfile) {
      if (f.profile === undefined) throw new LaunchError('--print-profile: give --profile NAME (see `latchgate profiles`)');
      process.stdout.write(JSON.stringify(profileView(cmd, f, setup), null, 2) + '\n');
      return 0;
    }
    if (f.dryRun) {
      process.stdout.write(JSON.stringify((await planLaunch(cmd, f, setup)).plan, shortCaBundle, 2) + '\n');
      return 0;
    }
    const launch = await prepareLaunch(cmd, f, setup);
    plan = launch.plan;
    const outcome = await runLaunch(launch, stderrOutput(!stderrIsTheAgentsTerminal(launch.plan)));
    ({ result, error } = outcome);
    denials = outcome.denials.report();
    for (const line of outcome.denials.lines(launch.principal)) process.stderr.write(`latchgate: ${line}\n`);
  } catch (e) {
    error = asLaunchError(e);
  }
  if (error) process.stderr.write(`${error.message.startsWith('latchgate:') ? '' : 'latchgate: '}${error.message}\n`);
  if (f.json) process.stderr.write(JSON.stringify(summary(plan, result, error, t0, denials)) + '\n');
  return error?.exitCode ?? result?.exitCode ?? 125;
}
