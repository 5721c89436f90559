// Path helpers shared by every layer.
import { isAbsolute, relative } from 'node:path';

/** Absolute, without an empty, "." or ".." segment or a trailing "/": what path.resolve leaves as it is. */
const PLAIN = /^(?:\/(?!\.\.?(?:\/|$))[^/]+)+$|^\/$/;

/**
 * True when `p` is `root` or below it (lexically: neither is resolved).
 * A name that merely starts with dots ("..cache") is inside.
 */
export function isInside(root: string, p: string): boolean {
  // Two plain absolute paths (the common case: a box's plan asks thousands of
  // times) compare as strings; any other pair as path.relative reads it.
  if (PLAIN.test(root) && PLAIN.test(p)) return p === root || root === '/' || (p.startsWith(root) && p.charCodeAt(root.length) === 0x2f);
  const r = relative(root, p);
  return r === '' || (r !== '..' && !r.startsWith('../') && !isAbsolute(r));
}

