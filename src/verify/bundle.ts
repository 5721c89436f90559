// verifyBundle: checks a receipt bundle (bundle-format.ts) with nothing but
// the bundle, and the keys and request the auditor gives:
//   receipt_hash          result_hash recomputed from the receipt
//   receipt_signature     the signature, by the key named by signing_key_id
//   receipt_key_validity  that key not retired before the receipt's times
//   receipt_key_trust     that key is one the auditor trusts (or only the bundle's own)
//   event                 the event bytes are canonical and name this receipt and its hash
//   checkpoint            the checkpoint note's signature, by its origin's key
//   checkpoint_key_trust  that key is one the auditor trusts (or only the bundle's own)
//   inclusion             the event's leaf is in the checkpoint's tree
//   consistency           optional: a newer checkpoint's tree extends it
//   request               optional: the request body given is the one the receipt names
// Every check ends ok, failed (with the reason) or not_checked (with why);
// the verdict is "verified" only when every check that applies is ok and
// both keys are trusted ones. Standalone: no Node API, runs in a browser.
import { decodeBase64 } from './base64.js';
import { BundleFormatError, parseBundle, type BundleCheckpoint, type ReceiptBundle, type ReceiptKeyJwk } from './bundle-format.js';
import { CheckpointError, openCheckpoint, type Checkpoint } from './checkpoint.js';
import { canonicalize } from './jcs.js';
import { merkle, MerkleProofError } from './merkle.js';
import { NoteError, parseVerifierKey, type NoteVerifier } from './note.js';
import { ed25519Verify, sha256 } from './primitives.js';
import { canonicalSha256, ed25519Thumbprint, jwkPublicKey, receiptResultHash, receiptSignatureValid, toHex } from './receipt.js';
import { noTrustedKeys, type TrustedKeys } from './trusted-keys.js';

export type CheckId =
  | 'bundle'
  | 'receipt_hash'
  | 'receipt_signature'
  | 'receipt_key_validity'
  | 'receipt_key_trust'
  | 'event'
  | 'checkpoint'
  | 'checkpoint_key_trust'
  | 'inclusion'
  | 'consistency'
  | 'request';

export const CHECK_TITLES: Record<CheckId, string> = {
  bundle: 'bundle form',
  receipt_hash: 'receipt result_hash',
  receipt_signature: 'receipt signature',
  receipt_key_validity: 'receipt key valid at the receipt time',
  receipt_key_trust: 'receipt key trusted',
  event: 'ledger event names the receipt',
  checkpoint: 'checkpoint signature',
  checkpoint_key_trust: 'checkpoint key trusted',
  inclusion: 'event included in the checkpoint',
  consistency: 'newer checkpoint consistent',
  request: 'request matches request_hash',
};

export type CheckStatus = 'ok' | 'failed' | 'not_checked';

export interface CheckResult {
  id: CheckId;
  title: string;
  status: CheckStatus;
  detail: string;
}

export type Verdict = 'verified' | 'unauthenticated' | 'failed';

export interface BundleReport {
  /** verified: every check that applies passed, by trusted keys. unauthenticated: they passed, but a key is only the bundle's own. */
  verdict: Verdict;
  summary: string;
  checks: CheckResult[];
  first_failure?: CheckResult;
  receipt_id?: string;
  checkpoint?: { origin: string; size: number; root: string };
  leaf_index?: number;
}

export interface VerifyOptions {
  /** Keys the auditor trusts (trusted-keys.ts). Without them the bundle's own keys are used, and the report says so. */
  trusted?: TrustedKeys;
  /** The request body (parsed JSON) to compare with the receipt's request_hash. */
  request?: { value: unknown } | undefined;
}

const utf8 = new TextEncoder();
const tree = merkle(sha256);
const b64 = (s: string) => decodeBase64(s) as Uint8Array; // the form was checked by parseBundle
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Verifies a bundle's text. Never throws for a bad bundle: the report says what failed. */
export function verifyBundle(text: string, options: VerifyOptions = {}): BundleReport {
  const checks = new Map<CheckId, CheckResult>();
  const set = (id: CheckId, status: CheckStatus, detail: string) => checks.set(id, { id, title: CHECK_TITLES[id], status, detail });
  const trusted = options.trusted ?? noTrustedKeys();

  let bundle: ReceiptBundle | undefined;
  try {
    bundle = parseBundle(text);
    set('bundle', 'ok', 'a latchgate-receipt-bundle/1 document, every member of the expected form');
  } catch (e) {
    if (!(e instanceof BundleFormatError)) throw e;
    set('bundle', 'failed', e.message);
  }
  let facts: Pick<BundleReport, 'receipt_id' | 'checkpoint' | 'leaf_index'> = {};
  if (bundle) facts = checkBundle(bundle, trusted, options.request, set);
  return report([...Object.keys(CHECK_TITLES)].map((id) => checks.get(id as CheckId) ?? { id: id as CheckId, title: CHECK_TITLES[id as CheckId], status: 'not_checked', detail: 'not reached: the bundle could not be read' }), facts);
}

function checkBundle(b: ReceiptBundle, trusted: TrustedKeys, request: VerifyOptions['request'], set: (id: CheckId, s: CheckStatus, d: string) => void): Pick<BundleReport, 'receipt_id' | 'checkpoint' | 'leaf_index'> {
  const r = b.receipt;

  // --- the receipt
  let hashOk = false;
  try {
    const expected = receiptResultHash(r);
    hashOk = expected === r.result_hash;
    set('receipt_hash', hashOk ? 'ok' : 'failed', hashOk ? `result_hash ${r.result_hash} is the SHA-256 of the receipt's RFC 8785 form` : `result_hash is ${r.result_hash}, but the receipt's members hash to ${expected}: the receipt was changed after it was signed`);
  } catch (e) {
    set('receipt_hash', 'failed', `the receipt has no RFC 8785 form: ${errorText(e)}`);
  }

  const key = receiptKey(b.receipt_key, r.signing_key_id, trusted.receiptKeys);
  if ('problem' in key) {
    set('receipt_signature', 'failed', key.problem);
    set('receipt_key_validity', 'not_checked', 'no key to check');
  } else {
    const sigOk = receiptSignatureValid(key.publicKey, r.result_hash, r.receipt_signature);
    set('receipt_signature', sigOk ? 'ok' : 'failed', sigOk
      ? `Ed25519 signature over result_hash by key ${r.signing_key_id} (${key.trusted ? 'a trusted key' : "the bundle's own key"})${hashOk ? '' : ', but over a result_hash the receipt does not have'}`
      : `the signature does not verify with key ${r.signing_key_id}: the receipt_signature or result_hash was changed, or another key signed it`);
    set('receipt_key_validity', ...keyValidity(key.jwk, r));
  }
  if (trusted.receiptKeys.length === 0) {
    set('receipt_key_trust', 'not_checked', `no trusted receipt key given: key ${r.signing_key_id} is the bundle's own, unauthenticated (give the receipt key history, /.well-known/latchgate-receipt-keys.json)`);
  } else if ('problem' in key || !key.trusted) {
    set('receipt_key_trust', 'failed', `key ${r.signing_key_id} is not among the ${trusted.receiptKeys.length} trusted receipt key(s) given (${trusted.receiptKeys.map((k) => k.kid).join(', ')})`);
  } else {
    set('receipt_key_trust', 'ok', `key ${r.signing_key_id} is a trusted receipt key`);
  }

  // --- the event
  const eventText = b.event.canonical_json;
  set('event', ...eventNamesReceipt(eventText, r.receipt_id, r.result_hash));

  // --- the checkpoint
  const first = openBundleCheckpoint(b.checkpoint, trusted.checkpointKeys);
  set('checkpoint', ...first.status);
  const cp = first.checkpoint;
  const facts = { receipt_id: r.receipt_id, leaf_index: b.event.leaf_index, ...(cp ? { checkpoint: { origin: cp.origin, size: cp.size, root: toHex(cp.rootHash) } } : {}) };

  // --- inclusion, in the checkpoint's tree
  if (!cp) {
    set('inclusion', 'not_checked', 'no checkpoint to check against');
  } else {
    try {
      tree.verifyInclusion(b.event.leaf_index, cp.size, tree.leafHash(utf8.encode(eventText)), b.inclusion_proof.map(b64), cp.rootHash);
      set('inclusion', 'ok', `leaf ${b.event.leaf_index} is in the tree of ${cp.size} leaves whose root the checkpoint states`);
    } catch (e) {
      if (!(e instanceof MerkleProofError)) throw e;
      set('inclusion', 'failed', `${e.reason}: ${e.message}`);
    }
  }

  // --- an optional newer checkpoint
  let newer: ReturnType<typeof openBundleCheckpoint> | undefined;
  if (!b.newer_checkpoint) {
    set('consistency', 'not_checked', 'the bundle has no newer checkpoint');
  } else {
    newer = openBundleCheckpoint(b.newer_checkpoint, trusted.checkpointKeys);
    const n = newer.checkpoint;
    if (newer.status[0] === 'failed' || !n) set('consistency', 'failed', `the newer checkpoint: ${newer.status[1]}`);
    else if (!cp) set('consistency', 'not_checked', 'the first checkpoint could not be read');
    else if (n.origin !== cp.origin) set('consistency', 'failed', `the newer checkpoint is of the log ${JSON.stringify(n.origin)}, not ${JSON.stringify(cp.origin)}`);
    else {
      try {
        tree.verifyConsistency(cp.size, n.size, b.newer_checkpoint.consistency_proof.map(b64), cp.rootHash, n.rootHash);
        set('consistency', 'ok', `the tree of ${n.size} leaves (${newer.trusted ? 'trusted' : "the bundle's own"} key) extends the tree of ${cp.size}`);
      } catch (e) {
        if (!(e instanceof MerkleProofError)) throw e;
        set('consistency', 'failed', `${e.reason}: ${e.message}`);
      }
    }
  }

  if (trusted.checkpointKeys.length === 0) {
    set('checkpoint_key_trust', 'not_checked', `no trusted checkpoint key given: ${b.checkpoint.vkey.split('+')[0]}'s key is the bundle's own, unauthenticated (give the log's verifier key)`);
  } else if (!first.trusted || (newer && !newer.trusted)) {
    set('checkpoint_key_trust', 'failed', `the ${first.trusted ? 'newer ' : ''}checkpoint is not signed by any of the ${trusted.checkpointKeys.length} trusted checkpoint key(s) given`);
  } else {
    set('checkpoint_key_trust', 'ok', `signed by the trusted key ${first.verifiedBy}`);
  }

  // --- an optional request body
  if (!request) {
    set('request', 'not_checked', 'no request body given');
  } else if (typeof r.request_hash !== 'string') {
    set('request', 'failed', 'the receipt has no request_hash to compare with');
  } else {
    try {
      const h = canonicalSha256(request.value);
      set('request', h === r.request_hash ? 'ok' : 'failed', h === r.request_hash ? `the request hashes to the receipt's request_hash ${h}` : `the request hashes to ${h}, not to the receipt's request_hash ${r.request_hash}`);
    } catch (e) {
      set('request', 'failed', `the request has no RFC 8785 form: ${errorText(e)}`);
    }
  }
  return facts;
}

/** The key to check the receipt with: a trusted one with its kid when keys are trusted, else the bundle's; the kid must be its thumbprint. */
function receiptKey(own: ReceiptKeyJwk, kid: string, trusted: ReceiptKeyJwk[]): { publicKey: Uint8Array; jwk: ReceiptKeyJwk; trusted: boolean } | { problem: string } {
  const fromTrusted = trusted.find((k) => k.kid === kid && ed25519Thumbprint(jwkPublicKey(k.x)!) === kid);
  const jwk = fromTrusted ?? own;
  const publicKey = jwkPublicKey(jwk.x)!;
  const thumb = ed25519Thumbprint(publicKey);
  if (!fromTrusted && jwk.kid !== kid) return { problem: `the receipt names key ${kid}, but the bundle carries key ${jwk.kid}${trusted.length ? ', and no trusted key has that kid' : ''}` };
  if (thumb !== kid) return { problem: `the bundle's key is called ${kid}, but its RFC 7638 thumbprint is ${thumb}: the key was replaced` };
  return { publicKey, jwk, trusted: fromTrusted !== undefined };
}

/** A retired key signs nothing dated after its retirement (as src/keys/store.ts keyAt). */
function keyValidity(jwk: ReceiptKeyJwk, r: ReceiptBundle['receipt']): [CheckStatus, string] {
  const at = Math.max(Date.parse(r.started_at), Date.parse(r.finished_at));
  const when = new Date(at).toISOString();
  if (jwk.retired_at === undefined) return ['ok', `key ${jwk.kid} is not retired (the receipt is dated ${when})`];
  return at <= Date.parse(jwk.retired_at)
    ? ['ok', `key ${jwk.kid} was retired at ${jwk.retired_at}, after the receipt (${when})`]
    : ['failed', `key ${jwk.kid} was retired at ${jwk.retired_at}, before the receipt's time ${when}: a retired key signs nothing after its retirement`];
}

/** The event's text must be its own RFC 8785 form, and name the receipt by id and hash. */
function eventNamesReceipt(text: string, receiptId: string, resultHash: string): [CheckStatus, string] {
  let event: { event_type?: unknown; execution?: { receipt_id?: unknown; receipt_hash?: unknown } };
  try {
    event = JSON.parse(text) as typeof event;
    if (canonicalize(event) !== text) return ['failed', 'the event text is not in RFC 8785 form: these are not the bytes the ledger hashed'];
  } catch (e) {
    return ['failed', `the event text is not JSON: ${errorText(e)}`];
  }
  if (event === null || typeof event !== 'object') return ['failed', 'the event is not a JSON object'];
  if (event.event_type !== 'action_call') return ['failed', `the event is a ${JSON.stringify(event.event_type)}, not the action_call that completed the execution`];
  const x = event.execution;
  if (!x || x.receipt_id !== receiptId) return ['failed', `the event's execution.receipt_id is ${JSON.stringify(x?.receipt_id)}, not this receipt's ${JSON.stringify(receiptId)}`];
  if (x.receipt_hash !== resultHash) return ['failed', `the event's execution.receipt_hash is ${JSON.stringify(x.receipt_hash)}, not this receipt's result_hash ${resultHash}`];
  return ['ok', 'the action_call event names this receipt: execution.receipt_id and execution.receipt_hash match'];
}

/** A bundle checkpoint opened with the trusted keys if they sign it, else with its own key (checked, not trusted). */
function openBundleCheckpoint(c: BundleCheckpoint, trustedVkeys: string[]): { status: [CheckStatus, string]; checkpoint?: Checkpoint; trusted: boolean; verifiedBy?: string } {
  const attempt = (vkeys: string[]) => {
    const verifiers: NoteVerifier[] = vkeys.map((k) => parseVerifierKey(k, sha256, ed25519Verify));
    const opened = openCheckpoint(c.note, verifiers);
    const by = opened.verifiedBy[0]!;
    if (opened.origin !== by.name) throw new CheckpointError(`the checkpoint is of the log ${JSON.stringify(opened.origin)}, but signed by the key named ${JSON.stringify(by.name)}: a log's checkpoint key is named after its origin`);
    return { opened, by: `${by.name}+${by.keyId.toString(16).padStart(8, '0')}` };
  };
  const fail = (e: unknown): { status: [CheckStatus, string]; trusted: boolean } => {
    if (e instanceof NoteError || e instanceof CheckpointError) return { status: ['failed', e.message], trusted: false };
    throw e;
  };
  if (trustedVkeys.length > 0) {
    try {
      const { opened, by } = attempt(trustedVkeys);
      return { status: ['ok', `checkpoint ${opened.origin} at size ${opened.size}, signed by the trusted key ${by}`], checkpoint: opened, trusted: true, verifiedBy: by };
    } catch (e) {
      if (!(e instanceof NoteError && e.reason === 'unverified')) return fail(e);
      // Signed by no trusted key: its own key is checked next; the trust check fails.
    }
  }
  try {
    const { opened, by } = attempt([c.vkey]);
    return { status: ['ok', `checkpoint ${opened.origin} at size ${opened.size}, signed by ${by} (the bundle's own key)`], checkpoint: opened, trusted: false, verifiedBy: by };
  } catch (e) {
    return fail(e);
  }
}

function report(checks: CheckResult[], facts: Pick<BundleReport, 'receipt_id' | 'checkpoint' | 'leaf_index'>): BundleReport {
  const failed = checks.find((c) => c.status === 'failed');
  const untrusted = checks.filter((c) => (c.id === 'receipt_key_trust' || c.id === 'checkpoint_key_trust') && c.status === 'not_checked');
  const optional = checks.filter((c) => (c.id === 'consistency' || c.id === 'request') && c.status === 'not_checked').map((c) => c.id);
  const skipped = optional.length ? `; not checked: ${optional.join(', ')}` : '';
  if (failed) return { verdict: 'failed', summary: `NOT VERIFIED: ${failed.id} failed: ${failed.detail}`, checks, first_failure: failed, ...facts };
  if (untrusted.length) {
    return { verdict: 'unauthenticated', summary: `consistent, but UNAUTHENTICATED: ${untrusted.map((c) => c.id.replace('_trust', '')).join(' and ')} only the bundle's own, no trusted key given${skipped}`, checks, ...facts };
  }
  return { verdict: 'verified', summary: `verified: receipt ${facts.receipt_id} is signed by a trusted key and its event is in the log ${facts.checkpoint?.origin} at size ${facts.checkpoint?.size}${skipped}`, checks, ...facts };
}
