#!/usr/bin/env node
// Builds the built-in providers (providers/<name>/, AssemblyScript) into
// WebAssembly components under providers/build/: asc compiles the core
// module, jco's bundled wasm-tools embeds the world of wit/latchgate-io.wit
// and makes the component. Offline; skipped when the sources, the WIT and
// the compiler version hash as at the last build. docs/PROVIDERS.md.
import { componentEmbed, componentNew } from '@bytecodealliance/jco';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const OUT = join(ROOT, 'providers', 'build');
/** Built-in provider → the world of wit/latchgate-io.wit it implements. */
export const BUILTINS = { http_api: 'http-provider', fs: 'fs-provider' };
const ASC_FLAGS = ['--runtime', 'stub', '--use', 'abort=', '-O3', '--noAssert'];

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'build' ? [] : files(p);
    return [p];
  });
}

/** assemblyscript from this project, or from LATCHGATE_ASC_DIR (a directory whose node_modules has it). */
function findAsc() {
  const from = process.env.LATCHGATE_ASC_DIR ? join(process.env.LATCHGATE_ASC_DIR, 'package.json') : join(ROOT, 'package.json');
  const req = createRequire(from);
  try {
    const pkg = req.resolve('assemblyscript/package.json');
    return { version: JSON.parse(readFileSync(pkg, 'utf8')).version, url: pathToFileURL(join(dirname(pkg), 'dist', 'asc.js')).href };
  } catch {
    throw new Error('build-providers: the AssemblyScript compiler is not installed: run `npm install --save-dev assemblyscript@0.28.20` (or point LATCHGATE_ASC_DIR at a directory that has it)');
  }
}

function sourceHash(ascVersion) {
  const h = createHash('sha256').update(`asc ${ascVersion} ${ASC_FLAGS.join(' ')}\n`);
  for (const f of [...files(join(ROOT, 'providers')), ...files(join(ROOT, 'wit'))].sort()) h.update(`${relative(ROOT, f)}\n`).update(readFileSync(f));
  return h.digest('hex');
}

/** Builds what changed; returns { name: { file, digest } }. */
export async function buildProviders({ quiet = false } = {}) {
  const asc = findAsc();
  const hash = sourceHash(asc.version);
  const stamp = join(OUT, '.source-hash');
  const result = Object.fromEntries(Object.keys(BUILTINS).map((n) => [n, { file: join(OUT, `${n}.wasm`), digestFile: join(OUT, `${n}.digest`) }]));
  const fresh = existsSync(stamp) && readFileSync(stamp, 'utf8') === hash && Object.values(result).every((r) => existsSync(r.file) && existsSync(r.digestFile));
  if (!fresh) {
    const { default: ascMain } = await import(asc.url).then((m) => ({ default: m.main }));
    const wit = readFileSync(join(ROOT, 'wit', 'latchgate-io.wit'), 'utf8');
    mkdirSync(OUT, { recursive: true });
    const tmp = mkdtempSync(join(tmpdir(), 'lg-providers-'));
    try {
      for (const [name, world] of Object.entries(BUILTINS)) {
        const core = join(tmp, `${name}.core.wasm`);
        let log = '';
        const sink = { write: (s) => ((log += s), true) };
        const { error } = await ascMain([join(ROOT, 'providers', name, 'index.ts'), ...ASC_FLAGS, '-o', core], { stdout: sink, stderr: sink });
        if (error) throw new Error(`build-providers: asc failed for providers/${name}: ${error.message}\n${log}`);
        const component = await componentNew(await componentEmbed({ binary: readFileSync(core), witSource: wit, world }));
        const digest = `sha256:${createHash('sha256').update(component).digest('hex')}`;
        writeFileSync(join(tmp, `${name}.wasm`), component);
        writeFileSync(join(tmp, `${name}.digest`), `${digest}\n`);
        renameSync(join(tmp, `${name}.wasm`), result[name].file);
        renameSync(join(tmp, `${name}.digest`), result[name].digestFile);
      }
      writeFileSync(stamp, hash);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    if (!quiet) console.log(`build-providers: built ${Object.keys(BUILTINS).join(', ')} into ${relative(ROOT, OUT)}/`);
  }
  return Object.fromEntries(Object.entries(result).map(([n, r]) => [n, { file: r.file, digest: readFileSync(r.digestFile, 'utf8').trim() }]));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  buildProviders().catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
}
