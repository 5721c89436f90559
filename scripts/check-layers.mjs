#!/usr/bin/env node
// Keeps the dependency direction of src/ as docs/ARCHITECTURE.md draws it:
// a directory may import from its own layer and the layers below it, never
// from one above. cli/ is the top: nothing imports it. Run by `make lint`.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Bottom first. */
export const LAYERS = ['core', 'verify', 'crypto', 'runtime', 'native', 'config', 'secrets', 'keys', 'ledger', 'policy', 'egress', 'providers', 'gate', 'sdk', 'mcp', 'sandbox', 'doctor', 'cli'];

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main(process.argv[2]);

/** Checks the tree: the repository's src/, or the directory given (tests). */
function main(dir) {
  const src = dir ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'src');
  const root = dirname(src);
  const IMPORT = /(?:^|[^.\w])(?:import|export)\s*(?:type\s+)?(?:[^'"]*?\sfrom\s*)?\(?\s*['"](\.{1,2}\/[^'"]+)['"]/gm;

  function* files(dir) {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) yield* files(p);
      else if (e.name.endsWith('.ts')) yield p;
    }
  }

  const problems = [];
  for (const file of files(src)) {
    const from = relative(src, file).split('/')[0];
    const rank = LAYERS.indexOf(from);
    if (rank < 0) {
      problems.push(`src/${from}/ is not in the layer list of scripts/check-layers.mjs: add it where it belongs`);
      continue;
    }
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const target = relative(src, normalize(join(dirname(file), m[1])));
      const to = target.split('/')[0];
      if (target.startsWith('..')) problems.push(`${relative(root, file)} imports ${m[1]}, outside src/`);
      else if (LAYERS.indexOf(to) > rank) problems.push(`${relative(root, file)} imports src/${target}: ${from}/ may not depend on ${to}/ (order, bottom first: ${LAYERS.join(' < ')})`);
    }
  }
  if (problems.length) {
    console.error(`layer check: ${problems.length} import(s) point the wrong way\n  ${[...new Set(problems)].join('\n  ')}`);
    process.exit(1);
  }
  console.log(`layer check: ok (${LAYERS.join(' < ')})`);
}
