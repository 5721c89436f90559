// The SDK's errors: one class per family of the gate's error codes (the
// codes are those of src/gate/errors.ts), each carrying the code, the HTTP
// status, the trace id when the gate gave one, and the gate's whole answer.
// `instanceof LatchGateError` catches every one of them.

/** The gate's error answer: `{error, message, ...}`. */
export interface GateErrorBody {
  error: string;
  message: string;
  trace_id?: string;
  retry_after_seconds?: number;
  [field: string]: unknown;
}

export class LatchGateError extends Error {
  /** The gate's error code (`policy_denied`, `lease_expired`, ...), or the SDK's own (`gate_unreachable`, `bad_answer`). */
  readonly code: string;
  /** The HTTP status (0 when the gate was not reached). */
  readonly status: number;
  readonly traceId: string | undefined;
  /** Seconds the gate asks to wait before trying again (rate limits, a busy provider pool). */
  readonly retryAfterSeconds: number | undefined;
  readonly body: GateErrorBody | undefined;

  constructor(code: string, message: string, status = 0, body?: GateErrorBody, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name; // each subclass by its own name
    this.code = code;
    this.status = status;
    this.body = body;
    this.traceId = typeof body?.trace_id === 'string' ? body.trace_id : undefined;
    this.retryAfterSeconds = typeof body?.retry_after_seconds === 'number' ? body.retry_after_seconds : undefined;
  }
}

/** Who is calling, the lease or the DPoP proof was refused (401, and the identity and origin refusals). */
export class LatchGateAuthError extends LatchGateError {}
/** Policy, scope, trust or effect verification refused the action (403). */
export class LatchGateDenied extends LatchGateError {}
/** A budget window ran out, or a lease asked for more than the operator allows. */
export class LatchGateBudgetExceeded extends LatchGateError {}
/** The request is malformed or breaks the action's input schema (400, 413, 415, 422). */
export class LatchGateInvalidRequest extends LatchGateError {}
/** No such action, receipt or approval (for this caller). */
export class LatchGateNotFound extends LatchGateError {}
/** A conflict with an earlier request: a grant already used, an approval already decided, an outcome unknown. */
export class LatchGateConflict extends LatchGateError {}
/** The action ran and failed, or its output broke its schema (502); the receipt id is in the body. */
export class LatchGateExecutionFailed extends LatchGateError {
  get receiptId(): string | undefined {
    return typeof this.body?.receipt_id === 'string' ? this.body.receipt_id : undefined;
  }
}
/** The gate cannot take the request now: rate limits, a busy pool, draining, a store or engine down (429, 503, 5xx). */
export class LatchGateUnavailable extends LatchGateError {}
/** The gate could not be reached, or answered something that is not the gate's API. */
export class LatchGateConnectionError extends LatchGateError {}

/** An approval a human must give first: the gate holds the exact request and runs it once it is approved. */
export class LatchGateApprovalRequired extends LatchGateError {
  readonly approvalId: string;
  readonly requestHash: string;
  readonly expiresAt: string | undefined;

  constructor(body: { approval_id: string; request_hash: string; trace_id?: string; expires_at?: string }) {
    super('approval_required', `an operator must approve this request first: latchgate approvals approve ${body.approval_id}`, 202, { error: 'approval_required', message: 'pending approval', ...body });
    this.approvalId = body.approval_id;
    this.requestHash = body.request_hash;
    this.expiresAt = body.expires_at;
  }
}

const FAMILIES: [RegExp, typeof LatchGateError][] = [
  [/^budget_/, LatchGateBudgetExceeded],
  [/^(action|receipt|approval|token|route)_not_found$/, LatchGateNotFound],
  [/^(grant_consumed|previous_outcome_unknown|policy_changed|approval_not_pending|approval_mismatch|approval_revoked|approval_lease_expired|token_already_revoked|idempotency_key_reused|idempotency_in_progress)$/, LatchGateConflict],
  [/^(action_execution_failed|response_schema_violation)$/, LatchGateExecutionFailed],
  [/^(malformed_json|invalid_request|duplicate_header|body_too_large|unsupported_media_type|schema_violation|request_timeout)$/, LatchGateInvalidRequest],
];

/** The error for a gate answer with an error status. */
export function gateError(status: number, body: unknown): LatchGateError {
  const b = body && typeof body === 'object' && typeof (body as GateErrorBody).error === 'string' ? (body as GateErrorBody) : undefined;
  if (!b) return new LatchGateConnectionError('bad_answer', `the gate answered ${status} without an error body: is this the latchgate gate?`, status);
  const message = `${b.error}: ${typeof b.message === 'string' ? b.message : ''}`;
  for (const [re, Cls] of FAMILIES) if (re.test(b.error)) return new Cls(b.error, message, status, b);
  if (status === 401 || b.error === 'identity_forbidden' || b.error === 'origin_not_allowed' || b.error === 'host_not_allowed' || b.error === 'operator_required') return new LatchGateAuthError(b.error, message, status, b);
  if (status === 403) return new LatchGateDenied(b.error, message, status, b);
  if (status === 429 || status >= 500) return new LatchGateUnavailable(b.error, message, status, b);
  return new LatchGateError(b.error, message, status, b);
}
