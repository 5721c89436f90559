// Who the agent is inside the box: never uid 0. A normal user keeps their own
// uid/gid; root hands the box to SUDO_UID, else the workspace owner; a
// workspace of root's own goes to nobody through an idmapped mount (idmap.ts).
// Also renders the box's /etc/passwd and /etc/group.
import { readFileSync, statSync, existsSync } from 'node:fs';
import { basename, dirname } from 'node:path';

export const NOBODY = 65534;

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface Identity {
  hostUid: number;
  uid: number;
  gid: number;
  user: string;
  group: string;
  home: string;
  shell: string;
  /** How the uid was chosen, for the plan and the --json summary. */
  source: 'self' | 'sudo' | 'workspace-owner' | 'root-workspace';
  /** The login shell from the host's passwd when it is no shell (nologin, false) or not in the box; shell is then /bin/sh. */
  shellReplaced?: string;
  uidMap: string;
  gidMap: string;
  setgroupsDeny: boolean;
  dropGroups: boolean;
  /** A root-owned workspace given to the box's user through an idmapped mount (idmap.ts), else null. */
  idmap: IdmapPlan | null;
}

/**
 * The idmap of a root launch on a root-owned workspace: through the mount,
 * files of host uid hostUid (gid hostGid) are the box user's, and what the box
 * user creates is hostUid's on disk. Only trees (the workspace and the --rw
 * directories of the same owner, filled in by the plan) are mounted so.
 */
export interface IdmapPlan {
  hostUid: number;
  hostGid: number;
  /** The idmap's user namespace: "<host id> <box id> 1". */
  uidMap: string;
  gidMap: string;
  trees: string[];
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    out.push({ name: f[0]!, uid, gid, home: f[5]!, shell: f[6]! });
  }
  return out;
}

function parseGroupNames(text: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3) continue;
    const gid = Number(f[2]);
    if (Number.isInteger(gid) && !m.has(gid)) m.set(gid, f[0]!);
  }
  return m;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function validId(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return n > 0 && n < 2 ** 32 - 1 ? n : undefined;
}

export interface IdentityHost {
  uid: number;
  gid: number;
  env: NodeJS.ProcessEnv;
  passwd: string;
  group: string;
  workspaceOwner: { uid: number; gid: number };
}

export function hostFacts(workspace: string): IdentityHost {
  const st = statSync(workspace);
  return {
    uid: process.getuid!(),
    gid: process.getgid!(),
    env: process.env,
    passwd: readOr('/etc/passwd'),
    group: readOr('/etc/group'),
    workspaceOwner: { uid: st.uid, gid: st.gid },
  };
}

/** A login directory usable as the box's private HOME. */
function usableHome(home: string | undefined, name: string): string {
  if (!home || !home.startsWith('/') || home === '/' || /^\/(nonexistent|proc|dev|sys|usr|etc|bin|sbin|lib)(\/|$)/.test(home)) {
    return `/home/${name}`;
  }
  return home;
}

export function resolveIdentity(h: IdentityHost): Identity {
  const users = parsePasswd(h.passwd);
  const groups = parseGroupNames(h.group);
  let uid: number;
  let gid: number | undefined;
  let source: Identity['source'];
  if (h.uid !== 0) {
    uid = h.uid;
    gid = h.gid;
    source = 'self';
  } else if (validId(h.env.SUDO_UID) !== undefined) {
    uid = validId(h.env.SUDO_UID)!;
    gid = validId(h.env.SUDO_GID);
    source = 'sudo';
  } else if (h.workspaceOwner.uid !== 0) {
    uid = h.workspaceOwner.uid;
    gid = h.workspaceOwner.gid !== 0 ? h.workspaceOwner.gid : undefined;
    source = 'workspace-owner';
  } else {
    // Root's own workspace: nobody inside, the workspace's owner on disk.
    uid = NOBODY;
    gid = NOBODY;
    source = 'root-workspace';
  }
  const entry = users.find((u) => u.uid === uid);
  gid ??= entry && entry.gid !== 0 ? entry.gid : uid === NOBODY ? NOBODY : uid;
  if (gid === 0) gid = NOBODY;
  const user = entry?.name ?? (uid === NOBODY ? 'nobody' : `user${uid}`);
  const shell = entry && isLoginShell(entry.shell) ? entry.shell : '/bin/sh';
  const owner = h.workspaceOwner;
  return {
    hostUid: h.uid,
    uid,
    gid,
    user,
    group: groups.get(gid) ?? (gid === NOBODY ? 'nogroup' : user),
    home: usableHome(entry?.home, user),
    shell,
    ...(entry && shell !== entry.shell ? { shellReplaced: entry.shell } : {}),
    source,
    uidMap: `${uid} ${uid} 1\n`,
    gidMap: `${gid} ${gid} 1\n`,
    // An unprivileged parent may only map its own ids, and must give up
    // setgroups for the gid map; root instead clears the supplementary groups.
    setgroupsDeny: h.uid !== 0,
    dropGroups: h.uid === 0,
    idmap:
      source === 'root-workspace'
        ? { hostUid: owner.uid, hostGid: owner.gid, uidMap: `${owner.uid} ${uid} 1\n`, gidMap: `${owner.gid} ${gid} 1\n`, trees: [] }
        : null,
  };
}

/** Accounts that must not log in have these as their shell: a box started without a command gets /bin/sh instead. */
const NO_SHELLS = new Set(['nologin', 'false']);

/** A shell under the read-only system trees (the ones present inside) that lets one log in. */
function isLoginShell(shell: string): boolean {
  return /^\/(usr\/)?(s?bin)\//.test(shell) && !NO_SHELLS.has(basename(shell)) && existsSync(shell);
}

export function renderPasswd(id: Identity): string {
  const lines = ['root:x:0:0:root:/root:/usr/sbin/nologin'];
  if (id.uid !== NOBODY) lines.push(`${id.user}:x:${id.uid}:${id.gid}:${id.user}:${id.home}:${id.shell}`);
  const nobodyHome = id.uid === NOBODY ? id.home : '/nonexistent';
  const nobodyShell = id.uid === NOBODY ? id.shell : '/usr/sbin/nologin';
  lines.push(`nobody:x:${NOBODY}:${NOBODY}:nobody:${nobodyHome}:${nobodyShell}`);
  return lines.join('\n') + '\n';
}

export function renderGroup(id: Identity): string {
  const lines = ['root:x:0:'];
  if (id.gid !== NOBODY) lines.push(`${id.group}:x:${id.gid}:`);
  lines.push(`nogroup:x:${NOBODY}:`);
  return lines.join('\n') + '\n';
}

/**
 * Whether uid/gid may search every ancestor of path and has the wanted
 * permission bits on it (owner, group or other class, as the kernel picks).
 */
export function accessibleBy(path: string, uid: number, gid: number, want: { read?: boolean; write?: boolean }): boolean {
  const bits = (p: string, r: boolean, w: boolean, x: boolean): boolean => {
    const st = statSync(p);
    const shift = st.uid === uid ? 6 : st.gid === gid ? 3 : 0;
    const m = (st.mode >> shift) & 7;
    return (!r || (m & 4) !== 0) && (!w || (m & 2) !== 0) && (!x || (m & 1) !== 0);
  };
  for (let p = dirname(path); ; p = dirname(p)) {
    if (!bits(p, false, false, true)) return false;
    if (p === '/') break;
  }
  return bits(path, !!want.read, !!want.write, true);
}
