// Leases: short-lived EdDSA JWTs (typ at+jwt) bound to a client's DPoP key
// by cnf.jkt (RFC 9449), carrying the principal (fixed server-side, never
// claimed by the client), the granted scopes, optional budgets and the
// revocation epoch at issue time.
import { randomUUID, type KeyObject } from 'node:crypto';
import type { JWK, ProtectedHeaderParameters } from 'jose';
import { latestTime, type KeyStore } from '../../keys/store.js';
import { AuthError, echo } from './errors.js';
import { jose } from './jose.js';
import { dpopThumbprint, jwkAlgorithm, publicJwkProblem, requiredMembers, type DpopPublicJwk } from './jwk.js';
import { intersectScopes, isValidScope } from './scopes.js';

export const LEASE_ISSUER = 'latchgate';
export const LEASE_AUDIENCE = 'latchgate';
export const LEASE_TYP = 'at+jwt';
/** Leases are signed with the store's 'lease' key (Ed25519). */
export const LEASE_KEY_ALG = 'EdDSA';
export const LEASE_MAX_TTL_SECONDS = 3600;
/** At most this many scopes in one lease request. */
export const LEASE_MAX_SCOPES = 64;
/** Leases longer than this are refused before any parsing. */
export const LEASE_MAX_JWT_LENGTH = 16 * 1024;

export interface LeaseBudgets {
  max_calls?: number;
  max_cost?: number;
}

/** The body of POST /v1/leases, after parseLeaseRequest. */
export interface LeaseRequestBody {
  scopes: string[];
  dpop_jwk: DpopPublicJwk;
  budgets?: LeaseBudgets;
}

export interface IssueLeaseInput {
  /** The caller's principal, as established by the transport (peer uid, box). */
  principal: string;
  /** The scopes this principal may hold (configuration). */
  allowedScopes: readonly string[];
  /** The scopes the client asked for. */
  requestedScopes: readonly string[];
  /** The client's DPoP public key (EC P-256 or OKP Ed25519). */
  dpopJwk: JWK | DpopPublicJwk;
  budgets?: LeaseBudgets;
  /** Lease lifetime; capped at LEASE_MAX_TTL_SECONDS. */
  ttlSeconds: number;
  /** The client token the caller was identified by (TCP listener): the lease is usable only with it. */
  tokenId?: string;
}

export interface IssueLeaseContext {
  keys: KeyStore;
  /** The revocation epoch now; written into the lease. */
  currentEpoch: number;
  /** Unix seconds (default: the clock). */
  now?: number;
}

export interface IssuedLease {
  lease_jwt: string;
  session_id: string;
  lease_jti: string;
  /** RFC 3339 UTC, seconds precision (what clients parse). */
  expires_at: string;
}

/** The claims of a verified lease. */
export interface LeaseClaims {
  iss: string;
  aud: string;
  sub: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  session_id: string;
  scope: string[];
  budgets?: LeaseBudgets;
  cnf: { jkt: string };
  epoch: number;
  /** The client token the lease was issued through (src/gate/tokens.ts); absent for a peer-uid or box caller. */
  tok?: string;
}

export interface VerifyLeaseContext {
  keys: KeyStore;
  currentEpoch: number;
}

const bad = (message: string) => new AuthError('invalid_request', message);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function checkKnownKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      throw bad(`${where} has an unknown field ${echo(k)} (allowed: ${allowed.join(', ')})`);
    }
  }
}

function checkScopes(scopes: unknown, where: string): string[] {
  if (!Array.isArray(scopes)) throw bad(`${where} must be an array of scope strings`);
  if (scopes.length === 0) throw bad(`${where} must list at least one scope`);
  if (scopes.length > LEASE_MAX_SCOPES) throw bad(`${where} lists more than ${LEASE_MAX_SCOPES} scopes`);
  scopes.forEach((s, i) => {
    if (!isValidScope(s)) {
      throw bad(
        `${where}[${i}] ${echo(s)} is not a scope: use tools:call, audit:read, or namespace:name ` +
          '([a-z0-9:_-], 4-64 characters, starting with a letter, not ending with ":")',
      );
    }
  });
  return scopes as string[];
}

function checkBudgets(budgets: unknown, where: string): LeaseBudgets {
  if (!isPlainObject(budgets)) throw bad(`${where} must be an object`);
  checkKnownKeys(budgets, ['max_calls', 'max_cost'], where);
  const out: LeaseBudgets = {};
  if (budgets.max_calls !== undefined) {
    const n = budgets.max_calls;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
      throw bad(`${where}.max_calls must be a positive integer`);
    }
    out.max_calls = n;
  }
  if (budgets.max_cost !== undefined) {
    const n = budgets.max_cost;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) {
      throw bad(`${where}.max_cost must be a non-negative number`);
    }
    out.max_cost = n;
  }
  return out;
}

function checkJwk(jwk: unknown, where: string): DpopPublicJwk {
  const problem = publicJwkProblem(jwk, where);
  if (problem) throw bad(problem);
  return jwk as DpopPublicJwk;
}

/**
 * Validates the JSON body of POST /v1/leases strictly: `{scopes, dpop_jwk,
 * budgets?}`, unknown fields rejected at every level. Throws AuthError
 * `invalid_request` naming the field.
 */
export function parseLeaseRequest(body: unknown): LeaseRequestBody {
  if (!isPlainObject(body)) throw bad('lease request body must be a JSON object');
  checkKnownKeys(body, ['scopes', 'dpop_jwk', 'budgets'], 'lease request');
  if (body.scopes === undefined) throw bad('lease request is missing "scopes"');
  if (body.dpop_jwk === undefined) throw bad('lease request is missing "dpop_jwk"');
  const out: LeaseRequestBody = {
    scopes: checkScopes(body.scopes, 'scopes'),
    dpop_jwk: checkJwk(body.dpop_jwk, 'dpop_jwk'),
  };
  if (body.budgets !== undefined && body.budgets !== null) out.budgets = checkBudgets(body.budgets, 'budgets');
  return out;
}

function rfc3339(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Issues a lease: scopes = requested ∩ allowed (empty -> AuthError
 * `scope_not_permitted`), bound to the DPoP key's RFC 7638 thumbprint,
 * signed with the current lease key. Bad input -> `invalid_request`.
 */
export async function issueLease(input: IssueLeaseInput, ctx: IssueLeaseContext): Promise<IssuedLease> {
  if (!isPlainObject(input)) throw bad('lease input must be an object');
  const { principal, allowedScopes, ttlSeconds } = input;
  if (typeof principal !== 'string' || principal.length === 0 || principal.length > 256 || /[\u0000-\u001f\u007f]/.test(principal)) {
    throw bad('principal must be a non-empty string of at most 256 printable characters');
  }
  if (!Array.isArray(allowedScopes)) throw new TypeError('allowedScopes must be an array');
  if (typeof ttlSeconds !== 'number' || !Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new TypeError('ttlSeconds must be a positive integer');
  }
  if (!Number.isSafeInteger(ctx.currentEpoch) || ctx.currentEpoch < 0) {
    throw new TypeError('currentEpoch must be a non-negative integer');
  }
  const requested = checkScopes(input.requestedScopes, 'scopes');
  const jwk = checkJwk(input.dpopJwk, 'dpop_jwk');
  const budgets = input.budgets === undefined ? undefined : checkBudgets(input.budgets, 'budgets');

  const { importJWK, SignJWT } = await jose();
  // A JWK can have the right shape and still not be a point on the curve.
  try {
    await importJWK(requiredMembers(jwk) as JWK, jwkAlgorithm(jwk));
  } catch (e) {
    throw new AuthError('invalid_request', 'dpop_jwk is not a valid public key', { cause: e });
  }

  const scope = intersectScopes(requested, allowedScopes);
  if (scope.length === 0) {
    throw new AuthError(
      'scope_not_permitted',
      `none of the requested scopes (${requested.join(', ')}) is permitted for principal ${echo(principal)}`,
    );
  }

  const jkt = await dpopThumbprint(jwk);
  const now = Math.floor(ctx.now ?? Date.now() / 1000);
  const exp = now + Math.min(ttlSeconds, LEASE_MAX_TTL_SECONDS);
  const jti = randomUUID();
  const session_id = randomUUID();
  const claims: LeaseClaims = {
    iss: LEASE_ISSUER,
    aud: LEASE_AUDIENCE,
    sub: principal,
    iat: now,
    nbf: now,
    exp,
    jti,
    session_id,
    scope,
    ...(budgets ? { budgets } : {}),
    cnf: { jkt },
    epoch: ctx.currentEpoch,
    ...(input.tokenId !== undefined ? { tok: input.tokenId } : {}),
  };
  const key = ctx.keys.current('lease');
  const lease_jwt = await new SignJWT(claims as unknown as Record<string, unknown>)
    .setProtectedHeader({ alg: LEASE_KEY_ALG, typ: LEASE_TYP, kid: key.kid })
    .sign(key.privateKey);
  return { lease_jwt, session_id, lease_jti: jti, expires_at: rfc3339(exp) };
}

// -- verification -------------------------------------------------------

/** A lease whose signature verified: its claims, and what names its key (kid, and the time it was signed). */
interface VerifiedLease {
  payload: Record<string, unknown>;
  kid: string;
  signedAt: number;
}

/**
 * Leases whose signature already verified, by their exact compact form (a
 * lease is used for many calls), for each key store apart: a lease one
 * gate's keys verified is nothing to another gate in the same process.
 * Bounded; the oldest entry goes first.
 */
const verifiedLeases = new WeakMap<KeyStore, Map<string, VerifiedLease>>();
const VERIFIED_LEASES_MAX = 4096;

function leasesVerifiedBy(keys: KeyStore): Map<string, VerifiedLease> {
  let m = verifiedLeases.get(keys);
  if (!m) verifiedLeases.set(keys, (m = new Map()));
  return m;
}

function rememberLease(keys: KeyStore, jwt: string, lease: VerifiedLease): void {
  const m = leasesVerifiedBy(keys);
  if (m.size >= VERIFIED_LEASES_MAX) m.delete(m.keys().next().value!);
  m.set(jwt, lease);
}

/**
 * The lease key a kid names for a lease signed at signedAt, as the key
 * history stands now (retired, untrusted, or gone with a history moved
 * away: refused), or the refusal.
 */
function leaseKey(keys: KeyStore, kid: string, signedAt: number): KeyObject {
  const found = keys.keyAt('lease', kid, signedAt);
  if (found.key) return found.key;
  if (!keys.jwks('lease').keys.some((e) => e.kid === kid)) throw invalidLease(`lease was signed by an unknown key (kid ${echo(kid)})`);
  throw invalidLease(`lease refused: ${found.reason}`);
}

const B64URL_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const JKT = /^[A-Za-z0-9_-]{43}$/;
const TOKEN_ID = /^[0-9a-f]{16}$/;

function invalidLease(message: string, cause?: unknown): AuthError {
  return new AuthError('invalid_lease', message, cause === undefined ? undefined : { cause });
}

/**
 * Verifies a lease JWT: EdDSA signature by a key in the lease key history
 * (found by kid, or by the kid an older latchgate gave it), typ at+jwt,
 * iss/aud latchgate, nbf/exp, claim shapes, and the revocation epoch. Throws AuthError `invalid_lease`, `lease_expired` or
 * `lease_revoked`.
 */
export async function verifyLease(leaseJwt: string, ctx: VerifyLeaseContext, now?: number): Promise<LeaseClaims> {
  if (typeof leaseJwt !== 'string' || leaseJwt.length > LEASE_MAX_JWT_LENGTH || !B64URL_JWS.test(leaseJwt)) {
    throw invalidLease('lease is not a compact JWS (three base64url segments)');
  }
  const nowSeconds = now ?? Date.now() / 1000;
  let payload: Record<string, unknown>;
  const remembered = leasesVerifiedBy(ctx.keys).get(leaseJwt);
  if (remembered) {
    // Header, signature and claims were checked when these very bytes were first seen. The key is
    // looked up again (its history may have changed since), and time is checked, every call.
    leaseKey(ctx.keys, remembered.kid, remembered.signedAt);
    payload = remembered.payload;
    if (typeof payload.exp === 'number' && nowSeconds >= payload.exp) throw new AuthError('lease_expired', 'lease has expired; request a new one');
    if (typeof payload.nbf === 'number' && nowSeconds < payload.nbf) throw invalidLease('lease rejected: "nbf" claim timestamp check failed');
  } else {
    const { decodeJwt, decodeProtectedHeader, errors, jwtVerify } = await jose();
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(leaseJwt);
    } catch (e) {
      throw invalidLease('lease header is not base64url-encoded JSON', e);
    }
    if (header.typ !== LEASE_TYP) throw invalidLease(`lease typ must be "${LEASE_TYP}", got ${echo(header.typ)}`);
    if (header.alg !== LEASE_KEY_ALG) throw invalidLease(`lease alg must be "${LEASE_KEY_ALG}", got ${echo(header.alg)}`);
    const kid = header.kid;
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > 128) throw invalidLease('lease header has no kid');
    // The key is chosen by the times the lease claims (iat, nbf: the latest),
    // read before its signature is checked; a lease whose key was retired
    // before them is refused, whatever its signature.
    let claimed: Record<string, unknown>;
    try {
      claimed = decodeJwt(leaseJwt);
    } catch (e) {
      throw invalidLease('lease payload is not base64url-encoded JSON', e);
    }
    const ms = (v: unknown) => (typeof v === 'number' ? v * 1000 : NaN);
    const signedAt = latestTime(ms(claimed.iat), ms(claimed.nbf));
    const key = leaseKey(ctx.keys, kid, signedAt);
    try {
      ({ payload } = await jwtVerify(leaseJwt, key, {
        algorithms: [LEASE_KEY_ALG],
        issuer: LEASE_ISSUER,
        audience: LEASE_AUDIENCE,
        requiredClaims: ['exp', 'nbf', 'iat', 'jti', 'sub'],
        currentDate: new Date(nowSeconds * 1000),
      }));
    } catch (e) {
      if (e instanceof errors.JWTExpired) throw new AuthError('lease_expired', 'lease has expired; request a new one', { cause: e });
      if (e instanceof errors.JWSSignatureVerificationFailed) throw invalidLease('lease signature verification failed', e);
      throw invalidLease(`lease rejected: ${(e as Error).message}`, e);
    }
    rememberLease(ctx.keys, leaseJwt, { payload, kid, signedAt });
  }

  const p = payload;
  const cnf = p.cnf as { jkt?: unknown } | undefined;
  if (typeof p.sub !== 'string' || p.sub.length === 0) throw invalidLease('lease sub must be a non-empty string');
  if (typeof p.jti !== 'string' || p.jti.length === 0) throw invalidLease('lease jti must be a non-empty string');
  if (typeof p.session_id !== 'string' || p.session_id.length === 0) throw invalidLease('lease has no session_id');
  if (!Array.isArray(p.scope) || !p.scope.every(isValidScope)) throw invalidLease('lease scope must be an array of scopes');
  if (!isPlainObject(cnf) || typeof cnf.jkt !== 'string' || !JKT.test(cnf.jkt)) throw invalidLease('lease has no cnf.jkt');
  if (typeof p.epoch !== 'number' || !Number.isSafeInteger(p.epoch) || p.epoch < 0) throw invalidLease('lease has no epoch');
  if (p.tok !== undefined && (typeof p.tok !== 'string' || !TOKEN_ID.test(p.tok))) throw invalidLease('lease tok must be a client token id (16 hex digits)');
  if (p.budgets !== undefined) {
    try {
      checkBudgets(p.budgets, 'lease budgets');
    } catch (e) {
      throw invalidLease((e as Error).message, e);
    }
  }
  // No lease this gate issued outlives the longest TTL, nor names an epoch still to come:
  // either is a lease signed elsewhere with a lease key, made to survive revocation.
  if (typeof p.exp === 'number' && typeof p.iat === 'number' && p.exp - p.iat > LEASE_MAX_TTL_SECONDS) {
    throw invalidLease(`lease lives ${p.exp - p.iat} s; no lease lives longer than ${LEASE_MAX_TTL_SECONDS} s`);
  }
  if (p.epoch > ctx.currentEpoch) throw invalidLease(`lease names epoch ${p.epoch}, after the current epoch ${ctx.currentEpoch}`);
  if (p.epoch < ctx.currentEpoch) {
    throw new AuthError('lease_revoked', `lease was revoked (issued in epoch ${p.epoch}, current epoch ${ctx.currentEpoch})`);
  }
  return p as unknown as LeaseClaims;
}
