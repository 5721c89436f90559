// The gate's pipeline: every execution runs these stages in this order, each
// a module of src/gate/stages/ named for what it does, each filling in the one
// Execution (src/gate/execution.ts). The first stage that answers ends the
// run; a refusal anywhere ends it too, and is recorded with the event as
// built so far. An execution an operator approves resumes after the hold.
import { randomUUID } from 'node:crypto';
import type { AuditEventInput } from '../core/audit-event.js';
import { immediate } from '../ledger/db.js';
import type { Caller, RequestAuth } from './app.js';
import type { Approval } from './approvals.js';
import { appendEvent, asGateError, eventError, recorded } from './audit.js';
import type { GateContext } from './context.js';
import { GateError } from './errors.js';
import { need, type Execution, type Reply, type Stage, type SyncStage } from './execution.js';
import { timed, timing } from './stage-timing.js';
import { authenticate } from './stages/authenticate.js';
import { decidePolicy } from './stages/decide-policy.js';
import { dispatch } from './stages/dispatch.js';
import { approvedExecution, holdForApproval } from './stages/hold-for-approval.js';
import { openCallHosts } from './stages/open-call-hosts.js';
import { planExecution } from './stages/plan-execution.js';
import { startProvider } from './stages/start-provider.js';
import { precheckTargets } from './stages/precheck-targets.js';
import { recheckPlan } from './stages/recheck-plan.js';
import { recordIntent } from './stages/record-intent.js';
import { replayIdempotent } from './stages/replay-idempotent.js';
import { requireSecrets } from './stages/require-secrets.js';
import { reserveAndSignGrant } from './stages/reserve-and-sign-grant.js';
import { resolveAction } from './stages/resolve-action.js';
import { validateRequest } from './stages/validate-request.js';
import { verifyAndReceipt } from './stages/verify-and-receipt.js';

/** Synchronous stages run as one step, in one write transaction. */
interface Together {
  readonly together: readonly SyncStage[];
}
type Step = Stage | Together;

export const PIPELINE: readonly Step[] = [
  authenticate,
  resolveAction,
  validateRequest,
  replayIdempotent,
  precheckTargets,
  decidePolicy,
  planExecution,
  holdForApproval,
  recheckPlan,
  requireSecrets,
  openCallHosts,
  startProvider,
  // Debit, grant and intent commit together: a refusal on the way rolls the
  // debit back, and no other gate can slip in between.
  { together: [reserveAndSignGrant, recordIntent] },
  dispatch,
  verifyAndReceipt,
];

const namesOf = (s: Step): string[] => ('together' in s ? s.together.map((f) => f.name) : [s.name]);

/** The stages by name, in the order they run. */
export const STAGE_NAMES: readonly string[] = PIPELINE.flatMap(namesOf);

/** Each step's name as src/gate/stage-timing.ts publishes it: the stages of one transaction joined by '+'. */
export const STEP_NAMES: readonly string[] = PIPELINE.map((s) => namesOf(s).join('+'));

/** Where an approved execution goes on: the stage after the hold. */
export const RESUME_AFTER_APPROVAL = STAGE_NAMES[STAGE_NAMES.indexOf('holdForApproval') + 1]!;

/** Where a refused request is counted (the service's coalescer). */
export interface Refusals {
  refusal(caller: Caller | undefined, e: AuditEventInput): void;
}

export class Pipeline {
  constructor(private readonly ctx: GateContext, private readonly refusals: Refusals) {}

  /** A client's request, from the first stage. */
  execute(caller: Caller, actionId: string, body: unknown, auth: RequestAuth): Promise<Reply> {
    const traceId = randomUUID();
    return this.run({
      traceId,
      caller,
      auth,
      actionId,
      request: body,
      onEnd: [],
      event: { event_type: 'action_call', trace_id: traceId, subject: { principal: caller.principal, identity_method: caller.transport }, action: { action_id: actionId } },
    });
  }

  /** An approved plan, from the stage after the hold; its answer is kept for the client's poll. */
  async resume(a: Approval, operator: string): Promise<Reply> {
    const x = approvedExecution(this.ctx, a, operator);
    try {
      const r = await this.run(x, RESUME_AFTER_APPROVAL);
      this.ctx.approvals.setResult(a.approval_id, need(x, 'receipt').receipt_id, r.status, r.body);
      return r;
    } catch (e) {
      if (e instanceof GateError) this.ctx.approvals.setResult(a.approval_id, null, e.status, e.body());
      throw e;
    }
  }

  /** Runs the stages from the one named `from` (the first by default) until one answers. */
  async run(x: Execution, from?: string): Promise<Reply> {
    const start = from === undefined ? 0 : PIPELINE.findIndex((s) => namesOf(s)[0] === from);
    if (start < 0) throw new Error(`no step of the pipeline starts with a stage named ${from}`);
    try {
      try {
        for (let i = start; i < PIPELINE.length; i++) {
          const step = PIPELINE[i]!;
          const started = timing();
          if ('together' in step) {
            immediate(this.ctx.db, () => {
              for (const s of step.together) s(this.ctx, x);
            });
          } else {
            // Synchronous stages run back to back, as one piece of code would.
            const pending = step(this.ctx, x);
            if (pending) await pending;
          }
          timed(x.traceId, STEP_NAMES[i]!, started);
          if (x.reply) {
            if (x.idempotency && x.idempotencyClaimed) this.ctx.idempotency.answer(x.idempotency, x.reply);
            return x.reply;
          }
        }
      } finally {
        for (const f of x.onEnd) f();
      }
      throw new Error('the pipeline ended without an answer');
    } catch (e) {
      const g = asGateError(e);
      if (!recorded.has(g)) {
        const failed: AuditEventInput = { ...x.event, decision: g.status >= 500 ? 'error' : 'deny', error: eventError(g) };
        // An approved run is an operator's act: its outcome is written in full, never counted into a summary.
        if (x.approval) appendEvent(this.ctx, failed);
        else this.refusals.refusal(x.caller, failed);
        recorded.add(g);
      }
      throw g;
    }
  }
}
