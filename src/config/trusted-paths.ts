// The paths a configuration file names whose content the host trusts or runs
// later (schema leaves marked protectInBox: CA certificates, manifest
// directories, an OPA policy, a checkpoint directory, a program it runs: a
// checkpoint sink's command, a key source's cmd:): a box must not write
// them, or the next gate or launch would trust what the agent put there. The
// sandbox keeps them read-only like latchgate's own files (own-paths.ts).
import { lstatSync } from 'node:fs';
import { isAbsolute, resolve, dirname } from 'node:path';
import { LATCHGATE_TOML } from './latchgate-toml.js';
import { isTable, leaves } from './toml-schema.js';
import { parseKeySource } from './key-source.js';

function programOf(spec: string): unknown[] {
  try {
    const k = parseKeySource(spec);
    return k.kind === 'cmd' ? k.argv : [];
  } catch {
    return []; // the schema check names a bad key source
  }
}

export interface TrustedPath {
  path: string;
  type: 'file' | 'dir';
  /** The key that names it, for messages ("gate.manifest_dirs"). */
  key: string;
}

const PROTECTED = leaves(LATCHGATE_TOML).filter((l) => l.options.protectInBox);

/** The protected paths a parsed latchgate.toml (read from file) names, resolved as latchgate resolves them. */
export function trustedPathsOf(doc: Record<string, unknown>, file: string): TrustedPath[] {
  const out: TrustedPath[] = [];
  const visit = (v: unknown, pattern: readonly string[], at: string[], leaf: (typeof PROTECTED)[number]): void => {
    if (pattern.length === 0) {
      const kind = leaf.options.protectInBox!;
      if (kind === 'program') {
        // The program the host runs: argv[0], or a key source's cmd:; a bare name is found through PATH, whose
        // entries in writable trees the box already keeps read-only (lookup-path.ts).
        const argv = Array.isArray(v) ? v : typeof v === 'string' && v.startsWith('cmd:') ? programOf(v) : [];
        const program = argv[0];
        if (typeof program === 'string' && isAbsolute(program)) out.push({ path: program, type: 'file', key: at.join('.') });
        // A script it is given (["/bin/sh", "/path/push.sh"]) runs as surely as the program.
        for (const w of argv.slice(1)) {
          if (typeof w === 'string' && isAbsolute(w) && lstatSync(w, { throwIfNoEntry: false })?.isFile()) out.push({ path: w, type: 'file', key: at.join('.') });
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
