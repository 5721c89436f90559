// The gate service: runs the stages in the seeds' order for every execution
// and serves the admin acts. Auto-allowed and approved executions share one
// tail (runPlan): grant, intent, dispatch, receipt.
import { randomUUID } from 'node:crypto';
import { canonicalHash } from '../crypto/jcs.js';
import { DenialCoalescer } from '../ledger/coalesce.js';
import { denialKind } from '../ledger/denial-kinds.js';
import { verifyLedger } from '../ledger/verify.js';
import { immediate } from '../ledger/db.js';
import { LedgerError, type LedgerFilters } from '../ledger/ledger.js';
import type { AdminService, Caller, GateService, RequestAuth } from './app.js';
import { ApprovalError, type Approval } from './approvals.js';
import { AuthError } from './auth/errors.js';
import { issueLease, parseLeaseRequest } from './auth/leases.js';
import type { GateContext } from './context.js';
import { GateError } from './errors.js';
import { admit } from './stages/admit.js';
import { authenticate, type Session } from './stages/authenticate.js';
import { authorize, buildPlan, type ExecutionPlan } from './stages/authorize.js';
import { commitIntent, makeIntentDurable } from './stages/commit.js';
import { decide, denialError } from './stages/decide.js';
import { dispatch } from './stages/dispatch.js';
import { finalize } from './stages/finalize.js';
import { precheck } from './stages/precheck.js';
import type { AuditEventInput } from '../core/audit-event.js';

type Reply = { status: number; body: Record<string, unknown> };

/** Marks an error whose audit event the pipeline already wrote. */
const recorded = new WeakSet<Error>();

function asGateError(e: unknown): GateError {
  if (e instanceof GateError) return e;
  if (e instanceof AuthError) return new GateError(e.code, e.message);
  if (e instanceof ApprovalError) return new GateError(e.code, e.message);
  if (e instanceof LedgerError) return new GateError('invalid_request', e.message);
  throw e;
}

/** Who a refusal is counted against: the caller as the transport identified it. */
function refusalSource(caller: Caller | undefined): string {
  return caller ? JSON.stringify([caller.transport, caller.uid ?? null, caller.principal]) : 'unidentified';
}

export class Gate implements GateService {
  readonly admin: AdminService;
  /** A caller hammering the gate with refused requests gets counted summaries, not one event per refusal. */
  private readonly refusals = new DenialCoalescer({ write: (e) => this.event(e), classify: denialKind });

  constructor(private readonly ctx: GateContext, private readonly approvalTtlSeconds = 300) {
    this.admin = new Admin(ctx, this);
  }

  get maxBodyBytes(): number {
    return this.ctx.settings.maxBodyBytes;
  }

  get publicBaseUrl(): string {
    return this.ctx.settings.publicBaseUrl;
  }

  /** Appends an event, adding what every event carries. */
  event(e: AuditEventInput): void {
    this.ctx.ledger.append({ ...e, ...(this.ctx.settings.sandboxDegraded ? { sandbox_degraded: true } : {}) });
  }

  /**
   * Records a refusal: the first of its kind from this caller in full,
   * repeats counted into summaries (src/ledger/coalesce.ts, denial-kinds.ts
   * say which refusals qualify; the others are written in full here too).
   */
  refusal(caller: Caller | undefined, e: AuditEventInput): void {
    this.refusals.record(e, refusalSource(caller));
  }

  /** Writes the counted refusals; call before the ledger closes. */
  close(): void {
    this.refusals.close();
  }

  health(): Record<string, unknown> {
    return { status: 'ok' };
  }

  async ready() {
    const checks: Record<string, unknown> = { draining: this.ctx.state.draining, actions: this.ctx.registry.list().length, policy_engine: this.ctx.policy.kind };
    try {
      this.ctx.db.prepare('SELECT 1').get();
      checks.ledger = 'ok';
    } catch (e) {
      checks.ledger = (e as Error).message;
      return { status: 'not_ready' as const, checks };
    }
    return { status: this.ctx.state.draining ? ('degraded' as const) : ('ready' as const), checks };
  }

  async issueLease(caller: Caller, body: unknown): Promise<Record<string, unknown>> {
    try {
      const req = parseLeaseRequest(body);
      const lease = await issueLease(
        { principal: caller.principal, allowedScopes: caller.scopes, requestedScopes: req.scopes, dpopJwk: req.dpop_jwk, budgets: req.budgets, ttlSeconds: this.ctx.settings.leaseTtlSeconds },
        { keys: this.ctx.keys, currentEpoch: this.ctx.state.epoch },
      );
      this.ctx.budgets.init(lease.session_id, req.budgets ?? {}, new Date(lease.expires_at));
      this.event({ event_type: 'lease_issued', decision: 'allow', subject: { principal: caller.principal, session_id: lease.session_id, lease_jti: lease.lease_jti, identity_method: caller.transport }, details: { scopes: req.scopes, budgets: req.budgets ?? null, expires_at: lease.expires_at } });
      return { ...lease };
    } catch (e) {
      const g = asGateError(e);
      this.refusal(caller, { event_type: 'lease_denied', decision: 'deny', subject: { principal: caller.principal, identity_method: caller.transport }, error: { code: g.code, message: g.message } });
      recorded.add(g);
      throw g;
    }
  }

  async jwks(): Promise<Record<string, unknown>> {
    this.ctx.keys.current('lease'); // published before the first lease it signs (jwks() alone creates nothing)
    return { ...this.ctx.keys.jwks('lease') };
  }

  private describe(id: string, version?: string) {
    const a = this.ctx.registry.get(id, version);
    if (!a) throw new GateError('action_not_found', `no action ${JSON.stringify(id)}`);
    return a;
  }

  listActions(): Record<string, unknown>[] {
    return this.ctx.registry.list().map((a) => ({
      action_id: a.manifest.action_id,
      version: a.manifest.version,
      risk_level: a.manifest.risk_level,
      tags: a.manifest.tags,
      declared_side_effects: a.manifest.declared_side_effects,
      action_digest: a.action_digest,
    }));
  }

  getAction(id: string): Record<string, unknown> {
    const a = this.describe(id);
    return { ...a.manifest, action_digest: a.action_digest, versions: this.ctx.registry.versions(id) };
  }

  requestSchema(id: string): Record<string, unknown> {
    return this.describe(id).manifest.io.request_schema;
  }

  async execute(caller: Caller, actionId: string, body: unknown, auth: RequestAuth): Promise<Reply> {
    const traceId = randomUUID();
    const ev: AuditEventInput = { event_type: 'action_call', trace_id: traceId, subject: { principal: caller.principal, identity_method: caller.transport }, action: { action_id: actionId } };
    try {
      const session = await authenticate(this.ctx, caller, auth);
      ev.subject = { principal: session.principal, session_id: session.session_id, lease_jti: session.lease_jti, identity_method: caller.transport };
      const admitted = admit(this.ctx, actionId, body);
      const m = admitted.action.manifest;
      ev.action = { action_id: m.action_id, action_version: m.version, action_digest: admitted.action.action_digest, action_trust_verdict: admitted.trust, risk_level: m.risk_level };
      ev.request = { request_hash: admitted.request_hash };
      const pre = precheck(this.ctx, admitted.action, body);
      const dec = await decide(this.ctx, session, admitted, pre);
      ev.policy = { policy_version: dec.decision.policy_version, decision: dec.decision.allow ? (dec.decision.requires_approval ? 'pending_approval' : 'allow') : 'deny', determining_policies: dec.decision.determining_policies, ...(dec.decision.deny_reason ? { deny_reason: dec.decision.deny_reason } : {}) };
      ev.budgets_before = { ...dec.budget };
      if (!dec.decision.allow) throw denialError(dec.decision);
      if (dec.decision.requires_approval) {
        // The plan must outlive the wait for a human.
        const plan = buildPlan(this.ctx, session, admitted, pre, dec, body, new Date(Date.now() + this.approvalTtlSeconds * 1000));
        const a = this.ctx.approvals.create({ action_id: m.action_id, principal: session.principal, session_id: session.session_id, request_hash: admitted.request_hash, plan });
        this.event({ ...ev, decision: 'pending_approval', approval: { approval_id: a.approval_id, plan_hash: a.plan_hash } });
        return { status: 202, body: { decision: 'pending_approval', approval_id: a.approval_id, request_hash: admitted.request_hash, trace_id: traceId, expires_at: a.expires_at } };
      }
      const plan = buildPlan(this.ctx, session, admitted, pre, dec, body);
      return await this.runPlan(plan, traceId, ev);
    } catch (e) {
      const g = asGateError(e);
      if (!recorded.has(g)) {
        this.refusal(caller, { ...ev, decision: g.status >= 500 ? 'error' : 'deny', error: { code: g.code, message: g.message } });
        recorded.add(g);
      }
      throw g;
    }
  }

  /** The one tail every execution takes: debit, grant, intent, dispatch, receipt. */
  async runPlan(plan: ExecutionPlan, traceId: string, ev: AuditEventInput, approval?: { id: string; approved_by: string; approval_hash: string }): Promise<Reply> {
    const action = this.ctx.registry.get(plan.core.action_id, plan.core.action_version);
    if (!action || action.action_digest !== plan.core.action_digest) {
      throw new GateError('action_digest_mismatch', `${plan.core.action_id}@${plan.core.action_version} changed since the plan was made`);
    }
    const pre = precheck(this.ctx, action, plan.request);
    if (canonicalHash(plan.request) !== plan.core.request_hash) throw new GateError('approval_mismatch', 'the stored request does not match its hash');
    // Debit, grant and intent in one write transaction: any refusal on the
    // way rolls the debit back, and no other gate can slip in between.
    const auth = immediate(this.ctx.db, () => {
      const a = authorize(this.ctx, plan, approval);
      commitIntent(this.ctx, a.grant, traceId, approval?.id);
      return a;
    });
    ev.budgets_before = auth.budget_before;
    ev.budgets_after = auth.budget_after;
    // From the intent on, this grant is in flight (not of unknown outcome) until its receipt.
    const running = this.ctx.instances.running;
    running.add(auth.grant.grant_id);
    let f;
    try {
      await makeIntentDurable(this.ctx);
      const d = await dispatch(this.ctx, action, auth.grant, plan.request, pre.call);
      f = await finalize(this.ctx, action, auth.grant, d, traceId, { ...ev, ...(approval ? { approval: { approval_id: approval.id, approved_by: approval.approved_by } } : {}), ...(this.ctx.settings.sandboxDegraded ? { sandbox_degraded: true } : {}) });
    } finally {
      running.delete(auth.grant.grant_id);
    }
    if (approval) this.ctx.approvals.setResult(approval.id, f.receipt.receipt_id, f.status, f.body);
    return { status: f.status, body: f.body };
  }

  /** Expired approvals are recorded once, when first noticed. */
  sweepApprovals(): void {
    for (const a of this.ctx.approvals.expire()) {
      this.event({ event_type: 'approval_expired', decision: 'deny', subject: { principal: a.principal, session_id: a.session_id }, action: { action_id: a.action_id }, approval: { approval_id: a.approval_id, plan_hash: a.plan_hash }, details: { expires_at: a.expires_at } });
    }
  }

  async pollApproval(caller: Caller, id: string, auth: RequestAuth): Promise<Record<string, unknown>> {
    const session: Session = await authenticate(this.ctx, caller, auth).catch((e) => {
      throw asGateError(e);
    });
    this.sweepApprovals();
    const a = this.ctx.approvals.get(id);
    if (!a || a.principal !== session.principal) throw new GateError('approval_not_found', `no approval ${id} for ${session.principal}`);
    return pollView(a);
  }

  async getReceipt(caller: Caller, id: string, auth: RequestAuth | null): Promise<Record<string, unknown>> {
    const r = this.ctx.ledger.getReceipt(id);
    if (auth) {
      const s = await authenticate(this.ctx, caller, auth);
      const intent = r ? this.ctx.db.prepare('SELECT principal FROM execution_intents WHERE grant_id = ?').get(r.grant_id) as { principal: string } | undefined : undefined;
      if (!r || intent?.principal !== s.principal) throw new GateError('receipt_not_found', `no receipt ${id} for ${s.principal}`);
    }
    if (!r) throw new GateError('receipt_not_found', `no receipt ${id}`);
    return { ...r };
  }

  recordRefusal(caller: Caller | undefined, route: string, err: GateError): void {
    if (recorded.has(err)) return;
    recorded.add(err);
    this.refusal(caller, { event_type: 'request_refused', decision: err.status >= 500 ? 'error' : 'deny', subject: { principal: caller?.principal ?? 'unknown', identity_method: caller?.transport }, error: { code: err.code, message: err.message }, details: { route } });
  }
}

export function pollView(a: Approval): Record<string, unknown> {
  const base: Record<string, unknown> = { approval_id: a.approval_id, status: a.status === 'consumed' ? 'approved' : a.status, action_id: a.action_id, request_hash: a.request_hash, expires_at: a.expires_at };
  if (a.status === 'pending') base.retry_after_seconds = 2;
  if (a.decided_by) base.decided_by = a.decided_by;
  if (a.reason) base.reason = a.reason;
  if (a.receipt_id) base.receipt_id = a.receipt_id;
  if (a.result) base.result = a.result;
  return base;
}

/** Admin acts: each needs an operator, and each is recorded with the operator's identity. */
class Admin implements AdminService {
  constructor(private readonly ctx: GateContext, private readonly gate: Gate) {}

  private act(caller: Caller, event_type: string, details: Record<string, unknown> = {}): void {
    this.gate.event({ event_type, decision: 'allow', operator: { name: caller.operator!, ...(caller.uid !== undefined ? { uid: caller.uid } : {}) }, subject: { principal: caller.principal, identity_method: caller.transport }, details });
  }

  approvals(q: { status?: string; limit?: number }): Record<string, unknown>[] {
    this.gate.sweepApprovals();
    const status = q.status === 'all' ? undefined : (q.status ?? 'pending');
    return this.ctx.approvals.list(status as Approval['status'] | undefined, q.limit ?? 50).map((a) => ({ ...pollView(a), principal: a.principal, session_id: a.session_id, created_at: a.created_at, plan_hash: a.plan_hash }));
  }

  approval(id: string): Record<string, unknown> {
    const a = this.ctx.approvals.get(id);
    if (!a) throw new GateError('approval_not_found', `no approval ${id}`);
    return { ...a };
  }

  async approve(caller: Caller, id: string, _body: unknown): Promise<Record<string, unknown>> {
    this.gate.sweepApprovals();
    let a: Approval;
    try {
      a = this.ctx.approvals.decide(id, 'approved', caller.operator!);
    } catch (e) {
      throw asGateError(e);
    }
    const plan = a.plan as ExecutionPlan;
    if (canonicalHash(plan) !== a.plan_hash) throw new GateError('approval_mismatch', `approval ${id}: the stored plan does not match its hash`);
    this.act(caller, 'approval_granted', { approval_id: id, plan_hash: a.plan_hash, approval_hash: a.approval_hash, action_id: a.action_id, principal: a.principal });
    const traceId = randomUUID();
    const ev: AuditEventInput = {
      event_type: 'action_call',
      trace_id: traceId,
      subject: { principal: plan.session.principal, session_id: plan.session.session_id, lease_jti: plan.session.lease_jti },
      action: { action_id: plan.core.action_id, action_version: plan.core.action_version, action_digest: plan.core.action_digest },
      request: { request_hash: plan.core.request_hash },
      policy: { policy_version: plan.core.policy_version, decision: 'allow' },
    };
    try {
      const r = await this.gate.runPlan(plan, traceId, ev, { id, approved_by: caller.operator!, approval_hash: a.approval_hash! });
      return { approval_id: id, status: 'approved', http_status: r.status, result: r.body };
    } catch (e) {
      const g = asGateError(e);
      if (!recorded.has(g)) {
        this.gate.event({ ...ev, decision: g.status >= 500 ? 'error' : 'deny', error: { code: g.code, message: g.message }, approval: { approval_id: id, approved_by: caller.operator! } });
        recorded.add(g);
      }
      this.ctx.approvals.setResult(id, null, g.status, g.body());
      throw g;
    }
  }

  deny(caller: Caller, id: string, body: unknown): Record<string, unknown> {
    const reason = typeof (body as { reason?: unknown })?.reason === 'string' ? (body as { reason: string }).reason : undefined;
    let a: Approval;
    try {
      a = this.ctx.approvals.decide(id, 'denied', caller.operator!, reason);
    } catch (e) {
      throw asGateError(e);
    }
    this.act(caller, 'approval_denied', { approval_id: id, plan_hash: a.plan_hash, reason: reason ?? null, action_id: a.action_id, principal: a.principal });
    return pollView(a);
  }

  auditEvents(q: Record<string, string | undefined>): Record<string, unknown>[] {
    const f: LedgerFilters = {};
    for (const k of ['action', 'principal', 'decision', 'after', 'before', 'trace_id', 'session_id', 'event_type'] as const) if (q[k] !== undefined) f[k] = q[k];
    if (q.limit !== undefined) f.limit = Number(q.limit);
    try {
      return this.ctx.ledger.query(f) as unknown as Record<string, unknown>[];
    } catch (e) {
      throw asGateError(e);
    }
  }

  auditVerify(): Record<string, unknown> {
    return { ...verifyLedger(this.ctx.db, this.ctx.keys) };
  }

  revokeAll(caller: Caller): Record<string, unknown> {
    const epoch = this.ctx.state.advanceEpoch();
    this.act(caller, 'admin_revoke_all', { epoch });
    return { epoch };
  }

  epoch(): Record<string, unknown> {
    return { epoch: this.ctx.state.epoch };
  }

  drain(caller: Caller): Record<string, unknown> {
    this.ctx.state.draining = true;
    this.act(caller, 'admin_drain');
    return { draining: true };
  }

  reload(caller: Caller): Record<string, unknown> {
    const r = this.ctx.registry.reload();
    this.act(caller, 'admin_reload', { ok: r.ok, generation: r.generation, ...(r.ok ? { actions: r.actions } : { errors: r.message }) });
    if (!r.ok) throw new GateError('invalid_request', `reload refused, the previous manifests stay active: ${r.message}`);
    return { ...r };
  }

  receiptKeys(caller: Caller): Record<string, unknown> {
    this.act(caller, 'admin_receipt_keys_read');
    this.ctx.keys.current('receipt'); // the key the next receipt is signed with is listed too
    return { ...this.ctx.keys.jwks('receipt') };
  }

  async keysRotate(caller: Caller, body: unknown): Promise<Record<string, unknown>> {
    const kind = (body as { kind?: unknown })?.kind ?? 'receipt';
    if (kind !== 'receipt' && kind !== 'grant' && kind !== 'lease') throw new GateError('invalid_request', 'kind: expected "receipt", "grant" or "lease"');
    const { kid } = this.ctx.keys.rotate(kind);
    this.act(caller, 'admin_keys_rotated', { kind, kid });
    return { kind, kid };
  }

  policyShow(principal?: string): Record<string, unknown> {
    return principal ? { ...this.ctx.policyStore.show(principal) } : { principals: this.ctx.policyStore.list() };
  }

  policyGrant(caller: Caller, body: unknown): Record<string, unknown> {
    const b = parsePolicyBody(body);
    const change = this.ctx.policyStore.grant(b.principal, b.actions, b.sinks);
    this.act(caller, change.event_type, { ...change.details });
    return { ...change.details };
  }

  policyRevoke(caller: Caller, body: unknown): Record<string, unknown> {
    const b = parsePolicyBody(body);
    const change = this.ctx.policyStore.revoke(b.principal, b.actions);
    this.act(caller, change.event_type, { ...change.details });
    return { ...change.details };
  }
}

function parsePolicyBody(body: unknown): { principal: string; actions: string[]; sinks?: string[] } {
  const b = body as { principal?: unknown; actions?: unknown; sinks?: unknown } | undefined;
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (!b || typeof b.principal !== 'string' || !strings(b.actions) || (b.sinks !== undefined && !strings(b.sinks))) {
    throw new GateError('invalid_request', 'expected {"principal": string, "actions": [string], "sinks"?: [string]}');
  }
  return { principal: b.principal, actions: b.actions as string[], ...(b.sinks ? { sinks: b.sinks as string[] } : {}) };
}
