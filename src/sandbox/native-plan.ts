// Translates a SandboxPlan into the addon's form: host sources under the
// staging root's /oldroot, box targets under /newroot, the tmp budget at the
// staging root's /tmp-budget and the idmapped trees at /idmap-<n> (never in
// the box; detached with the staging root).
import { OP, type NativeMountOp, type NativePlan } from '../native/addon.js';
import { idmapTreeOf } from './idmap.js';
import type { MountEntry } from './mount-plan.js';
import type { SandboxPlan } from './plan.js';
import { buildSeccompFilter, hostSeccompArch } from './seccomp-filter.js';

const OLD = '/oldroot';
const NEW = '/newroot';
const BUDGET = '/tmp-budget';
const IDMAP = '/idmap-';

/** Where a bind's source is in the staging root: under the old root, or in the idmapped copy of its tree. */
function bindSource(src: string, idmapped: boolean, trees: readonly string[]): string {
  const tree = idmapped ? idmapTreeOf(trees, src) : undefined;
  if (tree === undefined) return OLD + src;
  return IDMAP + trees.indexOf(tree) + src.slice(tree.length);
}

/** An entry inside a writable tree: its target, and its source when that is the same path, resolved with no symlink. */
const noFollow = (marked: true | undefined, src: boolean) => (marked ? { noFollowDst: true, noFollowSrc: src } : {});

/** One operation per entry: a failure's index names the plan entry. */
function op(e: MountEntry, index: number, trees: readonly string[]): NativeMountOp {
  switch (e.kind) {
    case 'mkdir':
      return { kind: OP.MKDIR, dst: NEW + e.path, mode: e.mode };
    case 'mkfile':
      return { kind: OP.MKFILE, dst: NEW + e.path, mode: 0o644 };
    case 'idmap-tree':
      // src is opened by the parent, in the host's namespace.
      return { kind: OP.IDMAP_TREE, src: e.src, dst: IDMAP + trees.indexOf(e.src) };
    case 'bind':
      return { kind: OP.BIND, src: bindSource(e.src, e.idmapped ?? false, trees), dst: NEW + e.path, readonly: e.readonly, recursive: true, ...noFollow(e.noFollow, e.src === e.path) };
    case 'mask':
      return { kind: OP.MASK, src: `${OLD}/dev/null`, dst: NEW + e.path, readonly: true, recursive: false, ...noFollow(e.noFollow, false) };
    case 'tmpfs':
      return { kind: OP.TMPFS, dst: NEW + e.path, data: e.options, ...noFollow(e.noFollow, false) };
    case 'tmp-budget':
      return { kind: OP.TMP_BUDGET, dst: BUDGET, data: `mode=0700,size=${e.size}` };
    case 'budget-dir':
      return { kind: OP.BUDGET_DIR, src: `${BUDGET}/${index}`, dst: NEW + e.path, mode: e.mode, readonly: false, recursive: false, ...noFollow(e.noFollow, false) };
    case 'proc':
      return { kind: OP.PROC, dst: NEW + e.path };
    case 'devpts':
      return { kind: OP.DEVPTS, dst: NEW + e.path };
    case 'symlink':
      return { kind: OP.SYMLINK, dst: NEW + e.path, data: e.target };
    case 'write':
      return { kind: OP.WRITE_FILE, dst: NEW + e.path, data: e.content, mode: e.mode };
  }
}

export function toNativePlan(plan: SandboxPlan, capLast: number): NativePlan {
  const id = plan.identity;
  const trees = plan.mounts.flatMap((e) => (e.kind === 'idmap-tree' ? [e.src] : []));
  return {
    uid: id.uid,
    gid: id.gid,
    uidMap: id.uidMap,
    gidMap: id.gidMap,
    setgroupsDeny: id.setgroupsDeny,
    dropGroups: id.dropGroups,
    hostname: plan.hostname,
    stageDir: '/tmp',
    ops: plan.mounts.map((e, i) => op(e, i, trees)),
    landlock: {
      abi: plan.landlock.abi,
      handledFs: plan.landlock.handledFs,
      handledNet: plan.landlock.handledNet,
      scoped: plan.landlock.scoped,
      paths: plan.landlock.paths.map(({ path, access }) => ({ path, access })),
      ports: plan.landlock.ports,
    },
    seccomp: buildSeccompFilter(hostSeccompArch()),
    rlimits: plan.rlimits.map(({ resource, soft, hard }) => ({
      resource,
      soft: Number.isFinite(soft) ? soft : -1,
      hard: Number.isFinite(hard) ? hard : -1,
    })),
    capLast,
    argv: plan.command.argv,
    envp: Object.entries(plan.env).map(([k, v]) => `${k}=${v}`),
    execPaths: plan.command.execPaths,
    cwd: plan.command.cwd,
    // The DNS resolver's TCP socket after the exits', its UDP one last (supervisor.ts splits them).
    ports: [...plan.network.listenPorts, ...(plan.network.dns ? [plan.network.dns.port] : [])],
    udpPorts: plan.network.dns ? [plan.network.dns.port] : [],
    pty: plan.terminal.mode === 'pty' ? { rows: plan.terminal.rows, cols: plan.terminal.cols } : null,
    idmap: id.idmap ? { uidMap: id.idmap.uidMap, gidMap: id.idmap.gidMap } : null,
  };
}
