// Runs a SandboxPlan through the addon: placeholders, spawn, the control
// messages of the box's init, signal forwarding, terminal relay, exit status.
import { constants } from 'node:os';
import { loadAddon, MSG, STEP, STEP_NAMES, type NativeMessage } from '../native/addon.js';
import { EXIT_CANNOT_EXECUTE, EXIT_LAUNCHER, EXIT_NOT_FOUND, LaunchError, errnoName } from '../core/errors.js';
import { toNativePlan } from './native-plan.js';
import { fsOwnerOf, asOwner } from './fs-identity.js';
import { shareBaseline } from './baseline.js';
import { checkGitSurface, type GitFinding } from './git-check.js';
import { Placeholders } from './placeholders.js';
import type { SandboxPlan } from './plan.js';
import { readCapLast } from './plan.js';
import { StateFileSession, type StateMergeReport } from './state-files.js';
import { TerminalRelay } from './terminal.js';

export interface RunHooks {
  /** Listening sockets made inside the box for plan.network.listenPorts, in order; and the resolver's two sockets when plan.network.dns is set. */
  onListen?(fds: number[], dns?: { tcp: number; udp: number }): void;
}

export interface RunResult {
  exitCode: number;
  /** Signal that ended the command, if any. */
  signal: number | null;
  /** Time from clone() to just before execve(), in ms. */
  boxSetupMs: number | null;
  durationMs: number;
  /** Set when the launcher, not the command, decided the exit code. */
  error?: LaunchError;
  /** What the box left that the host would run, and what was done about it. */
  hostExec?: GitFinding[];
  /** Things the user should know that did not stop the run. */
  warnings?: string[];
  /** What became of each state file's box copy (state-files.ts). */
  stateFiles?: StateMergeReport[];
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGCONT'];

function describeStep(plan: SandboxPlan, m: NativeMessage): string {
  const name = STEP_NAMES[m.step] ?? `step ${m.step}`;
  if (m.step === STEP.MOUNT_OP) {
    const e = plan.mounts[m.index];
    if (!e) return name;
    const what =
      e.kind === 'bind'
        ? `bind ${e.src} -> ${e.path}${e.readonly ? ' (read-only)' : ''}${e.idmapped ? ' (idmapped)' : ''}`
        : e.kind === 'tmp-budget'
          ? `tmp-budget size=${e.size}`
          : e.kind === 'idmap-tree'
            ? `idmapped copy of ${e.src}`
            : `${e.kind} ${e.path}`;
    return `${name} (${what})`;
  }
  if (m.step === STEP.LANDLOCK_RULE) return `${name} (${plan.landlock.paths[m.index]?.path ?? m.index})`;
  if (m.step === STEP.LANDLOCK_NET_RULE) return `${name} (port ${plan.landlock.ports[m.index]?.port ?? m.index})`;
  if (m.step === STEP.RLIMIT) return `${name} (${plan.rlimits[m.index]?.name ?? m.index})`;
  return name;
}

function fixFor(errno: number, plan?: SandboxPlan, m?: NativeMessage): string {
  const code = errnoName(errno);
  const e = m?.step === STEP.MOUNT_OP ? plan?.mounts[m.index] : undefined;
  // Inside a writable tree a name the plan saw may since be gone, or be a symlink (refused: ELOOP), or the wrong type.
  if (e && 'noFollow' in e && e.noFollow && ['ELOOP', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EINVAL'].includes(code)) {
    return `a name on ${e.path} changed after the box was planned (removed, or replaced by a symlink or another type), likely by another box on the same workspace; nothing was mounted through it: look at ${e.path}, then run again`;
  }
  if (e?.kind === 'bind' && code === 'EACCES') {
    return `the box is built as uid ${plan!.identity.uid} (${plan!.identity.user}), which may not open ${e.src}: give that user access or drop the mount`;
  }
  if (code === 'EPERM' || code === 'EACCES') return 'the kernel refused it: run `latchgate doctor` for the exact cause and fix';
  if (code === 'ENOSPC') return 'a namespace limit is exhausted: raise /proc/sys/user/max_*_namespaces';
  if (code === 'ENOENT') return 'a path in the plan is missing: check it with `latchgate sandbox --dry-run`';
  return 'run `latchgate doctor` to check this host';
}

function spawnError(e: Error & { step?: string; errno?: number }): LaunchError {
  if (e.errno === undefined) return new LaunchError(`latchgate: ${e.message}`);
  const restricted = e.errno === constants.errno.EPERM || e.errno === constants.errno.EACCES || e.errno === constants.errno.ENOSPC;
  return new LaunchError(`latchgate: ${e.step} failed: ${errnoName(e.errno)}; ${restricted ? 'this host does not let this user create the namespaces: run `latchgate doctor` for the fix' : fixFor(e.errno)}`);
}

/**
 * Runs the plan: placeholders for the run, the box, then (once every process
 * of the box is gone) the check of what it left that the host would run.
 */
export async function runSandbox(plan: SandboxPlan, hooks: RunHooks = {}): Promise<RunResult> {
  const id = plan.identity;
  const placeholders = new Placeholders(fsOwnerOf(id));
  const { alone } = placeholders.lock(plan.writableRoots);
  const warnings: string[] = [];
  if (plan.hostExec.baselineFile) {
    try {
      const w = shareBaseline(plan.hostExec.git, plan.hostExec.baselineFile, plan.writableRoots, alone);
      if (w) warnings.push(w);
    } catch (e) {
      warnings.push(`cannot record how the workspace was for boxes started while this one runs (${(e as Error).message}): they will take what this box plants as existing`);
    }
  }
  const stateFiles = new StateFileSession(plan.stateFiles, fsOwnerOf(id));
  let result: RunResult;
  try {
    placeholders.create(plan.protectedPaths);
    stateFiles.prepare();
    result = await runBox(plan, hooks);
    result.stateFiles = stateFiles.mergeBack();
  } finally {
    stateFiles.discard();
    placeholders.release();
  }
  result.hostExec = checkHostExecution(plan);
  result.warnings = warnings;
  return result;
}

/** What the box left in its writable trees that host git would run, disabled unless trusted (git-check.ts). */
function checkHostExecution(plan: SandboxPlan): GitFinding[] {
  const o = { writableRoots: plan.writableRoots, trustNewRepos: plan.hostExec.trustNewRepos, owner: { uid: plan.identity.uid, gid: plan.identity.gid } };
  try {
    return asOwner(fsOwnerOf(plan.identity), () => checkGitSurface(plan.hostExec.git, o));
  } catch (e) {
    // Whatever the box left made the check fail: nothing it found can be trusted to be all.
    return [{ kind: 'unlisted', path: plan.workspace, action: 'failed', message: `the check of what the box left in ${plan.workspace} failed (${(e as Error).message}); it may hold repositories or configs that run on the host: inspect it before using git or agents there` }];
  }
}

async function runBox(plan: SandboxPlan, hooks: RunHooks): Promise<RunResult> {
  const addon = loadAddon();
  const started = process.hrtime.bigint();
  const terminal = new TerminalRelay();
  let failure: LaunchError | undefined;
  let exitStatus: number | undefined;
  let boxSetupMs: number | null = null;
  const forwarders = new Map<NodeJS.Signals, () => void>();

  try {
    const exited = new Promise<{ code: number; signal: number }>((resolve, reject) => {
      let box: { kill(signal: number): void } | undefined;
      // Forwarding starts before the box does: the command may run, and be seen running, before
      // spawn returns, and a signal sent then must reach it rather than end this process. (Node runs
      // these handlers from the event loop, so after spawn has returned.)
      for (const sig of FORWARDED) {
        const f = () => box?.kill(constants.signals[sig]);
        forwarders.set(sig, f);
        process.on(sig, f);
      }
      try {
        box = addon.spawn(
          toNativePlan(plan, readCapLast()),
          (m) => {
            switch (m.type) {
              case MSG.FAIL:
                failure ??= new LaunchError(`latchgate: building the box failed at ${describeStep(plan, m)}: ${errnoName(m.errno)}; ${fixFor(m.errno, plan, m)}`);
                break;
              case MSG.LISTEN_FDS: {
                // native-plan.ts: the exits' TCP sockets, then the resolver's TCP and UDP ones.
                const n = plan.network.listenPorts.length;
                const dns = plan.network.dns && m.fds.length === n + 2 ? { tcp: m.fds[n]!, udp: m.fds[n + 1]! } : undefined;
                if (hooks.onListen) hooks.onListen(m.fds.slice(0, n), dns);
                break;
              }
              case MSG.PTY_MASTER:
                if (m.fds[0] !== undefined) terminal.attach(m.fds[0]);
                break;
              case MSG.PRE_EXEC:
                boxSetupMs = m.value / 1e6;
                break;
              case MSG.EXEC_FAIL: {
                const argv0 = plan.command.argv[0];
                if (m.errno === constants.errno.ENOENT) {
                  failure = new LaunchError(`latchgate: command not found inside the box: ${argv0} (searched ${plan.command.execPaths.join(', ')}); install it under /usr on the host or mount its directory with --ro DIR`, EXIT_NOT_FOUND);
                } else {
                  const path = plan.command.execPaths[m.index] ?? argv0;
                  failure = new LaunchError(`latchgate: cannot execute ${path} inside the box: ${errnoName(m.errno)}; check that it is an executable file the agent's user (uid ${plan.identity.uid}) may run`, EXIT_CANNOT_EXECUTE);
                }
                break;
              }
              case MSG.EXIT:
                exitStatus = m.value;
                break;
            }
          },
          (e) => resolve(e),
        );
      } catch (e) {
        reject(spawnError(e as Error));
      }
    });
    const initExit = await exited;
    await terminal.finish();
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    if (failure) return { exitCode: failure.exitCode, signal: null, boxSetupMs, durationMs, error: failure };
    if (exitStatus === undefined) {
      const why = initExit.signal ? `was killed by signal ${initExit.signal}` : `exited with ${initExit.code}`;
      const error = new LaunchError(`latchgate: the box's init ${why} before the command finished`, EXIT_LAUNCHER);
      return { exitCode: EXIT_LAUNCHER, signal: null, boxSetupMs, durationMs, error };
    }
    const sig = exitStatus & 0x7f;
    if (sig === 0) return { exitCode: (exitStatus >> 8) & 0xff, signal: null, boxSetupMs, durationMs };
    return { exitCode: 128 + sig, signal: sig, boxSetupMs, durationMs };
  } finally {
    for (const [sig, f] of forwarders) process.off(sig, f);
    terminal.restore();
  }
}
