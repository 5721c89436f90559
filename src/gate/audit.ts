// How the gate records: what every event it writes carries, and a failure
// recorded once (the pipeline, the service and the HTTP layer each may meet
// the same error).
import type { AuditEventInput } from '../core/audit-event.js';
import { EventRefusedError, LedgerError } from '../ledger/ledger.js';
import { ApprovalError } from './approvals.js';
import { AuthError } from './auth/errors.js';
import type { GateContext } from './context.js';
import { GateError } from './errors.js';

/** The event with what every event of this gate carries. */
export function stamped(ctx: GateContext, e: AuditEventInput): AuditEventInput {
  return ctx.settings.sandboxDegraded ? { ...e, sandbox_degraded: true } : e;
}

export function appendEvent(ctx: GateContext, e: AuditEventInput): void {
  ctx.ledger.append(stamped(ctx, e));
}

/** Longest error message an event keeps: a message built from the request must not outgrow the event. */
export const EVENT_MESSAGE_MAX = 2048;

/** A message as events and receipts keep it: at most EVENT_MESSAGE_MAX characters, saying how many more there were. */
export const boundedMessage = (m: string): string => (m.length <= EVENT_MESSAGE_MAX ? m : `${m.slice(0, EVENT_MESSAGE_MAX)}... (${m.length - EVENT_MESSAGE_MAX} more characters)`);

/** The error part of a refusal's event; a long message is cut, saying by how much. */
export function eventError(g: GateError): { code: string; message: string } {
  return { code: g.code, message: boundedMessage(g.message) };
}

/** Marks an error whose audit event is already written. */
export const recorded = new WeakSet<Error>();

/** The API error a failure becomes; anything else is a fault and goes on as it is. */
export function asGateError(e: unknown): GateError {
  if (e instanceof GateError) return e;
  if (e instanceof AuthError) return new GateError(e.code, e.message);
  if (e instanceof ApprovalError) return new GateError(e.code, e.message);
  // An event the catalogue refuses is the gate's own fault, not the caller's.
  if (e instanceof EventRefusedError) return new GateError('internal_error', `the gate could not record this request (${e.message}); nothing was executed`);
  if (e instanceof LedgerError) return new GateError('invalid_request', e.message);
  throw e;
}
