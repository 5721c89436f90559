// Gate errors: a code from the public API (README, HTTP API) and its HTTP status.
// Bodies are always {"error": "<code>", ...}.

const STATUS: Record<string, number> = {
  malformed_json: 400,
  invalid_request: 400,
  budget_exceeds_limit: 400,
  duplicate_header: 400,
  missing_auth_header: 401,
  invalid_auth_scheme: 401,
  missing_dpop_header: 401,
  invalid_dpop: 401,
  invalid_lease: 401,
  lease_expired: 401,
  lease_revoked: 401,
  key_binding_failed: 401,
  replay_detected: 401,
  identity_unauthenticated: 401,
  token_revoked: 401,
  token_expired: 401,
  identity_forbidden: 403,
  operator_required: 403,
  approver_is_requester: 403,
  origin_not_allowed: 403,
  scope_not_permitted: 403,
  policy_denied: 403,
  action_digest_mismatch: 403,
  action_not_registered: 403,
  provider_untrusted: 403,
  budget_exhausted: 403,
  approval_denied: 403,
  approval_expired: 403,
  verification_failed: 403,
  action_not_found: 404,
  approval_not_found: 404,
  receipt_not_found: 404,
  route_not_found: 404,
  token_not_found: 404,
  grant_consumed: 409,
  previous_outcome_unknown: 409,
  policy_changed: 409,
  approval_not_pending: 409,
  approval_mismatch: 409,
  approval_revoked: 409,
  approval_lease_expired: 409,
  idempotency_in_progress: 409,
  token_already_revoked: 409,
  body_too_large: 413,
  unsupported_media_type: 415,
  host_not_allowed: 421,
  request_timeout: 408,
  schema_violation: 422,
  idempotency_key_reused: 422,
  response_schema_violation: 502,
  rate_limited: 429,
  too_many_connections: 429,
  provider_busy: 429,
  action_execution_failed: 502,
  fs_root_missing: 503,
  draining: 503,
  replay_cache_unavailable: 503,
  state_tampered: 503,
  policy_engine_unavailable: 503,
  policy_engine_timeout: 503,
  policy_engine_invalid_response: 503,
  store_unavailable: 503,
  secret_missing: 503,
  secrets_unavailable: 503,
  evidence_persistence_failed: 500,
  internal_error: 500,
};

export class GateError extends Error {
  readonly status: number;
  constructor(
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'GateError';
    this.status = STATUS[code] ?? 500;
  }

  body(): Record<string, unknown> {
    return { error: this.code, message: this.message, ...this.extra };
  }
}

export function statusOf(code: string): number {
  return STATUS[code] ?? 500;
}
