// Pending approvals: the exact execution plan and its hash, held until an
// operator decides; approval_hash binds (approval_id, plan_hash) into the
// grant; single use; expiry recorded.
import { randomUUID } from 'node:crypto';
import type { AuditEventInput } from '../core/audit-event.js';
import type { Db } from '../ledger/db.js';
import { immediate } from '../ledger/db.js';
import { canonicalHash } from '../crypto/jcs.js';

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'consumed';

export interface Approval {
  approval_id: string;
  status: ApprovalStatus;
  action_id: string;
  principal: string;
  session_id: string;
  request_hash: string;
  plan: unknown;
  plan_hash: string;
  created_at: string;
  expires_at: string;
  decided_by: string | null;
  decided_at: string | null;
  reason: string | null;
  approval_hash: string | null;
  receipt_id: string | null;
  /** The execution's answer, for the client polling after the approval. */
  result: { status: number; body: Record<string, unknown> } | null;
}

/** The parts of the held request's audit event that its approved run's event carries on. */
export type HeldEvent = Pick<AuditEventInput, 'subject' | 'action' | 'request' | 'policy'>;

export class ApprovalError extends Error {
  constructor(readonly code: 'approval_not_found' | 'approval_not_pending' | 'approval_expired' | 'approval_mismatch', message: string) {
    super(message);
  }
}

export function approvalHash(approvalId: string, planHash: string): string {
  return canonicalHash({ approval_id: approvalId, plan_hash: planHash });
}

export class Approvals {
  constructor(private readonly db: Db, readonly ttlSeconds = 300) {}

  migrate(): void {
    this.db.exec(`CREATE TABLE IF NOT EXISTS approvals (
      approval_id TEXT PRIMARY KEY, status TEXT NOT NULL, action_id TEXT NOT NULL,
      principal TEXT NOT NULL, session_id TEXT NOT NULL, request_hash TEXT NOT NULL,
      plan_json TEXT NOT NULL, plan_hash TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
      decided_by TEXT, decided_at TEXT, reason TEXT, approval_hash TEXT, receipt_id TEXT, result_json TEXT, event_json TEXT)`);
    this.db.exec('CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status)');
    // A ledger from before approvals kept the held event: its rows keep NULL
    // there. Checked again under the write lock, as another gate may add it first.
    const hasHeldEvent = () => this.db.prepare("SELECT 1 FROM pragma_table_info('approvals') WHERE name = 'event_json'").get() !== undefined;
    if (!hasHeldEvent()) {
      immediate(this.db, () => {
        if (!hasHeldEvent()) this.db.exec('ALTER TABLE approvals ADD COLUMN event_json TEXT');
      });
    }
  }

  create(p: { action_id: string; principal: string; session_id: string; request_hash: string; plan: unknown; event: HeldEvent }, now = new Date()): Approval {
    const id = randomUUID();
    const expires = new Date(now.getTime() + this.ttlSeconds * 1000);
    this.db
      .prepare(`INSERT INTO approvals (approval_id, status, action_id, principal, session_id, request_hash, plan_json, plan_hash, created_at, expires_at, event_json)
        VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(id, p.action_id, p.principal, p.session_id, p.request_hash, JSON.stringify(p.plan), canonicalHash(p.plan), now.toISOString(), expires.toISOString(), JSON.stringify(p.event));
    return this.get(id)!;
  }

  get(id: string): Approval | undefined {
    const r = this.db.prepare('SELECT * FROM approvals WHERE approval_id = ?').get(id) as (Omit<Approval, 'plan' | 'result'> & { plan_json: string; result_json: string | null; event_json: string | null }) | undefined;
    if (!r) return undefined;
    // The held event is for the run an approval resumes (heldEvent()), not part of what the API shows.
    const { plan_json, result_json, event_json: _held, ...rest } = r;
    return { ...rest, plan: JSON.parse(plan_json), result: result_json ? JSON.parse(result_json) : null };
  }

  /** The held event create() stored; null for an approval stored before approvals kept one. */
  heldEvent(id: string): HeldEvent | null {
    const json = this.db.prepare('SELECT event_json FROM approvals WHERE approval_id = ?').pluck().get(id) as string | null | undefined;
    return json ? (JSON.parse(json) as HeldEvent) : null;
  }

  list(status?: ApprovalStatus, limit = 50): Approval[] {
    const rows = (status
      ? this.db.prepare('SELECT approval_id FROM approvals WHERE status = ? ORDER BY created_at DESC LIMIT ?').all(status, limit)
      : this.db.prepare('SELECT approval_id FROM approvals ORDER BY created_at DESC LIMIT ?').all(limit)) as { approval_id: string }[];
    return rows.map((r) => this.get(r.approval_id)!);
  }

  /** Marks pending approvals past their expiry; returns them so each expiry is recorded. */
  expire(now = new Date()): Approval[] {
    return immediate(this.db, () => {
      const ids = this.db.prepare("SELECT approval_id FROM approvals WHERE status = 'pending' AND expires_at <= ?").all(now.toISOString()) as { approval_id: string }[];
      for (const { approval_id } of ids) this.db.prepare("UPDATE approvals SET status = 'expired', decided_at = ? WHERE approval_id = ?").run(now.toISOString(), approval_id);
      return ids.map((r) => this.get(r.approval_id)!);
    });
  }

  decide(id: string, verdict: 'approved' | 'denied', operator: string, reason?: string, now = new Date()): Approval {
    return immediate(this.db, () => {
      const a = this.get(id);
      if (!a) throw new ApprovalError('approval_not_found', `no approval ${id}`);
      if (a.status === 'expired') throw new ApprovalError('approval_expired', `approval ${id} expired at ${a.expires_at}`);
      if (a.status !== 'pending') throw new ApprovalError('approval_not_pending', `approval ${id} is ${a.status}, not pending`);
      if (a.expires_at <= now.toISOString()) {
        this.db.prepare("UPDATE approvals SET status = 'expired', decided_at = ? WHERE approval_id = ?").run(now.toISOString(), id);
        throw new ApprovalError('approval_expired', `approval ${id} expired at ${a.expires_at}`);
      }
      const ah = verdict === 'approved' ? approvalHash(id, a.plan_hash) : null;
      this.db
        .prepare('UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, reason = ?, approval_hash = ? WHERE approval_id = ?')
        .run(verdict, operator, now.toISOString(), reason ?? null, ah, id);
      return this.get(id)!;
    });
  }

  /** Single use: an approved plan is consumed by exactly one execution (inside the caller's transaction). */
  consumeInTransaction(id: string): boolean {
    return this.db.prepare("UPDATE approvals SET status = 'consumed' WHERE approval_id = ? AND status = 'approved'").run(id).changes === 1;
  }

  setResult(id: string, receiptId: string | null, status: number, body: Record<string, unknown>): void {
    this.db.prepare('UPDATE approvals SET receipt_id = ?, result_json = ? WHERE approval_id = ?').run(receiptId, JSON.stringify({ status, body }), id);
  }
}

/** An approval as its client sees it when polling (the admin list adds to it). */
export function pollView(a: Approval): Record<string, unknown> {
  const base: Record<string, unknown> = { approval_id: a.approval_id, status: a.status === 'consumed' ? 'approved' : a.status, action_id: a.action_id, request_hash: a.request_hash, expires_at: a.expires_at };
  if (a.status === 'pending') base.retry_after_seconds = 2;
  if (a.decided_by) base.decided_by = a.decided_by;
  if (a.reason) base.reason = a.reason;
  if (a.receipt_id) base.receipt_id = a.receipt_id;
  if (a.result) base.result = a.result;
  return base;
}
