// Where Node's module lookup finds a package: node_modules/<name> in the
// directory it starts from or in the nearest directory above that has one.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The directory of package `name` as Node finds it from directory `from` (as found, links not followed), or undefined. */
export function findPackage(from: string, name: string): string | undefined {
  for (let d = from; ; d = dirname(d)) {
    const c = join(d, 'node_modules', name);
    if (existsSync(join(c, 'package.json'))) return c;
    if (d === dirname(d)) return undefined;
  }
}
