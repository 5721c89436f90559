#!/usr/bin/env node
// Builds dist/verify.html: the receipt bundle verifier as ONE html file that
// works opened from disk (file://), with no server and no network. A page
// from disk cannot import sibling files, so every module it needs (the
// compiled src/verify/ and the two @noble libraries) is inlined as text; at
// load, a small script turns them into blob: URLs, dependencies first, each
// module's import specifiers replaced by the blob URLs of what it imports.
// The import graph is walked from the entry modules; a bare specifier not in
// BARE below fails the build (nothing is fetched at run time).
// Run after tsc by `npm run build` and `npm ci` (prepare).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const HERE = join(ROOT, 'scripts', 'verify-page');
const esm = (spec) => fileURLToPath(import.meta.resolve(spec));
const sha2 = esm('@noble/hashes/sha2');

/** Bare specifiers and the browser build of each (their package.json "exports" "import", without the node condition). */
const BARE = {
  '@noble/ed25519': esm('@noble/ed25519'),
  '@noble/hashes/sha2': sha2,
  '@noble/hashes/crypto': join(dirname(sha2), 'crypto.js'),
};
/** What the page's script imports: the verifier's entry points. */
const ENTRIES = { bundle: join(ROOT, 'dist', 'verify', 'bundle.js'), trustedKeys: join(ROOT, 'dist', 'verify', 'trusted-keys.js'), json: join(ROOT, 'dist', 'verify', 'json.js') };

/** The module specifiers of a file's imports and re-exports, where they are (TypeScript's scanner: not fooled by code in comments). */
function specifiers(text) {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => {
    // f.pos is the opening quote; the name follows it.
    const pos = f.pos + 1;
    if (!/['"]/.test(text[f.pos]) || text.slice(pos, pos + f.fileName.length) !== f.fileName) throw new Error(`cannot locate the import of ${f.fileName} at ${f.pos}`);
    return { spec: f.fileName, pos, end: pos + f.fileName.length };
  });
}

export function buildPage() {
  for (const f of Object.values(ENTRIES)) if (!existsSync(f)) throw new Error(`${relative(ROOT, f)} is missing: run tsc first (npm run build)`);
  const order = [];
  const ids = new Map();
  const visiting = new Set();
  const visit = (file) => {
    if (ids.has(file)) return ids.get(file);
    if (visiting.has(file)) throw new Error(`import cycle through ${relative(ROOT, file)}: the page loader needs an acyclic graph`);
    visiting.add(file);
    let code = readFileSync(file, 'utf8').replace(/^\/\/# sourceMappingURL=.*$/gm, '');
    // From the last to the first, so the positions of the earlier ones stay right.
    for (const { spec, pos, end } of specifiers(code).reverse()) {
      const target = spec.startsWith('.') ? resolve(dirname(file), spec) : BARE[spec];
      if (!target) throw new Error(`${relative(ROOT, file)} imports ${spec}, which the page cannot load: add its browser build to BARE in scripts/build-verify-page.mjs`);
      code = `${code.slice(0, pos)}\u0000module:${visit(target)}\u0000${code.slice(end)}`;
    }
    visiting.delete(file);
    ids.set(file, order.length);
    order.push(code);
    return ids.get(file);
  };
  const entries = Object.fromEntries(Object.entries(ENTRIES).map(([k, f]) => [k, visit(f)]));
  // JSON in a <script> element: '<' escaped, so no "</script>" or "<!--" in a module ends it.
  const data = JSON.stringify({ modules: order, entries }).replace(/</g, '\\u003c');
  const template = readFileSync(join(HERE, 'template.html'), 'utf8');
  const ui = readFileSync(join(HERE, 'ui.js'), 'utf8');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const script = ui.replace(/<\/script/gi, '<\\/script');
  const style = /<style>([\s\S]*?)<\/style>/.exec(template)[1];
  // The policy allows exactly the page's own inline script and style, by hash.
  const hash = (text) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
  return template
    .replace('{{SCRIPT_HASH}}', () => hash(script))
    .replace('{{STYLE_HASH}}', () => hash(style))
    .replace('{{VERSION}}', () => pkg.version)
    .replace('{{MODULES}}', () => data)
    .replace('{{UI}}', () => script);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = join(ROOT, 'dist', 'verify.html');
  writeFileSync(out, buildPage());
  console.log(`verify page: ${relative(ROOT, out)}`);
}
