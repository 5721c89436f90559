// The paths a configuration file names whose content the host trusts or runs
// later (schema leaves marked protectInBox: CA certificates, manifest
// directories, an OPA policy, a checkpoint directory, a program it runs: a
// checkpoint sink's command, a key source's cmd: and the scripts it is
// given) and the key files of file: key sources: a box must not write them,
// or the next gate or launch would trust what the agent put there, and no
// provider reads or writes them (the fs host). The sandbox keeps them
// read-only like latchgate's own files (own-paths.ts).
import { lstatSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve, dirname } from 'node:path';
import { LATCHGATE_TOML } from './latchgate-toml.js';
import { findOnPath } from './profiles.js';
import { isTable, leaves } from './toml-schema.js';
import { parseKeySource, type KeySource } from './key-source.js';

function keySourceOf(spec: string): KeySource | undefined {
  try {
    return parseKeySource(spec);
  } catch {
    return undefined; // the schema check names a bad key source
  }
}

/** The file a program word names as the host runs it: absolute, relative to the working directory, or a bare name found through PATH. */
function programFile(word: string, cwd: string, pathVar: string | undefined): string | undefined {
  if (isAbsolute(word)) return word;
  return word.includes('/') ? resolve(cwd, word) : findOnPath(word, pathVar);
}

export interface TrustedPath {
  path: string;
  type: 'file' | 'dir';
  /** The key that names it, for messages ("gate.manifest_dirs"). */
  key: string;
}

const PROTECTED = leaves(LATCHGATE_TOML).filter((l) => l.options.protectInBox);

/**
 * The protected paths a parsed latchgate.toml (read from file) names,
 * resolved as latchgate resolves them; a program and its scripts as the
 * host runs them, from `cwd` with `pathVar`.
 */
export function trustedPathsOf(doc: Record<string, unknown>, file: string, cwd = process.cwd(), pathVar = process.env.PATH): TrustedPath[] {
  const out: TrustedPath[] = [];
  const visit = (v: unknown, pattern: readonly string[], at: string[], leaf: (typeof PROTECTED)[number]): void => {
    if (pattern.length === 0) {
      const kind = leaf.options.protectInBox!;
      if (kind === 'program') {
        // The program the host runs: argv[0], or a key source's cmd:. Also a key source's file:, which holds a secret.
        const source = typeof v === 'string' ? keySourceOf(v) : undefined;
        if (source?.kind === 'file') out.push({ path: source.path.startsWith('~/') ? join(homedir(), source.path.slice(2)) : source.path, type: 'file', key: at.join('.') });
        const argv = Array.isArray(v) ? v : source?.kind === 'cmd' ? source.argv : [];
        const program = typeof argv[0] === 'string' ? programFile(argv[0], cwd, pathVar) : undefined;
        if (program) out.push({ path: program, type: 'file', key: at.join('.') });
        // A script it is given (["sh", "scripts/push.sh"]) runs as surely as the program: any word naming a file.
        for (const w of argv.slice(1)) {
          const f = typeof w === 'string' && w !== '' ? resolve(cwd, w) : undefined;
          if (f && lstatSync(f, { throwIfNoEntry: false })?.isFile()) out.push({ path: f, type: 'file', key: at.join('.') });
        }
        return;
      }
      for (const x of Array.isArray(v) ? v : [v]) {
        if (typeof x !== 'string' || x === '') continue;
        out.push({ path: isAbsolute(x) ? x : resolve(dirname(file), x), type: kind, key: at.join('.') });
      }
      return;
    }
    if (!isTable(v)) return;
    const [head, ...rest] = pattern;
    // '*': every entry of a table keyed by names the file chooses (routes, sinks).
    for (const [k, x] of Object.entries(v)) if (head === '*' || head === k) visit(x, rest, [...at, k], leaf);
  };
  for (const leaf of PROTECTED) visit(doc, leaf.path, [], leaf);
  return out;
}
