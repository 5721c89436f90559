// Where the age identities that open secrets files come from, as sops looks
// for them: $SOPS_AGE_KEY (the key file's text inline), $SOPS_AGE_KEY_FILE,
// then the configured age_key_file. Every key found is used. A key file that
// its group or others may read or write, or that another user owns, is
// refused: whoever can read or replace it can read every secret. The file is
// opened once and checked and read through that one descriptor, so a swap
// between the check and the read (to a FIFO, to a 0644 file) is not seen.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
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

const MAX_KEY_FILE_BYTES = 1024 * 1024;

/** The identities of a key file; a missing file is none unless required. */
function readKeyFile(file: string, origin: string, required: boolean): AgeIdentity[] {
  const refuse = (code: 'bad_identity' | 'identity_file_permissions', why: string) => new SecretsError(code, `${file} (${origin}): ${why}`, { file });
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO opens at once (and is refused below) instead of waiting for a writer.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !required) return [];
    throw refuse('bad_identity', `cannot read the age key file: ${code ?? (e as Error).message}`);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw refuse('bad_identity', 'not a regular file');
    if ((st.mode & 0o077) !== 0) {
      throw refuse('identity_file_permissions', `the age key file is open to its group or to others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); anyone who reads it reads every secret: chmod 600 ${file}`);
    }
    const me = process.geteuid?.() ?? st.uid;
    if (st.uid !== me && st.uid !== 0) {
      throw refuse('identity_file_permissions', `the age key file belongs to uid ${st.uid}, not to you (uid ${me}) or root; whoever owns it can replace the key. Use your own copy (chown, or age-keygen a new one)`);
    }
    if (st.size > MAX_KEY_FILE_BYTES) throw refuse('bad_identity', 'too large for an age key file');
    const buf = Buffer.alloc(Number(st.size) + 1);
    let n = 0;
    for (let r; n < buf.length && (r = readSync(fd, buf, n, buf.length - n, null)) > 0;) n += r;
    if (n > st.size) throw refuse('bad_identity', 'it grew while being read; try again');
    text = buf.subarray(0, n).toString('utf8');
  } catch (e) {
    if (e instanceof SecretsError) throw e;
    throw refuse('bad_identity', `cannot read the age key file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  } finally {
    closeSync(fd);
  }
  return parseAgeIdentities(text, file);
}
