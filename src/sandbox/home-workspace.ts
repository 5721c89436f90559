// A home directory as (or inside) the workspace: everything that runs as the
// user later lives there (~/.gitconfig, shell rc files, ~/.ssh, ~/.local/bin,
// ~/.config/{git,systemd,autostart}, ~/.npmrc...). Such a workspace is
// refused unless asked for by name; then every dotfile and autostart entry
// of each home inside it stays read-only, and the usual ones that do not
// exist get placeholders so the box cannot create them.
import { lstatSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { parsePasswd } from './identity.js';
import type { ProtectRequest } from '../config/box-requests.js';
import { isInside } from '../core/paths.js';

/** What a user's tools read from their home without being asked: created as placeholders when missing. */
export const HOME_PLACEHOLDERS: ProtectRequest[] = [
  ...['.gitconfig', '.bashrc', '.bash_profile', '.bash_login', '.bash_logout', '.bash_aliases', '.profile', '.zshrc', '.zshenv', '.zprofile', '.zlogin', '.zlogout', '.npmrc', '.pam_environment', '.xprofile', '.xsessionrc', '.xinitrc']
    .map((p) => ({ path: p, type: 'file' as const })),
  // .node_modules, .node_libraries: Node's global folders, searched by every require() that misses.
  ...['.config', '.local', '.ssh', 'bin', '.node_modules', '.node_libraries'].map((p) => ({ path: p, type: 'dir' as const })),
];

function real(p: string): string | undefined {
  try {
    return lstatSync(p).isDirectory() || lstatSync(realpathSync(p)).isDirectory() ? realpathSync(p) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The home directories worth guarding on this host: root's and those of
 * login users (uid 1000 and up, not nobody) from passwd, plus `extra` (the
 * launcher's $HOME, the agent's home), as real paths of existing directories.
 */
export function hostHomes(passwd: string, extra: readonly (string | undefined)[]): string[] {
  const candidates = parsePasswd(passwd)
    .filter((u) => u.uid === 0 || (u.uid >= 1000 && u.uid !== 65534))
    .map((u) => u.home);
  const out = new Set<string>();
  for (const h of [...candidates, ...extra]) {
    if (!h || !h.startsWith('/') || h === '/') continue;
    const r = real(h);
    if (r && r !== '/') out.add(r);
  }
  return [...out].sort();
}

/** The homes that are the workspace or lie inside it. */
export function homesInside(workspace: string, homes: readonly string[]): string[] {
  return homes.filter((h) => isInside(workspace, h));
}

/**
 * Read-only requests for a home inside the workspace: every top-level
 * dotfile and directory (and ~/bin), descending only where a path that must
 * stay writable (an agent profile's own config, mounted read-write) lies
 * below; plus placeholders for the usual ones that are missing.
 */
export function homeRequests(home: string, keepWritable: readonly string[]): ProtectRequest[] {
  const keep = keepWritable.filter((k) => isInside(home, k) && k !== home);
  const out: ProtectRequest[] = [];
  const visit = (dir: string, top: boolean) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (top && !n.startsWith('.') && n !== 'bin') continue;
      const p = join(dir, n);
      if (keep.includes(p)) continue;
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (keep.some((k) => isInside(p, k))) {
        if (st.isDirectory()) visit(p, false);
        continue;
      }
      out.push({ path: p, type: st.isDirectory() ? 'dir' : 'file' });
    }
  };
  visit(home, true);
  for (const r of HOME_PLACEHOLDERS) {
    const p = join(home, r.path);
    if (!lstatSync(p, { throwIfNoEntry: false }) && !keep.some((k) => isInside(p, k) || isInside(k, p))) out.push({ path: p, type: r.type });
  }
  return out;
}

/** The dotfiles (and bin) a home holds now: after the run, any other is new and moved aside. */
export function homeEntries(home: string): string[] {
  try {
    return readdirSync(home).filter((n) => n.startsWith('.') || n === 'bin').sort();
  } catch {
    return [];
  }
}
