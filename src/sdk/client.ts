// LatchGateClient: an agent's way to the gate. It connects lazily: the first
// call makes an ephemeral, non-extractable P-256 DPoP key and asks for a
// lease; every request carries a fresh proof bound to the lease (RFC 9449,
// with `ath`); the lease is renewed before it expires, and once more when the
// gate answers lease_expired. A pending approval is an exception that names
// the approval: the gate holds that exact request and runs it when an
// operator approves, so waitForApproval() returns that run's result.
import { randomUUID } from 'node:crypto';
import { checkFallbackRuntimeDir, resolveRuntimeDir } from '../config/runtime-dir.js';
import { fallbackRuntimeDir } from '../config/paths.js';
import { LaunchError } from '../core/errors.js';
import { createDpopKey, makeProof, type DpopKey } from '../gate/auth/client.js';
import { gateError, LatchGateApprovalRequired, LatchGateConnectionError } from './errors.js';
import { verifyReceiptWith, type ReceiptKeySet, type ReceiptVerification } from './receipts.js';
import { resolveEndpoint, Transport, type FetchLike } from './transport.js';

export interface LatchGateClientOptions {
  /** A name the agent gives itself, for its own logs (the gate names the caller by its transport). */
  agentId?: string;
  /** The gate's Unix socket (takes precedence over baseUrl and the environment). */
  socket?: string;
  /** unix:///path or http(s)://host:port (default: LATCHGATE_URL, then LATCHGATE_SOCKET, then the user's `latchgate up` socket). */
  baseUrl?: string;
  /** What DPoP proofs name as htu (default: LATCHGATE_PUBLIC_URL, else http://latchgate.local, the gate's default). */
  publicBaseUrl?: string;
  /** A client token for a gate served over TCP (default: LATCHGATE_TOKEN). */
  token?: string;
  /** Scopes to ask the lease for (default ["tools:call"]). */
  scopes?: string[];
  /** Budgets to narrow the lease to (the operator's limits stand). */
  budgets?: { max_calls?: number; max_cost?: number };
  /** A fetch for http(s) base URLs (tests, proxies); Unix sockets always use node:http. */
  fetch?: FetchLike;
  /** The environment to read defaults from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface ExecuteOptions {
  signal?: AbortSignal;
  /**
   * Makes a retry safe: the gate answers a request with a key this caller
   * already used for the same request with that request's answer, and runs
   * nothing again (a new key per logical action; a UUID is a good one).
   */
  idempotencyKey?: string;
}

export interface ExecuteResult {
  output: unknown;
  receiptId: string;
  traceId: string;
  grantId: string;
  /** How the effect was verified: verified, unverifiable_declared, verification_failed, ... */
  verification: { outcome: string; isFullySuccessful: boolean };
  requestHash: string | undefined;
  decision: string;
  /** True when this is the stored answer of an earlier request with the same idempotency key. */
  replayed: boolean;
  /** The gate's whole answer. */
  raw: Record<string, unknown>;
}

export interface ApprovalStatus {
  approvalId: string;
  /** pending, approved, denied, expired, revoked */
  status: string;
  actionId: string;
  requestHash: string;
  expiresAt: string;
  decidedBy?: string;
  reason?: string;
  receiptId?: string;
  /** Once approved and run: the run's answer (status and body), as execute() would have had it. */
  result?: { status: number; body: Record<string, unknown> };
}

export interface ActionSummary {
  action_id: string;
  version: string;
  description?: string;
  risk_level?: string;
  /** Whether the policy data grants the action to this caller (what an agent's tool list offers; the gate decides each call). */
  callable?: boolean;
  [field: string]: unknown;
}

interface Lease {
  jwt: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  issuedAt: number;
}

/** Renew when this share of the lease's life is left (and at least RENEW_MIN_MS). */
const RENEW_SHARE = 0.1;
const RENEW_MIN_MS = 15_000;
/** A proof made ahead is used within this, then dropped (the gate takes a proof's iat up to 60 s old: 50 s are left for the clocks' skew). */
const SPARE_PROOF_MAX_AGE_MS = 10_000;
/** The gate's receipt key history, published without authentication (src/gate/app.ts). */
const RECEIPT_KEYS_PATH = '/.well-known/latchgate-receipt-keys.json';

/**
 * The CLI's runtime directory's socket, refused as the CLI refuses it: a client
 * must not send its lease to a socket another user could own. The /tmp
 * fallback is checked now and again before each request, when it must exist
 * (checkFallbackRuntimeDir): missing now, another user could make it later.
 */
function defaultSocket(env: NodeJS.ProcessEnv): { socket: string; verify: () => void } {
  const uid = process.getuid?.() ?? 0;
  const refused = (e: unknown) => (e instanceof LaunchError ? new LatchGateConnectionError('runtime_dir_unsafe', e.message) : e);
  let dir: string;
  try {
    dir = resolveRuntimeDir({ env, uid });
  } catch (e) {
    throw refused(e);
  }
  const fallback = dir === fallbackRuntimeDir(uid);
  const verify = () => {
    try {
      if (fallback) checkFallbackRuntimeDir(dir, uid, false, true);
    } catch (e) {
      throw refused(e);
    }
  };
  return { socket: `${dir}/gate.sock`, verify };
}

export class LatchGateClient {
  readonly agentId: string;
  private readonly transport: Transport;
  private readonly token: string | undefined;
  private readonly scopes: string[];
  private readonly budgets: LatchGateClientOptions['budgets'];
  private key: Promise<DpopKey> | undefined;
  private lease: Promise<Lease> | undefined;
  private receiptKeys: ReceiptKeySet | undefined;
  /** Private (#): a usable proof must not show where the client is printed or logged (util.inspect). */
  #spareProof: { method: string; url: string; leaseJwt: string; madeAt: number; madeAtWall: number; proof: Promise<string> } | undefined;

  constructor(o: LatchGateClientOptions = {}) {
    const env = o.env ?? process.env;
    this.agentId = o.agentId ?? env.LATCHGATE_AGENT_ID ?? `agent-${randomUUID().slice(0, 8)}`;
    const endpoint = resolveEndpoint(o, env, () => defaultSocket(env));
    this.transport = new Transport(endpoint, o.fetch);
    this.token = o.token ?? (env.LATCHGATE_TOKEN || undefined);
    this.scopes = o.scopes ?? ['tools:call'];
    this.budgets = o.budgets;
  }

  /** Where this client sends its requests. */
  get endpoint(): { socket?: string; baseUrl?: string; publicBaseUrl: string } {
    const { socket, baseUrl, publicBaseUrl } = this.transport.endpoint;
    return { ...(socket !== undefined ? { socket } : {}), ...(baseUrl !== undefined ? { baseUrl } : {}), publicBaseUrl };
  }

  /** Makes the key and takes a lease now (otherwise the first call does). */
  async connect(signal?: AbortSignal): Promise<void> {
    await this.currentLease(signal);
  }

  /**
   * Runs an action. Resolves with its output and receipt; throws
   * LatchGateApprovalRequired when an operator must approve it first, and a
   * LatchGateError subclass for every refusal and failure.
   */
  async execute(actionId: string, params: unknown, o: ExecuteOptions = {}): Promise<ExecuteResult> {
    const r = await this.signed('POST', `/v1/actions/${encodeURIComponent(actionId)}/execute`, params, o.signal, o.idempotencyKey !== undefined ? { 'idempotency-key': o.idempotencyKey } : {});
    if (r.status === 202) throw new LatchGateApprovalRequired(r.body as { approval_id: string; request_hash: string });
    return resultOf(r.status, r.body);
  }

  async getApprovalStatus(approvalId: string, o: { signal?: AbortSignal } = {}): Promise<ApprovalStatus> {
    const r = await this.signed('GET', `/v1/approvals/${encodeURIComponent(approvalId)}/poll`, undefined, o.signal);
    if (r.status !== 200) throw gateError(r.status, r.body);
    const b = r.body as Record<string, unknown>;
    return {
      approvalId: String(b.approval_id),
      status: String(b.status),
      actionId: String(b.action_id),
      requestHash: String(b.request_hash),
      expiresAt: String(b.expires_at),
      ...(typeof b.decided_by === 'string' ? { decidedBy: b.decided_by } : {}),
      ...(typeof b.reason === 'string' ? { reason: b.reason } : {}),
      ...(typeof b.receipt_id === 'string' ? { receiptId: b.receipt_id } : {}),
      ...(b.result && typeof b.result === 'object' ? { result: b.result as ApprovalStatus['result'] } : {}),
    };
  }

  /**
   * Waits until the approval is decided. Approved: resolves with the result
   * of the run the gate made of the held request (or throws its failure).
   * Denied, expired or revoked: throws LatchGateDenied / LatchGateConflict
   * with that code. The signal cancels the wait (never the approval).
   */
  async waitForApproval(approvalId: string, o: { signal?: AbortSignal; intervalMs?: number } = {}): Promise<ExecuteResult> {
    const interval = Math.max(100, o.intervalMs ?? 2000);
    for (;;) {
      const s = await this.getApprovalStatus(approvalId, o.signal ? { signal: o.signal } : {});
      if (s.status === 'approved' && s.result) return resultOf(s.result.status, s.result.body);
      if (s.status === 'denied') throw gateError(403, { error: 'approval_denied', message: `approval ${approvalId} was denied${s.decidedBy ? ` by ${s.decidedBy}` : ''}${s.reason ? `: ${s.reason}` : ''}` });
      if (s.status === 'expired') throw gateError(403, { error: 'approval_expired', message: `approval ${approvalId} expired at ${s.expiresAt} before anyone decided` });
      if (s.status === 'revoked') throw gateError(409, { error: 'approval_revoked', message: `approval ${approvalId} was revoked with its lease` });
      await sleep(interval, o.signal);
    }
  }

  /** A receipt of this caller's (the gate refuses other callers' receipts). */
  async getReceipt(receiptId: string, o: { signal?: AbortSignal } = {}): Promise<Record<string, unknown>> {
    const r = await this.signed('GET', `/v1/receipts/${encodeURIComponent(receiptId)}`, undefined, o.signal);
    if (r.status !== 200) throw gateError(r.status, r.body);
    return r.body as Record<string, unknown>;
  }

  /**
   * Checks a receipt against the gate's receipt keys (GET /.well-known/latchgate-receipt-keys.json):
   * its result_hash over its fields (RFC 8785), its Ed25519 signature, and a
   * key not retired before the receipt's time. Keys are fetched once, and
   * again when a receipt names a key not seen yet.
   */
  async verifyReceipt(receipt: Record<string, unknown>, o: { signal?: AbortSignal } = {}): Promise<ReceiptVerification> {
    const kid = receipt.signing_key_id;
    if (!this.receiptKeys || (typeof kid === 'string' && !this.receiptKeys.has(kid))) this.receiptKeys = await this.fetchReceiptKeys(o.signal);
    return verifyReceiptWith(this.receiptKeys, receipt);
  }

  async listActions(o: { signal?: AbortSignal } = {}): Promise<ActionSummary[]> {
    const r = await this.plain('GET', '/v1/actions', o.signal);
    return (r as { actions: ActionSummary[] }).actions;
  }

  /** One action with its manifest: request and response schemas, risk, egress, limits, provider. */
  async getAction(actionId: string, o: { signal?: AbortSignal } = {}): Promise<Record<string, unknown>> {
    return (await this.plain('GET', `/v1/actions/${encodeURIComponent(actionId)}`, o.signal)) as Record<string, unknown>;
  }

  /** Closes kept-alive connections; the client can still be used (it reconnects). */
  close(): void {
    this.transport.close();
  }

  // ---------------------------------------------------------------- internals

  private headers(): Record<string, string> {
    return this.token ? { 'latchgate-token': this.token } : {};
  }

  private async plain(method: string, path: string, signal?: AbortSignal): Promise<unknown> {
    const r = await this.transport.request(method, path, this.headers(), undefined, signal);
    if (r.status !== 200) throw gateError(r.status, r.body);
    return r.body;
  }

  private async fetchReceiptKeys(signal?: AbortSignal): Promise<ReceiptKeySet> {
    const body = (await this.plain('GET', RECEIPT_KEYS_PATH, signal)) as { keys?: unknown };
    if (!body || !Array.isArray(body.keys)) throw new LatchGateConnectionError('bad_answer', `the gate answered ${RECEIPT_KEYS_PATH} without a keys list`);
    return new Map(body.keys.filter((k): k is { kid: string } => !!k && typeof (k as { kid?: unknown }).kid === 'string').map((k) => [k.kid, k as Record<string, unknown>]));
  }

  /** A request with the lease and a fresh proof; a lease_expired answer renews the lease and sends it once more, a policy_changed one (nothing done) is sent once more. */
  private async signed(method: string, path: string, body: unknown, signal?: AbortSignal, extra: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
    for (let attempt = 0; ; attempt++) {
      const lease = await this.currentLease(signal);
      const key = await this.dpopKey();
      const url = this.transport.htu(path);
      const dpop = await this.proof(key, method, url, lease.jwt);
      const r = await this.transport.request(method, path, { ...this.headers(), ...extra, authorization: `DPoP ${lease.jwt}`, dpop }, body, signal);
      this.makeSpareProof(key, method, url, lease.jwt);
      const code = (r.body as { error?: unknown } | undefined)?.error;
      if (r.status === 401 && code === 'lease_expired' && attempt === 0) {
        if (this.lease && (await this.lease.catch(() => undefined)) === lease) this.lease = undefined;
        continue;
      }
      // The policy changed while the call waited: nothing was done, and the gate asks for the call again.
      if (r.status === 409 && code === 'policy_changed' && attempt === 0) continue;
      return r;
    }
  }

  /**
   * A proof for this request: the one made ahead for the same method, URL and
   * lease, if it is recent enough, or a new one. Each is used once (its own jti).
   */
  private proof(key: DpopKey, method: string, url: string, leaseJwt: string): Promise<string> {
    const s = this.#spareProof;
    this.#spareProof = undefined;
    // Young by both clocks: the monotonic one, and the wall clock its iat was read from (stepped, say by NTP).
    const young = (s: { madeAt: number; madeAtWall: number }) => performance.now() - s.madeAt < SPARE_PROOF_MAX_AGE_MS && Math.abs(Date.now() - s.madeAtWall) < SPARE_PROOF_MAX_AGE_MS;
    if (s && s.method === method && s.url === url && s.leaseJwt === leaseJwt && young(s)) return s.proof.catch(() => makeProof({ key, method, url, leaseJwt }));
    return makeProof({ key, method, url, leaseJwt });
  }

  /**
   * Signs the proof of the next call to the same action while nothing waits on
   * this client (an agent repeats its calls): the signature is then off the
   * next call's path. Kept in memory beside the key that made it, and dropped
   * once older than SPARE_PROOF_MAX_AGE_MS, well within the gate's window for a proof's iat.
   */
  private makeSpareProof(key: DpopKey, method: string, url: string, leaseJwt: string): void {
    setImmediate(() => {
      if (this.#spareProof) return;
      const proof = makeProof({ key, method, url, leaseJwt });
      proof.catch(() => undefined); // a proof that could not be made is made again when needed
      const spare = { method, url, leaseJwt, madeAt: performance.now(), madeAtWall: Date.now(), proof };
      this.#spareProof = spare;
      setTimeout(() => {
        if (this.#spareProof === spare) this.#spareProof = undefined;
      }, SPARE_PROOF_MAX_AGE_MS).unref();
    }).unref();
  }

  private dpopKey(): Promise<DpopKey> {
    this.key ??= createDpopKey();
    return this.key;
  }

  private async currentLease(signal?: AbortSignal): Promise<Lease> {
    const held = this.lease ? await this.lease.catch(() => undefined) : undefined;
    if (held) {
      const left = held.expiresAt - Date.now();
      if (left > Math.max(RENEW_MIN_MS, (held.expiresAt - held.issuedAt) * RENEW_SHARE)) return held;
    }
    const p = this.takeLease(signal);
    this.lease = p;
    p.catch(() => {
      if (this.lease === p) this.lease = undefined;
    });
    return p;
  }

  private async takeLease(signal?: AbortSignal): Promise<Lease> {
    const key = await this.dpopKey();
    const issuedAt = Date.now();
    const r = await this.transport.request('POST', '/v1/leases', this.headers(), { scopes: this.scopes, dpop_jwk: key.jwk, ...(this.budgets ? { budgets: this.budgets } : {}) }, signal);
    if (r.status !== 201) throw gateError(r.status, r.body);
    const b = r.body as { lease_jwt?: unknown; expires_at?: unknown };
    const expiresAt = typeof b.expires_at === 'string' ? Date.parse(b.expires_at) : NaN;
    if (typeof b.lease_jwt !== 'string' || !Number.isFinite(expiresAt)) throw new LatchGateConnectionError('bad_answer', 'the gate granted a lease without lease_jwt and expires_at');
    return { jwt: b.lease_jwt, expiresAt, issuedAt };
  }
}

function resultOf(status: number, body: unknown): ExecuteResult {
  if (status !== 200) throw gateError(status, body);
  const b = body as Record<string, unknown>;
  const v = (b.verification ?? {}) as { outcome?: unknown; is_fully_successful?: unknown };
  if (typeof b.receipt_id !== 'string') throw new LatchGateConnectionError('bad_answer', 'the gate answered 200 without a receipt_id', status);
  return {
    output: b.output,
    receiptId: b.receipt_id,
    traceId: String(b.trace_id ?? ''),
    grantId: String(b.grant_id ?? ''),
    verification: { outcome: String(v.outcome ?? b.verification_outcome ?? ''), isFullySuccessful: v.is_fully_successful === true },
    requestHash: typeof b.request_hash === 'string' ? b.request_hash : undefined,
    decision: String(b.decision ?? ''),
    replayed: b.idempotent_replay === true,
    raw: b,
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason ?? new DOMException('aborted', 'AbortError'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}


