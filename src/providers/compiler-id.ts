// What made a compiled provider: the code of the compile step and of the
// call worker that runs its output (those modules and every module of this
// package they import, by content), and every file of the packages the
// compile step runs (jco, jco-transpile and what they load, binaryen) by
// identity: path, inode, size, modification and change time, which any
// reinstall, upgrade or edit in place changes (not the device: the same
// files seen through another mount are the same step). Packages are
// followed to their real paths and their dependencies looked up from there,
// as Node does (pnpm, npm link). A compiled entry is used only by a runtime
// whose compile step is the same, so a change of the metering, the glue
// generator or the world check can never leave code made the old way in
// use, whatever a build or a cache kept.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPackage } from '../core/find-package.js';

const JOB = fileURLToPath(new URL('./runtime-compile-job.js', import.meta.url));
/** The call worker: its fuel constants and host glue must be the ones the output was made for. */
const WORKER = fileURLToPath(new URL('./runtime-worker.js', import.meta.url));
const RELATIVE_IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|^\s*import\s+['"](\.[^'"]+)['"]/gm;
/**
 * The packages the compile worker loads, as [package, which of its
 * dependencies it loads: all, or those named]: jco for its world check
 * (which runs jco's own jco-transpile), jco-transpile for the glue, binaryen
 * for the meter. test/providers/runtime-trust.test.mjs checks that these
 * cover every package the worker loads.
 */
const PACKAGES: readonly (readonly [string, 'all' | readonly string[]])[] = [
  ['@bytecodealliance/jco', ['@bytecodealliance/jco-transpile']],
  ['@bytecodealliance/jco-transpile', 'all'],
  ['binaryen', 'all'],
];

function moduleClosure(file: string, seen: Map<string, string>): void {
  if (seen.has(file)) return;
  const text = readFileSync(file, 'utf8');
  seen.set(file, text);
  for (const m of text.matchAll(RELATIVE_IMPORT)) moduleClosure(join(dirname(file), m[1] ?? m[2]!), seen);
}

/** Package `name` as Node finds it from `from`, where it really is (its own dependencies are looked up from there). */
function realPackage(from: string, name: string): string | undefined {
  const found = findPackage(from, name);
  return found === undefined ? undefined : realpathSync(found);
}

/** A package's dependencies, each with whether it may be missing (an optional one for another platform). */
function dependencies(dir: string): [string, boolean][] {
  const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
  const optional = Object.keys(pj.optionalDependencies ?? {});
  return [...Object.keys(pj.dependencies ?? {}).filter((n) => !optional.includes(n)).map((n): [string, boolean] => [n, false]), ...optional.map((n): [string, boolean] => [n, true])];
}

/** The package directories the compile worker loads from. */
export function compilerPackages(): string[] {
  const seen = new Set<string>();
  const add = (dir: string, deps: 'all' | readonly string[]): void => {
    seen.add(dir);
    for (const [name, optional] of deps === 'all' ? dependencies(dir) : deps.map((n): [string, boolean] => [n, false])) {
      const found = realPackage(dir, name);
      if (found === undefined) {
        if (optional) continue;
        throw new Error(`the compile step's package ${name} is not installed (looked up from ${dir})`);
      }
      if (!seen.has(found)) add(found, 'all');
    }
  };
  for (const [name, deps] of PACKAGES) {
    const dir = realPackage(realpathSync(dirname(JOB)), name);
    if (dir === undefined) throw new Error(`the compile step's package ${name} is not installed (looked up from ${dirname(JOB)})`);
    add(dir, deps);
  }
  return [...seen].sort();
}

/** Every file of a package directory but its own node_modules (other packages, counted where they are loaded); a link by what it names. */
function hashFiles(h: ReturnType<typeof createHash>, root: string, dir = root): void {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (!(dir === root && e.name === 'node_modules')) hashFiles(h, root, p);
      continue;
    }
    const s = statSync(p, { bigint: true, throwIfNoEntry: false });
    h.update(s ? `${relative(root, p)}\0${s.ino}\0${s.size}\0${s.mtimeNs}\0${s.ctimeNs}\n` : `${relative(root, p)}\0dangling\n`);
  }
}

/** The SHA-256 (hex) of the modules `entries` load from this package, by content. */
function closureDigest(...entries: string[]): string {
  const seen = new Map<string, string>();
  for (const e of entries) moduleClosure(e, seen);
  const h = createHash('sha256');
  for (const [file, text] of [...seen].sort(([a], [b]) => (a < b ? -1 : 1))) h.update(`${relative(dirname(JOB), file)}\n${text.length}\n`).update(text);
  return h.digest('hex');
}

let workerCode: string | undefined;

/**
 * Whether the call worker's code on disk differs from what this thread first
 * read (the pool reads it as the gate starts, the compile step's identity
 * reads the same). Each new call worker loads its modules
 * from disk, so after an upgrade in place a respawned worker would run
 * output made for the old code (its fuel scale, its host glue) unless the
 * pool asks this before every spawn.
 */
export function workerCodeChanged(): boolean {
  const now = closureDigest(WORKER);
  return now !== (workerCode ??= now);
}

let id: string | undefined;

/** "sha256:<hex>" of this installation's compile step, computed once per thread (about 50 ms). */
export function compilerId(): string {
  if (id) return id;
  workerCode ??= closureDigest(WORKER);
  const h = createHash('sha256').update(`modules ${closureDigest(JOB, WORKER)}\n`);
  for (const dir of compilerPackages()) {
    h.update(`package ${dir}\n`);
    hashFiles(h, dir);
  }
  return (id = `sha256:${h.digest('hex')}`);
}
