// The policy data as it was at each point of the ledger's chain, rebuilt from
// the chain alone: a state_baseline or policy_accepted event carries the
// complete data (details.data), and each policy change after it carries
// what it changed. Each step is checked against the digest its event
// recorded (details.policy_digest, the SHA-256 of the complete data's JCS
// form), so a rebuilt state is exact or is not used: a step that does not
// match leaves the data unknown until an event names a state whose digest
// is known (a complete record, or a digest seen before).
//
// A decision names the data it was made on by its data version (the second
// half of policy_version: the first 16 hex digits of that same digest; see
// src/policy/engine.ts), so lookups go by data version.
import { canonicalize } from '../crypto/jcs.js';
import type { AuditEventInput } from '../core/audit-event.js';
import { inspectData, type AclEntry, type PolicyData } from './engine.js';
import { policyDigest } from './store.js';

/**
 * The largest policy data (bytes of its JCS form) a state_baseline or
 * policy_accepted event carries whole; larger data is left out (the event
 * says so with data_omitted), as an event may hold at most 256 KiB.
 */
export const RECORDED_DATA_MAX_BYTES = 128 * 1024;

/** details.data (or details.data_omitted) for an event that records the complete policy data. */
export function dataRecord(data: PolicyData): { data: PolicyData } | { data_omitted: string } {
  const bytes = Buffer.byteLength(canonicalize(data), 'utf8');
  return bytes <= RECORDED_DATA_MAX_BYTES ? { data } : { data_omitted: `the policy data is ${bytes} bytes, over the ${RECORDED_DATA_MAX_BYTES} an event carries` };
}

/** The data version of a decision's policy_version ("<engine 16 hex>.<data 16 hex>"), or null when it names none. */
export function dataVersionOf(policyVersion: unknown): string | null {
  if (typeof policyVersion !== 'string') return null;
  const m = /^[0-9a-f]{16}\.([0-9a-f]{16})$/.exec(policyVersion);
  return m ? m[1]! : null;
}

/** The data version of a policy digest ("sha256:<hex>"). */
const versionOfDigest = (digest: string): string => digest.slice('sha256:'.length, 'sha256:'.length + 16);

/** The events that set or change the policy data. */
const FULL_RECORDS = new Set(['state_baseline', 'policy_accepted']);
const CHANGES = new Set(['policy_grant', 'policy_revoke', 'policy_allowlist_add', 'policy_allowlist_remove']);

export function isPolicyDataEvent(type: string): boolean {
  return FULL_RECORDS.has(type) || CHANGES.has(type);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const own = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** SQLite's order (the policy store reads the tables sorted): by UTF-8 bytes, not UTF-16 code units. */
function sortUtf8(xs: string[]): string[] {
  return xs.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

function cloneData(d: PolicyData): { acl: Record<string, AclEntry>; allowlist: Record<string, Record<string, true>> } {
  return structuredClone({ acl: d.acl, allowlist: d.allowlist }) as { acl: Record<string, AclEntry>; allowlist: Record<string, Record<string, true>> };
}

/** One change applied to a copy of `d`, as src/policy/store.ts makes it in the tables. */
function applyChange(type: string, d: PolicyData, det: Record<string, unknown>): PolicyData | string {
  const p = det.principal;
  if (typeof p !== 'string') return 'details.principal is not a string';
  const out = cloneData(d);
  const entry = own(out.acl, p) ? out.acl[p] : undefined;
  switch (type) {
    case 'policy_grant': {
      if (!strings(det.added_actions) || !strings(det.added_sinks)) return 'details.added_actions or added_sinks is not a list of names';
      const inherits = det.inherits_wildcard;
      if (inherits !== undefined && typeof inherits !== 'boolean') return 'details.inherits_wildcard is not a boolean';
      const e: AclEntry = entry ?? { allowed_actions: [], allowed_sinks: [] };
      if (inherits === true) e.inherits_wildcard = true;
      else if (inherits === false) delete e.inherits_wildcard;
      e.allowed_actions = sortUtf8([...new Set([...e.allowed_actions, ...det.added_actions])]);
      e.allowed_sinks = sortUtf8([...new Set([...e.allowed_sinks, ...det.added_sinks])]);
      Object.defineProperty(out.acl, p, { value: e, enumerable: true, writable: true, configurable: true });
      return out;
    }
    case 'policy_revoke': {
      if (!strings(det.removed_actions) || !strings(det.removed_sinks)) return 'details.removed_actions or removed_sinks is not a list of names';
      if (det.removed_entry === true) {
        delete out.acl[p];
      } else if (entry) {
        const gone = new Set(det.removed_actions);
        const goneSinks = new Set(det.removed_sinks);
        entry.allowed_actions = entry.allowed_actions.filter((a) => !gone.has(a));
        entry.allowed_sinks = entry.allowed_sinks.filter((s) => !goneSinks.has(s));
      }
      return out;
    }
    case 'policy_allowlist_add':
    case 'policy_allowlist_remove': {
      const a = det.action_id;
      if (typeof a !== 'string') return 'details.action_id is not a string';
      const list = own(out.allowlist, a) ? out.allowlist[a]! : undefined;
      if (type === 'policy_allowlist_add') {
        const l = list ?? {};
        Object.defineProperty(l, p, { value: true, enumerable: true, writable: true, configurable: true });
        Object.defineProperty(out.allowlist, a, { value: l, enumerable: true, writable: true, configurable: true });
      } else if (list) {
        delete list[p];
        if (Object.keys(list).length === 0) delete out.allowlist[a];
      }
      return out;
    }
    default:
      return `${type} is not a policy change`;
  }
}

/**
 * How many states are kept for lookups, the most recently made or used
 * first: a decision is made on the data of its time, which is the newest
 * state or one shortly before it (a change that landed while it was
 * decided). A state pushed out is not guessed at: a decision naming it is
 * not replayable, and says so.
 */
export const KEPT_STATES = 1024;

export class PolicyDataHistory {
  /** The data after the last event applied; undefined while unknown (why: `unknown`). */
  private current: PolicyData | undefined;
  private unknown = 'no event so far records the complete policy data (state_baseline or policy_accepted with details.data)';
  /** Known states by data version, least recently made or used first. */
  private readonly states = new Map<string, { digest: string; data: PolicyData }>();

  /** Takes one event of the chain, in chain order; events that do not touch the policy data are ignored. */
  apply(e: AuditEventInput & { trace_id?: string }): void {
    const type = e.event_type;
    if (!isPolicyDataEvent(type)) return;
    const det = isObject(e.details) ? e.details : {};
    const digest = det.policy_digest;
    const where = `${type} ${e.trace_id ?? ''}`.trim();
    if (typeof digest !== 'string' || !digest.startsWith('sha256:')) {
      this.lose(`${where} records no policy_digest`);
      return;
    }
    let next: PolicyData | string;
    if (FULL_RECORDS.has(type)) {
      if (!isObject(det.data)) {
        next = typeof det.data_omitted === 'string' ? `it left the data out: ${det.data_omitted}` : 'it does not carry the data (written before the chain recorded it)';
      } else {
        const data = structuredClone(det.data) as PolicyData;
        const { check } = inspectData(data);
        next = check.ok ? data : `its data does not match policies/data.schema.json: ${check.error}`;
      }
    } else if (this.current) {
      next = applyChange(type, this.current, det);
    } else {
      next = `the data before it is unknown (${this.unknown})`;
    }
    if (typeof next !== 'string') {
      const got = policyDigest(next);
      if (got !== digest) next = `the data rebuilt has digest ${got}, the event recorded ${digest}`;
    }
    if (typeof next === 'string') {
      // A digest seen before names a state known exactly (a revoke undoing a grant, say).
      const seen = this.states.get(versionOfDigest(digest));
      if (seen?.digest === digest) this.set(digest, seen.data);
      else this.lose(`${where}: ${next}`);
      return;
    }
    this.set(digest, next);
  }

  private set(digest: string, data: PolicyData): void {
    this.current = data;
    const v = versionOfDigest(digest);
    this.states.delete(v);
    this.states.set(v, { digest, data });
    if (this.states.size > KEPT_STATES) this.states.delete(this.states.keys().next().value!);
  }

  /** From here on the data is unknown (an event that cannot be trusted or applied), until a known state is named again. */
  lose(why: string): void {
    this.current = undefined;
    this.unknown = why;
  }

  /** The data of this version if the chain so far rebuilt it, else why not. */
  lookup(version: string): { data: PolicyData } | { problem: string } {
    const s = this.states.get(version);
    if (s) {
      this.states.delete(version);
      this.states.set(version, s);
      return { data: s.data };
    }
    return { problem: `the policy data of version ${version} is not rebuilt from the chain before this event (or is older than the ${KEPT_STATES} states kept)${this.current ? '' : `; ${this.unknown}`}` };
  }
}
