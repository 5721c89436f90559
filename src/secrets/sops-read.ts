// Reading a SOPS file encrypted to age recipients, all or nothing: the data
// key from `sops.age[].enc` (age), every encrypted leaf authenticated
// against its key path, every leaf the crypt rule says is encrypted checked
// to be so, and the MAC over the whole plaintext checked before any value
// is returned. Each failure is its own SecretsError code naming the file and
// the key path.
import { readFile, stat } from 'node:fs/promises';
import { ageDecrypt, dearmor, newUnwrapBudget, type AgeIdentity } from './age.js';
import { SecretsError } from './errors.js';
import { lastModifiedAad, readMetadata, type SopsMetadata } from './sops-metadata.js';
import { formatOf, parseStore, type SopsFormat } from './sops-stores.js';
import { decryptTree, toPlainJs } from './sops-tree.js';
import { decryptEnc, type SopsMap } from './sops-value.js';

export type { AgeIdentity } from './age.js';
export type { SopsFormat } from './sops-stores.js';

export interface SopsReadOptions {
  file: string;
  identities: AgeIdentity[];
  /** The store; default: by the file's extension, as sops picks it (.yaml/.yml, .json, .env, else binary). */
  format?: SopsFormat;
}

export interface SopsDocument {
  format: SopsFormat;
  /** The plaintext, in document order (integer-like keys aside: plain objects put those first). */
  tree: unknown;
  lastModified: string;
  /** The age recipients (`age1...`) the data key is encrypted to. */
  recipients: string[];
}

/** What the writer needs besides the document: the typed tree, the data key and the metadata. */
export interface OpenedSops {
  document: SopsDocument;
  plain: SopsMap;
  dataKey: Buffer;
  metadata: SopsMetadata;
}

/**
 * A secrets file is small; past this it is refused before it is read whole.
 * Parsing is linear but not free (about 30 ms a MiB of YAML), and the gate
 * reads the file on its main thread.
 */
export const MAX_SOPS_FILE_BYTES = 1024 * 1024;

/**
 * What secretValues needs of each document read here: the typed tree (ints
 * and floats print differently) and the key paths of the values the file
 * keeps unencrypted (`["name"]`).
 */
export const typedTrees = new WeakMap<SopsDocument, { plain: SopsMap; unencrypted: ReadonlySet<string> }>();

export async function readSopsFile(o: SopsReadOptions): Promise<SopsDocument> {
  return (await openSopsFile(o)).document;
}

export async function openSopsFile(o: SopsReadOptions): Promise<OpenedSops> {
  let text: string;
  try {
    const st = await stat(o.file);
    if (!st.isFile()) throw new SecretsError('file_unreadable', `${o.file}: not a regular file`, { file: o.file });
    if (st.size > MAX_SOPS_FILE_BYTES) throw new SecretsError('file_too_large', `${o.file}: ${st.size} bytes, more than the ${MAX_SOPS_FILE_BYTES} a secrets file may have`, { file: o.file });
    text = await readFile(o.file, 'utf8');
  } catch (e) {
    if (e instanceof SecretsError) throw e;
    const err = e as NodeJS.ErrnoException;
    const fix = err.code === 'ENOENT' ? ' (create it with `latchgate secrets init`, or set [secrets] sops_file in latchgate.toml)' : '';
    throw new SecretsError('file_unreadable', `${o.file}: cannot read the secrets file: ${err.code ?? err.message}${fix}`, { file: o.file });
  }
  return decryptSopsText(text, { file: o.file, format: o.format ?? formatOf(o.file), identities: o.identities });
}

/** The same from the file's text (a SOPS document embedded elsewhere, a test). */
export function decryptSopsText(text: string, o: { file: string; format: SopsFormat; identities: readonly AgeIdentity[] }): OpenedSops {
  const { file } = o;
  if (text.length > MAX_SOPS_FILE_BYTES) throw new SecretsError('file_too_large', `${file}: more than ${MAX_SOPS_FILE_BYTES} bytes`, { file });
  const { data, metadata: raw } = parseStore(o.format, text, file);
  const metadata = readMetadata(raw, file);
  const macAad = lastModifiedAad(metadata.lastmodified, file);
  const dataKey = openDataKey(metadata, o.identities, file);
  const { plain, mac, unencrypted } = decryptTree(data, dataKey, { rule: metadata.rule, macOnlyEncrypted: metadata.macOnlyEncrypted, file });
  if (metadata.macOnlyEncrypted && unencrypted.length > 0) {
    throw new SecretsError('mac_only_encrypted', `${file}: the file sets mac_only_encrypted, so its unencrypted values (${unencrypted.slice(0, 3).join(', ')}${unencrypted.length > 3 ? ', ...' : ''}) are covered by no MAC and anyone could change them; latchgate refuses it: re-encrypt without --mac-only-encrypted`, { file, keyPath: unencrypted[0]! });
  }
  let stored: string;
  try {
    const d = decryptEnc(metadata.mac, dataKey, macAad, { file, keyPath: 'sops.mac' });
    if (d.type !== 'str') throw new SecretsError('bad_value', `${file}: sops.mac is not of type str`, { file, keyPath: 'sops.mac' });
    stored = d.bytes.toString('latin1');
  } catch (e) {
    if (e instanceof SecretsError && e.code === 'value_auth_failed') {
      throw new SecretsError('mac_auth_failed', `${file}: the MAC (sops.mac) does not authenticate: sops.mac, or sops.lastmodified (the MAC's associated data), was changed after sops wrote the file; restore the file from version control`, { file, keyPath: 'sops.mac' });
    }
    throw e;
  }
  if (stored !== mac) {
    throw new SecretsError('mac_mismatch', `${file}: MAC mismatch: the values are not the ones the MAC was made over (a value was added, removed, reordered or replaced without sops); restore the file from version control`, { file, keyPath: 'sops.mac' });
  }
  const document: SopsDocument = {
    format: o.format,
    tree: toPlainJs(plain),
    lastModified: metadata.lastmodified,
    recipients: metadata.age.map((a) => a.recipient),
  };
  typedTrees.set(document, { plain, unencrypted: new Set(unencrypted) });
  return { document, plain, dataKey, metadata };
}

/**
 * The 32-byte data key from the first age entry an identity opens (the
 * recipient strings are hints, as for sops: every entry is tried, those
 * naming one of our identities first; all share one budget of tries,
 * age.ts MAX_UNWRAP_TRIES). When none
 * opens, the error is the most telling one: a failure after an identity
 * matched (the enc field was altered), an entry whose recipient is one of
 * ours that did not open, an unsupported recipient type, else "wrong key".
 */
function openDataKey(md: SopsMetadata, identities: readonly AgeIdentity[], file: string): Buffer {
  if (md.age.length === 0) {
    const others = [...md.others.keys()];
    throw new SecretsError('no_age_recipient', `${file}: the data key is encrypted to no age recipient${others.length ? ` (only to ${others.join(', ')})` : ''}; latchgate reads age only: add one with \`sops updatekeys\` (an age key in .sops.yaml)`, { file });
  }
  const ours = new Set(identities.map((i) => i.publicKey));
  const failures: { i: number; error: SecretsError }[] = [];
  const budget = newUnwrapBudget();
  const order = [...md.age.entries()].sort(([, a], [, b]) => Number(ours.has(b.recipient)) - Number(ours.has(a.recipient)));
  for (const [i, entry] of order) {
    try {
      const key = ageDecrypt(dearmor(entry.enc), identities, budget);
      if (key.length !== 32) throw new SecretsError('bad_data_key', `the age file holds ${key.length} bytes, not a 32-byte data key`);
      return key;
    } catch (e) {
      if (!(e instanceof SecretsError)) throw e;
      failures.push({ i, error: e });
      if (e.code === 'too_many_stanzas') break; // the budget is spent: no entry after it is tried
    }
  }
  const describe = (f: { i: number; error: SecretsError }, code = f.error.code) =>
    new SecretsError(code, `${file}: sops.age[${f.i}].enc (recipient ${md.age[f.i]!.recipient.slice(0, 20)}...): ${f.error.message}`, { file, keyPath: `sops.age[${f.i}].enc` });
  const tooMuch = failures.find((f) => f.error.code === 'too_many_stanzas');
  if (tooMuch) throw describe(tooMuch);
  const afterMatch = failures.find((f) => ['age_header_mac', 'age_payload', 'bad_data_key'].includes(f.error.code));
  if (afterMatch) throw describe(afterMatch);
  const mine = failures.find((f) => ours.has(md.age[f.i]!.recipient));
  if (mine) {
    if (mine.error.code === 'no_matching_identity') {
      throw new SecretsError('age_stanza', `${file}: sops.age[${mine.i}].enc is encrypted to ${md.age[mine.i]!.recipient}, the public key of your identity, but it does not open: its age stanza was altered; restore the file from version control`, { file, keyPath: `sops.age[${mine.i}].enc` });
    }
    throw describe(mine);
  }
  const unsupported = failures.find((f) => f.error.code === 'unsupported_recipient');
  if (unsupported) throw describe(unsupported);
  if (identities.length === 0) throw new SecretsError('no_identity', `${file}: no age identity to decrypt with`, { file });
  throw new SecretsError('no_matching_identity', `${file}: wrong key: none of your age identities (${identities.map((i) => `${i.publicKey} from ${i.source}`).join('; ')}) is a recipient of the file (recipients: ${md.age.map((a) => a.recipient).join(', ')}); use the key of one of those recipients, or have its holder add yours (\`latchgate secrets recipients add\`)`, { file });
}
