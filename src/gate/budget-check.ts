// Budget usage (budget_windows, a plain table) against the hash chain: the
// action_call event of every execution that took a debit records the windows
// it took from, their expiry, the cost, and whether it was refunded
// (details.budget_debit). A row may count more than the chain does (a call in
// flight or one whose gate crashed has no event yet), never less: a row lower
// than the chain's sum, or gone while its window is still open, was edited to
// hand out calls the operator's limits refuse. `latchgate verify` reports it;
// a gate opening the ledger puts the row back to the chain's count (the
// stricter value) and records that it did.
import type { Db } from '../ledger/db.js';
import type { Ledger } from '../ledger/ledger.js';
import type { StateMismatch } from '../ledger/state-record.js';
import { LEASE_MAX_TTL_SECONDS } from './auth/leases.js';
import { DAY_ROWS_KEPT_DAYS, type TakenWindow, type WindowKey } from './budget.js';

/** What an action_call event records of its debit. */
export interface RecordedDebit {
  windows: TakenWindow[];
  cost: number;
  refunded: boolean;
}

export interface BudgetShortfall {
  key: WindowKey;
  principal: string;
  expires_at: string;
  /** The row's usage; null: the row is gone. */
  table: { calls: number; cost: number } | null;
  /** What the chain's events add up to for the window. */
  chain: { calls: number; cost: number };
  /** The newest event that debited the window. */
  by: { id: number; trace_id: string };
}

const DAY_MS = 86_400_000;
// Float sums of costs may differ in the last bits from the row's running sum.
const COST_SLACK = 1e-9;

const keyOf = (k: WindowKey) => JSON.stringify([k.window, k.owner, k.action, k.day]);

function isWindow(v: unknown): v is TakenWindow {
  const w = v as TakenWindow;
  return typeof w === 'object' && w !== null && (w.window === 'lease' || w.window === 'day') && typeof w.owner === 'string' && typeof w.action === 'string' && typeof w.day === 'string' && typeof w.expires_at === 'string';
}

function debitOf(details: unknown): RecordedDebit | undefined {
  const d = (details as { budget_debit?: RecordedDebit } | undefined)?.budget_debit;
  if (!d || !Array.isArray(d.windows) || !d.windows.every(isWindow) || typeof d.cost !== 'number' || typeof d.refunded !== 'boolean') return undefined;
  return d;
}

/** The windows still open at `now` whose row counts less than the chain's events (or is gone). Only reads. */
export function budgetShortfalls(db: Db, now = new Date()): BudgetShortfall[] {
  if (!db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'budget_windows'`).get()) return [];
  // Every window still open began at most this long ago (a day window is kept DAY_ROWS_KEPT_DAYS from its day's start).
  const since = new Date(now.getTime() - (DAY_ROWS_KEPT_DAYS + 1) * DAY_MS - LEASE_MAX_TTL_SECONDS * 1000).toISOString();
  const rows = db.prepare(`SELECT id, trace_id, principal, event_json FROM audit_events WHERE event_type = 'action_call' AND timestamp >= ? ORDER BY id`).iterate(since) as IterableIterator<{ id: number; trace_id: string; principal: string | null; event_json: string }>;
  const sums = new Map<string, Omit<BudgetShortfall, 'table'>>();
  const nowIso = now.toISOString();
  for (const r of rows) {
    let debit: RecordedDebit | undefined;
    try {
      debit = debitOf((JSON.parse(r.event_json) as { details?: unknown }).details);
    } catch {
      debit = undefined; // an unreadable event is verify's to report, not this check's
    }
    if (!debit || debit.refunded) continue;
    for (const w of debit.windows) {
      if (w.expires_at <= nowIso) continue;
      const k = keyOf(w);
      const s = sums.get(k) ?? { key: { window: w.window, owner: w.owner, action: w.action, day: w.day }, principal: r.principal ?? '', expires_at: w.expires_at, chain: { calls: 0, cost: 0 }, by: { id: r.id, trace_id: r.trace_id } };
      s.chain.calls += 1;
      s.chain.cost += debit.cost;
      s.by = { id: r.id, trace_id: r.trace_id };
      sums.set(k, s);
    }
  }
  const row = db.prepare('SELECT calls_used, cost_used FROM budget_windows WHERE window = @window AND owner = @owner AND action = @action AND day = @day');
  const out: BudgetShortfall[] = [];
  for (const s of sums.values()) {
    const r = row.get(s.key) as { calls_used: number; cost_used: number } | undefined;
    if (r && r.calls_used >= s.chain.calls && r.cost_used >= s.chain.cost - COST_SLACK) continue;
    out.push({ ...s, table: r ? { calls: r.calls_used, cost: r.cost_used } : null });
  }
  return out;
}

const describe = (k: WindowKey) => `the ${k.window} window of ${k.window === 'lease' ? `lease ${k.owner}` : `${k.owner} on ${k.day}`}${k.action ? ` for ${k.action}` : ''}`;

/** The shortfalls as `latchgate verify` reports them. */
export function budgetMismatches(db: Db, now = new Date()): StateMismatch[] {
  return budgetShortfalls(db, now).map((s) => ({
    table: 'budget_windows',
    found: s.table ? s.table.calls : null,
    recorded: s.chain.calls,
    recorded_by: { ...s.by, event_type: 'action_call' },
    message: `budget_windows: ${describe(s.key)} counts ${s.table ? `${s.table.calls} calls (cost ${s.table.cost})` : 'nothing (its row is gone)'}, but the ledger's chain records ${s.chain.calls} calls (cost ${s.chain.cost}) in it (the newest: action_call event id=${s.by.id}, trace_id ${s.by.trace_id}): the table was changed outside latchgate to allow calls the budget refuses. Fix: start the gate (latchgate up, or any latchgate command that opens it): it puts the count back to the chain's and records budget_counts_restored; or restore the state directory from a backup`,
  }));
}

/**
 * Puts every short window back to the chain's count (never lowers one) and
 * records what it changed, in one transaction. Returns the windows restored.
 */
export function restoreBudgetCounts(ledger: Ledger, now = new Date()): BudgetShortfall[] {
  const db = ledger.db;
  return db.transaction(() => {
    const short = budgetShortfalls(db, now);
    if (!short.length) return short;
    const put = db.prepare(`INSERT INTO budget_windows (window, owner, action, day, principal, calls_used, cost_used, expires_at)
      VALUES (@window, @owner, @action, @day, @principal, @calls, @cost, @expires_at)
      ON CONFLICT (window, owner, action, day) DO UPDATE SET calls_used = MAX(calls_used, excluded.calls_used), cost_used = MAX(cost_used, excluded.cost_used)`);
    for (const s of short) put.run({ ...s.key, principal: s.principal, calls: s.chain.calls, cost: s.chain.cost, expires_at: s.expires_at });
    ledger.appendInTransaction({
      event_type: 'budget_counts_restored',
      decision: 'deny',
      details: { windows: short.map((s) => ({ ...s.key, table: s.table, chain: s.chain, recorded_by: s.by })) },
    });
    return short;
  }).immediate();
}

/** One line for the operator about a restore. */
export function budgetRestoredMessage(restored: readonly BudgetShortfall[]): string {
  return `${restored.length} budget window(s) counted fewer calls than the ledger's chain records (budget_windows was edited outside latchgate): put back to the chain's count and recorded as budget_counts_restored (see latchgate audit --event-type budget_counts_restored): ${restored.map((s) => describe(s.key)).join('; ')}`;
}
