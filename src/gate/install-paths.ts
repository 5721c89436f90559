// Where latchgate runs from on the host: its package (a clone's parts, or an
// installed package and its dependencies), the Node that runs it, and the
// node_modules folders Node searches for what it does not find there. The
// host runs these files again after any box or call, so nothing the gate
// serves may write them: the box keeps them read-only
// (src/sandbox/latchgate-in-box.ts), and the fs host neither writes nor
// deletes in them (installProtectedDirs).
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installMounts, inSystemTree } from '../config/profiles.js';
import { findPackage } from '../core/find-package.js';
import { isInside } from '../core/paths.js';
import type { ProtectedDir } from '../providers/host-fs.js';

/**
 * What a package outside an installed node_modules (a clone) runs or reads:
 * code, addon, providers, definitions; and the prebuilt addon (after `npm
 * pack`), which `npm run build`, the repair an addon error names, would install.
 */
export const PACKAGE_PARTS = ['package.json', 'dist', 'node_modules', 'build', 'prebuilds', 'providers', 'wit', 'profiles', 'definitions', 'policies'];

/** Where the packages in a node_modules that are symbolic links (`file:` dependencies, `npm link`) really are. */
export function linkedPackages(dir: string): string[] {
  const out: string[] = [];
  const entries = (d: string) => {
    try {
      return readdirSync(d, { withFileTypes: true });
    } catch {
      return [];
    }
  };
  for (const e of entries(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory() && e.name.startsWith('@')) out.push(...entries(p).filter((s) => s.isSymbolicLink()).map((s) => join(p, s.name)));
    else if (e.isSymbolicLink()) out.push(p);
  }
  return out.flatMap((p) => {
    try {
      return [realpathSync(p)];
    } catch {
      return []; // dangling: Node cannot load it either
    }
  });
}

/** The package directories root loads at run time: itself and its dependencies, transitively (`real`: by their real paths). */
export function dependencyClosure(root: string, { real = false } = {}): string[] {
  const seen = new Set([root]);
  for (const queue = [root]; queue.length > 0; ) {
    const dir = queue.pop()!;
    const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
    for (const dep of Object.keys({ ...pj.dependencies, ...pj.optionalDependencies })) {
      // real: each package where it really is, its own dependencies looked up from there (as Node does).
      const at = findPackage(dir, dep);
      const found = at !== undefined && real ? realpathSync(at) : at;
      if (found === undefined || seen.has(found)) continue;
      seen.add(found);
      queue.push(found);
    }
  }
  return [...seen];
}

/** The package root: this file is dist/gate/install-paths.js. */
export const packageRoot = () => realpathSync(fileURLToPath(new URL('../../', import.meta.url)));

/** Each node_modules Node searches above `from` (whether there or not). */
export function lookupsAbove(from: string): string[] {
  const out: string[] = [];
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    out.push(join(dir, 'node_modules'));
    if (dir === dirname(dir)) return out;
  }
}

/**
 * The directories the host runs latchgate's code from, as the fs host's
 * protected directories (readable, never written in nor deleted from): the
 * package's trees, the Node installation (its bin directory, for a Node in a
 * system tree), Node's global module folders, and every node_modules Node
 * searches above the package and its linked dependencies. Real paths; one
 * not there now is left out (the fs host makes no directory).
 */
export function installProtectedDirs(root = packageRoot(), node = process.execPath, home = os.homedir()): ProtectedDir[] {
  const nodeReal = realpathSync(node);
  const installed = basename(dirname(root)) === 'node_modules';
  // A clone's linked dependencies (npm link, file:, a workspace) and theirs, at any depth, where they really are.
  const linked = installed ? [] : linkedPackages(join(root, 'node_modules')).flatMap((p) => dependencyClosure(p, { real: true }));
  const trees = installed ? dependencyClosure(realpathSync(root), { real: true }) : [...PACKAGE_PARTS.map((p) => join(root, p)), ...linked];
  const nodeDirs = inSystemTree(nodeReal) ? [dirname(nodeReal)] : installMounts(dirname(node), nodeReal, []);
  const prefix = dirname(dirname(nodeReal));
  const globals = [join(prefix, 'lib', 'node'), join(prefix, 'lib', 'node_modules'), join(home, '.node_modules'), join(home, '.node_libraries')];
  // Above the package and above every package of it that lies elsewhere: where Node searches for what is not nearer.
  const lookups = [root, ...trees.filter((p) => !isInside(root, p))].flatMap(lookupsAbove);
  const out = new Map<string, string>();
  const add = (paths: string[], what: string) => {
    for (const p of paths) {
      if (!existsSync(p)) continue;
      const real = realpathSync(p);
      if (!out.has(real)) out.set(real, what);
    }
  };
  add(trees, 'installation (the code every later latchgate command runs)');
  add(nodeDirs, 'Node.js installation (it runs latchgate)');
  add(globals, 'Node.js global module folder');
  add(lookups, 'module folder Node searches for what latchgate loads');
  return [...out].map(([path, what]) => ({ path, what, readable: true }));
}
