// Where the age identities that open secrets files come from, as sops looks
// for them: $SOPS_AGE_KEY (the key file's text inline), $SOPS_AGE_KEY_FILE,
// then the configured age_key_file. Every key found is used. A key file that
// its group or others may read or write is refused: whoever can read it can
// read every secret.
import { readFileSync, statSync } from 'node:fs';
import { parseAgeIdentities, type AgeIdentity } from './age.js';
import { SecretsError } from './errors.js';

export type { AgeIdentity } from './age.js';

export function loadAgeIdentities(o: { ageKeyFile?: string; env?: Record<string, string | undefined> }): AgeIdentity[] {
  const env = o.env ?? process.env;
  const looked: string[] = [];
  const found: AgeIdentity[] = [];
  const inline = env.SOPS_AGE_KEY;
  if (inline && inline.trim() !== '') {
    const ids = parseAgeIdentities(inline, '$SOPS_AGE_KEY');
    found.push(...ids);
    looked.push(`$SOPS_AGE_KEY${ids.length ? '' : ' (no key in it)'}`);
  } else {
    looked.push('$SOPS_AGE_KEY (unset)');
  }
  const envFile = env.SOPS_AGE_KEY_FILE;
  if (envFile) {
    const ids = readKeyFile(envFile, '$SOPS_AGE_KEY_FILE', true);
    found.push(...ids);
    looked.push(`$SOPS_AGE_KEY_FILE=${envFile}${ids.length ? '' : ' (no key in it)'}`);
  } else {
    looked.push('$SOPS_AGE_KEY_FILE (unset)');
  }
  if (o.ageKeyFile && o.ageKeyFile !== envFile) {
    const ids = readKeyFile(o.ageKeyFile, '[secrets] age_key_file', false);
    found.push(...ids);
    looked.push(`${o.ageKeyFile} ([secrets] age_key_file${ids.length ? '' : ': no such file, or no key in it'})`);
  }
  if (found.length === 0) {
    throw new SecretsError('no_identity', `no age identity found; looked at: ${looked.join(', ')}. Create one with \`latchgate secrets init\`, or point SOPS_AGE_KEY_FILE or [secrets] age_key_file in latchgate.toml at your age key file`);
  }
  const seen = new Set<string>();
  return found.filter((id) => !seen.has(id.publicKey) && (seen.add(id.publicKey), true));
}

/** The identities of a key file; a missing file is none unless required. */
function readKeyFile(file: string, origin: string, required: boolean): AgeIdentity[] {
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new SecretsError('bad_identity', `${file} (${origin}): not a regular file`, { file });
    if ((st.mode & 0o077) !== 0) {
      throw new SecretsError('identity_file_permissions', `${file} (${origin}): the age key file is open to its group or to others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); anyone who reads it reads every secret: chmod 600 ${file}`, { file });
    }
    if (st.size > 1024 * 1024) throw new SecretsError('bad_identity', `${file} (${origin}): too large for an age key file`, { file });
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof SecretsError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !required) return [];
    throw new SecretsError('bad_identity', `${file} (${origin}): cannot read the age key file: ${code ?? (e as Error).message}`, { file });
  }
  return parseAgeIdentities(text, file);
}
