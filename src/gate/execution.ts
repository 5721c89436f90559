// One execution as the stages fill it in, in the order of the pipeline
// (src/gate/pipeline.ts): each stage reads what earlier ones left and adds
// its own part, and the audit event is built along the way.
import type { AuditEventInput } from '../core/audit-event.js';
import type { ExecutionReceipt } from '../ledger/receipt.js';
import type { PolicyDecision, PolicyInput } from '../policy/types.js';
import type { PolicyData } from '../policy/engine.js';
import type { Caller, RequestAuth } from './app.js';
import type { BudgetSnapshot, TakenWindow } from './budget.js';
import type { GateContext } from './context.js';
import type { HostIo, ProviderOutput } from './providers.js';
import type { CallHosts } from './provider-hosts.js';
import type { LoadedAction } from './registry.js';
import type { KeyedRequest } from './idempotency.js';
import type { ExpandedRequest } from './templates.js';
import type { ExecutionGrant, ExecutionPlanCore } from './types.js';

/** text: the body as JSON, when made ahead (while the evidence was synced); the body otherwise. */
export type Reply = { status: number; body: Record<string, unknown>; text?: string };

export interface Session {
  principal: string;
  session_id: string;
  lease_jti: string;
  scopes: string[];
  jkt: string;
  /** The revocation epoch the lease was issued in: an approved plan runs only while it is still current. */
  lease_epoch: number;
  /** The lease's exp (unix seconds): an approved plan runs only while its lease lives. */
  lease_expires_at: number;
  /** The client token the lease was issued through: an approved plan runs only while it stands. */
  token_id?: string;
}

export interface Prechecked {
  call?: ExpandedRequest;
  targets: string[];
  unresolved_domains: string[];
  unresolved_paths: string[];
  fs_path?: string;
  category: string;
}

export interface Decided {
  input: PolicyInput;
  decision: PolicyDecision;
  budget: BudgetSnapshot;
  /** The policy data the decision was made on: the call commits only while it is still the gate's (src/gate/still-stands.ts). */
  data: PolicyData;
}

/** What an approval holds and a grant binds: the plan, and the request it was made for. */
export interface ExecutionPlan {
  core: ExecutionPlanCore;
  session: Session;
  request: unknown;
  cost: number;
}

export interface Dispatched {
  output?: ProviderOutput;
  failure_class?: ExecutionReceipt['failure_class'];
  error?: string;
  io: HostIo;
  started_at: string;
  finished_at: string;
  duration_ms: number;
}

/** The provider's call, started before the grant: its I/O waits for release() (dispatch, once the intent is durable). */
export interface ProviderRun {
  /** The id the grant will carry (the provider's task names it). */
  grantId: string;
  io: HostIo;
  outcome: Promise<Omit<Dispatched, 'io' | 'started_at' | 'finished_at' | 'duration_ms'>>;
  /** Lets the I/O calls go, or fails each of them with `failure`. */
  release(failure?: Error): void;
  started_at: string;
  t0: number;
}

export interface Execution {
  readonly traceId: string;
  /** The client as the transport identified it; an approved run has none (an operator resumed it). */
  readonly caller?: Caller;
  readonly auth?: RequestAuth;
  readonly actionId: string;
  /** The request body as sent (an approved run: as its plan holds it). */
  readonly request: unknown;
  /** The audit event this execution ends with, whether it runs or is refused. */
  event: AuditEventInput;
  /** Undone when the run ends, however it ends. */
  readonly onEnd: (() => void)[];
  session?: Session;
  action?: LoadedAction;
  trust?: PolicyInput['action_trust_verdict'];
  requestHash?: string;
  /** The request's Idempotency-Key, new to its principal: claimed with the intent or the hold, answered at the end. */
  idempotency?: KeyedRequest;
  /** True once that key is claimed: the run's answer is stored under it. */
  idempotencyClaimed?: boolean;
  pre?: Prechecked;
  decided?: Decided;
  plan?: ExecutionPlan;
  /** Set on a run an operator approved. */
  approval?: { id: string; approved_by: string; approval_hash: string };
  /** The call's host functions, or why the configuration cannot serve the action (then nothing runs). */
  hosts?: { hosts: CallHosts; unserved?: undefined } | { hosts?: undefined; unserved: string };
  providerRun?: ProviderRun;
  grant?: ExecutionGrant;
  /** The debit: the policy's view before and after, and the windows it took from (a refund gives back to each). */
  debit?: { before: Record<string, number>; after: Record<string, number>; taken: TakenWindow[]; cost: number };
  dispatched?: Dispatched;
  receipt?: ExecutionReceipt;
  /** The answer; a stage that sets it ends the run. */
  reply?: Reply;
}

export type Stage = (ctx: GateContext, x: Execution) => void | Promise<void>;

/** A stage that may run inside a write transaction. */
export type SyncStage = (ctx: GateContext, x: Execution) => void;

/** What an earlier stage must have set; missing, the pipeline's order is wrong. */
export function need<K extends keyof Execution>(x: Execution, k: K): NonNullable<Execution[K]> {
  const v = x[k];
  if (v === undefined || v === null) throw new Error(`the execution has no ${String(k)} yet: a stage that sets it must run first (src/gate/pipeline.ts)`);
  return v as NonNullable<Execution[K]>;
}
