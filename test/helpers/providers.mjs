// Builds test providers: WAT fixtures under test/fixtures/providers/ become
// components (jco's bundled wasm-tools: parse, embed the WIT, component new).
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;
export const WIT = readFileSync(join(ROOT, 'wit/latchgate-io.wit'), 'utf8');

export const digestOf = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Builds test/fixtures/providers/<name>.wat for `world` into `dir`; returns { file, digest }. */
export async function buildWat(name, dir, world = 'provider') {
  const core = await parse(readFileSync(join(ROOT, 'test/fixtures/providers', `${name}.wat`), 'utf8'));
  const component = await componentNew(await componentEmbed({ binary: core, witSource: WIT, world }));
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
