// The policy engine's documents: what it is asked and what it answers.
import type { RiskLevel } from '../core/audit-event.js';

export type EgressProfile = 'none' | 'proxy_allowlist';

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
