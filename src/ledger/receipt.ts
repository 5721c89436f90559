// The execution receipt: what ran, under which grant, with what outcome.

export type VerificationStatus =
  | 'verified'
  | 'verification_failed'
  | 'unverifiable_declared'
  | 'provider_failed_before_verification'
  | 'skipped';

export interface ExecutionReceipt {
  receipt_id: string;
  grant_id: string;
  trace_id: string;
  provider_module_digest: string;
  provider_receipt: unknown;
  normalized_result: { kind: 'success' | 'failure'; summary?: string; reason?: string };
  verification_outcome: { status: VerificationStatus; evidence?: unknown };
  effect_evidence: unknown[];
  result_hash: string;
  receipt_signature?: string;
  signing_key_id?: string;
  started_at: string;
  finished_at: string;
  failure_class?: 'provider_error' | 'timeout' | 'policy_violation' | 'verification_failed' | 'cancelled' | 'internal_error';
}
