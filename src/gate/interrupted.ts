// A gate process that stops between an execution's intent and its receipt
// (killed, crashed, the machine lost power) leaves an intent that nothing in
// the chain accounts for. The next gate to open the state directory records
// each such intent whose gate process is gone as an execution_interrupted
// event of the intent's trace (the action_call of that trace was never
// written), so `latchgate verify` can tell a crash from a deleted receipt.
// The outcome stays unknown: the same request is still refused
// (previous_outcome_unknown, src/gate/stages/record-intent.ts).
import type { ExecutionIntent, Ledger } from '../ledger/ledger.js';
import { immediate } from '../ledger/db.js';
import type { GateInstances } from './instances.js';

/** Writes execution_interrupted for every unaccounted intent no live gate is running; returns those intents. */
export function recordInterrupted(ledger: Ledger, instances: GateInstances): ExecutionIntent[] {
  // One write transaction: two gates starting at once cannot both record one intent.
  return immediate(ledger.db, () => {
    const out: ExecutionIntent[] = [];
    for (const i of ledger.unaccountedIntents()) {
      if (instances.isRunning(i)) continue;
      ledger.appendInTransaction({
        event_type: 'execution_interrupted',
        trace_id: i.trace_id,
        decision: 'error',
        subject: { principal: i.principal },
        action: { action_id: i.action_id },
        execution: { grant_id: i.grant_id },
        details: { started_at: i.started_at, instance_id: i.instance_id ?? null, request_hash: i.request_hash },
      });
      out.push(i);
    }
    return out;
  });
}
