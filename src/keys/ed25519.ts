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

const P = (1n << 255n) - 19n;
/** y of the points of order 8 (the other two order-8 points have p - this). */
const Y8 = 0x7a03ac9277fdc74ec6cc392cfa53202a0f67100d760b3cba4fd84d3d706a17c7n;
/** The y of the eight points of small order: the identity (1), order 2 (-1), order 4 (0), order 8. */
const SMALL_ORDER_Y = new Set([1n, P - 1n, 0n, Y8, P - Y8]);

/**
 * Whether a 32-byte point encoding (RFC 8032 5.1.2) has y not reduced
 * (y >= p) or is a point of small order, whatever x's sign bit says. Such a
 * key or R makes forgeries possible where the equation is checked as is, and
 * OpenSSL releases differ on them (3.0 accepts some, newer ones refuse):
 * refused here, the result is the same on every Node.
 */
export function weakEd25519Point(enc: Uint8Array): boolean {
  if (enc.length !== 32) return true;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? enc[i]! & 0x7f : enc[i]!);
  return y >= P || SMALL_ORDER_Y.has(y);
}

const weakKeys = new WeakMap<KeyObject, boolean>();
const weakKey = (key: KeyObject): boolean => {
  let weak = weakKeys.get(key);
  if (weak === undefined) weakKeys.set(key, (weak = weakEd25519Point(rawPublicKey(key))));
  return weak;
};

/**
 * Plain Ed25519 verification (RFC 8032, as OpenSSL implements it: S >= L and
 * non-canonical R rejected, cofactorless equation), with one policy on every
 * OpenSSL: a key or R of small order, or a key with y not reduced, is not
 * valid (weakEd25519Point). The store's verify() and EdDSA DPoP proofs go
 * through here. Never throws: a key or signature of the wrong length, or one
 * that cannot be decoded, is simply not valid.
 */
export function verifyEd25519(publicKey: KeyObject | Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== 64 || weakEd25519Point(sig.subarray(0, 32))) return false;
  try {
    if (publicKey instanceof Uint8Array ? weakEd25519Point(publicKey) : weakKey(publicKey)) return false;
    const key = publicKey instanceof Uint8Array ? ed25519PublicKeyFromRaw(publicKey) : publicKey;
    return cryptoVerify(null, msg, key, sig);
  } catch {
    return false;
  }
}
