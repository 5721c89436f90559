// Stage 1 of the pipeline: the lease (Authorization: DPoP <lease_jwt>) and
// its DPoP proof (DPoP: <proof>) per RFC 9449. Order: header shapes, lease
// (signature, claims, expiry, revocation epoch), proof (structure, typ, alg,
// embedded public jwk, signature, key binding to cnf.jkt, htm, htu, iat
// window, ath, jti), whether the caller may use the lease (the caller's own
// check), and last the jti replay cache, so only a request that passed
// everything uses up its jti.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { ProtectedHeaderParameters } from 'jose';
import type { KeyStore } from '../../keys/store.js';
import { AuthError, echo } from './errors.js';
import { dpopThumbprint, jwkAlgorithm, publicJwkProblem, requiredMembers, type DpopAlgorithm, type DpopPublicJwk } from './jwk.js';
import { JwsError, jwsHeader, verifyCompactJwt } from './jws.js';
import { verifyLease, type LeaseBudgets } from './leases.js';
import type { ReplayCache } from './replay.js';

export { dpopThumbprint } from './jwk.js';

export const DPOP_TYP = 'dpop+jwt';
export const DPOP_ALGORITHMS: readonly DpopAlgorithm[] = Object.freeze(['ES256', 'EdDSA'] as DpopAlgorithm[]);
/** A proof's iat may be at most this many seconds old... */
export const IAT_MAX_AGE_SECONDS = 60;
/** ...and at most this many seconds ahead of our clock. */
export const IAT_MAX_SKEW_SECONDS = 5;
export const DPOP_MAX_PROOF_LENGTH = 8 * 1024;
/** jti: 16-128 URL-safe characters (a UUID, or random base64url). */
const JTI = /^[A-Za-z0-9._~:-]{16,128}$/;
const HTM = /^[A-Za-z]{1,16}$/;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export interface VerifyRequestInput {
  /** The Authorization header: `DPoP <lease_jwt>`. */
  authorization: string | string[] | undefined;
  /** The DPoP header: the proof JWT. */
  dpop: string | string[] | undefined;
  /** The request's HTTP method. */
  method: string;
  /** The absolute request URL: the configured public base URL + the path (query allowed, ignored). */
  url: string;
  /** Unix seconds (default: the clock). */
  now?: number;
}

export interface VerifyRequestContext {
  keys: KeyStore;
  replay: ReplayCache;
  /** The revocation epoch now: leases issued in an earlier epoch are refused. */
  currentEpoch: number;
  /**
   * Whether this caller may use the lease (its principal, and the client token it was issued
   * through); throws to refuse. Asked before the proof's jti is used up, so a proof sent by
   * another caller (refused) is still good for the lease's holder.
   */
  mayUse?: (lease: { principal: string; token_id?: string }) => void;
}

export interface VerifiedRequest {
  principal: string;
  session_id: string;
  lease_jti: string;
  scopes: string[];
  budgets?: LeaseBudgets;
  /** Thumbprint of the DPoP key the lease is bound to. */
  jkt: string;
  /** The lease's exp (unix seconds), e.g. for budget counter lifetimes. */
  lease_expires_at: number;
  /** The revocation epoch the lease was issued in (the current one, as it verified). */
  lease_epoch: number;
  /** The client token the lease was issued through, if any. */
  token_id?: string;
}

export interface VerifyProofInput {
  proof: string;
  method: string;
  url: string;
  /** The access token the proof must be bound to by ath. */
  leaseJwt: string;
  /** The lease's cnf.jkt. */
  jkt: string;
  now?: number;
}

export interface VerifiedProof {
  jti: string;
  iat: number;
  jwk: DpopPublicJwk;
}

/**
 * RFC 9449 §4.3 htu comparison form: query and fragment stripped, scheme and
 * authority lowercased, default port removed, empty path -> '/', path case
 * and percent-encoding kept (WHATWG URL parsing: dot segments resolved).
 * Throws TypeError for anything but an absolute http(s) URL without userinfo.
 */
export function normalizeHtu(url: string): string {
  if (typeof url !== 'string' || url.length === 0 || url.length > 4096) throw new TypeError('htu must be a URL string');
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#\\]/.test(url) || /[\u0000-\u0020\u007f\\]/.test(url)) {
    throw new TypeError(`htu ${echo(url)} is not an absolute URL`);
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`htu ${echo(url)} is not an absolute URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`htu scheme must be http or https`);
  if (u.username !== '' || u.password !== '') throw new TypeError('htu must not contain userinfo');
  return `${u.protocol}//${u.host.toLowerCase()}${u.pathname || '/'}`;
}

/** ath: base64url(SHA-256(ASCII access token)). */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

function single(value: string | string[] | undefined): string | undefined | null {
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.length === 1 ? value[0] : null;
  return value;
}

/**
 * Imported DPoP public keys and their thumbprints, by key (LRU, bounded).
 * Skips JWK import and hashing for a returning client; every proof's
 * signature is still verified.
 */
const DPOP_KEY_CACHE_SIZE = 1024;
const dpopKeyCache = new Map<string, Promise<{ key: KeyObject; jkt: string }>>();

function dpopKey(jwk: DpopPublicJwk): Promise<{ key: KeyObject; jkt: string }> {
  const id = jwk.kty === 'EC' ? `EC.${jwk.x}.${jwk.y}` : `OKP.${jwk.x}`;
  let entry = dpopKeyCache.get(id);
  if (entry) {
    dpopKeyCache.delete(id); // move to the back: most recently used
  } else {
    const pub = requiredMembers(jwk);
    entry = dpopThumbprint(pub).then((jkt) => ({ key: createPublicKey({ key: pub, format: 'jwk' }), jkt }));
    entry.catch(() => dpopKeyCache.delete(id));
    if (dpopKeyCache.size >= DPOP_KEY_CACHE_SIZE) dpopKeyCache.delete(dpopKeyCache.keys().next().value as string);
  }
  dpopKeyCache.set(id, entry);
  return entry;
}

function invalidDpop(message: string, cause?: unknown): AuthError {
  return new AuthError('invalid_dpop', message, cause === undefined ? undefined : { cause });
}

/**
 * Verifies one DPoP proof against a request and a lease (not the replay
 * cache). Throws AuthError `invalid_dpop`, or `key_binding_failed` when the
 * proof's key is not the one in cnf.jkt.
 */
export async function verifyProof(input: VerifyProofInput): Promise<VerifiedProof> {
  const { proof } = input;
  const now = Math.floor(input.now ?? Date.now() / 1000); // whole seconds, as iat/exp
  if (typeof proof !== 'string' || proof.length > DPOP_MAX_PROOF_LENGTH || !COMPACT_JWS.test(proof)) {
    throw invalidDpop('malformed DPoP proof: expected a compact JWS (three base64url segments)');
  }
  let header: ProtectedHeaderParameters;
  try {
    header = jwsHeader(proof) as ProtectedHeaderParameters;
  } catch (e) {
    throw invalidDpop('malformed DPoP proof: the header is not base64url-encoded JSON', e);
  }
  if (header.typ !== DPOP_TYP) throw invalidDpop(`DPoP proof typ must be "${DPOP_TYP}", got ${echo(header.typ)}`);
  if (!DPOP_ALGORITHMS.includes(header.alg as DpopAlgorithm)) {
    throw invalidDpop(`DPoP proof alg ${echo(header.alg)} is not allowed (${DPOP_ALGORITHMS.join(', ')})`);
  }
  if (header.jwk === undefined) throw invalidDpop('DPoP proof header has no jwk (the public key is required)');
  const problem = publicJwkProblem(header.jwk, 'DPoP proof jwk');
  if (problem) throw invalidDpop(problem);
  const jwk = header.jwk as DpopPublicJwk;
  if (jwkAlgorithm(jwk) !== header.alg) {
    throw invalidDpop(`DPoP proof jwk (${jwk.kty} ${jwk.crv}) does not sign with alg ${header.alg}`);
  }

  let key: { key: KeyObject; jkt: string };
  try {
    key = await dpopKey(jwk);
  } catch (e) {
    throw invalidDpop('DPoP proof jwk is not a valid public key', e);
  }
  let payload: Record<string, unknown>;
  try {
    ({ payload } = verifyCompactJwt(proof, key.key, header.alg as DpopAlgorithm, now));
  } catch (e) {
    if (e instanceof JwsError && e.kind === 'signature') throw invalidDpop('DPoP proof signature verification failed', e);
    throw invalidDpop(`DPoP proof rejected: ${(e as Error).message}`, e);
  }

  // Sender constraint: the proof must be signed by the key the lease is bound to.
  if (key.jkt !== input.jkt) {
    throw new AuthError('key_binding_failed', "DPoP proof key does not match the lease's cnf.jkt (key binding failure)");
  }

  const { jti, htm, htu, iat, ath } = payload;
  if (typeof jti !== 'string' || !JTI.test(jti)) throw invalidDpop('DPoP proof jti must be 16-128 URL-safe characters');
  if (typeof htm !== 'string' || !HTM.test(htm)) throw invalidDpop('DPoP proof htm must be an HTTP method');
  if (typeof htu !== 'string') throw invalidDpop('DPoP proof has no htu');
  if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalidDpop('DPoP proof has no numeric iat');

  const method = input.method.toUpperCase();
  if (htm.toUpperCase() !== method) throw invalidDpop(`DPoP htm mismatch: proof is for ${echo(htm)}, request is ${method}`);

  const expected = normalizeHtu(input.url); // a bad server URL is a TypeError, not the client's fault
  let got: string;
  try {
    got = normalizeHtu(htu);
  } catch (e) {
    throw invalidDpop(`DPoP htu mismatch: proof htu ${echo(htu)} is not an absolute http(s) URL`, e);
  }
  if (got !== expected) throw invalidDpop(`DPoP htu mismatch: proof is for ${echo(got)}, request is ${echo(expected)}`);

  if (iat < now - IAT_MAX_AGE_SECONDS) {
    throw invalidDpop(`DPoP proof iat too old (${Math.round(now - iat)} s; at most ${IAT_MAX_AGE_SECONDS} s)`);
  }
  if (iat > now + IAT_MAX_SKEW_SECONDS) {
    throw invalidDpop(`DPoP proof iat too far in future (${Math.round(iat - now)} s ahead; at most ${IAT_MAX_SKEW_SECONDS} s)`);
  }

  if (ath === undefined) throw invalidDpop('DPoP proof has no ath (required when presenting a lease)');
  if (ath !== accessTokenHash(input.leaseJwt)) throw invalidDpop('DPoP proof ath does not match the presented lease');

  return { jti, iat, jwk };
}

/**
 * Authenticates one gate request. Returns who is calling and what the lease
 * grants, or throws AuthError with the wire code.
 */
export async function verifyRequest(input: VerifyRequestInput, ctx: VerifyRequestContext): Promise<VerifiedRequest> {
  const now = Math.floor(input.now ?? Date.now() / 1000); // whole seconds, as iat/exp

  const authorization = single(input.authorization);
  if (authorization === undefined || authorization === '') {
    throw new AuthError('missing_auth_header', 'missing Authorization header: send "Authorization: DPoP <lease_jwt>"');
  }
  if (authorization === null) throw new AuthError('invalid_auth_scheme', 'more than one Authorization header');
  const m = /^DPoP +([^\s]+)$/i.exec(authorization);
  if (!m) {
    const scheme = authorization.split(/\s/, 1)[0] ?? '';
    throw new AuthError(
      'invalid_auth_scheme',
      `Authorization must be "DPoP <lease_jwt>"${/^dpop$/i.test(scheme) ? '' : `, got scheme ${echo(scheme.slice(0, 32))}`}`,
    );
  }
  const leaseJwt = m[1] as string;

  const proof = single(input.dpop);
  if (proof === undefined || proof === '') {
    throw new AuthError('missing_dpop_header', 'missing DPoP header: send a DPoP proof signed with the lease key');
  }
  if (proof === null) throw invalidDpop('more than one DPoP header');

  const lease = await verifyLease(leaseJwt, { keys: ctx.keys, currentEpoch: ctx.currentEpoch }, now);
  const verified = await verifyProof({ proof, method: input.method, url: input.url, leaseJwt, jkt: lease.cnf.jkt, now });
  ctx.mayUse?.({ principal: lease.sub, ...(lease.tok !== undefined ? { token_id: lease.tok } : {}) });
  ctx.replay.checkAndStore(verified.jti, now);

  return {
    principal: lease.sub,
    session_id: lease.session_id,
    lease_jti: lease.jti,
    scopes: [...lease.scope],
    ...(lease.budgets ? { budgets: { ...lease.budgets } } : {}),
    jkt: lease.cnf.jkt,
    lease_expires_at: lease.exp,
    lease_epoch: lease.epoch,
    ...(lease.tok !== undefined ? { token_id: lease.tok } : {}),
  };
}
