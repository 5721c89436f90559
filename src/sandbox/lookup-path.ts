// Where the kernel will find a path when it is looked up later, not where
// it leads now: every symlink on the way is followed, also one whose target
// does not exist yet (a box that can write there creates it), a `..` steps
// out of the directory reached so far (after a symlink that is not the
// directory written before it), and a missing part is kept as written, to
// be created. A PATH entry, a hook or a config named through such a path is
// found there by the host after the box exits.
import { lstatSync, readlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LaunchError } from '../core/errors.js';

/** Symlinks the kernel follows in one lookup before ELOOP (fs/namei.c MAXSYMLINKS). */
const MAX_LINKS = 40;

export interface Lookup {
  /** The physical path reached (absolute, no symlinks among its existing parts). */
  path: string;
  /** Every symlink followed on the way, at its own physical location: retargeting one moves the lookup. */
  links: string[];
}

/** Splits a path into the names to look up (empty and `.` parts dropped). */
const names = (p: string) => p.split('/').filter((n) => n !== '' && n !== '.');

/** The lookup of absolute path p (a relative p is taken from /). */
export function lookupPath(p: string): Lookup {
  const links: string[] = [];
  const todo = names(p);
  let at = '/';
  let missing = false;
  let changed = 0;
  while (todo.length > 0) {
    const name = todo.shift()!;
    if (name === '..') {
      at = dirname(at);
      continue;
    }
    const next = join(at, name);
    if (!missing) {
      let st;
      try {
        st = lstatSync(next);
      } catch {
        st = undefined; // missing, or not searchable: created (or not) below what exists
      }
      if (st?.isSymbolicLink() && links.length < MAX_LINKS) {
        let target;
        try {
          target = readlinkSync(next);
        } catch (e) {
          // Replaced since the lstat (a box running on the same tree): look at the name again.
          if (++changed > MAX_LINKS) throw new LaunchError(`${next} keeps changing while it is looked up (${(e as NodeJS.ErrnoException).code}), likely by another box on the same workspace; stop it, then run again`);
          todo.unshift(name);
          continue;
        }
        links.push(next);
        todo.unshift(...names(target));
        if (target.startsWith('/')) at = '/';
        continue;
      }
      missing = st === undefined;
    }
    at = next;
  }
  return { path: at, links };
}
