// Exports a receipt bundle (src/verify/bundle-format.ts; docs/EVIDENCE.md,
// "Receipt bundles"): for one receipt id, the receipt, its key's JWK from the
// receipt key history, its action_call event and that event's leaf in the
// Merkle tree, the inclusion proof into the oldest signed checkpoint that
// covers it, and optionally the latest checkpoint with a consistency proof.
// A bundle is checked with verifyBundle against the state directory's own
// keys before it is handed out: an export never writes evidence that fails.
import { encodeBase64 } from '../verify/base64.js';
import { BUNDLE_FORMAT, type ReceiptBundle } from '../verify/bundle-format.js';
import { verifyBundle } from '../verify/bundle.js';
import type { KeyStore } from '../keys/store.js';
import type { Ledger } from './ledger.js';
import { RECEIPT_FORMAT, verifyReceipt } from './receipt.js';
import type { StoredCheckpoint, TreeCheckpoints } from './tree-checkpoints.js';

export class BundleExportError extends Error {
  constructor(
    message: string,
    readonly code: 'no_receipt' | 'format_1' | 'bad_receipt' | 'no_event' | 'no_checkpoint' | 'tree_mismatch' | 'self_check',
  ) {
    super(message);
    this.name = 'BundleExportError';
  }
}

export interface ExportOptions {
  /** Add the latest checkpoint and the consistency proof to it (when it is newer than the one the proof is in). */
  newer?: boolean;
  /**
   * When no stored checkpoint covers the event: sign one now (null: this
   * caller cannot sign, and the export fails naming `latchgate checkpoint`).
   */
  signCheckpoint?: (() => StoredCheckpoint) | null;
}

export interface ExportedBundle {
  bundle: ReceiptBundle;
  /** The checkpoint signed for this export, if one was. */
  signed?: StoredCheckpoint;
}

const FIX = 'Fix: run `latchgate verify` to see what is wrong with the ledger';

export function exportReceiptBundle(ledger: Ledger, keys: KeyStore, checkpoints: TreeCheckpoints, receiptId: string, opts: ExportOptions = {}): ExportedBundle {
  const receipt = ledger.getReceipt(receiptId);
  if (!receipt) throw new BundleExportError(`no receipt ${JSON.stringify(receiptId)} in the ledger (receipt ids are in the gate's answers and in \`latchgate audit\`, execution.receipt_id)`, 'no_receipt');
  if (receipt.receipt_format !== RECEIPT_FORMAT) {
    throw new BundleExportError(`receipt ${receiptId} is a format-1 receipt: export needs a receipt written by a latchgate that writes receipt_format 2 (its event does not name the receipt's hash)`, 'format_1');
  }
  const valid = verifyReceipt(keys, receipt);
  if (!valid.ok) throw new BundleExportError(`receipt ${receiptId} does not verify here: ${valid.reason}. ${FIX}`, 'bad_receipt');
  const receiptKey = keys.jwks('receipt').keys.find((k) => k.kid === receipt.signing_key_id && !k.legacy_kid);
  if (!receiptKey) throw new BundleExportError(`the receipt key ${receipt.signing_key_id} is not in the receipt key history. ${FIX}`, 'bad_receipt');

  // The event that completed the execution: the receipt's trace (commitEvidence writes it so).
  const event = ledger.db.prepare('SELECT id, event_json FROM audit_events WHERE trace_id = ?').get(receipt.trace_id) as { id: number; event_json: string } | undefined;
  const x = event && (JSON.parse(event.event_json) as { event_type?: string; execution?: { receipt_id?: string; receipt_hash?: string } });
  if (!event || x?.event_type !== 'action_call' || x.execution?.receipt_id !== receiptId || x.execution.receipt_hash !== receipt.result_hash) {
    throw new BundleExportError(`no action_call event of trace ${receipt.trace_id} names receipt ${receiptId} and its hash: the event was deleted or changed. ${FIX}`, 'no_event');
  }
  // Leaf i is the i-th event in id order; the stored leaf must be this event.
  const leafIndex = ledger.db.prepare('SELECT count(*) FROM audit_events WHERE id < ?').pluck().get(event.id) as number;
  if (leafIndex >= ledger.merkle.treeSize() || ledger.merkle.leaf(leafIndex).eventId !== event.id) {
    throw new BundleExportError(`the ledger's Merkle tree does not hold event ${event.id} as leaf ${leafIndex}. ${FIX}`, 'tree_mismatch');
  }

  let signed: StoredCheckpoint | undefined;
  let checkpoint = checkpoints.checkpointCovering(leafIndex);
  if (!checkpoint) {
    if (!opts.signCheckpoint) {
      throw new BundleExportError(`no signed checkpoint covers this receipt's event yet (leaf ${leafIndex}). Fix: run \`latchgate checkpoint\` (as the gate's operator), then export again`, 'no_checkpoint');
    }
    signed = checkpoint = opts.signCheckpoint();
    if (checkpoint.size <= leafIndex) throw new BundleExportError(`the checkpoint just signed (size ${checkpoint.size}) does not cover leaf ${leafIndex}. ${FIX}`, 'tree_mismatch');
  }
  const sameRoot = (c: StoredCheckpoint) => Buffer.from(ledger.merkle.merkleRoot(c.size)).equals(Buffer.from(c.root));
  if (!sameRoot(checkpoint)) throw new BundleExportError(`the ledger's tree at size ${checkpoint.size} no longer has the root its checkpoint signed: the history was rewritten. ${FIX}`, 'tree_mismatch');

  const b64 = (hashes: Uint8Array[]) => hashes.map((h) => encodeBase64(h));
  const bundle: ReceiptBundle = {
    bundle_format: BUNDLE_FORMAT,
    receipt: receipt as unknown as ReceiptBundle['receipt'],
    receipt_key: { ...receiptKey } as unknown as ReceiptBundle['receipt_key'],
    event: { leaf_index: leafIndex, canonical_json: event.event_json },
    inclusion_proof: b64(ledger.merkle.inclusionProof(leafIndex, checkpoint.size)),
    checkpoint: { note: checkpoint.note, vkey: checkpoint.vkey },
  };
  if (opts.newer) {
    const latest = checkpoints.latestCheckpoint();
    if (latest && latest.size > checkpoint.size) {
      if (!sameRoot(latest)) throw new BundleExportError(`the ledger's tree at size ${latest.size} no longer has the root its checkpoint signed. ${FIX}`, 'tree_mismatch');
      bundle.newer_checkpoint = { note: latest.note, vkey: latest.vkey, consistency_proof: b64(ledger.merkle.consistencyProof(checkpoint.size, latest.size)) };
    }
  }

  // Checked as an auditor holding this state directory's keys would check it.
  const report = verifyBundle(JSON.stringify(bundle), {
    trusted: { receiptKeys: keys.jwks('receipt').keys as unknown as ReceiptBundle['receipt_key'][], checkpointKeys: checkpoints.verifierKeys().map((k) => k.vkey) },
  });
  if (report.verdict !== 'verified') throw new BundleExportError(`the bundle of receipt ${receiptId} does not verify: ${report.summary}. ${FIX}`, 'self_check');
  return { bundle, ...(signed ? { signed } : {}) };
}
