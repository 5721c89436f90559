// The redaction matchers of every secret a source holds (SecretSource
// redactionValues), compiled once per value and kept per source across the
// calls of its gate, not rebuilt per call. A value the source no longer
// lists is forgotten the next time its matchers are asked for.
import { KeyMatcher } from '../egress/key-redaction.js';
import { checkSecretValue } from './http-headers.js';
import type { SecretSource } from './secret-source.js';

const caches = new WeakMap<SecretSource, Map<string, KeyMatcher>>();

/** Whether a value can be searched for: what checkSecretValue takes (no other value is ever filled by the host). */
function searchable(v: string): boolean {
  try {
    checkSecretValue('', v);
    return true;
  } catch {
    return false; // too short to search for without eating ordinary text, or never sendable by the host
  }
}

/** Matchers for every value of `source`, and for `extra` (the values this call filled, which a change meanwhile may have replaced). */
export async function redactorsFor(source: SecretSource, extra: readonly string[]): Promise<KeyMatcher[]> {
  let cache = caches.get(source);
  if (!cache) caches.set(source, (cache = new Map()));
  const values = new Set([...(await source.redactionValues()), ...extra]);
  const out: KeyMatcher[] = [];
  for (const v of values) {
    if (!searchable(v)) continue;
    let m = cache.get(v);
    if (m === undefined) cache.set(v, (m = new KeyMatcher(v)));
    out.push(m);
  }
  for (const v of cache.keys()) if (!values.has(v)) cache.delete(v);
  return out;
}
