// A directory may be reached by more than one path: a bind mount shows a
// directory of a filesystem at another mount point, with the same files.
// Checks that compare paths (a writable mount inside latchgate's own paths,
// or holding them) miss such an alias; comparing where each path lies on
// its filesystem (/proc/self/mountinfo: the device and the root of each
// mount within it, proc(5)) finds it. Btrfs subvolumes and overlays are
// separate devices there and are not compared.
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { isInside } from '../core/paths.js';

export interface MountEntry {
  /** major:minor of the filesystem. */
  dev: string;
  /** The directory of that filesystem shown at point. */
  root: string;
  point: string;
  /** The filesystem type ("overlay", "ext4"), and its super options (an overlay's layers: lowerdir=, upperdir=). */
  fsType?: string;
  superOptions?: string;
}

/** A mountinfo field with its octal escapes (space, tab, newline, backslash) undone. */
const unescape = (f: string) => f.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The mounts as /proc/self/mountinfo lists them, in mount order (a later one at a point covers an earlier). */
export function mountTable(text = readFileSync('/proc/self/mountinfo', 'utf8')): MountEntry[] {
  return text
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length > 4)
    .map((f) => {
      // After the optional fields, "-" then the type, the source and the super options.
      const dash = f.indexOf('-', 6);
      return { dev: f[2]!, root: unescape(f[3]!), point: unescape(f[4]!), ...(dash > 0 ? { fsType: f[dash + 1] ?? '', superOptions: unescape(f[dash + 3] ?? '') } : {}) };
    });
}

/** The mount a real absolute path is on (the last of those mounted over it). */
export function mountOf(p: string, table: readonly MountEntry[]): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const m of table) if (isInside(m.point, p) && (!best || m.point.length >= best.point.length)) best = m;
  return best;
}

/** The directories an overlay mount is made of (lowerdir, upperdir, workdir); none for another type. */
export function overlayLayers(m: MountEntry): string[] {
  if (m.fsType !== 'overlay' || !m.superOptions) return [];
  const out: string[] = [];
  // Options are comma-separated; lowerdir's layers colon-separated; a layer's own ":" or "," is escaped with "\\".
  for (const opt of m.superOptions.split(/(?<!\\),/)) {
    const [k, v] = [opt.slice(0, opt.indexOf('=')), opt.slice(opt.indexOf('=') + 1)];
    if (k === 'lowerdir' || k === 'upperdir' || k === 'workdir') out.push(...v.split(/(?<!\\):/).map((x) => x.replace(/\\([:,\\])/g, '$1')).filter(Boolean));
  }
  return out;
}

/** Where a real absolute path lies: its filesystem and its path from that filesystem's root. */
export function diskLocation(p: string, table: readonly MountEntry[]): { dev: string; path: string } | undefined {
  const best = mountOf(p, table);
  return best && { dev: best.dev, path: join(best.root, relative(best.point, p)) };
}

/**
 * Whether inner lies in outer's tree on disk (both real paths), by the
 * paths given or through another mount of the same directory: outer's own
 * or one mounted below it (the box binds a tree with its submounts).
 */
export function insideOnDisk(outer: string, inner: string, table: readonly MountEntry[]): boolean {
  if (isInside(outer, inner)) return true;
  const b = diskLocation(inner, table);
  if (b === undefined) return false;
  const below = table.filter((m) => m.point !== outer && isInside(outer, m.point)).map((m) => ({ dev: m.dev, path: m.root }));
  return [diskLocation(outer, table), ...below].some((a) => a !== undefined && a.dev === b.dev && isInside(a.path, b.path));
}
