// Receipt verification on the client's side, with the gate's published
// receipt keys (JWKS entries: Ed25519 `x`, `kid`, `retired_at` once retired):
// the result_hash recomputed over the receipt (RFC 8785, either format, as
// src/ledger/receipt.ts computes it), the signature over its ASCII hex, and a
// key that was not retired before the receipt's latest time.
import { createPublicKey, verify } from 'node:crypto';
import { latestTime } from '../keys/store.js';
import { computeResultHash, ReceiptFormatError } from '../ledger/receipt.js';

/** Receipt keys by kid, as GET /.well-known/latchgate-receipt-keys.json lists them. */
export type ReceiptKeySet = ReadonlyMap<string, Record<string, unknown>>;

export type ReceiptVerification = { ok: true; kid: string } | { ok: false; reason: string };

export function verifyReceiptWith(keys: ReceiptKeySet, receipt: Record<string, unknown>): ReceiptVerification {
  let expected: string;
  try {
    expected = computeResultHash(receipt);
  } catch (e) {
    return { ok: false, reason: e instanceof ReceiptFormatError ? e.message : `its fields cannot be canonicalised: ${(e as Error).message}` };
  }
  if (receipt.result_hash !== expected) return { ok: false, reason: 'result_hash does not match the receipt fields: the receipt was edited' };
  const kid = receipt.signing_key_id;
  const sig = receipt.receipt_signature;
  if (typeof kid !== 'string' || typeof sig !== 'string' || !/^[0-9a-f]{128}$/.test(sig)) return { ok: false, reason: 'the receipt has no signing_key_id or no Ed25519 signature' };
  const jwk = keys.get(kid);
  if (!jwk) return { ok: false, reason: `key ${kid} is not among the gate's receipt keys` };
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') return { ok: false, reason: `key ${kid} is not an Ed25519 public key` };
  if (jwk.retired_at !== undefined) {
    const at = latestTime(receipt.started_at, receipt.finished_at);
    if (!(at <= Date.parse(String(jwk.retired_at)))) return { ok: false, reason: `key ${kid} was retired at ${String(jwk.retired_at)}, before this receipt's time` };
  }
  let good: boolean;
  try {
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
    good = verify(null, Buffer.from(expected, 'ascii'), pub, Buffer.from(sig, 'hex'));
  } catch (e) {
    return { ok: false, reason: `key ${kid} cannot be used: ${(e as Error).message}` };
  }
  return good ? { ok: true, kid } : { ok: false, reason: `the Ed25519 signature does not verify with key ${kid}` };
}
