// The gate state kept in plain tables, compared with what the hash chain
// recorded (src/ledger/state-record.ts): the revocation epoch in gate_state
// and the policy data in the policy_* tables; and, given the key store, the
// root of each key history (src/ledger/key-roots.ts). Anyone who can write the
// database could otherwise lower the epoch (making revoked leases valid
// again) or widen the policy data, and nothing would notice. A mismatch
// fails closed: the gate answers 503 state_tampered to every request that
// would rely on the value, naming the table, both values and the fix;
// `latchgate up` refuses to start; `latchgate verify` reports it.
import { KEY_KINDS } from '../keys/history.js';
import type { KeyStore } from '../keys/store.js';
import type { Db } from '../ledger/db.js';
import { keyRootMismatches, recordedKeyRoots } from '../ledger/key-roots.js';
import { epochRegression, recordedEpoch, recordedPolicyDigest, type Recorded, type StateMismatch, type StateReport } from '../ledger/state-record.js';
import { policyDigest, readPolicyData } from '../policy/store.js';
import { budgetMismatches } from './budget-check.js';
import { tokensMismatch } from './tokens.js';
import { GateError } from './errors.js';

export const EPOCH_TABLE = 'gate_state.revocation_epoch';
export const POLICY_TABLES = 'policy_principals, policy_acl, policy_sinks, policy_allowlist';

/** The error a request gets while a value differs from the chain. */
export function stateTampered(m: StateMismatch): GateError {
  return new GateError('state_tampered', m.message, { table: m.table, found: m.found, recorded: m.recorded, recorded_by: m.recorded_by });
}

const by = (r: Recorded<unknown>) => ({ id: r.id, trace_id: r.trace_id, event_type: r.event_type });
const where = (r: Recorded<unknown>) => `${r.event_type} event id=${r.id}, trace_id ${r.trace_id}`;

/** The checks both values share: no record, an edited record, a record gone from under a running gate. */
function recordProblem(table: string, what: string, r: Recorded<unknown> | null, fix: string, knownId?: number): StateMismatch | null {
  const base = { table, recorded: null, recorded_by: null } as const;
  if (!r) {
    return { ...base, found: null, message: `${table}: the ledger's chain records no ${what} (its state_baseline event is missing): the chain was edited. Refusing to rely on ${table}. Fix: ${fix}; \`latchgate verify\` names the break` };
  }
  if (r.edited) {
    return { ...base, found: null, recorded_by: by(r), message: `${table}: the ${where(r)} that recorded the ${what} no longer matches its hash, or its event_type column was changed: the ledger was edited. Refusing to rely on ${table}. Fix: restore the state directory from a backup; \`latchgate verify\` names the edited event` };
  }
  if (knownId !== undefined && r.id < knownId) {
    return { ...base, found: null, recorded_by: by(r), message: `${table}: the event id=${knownId} that recorded the ${what} is no longer in the chain (the newest record is now id=${r.id}): the ledger was edited. Refusing to rely on ${table}. Fix: restore the state directory from a backup; \`latchgate verify\` names the break` };
  }
  return null;
}

const EPOCH_FIX = 'run `latchgate revoke` (it advances the epoch past both values and records it), or restore the state directory from a backup';

/** The table's epoch against the chain's newest record of it; null when they agree. knownId: the newest record this process saw. */
export function epochMismatch(found: number | null, r: Recorded<number> | null, knownId?: number): StateMismatch | null {
  const p = recordProblem(EPOCH_TABLE, 'revocation epoch', r, EPOCH_FIX, knownId);
  if (p) return { ...p, found };
  if (found === r!.value) return null;
  const effect = found === null || found < r!.value ? `, which would make leases and grants revoked since epoch ${found ?? 0} valid again` : '';
  return {
    table: EPOCH_TABLE,
    found,
    recorded: r!.value,
    recorded_by: by(r!),
    message: `${EPOCH_TABLE} is ${found ?? '(missing)'}, but the ledger's chain recorded epoch ${r!.value} (${where(r!)}): the table was changed outside latchgate${effect}. Refusing leases and executions until it is fixed. Fix: ${EPOCH_FIX}`,
  };
}

/** The chain's newest epoch record below an earlier one (state-record.ts epochRegression) as a mismatch; null when there is none. */
export function epochGoneBack(found: number | null, back: ReturnType<typeof epochRegression>): StateMismatch | null {
  if (!back) return null;
  return {
    table: EPOCH_TABLE,
    found,
    recorded: back.earlier.epoch,
    recorded_by: { id: back.id, trace_id: '', event_type: 'epoch record' },
    message: `${EPOCH_TABLE}: the ledger's chain recorded epoch ${back.earlier.epoch} (event id=${back.earlier.id}), and event id=${back.id} records epoch ${back.epoch} after it: an epoch never goes back, so that event was appended outside latchgate, which would make leases and grants revoked since epoch ${back.epoch} valid again. Refusing leases and executions until it is fixed. Fix: ${EPOCH_FIX}`,
  };
}

const POLICY_FIX = 'restore the state directory from a backup, or inspect the data (`latchgate policy show`) and, if it is what you want, record it with `latchgate policy accept`';

/** The policy data's digest against the chain's newest record of it; null when they agree. */
export function policyMismatch(found: string | null, r: Recorded<string> | null, knownId?: number): StateMismatch | null {
  const p = recordProblem(`policy data (${POLICY_TABLES})`, 'policy data digest', r, POLICY_FIX, knownId);
  if (p) return { ...p, found };
  if (found === r!.value) return null;
  return {
    table: `policy data (${POLICY_TABLES})`,
    found,
    recorded: r!.value,
    recorded_by: by(r!),
    message: `the policy data in ${POLICY_TABLES} has digest ${found ?? '(no tables)'}, but the ledger's chain recorded ${r!.value} (${where(r!)}): the tables were changed outside latchgate. Refusing policy decisions and policy changes until it is fixed. Fix: ${POLICY_FIX}`,
  };
}

/** gate_state's epoch as stored, or null without the table or row. Only reads. */
export function readTableEpoch(db: Db): number | null {
  const has = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'gate_state'`).get();
  if (!has) return null;
  const v = db.prepare(`SELECT CAST(value AS INTEGER) FROM gate_state WHERE key = 'revocation_epoch'`).pluck().get() as number | undefined;
  return v ?? null;
}

/**
 * Triggers and views in the ledger: latchgate creates none, and one could
 * rewrite what a change writes (swallow a policy revoke, add a grant, undo a
 * debit) after the chain recorded what the change meant to do.
 */
export function schemaObjects(db: Db): StateMismatch[] {
  const found = db.prepare(`SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('trigger', 'view') ORDER BY type, name`).all() as { type: string; name: string; tbl_name: string }[];
  return found.map((o) => ({
    table: 'sqlite_master',
    found: `${o.type} ${o.name}`,
    recorded: null,
    recorded_by: null,
    message: `the ledger holds a ${o.type} ${JSON.stringify(o.name)} on ${o.tbl_name}; latchgate creates none, and one can change what the gate writes after the chain recorded it. Refusing to rely on the state outside the chain. Fix: restore the state directory from a backup (or inspect it and DROP ${o.type.toUpperCase()} ${JSON.stringify(o.name)} with the sqlite3 CLI, then run latchgate verify)`,
  }));
}

/**
 * Both values against the chain, in one read transaction; writes nothing
 * (`latchgate verify` runs it on a read-only copy). A ledger no gate of this
 * version opened yet has no baseline: its epoch is still checked against the
 * admin_revoke_all events it holds, and its policy data is not checked.
 */
export function checkChainedState(db: Db, keys?: KeyStore, full = false): StateReport {
  return db.transaction(() => {
    const epoch = readTableEpoch(db);
    const epochRec = recordedEpoch(db);
    const digestRec = recordedPolicyDigest(db);
    const data = readPolicyData(db);
    const digest = data ? policyDigest(data) : null;
    const mismatches: StateMismatch[] = [];
    // Before any baseline, an absent table means the default (0), as the gate would create it.
    // Before it, a table ahead of the chain is what an older gate left when it stopped between its
    // epoch's advance and the event (the baseline then records the table's value).
    const ahead = !digestRec && epochRec && (epoch ?? 0) > epochRec.value;
    const e = epochRec && !ahead ? epochMismatch(epoch ?? (digestRec ? null : 0), epochRec) : null;
    if (e) mismatches.push(e);
    const back = e ? null : epochGoneBack(epoch, epochRegression(db));
    if (back) mismatches.push(back);
    const p = digestRec ? policyMismatch(digest, digestRec) : null;
    if (p) mismatches.push(p);
    const tokens = tokensMismatch(db);
    if (tokens) mismatches.push(tokens);
    mismatches.push(...schemaObjects(db), ...budgetMismatches(db, new Date(), full));
    const roots = keys ? recordedKeyRoots(db) : null;
    if (keys) mismatches.push(...keyRootMismatches(db, keys, roots));
    return {
      baseline: digestRec !== null,
      values: {
        [EPOCH_TABLE]: { table: epoch, recorded: epochRec?.value ?? null },
        policy_digest: { table: digest, recorded: digestRec?.value ?? null },
        ...(keys ? Object.fromEntries(KEY_KINDS.map((k) => [`key_root.${k}`, { table: keys.chain(k).root ?? null, recorded: (roots && !roots.edited ? roots.value[k] : undefined) ?? null }])) : {}),
      },
      mismatches,
    };
  })();
}
