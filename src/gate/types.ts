// Shapes of the gate: action manifests, plan cores and grants, as plain
// data (what an execution carries between stages is in execution.ts).
import type { RiskLevel } from '../core/audit-event.js';
import type { EgressProfile } from '../policy/types.js';

export type VerifierKind = 'http_status' | 'fs_hash' | 'none';

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

