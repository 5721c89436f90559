// The user's record of trusted configuration files:
// $XDG_STATE_HOME/latchgate/trusted-configs.json, found from the environment
// alone (never from a configuration file, which it judges). One entry per
// real path: the SHA-256 of the content trusted and what it granted then.
// Written atomically (a private temporary file renamed over it), mode 0600;
// a store another user owns or could write is refused, never used.
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync, constants as fsc } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { LaunchError } from '../core/errors.js';
import { stateDir } from './paths.js';

export interface TrustEntry {
  /** The file's real path. */
  path: string;
  sha256: string;
  /** What the trusted content granted (config/grants.ts), shown in later diffs. */
  grants: string[];
  trusted_at: string;
}

const VERSION = 1;

export function trustStorePath(env: NodeJS.ProcessEnv = process.env): string {
  return join(stateDir(env), 'trusted-configs.json');
}

function invalid(file: string, why: string): LaunchError {
  return new LaunchError(`trust store ${file}: ${why}; remove it and trust your configuration files again (latchgate trust FILE)`);
}

function checkEntry(file: string, e: unknown, i: number): TrustEntry {
  const x = e as Record<string, unknown>;
  const ok =
    x !== null && typeof x === 'object' &&
    typeof x.path === 'string' && x.path.startsWith('/') &&
    typeof x.sha256 === 'string' && /^[0-9a-f]{64}$/.test(x.sha256) &&
    Array.isArray(x.grants) && x.grants.every((g) => typeof g === 'string') &&
    typeof x.trusted_at === 'string';
  if (!ok) throw invalid(file, `entry ${i} is not {path, sha256, grants, trusted_at}`);
  return { path: x.path as string, sha256: x.sha256 as string, grants: x.grants as string[], trusted_at: x.trusted_at as string };
}

/** The entries; none when the store does not exist yet. */
export function readTrustStore(file: string): TrustEntry[] {
  let fd: number;
  try {
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    throw invalid(file, code === 'ELOOP' ? 'is a symlink' : `cannot read it (${code})`);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw invalid(file, 'not a regular file');
    if (st.uid !== process.getuid!()) throw invalid(file, `owned by uid ${st.uid}, not by you (uid ${process.getuid!()})`);
    if (st.mode & 0o022) throw invalid(file, `writable by others (mode ${(st.mode & 0o777).toString(8)})`);
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  let doc: { version?: unknown; configs?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    throw invalid(file, 'not valid JSON');
  }
  if (doc?.version !== VERSION || !Array.isArray(doc.configs)) throw invalid(file, `expected {"version": ${VERSION}, "configs": [...]}`);
  return doc.configs.map((e, i) => checkEntry(file, e, i));
}

export function writeTrustStore(file: string, entries: readonly TrustEntry[]): void {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.trusted-configs.json.${process.pid}.${randomBytes(6).toString('hex')}`);
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    try {
      writeSync(fd, JSON.stringify({ version: VERSION, configs: entries }, null, 2) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  const dfd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
