// What a ledger row is derived from its event: the chain's hash of the
// event's stored text and the indexed columns. Its own module, free of
// SQLite, so the verifier's worker threads (verify-worker.ts) load only this.
import { sha256Hex } from '../crypto/jcs.js';
import type { AuditEvent } from '../core/audit-event.js';

/** The hash of one event's canonical JSON, as text or its UTF-8 bytes ("sha256:<hex>"). */
export function eventHash(eventJson: string | Uint8Array): string {
  // A string is hashed as its UTF-8 bytes, without a copy into a Buffer first.
  return `sha256:${sha256Hex(eventJson)}`;
}

/** The columns of an event row that are derived from the event and indexed. */
export interface IndexedColumns {
  trace_id: string;
  timestamp: string;
  event_type: string;
  principal: string | null;
  session_id: string | null;
  action_id: string | null;
  decision: string | null;
}

/** The values of the indexed columns, as they must be derived from an event. */
export function indexedColumns(event: AuditEvent): IndexedColumns {
  return {
    trace_id: event.trace_id,
    timestamp: event.timestamp,
    event_type: event.event_type,
    principal: event.subject?.principal ?? null,
    session_id: event.subject?.session_id ?? null,
    action_id: event.action?.action_id ?? null,
    decision: event.decision ?? null,
  };
}
