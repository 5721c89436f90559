// Format-2 execution receipts, checked with nothing but the receipt and a
// public key (RFC 8037 OKP JWK):
//   result_hash        lowercase hex SHA-256 of the RFC 8785 form of the
//                      receipt without result_hash, receipt_signature and
//                      signing_key_id (every other member is covered)
//   receipt_signature  Ed25519 over the ASCII bytes of result_hash, lowercase hex
//   signing_key_id     the RFC 7638 thumbprint of the signing key
// Standalone: no Node API.
import { decodeBase64Url, encodeBase64Url } from './base64.js';
import { canonicalize } from './jcs.js';
import { ed25519Verify, sha256 } from './primitives.js';

export const RECEIPT_FORMAT = 2;
const utf8 = new TextEncoder();

/** The members result_hash does not cover: the hash itself and what signs it. */
const UNHASHED = new Set(['result_hash', 'receipt_signature', 'signing_key_id']);

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function fromHex(text: string): Uint8Array | null {
  if (!/^(?:[0-9a-f]{2})*$/.test(text)) return null;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The result_hash a format-2 receipt must carry. Throws CanonicalizationError for a value without a JSON form. */
export function receiptResultHash(receipt: Record<string, unknown>): string {
  const covered = Object.fromEntries(Object.entries(receipt).filter(([k]) => !UNHASHED.has(k)));
  return toHex(sha256(utf8.encode(canonicalize(covered))));
}

/** "sha256:<hex>" of a value's RFC 8785 form: the gate's request_hash of a request body. */
export function canonicalSha256(value: unknown): string {
  return `sha256:${toHex(sha256(utf8.encode(canonicalize(value))))}`;
}

/** The RFC 7638 thumbprint of an Ed25519 public key (kty OKP, RFC 8037): what latchgate calls its kid. */
export function ed25519Thumbprint(publicKey: Uint8Array): string {
  return encodeBase64Url(sha256(utf8.encode(`{"crv":"Ed25519","kty":"OKP","x":"${encodeBase64Url(publicKey)}"}`)));
}

/** The 32-byte key of an Ed25519 JWK's "x", or null. */
export function jwkPublicKey(x: string): Uint8Array | null {
  const raw = decodeBase64Url(x);
  return raw && raw.length === 32 ? raw : null;
}

/** Whether a lowercase-hex signature over the ASCII bytes of result_hash verifies with the key. */
export function receiptSignatureValid(publicKey: Uint8Array, resultHash: string, signatureHex: string): boolean {
  const sig = /^[0-9a-f]{128}$/.test(signatureHex) ? fromHex(signatureHex) : null;
  return sig !== null && ed25519Verify(publicKey, utf8.encode(resultHash), sig);
}
