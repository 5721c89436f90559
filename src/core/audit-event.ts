// The shape of a ledger event, shared by everything that writes one (the
// gate, the box's launcher and its egress exits) and by the ledger itself.
// Which fields each event type carries: src/core/event-catalogue.ts.
import type { EventType } from './event-catalogue.js';

export type RiskLevel = 'low' | 'medium' | 'high' | 'critical';

export type Decision = 'allow' | 'allow_unverified' | 'deny' | 'pending_approval' | 'error';

/** What a caller gives Ledger.append; the ledger adds trace_id (if absent), timestamp and prev_hash. */
export interface AuditEventInput {
  /** A name from the event catalogue: a typo is a compile error. */
  event_type: EventType;
  trace_id?: string;
  decision?: Decision;
  subject?: { principal: string; session_id?: string; lease_jti?: string; identity_method?: string };
  action?: { action_id: string; action_version?: string; action_digest?: string; action_trust_verdict?: string; risk_level?: RiskLevel };
  request?: { request_hash?: string };
  /** input: what a decision needs beyond the event's other fields to be made again (src/policy/recorded-input.ts). */
  policy?: { policy_version?: string; decision?: string; deny_reason?: string; determining_policies?: string[]; input?: Record<string, unknown> };
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
