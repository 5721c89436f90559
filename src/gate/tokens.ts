// Client tokens: the credentials an operator issues for callers on the
// loopback TCP listener (`latchgate up --expose-http`), where there is no
// peer uid to tell who calls. A token names a principal and the scopes it may
// hold, never an operator. The secret is shown once, when it is made; the
// store keeps only its SHA-256 (the secret is 256 random bits, so a plain
// hash is as strong as a slow one) and compares it in constant time. Every
// request reads the token's row again, so a revocation or an expiry counts
// from the next request on, in every process sharing the state. The table is
// outside the hash chain, so every change records the digest of the whole
// table in its chained event, and a token is only accepted while the table
// still has that digest: a row edited by hand (a revocation undone, a token
// pointed at another principal or minted) stops every token (503
// state_tampered) instead of being believed.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { canonicalHash } from '../crypto/jcs.js';
import type { Db } from '../ledger/db.js';
import { newestRecordSql, recordedTokensDigest, TOKEN_RECORDS, type Recorded, type StateMismatch } from '../ledger/state-record.js';
import { isValidScope } from './auth/scopes.js';
import { GateError } from './errors.js';

export const TOKEN_PREFIX = 'lgt_';
/** The request header a TCP caller sends its token in, on every request. */
export const TOKEN_HEADER = 'latchgate-token';
/** lgt_<token id: 16 hex>_<secret: 32 random bytes, base64url>. */
const TOKEN_FORMAT = /^lgt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const TOKEN_ID = /^[0-9a-f]{16}$/;
/** When a create request names no expiry. */
export const DEFAULT_TOKEN_TTL_SECONDS = 30 * 86400;
const DEFAULT_SCOPES = ['tools:call'];

export interface ClientToken {
  token_id: string;
  principal: string;
  scopes: string[];
  created_at: string;
  created_by: string;
  /** null: never expires. */
  expires_at: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
}

export interface TokenRequest {
  principal: string;
  scopes: string[];
  /** null: never expires. */
  expiresInSeconds: number | null;
}

type Row = Omit<ClientToken, 'scopes'> & { scopes_json: string; secret_sha256: Buffer };

const sha256 = (s: string) => createHash('sha256').update(s).digest();

function fromRow(r: Row): ClientToken {
  const { scopes_json, secret_sha256: _hash, ...rest } = r;
  return { ...rest, scopes: JSON.parse(scopes_json) as string[] };
}

/** The digest of the whole client_tokens table (every column, rows by id): what token events record. */
export function tokensDigest(db: Db): string {
  const has = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'client_tokens'`).get();
  const rows = has ? (db.prepare('SELECT * FROM client_tokens ORDER BY token_id').all() as Row[]) : [];
  return canonicalHash(rows.map((r) => ({ ...r, secret_sha256: Buffer.isBuffer(r.secret_sha256) ? r.secret_sha256.toString('hex') : String(r.secret_sha256) })));
}

const EMPTY_DIGEST = canonicalHash([]);

/** The table against the chain's newest record of it; null when they agree (an empty table needs no record). */
export function tokensMismatch(db: Db, knownId?: number, r: Recorded<string> | null = recordedTokensDigest(db)): StateMismatch | null {
  const found = tokensDigest(db);
  const fix = 'restore the state directory from a backup; or, if the table is what you want, revoke and issue the tokens again with latchgate tokens (each change records the table)';
  if (r?.edited) return { table: 'client_tokens', found, recorded: null, recorded_by: { id: r.id, trace_id: r.trace_id, event_type: r.event_type }, message: `client_tokens: the ${r.event_type} event id=${r.id} that recorded the table's digest no longer matches its hash: the ledger was edited. Refusing every client token. Fix: ${fix}` };
  if (knownId !== undefined && (r?.id ?? 0) < knownId) return { table: 'client_tokens', found, recorded: null, recorded_by: null, message: `client_tokens: the event id=${knownId} that recorded the table is no longer in the chain: the ledger was edited. Refusing every client token. Fix: ${fix}` };
  const recorded = r?.value ?? EMPTY_DIGEST;
  if (found === recorded) return null;
  return {
    table: 'client_tokens',
    found,
    recorded,
    recorded_by: r ? { id: r.id, trace_id: r.trace_id, event_type: r.event_type } : null,
    message: `client_tokens has digest ${found}, but the ledger's chain recorded ${recorded}${r ? ` (${r.event_type} event id=${r.id})` : ' (no token was ever issued)'}: the table was changed outside latchgate (a revocation undone, a token re-pointed or minted). Refusing every client token until it is fixed. Fix: ${fix}`,
  };
}

export class ClientTokens {
  private readonly newest;
  /** The chain's newest record of the table, read again only when a newer one appears. */
  private known: { newest: number; record: Recorded<string> | null; recordId: number } | undefined;

  constructor(private readonly db: Db) {
    this.newest = db.prepare(`SELECT ${newestRecordSql(TOKEN_RECORDS)}`).pluck();
  }

  /** The digest of the table now, for the event of a change just made. */
  digest(): string {
    return tokensDigest(this.db);
  }

  /** Throws GateError state_tampered while the table differs from what the chain recorded. */
  private checkChained(): void {
    const newest = this.newest.get() as number;
    const record = this.known && this.known.newest === newest ? this.known.record : recordedTokensDigest(this.db);
    const m = tokensMismatch(this.db, this.known?.recordId, record);
    if (m) throw new GateError('state_tampered', m.message, { table: m.table, found: m.found, recorded: m.recorded, recorded_by: m.recorded_by });
    this.known = { newest, record, recordId: record?.id ?? 0 };
  }

  migrate(): void {
    this.db.exec(`CREATE TABLE IF NOT EXISTS client_tokens (
      token_id TEXT PRIMARY KEY, secret_sha256 BLOB NOT NULL, principal TEXT NOT NULL, scopes_json TEXT NOT NULL,
      created_at TEXT NOT NULL, created_by TEXT NOT NULL, expires_at TEXT, revoked_at TEXT, revoked_by TEXT)`);
  }

  private row(id: string): Row | undefined {
    return this.db.prepare('SELECT * FROM client_tokens WHERE token_id = ?').get(id) as Row | undefined;
  }

  /** A new token; its secret (`token`) exists only in what this returns. */
  create(req: TokenRequest, createdBy: string, now = new Date()): { token: string; record: ClientToken } {
    const id = randomBytes(8).toString('hex');
    const token = `${TOKEN_PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
    const expires = req.expiresInSeconds === null ? null : new Date(now.getTime() + req.expiresInSeconds * 1000).toISOString();
    this.db
      .prepare('INSERT INTO client_tokens (token_id, secret_sha256, principal, scopes_json, created_at, created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(id, sha256(token), req.principal, JSON.stringify(req.scopes), now.toISOString(), createdBy, expires);
    return { token, record: this.get(id)! };
  }

  get(id: string): ClientToken | undefined {
    const r = this.row(id);
    return r ? fromRow(r) : undefined;
  }

  list(): ClientToken[] {
    return (this.db.prepare('SELECT * FROM client_tokens ORDER BY created_at, token_id').all() as Row[]).map(fromRow);
  }

  revoke(id: string, by: string, now = new Date()): ClientToken {
    if (!TOKEN_ID.test(id)) throw new GateError('invalid_request', `token id ${JSON.stringify(id.slice(0, 40))}: expected the 16 hex digits \`latchgate tokens list\` shows`);
    const changed = this.db.prepare('UPDATE client_tokens SET revoked_at = ?, revoked_by = ? WHERE token_id = ? AND revoked_at IS NULL').run(now.toISOString(), by, id).changes;
    const t = this.get(id);
    if (!t) throw new GateError('token_not_found', `no token ${id}; see latchgate tokens list`);
    if (!changed) throw new GateError('token_already_revoked', `token ${id} was already revoked at ${t.revoked_at} by ${t.revoked_by}`);
    return t;
  }

  /** Why a token no longer admits its caller (revoked, expired, gone), or undefined while it does. */
  problem(id: string, now = new Date()): { code: 'token_revoked' | 'token_expired' | 'identity_unauthenticated'; message: string } | undefined {
    const t = this.get(id);
    if (!t) return { code: 'identity_unauthenticated', message: `token ${id} is not known to this gate` };
    if (t.revoked_at) return { code: 'token_revoked', message: `token ${id} was revoked at ${t.revoked_at}; ask the operator for a new one (latchgate tokens create)` };
    if (t.expires_at && t.expires_at <= now.toISOString()) return { code: 'token_expired', message: `token ${id} expired at ${t.expires_at}; ask the operator for a new one (latchgate tokens create)` };
    return undefined;
  }

  /** The token a caller presented, when it is one this gate issued and it still stands; else a 401 GateError. */
  authenticate(presented: string, now = new Date()): ClientToken {
    this.checkChained();
    const m = TOKEN_FORMAT.exec(presented);
    if (!m) throw new GateError('identity_unauthenticated', `the LatchGate-Token header is not a latchgate token (expected ${TOKEN_PREFIX}<16 hex>_<43 base64url>, as \`latchgate tokens create\` prints it)`);
    const id = m[1]!;
    const r = this.row(id);
    if (!r || r.secret_sha256.length !== 32 || !timingSafeEqual(r.secret_sha256, sha256(presented))) throw new GateError('identity_unauthenticated', 'the token is not one this gate issued');
    const p = this.problem(id, now);
    if (p) throw new GateError(p.code, p.message);
    return fromRow(r);
  }
}

function validPrincipal(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 256 && !/[\u0000-\u001f\u007f-\u009f]/.test(v);
}

/**
 * The body of a token request: `{"principal", "scopes"?, "expires_in_seconds"?}`.
 * A configured principal's name (`[identity.principals.<uid>]`) keeps at most
 * its configured scopes (all of them when none are given); any other name is
 * a principal of its own, with the scopes given (default `tools:call`), that
 * the policy must grant actions to. Operators' principals are refused: a
 * token never acts as an operator.
 */
export function parseTokenRequest(body: unknown, configured: ReadonlyMap<string, readonly string[]>): TokenRequest {
  const b = body as Record<string, unknown> | null | undefined;
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw new GateError('invalid_request', 'expected {"principal": string, "scopes"?: [string], "expires_in_seconds"?: number | null}');
  for (const k of Object.keys(b)) if (!['principal', 'scopes', 'expires_in_seconds'].includes(k)) throw new GateError('invalid_request', `unknown field ${JSON.stringify(k)} (allowed: principal, scopes, expires_in_seconds)`);
  if (!validPrincipal(b.principal)) throw new GateError('invalid_request', 'principal: expected a name of 1-256 printable characters');
  const principal = b.principal;
  if (principal.startsWith('operator:')) throw new GateError('invalid_request', `principal ${JSON.stringify(principal)}: a token never acts as an operator; name the principal its caller is`);
  const own = configured.get(principal);
  let scopes: string[];
  if (b.scopes === undefined) scopes = [...(own ?? DEFAULT_SCOPES)];
  else if (Array.isArray(b.scopes) && b.scopes.length > 0 && b.scopes.every(isValidScope)) scopes = [...new Set(b.scopes)];
  else {
    const bad = Array.isArray(b.scopes) ? b.scopes.find((x) => !isValidScope(x)) : undefined;
    throw new GateError('invalid_request', `scopes: expected a non-empty list of scopes such as ["tools:call"]${bad !== undefined ? `; ${JSON.stringify(bad)} is not one (tools:call, audit:read, or namespace:name of 4-64 characters [a-z0-9:_-])` : ''}`);
  }
  const beyond = own ? scopes.filter((s) => !own.includes(s)) : [];
  if (beyond.length) throw new GateError('invalid_request', `scopes: ${beyond.join(', ')} beyond what the configured principal ${principal} may hold (${own!.join(', ')}); widen [identity.principals] first or leave them out`);
  const e = b.expires_in_seconds;
  if (e !== undefined && e !== null && (typeof e !== 'number' || !Number.isSafeInteger(e) || e < 60)) throw new GateError('invalid_request', 'expires_in_seconds: expected a whole number of seconds, at least 60, or null for never');
  return { principal, scopes, expiresInSeconds: e === undefined ? DEFAULT_TOKEN_TTL_SECONDS : e };
}
