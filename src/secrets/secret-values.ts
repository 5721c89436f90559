// The named secrets of a SOPS document: its top-level keys. A secret is an
// encrypted value of type str. Every other top-level key is still a name the
// file mentions, kept with why it is no secret (a list, a map, null, "", an
// int, a value left unencrypted): SOPS authenticates values and their key
// paths, not the tree's shape (wrapping a value into a list, adding "" or
// null, the type: field leave the MAC unchanged), so a name the file mentions
// must never be read from anywhere else; the caller refuses it, naming why.
import { SecretsError } from './errors.js';
import { typedTrees, type SopsDocument } from './sops-read.js';
import { extractPath } from './sops-tree.js';
import { isMap, type SopsNode } from './sops-value.js';
import { UnusableSecret } from './unusable-secret.js';

export { SecretsError } from './errors.js';
export { UnusableSecret, unusableError } from './unusable-secret.js';

function unusable(v: SopsNode, unencrypted: boolean): string | null {
  if (unencrypted) return 'its value is not encrypted (the MAC does not bind its name)';
  if (v === null) return 'its value is null';
  if (isMap(v)) return 'its value is a map, not a string';
  if (Array.isArray(v)) return 'its value is a list, not a string';
  if (v === '') return 'its value is empty ("", which SOPS neither encrypts nor MACs)';
  if (typeof v !== 'string') return 'its value is not of type str (secrets are strings; the type: field of ENC[] is not authenticated)';
  return null;
}

/** Every top-level name: its value, or why it is not a usable secret. */
export function secretEntries(doc: SopsDocument): Map<string, string | UnusableSecret> {
  const typed = typedTrees.get(doc);
  if (!typed) throw new SecretsError('malformed_file', 'secretValues: pass the document readSopsFile returned (not a copy): only it carries which values were encrypted');
  const out = new Map<string, string | UnusableSecret>();
  if (doc.format === 'binary') return out;
  for (const [k, v] of typed.plain) {
    const why = unusable(v, typed.unencrypted.has(extractPath([k])));
    out.set(k, why === null ? (v as string) : new UnusableSecret(why));
  }
  return out;
}

/** The usable secrets only (names and values). */
export function secretValues(doc: SopsDocument): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of secretEntries(doc)) if (typeof v === 'string') out.set(k, v);
  return out;
}
