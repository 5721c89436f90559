// Shared shapes of the gate: manifests, policy documents, ledger events,
// grants and receipts. Stage modules take and return these as plain data.

export type RiskLevel = 'low' | 'medium' | 'high' | 'critical';
export type VerifierKind = 'http_status' | 'fs_hash' | 'none';
export type EgressProfile = 'none' | 'proxy_allowlist';

/** An action manifest (YAML in definitions/manifests/), after validation and defaults. */
export interface ActionManifest {
  action_id: string;
  version: string;
  tags: string[];
  /** "sha256:<64 hex>" for a WebAssembly provider, or "builtin:<name>". */
  provider_module_digest: string;
  provider_source?: string;
  required_imports: string[];
  template?: {
    method: string;
    url_template: string;
    headers: Record<string, string>;
    body_template?: unknown;
  };
  io: {
    request_schema: Record<string, unknown>;
    response_schema?: Record<string, unknown>;
    max_request_bytes: number;
    max_response_bytes: number;
  };
  resource_limits: {
    fuel: number;
    memory_mb: number;
    timeout_seconds: number;
    max_io_calls: number;
    max_host_response_bytes: number;
  };
  egress: { profile: EgressProfile; allowed_domains: string[]; allowed_methods: string[] };
  secrets: { name: string; required: boolean }[];
  risk_level: RiskLevel;
  verifier_kind: VerifierKind;
  verification_config?: { required_fields?: string[]; expected_status?: number[] };
  declared_side_effects: string[];
  required_scopes: string[];
  fs?: { allowed_operations: string[]; allowed_paths: string[]; denied_paths: string[]; max_file_bytes: number };
  /** Budget cost units one call debits, besides one call. */
  cost?: number;
}

/** The decision input document (schema: policies/decision-input.schema.json). */
export interface PolicyInput {
  principal: string;
  session_id: string;
  scopes: string[];
  required_scopes: string[];
  action_id: string;
  action_version: string;
  action_risk_level: RiskLevel;
  action_trust_verdict: 'digest_ok' | 'digest_mismatch' | 'untrusted';
  action_category: string;
  request_hash: string;
  requested_sinks: string[];
  requested_secrets: string[];
  egress_profile: EgressProfile;
  fs_path?: string;
  budgets_before: { calls_remaining: number; cost_remaining?: number };
  unresolved_domains: string[];
  unresolved_paths: string[];
}

/** The decision output document (schema: policies/decision-output.schema.json). */
export interface PolicyDecision {
  allow: boolean;
  requires_approval: boolean;
  deny_reason?: string;
  /** Ids of the policies that decided (for the audit trail). */
  determining_policies: string[];
  policy_version: string;
}

export type Decision = 'allow' | 'allow_unverified' | 'deny' | 'pending_approval' | 'error';

/** What a caller gives Ledger.append; the ledger adds trace_id (if absent), timestamp and prev_hash. */
export interface AuditEventInput {
  event_type: string;
  trace_id?: string;
  decision?: Decision;
  subject?: { principal: string; session_id?: string; lease_jti?: string; identity_method?: string };
  action?: { action_id: string; action_version?: string; action_digest?: string; action_trust_verdict?: string; risk_level?: RiskLevel };
  request?: { request_hash?: string };
  policy?: { policy_version?: string; decision?: string; deny_reason?: string; determining_policies?: string[] };
  budgets_before?: Record<string, number>;
  budgets_after?: Record<string, number>;
  execution?: Record<string, unknown>;
  approval?: { approval_id?: string; approved_by?: string; plan_hash?: string };
  operator?: { name: string; uid?: number };
  error?: { code: string; message?: string };
  /** Event-type specific details (egress events, admin acts). */
  details?: Record<string, unknown>;
  sandbox_degraded?: boolean;
}

export interface AuditEvent extends AuditEventInput {
  trace_id: string;
  timestamp: string;
  prev_hash: string | null;
}

export type VerificationStatus =
  | 'verified'
  | 'verification_failed'
  | 'unverifiable_declared'
  | 'provider_failed_before_verification'
  | 'skipped';

export interface ExecutionPlanCore {
  action_id: string;
  action_version: string;
  action_digest: string;
  provider_module_digest: string;
  request_hash: string;
  policy_version: string;
  approved_targets: string[];
  approved_secrets: string[];
  approved_egress: EgressProfile;
  expires_at: string;
}

export interface ExecutionGrant {
  grant_id: string;
  subject: { principal: string; session_id: string };
  sender_binding: string;
  core: ExecutionPlanCore;
  budget_reservation: { calls_before: number; calls_after: number; cost_before?: number; cost_after?: number };
  approved_by?: string;
  approval_hash?: string;
  issued_at: string;
  revocation_epoch: number;
  grant_signature?: string;
  grant_signing_key_id?: string;
}

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
