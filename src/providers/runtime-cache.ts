// The on-disk cache of compiled providers: <cacheDir>/<digest hex>/ holds the
// glue (component.js), the metered core modules and meta.json with the
// sha256 of each. A directory is written whole under a temporary name and
// renamed into place; on load every file is hashed again and anything that
// does not match is discarded (and recompiled by the caller).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CompileOutput } from './runtime-compile-job.js';

/** Bump when the compile step changes, so old entries are rebuilt (2: the glue of jco-transpile 0.1.1; 4: fuel charged per region of straight-line code). */
const FORMAT = 4;

interface Meta {
  format: number;
  digest: string;
  imports: string[];
  js_sha256: string;
  modules: Record<string, string>;
}

const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** The verified entry, or undefined (missing, stale or corrupt: the caller recompiles). */
export function readCache(cacheDir: string, digest: string): CompileOutput | undefined {
  const dir = join(cacheDir, digest.slice('sha256:'.length));
  let meta: Meta;
  try {
    meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
  } catch {
    return undefined;
  }
  try {
    if (meta.format !== FORMAT || meta.digest !== digest) throw new Error('stale');
    const js = readFileSync(join(dir, 'component.js'), 'utf8');
    if (sha(js) !== meta.js_sha256) throw new Error('corrupt');
    const modules: Record<string, Uint8Array> = {};
    for (const [name, hash] of Object.entries(meta.modules)) {
      if (!/^[\w.-]+\.wasm$/.test(name)) throw new Error('corrupt');
      const bytes = readFileSync(join(dir, name));
      if (sha(bytes) !== hash) throw new Error('corrupt');
      modules[name] = bytes;
    }
    return { js, modules, imports: meta.imports };
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

export function writeCache(cacheDir: string, digest: string, out: CompileOutput): void {
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const final = join(cacheDir, digest.slice('sha256:'.length));
  const tmp = join(cacheDir, `.tmp-${randomBytes(8).toString('hex')}`);
  mkdirSync(tmp, { mode: 0o700 });
  try {
    const meta: Meta = { format: FORMAT, digest, imports: out.imports, js_sha256: sha(out.js), modules: {} };
    writeFileSync(join(tmp, 'component.js'), out.js, { mode: 0o600 });
    for (const [name, bytes] of Object.entries(out.modules)) {
      writeFileSync(join(tmp, name), bytes, { mode: 0o600 });
      meta.modules[name] = sha(bytes);
    }
    writeFileSync(join(tmp, 'meta.json'), JSON.stringify(meta), { mode: 0o600 });
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
