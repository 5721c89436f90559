// The launch plan: everything `latchgate sandbox` will do, as plain data that
// --dry-run prints and tests inspect before anything runs.
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { buildBoxEnv, BOX_PATH } from './env.js';
import { LaunchError } from '../core/errors.js';
import { accessibleBy, renderGroup, renderPasswd, type Identity } from './identity.js';
import { landlockPlan, type LandlockPlan } from './landlock-rules.js';
import { markNoFollow, MountPlanner, mirrorHostPath, type MountEntry } from './mount-plan.js';
import { baselineFile } from './baseline.js';
import { asOwner, fsOwnerOf } from './fs-identity.js';
import type { GitSnapshot } from './git-surface.js';
import { homeEntries, homeRequests, homesInside } from './home-workspace.js';
import { markIdmapped, planIdmap } from './idmap.js';
import { checkRelativePath, refuseWritablePathRoots } from './host-path.js';
import { placeholderExcludes, protectionPlan, type ProtectedAction } from './protected-paths.js';
import type { ProtectRequest } from '../config/box-requests.js';
import { describeSeccompFilter, hostSeccompArch } from './seccomp-filter.js';
import { checkTmpSize } from './tmp-budget.js';
import { planStateFileMounts, type PlannedStateFiles } from './state-files.js';
import { BOX_BIN_DIR, BOX_DNS_ADDRESS, BOX_DNS_PORT, BOX_GATE_SOCKET, BOX_MCP_COMMAND, BOX_GIT_CONFIG, BOX_GIT_EXCLUDES, BOX_PROXY_SOCKET, BOX_RUN_DIR } from '../core/box.js';
import { boxGitConfig, gitLaunchNote, type BoxGitPlan } from './box-git-config.js';
import type { HostGitRead } from './host-git-config.js';
import { isInside } from '../core/paths.js';

export const BOX_HOSTNAME = 'latchgate';
/** gitignore patterns for the placeholders, read by git in the box as core.excludesFile. */

export interface SandboxOptions {
  workspace: string;
  ro: string[];
  rw: string[];
  passEnv: string[];
  allowHosts: string[];
  profile?: string;
  command: string[];
  strictNet: boolean;
  allowDegraded: boolean;
  limits: { nofile?: number; nproc?: number; tmpSize?: string };
  /** Ports the box's init listens on (127.0.0.1) and hands to the parent. */
  listenPorts: number[];
  /** The box gets a resolver on its loopback (served by the launcher: src/egress/box-dns.ts) and an /etc/resolv.conf naming it. */
  dns?: boolean;
  /** The host socket of this box's gate, mounted at /run/latchgate/gate.sock. */
  /** tools: the agent is given the gate's actions as MCP tools (its profile's [gate_tools]). */
  gate?: { socket: string; principal: string; publicBaseUrl: string; tools: boolean };
  /** The egress proxies: variables for the box and a description for the plan (no keys). */
  egress?: { env: Record<string, string>; description: Record<string, unknown>; proxySocket: string };
  /** Fixed variables for the box (agent profiles: placeholder keys, switches). Set after
   *  the host allowlist and --pass-env, before the egress and gate variables (which win). */
  extraEnv?: Record<string, string>;
  /** Directories appended to the box PATH (an agent's launcher outside <ro mount>/bin). */
  extraPath?: string[];
  /** Paths inside the rw trees kept read-only like the built-in protected paths
   *  (agent profiles: hooks and settings under ~/.claude, ~/.codex); a missing
   *  one gets a placeholder of its type, so the agent cannot create it. */
  protect?: ProtectRequest[];
  /** Host files no process in the box may read (the SOPS secrets file, the age key files): covered where a mount shows them. */
  hide?: readonly string[];
  /** Files that open every secret (age key files, file: key sources): the box must not see the directory that holds each
   *  (a mask over the file itself falls off when the host replaces the file by rename). */
  keyFiles?: readonly { path: string; what: string }[];
  /** Files written read-only into the box under /run/latchgate/ (agent configuration the profile generates). */
  files?: { path: string; content: string }[];
  /** latchgate itself (latchgate-in-box.ts): host paths mounted read-only where the box does not see them yet, and the commands of /run/latchgate/bin. */
  self?: { ro: string[]; bin: { name: string; content: string }[] };
  /** A workspace that is (or contains) a home directory, asked for by name; its dotfiles stay read-only. */
  allowHomeWorkspace?: boolean;
  /** Keep git repositories and pointers the box creates (reported, not disabled). */
  trustNewRepos?: boolean;
  /** Launch although the host PATH has relative or empty entries (host-path.ts), asked for by name. */
  allowRelativePath?: boolean;
  /** latchgate's installation not checked for hard links a writable mount could reach: asked for by name (latchgate-in-box.ts). */
  trustLinkedInstall?: boolean;
  /** Agent state files: the box gets private copies, merged back at exit (state-files.ts). */
  stateFiles?: PlannedStateFiles;
  /** The launcher's own directory (runtime dir) for the record boxes sharing a workspace compare with (baseline.ts). */
  baselineDir?: string;
  /** The user's global git config as host git read it (host-git-config.ts); null or absent: none (the box's is then empty). */
  hostGit?: HostGitRead | null;
}

export interface HostFacts {
  identity: Identity;
  env: NodeJS.ProcessEnv;
  /** Landlock ABI, or a negative errno when the kernel has none. */
  landlockAbi: number;
  hardLimits: { nofile: number; nproc: number };
  terminal: { rows: number; cols: number } | null;
  /** Home directories on the host (home-workspace.ts hostHomes): a workspace may not be one or contain one. */
  homes: string[];
}

export interface RlimitEntry {
  name: string;
  resource: number;
  soft: number;
  hard: number;
}

export interface SandboxPlan {
  version: 1;
  hostname: string;
  workspace: string;
  /** The workspace and --rw trees: where protected paths are looked for. */
  writableRoots: string[];
  profile: string | null;
  identity: Identity;
  command: { argv: string[]; execPaths: string[]; cwd: string };
  env: Record<string, string>;
  mounts: MountEntry[];
  protectedPaths: ProtectedAction[];
  /** What the after-run check compares with: git's surface at launch (git-check.ts). */
  hostExec: { trustNewRepos: boolean; homeWorkspace: string[]; git: GitSnapshot; baselineFile: string | null };
  stateFiles: PlannedStateFiles | null;
  /** The box's global git config: what it carries of the user's, and the line said at launch (box-git-config.ts). */
  git: BoxGitPlan;
  landlock: LandlockPlan & { status: 'enforced' | 'degraded-unavailable' };
  seccomp: ReturnType<typeof describeSeccompFilter>;
  rlimits: RlimitEntry[];
  capabilities: 'all dropped';
  noNewPrivs: true;
  namespaces: string[];
  network: {
    loopbackOnly: true;
    strictNet: boolean;
    listenPorts: number[];
    /** The resolver on the box's loopback (UDP and TCP), when it has one. */
    dns: { nameserver: typeof BOX_DNS_ADDRESS; port: typeof BOX_DNS_PORT } | null;
    allowHosts: string[];
    egress: Record<string, unknown> | null;
  };
  /** tools: the MCP server the agent is configured with, if any. */
  gate: { socket: typeof BOX_GATE_SOCKET; principal: string; tools: typeof BOX_MCP_COMMAND | null } | null;
  terminal: { mode: 'pty'; rows: number; cols: number } | { mode: 'inherit' };
  /** Weaker modes asked for by name; empty at full isolation. */
  degraded: string[];
}

const RLIMIT = { CORE: 4, NPROC: 6, NOFILE: 7 } as const;
export const DEFAULT_NOFILE = 65536;
export const DEFAULT_NPROC = 4096;
export const DEFAULT_TMP_SIZE = '50%';

/** System trees mounted read-only when the host has them (merged-usr or not). */
const SYSTEM_TREES = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** From /etc, only what programs need to run, resolve users and verify TLS. */
const ETC_ENTRIES = [
  'ssl', 'ca-certificates', 'ca-certificates.conf', 'pki', 'crypto-policies', 'ld.so.cache', 'ld.so.conf',
  'ld.so.conf.d', 'nsswitch.conf', 'alternatives', 'localtime', 'timezone', 'mime.types', 'inputrc', 'terminfo',
];
/** What a program (or an agent reading it) finds in the box's /etc/resolv.conf. */
const RESOLV_CONF = [
  '# latchgate: this box resolves no names itself. The resolver below (the launcher\'s) refuses every',
  '# query at once and records the name; allowlisted hosts are reached by name through HTTPS_PROXY.',
  `nameserver ${BOX_DNS_ADDRESS}`,
  'options attempts:1',
  '',
].join('\n');
const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

function canonical(path: string, flag: string): string {
  if (!isAbsolute(path)) {
    throw new LaunchError(`${flag} ${path}: expected an absolute path; write ${flag} ${join(process.cwd(), path)}`);
  }
  try {
    return realpathSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EACCES') {
      throw new LaunchError(`${flag} ${path}: permission denied on the host (EACCES); latchgate runs as uid ${process.getuid!()}, which must be able to open it`);
    }
    throw new LaunchError(`${flag} ${path}: no such file or directory on the host; create it or fix the path`);
  }
}

function refuseHostInternals(path: string, flag: string): void {
  if (path === '/' || /^\/(proc|dev|sys)(\/|$)/.test(path) || isInside(BOX_RUN_DIR, path)) {
    throw new LaunchError(`${flag} ${path}: refused: mounting ${path} would expose the host (or the box's own control paths); mount a narrower directory`);
  }
}

/** A writable tree that is a home directory, or holds one, is refused unless asked for by name. */
function refuseHome(path: string, flag: string, homes: readonly string[], allowed: boolean | undefined): void {
  if (homes.length === 0 || allowed) return;
  const what = homes[0] === path ? 'a home directory' : `an ancestor of the home directory ${homes[0]}`;
  const fix = flag === '--workspace' ? `use a project directory inside it (e.g. --workspace ${join(homes[0]!, 'project')})` : 'mount the one directory the box needs';
  throw new LaunchError(`${flag} ${path}: refused: it is ${what}, whose dotfiles (~/.gitconfig, shell rc files, ~/.ssh, ~/.local/bin, ~/.config) run on the host later; ${fix}, or pass --allow-home-workspace to keep every dotfile read-only`);
}

export function resolveExecPaths(argv0: string, cwd: string, path: string): string[] {
  if (argv0.includes('/')) return [isAbsolute(argv0) ? argv0 : join(cwd, argv0)];
  return path.split(':').filter((d) => d.startsWith('/')).map((d) => join(d, argv0));
}

function clampLimit(name: string, wanted: number, hard: number): RlimitEntry['soft'] {
  if (!Number.isInteger(wanted) || wanted <= 0) throw new LaunchError(`limit ${name}: expected a positive integer, got ${wanted}`);
  return Math.min(wanted, hard);
}

/** The variables that point a client in the box at the box's gate. */
export function boxGateEnv(publicBaseUrl: string): Record<string, string> {
  return { LATCHGATE_URL: `unix://${BOX_GATE_SOCKET}`, LATCHGATE_SOCKET: BOX_GATE_SOCKET, LATCHGATE_PUBLIC_URL: publicBaseUrl };
}

/**
 * The real paths of the regular files to hide that exist. The box mounts every tree
 * at its real path, so a name reached through a symlink leads there too.
 */
function hiddenFiles(paths: readonly string[]): string[] {
  const out = new Set<string>();
  for (const p of paths) {
    try {
      const real = realpathSync(p);
      if (statSync(real).isFile()) out.add(real);
    } catch {
      // Not there: nothing to hide.
    }
  }
  return [...out];
}

type KeyDir = { path: string; file: string; what: string };

/**
 * The real directories of the key files: the file's own (its real path) and
 * the one its name is in (where a rename puts a new file). Each file has a
 * single name: a hard link could show it in a mounted tree.
 */
function keyDirs(files: readonly { path: string; what: string }[]): KeyDir[] {
  const out = new Map<string, KeyDir>();
  const add = (dir: string, f: { path: string; what: string }) => {
    try {
      const real = realpathSync(dir);
      if (!out.has(real)) out.set(real, { path: real, file: f.path, what: f.what });
    } catch {
      // No such directory: nothing there to show.
    }
  };
  for (const f of files) {
    add(dirname(f.path), f);
    let real: string;
    try {
      real = realpathSync(f.path);
    } catch {
      continue; // not there (yet): its directory above is still covered
    }
    add(dirname(real), f);
    const st = statSync(real);
    if (st.isFile() && st.nlink > 1) {
      throw new LaunchError(`${f.path} (${f.what}) has ${st.nlink} hard links: another name of it may be in a tree the box shows; keep one name (cp it to a new file, then remove the others)`);
    }
  }
  return [...out.values()];
}

/** A key directory that is a mount root, or holds one, cannot be covered without hiding what the user asked for. */
function refuseKeyDirRoot(dir: KeyDir, roots: { path: string; flag: string }[]): void {
  const root = roots.find((r) => isInside(dir.path, r.path));
  if (!root) return;
  const how = root.path === dir.path ? 'is' : 'holds';
  throw new LaunchError(`${dir.file} (${dir.what}) is in ${dir.path}, which ${how} the box's ${root.flag} ${root.path}: the box would read it; move the key file into a directory of its own outside the box's mounts (e.g. ~/.config/latchgate/) and point the configuration at it`);
}

export function buildSandboxPlan(o: SandboxOptions, h: HostFacts): SandboxPlan {
  let id = h.identity;
  const degraded: string[] = [];
  // The launcher's own PATH, before anything is walked: the user's commands after the box are found through it.
  const relativePath = checkRelativePath(h.env.PATH, o.allowRelativePath ?? false);
  const workspace = canonical(resolve(o.workspace), '--workspace');
  if (!statSync(workspace).isDirectory()) throw new LaunchError(`--workspace ${o.workspace}: not a directory; pass the project directory`);
  refuseHostInternals(workspace, '--workspace');
  const homes = homesInside(workspace, h.homes);
  refuseHome(workspace, '--workspace', homes, o.allowHomeWorkspace);
  if (id.hostUid === 0 && !id.idmap && !accessibleBy(workspace, id.uid, id.gid, { read: true })) {
    throw new LaunchError(`--workspace ${workspace}: uid ${id.uid} (${id.user}), whom the agent runs as when root launches it (${id.source}), cannot open it; run latchgate as the workspace's owner, set SUDO_UID, or give that user access (chown/chmod)`);
  }
  const ro = o.ro.map((p) => canonical(p, '--ro'));
  const rw = o.rw.map((p) => canonical(p, '--rw'));
  ro.forEach((p) => refuseHostInternals(p, '--ro'));
  rw.forEach((p) => refuseHostInternals(p, '--rw'));
  const idmap = planIdmap(id, workspace, rw);
  if (idmap) id = { ...id, idmap };
  // A read-write mount of (or around) a home is a home workspace by another name.
  for (const p of rw) {
    const inside = homesInside(p, h.homes);
    refuseHome(p, '--rw', inside, o.allowHomeWorkspace);
    for (const home of inside) if (!homes.includes(home)) homes.push(home);
  }

  let landlockAbi = h.landlockAbi;
  if (landlockAbi <= 0) {
    if (!o.allowDegraded) {
      throw new LaunchError('Landlock is not available in this kernel (needed for the second wall of the box); boot a kernel with CONFIG_SECURITY_LANDLOCK=y and "landlock" in lsm=, or accept weaker isolation with --allow-degraded');
    }
    degraded.push('landlock-unavailable');
    landlockAbi = 0;
  }

  const m = new MountPlanner();
  m.rule('/', 'list');
  for (const t of idmap?.trees ?? []) m.idmapTree(t, `uid ${idmap!.hostUid} on disk is the box's ${id.user} here`);
  if (!existsSync('/usr')) throw new LaunchError('the host has no /usr: cannot assemble the box root');
  for (const t of SYSTEM_TREES) mirrorHostPath(m, t, 'read-exec', 'system');
  m.ensureDir('/etc');
  m.rule('/etc', 'read');
  for (const e of ETC_ENTRIES) mirrorHostPath(m, `/etc/${e}`, 'read', 'system configuration');
  m.write('/etc/passwd', renderPasswd(id));
  m.write('/etc/group', renderGroup(id));
  // The box's own name resolves from the file, as git does when it guesses an identity: never a refused DNS query.
  m.write('/etc/hosts', `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t${BOX_HOSTNAME}\n`);
  m.write('/etc/hostname', `${BOX_HOSTNAME}\n`);
  if (o.dns) m.write('/etc/resolv.conf', RESOLV_CONF);
  m.special('proc', '/proc', 'proc');
  m.tmpfs('/dev', 'mode=0755,size=64k', 'list', 'minimal /dev');
  for (const d of DEVICES) m.bind(`/dev/${d}`, `/dev/${d}`, false, 'device', 'device');
  m.special('devpts', '/dev/pts', 'tty');
  m.symlink('/dev/ptmx', 'pts/ptmx');
  m.symlink('/dev/fd', '/proc/self/fd');
  m.symlink('/dev/stdin', '/proc/self/fd/0');
  m.symlink('/dev/stdout', '/proc/self/fd/1');
  m.symlink('/dev/stderr', '/proc/self/fd/2');
  m.ensureDir('/run');
  m.ensureDir(BOX_RUN_DIR);
  m.rule(BOX_RUN_DIR, 'list');
  for (const f of o.files ?? []) {
    if (!/^\/run\/latchgate\/[^/]+$/.test(f.path)) throw new LaunchError(`generated file ${f.path}: expected a path directly under /run/latchgate/`);
    m.write(f.path, f.content, 0o444);
    m.rule(f.path, 'read', true);
  }
  const gitConfig = boxGitConfig(o.hostGit ?? null);
  m.write(BOX_GIT_CONFIG, gitConfig.content, 0o444);
  m.rule(BOX_GIT_CONFIG, 'read', true);
  for (const b of o.self?.bin ?? []) m.write(`${BOX_BIN_DIR}/${b.name}`, b.content, 0o555);
  if (o.self) m.rule(BOX_BIN_DIR, 'read-exec');
  // A socket must stay writable to be connected to.
  if (o.gate) m.socket(o.gate.socket, BOX_GATE_SOCKET);
  if (o.egress) m.socket(o.egress.proxySocket, BOX_PROXY_SOCKET);

  // Trees at user-chosen paths, parents before children; an explicit bind of
  // /tmp or of HOME replaces the private directory there.
  type Tree = { path: string; bind?: { src: string; readonly: boolean }; flag: string };
  const trees: Tree[] = [];
  const add = (t: Tree) => {
    const clash = trees.find((x) => x.path === t.path);
    if (clash && clash.bind && t.bind) throw new LaunchError(`${t.flag} ${t.path}: already mounted by ${clash.flag}; give each path once`);
    if (clash) trees.splice(trees.indexOf(clash), 1, t.bind ? t : clash);
    else trees.push(t);
  };
  add({ path: '/tmp', flag: 'private /tmp' });
  add({ path: id.home, flag: 'private HOME' });
  add({ path: workspace, bind: { src: workspace, readonly: false }, flag: '--workspace' });
  for (const p of rw) add({ path: p, bind: { src: p, readonly: false }, flag: '--rw' });
  for (const p of ro) add({ path: p, bind: { src: p, readonly: true }, flag: '--ro' });
  const selfRo = (o.self?.ro ?? []).filter((p) => !trees.some((t) => t.bind && isInside(t.path, p)));
  for (const p of selfRo) add({ path: p, bind: { src: p, readonly: true }, flag: 'latchgate in the box' });
  trees.sort((a, b) => a.path.split('/').length - b.path.split('/').length);
  // One tmpfs of --tmp-size holds /dev/shm, /tmp and HOME: together they take
  // no more memory than that (a tmpfs each could take the size each).
  const tmpSize = checkTmpSize(o.limits.tmpSize ?? DEFAULT_TMP_SIZE);
  const privateTrees = trees.filter((t) => !t.bind).map((t) => t.path);
  m.tmpBudget(tmpSize, ['/dev/shm', ...privateTrees], 'memory shared by /dev/shm, /tmp and HOME (--tmp-size)');
  m.budgetDir('/dev/shm', 0o1777, 'rw-noexec', 'shared memory');
  for (const t of trees) {
    if (!t.bind) m.budgetDir(t.path, t.path === '/tmp' ? 0o1777 : 0o700, 'rw', t.flag);
    else m.bind(t.bind.src, t.path, t.bind.readonly, t.bind.readonly ? 'read-exec' : 'rw', t.flag);
  }
  // ~/.gitconfig in the box's own HOME leads to the generated config too (for git run without our
  // environment); never where HOME, or that name, shows the host's.
  const homeGitConfig = join(id.home, '.gitconfig');
  const ownHome = trees.some((t) => t.path === id.home && !t.bind) && !trees.some((t) => t.bind && isInside(t.path, homeGitConfig));
  if (ownHome) m.symlink(homeGitConfig, BOX_GIT_CONFIG);

  const writable = [workspace, ...rw];
  refuseWritablePathRoots(h.env.PATH, [{ path: workspace, flag: '--workspace' }, ...rw.map((p) => ({ path: p, flag: '--rw' }))]);
  // Weaker modes asked for by name are recorded like the others.
  if (homes.length > 0) degraded.push('home-workspace');
  if (o.trustNewRepos) degraded.push('trust-new-repos');
  if (relativePath) degraded.push('relative-path');
  if (o.trustLinkedInstall) degraded.push('trust-linked-install');
  // The rw mounts inside a home (an agent's own config) stay writable; the rest of its dotfiles do not.
  const extra = [...(o.protect ?? []), ...homes.flatMap((home) => homeRequests(home, rw))];
  const gitHome = id.hostUid === 0 ? id.home : (h.env.HOME ?? id.home);
  // Read as the agent's user: a symlink the box left in the workspace must not make root read what that user cannot.
  const protection = asOwner(fsOwnerOf(id), () => protectionPlan(writable, extra, { home: gitHome, env: id.hostUid === 0 ? {} : h.env, ...(h.env.PATH ? { path: h.env.PATH } : {}) }));
  const protectedPaths = protection.actions;
  if (homes.length > 0) protection.git.homeEntries = Object.fromEntries(homes.map((home) => [home, homeEntries(home)]));
  for (const a of protectedPaths) {
    if (a.action === 'mask-symlink') m.mask(a.path, 'protected path is a symlink: covered, not followed');
    else m.protect(a.path, a.action !== 'pin');
  }
  const excludes = placeholderExcludes(protectedPaths, [...writable, ...Object.keys(protection.git.worktrees)]);
  if (excludes) {
    m.write(BOX_GIT_EXCLUDES, excludes, 0o444);
    m.rule(BOX_GIT_EXCLUDES, 'read', true);
  }
  const stateFiles = o.stateFiles && o.stateFiles.files.length > 0 ? o.stateFiles : null;
  if (stateFiles) planStateFileMounts(m, stateFiles, trees.filter((t) => t.bind).map((t) => t.path), protectedPaths);
  // Last, over every tree and protected path: a key file's directory a mount shows is an empty
  // read-only directory (names renamed into it later stay covered), a secret file is read as empty.
  const roots = trees.filter((t) => t.bind).map((t) => ({ path: t.path, flag: t.flag }));
  for (const dir of keyDirs(o.keyFiles ?? [])) {
    if (!m.showsHostPath(dir.path)) continue;
    refuseKeyDirRoot(dir, roots);
    m.maskDir(dir.path, 'holds a key that opens secrets: never readable in the box');
  }
  for (const p of hiddenFiles(o.hide ?? [])) if (m.showsHostPath(p)) m.mask(p, 'a secrets file or age key: never readable in the box');
  if (idmap) markIdmapped(m.entries, idmap.trees);
  markNoFollow(m.entries, writable);

  const extraPath = [...[...ro, ...selfRo].flatMap((p) => [join(p, 'bin'), join(p, 'sbin')]).filter((p) => existsSync(p)), ...(o.extraPath ?? []), ...(o.self ? [BOX_BIN_DIR] : [])];
  const env = buildBoxEnv({
    hostEnv: h.env,
    passEnv: o.passEnv,
    user: id.user,
    home: id.home,
    shell: id.shell,
    workspace,
    extraPath,
  });
  Object.assign(env, o.extraEnv ?? {});
  // git in the box does not see the placeholders (--pass-env refuses GIT_CONFIG*, so these are ours alone).
  if (excludes) Object.assign(env, { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'core.excludesFile', GIT_CONFIG_VALUE_0: BOX_GIT_EXCLUDES });
  // Its global config is the generated one, whatever HOME shows (a home workspace shows the host's).
  env.GIT_CONFIG_GLOBAL = BOX_GIT_CONFIG;
  const gitPlan = { ...gitConfig.plan, homeLink: ownHome ? homeGitConfig : null };
  const git: BoxGitPlan = { ...gitPlan, note: gitLaunchNote(gitPlan, protection.git.gitDirs.length > 0) };
  Object.assign(env, o.egress?.env ?? {});
  if (o.gate) Object.assign(env, boxGateEnv(o.gate.publicBaseUrl));
  const argv = o.command.length > 0 ? o.command : [id.shell];
  const cwd = workspace;
  const execPaths = resolveExecPaths(argv[0]!, cwd, env.PATH ?? BOX_PATH);

  const rlimits: RlimitEntry[] = [
    { name: 'core', resource: RLIMIT.CORE, soft: 0, hard: 0 },
    { name: 'nofile', resource: RLIMIT.NOFILE, soft: 0, hard: 0 },
    { name: 'nproc', resource: RLIMIT.NPROC, soft: 0, hard: 0 },
  ];
  const nofile = clampLimit('nofile', o.limits.nofile ?? DEFAULT_NOFILE, h.hardLimits.nofile);
  const nproc = clampLimit('nproc', o.limits.nproc ?? DEFAULT_NPROC, h.hardLimits.nproc);
  rlimits[1]!.soft = rlimits[1]!.hard = nofile;
  rlimits[2]!.soft = rlimits[2]!.hard = nproc;

  // --strict-net: the resolver's TCP port is one of latchgate's exits too.
  const ll = landlockPlan(landlockAbi, m.access, o.strictNet, [...o.listenPorts, ...(o.dns ? [BOX_DNS_PORT] : [])]);
  if (o.strictNet && landlockAbi < 4) {
    throw new LaunchError(`--strict-net needs Landlock ABI 4 or newer (TCP rules); this kernel offers ${landlockAbi > 0 ? `ABI ${landlockAbi}` : 'no Landlock'}; drop --strict-net or upgrade the kernel`);
  }

  return {
    version: 1,
    hostname: BOX_HOSTNAME,
    workspace,
    writableRoots: writable,
    profile: o.profile ?? null,
    identity: id,
    command: { argv, execPaths, cwd },
    env,
    mounts: m.entries,
    protectedPaths,
    hostExec: { trustNewRepos: o.trustNewRepos ?? false, homeWorkspace: homes, git: protection.git, baselineFile: o.baselineDir ? baselineFile(o.baselineDir, writable) : null },
    stateFiles,
    git,
    landlock: { ...ll, status: landlockAbi > 0 ? 'enforced' : 'degraded-unavailable' },
    seccomp: describeSeccompFilter(hostSeccompArch()),
    rlimits,
    capabilities: 'all dropped',
    noNewPrivs: true,
    namespaces: ['user', 'mount', 'pid', 'network', 'uts', 'ipc', 'cgroup'],
    network: {
      loopbackOnly: true,
      strictNet: o.strictNet,
      listenPorts: o.listenPorts,
      dns: o.dns ? { nameserver: BOX_DNS_ADDRESS, port: BOX_DNS_PORT } : null,
      allowHosts: o.allowHosts,
      egress: o.egress?.description ?? null,
    },
    gate: o.gate ? { socket: BOX_GATE_SOCKET, principal: o.gate.principal, tools: o.gate.tools ? BOX_MCP_COMMAND : null } : null,
    terminal: h.terminal ? { mode: 'pty', ...h.terminal } : { mode: 'inherit' },
    degraded,
  };
}

/** Hard limits of this process, from /proc/self/limits ("unlimited" -> Infinity). */
export function readHardLimits(): { nofile: number; nproc: number } {
  const text = readFileSync('/proc/self/limits', 'utf8');
  const hard = (label: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(label));
    const v = line?.slice(26).trim().split(/\s+/)[1];
    return v === undefined || v === 'unlimited' ? Infinity : Number(v);
  };
  return { nofile: hard('Max open files'), nproc: hard('Max processes') };
}

export function readCapLast(): number {
  return Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
}
