// `latchgate sandbox` below the command line. The plan is built as data
// first (planLaunch: what --dry-run prints; prepareLaunch: the same with the
// box's gate socket made), then runLaunch runs it with the box's gate, its
// egress exits and its ledger events, and records the after-run checks.
import { realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { LaunchError } from '../core/errors.js';
import { DEFAULTS } from '../gate/defaults.js';
import type { GateSetup } from '../gate/setup.js';
import { loadAddon } from '../native/addon.js';
import { parseKeySource, type KeySource } from '../config/key-source.js';
import { keyFilePath, type KeySourceContext } from '../secrets/key-source.js';
import { ageKeyFiles, checkSopsStore, secretFiles, sopsStore, type KeyFile } from '../secrets/sops-store.js';
import type { AuditEventInput } from '../core/audit-event.js';
import type { BoxDns } from '../egress/box-dns.js';
import type { BoxEgress, EgressPlan } from './box-egress.js';
import { BoxEvents } from './box-events.js';
import { DenialSummary, type DenialNotice } from './denials.js';
import type { BoxGate } from './box-gate.js';
import type { GitFinding } from './git-check.js';
import { hostHomes } from './home-workspace.js';
import { readHostGitConfig } from './host-git-config.js';
import { hostFacts, resolveIdentity } from './identity.js';
import { agentSettings, workspaceOf, type LaunchFlags, type ProfileLoader } from './launch-config.js';
import { installOwnPaths, latchgateInBox, refuseLinkedInstall, refuseUnreadableInstall, refuseWritableModulePaths } from './latchgate-in-box.js';
import { prepareOwnPaths, refuseWritableOwnPaths } from './own-paths.js';
import { boxGateEnv, buildSandboxPlan, readHardLimits, type SandboxPlan } from './plan.js';
import { stateDirName, type StateMergeReport } from './state-files.js';
import { runSandbox, type RunResult } from './supervisor.js';

const realOrSelf = (p: string) => {
  try {
    return realpathSync(p);
  } catch {
    return p; // the plan reports it
  }
};

/**
 * Where the launcher reads the credential routes' keys: the SOPS store
 * [secrets] names (read here, on the host, before anything of the box is
 * made: a file that cannot be read ends the launch as it ends `latchgate up`),
 * the host environment and home.
 */
async function keySources(setup: GateSetup, specs: KeySource[]): Promise<KeySourceContext> {
  const store = sopsStore(setup.config.secrets);
  await checkSopsStore(store, 'latchgate sandbox');
  const resolver = store.resolver;
  const secretVariables = specs.flatMap((s) => (s.kind === 'env' ? [s.variable] : []));
  return { env: process.env, home: homedir(), secretVariables, ...(resolver ? { sops: () => resolver } : {}) };
}

/** The routes' key sources, parsed (planEgress names a bad one with its section). */
function routeKeySources(credentials: Map<string, { keySource?: string | undefined }>): { name: string; source: KeySource }[] {
  const out: { name: string; source: KeySource }[] = [];
  for (const [name, c] of credentials) {
    try {
      if (c.keySource) out.push({ name, source: parseKeySource(c.keySource) });
    } catch {
      // Refused with its section's name when the egress is planned.
    }
  }
  return out;
}

/** Every file that opens a secret: the age key files and the routes' file: sources. The box must not see their directories. */
function keyFiles(setup: GateSetup, routes: { name: string; source: KeySource }[], home: string): KeyFile[] {
  const files = routes.flatMap(({ name, source: s }) => (s.kind === 'file' ? [{ path: keyFilePath(s.path, home), what: `the key file of credential route "${name}" (key_source file:)` }] : []));
  return [...ageKeyFiles(setup.config.secrets), ...files];
}

/** What a plan names in place of the sockets and directory only a real launch makes. */
const MADE_AT_LAUNCH = { socket: '(a socket created at launch)', dir: '(a directory created at launch)' };

export interface LaunchPlan {
  plan: SandboxPlan;
  /** The egress exits (keys resolved on the host), when the box has any. */
  egress: EgressPlan | undefined;
  /** Who the box is to the gate and in the ledger. */
  principal: string;
  /** Where the ledger is. */
  stateDir: string;
}

/** A plan ready to run: the box's socket directory and gate exist (closed by runLaunch). */
export interface Launch extends LaunchPlan {
  gate: BoxGate;
}

/** The plan as --dry-run prints it: nothing is made. */
export async function planLaunch(cmd: string[], f: LaunchFlags, setup: GateSetup, load?: ProfileLoader): Promise<LaunchPlan> {
  const { launch } = await build(cmd, f, setup, async () => undefined, load);
  return launch;
}

/** The plan for a real launch: the box's gate and its socket directory are made (and removed again if planning fails). */
export async function prepareLaunch(cmd: string[], f: LaunchFlags, setup: GateSetup): Promise<Launch> {
  const { launch, gate } = await build(cmd, f, setup, async (principal, agent, workspace) => new (await import('./box-gate.js')).BoxGate(setup, principal, agent, workspace));
  return { ...launch, gate };
}

const proxySocketOf = (gate: BoxGate) => join(gate.dir, 'proxy.sock');

/** makeGate: the box's gate for a real launch, none for a plan only printed. */
async function build<G extends BoxGate | undefined>(
  cmd: string[],
  f: LaunchFlags,
  setup: GateSetup,
  makeGate: (principal: string, agent: { uid: number; gid: number }, workspace: string) => Promise<G>,
  load?: ProfileLoader,
): Promise<{ launch: LaunchPlan; gate: G }> {
  const cfg = setup.config;
  const source = cfg.file ?? 'latchgate.toml';
  const workspace = workspaceOf(f, cfg);
  let wsReal: string;
  try {
    wsReal = realpathSync(workspace);
  } catch {
    throw new LaunchError(`--workspace ${workspace}: no such directory; create it or pass an existing one`);
  }
  const facts = hostFacts(wsReal);
  const identity = resolveIdentity(facts);
  const agent = agentSettings(cmd, f, cfg, identity.home, load);
  const eff = agent.effective;
  // The egress plan sees the merged routes (optional ones without a key dropped).
  const file = { ...cfg.sandbox, credentials: eff.credentials as typeof cfg.sandbox.credentials };
  // The egress modules load only for boxes that have exits to the network.
  const egressMod = f.profile !== undefined || f.allowHost.length > 0 || cfg.sandbox.allowHosts.length > 0 || cfg.sandbox.credentials.size > 0 ? await import('./box-egress.js') : undefined;
  const routes = routeKeySources(file.credentials);
  const keys = await keySources(setup, routes.map((r) => r.source));
  const egress = await egressMod?.planEgress(agent.allowHosts, file, keys, source, process.env);
  const principal = agent.principal;
  const homes = hostHomes(facts.passwd, [process.env.HOME, identity.home]);
  const publicBaseUrl = setup.gate.publicBaseUrl ?? DEFAULTS.publicBaseUrl;
  const self = latchgateInBox(homes, boxGateEnv(publicBaseUrl));
  if (eff.gateTools) refuseUnreadableInstall(self, identity);
  // Before the plan, which walks the writable trees: a refusal here is cheap.
  const writable = [wsReal, ...eff.rw.map(realOrSelf)];
  refuseWritableModulePaths(self, writable);
  // Walked off the JS thread while the gate and the plan are made; awaited before the box runs.
  const linkCheck = f.trustLinkedInstall ? undefined : refuseLinkedInstall(self, writable);
  linkCheck?.catch(() => {}); // settled below, or moot when planning fails first
  const gate = await makeGate(principal, identity, wsReal);
  try {
    const tty = process.stdin.isTTY;
    const out = process.stdout.isTTY ? process.stdout : undefined;
    const own = [...prepareOwnPaths(setup), ...installOwnPaths(self)];
    const plan = buildSandboxPlan(
      {
        workspace,
        ro: eff.ro,
        rw: eff.rw,
        passEnv: eff.passEnv,
        allowHosts: agent.allowHosts,
        ...(eff.profile ? { profile: eff.profile } : {}),
        command: agent.command,
        extraEnv: eff.env,
        extraPath: eff.discovery?.path ?? [],
        protect: [...eff.protected, ...own],
        files: [...eff.files, ...(egress?.files ?? [])],
        hide: secretFiles(cfg.secrets),
        keyFiles: keyFiles(setup, routes, homedir()),
        self,
        stateFiles: { dir: gate ? stateDirName() : MADE_AT_LAUNCH.dir, files: eff.stateFiles },
        strictNet: f.strictNet ?? file.strictNet ?? false,
        allowDegraded: f.allowDegraded ?? false,
        allowHomeWorkspace: f.allowHomeWorkspace ?? false,
        trustNewRepos: f.trustNewRepos ?? false,
        allowRelativePath: f.allowRelativePath ?? false,
        trustLinkedInstall: f.trustLinkedInstall ?? false,
        baselineDir: setup.runtimeDir,
        hostGit: readHostGitConfig(identity, wsReal, process.env),
        limits: { nofile: f.rlimitNofile ?? file.limits.nofile, nproc: f.rlimitNproc ?? file.limits.nproc, tmpSize: f.tmpSize ?? file.limits.tmpSize },
        listenPorts: egress?.listenPorts ?? [],
        dns: true,
        ...(egress ? { egress: { env: egress.env, description: egressMod!.describeEgress(egress), proxySocket: gate ? proxySocketOf(gate) : MADE_AT_LAUNCH.socket } } : {}),
        gate: { socket: gate?.socketPath ?? MADE_AT_LAUNCH.socket, principal, publicBaseUrl, tools: eff.gateTools !== null },
      },
      {
        identity,
        env: process.env,
        landlockAbi: loadAddon().landlockAbi(),
        hardLimits: readHardLimits(),
        terminal: tty ? { rows: out?.rows || 24, cols: out?.columns || 80 } : null,
        homes,
      },
    );
    refuseWritableOwnPaths(plan.writableRoots, own);
    await linkCheck;
    return { launch: { plan, egress, principal, stateDir: setup.stateDir }, gate };
  } catch (e) {
    await gate?.close();
    throw e;
  }
}

/** What the launch says while it runs; the command line prints it. */
export interface LaunchOutput {
  /** Before the box starts: a weaker mode it runs in, asked for by name. */
  degraded(mode: string): void;
  /** Before the box starts: how the box differs from the host where the user would not expect it (git's config). */
  note(message: string): void;
  /** After it exits: something the user should know that did not stop the run. */
  warning(message: string): void;
  /** Something the box left that the host would run, and what was done about it. */
  hostExec(finding: GitFinding): void;
  /** What became of a state file's box copy. */
  stateFile(report: StateMergeReport): void;
  /** While the box runs: the first refusal of a kind of a host by the box's network exits. */
  denied(notice: DenialNotice): void;
}

export interface LaunchOutcome {
  result: RunResult;
  /** The run's network refusals, per host, with what would allow each. */
  denials: DenialSummary;
  /** Set when the launcher decided the exit code: the run's own failure, or what the box left that could not be disabled. */
  error: LaunchError | undefined;
}

/** Runs a prepared launch; everything it made is closed when it returns or throws. */
export async function runLaunch(l: Launch, out: LaunchOutput): Promise<LaunchOutcome> {
  const { plan, gate } = l;
  const events = new BoxEvents(l.stateDir, l.principal, plan.degraded.length > 0);
  const denials = new DenialSummary({ allowPorts: l.egress?.allowPorts ?? [443], proxied: l.egress !== undefined });
  // Every decision of the exits: to the ledger, and to the run's summary of refusals.
  const exit = (e: AuditEventInput) => {
    events.exit(e);
    const notice = denials.add(e);
    if (notice) out.denied(notice);
  };
  let exits: BoxEgress | undefined;
  let dns: BoxDns | undefined;
  // Loaded while the gate and the exits start.
  const dnsModules = plan.network.dns ? Promise.all([import('../egress/box-dns.js'), import('../egress/allowlist.js')]) : undefined;
  dnsModules?.catch(() => undefined); // awaited below
  try {
    await gate.listen();
    if (plan.gate?.tools) gate.prewarm();
    if (plan.degraded.length > 0) {
      for (const d of plan.degraded) out.degraded(d);
      // A weaker mode is recorded in the ledger, not only said.
      gate.sandboxDegraded = true;
      await events.sandboxDegraded(plan.degraded, plan.workspace);
    }
    if (plan.git.note) out.note(plan.git.note);
    if (l.egress) {
      const { BoxEgress } = await import('./box-egress.js');
      exits = new BoxEgress(l.egress, exit);
      await exits.start(proxySocketOf(gate));
    }
    if (dnsModules) {
      const [{ BoxDns }, { HostAllowlist }] = await dnsModules;
      dns = new BoxDns({ allowlist: l.egress ? new HostAllowlist(l.egress.allowHosts) : null, record: exit });
    }
    const egress = exits;
    const resolver = dns;
    const result = await runSandbox(plan, {
      onListen: (fds, dnsFds) => {
        const failed = (what: string) => (e: Error) => process.stderr.write(`latchgate: ${what} could not start: ${e.message}\n`);
        if (egress) egress.serve(fds).catch(failed('the egress proxies'));
        if (resolver && dnsFds) resolver.serveFds(dnsFds).catch(failed("the box's resolver"));
      },
    });
    for (const w of result.warnings ?? []) out.warning(w);
    const error = result.error ?? afterRun(result.hostExec ?? [], events, out);
    for (const r of result.stateFiles ?? []) {
      out.stateFile(r);
      events.stateFile(r);
    }
    return { result, error, denials };
  } finally {
    await Promise.all([exits?.close(), dns?.close()]);
    await events.close();
    await gate.close();
  }
}

/** Says and records what the box left that the host would run; a piece that could not be disabled is a launcher failure (exit 125). */
function afterRun(findings: GitFinding[], events: BoxEvents, out: LaunchOutput): LaunchError | undefined {
  for (const f of findings) {
    out.hostExec(f);
    events.hostExec(f);
  }
  const failed = findings.filter((f) => f.action === 'failed');
  if (failed.length === 0) return undefined;
  return new LaunchError(`latchgate: ${failed.length} thing(s) the box left could not be disabled (see above); remove them before running git there`);
}
