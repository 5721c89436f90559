// The admin acts: each needs an operator, and each is recorded with the
// operator's identity. Approving resumes the held execution's pipeline.
import type { AuditEventInput } from '../core/audit-event.js';
import { canonicalHash } from '../crypto/jcs.js';
import { immediate } from '../ledger/db.js';
import type { LedgerFilters } from '../ledger/ledger.js';
import { recordedPolicyDigest } from '../ledger/state-record.js';
import { verifyLedger } from '../ledger/verify.js';
import { policyDigest, readPolicyData, type PolicyChange, type RecordChange } from '../policy/store.js';
import type { AdminService, Caller } from './app.js';
import { ApprovalError, leaseRefusal, pollView, type Approval, type LeaseRefusal } from './approvals.js';
import { asGateError } from './audit.js';
import { budgetReport } from './budget-report.js';
import type { GateContext } from './context.js';
import { GateError } from './errors.js';
import type { Pipeline } from './pipeline.js';
import { awaitRotation, rotationWait } from './rotation.js';
import type { Gate } from './service.js';
import { parseTokenRequest } from './tokens.js';
import { checkChainedState } from './state-check.js';

export class Admin implements AdminService {
  constructor(private readonly ctx: GateContext, private readonly gate: Gate, private readonly pipeline: Pipeline) {}

  private act(caller: Caller, event_type: AuditEventInput['event_type'], details: Record<string, unknown> = {}): void {
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

  /** Records an approval marked revoked: its lease was revoked or expired, so it will not run. */
  private approvalRevoked(caller: Caller, a: Approval, r: Pick<LeaseRefusal, 'cause'>, epoch?: number): void {
    this.gate.event({
      event_type: 'approval_revoked',
      decision: 'deny',
      operator: { name: caller.operator!, ...(caller.uid !== undefined ? { uid: caller.uid } : {}) },
      subject: { principal: a.principal, session_id: a.session_id },
      action: { action_id: a.action_id },
      approval: { approval_id: a.approval_id, plan_hash: a.plan_hash },
      details: { cause: r.cause, ...(epoch !== undefined ? { epoch } : {}) },
    });
  }

  /** An approval of an approval whose lease no longer stands. */
  private refuseStaleLease(caller: Caller, id: string): void {
    const pending = this.ctx.approvals.get(id);
    if (pending?.status !== 'pending') return; // decide() refuses it as it is
    const r = leaseRefusal(pending.plan, this.ctx.state.epoch, new Date(), this.ctx.tokens);
    if (!r) return;
    const revoked = this.ctx.approvals.revoke(id, r.message);
    if (revoked) this.approvalRevoked(caller, revoked, r);
    throw new GateError(r.code, `approval ${id}: ${r.message}`);
  }

  private decide(caller: Caller, id: string, verdict: 'approved' | 'denied', reason?: string): Approval {
    try {
      return this.ctx.approvals.decide(id, verdict, caller.operator!, reason);
    } catch (e) {
      if (e instanceof ApprovalError && e.expired) this.gate.approvalExpired(e.expired);
      throw asGateError(e);
    }
  }

  async approve(caller: Caller, id: string, _body: unknown): Promise<Record<string, unknown>> {
    this.gate.sweepApprovals();
    const held = this.ctx.approvals.get(id);
    const self = held && selfApproval(caller, held);
    if (self) {
      // Recorded here (once: the HTTP layer skips what is recorded), for the CLI's acts too.
      const e = new GateError('approver_is_requester', `approval ${id}: ${self}`);
      this.gate.recordRefusal(caller, `POST /v1/approvals/:id/approve`, e);
      throw e;
    }
    // Refused before it is marked approved; the resumed run checks again
    // (recheck-plan), for a revocation made between here and there.
    this.refuseStaleLease(caller, id);
    const a = this.decide(caller, id, 'approved');
    if (canonicalHash(a.plan) !== a.plan_hash) throw new GateError('approval_mismatch', `approval ${id}: the stored plan does not match its hash`);
    this.act(caller, 'approval_granted', { approval_id: id, plan_hash: a.plan_hash, approval_hash: a.approval_hash, action_id: a.action_id, principal: a.principal });
    const r = await this.pipeline.resume(a, caller.operator!);
    return { approval_id: id, status: 'approved', http_status: r.status, result: r.body };
  }

  deny(caller: Caller, id: string, body: unknown): Record<string, unknown> {
    const reason = typeof (body as { reason?: unknown })?.reason === 'string' ? (body as { reason: string }).reason : undefined;
    const a = this.decide(caller, id, 'denied', reason);
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
    return { ...verifyLedger(this.ctx.db, this.ctx.keys, this.ctx.db.name, checkChainedState, { inFlight: (i) => this.ctx.instances.isRunning(i) }) };
  }

  /**
   * Pending approvals go with the leases they were requested under, and the
   * new epoch with its event: all in one transaction, so none is approved
   * under the old epoch in between and the table never holds an epoch the
   * chain does not.
   */
  revokeAll(caller: Caller): Record<string, unknown> {
    let revoked: Approval[] = [];
    const epoch = this.ctx.state.advanceEpoch((epoch) => {
      revoked = this.ctx.approvals.revokePendingInTransaction(`revoked with every lease (epoch ${epoch})`);
      this.act(caller, 'admin_revoke_all', { epoch, approvals_revoked: revoked.length });
      for (const a of revoked) this.approvalRevoked(caller, a, { cause: 'lease_revoked' }, epoch);
    });
    return { epoch, approvals_revoked: revoked.map((a) => a.approval_id) };
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

  /**
   * `latchgate reload`: the SOPS secrets file read again now (a file that no
   * longer decrypts is refused, and the gate keeps no value from it), and
   * every other gate process on this state directory told to drop its cache.
   * Recorded with the file and the number of values, never a value.
   */
  async secretsReload(caller: Caller): Promise<Record<string, unknown>> {
    try {
      const r = await this.ctx.providerHosts.secrets.reload();
      this.act(caller, 'admin_secrets_reloaded', { ok: true, file: r.file, secrets: r.secrets });
      return { ok: true, ...r };
    } catch (e) {
      const message = (e as Error).message;
      this.act(caller, 'admin_secrets_reloaded', { ok: false, file: this.ctx.providerHosts.secrets.file, error: message });
      throw new GateError('secrets_unavailable', `the secrets file cannot be read, so the gate has no value from it until it can: ${message}`);
    }
  }

  receiptKeys(caller: Caller): Record<string, unknown> {
    this.act(caller, 'admin_receipt_keys_read');
    return this.gate.receiptKeys();
  }

  async keysRotate(caller: Caller, body: unknown): Promise<Record<string, unknown>> {
    const kind = (body as { kind?: unknown })?.kind ?? 'receipt';
    if (kind !== 'receipt' && kind !== 'grant' && kind !== 'lease' && kind !== 'checkpoint') throw new GateError('invalid_request', 'kind: expected "receipt", "grant", "lease" or "checkpoint"');
    const wait = rotationWait((body as { wait_seconds?: unknown })?.wait_seconds);
    if (typeof wait === 'string') throw new GateError('invalid_request', wait);
    const rotated = this.ctx.keys.rotate(kind);
    this.ctx.keyWatch.check(); // this process has switched: published before the others are asked
    const current = () => {
      this.ctx.keyWatch.check();
      return this.ctx.keys.current(kind).kid;
    };
    const report = await awaitRotation(this.ctx.instances, { kind, ...rotated }, current, wait);
    this.act(caller, 'admin_keys_rotated', { ...report });
    return { ...report };
  }

  /** The secret is in this answer only; the event and the store hold its id. */
  tokensCreate(caller: Caller, body: unknown): Record<string, unknown> {
    const req = parseTokenRequest(body, this.ctx.settings.principals);
    // The row and the event that records the table's digest together.
    const { token, record } = immediate(this.ctx.db, () => {
      const made = this.ctx.tokens.create(req, caller.operator!);
      this.act(caller, 'client_token_created', { token_id: made.record.token_id, principal: made.record.principal, scopes: made.record.scopes, expires_at: made.record.expires_at, tokens_digest: this.ctx.tokens.digest() });
      return made;
    });
    return { token, ...record };
  }

  tokensList(): Record<string, unknown>[] {
    return this.ctx.tokens.list().map((t) => ({ ...t }));
  }

  /** From the next request on, the token and every lease issued through it are refused. */
  tokensRevoke(caller: Caller, id: string): Record<string, unknown> {
    const t = immediate(this.ctx.db, () => {
      const revoked = this.ctx.tokens.revoke(id, caller.operator!);
      this.act(caller, 'client_token_revoked', { token_id: revoked.token_id, principal: revoked.principal, tokens_digest: this.ctx.tokens.digest() });
      return revoked;
    });
    return { ...t };
  }

  /** The policy data (or one principal's view), with what is left of the budgets. */
  policyShow(principal?: string): Record<string, unknown> {
    const budgets = budgetReport(this.ctx.budgets, principal);
    return principal ? { ...this.ctx.policyStore.show(principal), budgets } : { principals: this.ctx.policyStore.list(), budgets };
  }

  /** A policy change and its event, in one transaction; refused while the data differs from the chain. */
  private policyChange(caller: Caller, fn: (record: RecordChange) => PolicyChange): Record<string, unknown> {
    const change = this.ctx.policyData.change(() => fn((c) => this.act(caller, c.event_type, { ...c.details })));
    return { ...change.details };
  }

  policyGrant(caller: Caller, body: unknown): Record<string, unknown> {
    const b = parsePolicyBody(body);
    return this.policyChange(caller, (record) => this.ctx.policyStore.grant(b.principal, b.actions, b.sinks, {}, record));
  }

  policyRevoke(caller: Caller, body: unknown): Record<string, unknown> {
    const b = parsePolicyBody(body);
    return this.policyChange(caller, (record) => this.ctx.policyStore.revoke(b.principal, b.actions, {}, record));
  }

  /**
   * Records the policy data as the tables hold it now as what the chain
   * compares with: the operator's answer to a state_tampered report, after
   * inspecting the data (or restoring it by hand).
   */
  policyAccept(caller: Caller): Record<string, unknown> {
    return immediate(this.ctx.db, () => {
      const data = readPolicyData(this.ctx.db)!;
      const details = { policy_digest: policyDigest(data), recorded_digest: recordedPolicyDigest(this.ctx.db)?.value ?? null, store_version: this.ctx.policyStore.version() };
      this.act(caller, 'policy_accepted', details);
      return { ...details };
    });
  }
}

/**
 * Why the caller may not approve what an approval holds (null: they may).
 * The one who asked is not the one who approves: not the same principal,
 * and not the same uid on the client socket (one user's processes are one
 * authority). A box's requests come on its own socket, as its principal, so
 * the user who started the box approves them from the host.
 */
export function selfApproval(caller: Caller, a: Approval): string | null {
  if (a.principal === caller.principal || a.principal === caller.operator || a.principal === `operator:${caller.operator}`) {
    return `the principal ${a.principal} asked for it, and the approver must not be the requester. Fix: run the agent in \`latchgate sandbox\` (it gets its own principal), or under another uid mapped in [identity.principals]`;
  }
  const r = a.requester;
  if (r?.transport === 'unix' && r.uid !== undefined && r.uid === caller.uid) {
    return `uid ${r.uid} asked for it on the client socket, and the approver must not be the requester. Fix: run the agent in \`latchgate sandbox\`, or under another uid mapped in [identity.principals]`;
  }
  return null;
}

function parsePolicyBody(body: unknown): { principal: string; actions: string[]; sinks?: string[] } {
  const b = body as { principal?: unknown; actions?: unknown; sinks?: unknown } | undefined;
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (!b || typeof b.principal !== 'string' || !strings(b.actions) || (b.sinks !== undefined && !strings(b.sinks))) {
    throw new GateError('invalid_request', 'expected {"principal": string, "actions": [string], "sinks"?: [string]}');
  }
  return { principal: b.principal, actions: b.actions as string[], ...(b.sinks ? { sinks: b.sinks as string[] } : {}) };
}
