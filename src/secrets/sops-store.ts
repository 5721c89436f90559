// The SOPS store the gate and the launcher read secrets from, built from
// [secrets] in latchgate.toml: where the file and the age key are
// (locations.ts), the identities (identities.ts), the file read all or
// nothing (sops-read.ts) and its named values (secret-values.ts), behind
// the value cache (resolver.ts). A file [secrets] sops_file names is the
// operator's choice: it must be there and open (checkSopsStore). Without
// it, the default file is used when it exists, and no store at all when it
// does not (secrets then come from the environment only).
import { lstatSync } from 'node:fs';
import type { SecretsFileConfig } from '../config/latchgate-toml.js';
import { LaunchError } from '../core/errors.js';
import { SecretsError } from './errors.js';
import { secretsLocations } from './locations.js';
import { SecretResolver } from './resolver.js';

export interface SopsStore {
  /** The value cache over the file, or undefined when there is no file to read. */
  resolver: SecretResolver | undefined;
  /** The file looked at (used or not). */
  file: string;
  /** Whether [secrets] sops_file named it. */
  configured: boolean;
}

/**
 * Whether the default file is there to be used. A path this user cannot even
 * look up (EACCES: a HOME of another user's, as `sudo -u` leaves it;
 * ENOTDIR) holds no file of this user's: no store, and the start-up line says
 * so. A file [secrets] sops_file names is never judged here: it must open.
 */
const exists = (p: string): boolean => {
  try {
    lstatSync(p);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code !== 'ENOENT' && code !== 'EACCES' && code !== 'ENOTDIR';
  }
};

/** A file that opens secrets, with what names it (for messages). */
export interface KeyFile {
  path: string;
  what: string;
}

/** The age key files that open the SOPS file (configured or default, and $SOPS_AGE_KEY_FILE), whether or not they exist. */
export function ageKeyFiles(c: SecretsFileConfig | undefined, env: NodeJS.ProcessEnv = process.env): KeyFile[] {
  const where = secretsLocations({ secrets: { sopsFile: c?.sopsFile, ageKeyFile: c?.ageKeyFile } }, env);
  return [
    { path: where.ageKeyFile, what: c?.ageKeyFile ? 'the age key file ([secrets] age_key_file)' : 'the default age key file' },
    ...(env.SOPS_AGE_KEY_FILE ? [{ path: env.SOPS_AGE_KEY_FILE, what: 'the age key file $SOPS_AGE_KEY_FILE' }] : []),
  ];
}

/** The files that hold or open the secrets (the SOPS file, the age key files), whether or not they exist: a box must not read them. */
export function secretFiles(c: SecretsFileConfig | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const where = secretsLocations({ secrets: { sopsFile: c?.sopsFile, ageKeyFile: c?.ageKeyFile } }, env);
  return [where.sopsFile, ...ageKeyFiles(c, env).map((k) => k.path)];
}

/** The store [secrets] asks for; nothing is decrypted yet. */
export function sopsStore(c: SecretsFileConfig | undefined, o: { env?: NodeJS.ProcessEnv; reloadMarker?: string } = {}): SopsStore {
  const env = o.env ?? process.env;
  const where = secretsLocations({ secrets: { sopsFile: c?.sopsFile, ageKeyFile: c?.ageKeyFile } }, env);
  const configured = c?.sopsFile !== undefined;
  if (!configured && !exists(where.sopsFile)) return { resolver: undefined, file: where.sopsFile, configured };
  const resolver = new SecretResolver({
    file: where.sopsFile,
    cacheSeconds: c?.cacheSeconds ?? 300,
    ...(o.reloadMarker ? { reloadMarker: o.reloadMarker } : {}),
    // Identities are looked up on every read: a key file replaced (rotation) is taken at once. The
    // reading code (SOPS, age, YAML) loads with the first read: a box whose user keeps no file never does.
    load: async () => {
      const [{ secretEntries }, { readSopsFile }, { loadAgeIdentities }] = await Promise.all([import('./secret-values.js'), import('./sops-read.js'), import('./identities.js')]);
      return secretEntries(await readSopsFile({ file: where.sopsFile, identities: loadAgeIdentities({ ageKeyFile: where.ageKeyFile, env }) }));
    },
  });
  return { resolver, file: where.sopsFile, configured };
}

/**
 * Reads the store's file now: a process that serves secrets does not start
 * with a file it cannot read (missing, unreadable, failing its MAC, no usable
 * age identity). Returns how many values it holds.
 */
export async function checkSopsStore(s: SopsStore, who: string): Promise<number> {
  if (!s.resolver) return 0;
  try {
    return await s.resolver.reload();
  } catch (e) {
    const why = s.configured ? 'the file [secrets] sops_file names' : 'the default secrets file (it exists)';
    const code = e instanceof SecretsError ? ` (${e.code})` : '';
    throw new LaunchError(
      `${who} does not start: ${why} cannot be used${code}: ${(e as Error).message}. Fix the file or its age key (latchgate secrets list shows whether it opens), or ${s.configured ? 'remove [secrets] sops_file from latchgate.toml' : `move ${s.file} away`} to read secrets from LATCHGATE_SECRET_* only`,
    );
  }
}

/** Where secrets come from, for start-up output: names of places, never a value. */
export function describeSources(s: SopsStore, values?: number): string {
  const file = s.resolver ? `the SOPS file ${s.file}${values === undefined ? '' : ` (${values} secret${values === 1 ? '' : 's'})`}, then ` : '';
  const none = s.resolver ? '' : ` (no SOPS file: ${s.file} does not exist)`;
  return `${file}LATCHGATE_SECRET_* in the environment${none}`;
}
