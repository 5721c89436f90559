// Path helpers shared by every layer.
import { isAbsolute, relative } from 'node:path';

/**
 * True when `p` is `root` or below it (lexically: neither is resolved).
 * A name that merely starts with dots ("..cache") is inside.
 */
export function isInside(root: string, p: string): boolean {
  const r = relative(root, p);
  return r === '' || (r !== '..' && !r.startsWith('../') && !isAbsolute(r));
}
