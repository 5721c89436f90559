// The execution receipt: what ran, under which grant, with what outcome;
// its result hash, signing and verification. docs/FORMATS.md describes both
// formats for verifiers written elsewhere.
import { canonicalize, sha256Hex } from '../crypto/jcs.js';
import { latestTime, type KeyStore } from '../keys/store.js';
import type { ReceiptFailureClass } from '../core/failure-class.js';

export type VerificationStatus =
  | 'verified'
  | 'verification_failed'
  | 'unverifiable_declared'
  | 'provider_failed_before_verification'
  | 'skipped';

/** The receipt format every new receipt has; receipts without receipt_format are format 1. */
export const RECEIPT_FORMAT = 2;

/** The members the signature stands beside: result_hash covers every other one. */
const SIGNATURE_MEMBERS = ['result_hash', 'receipt_signature', 'signing_key_id'] as const;

/** The members of both formats. */
interface ReceiptCommon {
  receipt_id: string;
  grant_id: string;
  trace_id: string;
  provider_module_digest: string;
  provider_receipt: unknown;
  normalized_result: { kind: 'success' | 'failure'; summary?: string; reason?: string };
  verification_outcome: { status: VerificationStatus; evidence?: unknown };
  effect_evidence: unknown[];
  started_at: string;
  finished_at: string;
  failure_class?: ReceiptFailureClass;
}

/**
 * What a format-2 receipt adds: enough to know what happened without the
 * ledger (the action, who asked, for what, under which grant, what came back).
 */
export interface ReceiptBinding {
  receipt_format: typeof RECEIPT_FORMAT;
  action_id: string;
  action_version: string;
  /** The action's manifest digest, as the grant names it. */
  action_digest: string;
  principal: string;
  session_id?: string;
  request_hash: string;
  /** "sha256:<hex>" of the JCS of the signed grant as issued (its signature included). */
  grant_hash: string;
  /** The kid of the grant key that signed the grant. */
  grant_key_id: string;
  approved_by?: string;
  approval_hash?: string;
  /** The hash of the provider's output (the event's execution.response_hash); absent when it gave none. */
  response_hash?: string;
}

interface Signature {
  result_hash: string;
  receipt_signature?: string;
  signing_key_id?: string;
}

/** A stored receipt: format 2 (every new one) or format 1 (receipt_format absent; older ledgers). */
export type ExecutionReceipt = ReceiptCommon & Signature & Partial<ReceiptBinding>;

/** What signReceipt is given: a format-2 receipt without its signature. */
export type UnsignedReceipt = ReceiptCommon & Omit<ReceiptBinding, 'receipt_format'>;

export class ReceiptFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReceiptFormatError';
  }
}

// ------------------------------------------------ result hash and signature
// result_hash is the lowercase hex SHA-256 of the JCS (RFC 8785) of what it
// covers; the receipt key (src/keys/) signs its ASCII bytes with Ed25519.
//   format 2: the whole receipt but result_hash, receipt_signature and
//             signing_key_id, so no member can be added or dropped unsigned;
//   format 1: the explicit list of format1Fields(), failure_class null when
//             absent. A format-2 receipt stripped of receipt_format hashes as
//             format 1 over fewer members, which is not its result_hash.

/** The members a format-1 result_hash covers. */
function format1Fields(r: Record<string, unknown>): Record<string, unknown> {
  return {
    receipt_id: r.receipt_id,
    grant_id: r.grant_id,
    provider_module_digest: r.provider_module_digest,
    provider_receipt: r.provider_receipt ?? null,
    normalized_result: r.normalized_result,
    verification_outcome: r.verification_outcome,
    effect_evidence: r.effect_evidence,
    started_at: r.started_at,
    finished_at: r.finished_at,
    failure_class: r.failure_class ?? null,
  };
}

/** The object whose JCS result_hash is the hash of, by the receipt's format. */
export function resultHashInput(receipt: object): Record<string, unknown> {
  const r = receipt as Record<string, unknown>;
  if (r.receipt_format === undefined) return format1Fields(r);
  if (r.receipt_format !== RECEIPT_FORMAT) {
    throw new ReceiptFormatError(`receipt_format ${JSON.stringify(r.receipt_format)} is not one this latchgate knows (absent for format 1, or ${RECEIPT_FORMAT})`);
  }
  const covered = { ...r };
  for (const m of SIGNATURE_MEMBERS) delete covered[m];
  return covered;
}

/** Lowercase hex SHA-256 (no prefix) of the JCS form of what the receipt's result_hash covers. */
export function computeResultHash(receipt: object): string {
  return sha256Hex(Buffer.from(canonicalize(resultHashInput(receipt)), 'utf8'));
}

/** Makes a format-2 receipt: result_hash over every member, signed with the current receipt key. */
export function signReceipt(keys: KeyStore, receipt: UnsignedReceipt): ExecutionReceipt {
  const r = { ...receipt, receipt_format: RECEIPT_FORMAT } as Record<string, unknown>;
  for (const m of SIGNATURE_MEMBERS) delete r[m];
  const result_hash = computeResultHash(r);
  const { kid, signature } = keys.sign('receipt', Buffer.from(result_hash, 'ascii'));
  return { ...(r as unknown as ExecutionReceipt), result_hash, receipt_signature: signature, signing_key_id: kid };
}

/**
 * Checks a receipt's result_hash and signature (by kid or legacy kid), by a
 * key not retired before the receipt's latest time (started_at, finished_at:
 * both hashed, so neither can be changed without re-signing); the reason
 * names what failed.
 */
export function verifyReceipt(keys: KeyStore, receipt: ExecutionReceipt): { ok: true } | { ok: false; reason: string } {
  let expected: string;
  try {
    expected = computeResultHash(receipt);
  } catch (e) {
    return { ok: false, reason: e instanceof ReceiptFormatError ? e.message : `its fields cannot be canonicalised: ${(e as Error).message}` };
  }
  if (receipt.result_hash !== expected) return { ok: false, reason: 'result_hash does not match the receipt fields: the receipt was edited' };
  if (typeof receipt.receipt_signature !== 'string' || receipt.receipt_signature === '') return { ok: false, reason: 'the receipt is not signed' };
  if (typeof receipt.signing_key_id !== 'string' || receipt.signing_key_id === '') return { ok: false, reason: 'the receipt has no signing_key_id' };
  const signedAt = latestTime(receipt.started_at, receipt.finished_at);
  const found = keys.keyAt('receipt', receipt.signing_key_id, signedAt);
  if (!found.key) return { ok: false, reason: found.reason };
  if (!keys.verify('receipt', receipt.signing_key_id, Buffer.from(receipt.result_hash, 'ascii'), receipt.receipt_signature, { signedAt })) {
    return { ok: false, reason: `the Ed25519 signature does not verify with key ${receipt.signing_key_id}` };
  }
  return { ok: true };
}
