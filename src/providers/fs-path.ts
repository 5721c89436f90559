// A provider's path, checked before anything touches the file system: it must
// already be the normalized path relative to the root, because the globs
// (src/providers/fs-glob.ts) are matched against exactly the string the
// kernel then resolves beneath the root's fd (native/openat.cc). Nothing is
// rewritten: a path with "..", "." or empty components, an absolute one, a
// NUL, a lone UTF-16 surrogate (it would reach the kernel as U+FFFD, another
// name than the one matched) or one longer than PATH_MAX is refused.
import { HostIoError } from './host-error.js';

/** Linux PATH_MAX (the terminating NUL included) and NAME_MAX, in bytes. */
export const PATH_MAX = 4096;
export const NAME_MAX = 255;

/** A path that passed: its text and its components ([] for the root, "."). */
export interface RelPath {
  readonly text: string;
  readonly components: readonly string[];
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Checks path; "." (the root itself) only when allowRoot. Throws HostIoError. */
export function parseRelPath(path: unknown, allowRoot: boolean): RelPath {
  if (typeof path !== 'string') throw new HostIoError('path_invalid', `the path must be a string, got ${typeof path}`);
  const shown = JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}...` : path);
  if (path === '') throw new HostIoError('path_invalid', 'the path is empty: give a path relative to the root, e.g. "src/main.ts"');
  if (path.includes('\0')) throw new HostIoError('path_invalid', `the path ${shown} contains NUL`);
  if (LONE_SURROGATE.test(path)) throw new HostIoError('path_invalid', `the path ${shown} is not valid Unicode (a lone surrogate)`);
  if (Buffer.byteLength(path, 'utf8') >= PATH_MAX) throw new HostIoError('path_too_long', `the path is ${Buffer.byteLength(path, 'utf8')} bytes: at most ${PATH_MAX - 1} (PATH_MAX)`);
  if (path.startsWith('/')) throw new HostIoError('path_outside_root', `the path ${shown} is absolute: paths are relative to the root`);
  if (path === '.') {
    if (allowRoot) return { text: '.', components: [] };
    throw new HostIoError('path_invalid', 'the path "." is the root directory itself: name a file under it');
  }
  const components = path.split('/');
  for (const c of components) {
    if (c === '..') throw new HostIoError('path_outside_root', `the path ${shown} has a ".." component: paths may not leave the root`);
    if (c === '' || c === '.') throw new HostIoError('path_invalid', `the path ${shown} is not normalized (an ${c === '' ? 'empty' : '"."'} component): write it without "//", "./" or a trailing "/"`);
    if (Buffer.byteLength(c, 'utf8') > NAME_MAX) throw new HostIoError('path_too_long', `a component of the path ${shown} is longer than ${NAME_MAX} bytes (NAME_MAX)`);
  }
  return { text: path, components };
}

/** The parent directory ("." for the root) and the last name of a path below the root. */
export function splitParent(p: RelPath): { parent: string; name: string } {
  const name = p.components.at(-1);
  if (name === undefined) throw new HostIoError('path_invalid', 'the root directory itself has no parent');
  return { parent: p.components.length > 1 ? p.components.slice(0, -1).join('/') : '.', name };
}
