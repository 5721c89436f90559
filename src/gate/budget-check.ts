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
import { chainedRowsOf } from '../ledger/state-record.js';
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

/** A window whose own debits, as the chain records them, went past the limit each debit recorded. */
export interface BudgetOverspend {
  key: WindowKey;
  /** The calls (and cost) the window had counted with the debit that went over. */
  calls: number;
  cost: number;
  max_calls?: number;
  max_cost?: number;
  by: { id: number; trace_id: string };
}

/** What the chain says of the budget windows still open. */
export interface BudgetCheck {
  short: BudgetShortfall[];
  /** Windows the chain shows spent past their limit: the count was lowered while a gate ran, and put back. */
  overspent: BudgetOverspend[];
  /** action_call events read for the check that no longer match their hash (or their indexed type): the chain was edited. */
  edited: { id: number; trace_id: string }[];
}

/**
 * The windows still open at `now` whose row counts less than the chain's
 * events (or is gone). The events are read from the table itself, newest
 * first, each checked against its hash (src/ledger/state-record.ts
 * chainedRowsOf), until one is older than any window still open. Only reads.
 */
export function checkBudgets(db: Db, now = new Date(), history = false): BudgetCheck {
  const out: BudgetCheck = { short: [], overspent: [], edited: [] };
  if (!db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'budget_windows'`).get()) return out;
  // Every window still open began at most this long ago (a day window is kept DAY_ROWS_KEPT_DAYS from its day's start).
  const since = new Date(now.getTime() - (DAY_ROWS_KEPT_DAYS + 1) * DAY_MS - LEASE_MAX_TTL_SECONDS * 1000).toISOString();
  const sums = new Map<string, Omit<BudgetShortfall, 'table'>>();
  /** Each window's debits, newest first, with the limits they were held to. */
  const debits = new Map<string, { cost: number; max_calls?: number; max_cost?: number; id: number; trace_id: string }[]>();
  const nowIso = now.toISOString();
  for (const r of chainedRowsOf(db, ['action_call'])) {
    if (r.edited) {
      out.edited.push({ id: r.id, trace_id: r.trace_id });
      continue;
    }
    const at = r.event?.timestamp;
    // The whole chain for verify's overspend check (history); the windows still open otherwise.
    if (!history && typeof at === 'string' && at < since) break;
    const debit = debitOf(r.event?.details);
    if (!debit || debit.refunded) continue;
    const principal = (r.event?.subject as { principal?: unknown } | undefined)?.principal;
    for (const w of debit.windows) {
      const open = w.expires_at > nowIso;
      if (!open && !history) continue;
      const k = keyOf(w);
      // Newest first: the first event seen for a window is its newest.
      const s = sums.get(k) ?? { key: { window: w.window, owner: w.owner, action: w.action, day: w.day }, principal: typeof principal === 'string' ? principal : '', expires_at: w.expires_at, chain: { calls: 0, cost: 0 }, by: { id: r.id, trace_id: r.trace_id } };
      s.chain.calls += 1;
      s.chain.cost += debit.cost;
      sums.set(k, s);
      const list = debits.get(k) ?? [];
      list.push({ cost: debit.cost, ...(w.max_calls !== undefined ? { max_calls: w.max_calls } : {}), ...(w.max_cost !== undefined ? { max_cost: w.max_cost } : {}), id: r.id, trace_id: r.trace_id });
      debits.set(k, list);
    }
  }
  // The chain alone: the i-th debit of a window (oldest first) must fit the limits that debit was held to.
  // The first one (the oldest) that went over is reported.
  for (const [k, list] of debits) {
    let calls = list.length;
    let cost = list.reduce((n, d) => n + d.cost, 0);
    let first: BudgetOverspend | undefined;
    for (const d of list) {
      if ((d.max_calls !== undefined && calls > d.max_calls) || (d.max_cost !== undefined && cost > d.max_cost + COST_SLACK)) {
        first = { key: sums.get(k)!.key, calls, cost, ...(d.max_calls !== undefined ? { max_calls: d.max_calls } : {}), ...(d.max_cost !== undefined ? { max_cost: d.max_cost } : {}), by: { id: d.id, trace_id: d.trace_id } };
      }
      calls -= 1;
      cost -= d.cost;
    }
    if (first) out.overspent.push(first);
  }
  const row = db.prepare('SELECT calls_used, cost_used FROM budget_windows WHERE window = @window AND owner = @owner AND action = @action AND day = @day');
  for (const s of sums.values()) {
    if (s.expires_at <= nowIso) continue; // a window past its expiry has no row to compare
    const r = row.get(s.key) as { calls_used: unknown; cost_used: unknown } | undefined;
    const calls = typeof r?.calls_used === 'number' ? r.calls_used : NaN;
    const cost = typeof r?.cost_used === 'number' ? r.cost_used : NaN;
    if (r && calls >= s.chain.calls && cost >= s.chain.cost - COST_SLACK) continue;
    out.short.push({ ...s, table: r ? { calls, cost } : null });
  }
  return out;
}

/** The table name of a history finding: nothing to put back, so it does not stop a gate from starting. */
export const BUDGET_HISTORY = 'budget_windows (history)';

const describe = (k: WindowKey) => `the ${k.window} window of ${k.window === 'lease' ? `lease ${k.owner}` : `${k.owner} on ${k.day}`}${k.action ? ` for ${k.action}` : ''}`;

/** The shortfalls, overspends (over the whole chain with history) and edited debit records as `latchgate verify` reports them. */
export function budgetMismatches(db: Db, now = new Date(), history = false): StateMismatch[] {
  const c = checkBudgets(db, now, history);
  return [
    ...c.edited.map((e) => ({
      table: 'budget_windows',
      found: null,
      recorded: null,
      recorded_by: { ...e, event_type: 'action_call' },
      message: `budget_windows: the action_call event id=${e.id} (trace_id ${e.trace_id}) that records a debit no longer matches its hash, or its event_type column was changed: the ledger was edited, and the budget's use cannot be told. Refusing to rely on budget_windows. Fix: restore the state directory from a backup; \`latchgate verify\` names the edited event`,
    })),
    ...c.overspent.map((o) => ({
      table: BUDGET_HISTORY,
      found: o.calls,
      recorded: o.max_calls ?? null,
      recorded_by: { ...o.by, event_type: 'action_call' },
      message: `${BUDGET_HISTORY}: ${describe(o.key)} was spent past its limit: the chain's action_call event id=${o.by.id} (trace_id ${o.by.trace_id}) is call ${o.calls} (cost ${o.cost}) against a limit of ${o.max_calls ?? 'unlimited'} calls (cost ${o.max_cost ?? 'unlimited'}) that the same event records. budget_windows was lowered while a gate ran and put back since. Fix: find who could write the state directory; make it writable only by the gate's user`,
    })),
    ...c.short.map((s) => ({
      table: 'budget_windows',
      found: s.table ? s.table.calls : null,
      recorded: s.chain.calls,
      recorded_by: { ...s.by, event_type: 'action_call' },
      message: `budget_windows: ${describe(s.key)} counts ${s.table ? `${s.table.calls} calls (cost ${s.table.cost})` : 'nothing (its row is gone)'}, but the ledger's chain records ${s.chain.calls} calls (cost ${s.chain.cost}) in it (the newest: action_call event id=${s.by.id}, trace_id ${s.by.trace_id}): the table was changed outside latchgate to allow calls the budget refuses. Fix: start the gate (latchgate up, or any latchgate command that opens it): it puts the count back to the chain's and records budget_counts_restored; or restore the state directory from a backup`,
    })),
  ];
}

/**
 * Puts every short window back to the chain's count (never lowers one) and
 * records what it changed, in one transaction. Returns the windows restored.
 */
export function restoreBudgetCounts(ledger: Ledger, now = new Date()): BudgetShortfall[] {
  const db = ledger.db;
  return db.transaction(() => {
    const short = checkBudgets(db, now).short;
    if (!short.length) return short;
    const put = db.prepare(`INSERT INTO budget_windows (window, owner, action, day, principal, calls_used, cost_used, expires_at)
      VALUES (@window, @owner, @action, @day, @principal, @calls, @cost, @expires_at)
      ON CONFLICT (window, owner, action, day) DO UPDATE SET calls_used = excluded.calls_used, cost_used = excluded.cost_used`);
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
