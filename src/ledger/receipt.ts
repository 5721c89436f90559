// The execution receipt: what ran, under which grant, with what outcome;
// its result hash, signing and verification.
import { canonicalize, sha256Hex } from '../crypto/jcs.js';
import { latestTime, type KeyStore } from '../keys/store.js';
import type { ReceiptFailureClass } from '../core/failure-class.js';

export type VerificationStatus =
  | 'verified'
  | 'verification_failed'
  | 'unverifiable_declared'
  | 'provider_failed_before_verification'
  | 'skipped';

export interface ExecutionReceipt {
  receipt_id: string;
  grant_id: string;
  trace_id: string;
  provider_module_digest: string;
  provider_receipt: unknown;
  normalized_result: { kind: 'success' | 'failure'; summary?: string; reason?: string };
  verification_outcome: { status: VerificationStatus; evidence?: unknown };
  effect_evidence: unknown[];
  result_hash: string;
  receipt_signature?: string;
  signing_key_id?: string;
  started_at: string;
  finished_at: string;
  failure_class?: ReceiptFailureClass;
}

// ------------------------------------------------ result hash and signature
// result_hash is the hex SHA-256 of the JCS of the fields below; the receipt
// key (src/keys/) signs its ASCII hex with Ed25519.

/** The fields result_hash covers; failure_class is null when absent. */
export type ReceiptHashFields = Pick<
  ExecutionReceipt,
  | 'receipt_id'
  | 'grant_id'
  | 'provider_module_digest'
  | 'provider_receipt'
  | 'normalized_result'
  | 'verification_outcome'
  | 'effect_evidence'
  | 'started_at'
  | 'finished_at'
  | 'failure_class'
>;

export type UnsignedReceipt = Omit<ExecutionReceipt, 'result_hash' | 'receipt_signature' | 'signing_key_id'> & {
  result_hash?: string;
};

/** Hex SHA-256 (no prefix) of the JCS form of the receipt's hashed fields. */
export function computeResultHash(r: ReceiptHashFields): string {
  const fields = {
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
  return sha256Hex(Buffer.from(canonicalize(fields), 'utf8'));
}

/** Computes result_hash and signs it with the current receipt key. */
export function signReceipt(keys: KeyStore, receipt: UnsignedReceipt): ExecutionReceipt {
  const { receipt_signature: _s, signing_key_id: _k, ...rest } = receipt as ExecutionReceipt;
  const result_hash = computeResultHash(rest);
  const { kid, signature } = keys.sign('receipt', Buffer.from(result_hash, 'ascii'));
  return { ...rest, result_hash, receipt_signature: signature, signing_key_id: kid };
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
    return { ok: false, reason: `its fields cannot be canonicalised: ${(e as Error).message}` };
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
