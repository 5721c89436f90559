// Host checks for `latchgate doctor`: what the kernel offers, what blocks the
// box, the exact fix, and a live probe through the real launch path.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AddonError, loadAddon } from '../native/addon.js';
import { errnoName, LaunchError } from '../core/errors.js';
import { hostFacts, resolveIdentity } from '../sandbox/identity.js';
import { buildSandboxPlan, readHardLimits } from '../sandbox/plan.js';
import { runSandbox } from '../sandbox/supervisor.js';

export interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
}

export type IsolationLevel = 'full' | 'degraded' | 'unavailable';

export interface DoctorReport {
  checks: Check[];
  isolation: IsolationLevel;
  landlockAbi: number;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function appArmorProfile(nodePath = process.execPath): string {
  return [
    '# AppArmor profile letting latchgate create the user namespace of its box.',
    '# Ubuntu 23.10+ forbids unprivileged user namespaces to unconfined programs',
    '# (kernel.apparmor_restrict_unprivileged_userns=1). Install with:',
    `#   latchgate doctor --print-apparmor-profile | sudo tee /etc/apparmor.d/latchgate-node`,
    '#   sudo apparmor_parser -r /etc/apparmor.d/latchgate-node',
    `# It grants "userns" to ${nodePath}, i.e. to programs run by this Node binary.`,
    'abi <abi/4.0>,',
    'include <tunables/global>',
    '',
    `profile latchgate-node ${JSON.stringify(nodePath)} flags=(unconfined) {`,
    '  userns,',
    '',
    '  include if exists <local/latchgate-node>',
    '}',
    '',
  ].join('\n');
}

export function userNamespaceChecks(uid: number, readSysctl: (p: string) => string | undefined = read): Check[] {
  const checks: Check[] = [];
  const max = readSysctl('/proc/sys/user/max_user_namespaces');
  if (max === '0') {
    checks.push({ name: 'user namespaces', status: 'fail', detail: 'user.max_user_namespaces is 0', fix: 'sudo sysctl -w user.max_user_namespaces=15000 (and persist it in /etc/sysctl.d/)' });
  } else {
    checks.push({ name: 'user namespaces', status: 'ok', detail: `user.max_user_namespaces=${max ?? 'unknown'}` });
  }
  const debian = readSysctl('/proc/sys/kernel/unprivileged_userns_clone');
  if (debian === '0' && uid !== 0) {
    checks.push({ name: 'unprivileged user namespaces', status: 'fail', detail: 'kernel.unprivileged_userns_clone=0', fix: 'sudo sysctl -w kernel.unprivileged_userns_clone=1' });
  }
  const apparmor = readSysctl('/proc/sys/kernel/apparmor_restrict_unprivileged_userns');
  if (apparmor === '1' && uid !== 0) {
    checks.push({
      name: 'AppArmor user-namespace restriction',
      status: 'fail',
      detail: 'kernel.apparmor_restrict_unprivileged_userns=1: unconfined programs may not create user namespaces',
      fix: 'install the AppArmor profile printed by `latchgate doctor --print-apparmor-profile` (instructions inside)',
    });
  }
  return checks;
}

export function cgroupVersion(): string {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'v2 (unified)';
  if (existsSync('/sys/fs/cgroup/unified')) return 'v1 with a v2 hierarchy (hybrid)';
  if (existsSync('/sys/fs/cgroup')) return 'v1';
  return 'none mounted';
}

async function probe(): Promise<Check> {
  const ws = mkdtempSync(join(tmpdir(), 'latchgate-doctor-'));
  chmodSync(ws, 0o755); // run as root, the agent is nobody: let it in
  try {
    const plan = buildSandboxPlan(
      { workspace: ws, ro: [], rw: [], passEnv: [], allowHosts: [], command: ['/bin/true'], strictNet: false, allowDegraded: true, limits: {}, listenPorts: [] },
      { identity: resolveIdentity(hostFacts(ws)), env: {}, landlockAbi: loadAddon().landlockAbi(), hardLimits: readHardLimits(), terminal: null, homes: [] },
    );
    const r = await runSandbox(plan);
    if (r.error) return { name: 'live probe', status: 'fail', detail: r.error.message.replace(/^latchgate: /, '') };
    if (r.exitCode !== 0) return { name: 'live probe', status: 'fail', detail: `/bin/true exited ${r.exitCode} inside the box` };
    return { name: 'live probe', status: 'ok', detail: `built a box and ran /bin/true in it (box setup ${r.boxSetupMs?.toFixed(1)} ms)` };
  } catch (e) {
    return { name: 'live probe', status: 'fail', detail: e instanceof LaunchError ? e.message : String(e) };
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
}

export async function runDoctor(): Promise<DoctorReport> {
  const uid = process.getuid!();
  const checks: Check[] = [{ name: 'kernel', status: 'ok', detail: `Linux ${release()}, running as uid ${uid}` }];
  checks.push(...userNamespaceChecks(uid));

  // Landlock's ABI and the live probe need the addon: without it there is no box to report on.
  let abi: number;
  try {
    abi = loadAddon().landlockAbi();
  } catch (e) {
    if (!(e instanceof AddonError)) throw e;
    checks.push({ name: 'native addon', status: 'fail', detail: e.problem, fix: e.fix });
    return { checks, isolation: 'unavailable', landlockAbi: 0 };
  }
  if (abi > 0) {
    checks.push({ name: 'Landlock', status: 'ok', detail: `ABI ${abi}${abi >= 4 ? ' (TCP rules available for --strict-net)' : ''}${abi >= 6 ? ', signal and abstract-socket scoping' : ''}` });
  } else {
    checks.push({ name: 'Landlock', status: 'fail', detail: `unavailable (${errnoName(-abi)})`, fix: 'use a kernel with CONFIG_SECURITY_LANDLOCK=y and "landlock" in the lsm= boot parameter; or run degraded with --allow-degraded' });
  }

  const actions = read('/proc/sys/kernel/seccomp/actions_avail');
  if (actions && actions.includes('errno') && actions.includes('kill_process')) {
    checks.push({ name: 'seccomp', status: 'ok', detail: `filter actions: ${actions}` });
  } else {
    checks.push({ name: 'seccomp', status: 'fail', detail: 'seccomp filters with errno and kill_process are not available', fix: 'use a kernel with CONFIG_SECCOMP_FILTER=y' });
  }

  checks.push(existsSync('/dev/ptmx')
    ? { name: 'PTYs', status: 'ok', detail: '/dev/ptmx present; the box mounts its own devpts instance' }
    : { name: 'PTYs', status: 'warn', detail: 'no /dev/ptmx: interactive agents will not get a terminal' });
  checks.push({ name: 'cgroups', status: 'ok', detail: `${cgroupVersion()}; the box uses rlimits (nofile, nproc, core) and sized tmpfs` });

  if (uid === 0) checks.push(idmapCheck(process.cwd()));

  const live = await probe();
  checks.push(live);
  const hardFail = checks.some((c) => c.status === 'fail' && c.name !== 'Landlock');
  const isolation: IsolationLevel = live.status !== 'ok' || hardFail ? 'unavailable' : abi > 0 ? 'full' : 'degraded';
  return { checks, isolation, landlockAbi: abi };
}

/**
 * Root only: whether a root launch could give a root-owned workspace here (the
 * current directory) to the box's user through an idmapped mount
 * (src/sandbox/idmap.ts); where the kernel or the filesystem cannot, such a
 * launch is refused, so doctor says so before.
 */
export function idmapCheck(dir: string): Check {
  const name = 'idmapped workspace (root launches)';
  const nobody = 65534;
  const { uid, gid } = statSync(dir);
  const failure = loadAddon().idmapCheck([dir], `${uid} ${nobody} 1\n`, `${gid} ${nobody} 1\n`);
  if (!failure) return { name, status: 'ok', detail: `${dir} can be idmapped: a root launch on a root-owned workspace here runs the agent as nobody, and what it writes lands as root` };
  return {
    name,
    status: 'warn',
    detail: `the kernel cannot idmap ${dir} (${failure.step}: ${errnoName(failure.errno)}; needs Linux 5.12+ and a filesystem with idmapped mounts): a root launch on a root-owned workspace here is refused`,
    fix: 'run latchgate as the user who owns the workspace (chown -R it to that user), or set SUDO_UID=<uid>',
  };
}
