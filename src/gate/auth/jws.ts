// Compact JWS verification with node:crypto, synchronously: the DPoP proof of
// every request is checked here (jose's WebCrypto path costs a promise chain
// and algorithm normalisation per call). Only what a DPoP proof needs: ES256
// (P-256, raw r||s signature) and EdDSA (Ed25519), no unencoded payloads and
// no critical extensions. Claim checks as jose's jwtVerify makes them.
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { verifyEd25519 } from '../../keys/ed25519.js';

export type JwsAlgorithm = 'ES256' | 'EdDSA';

export class JwsError extends Error {
  constructor(
    message: string,
    /** 'signature' when the signature does not verify; 'format' or 'claims' otherwise. */
    readonly kind: 'format' | 'signature' | 'claims',
  ) {
    super(message);
    this.name = 'JwsError';
  }
}

function json(segment: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new JwsError(`the ${what} is not base64url-encoded JSON`, 'format');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new JwsError(`the ${what} is not a JSON object`, 'format');
  return v as Record<string, unknown>;
}

/** The protected header of a compact JWS (its shape already checked): a JSON object, or a JwsError. */
export function jwsHeader(token: string): Record<string, unknown> {
  return json(token.slice(0, token.indexOf('.')), 'header');
}

/**
 * Verifies a compact JWS signed with `alg` by `key` and returns its header
 * and JSON claims. Time claims, when present, must be numbers, and exp/nbf
 * must hold at `nowSeconds`.
 */
export function verifyCompactJwt(token: string, key: KeyObject, alg: JwsAlgorithm, nowSeconds: number): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const parts = token.split('.');
  if (parts.length !== 3) throw new JwsError('not a compact JWS (three segments)', 'format');
  const [h, p, s] = parts as [string, string, string];
  const header = json(h, 'header');
  if (header.alg !== alg) throw new JwsError(`alg must be ${alg}`, 'format');
  if (header.crit !== undefined) throw new JwsError('critical header extensions ("crit") are not supported', 'format');
  if (header.b64 !== undefined) throw new JwsError('unencoded payloads ("b64") are not supported', 'format');
  const sig = Buffer.from(s, 'base64url');
  const data = Buffer.from(`${h}.${p}`, 'ascii');
  const ok = alg === 'ES256'
    ? sig.length === 64 && cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig)
    : verifyEd25519(key, data, sig);
  if (!ok) throw new JwsError('signature verification failed', 'signature');
  const payload = json(p, 'payload');
  for (const c of ['iat', 'exp', 'nbf'] as const) {
    if (payload[c] !== undefined && (typeof payload[c] !== 'number' || !Number.isFinite(payload[c]))) throw new JwsError(`"${c}" claim must be a number`, 'claims');
  }
  if (typeof payload.exp === 'number' && nowSeconds >= payload.exp) throw new JwsError('"exp" claim timestamp check failed', 'claims');
  if (typeof payload.nbf === 'number' && nowSeconds < payload.nbf) throw new JwsError('"nbf" claim timestamp check failed', 'claims');
  return { header, payload };
}
