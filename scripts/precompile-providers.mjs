#!/usr/bin/env node
// Compiles the built-in providers (providers/build/<name>.wasm) as the gate
// does (jco's glue, fuel-metered core modules) into providers/build/compiled/,
// which every gate reads before its own cache: no gate compiles a built-in
// on its first call. An entry is kept while it verifies and was made by this
// installation's compile step; anything else there is removed. Needs dist/
// (it runs the gate's own compile step): before the TypeScript build it says
// so and does nothing.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (m) => pathToFileURL(join(ROOT, 'dist', 'providers', m)).href;

if (!existsSync(join(ROOT, 'dist', 'providers', 'runtime-compile.js'))) {
  console.log('precompile-providers: dist/ is not built yet; the build (npm run build, or prepare after tsc) runs this again');
  process.exit(0);
}
const { BUILTIN_PROVIDERS, builtinProvider, PREBUILT_DIR } = await import(dist('builtins.js'));
const { compiled } = await import(dist('runtime-compile.js'));
const { readCache, writeCache } = await import(dist('runtime-cache.js'));

const wanted = new Map(BUILTIN_PROVIDERS.map((name) => [builtinProvider(name).digest.slice('sha256:'.length), name]));
for (const entry of existsSync(PREBUILT_DIR) ? readdirSync(PREBUILT_DIR) : []) if (!wanted.has(entry)) rmSync(join(PREBUILT_DIR, entry), { recursive: true, force: true });
const made = [];
const scratch = mkdtempSync(join(tmpdir(), 'latchgate-precompile-'));
try {
  for (const name of BUILTIN_PROVIDERS) {
    const { file, digest } = builtinProvider(name);
    // A stale or corrupt entry is discarded by readCache, then compiled again.
    if (readCache(PREBUILT_DIR, digest)) continue;
    // Every user's gate reads these: readable by all, written by the installer only.
    writeCache(PREBUILT_DIR, digest, await compiled(scratch, digest, readFileSync(file)), { readable: true });
    made.push(name);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
if (made.length) console.log(`precompile-providers: compiled ${made.join(', ')} into ${relative(ROOT, PREBUILT_DIR)}/`);
