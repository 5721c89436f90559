// Receipt bundles built from scratch for tests, with node:crypto and an RFC
// 9162 reference tree (independent of src/verify/, which checks them): a
// format-2 receipt signed by a fresh key, its action_call event among
// others, an inclusion proof, a signed checkpoint, and optionally a newer
// checkpoint with its consistency proof.
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { canonicalize } from '../../dist/crypto/jcs.js';
import { assembleNote, ed25519KeyId, formatVerifierKey, signatureLine } from '../../dist/verify/note.js';
import { formatCheckpoint } from '../../dist/verify/checkpoint.js';

export const sha256 = (...chunks) => createHash('sha256').update(Buffer.concat(chunks.map((c) => Buffer.from(c)))).digest();
const hex = (b) => Buffer.from(b).toString('hex');
const b64 = (b) => Buffer.from(b).toString('base64');

export function ed25519Key() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
  const x = raw.toString('base64url');
  const kid = createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest('base64url');
  return { privateKey, raw, x, kid, jwk: { kty: 'OKP', crv: 'Ed25519', x, kid, use: 'sig', alg: 'EdDSA', created_at: '2025-01-01T00:00:00.000Z' } };
}

/** result_hash, receipt_signature and signing_key_id of a format-2 receipt, as the contract defines them. */
export function signReceipt2(receipt, key) {
  const { result_hash: _h, receipt_signature: _s, signing_key_id: _k, ...covered } = receipt;
  const result_hash = hex(sha256(Buffer.from(canonicalize(covered), 'utf8')));
  return { ...covered, result_hash, receipt_signature: sign(null, Buffer.from(result_hash, 'ascii'), key.privateKey).toString('hex'), signing_key_id: key.kid };
}

export const REQUEST = { url: 'https://api.example.com/v1/items', body: { name: 'café ✓', n: 1.5e21 } };

export function receipt2(key, overrides = {}) {
  return signReceipt2({
    receipt_format: 2,
    receipt_id: randomUUID(),
    grant_id: randomUUID(),
    trace_id: randomUUID(),
    action_id: 'http_api',
    action_version: '1.0.0',
    action_digest: `sha256:${'ab'.repeat(32)}`,
    principal: 'agent-1',
    request_hash: `sha256:${hex(sha256(Buffer.from(canonicalize(REQUEST), 'utf8')))}`,
    provider_module_digest: `sha256:${'cd'.repeat(32)}`,
    provider_receipt: null,
    normalized_result: { kind: 'success', summary: 'completed' },
    verification_outcome: { status: 'verified' },
    effect_evidence: [],
    started_at: '2025-06-01T10:00:00.000Z',
    finished_at: '2025-06-01T10:00:01.500Z',
    ...overrides,
  }, key);
}

// --- RFC 9162 2.1.1 reference tree, straight from the definitions.
const leafHash = (d) => sha256(Buffer.of(0), d);
const nodeHash = (l, r) => sha256(Buffer.of(1), l, r);
const split = (n) => 2 ** Math.floor(Math.log2(n - 1));
export function mth(leaves) {
  if (leaves.length === 0) return sha256();
  if (leaves.length === 1) return leafHash(leaves[0]);
  const k = split(leaves.length);
  return nodeHash(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}
export function inclusionPath(m, leaves) {
  if (leaves.length <= 1) return [];
  const k = split(leaves.length);
  return m < k ? [...inclusionPath(m, leaves.slice(0, k)), mth(leaves.slice(k))] : [...inclusionPath(m - k, leaves.slice(k)), mth(leaves.slice(0, k))];
}
export function consistencyProof(m, leaves, complete = true) {
  const n = leaves.length;
  if (m === n) return complete ? [] : [mth(leaves)];
  const k = split(n);
  return m <= k ? [...consistencyProof(m, leaves.slice(0, k), complete), mth(leaves.slice(k))] : [...consistencyProof(m - k, leaves.slice(k), false), mth(leaves.slice(0, k))];
}

export function checkpointNote(key, origin, leaves) {
  const text = formatCheckpoint({ origin, size: leaves.length, rootHash: mth(leaves), extensions: [] });
  const id = ed25519KeyId(sha256, origin, key.raw);
  return { note: assembleNote(text, [signatureLine(origin, id, sign(null, Buffer.from(text), key.privateKey))]), vkey: formatVerifierKey(sha256, origin, key.raw) };
}

export function actionCallEvent(receipt, extra = {}) {
  return canonicalize({
    event_type: 'action_call',
    trace_id: receipt.trace_id,
    timestamp: receipt.finished_at,
    decision: 'allow',
    subject: { principal: 'agent-1', session_id: 's-1' },
    action: { action_id: 'http_api', action_version: '1.0.0' },
    execution: { grant_id: receipt.grant_id, receipt_id: receipt.receipt_id, receipt_hash: receipt.result_hash, verification_outcome: 'verified' },
    prev_hash: null,
    ...extra,
  });
}

/**
 * A bundle whose receipt's event is leaf `leaf` among `size` events, checked
 * against the checkpoint at `size`; with `newerSize`, a newer checkpoint and
 * the consistency proof to it.
 */
export function makeBundle({ size = 7, leaf = 3, newerSize, receiptKey = ed25519Key(), checkpointKey = ed25519Key(), origin = 'latchgate.test/ledger', receipt } = {}) {
  receipt ??= receipt2(receiptKey);
  const all = Array.from({ length: Math.max(size, newerSize ?? 0) }, (_, i) => Buffer.from(canonicalize({ event_type: 'admin_reload', n: i })));
  const eventJson = actionCallEvent(receipt);
  all[leaf] = Buffer.from(eventJson, 'utf8');
  const leaves = all.slice(0, size);
  const bundle = {
    bundle_format: 'latchgate-receipt-bundle/1',
    receipt,
    receipt_key: receiptKey.jwk,
    event: { leaf_index: leaf, canonical_json: eventJson },
    inclusion_proof: inclusionPath(leaf, leaves).map(b64),
    checkpoint: checkpointNote(checkpointKey, origin, leaves),
  };
  if (newerSize !== undefined) bundle.newer_checkpoint = { ...checkpointNote(checkpointKey, origin, all), consistency_proof: consistencyProof(size, all).map(b64) };
  return { bundle, receiptKey, checkpointKey, origin, receipt };
}
