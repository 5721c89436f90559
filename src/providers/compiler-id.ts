// What made a compiled provider: the code of the compile step (the worker
// module and every module of this package it imports, found by following
// their relative imports) and the versions of the packages it calls (jco,
// jco-transpile, binaryen). A compiled entry is used only by a runtime
// whose compile step is the same, so a change to metering can never leave
// code metered the old way in use, whatever a build or a cache kept.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const JOB = fileURLToPath(new URL('./runtime-compile-job.js', import.meta.url));
const PACKAGES = ['@bytecodealliance/jco', '@bytecodealliance/jco-transpile', 'binaryen'];
const RELATIVE_IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|^\s*import\s+['"](\.[^'"]+)['"]/gm;

function moduleClosure(file: string, seen: Map<string, string>): void {
  if (seen.has(file)) return;
  const text = readFileSync(file, 'utf8');
  seen.set(file, text);
  for (const m of text.matchAll(RELATIVE_IMPORT)) moduleClosure(join(dirname(file), m[1] ?? m[2]!), seen);
}

/** The name and version in the package.json above a package's entry point. */
function packageVersion(name: string): string {
  for (let dir = dirname(fileURLToPath(import.meta.resolve(name))); dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === name) return `${name}@${pkg.version}`;
  }
  throw new Error(`the package.json of ${name} was not found above its entry point`);
}

let id: string | undefined;

/** "sha256:<hex>" of this installation's compile step (computed once). */
export function compilerId(): string {
  if (id) return id;
  const seen = new Map<string, string>();
  moduleClosure(JOB, seen);
  const h = createHash('sha256');
  for (const [file, text] of [...seen].sort(([a], [b]) => (a < b ? -1 : 1))) h.update(`${file.slice(dirname(JOB).length)}\n${text.length}\n`).update(text);
  for (const p of PACKAGES) h.update(`${packageVersion(p)}\n`);
  return (id = `sha256:${h.digest('hex')}`);
}
