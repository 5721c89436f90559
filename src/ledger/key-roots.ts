// The root of each key history (src/keys/chain.ts), kept in the hash chain:
// a key history replaced as a whole holds together on its own, so its root
// is compared with the one the ledger recorded when the gate first saw it.
// A key_history_roots event lists every kind's root; a later one adds kinds
// that got their first key since, and never changes a root: a different
// root is a mismatch, reported by the gate (which then refuses to start)
// and by `latchgate verify`. So is a history that no longer lists the key
// the newest recorded rotation (admin_keys_rotated) made current: key files
// rolled back to a copy from before a rotation.
import type { KeyStore } from '../keys/store.js';
import { KEY_KINDS, type KeyKind } from '../keys/history.js';
import type { Ledger } from './ledger.js';
import type { Db } from './db.js';
import { chainedRowsOf, type Recorded, type StateMismatch } from './state-record.js';

export type KeyRoots = Partial<Record<KeyKind, string>>;

const KID = /^[A-Za-z0-9_-]{43}$/;
const isRoots = (v: unknown): v is KeyRoots =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.entries(v).every(([k, kid]) => (KEY_KINDS as readonly string[]).includes(k) && typeof kid === 'string' && KID.test(kid));

/** The roots the chain recorded: each kind's from the event that first recorded it, and any later event that records another. */
export interface RecordedRoots extends Recorded<KeyRoots> {
  /** The event that recorded each kind's root (its first record). */
  recordedIn: Partial<Record<KeyKind, number>>;
  /** A later key_history_roots event that names another root for a kind: latchgate never writes one, so it was appended by hand. */
  changed: { kind: KeyKind; root: string; id: number }[];
}

/**
 * Every key_history_roots event, oldest first: a root is recorded once and
 * never changes, so the first record of a kind is the one that counts. The
 * newest alone would not do: anyone who can write the database can append an
 * event to the chain (no key is needed for that), and one that re-records the
 * root of a history replaced as a whole would make the replacement verify.
 */
export function recordedKeyRoots(db: Db): RecordedRoots | null {
  const rows = [...chainedRowsOf(db, ['key_history_roots'])].reverse();
  const newest = rows.at(-1);
  if (!newest) return null;
  const at = { id: newest.id, trace_id: newest.trace_id, event_type: newest.event_type };
  const edited = rows.find((r) => r.edited);
  if (edited) return { value: {}, id: edited.id, trace_id: edited.trace_id, event_type: edited.event_type, edited: true, recordedIn: {}, changed: [] };
  const out: RecordedRoots = { value: {}, ...at, edited: false, recordedIn: {}, changed: [] };
  for (const r of rows) {
    const roots = (r.event?.details as Record<string, unknown> | undefined)?.roots;
    if (!isRoots(roots)) continue;
    for (const [kind, root] of Object.entries(roots) as [KeyKind, string][]) {
      if (out.value[kind] === undefined) {
        out.value[kind] = root;
        out.recordedIn[kind] = r.id;
      } else if (out.value[kind] !== root) out.changed.push({ kind, root, id: r.id });
    }
  }
  return Object.keys(out.value).length ? out : null;
}

const FIX = 'restore the keys/ directory of this state directory from a backup (the key files and their histories together)';

/** The kid the newest recorded rotation of each kind made current (admin_keys_rotated), with its event id. */
export function recordedHeads(db: Db): Map<KeyKind, { kid: string; id: number }> {
  const out = new Map<KeyKind, { kid: string; id: number }>();
  for (const r of chainedRowsOf(db, ['admin_keys_rotated'])) {
    // An edited or unreadable row is the chain walk's finding.
    const d = r.event?.details as { kind?: unknown; kid?: unknown } | undefined;
    const kind = d?.kind as KeyKind;
    if ((KEY_KINDS as readonly string[]).includes(kind) && typeof d?.kid === 'string' && !out.has(kind)) out.set(kind, { kid: d.kid, id: r.id });
  }
  return out;
}

/** Each kind whose history is broken, whose root is not the one recorded, or that lacks the key its newest recorded rotation made current; [] when all agree. Only reads. */
export function keyRootMismatches(db: Db, keys: KeyStore, r: RecordedRoots | null = recordedKeyRoots(db)): StateMismatch[] {
  const recordedBy = r ? { id: r.id, trace_id: r.trace_id, event_type: r.event_type } : null;
  if (r?.edited) {
    return [{ table: 'keys/', found: null, recorded: null, recorded_by: recordedBy, message: `the key_history_roots event id=${r.id} no longer matches its hash: the ledger was edited, so the key histories' roots cannot be checked. Fix: restore the state directory from a backup; \`latchgate verify\` names the edited event` }];
  }
  const out: StateMismatch[] = [];
  const heads = recordedHeads(db);
  for (const kind of KEY_KINDS) {
    const chain = keys.chain(kind);
    const table = `keys/${kind}-keys.jwks`;
    const recorded = r?.value[kind] ?? null;
    const [broken] = chain.untrusted.values();
    const changed = r?.changed.find((c) => c.kind === kind);
    if (changed) {
      out.push({
        table,
        found: chain.root ?? null,
        recorded,
        recorded_by: { id: changed.id, trace_id: '', event_type: 'key_history_roots' },
        message: `the ledger's chain recorded root ${recorded} for ${table} (key_history_roots event id=${r!.recordedIn[kind]}), and then root ${changed.root} (event id=${changed.id}): a root is recorded once and never changes, so that event was appended outside latchgate, to make a replaced key history verify. No ${kind} key of the other root is trusted. Fix: ${FIX}, and the ledger from a backup taken before event id=${changed.id}`,
      });
    } else if (broken !== undefined) {
      out.push({ table, found: chain.root ?? null, recorded, recorded_by: recordedBy, message: `${table}: ${broken}; no ${kind} key verifies or signs until it is fixed. Fix: ${FIX}` });
    } else if (recorded !== null && chain.root !== recorded) {
      out.push({
        table,
        found: chain.root ?? null,
        recorded,
        recorded_by: recordedBy,
        message: `${table} has root ${chain.root ?? '(none)'}, but the ledger's chain recorded root ${recorded} (key_history_roots event id=${r!.recordedIn[kind]}): the key history was replaced, and its keys verify nothing here. Fix: ${FIX}`,
      });
    } else if (heads.has(kind) && !keys.jwks(kind).keys.some((k) => k.kid === heads.get(kind)!.kid)) {
      const h = heads.get(kind)!;
      out.push({
        table,
        found: keys.jwks(kind).keys.at(-1)?.kid ?? null,
        recorded: h.kid,
        recorded_by: { id: h.id, trace_id: '', event_type: 'admin_keys_rotated' },
        message: `${table} does not list key ${h.kid}, which the rotation recorded in admin_keys_rotated event id=${h.id} made current: the key files were rolled back to before that rotation, and a retired key may have signed again. Fix: ${FIX}`,
      });
    }
  }
  return out;
}

/**
 * Records the roots of kinds the chain has none for yet (in one write
 * transaction of the caller's), and pins every recorded root in the key
 * store: a history replaced while the gate runs signs and verifies nothing.
 */
export function recordAndPinKeyRoots(ledger: Ledger, keys: KeyStore): void {
  const r = recordedKeyRoots(ledger.db);
  if (r?.edited) return; // reported by keyRootMismatches
  const roots: KeyRoots = { ...(r?.value ?? {}) };
  let added = false;
  for (const kind of KEY_KINDS) {
    const chain = keys.chain(kind);
    if (roots[kind] === undefined && chain.root !== undefined && chain.untrusted.size === 0) {
      roots[kind] = chain.root;
      added = true;
    }
  }
  if (added) ledger.appendInTransaction({ event_type: 'key_history_roots', decision: 'allow', details: { roots } });
  for (const kind of KEY_KINDS) if (roots[kind] !== undefined) keys.pin(kind, roots[kind]!);
  for (const [kind, h] of recordedHeads(ledger.db)) keys.pinHead(kind, h.kid);
}
