// The keys an auditor trusts, given as text: a receipt key history (the JWKS
// latchgate publishes at /.well-known/latchgate-receipt-keys.json, or one
// JWK of it) and checkpoint verifier keys (<name>+<hex8>+<base64>, one per
// line). The CLI (--trusted-key) and the verify page read them the same way.
// Standalone: no Node API.
import { BundleFormatError, readJwk, type ReceiptKeyJwk } from './bundle-format.js';
import { JsonSyntaxError, parseJson } from './json.js';
import { NoteError, parseVerifierKey } from './note.js';
import { ed25519Verify, sha256 } from './primitives.js';

export interface TrustedKeys {
  /** Receipt keys, as key history entries (their retired_at counts). */
  receiptKeys: ReceiptKeyJwk[];
  /** Checkpoint verifier keys. */
  checkpointKeys: string[];
}

export const noTrustedKeys = (): TrustedKeys => ({ receiptKeys: [], checkpointKeys: [] });

/** Reads one text of trusted keys; `source` names it in errors (a file name, "--trusted-key 2"). */
export function parseTrustedKeys(text: string, source: string): TrustedKeys {
  const out = noTrustedKeys();
  const t = text.trim();
  if (t === '') throw new BundleFormatError(source, 'empty: expected a JWK, a JWKS ({"keys": [...]}) or checkpoint verifier keys, one per line');
  if (t.startsWith('{')) {
    let doc: unknown;
    try {
      doc = parseJson(t);
    } catch (e) {
      if (e instanceof JsonSyntaxError) throw new BundleFormatError(source, `not a JSON document: ${e.message}`);
      throw e;
    }
    const keys = (doc as { keys?: unknown }).keys;
    if (keys === undefined) out.receiptKeys.push(readJwk(`${source} $`, doc));
    else if (!Array.isArray(keys)) throw new BundleFormatError(`${source} $.keys`, 'expected an array of JWKs');
    else keys.forEach((k, i) => out.receiptKeys.push(readJwk(`${source} $.keys[${i}]`, k)));
    if (out.receiptKeys.length === 0) throw new BundleFormatError(`${source} $.keys`, 'empty: no key to trust');
    return out;
  }
  t.split('\n').forEach((line, i) => {
    const vkey = line.trim();
    if (vkey === '' || vkey.startsWith('#')) return;
    try {
      parseVerifierKey(vkey, sha256, ed25519Verify);
    } catch (e) {
      if (e instanceof NoteError) throw new BundleFormatError(`${source} line ${i + 1}`, `${e.message} (expected a checkpoint verifier key, or a JSON JWK or JWKS)`);
      throw e;
    }
    out.checkpointKeys.push(vkey);
  });
  return out;
}

/** The keys of several texts together. */
export function mergeTrustedKeys(...all: TrustedKeys[]): TrustedKeys {
  return { receiptKeys: all.flatMap((k) => k.receiptKeys), checkpointKeys: all.flatMap((k) => k.checkpointKeys) };
}
