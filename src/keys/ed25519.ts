// Ed25519 public keys as the key store holds them (raw 32 bytes, base64url
// in a JWK's "x"), their key id, and plain signature verification.
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';

export class KeyStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyStoreError';
  }
}

// DER SubjectPublicKeyInfo prefix of an Ed25519 key (RFC 8410): the raw 32 bytes follow.
export const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** SPKI KeyObject from a 32-byte raw Ed25519 public key; throws on a wrong length. */
export function ed25519PublicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new KeyStoreError(`an Ed25519 public key is 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(raw)]), format: 'der', type: 'spki' });
}

/** The 32 raw bytes of an Ed25519 public KeyObject. */
export function rawPublicKey(publicKey: KeyObject): Buffer {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  if (der.length !== 44 || !der.subarray(0, 12).equals(ED25519_SPKI_PREFIX)) throw new KeyStoreError('not an Ed25519 public key');
  return der.subarray(12);
}

/**
 * The key id of every key the store makes: the RFC 7638 JWK thumbprint
 * (base64url SHA-256 of the JSON of the required members in lexicographic
 * order; for an OKP key RFC 8037 §2 names crv, kty and x).
 */
export function jwkThumbprint(publicKey: KeyObject | Uint8Array): string {
  const raw = publicKey instanceof Uint8Array ? publicKey : rawPublicKey(publicKey);
  const x = Buffer.from(raw).toString('base64url');
  return createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`, 'utf8').digest('base64url');
}

/**
 * Plain Ed25519 verification (RFC 8032, as OpenSSL implements it: S >= L and
 * non-canonical encodings rejected, cofactorless equation). The store's
 * verify() goes through here too. Never throws: a key or signature of the
 * wrong length, or one that cannot be decoded, is simply not valid.
 */
export function verifyEd25519(publicKey: KeyObject | Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== 64) return false;
  try {
    const key = publicKey instanceof Uint8Array ? ed25519PublicKeyFromRaw(publicKey) : publicKey;
    return cryptoVerify(null, msg, key, sig);
  } catch {
    return false;
  }
}
