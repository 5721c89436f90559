// Pending approvals: the exact execution plan and its hash, held until an
// operator decides; approval_hash binds (approval_id, plan_hash) into the
// grant; single use; expiry recorded.
import { randomUUID } from 'node:crypto';
import type { AuditEventInput } from '../core/audit-event.js';
import type { Caller } from './app.js';
import type { Db } from '../ledger/db.js';
import { immediate } from '../ledger/db.js';
import { canonicalHash } from '../crypto/jcs.js';
import { leaseProblem, type LeaseCause, type LeaseFields, type TokenCheck } from './lease-standing.js';

export type { TokenCheck };

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'consumed' | 'revoked';

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
  /** Who asked (null for an approval stored before approvals recorded it). */
  requester: Requester | null;
}

/** The connection a held request came on: an approver must be someone else. */
export interface Requester {
  transport: Caller['transport'];
  /** The peer uid (Unix sockets). */
  uid?: number;
}

/** The stored columns get() turns into an Approval's plan, result and requester. */
interface Row {
  plan_json: string;
  result_json: string | null;
  event_json: string | null;
  requester_transport: Caller['transport'] | null;
  requester_uid: number | null;
}

/** The parts of the held request's audit event that its approved run's event carries on. */
export type HeldEvent = Pick<AuditEventInput, 'subject' | 'action' | 'request' | 'policy'>;

export class ApprovalError extends Error {
  constructor(
    readonly code: 'approval_not_found' | 'approval_not_pending' | 'approval_expired' | 'approval_mismatch' | 'approval_revoked',
    message: string,
    /** The approval this refusal marked expired (committed), for its caller to record the expiry. */
    readonly expired?: Approval,
  ) {
    super(message);
  }
}

/** Why an approval's lease no longer stands (its plan holds the lease's epoch and exp). */
export interface LeaseRefusal {
  code: 'approval_revoked' | 'approval_lease_expired';
  /** Recorded in approval_revoked events. */
  cause: LeaseCause;
  message: string;
}

/**
 * Null while the lease an approval was requested under still stands: its
 * epoch is the current one and it has not expired. An approval runs as its
 * requester's act, so it must not outlive the requester's right to act. A
 * plan stored before plans held the lease's epoch and exp cannot show that,
 * and is refused. So is one whose lease was issued through a client token
 * that has since been revoked or has expired.
 */
export function leaseRefusal(plan: unknown, currentEpoch: number, now = new Date(), tokens?: TokenCheck): LeaseRefusal | null {
  const s = (plan as { session?: LeaseFields } | null)?.session;
  const p = leaseProblem(s, currentEpoch, now, tokens, 'the lease the approval was requested under');
  if (!p) return null;
  return { code: p.cause === 'lease_expired' ? 'approval_lease_expired' : 'approval_revoked', cause: p.cause, message: `${p.message}; the agent must request it again` };
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
    // Columns a ledger from before them lacks: its rows keep NULL there.
    // Checked again under the write lock, as another gate may add one first.
    for (const [column, type] of [['event_json', 'TEXT'], ['requester_transport', 'TEXT'], ['requester_uid', 'INTEGER']]) {
      const has = () => this.db.prepare("SELECT 1 FROM pragma_table_info('approvals') WHERE name = ?").get(column) !== undefined;
      if (has()) continue;
      immediate(this.db, () => {
        if (!has()) this.db.exec(`ALTER TABLE approvals ADD COLUMN ${column} ${type}`);
      });
    }
  }

  create(p: { action_id: string; principal: string; session_id: string; request_hash: string; plan: unknown; event: HeldEvent; requester: Requester }, now = new Date()): Approval {
    const id = randomUUID();
    const expires = new Date(now.getTime() + this.ttlSeconds * 1000);
    this.db
      .prepare(`INSERT INTO approvals (approval_id, status, action_id, principal, session_id, request_hash, plan_json, plan_hash, created_at, expires_at, event_json, requester_transport, requester_uid)
        VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(id, p.action_id, p.principal, p.session_id, p.request_hash, JSON.stringify(p.plan), canonicalHash(p.plan), now.toISOString(), expires.toISOString(), JSON.stringify(p.event), p.requester.transport, p.requester.uid ?? null);
    return this.get(id)!;
  }

  get(id: string): Approval | undefined {
    const r = this.db.prepare('SELECT * FROM approvals WHERE approval_id = ?').get(id) as (Omit<Approval, 'plan' | 'result' | 'requester'> & Row) | undefined;
    if (!r) return undefined;
    // The held event is for the run an approval resumes (heldEvent()), not part of what the API shows.
    const { plan_json, result_json, event_json: _held, requester_transport, requester_uid, ...rest } = r;
    const requester = requester_transport === null ? null : { transport: requester_transport, ...(requester_uid !== null ? { uid: requester_uid } : {}) };
    return { ...rest, requester, plan: JSON.parse(plan_json), result: result_json ? JSON.parse(result_json) : null };
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

  /**
   * An expiry noticed here is committed before the refusal is thrown (a throw
   * inside the transaction would roll it back); the refusal carries the
   * approval it marked, so that its expiry is recorded, once.
   */
  decide(id: string, verdict: 'approved' | 'denied', operator: string, reason?: string, now = new Date()): Approval {
    const r = immediate(this.db, (): { decided: Approval } | { expired: Approval } => {
      const a = this.get(id);
      if (!a) throw new ApprovalError('approval_not_found', `no approval ${id}`);
      if (a.status === 'expired') throw new ApprovalError('approval_expired', `approval ${id} expired at ${a.expires_at}`);
      if (a.status === 'revoked') throw new ApprovalError('approval_revoked', `approval ${id} was revoked: ${a.reason ?? 'its lease was revoked'}`);
      if (a.status !== 'pending') throw new ApprovalError('approval_not_pending', `approval ${id} is ${a.status}, not pending`);
      if (a.expires_at <= now.toISOString()) {
        this.db.prepare("UPDATE approvals SET status = 'expired', decided_at = ? WHERE approval_id = ? AND status = 'pending'").run(now.toISOString(), id);
        return { expired: this.get(id)! };
      }
      const ah = verdict === 'approved' ? approvalHash(id, a.plan_hash) : null;
      this.db
        .prepare('UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, reason = ?, approval_hash = ? WHERE approval_id = ?')
        .run(verdict, operator, now.toISOString(), reason ?? null, ah, id);
      return { decided: this.get(id)! };
    });
    if ('expired' in r) throw new ApprovalError('approval_expired', `approval ${id} expired at ${r.expired.expires_at}`, r.expired);
    return r.decided;
  }

  /** Marks every pending approval revoked (in the caller's transaction, with the epoch's advance); returns them so each is recorded. */
  revokePendingInTransaction(reason: string, now = new Date()): Approval[] {
    const ids = this.db.prepare("SELECT approval_id FROM approvals WHERE status = 'pending'").pluck().all() as string[];
    const mark = this.db.prepare("UPDATE approvals SET status = 'revoked', decided_at = ?, reason = ? WHERE approval_id = ? AND status = 'pending'");
    for (const id of ids) mark.run(now.toISOString(), reason, id);
    return ids.map((id) => this.get(id)!);
  }

  /**
   * Marks one approval revoked, pending or approved but not yet run (an
   * approved one: its run refused it). Undefined when it was neither, so a
   * revocation is recorded once.
   */
  revoke(id: string, reason: string, now = new Date()): Approval | undefined {
    const changed = this.db
      .prepare("UPDATE approvals SET status = 'revoked', decided_at = COALESCE(decided_at, ?), reason = ? WHERE approval_id = ? AND status IN ('pending', 'approved')")
      .run(now.toISOString(), reason, id).changes;
    return changed === 1 ? this.get(id) : undefined;
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
