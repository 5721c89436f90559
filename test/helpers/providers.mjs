// Builds test providers: WAT fixtures under test/fixtures/providers/ become
// components (jco's bundled wasm-tools: parse, embed the WIT, component new).
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;
export const WIT = readFileSync(join(ROOT, 'wit/latchgate-io.wit'), 'utf8');

export const digestOf = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Builds test/fixtures/providers/<name>.wat for `world` of `wit` into `dir`; returns { file, digest }. */
export async function buildWat(name, dir, world = 'provider', wit = WIT) {
  const core = await parse(readFileSync(join(ROOT, 'test/fixtures/providers', `${name}.wat`), 'utf8'));
  const component = await componentNew(await componentEmbed({ binary: core, witSource: wit, world }));
  const file = join(dir, `${name}.wasm`);
  writeFileSync(file, component);
  return { file, digest: digestOf(component) };
}

export function tempDir(t, prefix = 'lg-prov-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Limits wide enough for any fixture; tests narrow the one they break. */
export const LIMITS = {
  required_imports: ['latchgate:io/http', 'latchgate:io/fs', 'latchgate:io/log'],
  fuel: 1_000_000,
  memory_mb: 16,
  timeout_seconds: 30,
  max_io_calls: 10,
  max_request_bytes: 65536,
  max_response_bytes: 1 << 20,
  max_host_response_bytes: 1 << 20,
};

/**
 * Builds a JavaScript provider with componentize-js (slow: seconds), cached
 * under the OS temp dir by a hash of the source, the WIT and the toolchain.
 */
export async function buildJs(source, world) {
  const { _setPreopens } = await import('@bytecodealliance/preview2-shim/filesystem');
  _setPreopens({ '/': '/' }); // preview2-shim starts with none; componentize reads the WIT through it
  const { componentize } = await import('@bytecodealliance/componentize-js');
  const version = JSON.parse(readFileSync(join(ROOT, 'node_modules/@bytecodealliance/componentize-js/package.json'), 'utf8')).version;
  const hash = createHash('sha256').update(`${version}\n${world}\n`).update(WIT).update(readFileSync(source)).digest('hex').slice(0, 32);
  const cacheDir = join(tmpdir(), 'latchgate-test-providers');
  const file = join(cacheDir, `${hash}.wasm`);
  let bytes;
  try {
    bytes = readFileSync(file);
  } catch {
    const { component } = await componentize({
      sourcePath: source,
      witPath: join(ROOT, 'wit'),
      worldName: world,
      disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
    });
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, component);
    renameSync(tmp, file);
    bytes = component;
  }
  return { file, digest: digestOf(bytes) };
}
