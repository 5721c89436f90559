// Per-session budgets in SQLite: a snapshot for the policy, then an atomic
// debit (BEGIN IMMEDIATE) so concurrent executions can never overspend.
import type { Db } from '../ledger/db.js';
import { immediate } from '../ledger/db.js';

export interface BudgetLimits {
  max_calls?: number;
  max_cost?: number;
}

export interface BudgetSnapshot {
  calls_remaining: number;
  cost_remaining?: number;
}

export type DebitResult =
  | { ok: true; before: BudgetSnapshot; after: BudgetSnapshot }
  | { ok: false; before: BudgetSnapshot; reason: 'calls' | 'cost' };

interface Row {
  calls_max: number | null;
  calls_used: number;
  cost_max: number | null;
  cost_used: number;
}

export class Budgets {
  private s: ReturnType<Budgets['prepare']> | undefined;

  constructor(private readonly db: Db) {}

  migrate(): void {
    this.db.exec(`CREATE TABLE IF NOT EXISTS budgets (
      session_id TEXT PRIMARY KEY,
      calls_max INTEGER, calls_used INTEGER NOT NULL DEFAULT 0,
      cost_max REAL, cost_used REAL NOT NULL DEFAULT 0,
      expires_at TEXT NOT NULL)`);
    this.s = this.prepare();
  }

  private prepare() {
    return {
      row: this.db.prepare('SELECT calls_max, calls_used, cost_max, cost_used FROM budgets WHERE session_id = ?'),
      debit: this.db.prepare('UPDATE budgets SET calls_used = calls_used + 1, cost_used = cost_used + ? WHERE session_id = ?'),
    };
  }

  private get stmts() {
    return (this.s ??= this.prepare());
  }

  /** Called once when a lease is issued; a session without limits is unlimited. */
  init(sessionId: string, limits: BudgetLimits, expiresAt: Date): void {
    this.db
      .prepare('INSERT INTO budgets (session_id, calls_max, cost_max, expires_at) VALUES (?, ?, ?, ?)')
      .run(sessionId, limits.max_calls ?? null, limits.max_cost ?? null, expiresAt.toISOString());
  }

  private row(sessionId: string): Row | undefined {
    return this.stmts.row.get(sessionId) as Row | undefined;
  }

  private static snap(r: Row | undefined): BudgetSnapshot {
    if (!r) return { calls_remaining: Number.MAX_SAFE_INTEGER };
    const s: BudgetSnapshot = { calls_remaining: r.calls_max === null ? Number.MAX_SAFE_INTEGER : r.calls_max - r.calls_used };
    if (r.cost_max !== null) s.cost_remaining = r.cost_max - r.cost_used;
    return s;
  }

  snapshot(sessionId: string): BudgetSnapshot {
    return Budgets.snap(this.row(sessionId));
  }

  /** One call and `cost` units, all or nothing. */
  debit(sessionId: string, cost = 0): DebitResult {
    return immediate(this.db, () => this.debitInTransaction(sessionId, cost));
  }

  debitInTransaction(sessionId: string, cost = 0): DebitResult {
    const r = this.row(sessionId);
    const before = Budgets.snap(r);
    if (before.calls_remaining < 1) return { ok: false, before, reason: 'calls' };
    if (before.cost_remaining !== undefined && before.cost_remaining < cost) return { ok: false, before, reason: 'cost' };
    if (r) this.stmts.debit.run(cost, sessionId);
    return { ok: true, before, after: Budgets.snap(this.row(sessionId)) };
  }

  /** Gives a debit back when the provider never ran (failure before dispatch). */
  refund(sessionId: string, cost = 0): void {
    this.db.prepare('UPDATE budgets SET calls_used = MAX(calls_used - 1, 0), cost_used = MAX(cost_used - ?, 0) WHERE session_id = ?').run(cost, sessionId);
  }
}
