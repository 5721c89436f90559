// Whether anyone but root and this launcher could change what a path leads
// to: a directory at or above it that belongs to another uid, or that others
// may write to without the sticky bit (which keeps them from renaming or
// removing entries they do not own, stat(2)), lets them swap it.
import { lstatSync } from 'node:fs';
import { dirname } from 'node:path';

const S_ISVTX = 0o1000;

export const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`;

/**
 * undefined when path (absolute, existing) and every level above it are
 * directories (no symlink), root's or this euid's, and not writable by
 * others unless sticky; else why not, naming the first level that is not.
 * createIn: new names will be made and then followed in path itself, so
 * others may not write to it even with the sticky bit.
 */
export function whyUntrusted(path: string, createIn = false): string | undefined {
  const euid = process.geteuid!();
  for (let p = path; ; p = dirname(p)) {
    const st = lstatSync(p);
    if (!st.isDirectory()) return `${p} is not a directory`; // a symlink leads anywhere
    if (st.uid !== 0 && st.uid !== euid) return `${p} is owned by uid ${st.uid}`;
    const othersWrite = (st.mode & 0o022) !== 0;
    if (othersWrite && createIn && p === path) return `${p} is writable by others (mode ${octal(st.mode)})`;
    if (othersWrite && (st.mode & S_ISVTX) === 0) return `${p} is writable by others (mode ${octal(st.mode)}) without the sticky bit`;
    if (p === '/') return undefined;
  }
}
