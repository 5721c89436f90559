// What is left of the budgets, for operators (`latchgate status`, `latchgate
// policy show`, GET /v1/admin/policy): per principal today's day windows,
// the limits per lease and what each live lease has left; per action where
// the operator configured one.
import { utcDay, type Budgets, type WindowState } from './budget.js';

/** One limit: null where there is none (unlimited). */
export interface Left {
  limit: number | null;
  used: number;
  left: number | null;
}

export interface WindowReport {
  calls: Left;
  cost: Left;
}

export interface PrincipalBudgetReport {
  principal: string;
  /** The section whose limits apply, or null: none (unlimited). */
  source: string | null;
  /** Today's (UTC) day window. */
  day: WindowReport;
  /** The limits per lease (a lease request may have narrowed its own). */
  per_lease: { calls: number | null; cost: number | null };
  /** The principal's unexpired leases and what each has left. */
  leases: ({ session_id: string; expires_at: string } & WindowReport)[];
  actions: { action_id: string; source: string; day: WindowReport; per_lease: { calls: number | null; cost: number | null } }[];
}

export interface BudgetReport {
  /** False: no [budgets] configured, every principal is unlimited. */
  configured: boolean;
  /** The UTC day the day windows are of. */
  day: string;
  principals: PrincipalBudgetReport[];
}

function left(limit: number | undefined, used: number): Left {
  return { limit: limit ?? null, used, left: limit === undefined ? null : Math.max(limit - used, 0) };
}

const report = (w: WindowState | undefined): WindowReport => ({ calls: left(w?.limits.calls, w?.used.calls ?? 0), cost: left(w?.limits.cost, w?.used.cost ?? 0) });
const perLease = (w: WindowState | undefined) => ({ calls: w?.limits.calls ?? null, cost: w?.limits.cost ?? null });

/** Budgets of one principal, or of every principal configured or seen today. */
export function budgetReport(b: Budgets, principal?: string, now = new Date()): BudgetReport {
  const day = utcDay(now);
  const names = principal !== undefined ? [principal] : [...new Set([...b.rules.principals, ...b.principalsOn(day)])].sort();
  const principals = names.map((p): PrincipalBudgetReport => {
    const own = b.windows({ principal: p, session_id: '' }, now);
    const find = (ws: WindowState[], window: 'lease' | 'day', action?: string) => ws.find((w) => w.window === window && w.action_id === action);
    const entry = b.rules.entry(p);
    return {
      principal: p,
      source: entry ? `[${entry.section}]` : null,
      day: report(find(own, 'day')),
      per_lease: perLease(find(own, 'lease')),
      leases: b.liveLeases(p, now).map((l) => ({ session_id: l.session_id, expires_at: l.expires_at, ...report(find(b.windows({ principal: p, session_id: l.session_id }, now), 'lease')) })),
      actions: [...new Set(b.rules.actionRules(p).map((r) => r.action_id!))].map((a) => {
        const ws = b.windows({ principal: p, session_id: '', action_id: a }, now);
        const d = find(ws, 'day', a);
        return { action_id: a, source: d?.source ?? '', day: report(d), per_lease: perLease(find(ws, 'lease', a)) };
      }),
    };
  });
  return { configured: b.rules.configured, day, principals };
}

const fmt = (w: WindowReport) => (['calls', 'cost'] as const).map((k) => (w[k].limit === null ? `${k} ${w[k].used} used (no limit)` : `${k} ${w[k].left} left of ${w[k].limit}`)).join(', ');
const fmtLease = (p: { calls: number | null; cost: number | null }) => `calls ${p.calls ?? 'no limit'}, cost ${p.cost ?? 'no limit'}`;

/** The report as lines for a terminal. */
export function budgetLines(r: BudgetReport): string[] {
  const out = [`budgets:    ${r.configured ? `configured, day ${r.day} (UTC)` : 'none configured: every principal is unlimited'}`];
  for (const p of r.principals) {
    out.push(`  ${p.principal} ${p.source ?? '(unlimited)'}: today ${fmt(p.day)}; per lease ${fmtLease(p.per_lease)}`);
    for (const l of p.leases) out.push(`    lease ${l.session_id} (until ${l.expires_at}): ${fmt(l)}`);
    for (const a of p.actions) out.push(`    action ${a.action_id}: today ${fmt(a.day)}; per lease ${fmtLease(a.per_lease)}`);
  }
  return out;
}
