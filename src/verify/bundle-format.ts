// The receipt bundle (docs/EVIDENCE.md, "Receipt bundles"): one JSON
// document with everything needed to check one execution receipt offline:
//   bundle_format     "latchgate-receipt-bundle/1"
//   receipt           the format-2 receipt, as stored
//   receipt_key       the public JWK of the key that signed it (with its
//                     created_at and retired_at from the key history)
//   event             the action_call event that completed the execution:
//                     leaf_index (its leaf in the ledger's Merkle tree) and
//                     canonical_json (its RFC 8785 bytes, the leaf, as text)
//   inclusion_proof   base64 hashes: the event's leaf in the checkpoint's tree
//   checkpoint        a signed checkpoint note and its verifier key
//   newer_checkpoint  optional: a later signed checkpoint, its verifier key
//                     and the consistency proof from the first to it
// This module reads the form only, strictly: a member missing, of the wrong
// kind or unknown is refused with its JSON path. What the values prove is
// checked by bundle.ts. Standalone: no Node API.
import { decodeBase64 } from './base64.js';
import { JsonSyntaxError, parseJson } from './json.js';
import { NoteError, parseVerifierKey } from './note.js';
import { ed25519Verify, sha256 } from './primitives.js';
import { jwkPublicKey, RECEIPT_FORMAT } from './receipt.js';

export const BUNDLE_FORMAT = 'latchgate-receipt-bundle/1';
/** A Merkle proof of a tree below 2^64 leaves has at most 64 hashes (RFC 9162 2.1.3, 2.1.4). */
export const MAX_PROOF_HASHES = 64;
const MAX_BUNDLE_CHARS = 16 * 1024 * 1024;

/**
 * A key id: an RFC 7638 thumbprint (43 base64url characters) or the 16 hex
 * digits an older latchgate gave. Nothing else: a kid is printed in the
 * report, so one holding a newline or a terminal control could forge lines.
 */
const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/;
const KEY_ID_WHAT = 'a key id (an RFC 7638 thumbprint in base64url, or 16 hex digits)';

/** An RFC 3339 date-time with seconds and a zone. */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

/** Whether the fields of an RFC 3339 text name a real instant (Date.parse takes February 30 and 24:00). */
function realDateTime(m: RegExpExecArray): boolean {
  const [y, mo, d, h, mi, s, zh = '0', zm = '0'] = m.slice(1).map((v) => (v === undefined ? undefined : Number(v)));
  const days = new Date(Date.UTC(y!, mo!, 0)).getUTCDate(); // the last day of that month
  return mo! >= 1 && mo! <= 12 && d! >= 1 && d! <= days && h! <= 23 && mi! <= 59 && s! <= 59 && Number(zh) <= 23 && Number(zm) <= 59;
}

/** An Ed25519 public JWK as latchgate's key histories list them; other members (use, alg, endorsement...) are kept. */
export interface ReceiptKeyJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid: string;
  created_at?: string;
  retired_at?: string;
  [member: string]: unknown;
}

/** The members of a format-2 receipt the verifier relies on (every member is covered by result_hash). */
export interface BundleReceipt {
  receipt_format: 2;
  receipt_id: string;
  result_hash: string;
  receipt_signature: string;
  signing_key_id: string;
  started_at: string;
  finished_at: string;
  request_hash?: string;
  [member: string]: unknown;
}

export interface BundleCheckpoint {
  note: string;
  vkey: string;
}

export interface ReceiptBundle {
  bundle_format: typeof BUNDLE_FORMAT;
  receipt: BundleReceipt;
  receipt_key: ReceiptKeyJwk;
  event: { leaf_index: number; canonical_json: string };
  inclusion_proof: string[];
  checkpoint: BundleCheckpoint;
  newer_checkpoint?: BundleCheckpoint & { consistency_proof: string[] };
}

/** A bundle (or a trusted key) that is not of the expected form; `path` is where, as $.member[index]. */
export class BundleFormatError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'BundleFormatError';
  }
}

type Obj = Record<string, unknown>;

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} characters` : `the string ${JSON.stringify(v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

function object(path: string, v: unknown, members?: { required: string[]; optional?: string[] }): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new BundleFormatError(path, `expected an object, got ${describeValue(v)}`);
  const o = v as Obj;
  if (members) {
    for (const m of members.required) if (!(m in o)) throw new BundleFormatError(`${path}.${m}`, 'missing');
    const known = [...members.required, ...(members.optional ?? [])];
    for (const m of Object.keys(o)) {
      if (!known.includes(m)) throw new BundleFormatError(`${path}.${m}`, `unknown member (expected only ${known.join(', ')})`);
    }
  }
  return o;
}

function string(path: string, v: unknown, pattern?: RegExp, what?: string): string {
  if (typeof v !== 'string') throw new BundleFormatError(path, `expected ${what ?? 'a string'}, got ${describeValue(v)}`);
  if (pattern && !pattern.test(v)) throw new BundleFormatError(path, `expected ${what}, got ${describeValue(v)}`);
  return v;
}

function time(path: string, v: unknown): string {
  const t = string(path, v, RFC3339, 'an RFC 3339 date-time (e.g. 2025-01-31T12:00:00.000Z)');
  if (!realDateTime(RFC3339.exec(t)!) || Number.isNaN(Date.parse(t))) throw new BundleFormatError(path, `${JSON.stringify(t)} is not a real date-time`);
  return t;
}

function hashList(path: string, v: unknown): string[] {
  if (!Array.isArray(v)) throw new BundleFormatError(path, `expected an array of base64 SHA-256 hashes, got ${describeValue(v)}`);
  if (v.length > MAX_PROOF_HASHES) throw new BundleFormatError(path, `${v.length} hashes: a proof has at most ${MAX_PROOF_HASHES}`);
  return v.map((h, i) => {
    const s = string(`${path}[${i}]`, h, undefined, 'a base64 SHA-256 hash');
    const bytes = decodeBase64(s);
    if (!bytes || bytes.length !== 32) throw new BundleFormatError(`${path}[${i}]`, `expected canonical base64 of 32 bytes, got ${describeValue(s)}`);
    return s;
  });
}

/** An Ed25519 public JWK (a key history entry); `path` names it in errors. */
export function readJwk(path: string, v: unknown): ReceiptKeyJwk {
  const o = object(path, v);
  if ('d' in o) throw new BundleFormatError(`${path}.d`, 'a private key member: a bundle or trusted key holds public keys only');
  if (o.kty !== 'OKP') throw new BundleFormatError(`${path}.kty`, `expected "OKP", got ${describeValue(o.kty)}`);
  if (o.crv !== 'Ed25519') throw new BundleFormatError(`${path}.crv`, `expected "Ed25519", got ${describeValue(o.crv)}`);
  const x = string(`${path}.x`, o.x, undefined, 'base64url of a 32-byte Ed25519 key');
  if (!jwkPublicKey(x)) throw new BundleFormatError(`${path}.x`, `expected unpadded base64url of 32 bytes, got ${describeValue(x)}`);
  string(`${path}.kid`, o.kid, KEY_ID, KEY_ID_WHAT);
  if (o.created_at !== undefined) time(`${path}.created_at`, o.created_at);
  if (o.retired_at !== undefined) time(`${path}.retired_at`, o.retired_at);
  return o as ReceiptKeyJwk;
}

function readReceipt(path: string, v: unknown): BundleReceipt {
  const r = object(path, v);
  if (!('receipt_format' in r)) {
    throw new BundleFormatError(`${path}.receipt_format`, 'missing: this is a format-1 receipt, whose event does not name its hash; export needs a receipt written by a latchgate that writes receipt_format 2');
  }
  if (r.receipt_format !== RECEIPT_FORMAT) throw new BundleFormatError(`${path}.receipt_format`, `expected ${RECEIPT_FORMAT}, got ${describeValue(r.receipt_format)}`);
  string(`${path}.receipt_id`, r.receipt_id, /./, 'a non-empty receipt id');
  string(`${path}.result_hash`, r.result_hash, /^[0-9a-f]{64}$/, 'a SHA-256 in 64 lowercase hex digits');
  string(`${path}.receipt_signature`, r.receipt_signature, /^[0-9a-f]{128}$/, 'an Ed25519 signature in 128 lowercase hex digits');
  string(`${path}.signing_key_id`, r.signing_key_id, KEY_ID, KEY_ID_WHAT);
  time(`${path}.started_at`, r.started_at);
  time(`${path}.finished_at`, r.finished_at);
  if (r.request_hash !== undefined) string(`${path}.request_hash`, r.request_hash, /^sha256:[0-9a-f]{64}$/, '"sha256:" and 64 lowercase hex digits');
  return r as BundleReceipt;
}

function readCheckpoint(path: string, v: unknown, withProof: boolean): BundleCheckpoint & { consistency_proof?: string[] } {
  const c = object(path, v, { required: withProof ? ['note', 'vkey', 'consistency_proof'] : ['note', 'vkey'] });
  string(`${path}.note`, c.note, /./, 'a signed checkpoint note');
  const vkey = string(`${path}.vkey`, c.vkey, undefined, 'a verifier key <name>+<8 hex digits>+<base64 key>');
  try {
    parseVerifierKey(vkey, sha256, ed25519Verify);
  } catch (e) {
    if (e instanceof NoteError) throw new BundleFormatError(`${path}.vkey`, e.message);
    throw e;
  }
  if (withProof) hashList(`${path}.consistency_proof`, c.consistency_proof);
  return c as unknown as BundleCheckpoint;
}

/** Reads a bundle's text; throws BundleFormatError with the JSON path (or line and column) of the first fault. */
export function parseBundle(text: string): ReceiptBundle {
  let doc: unknown;
  try {
    doc = parseJson(text, { maxLength: MAX_BUNDLE_CHARS });
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw new BundleFormatError('$', `not a JSON document: ${e.message}`);
    throw e;
  }
  const b = object('$', doc, { required: ['bundle_format', 'receipt', 'receipt_key', 'event', 'inclusion_proof', 'checkpoint'], optional: ['newer_checkpoint'] });
  if (b.bundle_format !== BUNDLE_FORMAT) throw new BundleFormatError('$.bundle_format', `expected "${BUNDLE_FORMAT}", got ${describeValue(b.bundle_format)}`);
  readReceipt('$.receipt', b.receipt);
  readJwk('$.receipt_key', b.receipt_key);
  const ev = object('$.event', b.event, { required: ['leaf_index', 'canonical_json'] });
  if (typeof ev.leaf_index !== 'number' || !Number.isSafeInteger(ev.leaf_index) || ev.leaf_index < 0) {
    throw new BundleFormatError('$.event.leaf_index', `expected a leaf index (an integer from 0 to 2^53-1), got ${describeValue(ev.leaf_index)}`);
  }
  string('$.event.canonical_json', ev.canonical_json, /./, 'the event as RFC 8785 JSON text');
  hashList('$.inclusion_proof', b.inclusion_proof);
  readCheckpoint('$.checkpoint', b.checkpoint, false);
  if (b.newer_checkpoint !== undefined) readCheckpoint('$.newer_checkpoint', b.newer_checkpoint, true);
  return b as unknown as ReceiptBundle;
}
