// The operator's budgets ([budgets] of latchgate.toml) as rules: which
// windows apply to a principal's call of an action, with which limits, and
// what a lease request may ask for. Counting is src/gate/budget.ts.
import type { BudgetConfig } from '../config/latchgate-toml.js';
import type { LeaseBudgets } from './auth/leases.js';
import { GateError } from './errors.js';

/** The entry that applies to principals without their own. */
export const DEFAULT_BUDGET = 'default';

export type WindowKind = 'lease' | 'day';

export interface Limits {
  calls?: number;
  cost?: number;
}

/** One window's limits and where the operator set them. */
export interface WindowRule {
  window: WindowKind;
  /** Set on an action's own window; absent on the principal's (every action together). */
  action_id?: string;
  limits: Limits;
  /** The configuration section that set the limits, e.g. `[budgets.alice]`. */
  source: string;
}

type Entry = BudgetConfig extends Map<string, infer E> ? E : never;
type LimitKeys = Pick<Entry, 'callsPerLease' | 'costPerLease' | 'callsPerDay' | 'costPerDay'>;

const KEY = { calls: { lease: 'calls_per_lease', day: 'calls_per_day' }, cost: { lease: 'cost_per_lease', day: 'cost_per_day' } } as const;

/** The configuration key of a window's limit: `calls_per_day`. */
export function limitKey(what: keyof Limits, window: WindowKind): string {
  return KEY[what][window];
}

const quoted = (s: string) => (/^[A-Za-z0-9_-]+$/.test(s) ? s : JSON.stringify(s));

function limitsOf(e: LimitKeys, window: WindowKind): Limits {
  const calls = window === 'lease' ? e.callsPerLease : e.callsPerDay;
  const cost = window === 'lease' ? e.costPerLease : e.costPerDay;
  return { ...(calls !== undefined ? { calls } : {}), ...(cost !== undefined ? { cost } : {}) };
}

export class BudgetRules {
  private readonly config: BudgetConfig;

  constructor(config?: BudgetConfig) {
    this.config = config ?? new Map();
  }

  /** Whether the operator configured any budget (none: every principal is unlimited). */
  get configured(): boolean {
    return this.config.size > 0;
  }

  /** The principals with an entry of their own (not `default`). */
  get principals(): string[] {
    return [...this.config.keys()].filter((p) => p !== DEFAULT_BUDGET);
  }

  /** The entry that applies to a principal and its section name, or undefined (unlimited). */
  entry(principal: string): { entry: Entry; section: string } | undefined {
    const own = this.config.get(principal);
    const name = own ? principal : DEFAULT_BUDGET;
    const entry = own ?? this.config.get(DEFAULT_BUDGET);
    return entry ? { entry, section: `budgets.${quoted(name)}` } : undefined;
  }

  /** The action ids configured anywhere (checked against the registry when the gate opens). */
  actionIds(): { action_id: string; section: string }[] {
    return [...this.config].flatMap(([p, e]) => [...e.actions.keys()].map((a) => ({ action_id: a, section: `[budgets.${quoted(p)}.actions.${JSON.stringify(a)}]` })));
  }

  /** The windows of a principal's call, the principal's first; with action_id, the action's as well when configured. */
  rules(principal: string, actionId?: string): WindowRule[] {
    const found = this.entry(principal);
    const out: WindowRule[] = [];
    for (const window of ['lease', 'day'] as const) {
      out.push({ window, limits: found ? limitsOf(found.entry, window) : {}, source: found ? `[${found.section}]` : '(no budget configured)' });
    }
    const action = actionId === undefined ? undefined : found?.entry.actions.get(actionId);
    if (action && found) {
      const source = `[${found.section}.actions.${JSON.stringify(actionId)}]`;
      for (const window of ['lease', 'day'] as const) out.push({ window, action_id: actionId!, limits: limitsOf(action, window), source });
    }
    return out;
  }

  /** The actions a principal's entry limits, with their windows. */
  actionRules(principal: string): WindowRule[] {
    const found = this.entry(principal);
    return found ? [...found.entry.actions.keys()].flatMap((a) => this.rules(principal, a).filter((r) => r.action_id !== undefined)) : [];
  }

  /**
   * A lease request may narrow its lease, never widen it: each of its
   * budgets must fit within the principal's limits per lease and per day.
   * More is refused (400 budget_exceeds_limit), naming the field and limit.
   */
  checkLeaseRequest(principal: string, req: LeaseBudgets | undefined): void {
    const found = this.entry(principal);
    if (!req || !found) return;
    const asks = [
      ['max_calls', req.max_calls, 'calls'],
      ['max_cost', req.max_cost, 'cost'],
    ] as const;
    for (const [field, asked, what] of asks) {
      if (asked === undefined) continue;
      for (const window of ['lease', 'day'] as const) {
        const limit = limitsOf(found.entry, window)[what];
        if (limit === undefined || asked <= limit) continue;
        const key = limitKey(what, window);
        throw new GateError('budget_exceeds_limit', `budgets.${field} ${asked} exceeds the operator's limit of ${limit} for principal ${JSON.stringify(principal)} ([${found.section}] ${key}); ask for at most ${limit}, or leave budgets.${field} out`, {
          field: `budgets.${field}`,
          requested: asked,
          limit,
          limit_key: `[${found.section}] ${key}`,
        });
      }
    }
  }
}
