// Budget usage in SQLite, one row per window: a lease's (keyed by its
// session), and a principal's UTC day (keyed by principal and date, so a new
// lease or a gate restart resets nothing), each for the principal's calls
// together and, where the operator configured it, for one action. The limits
// are the operator's (src/gate/budget-rules.ts), narrowed for a lease by its
// request. A snapshot for the policy, then an atomic debit of every window
// (inside the caller's BEGIN IMMEDIATE transaction) so concurrent executions
// never overspend; rows of expired leases and past days are swept.
import type { Db } from '../ledger/db.js';
import { immediate } from '../ledger/db.js';
import type { LeaseBudgets } from './auth/leases.js';
import { BudgetRules, limitKey, type Limits, type WindowKind, type WindowRule } from './budget-rules.js';

export type BudgetLimits = LeaseBudgets;

/** What the policy sees: the tightest window's calls and cost left (before this call). */
export interface BudgetSnapshot {
  calls_remaining: number;
  cost_remaining?: number;
}

/** Whose call, of what: the windows that apply follow from it. */
export interface BudgetSubject {
  principal: string;
  session_id: string;
  action_id?: string;
  /** The lease's exp (unix seconds): when its windows may be swept. */
  lease_expires_at?: number;
}

/** One row of budget_windows. */
export interface WindowKey {
  window: WindowKind;
  /** A lease window: the session id; a day window: the principal. */
  owner: string;
  /** '' for the principal's calls together. */
  action: string;
  /** A day window: YYYY-MM-DD (UTC); a lease window: ''. */
  day: string;
}

/**
 * A window a debit took from, with the time its row may be swept and the
 * limits it was held to then (recorded in the execution's event, so the chain
 * alone shows whether a window was ever overspent).
 */
export type TakenWindow = WindowKey & { expires_at: string; max_calls?: number; max_cost?: number };

/** A window with its limits and its usage. */
export interface WindowState extends WindowRule {
  key: WindowKey;
  used: { calls: number; cost: number };
  /** The limits the lease request narrowed below the operator's. */
  requested?: { calls?: true; cost?: true };
  expires_at: string;
}

/** Which window refused a call, and why. */
export interface ExhaustedWindow {
  window: WindowKind;
  /** 'principal': every action together; 'action': action_id's own. */
  level: 'principal' | 'action';
  principal: string;
  action_id?: string;
  /** Which limit ran out. */
  limit: 'calls' | 'cost';
  max: number;
  used: number;
  /** The cost units the call needed (limit 'cost'). */
  needed?: number;
  /** Where the limit was set: a configuration key, or the lease request. */
  set_by: string;
  /** A day window: the UTC date. */
  day?: string;
}

export type DebitResult =
  | { ok: true; before: BudgetSnapshot; after: BudgetSnapshot; taken: TakenWindow[] }
  | { ok: false; before: BudgetSnapshot; reason: 'calls' | 'cost'; exhausted: ExhaustedWindow };

interface Row {
  calls_max: number | null;
  calls_used: number;
  cost_max: number | null;
  cost_used: number;
  expires_at: string;
  principal: string;
}

/** Day rows are kept this many days after their day began: today's and the last ones', for status. */
export const DAY_ROWS_KEPT_DAYS = 3;
const DAY_MS = 86_400_000;

export const utcDay = (now: Date) => now.toISOString().slice(0, 10);

/** The budget subject of a session's call of an action. */
export function callSubject(s: { principal: string; session_id: string; lease_expires_at: number }, actionId: string): BudgetSubject {
  return { principal: s.principal, session_id: s.session_id, action_id: actionId, lease_expires_at: s.lease_expires_at };
}

/** One line naming the window that ran out: which window, whose, which limit, and where it was set. */
export function describeExhausted(e: ExhaustedWindow): string {
  const whose = `principal ${JSON.stringify(e.principal)}${e.action_id !== undefined ? ` for action ${JSON.stringify(e.action_id)}` : ' (every action together)'}`;
  const window = e.window === 'day' ? `day budget (${e.day} UTC)` : 'lease budget';
  const what = e.limit === 'calls' ? `no calls left: ${e.used} of ${e.max} used` : `not enough cost left for ${e.needed}: ${e.used} of ${e.max} used`;
  const after = e.window === 'day' ? 'a new lease does not reset it; it resets at 00:00 UTC' : 'ask for a new lease, within the day budget';
  return `the ${window} of ${whose} has ${what} (${e.set_by}); ${after}`;
}

const min = (a: number | undefined, b: number | null | undefined) => (b === null || b === undefined ? a : a === undefined ? b : Math.min(a, b));

export class Budgets {
  private s: ReturnType<Budgets['prepare']> | undefined;
  readonly rules: BudgetRules;

  constructor(private readonly db: Db, rules?: BudgetRules) {
    this.rules = rules ?? new BudgetRules();
  }

  migrate(): void {
    this.db.exec(`CREATE TABLE IF NOT EXISTS budget_windows (
      window TEXT NOT NULL, owner TEXT NOT NULL, action TEXT NOT NULL, day TEXT NOT NULL,
      principal TEXT NOT NULL,
      calls_max INTEGER, cost_max REAL,
      calls_used INTEGER NOT NULL DEFAULT 0, cost_used REAL NOT NULL DEFAULT 0,
      expires_at TEXT NOT NULL,
      PRIMARY KEY (window, owner, action, day));
      CREATE INDEX IF NOT EXISTS budget_windows_expiry ON budget_windows (expires_at);`);
    // The per-session table of earlier versions: its live leases carry on, then it goes.
    const old = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'budgets'").get();
    if (old) {
      immediate(this.db, () => {
        this.db
          .prepare(`INSERT OR IGNORE INTO budget_windows (window, owner, action, day, principal, calls_max, cost_max, calls_used, cost_used, expires_at)
            SELECT 'lease', session_id, '', '', '', calls_max, cost_max, calls_used, cost_used, expires_at FROM budgets WHERE expires_at > ?`)
          .run(new Date().toISOString());
        this.db.exec('DROP TABLE budgets');
      });
    }
    this.s = this.prepare();
    this.sweep();
  }

  private prepare() {
    const key = 'window = @window AND owner = @owner AND action = @action AND day = @day';
    return {
      row: this.db.prepare(`SELECT calls_max, calls_used, cost_max, cost_used, expires_at, principal FROM budget_windows WHERE ${key}`),
      add: this.db.prepare(`INSERT INTO budget_windows (window, owner, action, day, principal, calls_used, cost_used, expires_at)
        VALUES (@window, @owner, @action, @day, @principal, 1, @cost, @expires_at)
        ON CONFLICT (window, owner, action, day) DO UPDATE SET calls_used = calls_used + 1, cost_used = cost_used + excluded.cost_used`),
      refund: this.db.prepare(`UPDATE budget_windows SET calls_used = MAX(calls_used - 1, 0), cost_used = MAX(cost_used - @cost, 0) WHERE ${key}`),
      sweep: this.db.prepare('DELETE FROM budget_windows WHERE expires_at <= ?'),
    };
  }

  private get stmts() {
    return (this.s ??= this.prepare());
  }

  /** Called once when a lease is issued: its own limits (a request's, already checked against the operator's), and a sweep of what has expired. */
  init(lease: { session_id: string; principal: string }, limits: BudgetLimits, expiresAt: Date): void {
    immediate(this.db, () => {
      this.db
        .prepare("INSERT INTO budget_windows (window, owner, action, day, principal, calls_max, cost_max, expires_at) VALUES ('lease', ?, '', '', ?, ?, ?, ?)")
        .run(lease.session_id, lease.principal, limits.max_calls ?? null, limits.max_cost ?? null, expiresAt.toISOString());
      this.sweep();
    });
  }

  /** Deletes the rows of expired leases and of days long past; returns how many. */
  sweep(now = new Date()): number {
    return this.stmts.sweep.run(now.toISOString()).changes;
  }

  private row(k: WindowKey): Row | undefined {
    return this.stmts.row.get(k) as Row | undefined;
  }

  /** The lease row's principal, for a caller that has only the session id. */
  private subjectOf(who: BudgetSubject | string): BudgetSubject {
    if (typeof who !== 'string') return who;
    return { session_id: who, principal: this.row({ window: 'lease', owner: who, action: '', day: '' })?.principal ?? '' };
  }

  /** Every window of the subject's call at `now`, with its limits and usage. */
  windows(subject: BudgetSubject | string, now = new Date()): WindowState[] {
    const who = this.subjectOf(subject);
    const day = utcDay(now);
    const leaseRow = this.row({ window: 'lease', owner: who.session_id, action: '', day: '' });
    const leaseExpiry = leaseRow?.expires_at ?? new Date(who.lease_expires_at !== undefined ? who.lease_expires_at * 1000 : now.getTime() + DAY_MS).toISOString();
    const dayExpiry = new Date(Date.parse(`${day}T00:00:00Z`) + DAY_ROWS_KEPT_DAYS * DAY_MS).toISOString();
    return this.rules.rules(who.principal, who.action_id).map((rule) => {
      const key: WindowKey = rule.window === 'lease' ? { window: 'lease', owner: who.session_id, action: rule.action_id ?? '', day: '' } : { window: 'day', owner: who.principal, action: rule.action_id ?? '', day };
      const r = key.action === '' && key.window === 'lease' ? leaseRow : this.row(key);
      const limits: Limits = { ...rule.limits };
      const requested: NonNullable<WindowState['requested']> = {};
      // The lease's principal window: its request may have asked for less than the operator allows.
      if (key.window === 'lease' && key.action === '' && r) {
        for (const what of ['calls', 'cost'] as const) {
          const asked = r[`${what}_max`];
          const lim = min(limits[what], asked);
          if (lim === undefined) continue;
          if (lim !== limits[what]) requested[what] = true;
          limits[what] = lim;
        }
      }
      return { ...rule, limits, requested, key, used: { calls: r?.calls_used ?? 0, cost: r?.cost_used ?? 0 }, expires_at: key.window === 'lease' ? leaseExpiry : dayExpiry };
    });
  }

  private static snap(ws: WindowState[]): BudgetSnapshot {
    let calls = Number.MAX_SAFE_INTEGER;
    let cost: number | undefined;
    for (const w of ws) {
      if (w.limits.calls !== undefined) calls = Math.min(calls, w.limits.calls - w.used.calls);
      if (w.limits.cost !== undefined) cost = Math.min(cost ?? Infinity, w.limits.cost - w.used.cost);
    }
    return cost === undefined ? { calls_remaining: calls } : { calls_remaining: calls, cost_remaining: cost };
  }

  /** The first window that cannot take one more call of `cost` units. */
  private static short(ws: WindowState[], who: BudgetSubject, cost: number): ExhaustedWindow | undefined {
    for (const w of ws) {
      const over: 'calls' | 'cost' | undefined =
        w.limits.calls !== undefined && w.used.calls + 1 > w.limits.calls ? 'calls' : w.limits.cost !== undefined && w.used.cost + cost > w.limits.cost ? 'cost' : undefined;
      if (!over) continue;
      return {
        window: w.window,
        level: w.action_id === undefined ? 'principal' : 'action',
        principal: who.principal,
        ...(w.action_id !== undefined ? { action_id: w.action_id } : {}),
        limit: over,
        max: w.limits[over]!,
        used: w.used[over],
        ...(over === 'cost' ? { needed: cost } : {}),
        set_by: w.requested?.[over] ? `the lease request (budgets.max_${over})` : `${w.source} ${limitKey(over, w.window)}`,
        ...(w.window === 'day' ? { day: w.key.day } : {}),
      };
    }
    return undefined;
  }

  /** The policy's view, and the window that would refuse a call of `cost` units (if one would). */
  view(subject: BudgetSubject | string, cost = 0, now = new Date()): { snapshot: BudgetSnapshot; exhausted?: ExhaustedWindow } {
    const who = this.subjectOf(subject);
    const ws = this.windows(who, now);
    const exhausted = Budgets.short(ws, who, cost);
    return { snapshot: Budgets.snap(ws), ...(exhausted ? { exhausted } : {}) };
  }

  snapshot(subject: BudgetSubject | string, now = new Date()): BudgetSnapshot {
    return Budgets.snap(this.windows(subject, now));
  }

  /** One call and `cost` units from every window, all or nothing. */
  debit(subject: BudgetSubject | string, cost = 0, now = new Date()): DebitResult {
    return immediate(this.db, () => this.debitInTransaction(subject, cost, now));
  }

  debitInTransaction(subject: BudgetSubject | string, cost = 0, now = new Date()): DebitResult {
    const who = this.subjectOf(subject);
    const ws = this.windows(who, now);
    const before = Budgets.snap(ws);
    const exhausted = Budgets.short(ws, who, cost);
    if (exhausted) return { ok: false, before, reason: exhausted.limit, exhausted };
    for (const w of ws) this.stmts.add.run({ ...w.key, principal: who.principal, cost, expires_at: w.expires_at });
    // What the statement just added to each row, in this transaction: the windows as read again would be.
    const after = Budgets.snap(ws.map((w) => ({ ...w, used: { calls: w.used.calls + 1, cost: w.used.cost + cost } })));
    return { ok: true, before, after, taken: ws.map((w) => ({ ...w.key, expires_at: w.expires_at, ...(w.limits.calls !== undefined ? { max_calls: w.limits.calls } : {}), ...(w.limits.cost !== undefined ? { max_cost: w.limits.cost } : {}) })) };
  }

  /** Gives a debit back to every window it took from, when the provider never ran (failure before dispatch). */
  refund(taken: readonly WindowKey[], cost = 0): void {
    immediate(this.db, () => {
      for (const k of taken) this.stmts.refund.run({ ...k, cost });
    });
  }

  /** The unexpired lease windows of a principal (its live leases), for status. */
  liveLeases(principal: string, now = new Date()): { session_id: string; expires_at: string; calls_max: number | null; calls_used: number; cost_max: number | null; cost_used: number }[] {
    return this.db
      .prepare("SELECT owner AS session_id, expires_at, calls_max, calls_used, cost_max, cost_used FROM budget_windows WHERE window = 'lease' AND action = '' AND principal = ? AND expires_at > ? ORDER BY expires_at")
      .all(principal, now.toISOString()) as ReturnType<Budgets['liveLeases']>;
  }

  /** The principals that used a day window on `day`. */
  principalsOn(day: string): string[] {
    return this.db.prepare("SELECT DISTINCT owner FROM budget_windows WHERE window = 'day' AND day = ? ORDER BY owner").pluck().all(day) as string[];
  }
}
