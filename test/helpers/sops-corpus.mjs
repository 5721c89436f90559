// The SOPS + age conformance corpus (real sops files with published test
// keys), read in place: $LATCHGATE_TESTDATA/sops-age, else ../shared/testdata
// beside the repository. Absent: tests skip, saying so.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAgeIdentities } from '../../dist/secrets/age.js';
import { testdata } from './testdata.mjs';

export const CORPUS = testdata('sops-age');
export const corpusMissing = existsSync(join(CORPUS, 'expected.json')) ? null : `the sops-age corpus is not at ${CORPUS} (set LATCHGATE_TESTDATA)`;

/** expected.json's entries; [] when the corpus is absent. */
export function corpusEntries() {
  if (corpusMissing) return [];
  return JSON.parse(readFileSync(join(CORPUS, 'expected.json'), 'utf8')).files;
}

export const corpusPath = (rel) => join(CORPUS, rel);
export const corpusIdentities = (rel) => parseAgeIdentities(readFileSync(corpusPath(rel), 'utf8'), rel);

/** Files that are SOPS documents themselves, with X25519 keys: every one but the embedded and the post-quantum. */
export function sopsFiles() {
  return corpusEntries().filter((e) => e.plaintext !== null && !e.file.startsWith('kustomize-controller/inside/'));
}
