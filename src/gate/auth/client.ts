// The client side of DPoP: a key pair and proofs for gate requests. Used by
// the tests, the CLI and the SDK. An ES256 proof with a P-256 signing key is
// signed with node:crypto at once (RFC 7515 compact serialization, the
// signature as R || S per RFC 7518 §3.4), not as a WebCrypto job on the
// libuv thread pool: a proof is on every request's path, and the pool's
// hand-off costs more than the signature. Any other key or algorithm goes
// through jose.
import { KeyObject, generateKeyPairSync, randomUUID, sign, webcrypto } from 'node:crypto';
import { SignJWT, type JWK } from 'jose';
import { accessTokenHash } from './dpop.js';
import type { DpopPublicJwk } from './jwk.js';

export interface DpopKey {
  /** Signs proofs (not extractable). */
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** The public JWK to send as dpop_jwk when asking for a lease. */
  jwk: DpopPublicJwk;
  alg: 'ES256';
}

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/**
 * A fresh ES256 (P-256) DPoP key pair. Made with node:crypto, whose private
 * KeyObject is kept here to sign with (es256Signers); what the caller gets is
 * a CryptoKey of it that WebCrypto will not export. (Node 24 deprecates
 * turning a non-extractable CryptoKey into a KeyObject, DEP0204.)
 */
export async function createDpopKey(): Promise<DpopKey> {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pkcs8 = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, P256, false, ['sign']);
  pkcs8.fill(0);
  const publicKey = await webcrypto.subtle.importKey('spki', pair.publicKey.export({ format: 'der', type: 'spki' }), P256, true, ['verify']);
  es256Signers.set(privateKey, pair.privateKey);
  const j = pair.publicKey.export({ format: 'jwk' });
  return { privateKey, publicKey, jwk: { kty: 'EC', crv: 'P-256', x: j.x!, y: j.y! }, alg: 'ES256' };
}

export interface MakeProofInput {
  /** The private key (CryptoKey, or a DpopKey whose privateKey is used). */
  key: CryptoKey | DpopKey;
  /** Its public JWK (defaults to key.jwk for a DpopKey). */
  jwk?: JWK | DpopPublicJwk;
  method: string;
  /** The absolute URL of the request (base URL + path). */
  url: string;
  /** The lease the proof is presented with (ath binds them). */
  leaseJwt?: string;
  /** Unix seconds (default: now). */
  iat?: number;
  jti?: string;
  /** ES256 (default) or EdDSA for an Ed25519 key. */
  alg?: 'ES256' | 'EdDSA';
}

/** A DPoP proof JWT for one request. */
export async function makeProof(input: MakeProofInput): Promise<string> {
  const isDpopKey = (k: CryptoKey | DpopKey): k is DpopKey => 'privateKey' in k;
  const privateKey = isDpopKey(input.key) ? input.key.privateKey : input.key;
  const jwk = input.jwk ?? (isDpopKey(input.key) ? input.key.jwk : undefined);
  if (!jwk) throw new TypeError('makeProof needs the public jwk');
  const alg = input.alg ?? (jwk.kty === 'OKP' ? 'EdDSA' : 'ES256');
  const payload: Record<string, unknown> = {
    jti: input.jti ?? randomUUID(),
    htm: input.method.toUpperCase(),
    htu: input.url,
    iat: input.iat ?? Math.floor(Date.now() / 1000),
  };
  if (input.leaseJwt !== undefined) payload.ath = accessTokenHash(input.leaseJwt);
  const j = jwk as JWK;
  const publicJwk: JWK = j.kty === 'EC' ? { kty: 'EC', crv: j.crv, x: j.x, y: j.y } : { kty: j.kty, crv: j.crv, x: j.x };
  const header = { typ: 'dpop+jwt', alg, jwk: publicJwk };
  const signer = alg === 'ES256' ? es256Signer(privateKey) : undefined;
  if (signer) {
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
    return `${input}.${sign('sha256', Buffer.from(input), { key: signer, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  }
  return new SignJWT(payload).setProtectedHeader(header).sign(privateKey);
}

const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

/** The KeyObject of each CryptoKey signed with so far: made with it (createDpopKey), or an extractable key's own. The CryptoKey stays as it was. */
const es256Signers = new WeakMap<CryptoKey, KeyObject>();

/**
 * The key to sign ES256 with synchronously: a private ECDSA P-256 key allowed
 * to sign, made by createDpopKey or extractable; undefined for any other
 * (jose signs it through WebCrypto, or checks and refuses it).
 */
function es256Signer(key: CryptoKey): KeyObject | undefined {
  let k = es256Signers.get(key);
  if (k) return k;
  const a = key.algorithm as EcKeyAlgorithm;
  if (!key.extractable || key.type !== 'private' || a.name !== 'ECDSA' || a.namedCurve !== 'P-256' || !key.usages.includes('sign')) return undefined;
  k = KeyObject.from(key);
  es256Signers.set(key, k);
  return k;
}
