// The DPoP public keys a lease can be bound to: EC P-256 (ES256) or OKP
// Ed25519 (EdDSA), public members only. One checker shared by lease issuance
// (the request's dpop_jwk) and proof verification (the proof header's jwk).
import type { JWK } from 'jose';
import { jose } from './jose.js';
import { weakEd25519Point } from '../../keys/ed25519.js';

export type DpopPublicJwk =
  | { kty: 'EC'; crv: 'P-256'; x: string; y: string }
  | { kty: 'OKP'; crv: 'Ed25519'; x: string };

export type DpopAlgorithm = 'ES256' | 'EdDSA';

/** Members that only a private (or symmetric) key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
/** Optional members a client library may add; they take no part in the thumbprint. */
const OPTIONAL_MEMBERS = new Set(['kid', 'alg', 'use', 'key_ops', 'ext']);
/** 32 bytes, base64url without padding. */
const COORD_32 = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/**
 * Returns why `jwk` is not an acceptable DPoP public key, or undefined when it
 * is. `where` names it in the message ("dpop_jwk", "proof jwk").
 */
export function publicJwkProblem(jwk: unknown, where: string): string | undefined {
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) return `${where} must be a JSON object`;
  const o = jwk as Record<string, unknown>;
  const priv = PRIVATE_MEMBERS.filter((m) => m in o);
  if (priv.length > 0) {
    return `${where} contains private key material (${priv.join(', ')}): send the public key only`;
  }
  let members: readonly string[];
  if (o.kty === 'EC') {
    if (o.crv !== 'P-256') return `${where}.crv must be "P-256" for kty "EC"`;
    members = ['kty', 'crv', 'x', 'y'];
  } else if (o.kty === 'OKP') {
    if (o.crv !== 'Ed25519') return `${where}.crv must be "Ed25519" for kty "OKP"`;
    members = ['kty', 'crv', 'x'];
  } else {
    return `${where}.kty must be "EC" (P-256) or "OKP" (Ed25519)`;
  }
  for (const m of members.slice(2)) {
    if (typeof o[m] !== 'string' || !COORD_32.test(o[m] as string)) {
      return `${where}.${m} must be 32 bytes in base64url without padding`;
    }
  }
  if (o.kty === 'OKP' && weakEd25519Point(Buffer.from(o.x as string, 'base64url'))) {
    return `${where}.x is a point of small order or not reduced, which no Ed25519 key pair gives (signatures under it could be forged): generate a new key`;
  }
  for (const k of Object.keys(o)) {
    if (!members.includes(k) && !OPTIONAL_MEMBERS.has(k)) return `${where} has an unknown member "${k.slice(0, 32)}"`;
  }
  if (o.use !== undefined && o.use !== 'sig') return `${where}.use must be "sig" when present`;
  const alg = jwkAlgorithm(o as DpopPublicJwk);
  if (o.alg !== undefined && o.alg !== alg) return `${where}.alg must be "${alg}" when present`;
  return undefined;
}

/** The one JWS algorithm a DPoP key of this type signs with. */
export function jwkAlgorithm(jwk: DpopPublicJwk): DpopAlgorithm {
  return jwk.kty === 'EC' ? 'ES256' : 'EdDSA';
}

/** Only the members RFC 7638 hashes, in a fresh object (drops kid, alg, ...). */
export function requiredMembers(jwk: DpopPublicJwk): DpopPublicJwk {
  return jwk.kty === 'EC'
    ? { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }
    : { kty: 'OKP', crv: 'Ed25519', x: jwk.x };
}

/**
 * RFC 7638 JWK thumbprint (SHA-256, base64url) of a DPoP public key: the
 * value of a lease's `cnf.jkt`. Throws TypeError for a key that is not an
 * acceptable DPoP public key (private parts, other curves).
 */
export async function dpopThumbprint(jwk: JWK | DpopPublicJwk): Promise<string> {
  const problem = publicJwkProblem(jwk, 'jwk');
  if (problem) throw new TypeError(problem);
  return (await jose()).calculateJwkThumbprint(requiredMembers(jwk as DpopPublicJwk) as JWK, 'sha256');
}
