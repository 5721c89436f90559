// Response schema, effect verification with honest outcomes, the signed
// receipt, and receipt + final audit event in one transaction. The client
// hears of success only after that commit.
import { createHash, randomUUID } from 'node:crypto';
import { canonicalHash } from '../../crypto/jcs.js';
import { signReceipt } from '../../ledger/receipt.js';
import type { AuditEventInput } from '../../core/audit-event.js';
import type { ExecutionReceipt } from '../../ledger/receipt.js';
import { boundedMessage as bounded, recorded, stamped } from '../audit.js';
import type { TakenWindow } from '../budget.js';
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Dispatched, type Execution } from '../execution.js';
import type { LoadedAction } from '../registry.js';
import type { ExecutionGrant } from '../types.js';
import { timed, timing } from '../stage-timing.js';
import { verifyEffect } from '../verify-effect.js';

export async function verifyAndReceipt(ctx: GateContext, x: Execution): Promise<void> {
  const f = await finalize(ctx, need(x, 'action'), need(x, 'grant'), need(x, 'dispatched'), x.traceId, stamped(ctx, x.event), need(x, 'debit'));
  x.receipt = f.receipt;
  x.reply = { status: f.status, body: f.body, text: f.text };
}

/** The kid of the grant key that signed the grant (recordIntent checked that signature). */
function grantKeyId(grant: ExecutionGrant): string {
  if (!grant.grant_signing_key_id) throw new GateError('internal_error', `grant ${grant.grant_id} carries no grant_signing_key_id: refusing to write its receipt without it`);
  return grant.grant_signing_key_id;
}

async function finalize(ctx: GateContext, action: LoadedAction, grant: ExecutionGrant, d: Dispatched, traceId: string, event: AuditEventInput, debit: { taken: readonly TakenWindow[]; cost: number }): Promise<{ status: number; body: Record<string, unknown>; text: string; receipt: ExecutionReceipt }> {
  const m = action.manifest;
  let failureClass = d.failure_class;
  let error = d.error === undefined ? undefined : bounded(String(d.error));
  let output = d.output?.output;
  let providerReceipt = d.output?.provider_receipt ?? null;
  let responseHash: string | undefined;
  // The effect may have happened: whatever the provider answered, this run ends in a receipt. What the
  // receipt cannot hold (an output past the canonical form's depth, say) makes it a provider_error without it.
  try {
    if (!failureClass && m.io.response_schema) {
      const checked = ctx.registry.validateResponse(m.action_id, output, m.version, { who: grant.subject.principal });
      const v = checked instanceof Promise ? await checked : checked;
      if (!v.ok) {
        failureClass = 'provider_error';
        error = bounded(`the provider's output breaks the response schema: ${v.errors.map((e) => `${e.pointer || '/'}: ${e.message}`).join('; ')}`);
        output = undefined;
      }
    }
    responseHash = output !== undefined ? canonicalHash(output) : undefined;
    if (providerReceipt !== null) canonicalHash(providerReceipt);
  } catch (e) {
    failureClass = 'provider_error';
    error = bounded(`the provider's answer cannot be recorded: ${String((e as Error)?.message ?? e)}`);
    output = undefined;
    responseHash = undefined;
    providerReceipt = null;
  }
  const verification = failureClass
    ? { status: d.io.ioCalls > 0 && failureClass !== 'timeout' ? ('skipped' as const) : ('provider_failed_before_verification' as const), reason: error }
    : verifyEffect(m, d.output, d.io.evidence);
  if ('reason' in verification && verification.reason !== undefined) verification.reason = bounded(verification.reason);
  const highRisk = m.risk_level === 'high' || m.risk_level === 'critical';
  if (!failureClass && verification.status === 'verification_failed' && highRisk) failureClass = 'verification_failed';

  // Format 2 (docs/FORMATS.md): the receipt alone says what ran, for whom, on what, under which grant.
  const fields: Parameters<typeof signReceipt>[1] = {
    receipt_id: randomUUID(),
    trace_id: traceId,
    action_id: grant.core.action_id,
    action_version: grant.core.action_version,
    action_digest: grant.core.action_digest,
    provider_module_digest: grant.core.provider_module_digest,
    principal: grant.subject.principal,
    session_id: grant.subject.session_id,
    request_hash: grant.core.request_hash,
    grant_id: grant.grant_id,
    grant_hash: canonicalHash(grant),
    grant_key_id: grantKeyId(grant),
    ...(grant.approved_by !== undefined ? { approved_by: grant.approved_by, approval_hash: grant.approval_hash } : {}),
    ...(responseHash !== undefined ? { response_hash: responseHash } : {}),
    provider_receipt: providerReceipt,
    normalized_result: failureClass ? { kind: 'failure', reason: error ?? failureClass } : { kind: 'success', summary: 'completed' },
    verification_outcome: { status: verification.status, ...('evidence' in verification && verification.evidence !== undefined ? { evidence: verification.evidence } : {}) },
    effect_evidence: d.io.evidence,
    started_at: d.started_at,
    finished_at: d.finished_at,
    ...(failureClass ? { failure_class: failureClass } : {}),
  };
  let receipt: ExecutionReceipt;
  const signing = timing();
  try {
    receipt = signReceipt(ctx.keys, fields);
  } catch (e) {
    // Past the receipt's bounds (the host's evidence of many large calls, say): a failure receipt of the
    // gate's own bounded fields, with a digest of the evidence it could not hold, still closes the intent.
    const evidence = `${d.io.evidence.length} host record(s), sha256:${createHash('sha256').update(JSON.stringify(d.io.evidence)).digest('hex')} of their JSON`;
    const why = bounded(`the run's record exceeds what a receipt holds (${String((e as Error)?.message ?? e)}); its host evidence is left out: ${evidence}`);
    failureClass = 'provider_error';
    error = why;
    output = undefined;
    responseHash = undefined;
    const { response_hash: _left, ...kept } = fields;
    receipt = signReceipt(ctx.keys, {
      ...kept,
      provider_receipt: null,
      normalized_result: { kind: 'failure', reason: why },
      verification_outcome: { status: d.io.ioCalls > 0 ? 'skipped' : 'provider_failed_before_verification' },
      effect_evidence: [],
      failure_class: failureClass,
    });
  }
  timed(traceId, 'verifyAndReceipt: the receipt signed', signing);

  const verified = verification.status === 'verified' || verification.status === 'unverifiable_declared';
  const decision = failureClass ? 'error' : verified ? 'allow' : 'allow_unverified';
  // The provider never reached the outside: the budget is given back (below, once the evidence stands).
  const refund = failureClass !== undefined && d.io.ioCalls === 0 && failureClass !== 'verification_failed';
  const committing = timing();
  try {
    ctx.ledger.commitEvidence(receipt, {
      ...event,
      trace_id: traceId,
      decision,
      // What the budget windows must count at least (src/gate/budget-check.ts).
      details: { ...event.details, budget_debit: { windows: debit.taken, cost: debit.cost, refunded: refund } },
      // (commitEvidence adds receipt_id and receipt_hash: the receipt's result_hash.)
      execution: {
        grant_id: grant.grant_id,
        verification_outcome: verification.status,
        duration_ms: d.duration_ms,
        io_calls_made: d.io.ioCalls,
        ...(responseHash !== undefined ? { response_hash: responseHash } : {}),
        ...(failureClass ? { failure_class: failureClass } : {}),
      },
    });
  } catch (e) {
    throw evidenceLost(e, grant, false);
  }
  timed(traceId, 'verifyAndReceipt: the receipt and its event committed', committing);
  const syncing = timing();
  let synced: Promise<void>;
  try {
    synced = ctx.wal.sync();
  } catch (e) {
    throw evidenceLost(e, grant, true);
  }

  // The answer is made, and serialized, while the sync runs; the client hears of it only once the
  // evidence would survive a power cut.
  const common = { trace_id: traceId, action_id: m.action_id, grant_id: grant.grant_id, receipt_id: receipt.receipt_id, verification_outcome: verification.status };
  const { status, body } = ((): { status: number; body: Record<string, unknown> } => {
    if (failureClass === 'verification_failed') {
      return { status: 403, body: { error: 'verification_failed', message: `the effect of this ${m.risk_level}-risk action could not be verified: ${'reason' in verification ? verification.reason : ''}`, ...common } };
    }
    if (failureClass === 'provider_busy') {
      // Every provider worker was busy and the queue full: nothing ran, the budget was given back; try again.
      return { status: 429, body: { error: 'provider_busy', message: `${error ?? 'every provider worker is busy'}; retry shortly, or raise [providers] pool_size or queue_limit in latchgate.toml`, failure_class: failureClass, retry_after_seconds: 1, ...common } };
    }
    if (failureClass) {
      const code = error?.startsWith("the provider's output breaks") ? 'response_schema_violation' : 'action_execution_failed';
      return { status: 502, body: { error: code, message: error ?? failureClass, failure_class: failureClass, ...common } };
    }
    return {
      status: 200,
      body: {
        decision,
        ...common,
        output,
        verification: { outcome: verification.status, is_fully_successful: verified },
        runtime: { duration_ms: d.duration_ms, io_calls: d.io.ioCalls, ...(d.output?.runtime ? { fuel_used: d.output.runtime.fuel_used, instantiate_ms: d.output.runtime.instantiate_ms, made_ahead: d.output.runtime.made_ahead === true, guest_ms: d.output.runtime.guest_ms, host_io_ms: d.output.runtime.host_io_ms } : {}) },
        ...(grant.approved_by ? { approval: { approved_by: grant.approved_by, approval_hash: grant.approval_hash } } : {}),
      },
    };
  })();
  const text = JSON.stringify(body);
  try {
    await synced;
  } catch (e) {
    throw evidenceLost(e, grant, true);
  }
  timed(traceId, 'verifyAndReceipt: durable (the answer made meanwhile)', syncing);
  if (refund) ctx.budgets.refund(debit.taken, debit.cost);
  return { status, body, text, receipt };
}

/**
 * The outcome's evidence failed. `committed`: its receipt and event were
 * written (only their sync failed), so the pipeline records no other event
 * for the call: one trace, one event, and the one it has may not survive a
 * power cut, which the client is told.
 */
function evidenceLost(e: unknown, grant: ExecutionGrant, committed: boolean): GateError {
  const what = committed ? 'the outcome was written but could not be made durable' : 'the outcome could not be recorded';
  const g = new GateError('evidence_persistence_failed', `${what} (${e instanceof Error ? e.message : String(e)}); treat the action's effect as unknown`, { grant_id: grant.grant_id });
  if (committed) recorded.add(g);
  return g;
}
