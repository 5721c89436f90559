// The client side of DPoP: a key pair and proofs for gate requests. Used by
// the tests, the CLI and the SDK.
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
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

/** A fresh ES256 (P-256) DPoP key pair. */
export async function createDpopKey(): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const j = await exportJWK(publicKey);
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
  return new SignJWT(payload)
    .setProtectedHeader({ typ: 'dpop+jwt', alg, jwk: publicJwk })
    .sign(privateKey);
}
