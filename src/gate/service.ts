// The gate service: what clients ask of the gate (leases, actions,
// executions, approval polls, receipts). An execution runs the pipeline
// (src/gate/pipeline.ts); operators' acts are in src/gate/admin.ts.
import { DenialCoalescer } from '../ledger/coalesce.js';
import { denialKind } from '../ledger/denial-kinds.js';
import { Admin } from './admin.js';
import type { AdminService, Caller, GateService, RequestAuth } from './app.js';
import { pollView, type Approval } from './approvals.js';
import { appendEvent, asGateError, eventError, recorded } from './audit.js';
import { issueLease, parseLeaseRequest } from './auth/leases.js';
import type { GateContext } from './context.js';
import { GateError } from './errors.js';
import type { Reply } from './execution.js';
import { PeerGuard } from './peer-limits.js';
import { Pipeline } from './pipeline.js';
import { verifySession } from './stages/authenticate.js';
import { callableBy } from './callable.js';
import type { AuditEventInput } from '../core/audit-event.js';

/**
 * Who a refusal is counted against: the peer the transport saw (src/gate/app.ts
 * AppOptions.peer: the peer uid on a Unix socket, the box, loopback HTTP),
 * whether or not it is a known caller; a caller that came by no socket, by
 * its uid or principal.
 */
function refusalSource(caller: Caller | undefined, peer: string | undefined): string {
  const p = peer ?? caller?.peer;
  if (p !== undefined) return p;
  if (!caller) return 'unidentified';
  return caller.uid !== undefined ? `uid:${caller.uid}` : `${caller.transport}:${caller.principal}`;
}

export class Gate implements GateService {
  readonly admin: AdminService;
  /** A caller hammering the gate with refused requests gets counted summaries, not one event per refusal. */
  private readonly refusals = new DenialCoalescer({ write: (e) => this.event(e), classify: denialKind });

  private readonly pipeline: Pipeline;
  /** Requests and connections per peer, for every socket this gate serves. */
  readonly guard: PeerGuard;

  constructor(private readonly ctx: GateContext) {
    this.pipeline = new Pipeline(ctx, this);
    this.guard = new PeerGuard(ctx.settings.limits);
    this.admin = new Admin(ctx, this, this.pipeline);
  }

  get maxBodyBytes(): number {
    return this.ctx.settings.maxBodyBytes;
  }

  get publicBaseUrl(): string {
    return this.ctx.settings.publicBaseUrl;
  }

  /** Appends an event, adding what every event carries. */
  event(e: AuditEventInput): void {
    appendEvent(this.ctx, e);
  }

  /**
   * Records a refusal: the first of its kind from this caller in full,
   * repeats counted into summaries (src/ledger/coalesce.ts, denial-kinds.ts
   * say which refusals qualify; the others are written in full here too).
   */
  refusal(caller: Caller | undefined, e: AuditEventInput, peer?: string): void {
    this.refusals.record(e, refusalSource(caller, peer));
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
    // The state the chain records (revocation epoch, policy data), checked as requests would.
    try {
      void this.ctx.state.epoch;
      this.ctx.policyData.data();
      checks.chained_state = 'ok';
    } catch (e) {
      checks.chained_state = (e as Error).message;
      return { status: 'not_ready' as const, checks };
    }
    // An engine loaded at its first decision (a box's) that could not load: every decision is a deny until it does.
    const engineFailure = this.ctx.policy.loadFailure;
    if (engineFailure !== undefined) {
      checks.policy_engine_error = engineFailure;
      return { status: 'not_ready' as const, checks };
    }
    return { status: this.ctx.state.draining ? ('degraded' as const) : ('ready' as const), checks };
  }

  async issueLease(caller: Caller, body: unknown): Promise<Record<string, unknown>> {
    try {
      const req = parseLeaseRequest(body);
      // The operator's limits stand: a request may narrow its lease, never widen it.
      this.ctx.budgets.rules.checkLeaseRequest(caller.principal, req.budgets);
      const lease = await issueLease(
        { principal: caller.principal, allowedScopes: caller.scopes, requestedScopes: req.scopes, dpopJwk: req.dpop_jwk, budgets: req.budgets, ttlSeconds: this.ctx.settings.leaseTtlSeconds, ...(caller.token_id ? { tokenId: caller.token_id } : {}) },
        { keys: this.ctx.keys, currentEpoch: this.ctx.state.epoch },
      );
      this.ctx.budgets.init({ session_id: lease.session_id, principal: caller.principal }, req.budgets ?? {}, new Date(lease.expires_at));
      this.event({ event_type: 'lease_issued', decision: 'allow', subject: { principal: caller.principal, session_id: lease.session_id, lease_jti: lease.lease_jti, identity_method: caller.transport }, details: { scopes: req.scopes, budgets: req.budgets ?? null, expires_at: lease.expires_at, ...(caller.token_id ? { token_id: caller.token_id } : {}) } });
      return { ...lease };
    } catch (e) {
      const g = asGateError(e);
      this.refusal(caller, { event_type: 'lease_denied', decision: 'deny', subject: { principal: caller.principal, identity_method: caller.transport }, error: eventError(g) });
      recorded.add(g);
      throw g;
    }
  }

  /** The receipt key history (public keys only), as clients verify receipts with it. */
  receiptKeys(): Record<string, unknown> {
    this.ctx.keys.current('receipt'); // the key the next receipt is signed with is listed too
    return { ...this.ctx.keys.jwks('receipt') };
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

  /**
   * The registered actions; for a caller, each says whether the policy data
   * grants it to the caller's principal (`callable`, src/gate/callable.ts):
   * what an agent's tool list shows. The decision at execute time stays the
   * policy engine's.
   */
  listActions(caller?: Caller): Record<string, unknown>[] {
    const may = caller ? callableBy(this.ctx, caller) : undefined;
    return this.ctx.registry.list().map((a) => ({
      action_id: a.manifest.action_id,
      version: a.manifest.version,
      risk_level: a.manifest.risk_level,
      tags: a.manifest.tags,
      declared_side_effects: a.manifest.declared_side_effects,
      action_digest: a.action_digest,
      ...(may ? { callable: may(a.manifest) } : {}),
    }));
  }

  getAction(id: string): Record<string, unknown> {
    const a = this.describe(id);
    const m = a.manifest;
    const refused = this.ctx.wasm.refused.get(m.action_id);
    const component = this.ctx.wasm.components.get(m.provider_module_digest);
    const provider = {
      module: m.provider_module_digest,
      ...(component ? { component_digest: component } : {}),
      trusted: refused === undefined && this.ctx.providers.has(m.provider_module_digest),
      ...(refused !== undefined ? { refused } : {}),
      imports: m.required_imports,
    };
    return { ...m, action_digest: a.action_digest, provider, versions: this.ctx.registry.versions(id) };
  }

  requestSchema(id: string): Record<string, unknown> {
    return this.describe(id).manifest.io.request_schema;
  }

  execute(caller: Caller, actionId: string, body: unknown, auth: RequestAuth): Promise<Reply> {
    return this.pipeline.execute(caller, actionId, body, auth);
  }

  /** Expired approvals are recorded once, when first noticed. */
  sweepApprovals(): void {
    for (const a of this.ctx.approvals.expire()) this.approvalExpired(a);
  }

  /** Records an approval that was just marked expired (by the sweep, or by a decision that found it past its expiry). */
  approvalExpired(a: Approval): void {
    this.event({ event_type: 'approval_expired', decision: 'deny', subject: { principal: a.principal, session_id: a.session_id }, action: { action_id: a.action_id }, approval: { approval_id: a.approval_id, plan_hash: a.plan_hash }, details: { expires_at: a.expires_at } });
  }

  async pollApproval(caller: Caller, id: string, auth: RequestAuth): Promise<Record<string, unknown>> {
    const session = await verifySession(this.ctx, caller, auth).catch((e) => {
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
      const s = await verifySession(this.ctx, caller, auth);
      const intent = r ? this.ctx.db.prepare('SELECT principal FROM execution_intents WHERE grant_id = ?').get(r.grant_id) as { principal: string } | undefined : undefined;
      if (!r || intent?.principal !== s.principal) throw new GateError('receipt_not_found', `no receipt ${id} for ${s.principal}`);
    }
    if (!r) throw new GateError('receipt_not_found', `no receipt ${id}`);
    return { ...r };
  }

  recordRefusal(caller: Caller | undefined, route: string, err: GateError, peer?: string): void {
    if (recorded.has(err)) return;
    recorded.add(err);
    const details = peer === undefined ? { route } : { route, peer };
    this.refusal(caller, { event_type: 'request_refused', decision: err.status >= 500 ? 'error' : 'deny', subject: { principal: caller?.principal ?? 'unknown', identity_method: caller?.transport }, error: eventError(err), details }, peer);
  }
}
