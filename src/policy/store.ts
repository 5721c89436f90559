// The policy data (ACL and approval allowlist) kept in SQLite, so that
// `latchgate policy grant|revoke` in one process and the gate in another see
// the same data. Every change bumps a counter in policy_meta inside the same
// transaction; data() rebuilds its cached PolicyData when the counter moved.
// The first store to open a database seeds it from policies/data.json.
// Changes return a description for the ledger, with the digest of the whole
// policy data after the change (policyDigest), and hand it to the caller's
// recorder inside the same transaction: the tables never change without the
// chain saying so (src/gate/state-check.ts compares the two).
import { readFileSync } from 'node:fs';
import { canonicalHash } from '../crypto/jcs.js';
import type { Db } from '../ledger/db.js';
import { ChangeStamp, immediate } from '../ledger/db.js';
import type { AuditEventInput } from '../core/audit-event.js';
import type { EventType } from '../core/event-catalogue.js';
import { WILDCARD, deepFreeze, effectiveAcl, inspectData, policyFile, type AclEntry, type PolicyData } from './engine.js';

export class PolicyStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyStoreError';
  }
}

/** The policy_* event types of the catalogue (src/core/event-catalogue.ts). */
export type PolicyChangeType = Extract<EventType, `policy_${string}`>;

/** What the caller records in the ledger (add operator, trace id...). */
export interface PolicyChange extends Pick<AuditEventInput, 'details'> {
  event_type: PolicyChangeType;
  details: {
    principal: string;
    /** True when the data changed (a grant of what is already granted changes nothing). */
    changed: boolean;
    /** Store version (change counter) before and after. */
    store_version_before: number;
    store_version_after: number;
    /** policyDigest() of the complete policy data after the change. */
    policy_digest: string;
    [k: string]: unknown;
  };
}

/** Appends a change's ledger event; called inside the change's transaction (a throw rolls the change back). */
export type RecordChange = (change: PolicyChange) => void;

export interface AclListing {
  principal: string;
  allowed_actions: string[];
  allowed_sinks: string[];
  inherits_wildcard: boolean;
}

export interface PrincipalView extends AclListing {
  /** data.acl has an entry for the principal (else it gets the wildcard's). */
  has_entry: boolean;
  /** What the principal may call, the wildcard rules applied. */
  effective_actions: string[];
  effective_sinks: string[];
  /** Actions whose approval the principal skips. */
  allowlisted_actions: string[];
}

export interface PolicyStoreOptions {
  /** Seed used when the database has no policy data yet (default policies/data.json). */
  seed?: PolicyData;
  seedPath?: string;
}

const NAME_MAX = 256;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function checkName(kind: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > NAME_MAX || CONTROL.test(v)) {
    throw new PolicyStoreError(`${kind} ${JSON.stringify(v)} is not a valid name (1-${NAME_MAX} characters, no control characters)`);
  }
  return v;
}

function checkNames(kind: string, vs: unknown): string[] {
  if (!Array.isArray(vs)) throw new PolicyStoreError(`${kind}s must be a list`);
  return [...new Set(vs.map((v) => checkName(kind, v)))].sort();
}

const DDL = `
CREATE TABLE IF NOT EXISTS policy_principals (
  principal TEXT PRIMARY KEY,
  inherits_wildcard INTEGER NOT NULL DEFAULT 0 CHECK (inherits_wildcard IN (0, 1))
);
CREATE TABLE IF NOT EXISTS policy_acl (
  principal TEXT NOT NULL REFERENCES policy_principals(principal) ON DELETE CASCADE,
  action_id TEXT NOT NULL,
  PRIMARY KEY (principal, action_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policy_sinks (
  principal TEXT NOT NULL REFERENCES policy_principals(principal) ON DELETE CASCADE,
  sink TEXT NOT NULL,
  PRIMARY KEY (principal, sink)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policy_allowlist (
  action_id TEXT NOT NULL,
  principal TEXT NOT NULL,
  PRIMARY KEY (action_id, principal)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policy_meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
`;

/** Reads and checks a data.json (a "$comment" key is allowed and dropped). */
export function readPolicyDataFile(path: string = policyFile('data.json')): PolicyData {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new PolicyStoreError(`cannot read policy data ${path}: ${(e as Error).message}`);
  }
  const info = inspectData(doc as PolicyData);
  if (!info.check.ok) throw new PolicyStoreError(`policy data ${path} does not match policies/data.schema.json: ${info.check.error}`);
  const d = doc as PolicyData & { $comment?: string };
  return { acl: d.acl, allowlist: d.allowlist };
}

const DIGESTS = new WeakMap<PolicyData, string>();

/** "sha256:<hex>" of the RFC 8785 canonical form of the complete policy data: what the chain records. */
export function policyDigest(data: PolicyData): string {
  return canonicalHash(data);
}

/**
 * The policy data as the tables hold it, or null when they do not exist (a
 * database no policy store opened). Only reads: `latchgate verify` uses it on
 * a read-only copy. Call inside a transaction for a consistent snapshot.
 */
export function readPolicyData(db: Db): PolicyData | null {
  const has = db.prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('policy_principals', 'policy_acl', 'policy_sinks', 'policy_allowlist')`).pluck().get() as number;
  if (has !== 4) return null;
  const acl = new Map<string, AclEntry>();
  for (const p of db.prepare('SELECT principal, inherits_wildcard FROM policy_principals ORDER BY principal').all() as { principal: string; inherits_wildcard: number }[]) {
    const e: AclEntry = { allowed_actions: [], allowed_sinks: [] };
    if (p.inherits_wildcard === 1) e.inherits_wildcard = true;
    acl.set(p.principal, e);
  }
  for (const r of db.prepare('SELECT principal, action_id FROM policy_acl ORDER BY principal, action_id').all() as { principal: string; action_id: string }[]) acl.get(r.principal)?.allowed_actions.push(r.action_id);
  for (const r of db.prepare('SELECT principal, sink FROM policy_sinks ORDER BY principal, sink').all() as { principal: string; sink: string }[]) acl.get(r.principal)?.allowed_sinks.push(r.sink);
  const allow = new Map<string, Map<string, true>>();
  for (const r of db.prepare('SELECT action_id, principal FROM policy_allowlist ORDER BY action_id, principal').all() as { action_id: string; principal: string }[]) {
    let m = allow.get(r.action_id);
    if (!m) allow.set(r.action_id, (m = new Map()));
    m.set(r.principal, true);
  }
  // fromEntries defines own properties, so a name like "__proto__" stays data
  return {
    acl: Object.fromEntries(acl),
    allowlist: Object.fromEntries([...allow].map(([a, m]) => [a, Object.fromEntries(m)])),
  };
}

export class PolicyStore {
  private cached: { version: number; data: PolicyData } | undefined;
  private readonly stmts;

  constructor(
    private readonly db: Db,
    opts: PolicyStoreOptions = {},
  ) {
    db.exec(DDL);
    this.stmts = {
      version: db.prepare<[], { value: number }>("SELECT value FROM policy_meta WHERE key = 'version'"),
      setVersion: db.prepare<[number]>("INSERT INTO policy_meta (key, value) VALUES ('version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
      principal: db.prepare<[string], { principal: string; inherits_wildcard: number }>('SELECT principal, inherits_wildcard FROM policy_principals WHERE principal = ?'),
      addPrincipal: db.prepare<[string, number]>('INSERT INTO policy_principals (principal, inherits_wildcard) VALUES (?, ?) ON CONFLICT(principal) DO NOTHING'),
      setInherits: db.prepare<[number, string, number]>('UPDATE policy_principals SET inherits_wildcard = ? WHERE principal = ? AND inherits_wildcard != ?'),
      delPrincipal: db.prepare<[string]>('DELETE FROM policy_principals WHERE principal = ?'),
      addAction: db.prepare<[string, string]>('INSERT INTO policy_acl (principal, action_id) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      delAction: db.prepare<[string, string]>('DELETE FROM policy_acl WHERE principal = ? AND action_id = ?'),
      addSink: db.prepare<[string, string]>('INSERT INTO policy_sinks (principal, sink) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      delSink: db.prepare<[string, string]>('DELETE FROM policy_sinks WHERE principal = ? AND sink = ?'),
      addAllow: db.prepare<[string, string]>('INSERT INTO policy_allowlist (action_id, principal) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      delAllow: db.prepare<[string, string]>('DELETE FROM policy_allowlist WHERE action_id = ? AND principal = ?'),
    };
    this.seed(opts);
  }

  private seed(opts: PolicyStoreOptions): void {
    if (this.stmts.version.get()) return;
    const seed = opts.seed ?? readPolicyDataFile(opts.seedPath);
    const info = inspectData(seed);
    if (!info.check.ok) throw new PolicyStoreError(`seed policy data does not match policies/data.schema.json: ${info.check.error}`);
    immediate(this.db, () => {
      if (this.stmts.version.get()) return; // another process seeded first
      for (const [principal, entry] of Object.entries(seed.acl)) {
        this.stmts.addPrincipal.run(principal, entry.inherits_wildcard ? 1 : 0);
        for (const a of entry.allowed_actions) this.stmts.addAction.run(principal, a);
        for (const s of entry.allowed_sinks) this.stmts.addSink.run(principal, s);
      }
      for (const [action, principals] of Object.entries(seed.allowlist)) {
        for (const [p, v] of Object.entries(principals)) if (v === true) this.stmts.addAllow.run(action, p);
      }
      this.stmts.setVersion.run(1);
    });
  }

  /** The change counter (1 after seeding). */
  version(): number {
    return this.stmts.version.get()?.value ?? 0;
  }

  /**
   * The policy data, frozen. The same object is returned until the data
   * changes (here or in another process), so engines can cache per object.
   */
  data(): PolicyData {
    const v = this.version();
    if (this.cached && this.cached.version === v) return this.cached.data;
    // one read transaction: a consistent snapshot of all tables and the counter
    const snap = this.db.transaction(() => ({ version: this.version(), data: deepFreeze(readPolicyData(this.db) as PolicyData) }))();
    this.cached = snap;
    return snap.data;
  }

  /** data() read from the tables again, whatever the change counter says. */
  reload(): PolicyData {
    this.cached = undefined;
    return this.data();
  }

  /** policyDigest() of data(), computed once per snapshot. */
  digest(): string {
    const d = this.data();
    let h = DIGESTS.get(d);
    if (h === undefined) DIGESTS.set(d, (h = policyDigest(d)));
    return h;
  }

  /** Every ACL entry, sorted by principal. */
  list(): AclListing[] {
    const d = this.data();
    return Object.keys(d.acl)
      .sort()
      .map((p) => {
        const e = d.acl[p] as AclEntry;
        return { principal: p, allowed_actions: [...e.allowed_actions], allowed_sinks: [...e.allowed_sinks], inherits_wildcard: e.inherits_wildcard === true };
      });
  }

  /** One principal's entry and what it adds up to; without a principal, the whole data and its version. */
  show(): { store_version: number; data: PolicyData };
  show(principal: string): PrincipalView;
  show(principal?: string): PrincipalView | { store_version: number; data: PolicyData } {
    const d = this.data();
    if (principal === undefined) return { store_version: this.cached?.version ?? this.version(), data: d };
    checkName('principal', principal);
    const own = Object.prototype.hasOwnProperty.call(d.acl, principal) ? d.acl[principal] : undefined;
    const eff = effectiveAcl(d, principal);
    return {
      principal,
      has_entry: own !== undefined,
      allowed_actions: [...(own?.allowed_actions ?? [])],
      allowed_sinks: [...(own?.allowed_sinks ?? [])],
      inherits_wildcard: own?.inherits_wildcard === true,
      effective_actions: eff.actions,
      effective_sinks: eff.sinks,
      allowlisted_actions: Object.keys(d.allowlist)
        .filter((a) => d.allowlist[a]?.[principal] === true)
        .sort(),
    };
  }

  private change<T extends Record<string, unknown>>(
    type: PolicyChangeType,
    principal: string,
    fn: () => { changed: boolean; details: T },
    record: RecordChange | undefined,
  ): PolicyChange {
    try {
      return this.changeInTransaction(type, principal, fn, record);
    } catch (e) {
      this.cached = undefined; // it may hold the data of the change rolled back, under a version the next change reuses
      throw e;
    }
  }

  private changeInTransaction<T extends Record<string, unknown>>(
    type: PolicyChangeType,
    principal: string,
    fn: () => { changed: boolean; details: T },
    record: RecordChange | undefined,
  ): PolicyChange {
    return immediate(this.db, () => {
      const before = this.version();
      const r = fn();
      const after = r.changed ? before + 1 : before;
      if (r.changed) {
        this.stmts.setVersion.run(after);
        ChangeStamp.of(this.db).noteOwnWrite();
      }
      const change: PolicyChange = {
        event_type: type,
        details: { principal, ...r.details, changed: r.changed, store_version_before: before, store_version_after: after, policy_digest: this.digest() },
      };
      record?.(change);
      return change;
    });
  }

  /**
   * Adds actions and sinks to a principal's entry (creating it; "*" is the
   * wildcard). inherits_wildcard is set when given, kept otherwise.
   */
  grant(principal: string, actions: string[], sinks: string[] = [], opts: { inheritsWildcard?: boolean } = {}, record?: RecordChange): PolicyChange {
    checkName('principal', principal);
    const as = checkNames('action', actions);
    const ss = checkNames('sink', sinks);
    if (opts.inheritsWildcard !== undefined && typeof opts.inheritsWildcard !== 'boolean') throw new PolicyStoreError('inheritsWildcard must be a boolean');
    if (principal === WILDCARD && opts.inheritsWildcard) throw new PolicyStoreError('the wildcard principal "*" cannot inherit from itself');
    return this.change('policy_grant', principal, () => {
      let changed = false;
      const created = this.stmts.addPrincipal.run(principal, opts.inheritsWildcard ? 1 : 0).changes > 0;
      changed ||= created;
      if (!created && opts.inheritsWildcard !== undefined) changed = this.stmts.setInherits.run(opts.inheritsWildcard ? 1 : 0, principal, opts.inheritsWildcard ? 1 : 0).changes > 0 || changed;
      const added_actions = as.filter((a) => this.stmts.addAction.run(principal, a).changes > 0);
      const added_sinks = ss.filter((s) => this.stmts.addSink.run(principal, s).changes > 0);
      changed ||= added_actions.length > 0 || added_sinks.length > 0;
      const details: Record<string, unknown> = { actions: as, sinks: ss, added_actions, added_sinks, created_entry: created };
      if (opts.inheritsWildcard !== undefined) details['inherits_wildcard'] = opts.inheritsWildcard;
      return { changed, details };
    }, record);
  }

  /**
   * Removes actions (and optionally sinks) from a principal's entry. The entry
   * stays, even empty, unless removeEntry: an entry with no actions denies
   * everything its wildcard would have allowed, an absent one falls back to
   * the wildcard.
   */
  revoke(principal: string, actions: string[], opts: { sinks?: string[]; removeEntry?: boolean } = {}, record?: RecordChange): PolicyChange {
    checkName('principal', principal);
    const as = checkNames('action', actions);
    const ss = checkNames('sink', opts.sinks ?? []);
    return this.change('policy_revoke', principal, () => {
      const removed_actions = as.filter((a) => this.stmts.delAction.run(principal, a).changes > 0);
      const removed_sinks = ss.filter((s) => this.stmts.delSink.run(principal, s).changes > 0);
      let removed_entry = false;
      if (opts.removeEntry) removed_entry = this.stmts.delPrincipal.run(principal).changes > 0;
      const changed = removed_actions.length > 0 || removed_sinks.length > 0 || removed_entry;
      return { changed, details: { actions: as, sinks: ss, removed_actions, removed_sinks, removed_entry } };
    }, record);
  }

  /** Lets a principal's calls of an action skip approval (never skips a deny rule). */
  allowlistAdd(actionId: string, principal: string, record?: RecordChange): PolicyChange {
    checkName('action', actionId);
    checkName('principal', principal);
    return this.change('policy_allowlist_add', principal, () => ({
      changed: this.stmts.addAllow.run(actionId, principal).changes > 0,
      details: { action_id: actionId },
    }), record);
  }

  allowlistRemove(actionId: string, principal: string, record?: RecordChange): PolicyChange {
    checkName('action', actionId);
    checkName('principal', principal);
    return this.change('policy_allowlist_remove', principal, () => ({
      changed: this.stmts.delAllow.run(actionId, principal).changes > 0,
      details: { action_id: actionId },
    }), record);
  }
}
