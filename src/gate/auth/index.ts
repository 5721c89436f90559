// Stage 1 of the gate pipeline: leases and DPoP. See dpop.ts for the order of checks.
export { AuthError, AUTH_ERROR_STATUS, type AuthErrorCode } from './errors.js';
export { dpopThumbprint, publicJwkProblem, type DpopPublicJwk, type DpopAlgorithm } from './jwk.js';
export { BUILTIN_SCOPES, isValidScope, intersectScopes } from './scopes.js';
export { ReplayCache, REPLAY_TTL_SECONDS, type ReplayCacheOptions } from './replay.js';
export {
  issueLease,
  parseLeaseRequest,
  LEASE_KEY_ALG,
  verifyLease,
  LEASE_MAX_TTL_SECONDS,
  type IssueLeaseInput,
  type IssueLeaseContext,
  type IssuedLease,
  type LeaseBudgets,
  type LeaseClaims,
  type LeaseRequestBody,
} from './leases.js';
export {
  verifyRequest,
  verifyProof,
  normalizeHtu,
  accessTokenHash,
  DPOP_ALGORITHMS,
  IAT_MAX_AGE_SECONDS,
  IAT_MAX_SKEW_SECONDS,
  type VerifyRequestInput,
  type VerifyRequestContext,
  type VerifiedRequest,
  type VerifiedProof,
} from './dpop.js';
export { createDpopKey, makeProof, type DpopKey, type MakeProofInput } from './client.js';
