// The on-disk caches of compiled providers: <dir>/<digest hex>/ holds the
// glue (component.js), the metered core modules and meta.json with the
// sha256 of each and the compile step that made them (compiler-id.ts). A
// directory is written whole under a temporary name and renamed into place;
// on load every file is hashed again, and an entry that does not match, or
// that another compile step made, is not used: discarded from the gate's
// own cache (and recompiled by the caller), left alone in the
// installation's (precompiled at install, read-only).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compilerId } from './compiler-id.js';
import type { CompileOutput } from './runtime-compile-job.js';

/** Bump when an entry's layout changes (2: the glue of jco-transpile 0.1.1; 4: fuel charged per region of straight-line code). A change of the compile step itself needs no bump: `compiler` names it. */
const FORMAT = 4;

interface Meta {
  format: number;
  digest: string;
  compiler: string;
  imports: string[];
  js_sha256: string;
  modules: Record<string, string>;
}

const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** An entry's directory: the digest's hex, checked first (it becomes a path). */
function entryDir(cacheDir: string, digest: string): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new Error(`a compiled provider is cached by a digest "sha256:<64 lower-case hex>", got ${JSON.stringify(digest)}`);
  return join(cacheDir, digest.slice('sha256:'.length));
}

/** Removes an entry without ever deleting inside a live one: renamed aside first (another gate may rename its own into place meanwhile). */
function discard(cacheDir: string, dir: string): void {
  const aside = join(cacheDir, `.old-${randomBytes(8).toString('hex')}`);
  try {
    renameSync(dir, aside);
  } catch {
    return; // gone already, or not ours to remove: a later write says so
  }
  rmSync(aside, { recursive: true, force: true });
}

/** The verified entry, or undefined (missing, stale or corrupt: the caller recompiles; discarded unless `keep`). */
export function readCache(cacheDir: string, digest: string, { keep = false } = {}): CompileOutput | undefined {
  const dir = entryDir(cacheDir, digest);
  let meta: Meta;
  try {
    meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
  } catch {
    return undefined;
  }
  try {
    if (meta.format !== FORMAT || meta.digest !== digest || meta.compiler !== compilerId()) throw new Error('stale');
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
    if (!keep) discard(cacheDir, dir);
    return undefined;
  }
}

/** `readable`: by every user (the installation's precompiled entries, which every user's gate reads); else the owner's only. */
export function writeCache(cacheDir: string, digest: string, out: CompileOutput, { readable = false } = {}): void {
  const [dirMode, fileMode] = readable ? [0o755, 0o644] : [0o700, 0o600];
  mkdirSync(cacheDir, { recursive: true, mode: dirMode });
  const final = entryDir(cacheDir, digest);
  const tmp = join(cacheDir, `.tmp-${randomBytes(8).toString('hex')}`);
  mkdirSync(tmp, { mode: dirMode });
  try {
    const meta: Meta = { format: FORMAT, digest, compiler: compilerId(), imports: out.imports, js_sha256: sha(out.js), modules: {} };
    writeFileSync(join(tmp, 'component.js'), out.js, { mode: fileMode });
    for (const [name, bytes] of Object.entries(out.modules)) {
      writeFileSync(join(tmp, name), bytes, { mode: fileMode });
      meta.modules[name] = sha(bytes);
    }
    writeFileSync(join(tmp, 'meta.json'), JSON.stringify(meta), { mode: fileMode });
    discard(cacheDir, final);
    try {
      renameSync(tmp, final);
    } catch (e) {
      // Another gate on this state directory put the same compile in place meanwhile: theirs stands.
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !readCache(cacheDir, digest)) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
