// The named secrets of a SOPS document: its top-level keys whose values are
// scalars the file keeps encrypted, each as the text sops prints for it
// (stores.ValToString: ints in decimal, floats like 1.5 or 2.0, true/false).
// Nested maps and lists are not secrets, nor is the binary store's one `data`
// value, nor a value left unencrypted (`NAME_unencrypted`, or outside an
// encrypted_regex): the MAC covers its value but not its name, so its name
// could be changed unseen.
import { SecretsError } from './errors.js';
import { typedTrees, type SopsDocument } from './sops-read.js';
import { extractPath } from './sops-tree.js';
import { isMap, scalarText } from './sops-value.js';

export { SecretsError } from './errors.js';

export function secretValues(doc: SopsDocument): Map<string, string> {
  const typed = typedTrees.get(doc);
  if (!typed) throw new SecretsError('malformed_file', 'secretValues: pass the document readSopsFile returned (not a copy): only it carries which values were encrypted');
  const out = new Map<string, string>();
  if (doc.format === 'binary') return out;
  for (const [k, v] of typed.plain) {
    if (v === null || isMap(v) || Array.isArray(v) || typed.unencrypted.has(extractPath([k]))) continue;
    out.set(k, scalarText(v));
  }
  return out;
}
