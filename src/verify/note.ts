// Signed notes (C2SP signed-note, https://c2sp.org/signed-note): a text
// ending in a newline, a blank line, then one line per signature:
// "\u2014 <key name> <base64(4-byte key ID || signature)>". Only Ed25519
// (signature type 0x01) is used here, with the key ID
// SHA-256(name || 0x0A || 0x01 || public key)[:4].
//
// Standalone: no Node API and no import but the strict base64 beside it, so
// the same code checks checkpoints in a browser. SHA-256 and Ed25519
// verification are passed in (node:crypto on the Node side; any other
// implementation elsewhere).
import { decodeBase64, encodeBase64 } from './base64.js';

export type Sha256 = (...chunks: Uint8Array[]) => Uint8Array;
export type Ed25519Verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;

export const ED25519_TYPE = 0x01;
/** More signatures than this and the note is refused (the format asks verifiers to accept at least 16). */
export const MAX_SIGNATURES = 100;
const MAX_NOTE_BYTES = 1 << 20;
const DASH = '\u2014 ';

export type NoteFailure =
  /** Not a signed note: the text breaks the format (the message says where). */
  | 'malformed'
  /** A verifier key string that is not `name+hex8+base64(0x01||key)`. */
  | 'bad_key'
  /** No signature by any of the given keys. */
  | 'unverified'
  /** A signature by a given key that does not verify: the note was changed, or signed by another key with that name and ID. */
  | 'bad_signature';

export class NoteError extends Error {
  constructor(
    readonly reason: NoteFailure,
    message: string,
  ) {
    super(message);
    this.name = 'NoteError';
  }
}

export interface NoteSignature {
  name: string;
  keyId: number;
  signature: Uint8Array;
}

export interface NoteVerifier {
  name: string;
  keyId: number;
  publicKey: Uint8Array;
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

const utf8 = new TextEncoder();

/** Key names must be non-empty and hold no space and no '+'. */
export function isKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/u.test(name) && !/[\u0000-\u001f]/u.test(name);
}

/** The key ID of an Ed25519 key under a name: the first four bytes of SHA-256(name || 0x0A || 0x01 || key), big-endian. */
export function ed25519KeyId(sha256: Sha256, name: string, publicKey: Uint8Array): number {
  const h = sha256(utf8.encode(name), Uint8Array.of(0x0a, ED25519_TYPE), publicKey);
  return (((h[0] as number) << 24) | ((h[1] as number) << 16) | ((h[2] as number) << 8) | (h[3] as number)) >>> 0;
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** The verifier key string `name+<key ID in hex>+base64(0x01 || key)` that auditors are given. */
export function formatVerifierKey(sha256: Sha256, name: string, publicKey: Uint8Array): string {
  if (!isKeyName(name)) throw new NoteError('bad_key', `the key name ${JSON.stringify(name)} is empty or holds a space or '+'`);
  if (publicKey.length !== 32) throw new NoteError('bad_key', 'an Ed25519 public key is 32 bytes');
  const typed = new Uint8Array(33);
  typed[0] = ED25519_TYPE;
  typed.set(publicKey, 1);
  return `${name}+${hex8(ed25519KeyId(sha256, name, publicKey))}+${encodeBase64(typed)}`;
}

/** Reads a verifier key string; its key ID must be the one its name and key give. */
export function parseVerifierKey(vkey: string, sha256: Sha256, ed25519Verify: Ed25519Verify): NoteVerifier {
  // The base64 key may itself hold '+': only the first two separate.
  const first = vkey.indexOf('+');
  const second = vkey.indexOf('+', first + 1);
  const [name, id, key] = [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
  if (first < 0 || second < 0) {
    throw new NoteError('bad_key', 'a verifier key is <name>+<8 hex digits>+<base64 key>');
  }
  if (!isKeyName(name)) throw new NoteError('bad_key', `the verifier key's name ${JSON.stringify(name)} is empty or holds a space`);
  if (!/^[0-9a-f]{8}$/.test(id)) throw new NoteError('bad_key', `the verifier key's ID ${JSON.stringify(id)} is not 8 lowercase hex digits`);
  const typed = decodeBase64(key);
  if (!typed || typed.length !== 33 || typed[0] !== ED25519_TYPE) {
    throw new NoteError('bad_key', 'the verifier key is not base64 of 0x01 followed by a 32-byte Ed25519 public key');
  }
  const publicKey = typed.subarray(1);
  const keyId = ed25519KeyId(sha256, name, publicKey);
  if (hex8(keyId) !== id) throw new NoteError('bad_key', `the verifier key's ID ${id} is not the one its name and key give (${hex8(keyId)})`);
  return { name, keyId, publicKey, verify: (message, signature) => signature.length === 64 && ed25519Verify(publicKey, message, signature) };
}

/** Splits a signed note into its text (with its final newline) and its signatures. Checks the form only. */
export function parseNote(note: string): { text: string; signatures: NoteSignature[] } {
  if (note.length > MAX_NOTE_BYTES) throw new NoteError('malformed', `the note is over ${MAX_NOTE_BYTES} characters`);
  if (/[\u0000-\u0009\u000b-\u001f]/u.test(note)) throw new NoteError('malformed', 'the note holds a control character other than newline');
  if (/[\ud800-\udfff]/u.test(note.replace(/[\ud800-\udbff][\udc00-\udfff]/gu, ''))) throw new NoteError('malformed', 'the note is not valid Unicode');
  if (!note.endsWith('\n')) throw new NoteError('malformed', 'the note does not end in a newline');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('malformed', 'the note has no blank line before its signatures');
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw new NoteError('malformed', `the note has over ${MAX_SIGNATURES} signatures`);
  const signatures = lines.map((line, i): NoteSignature => {
    const where = `signature line ${i + 1}`;
    if (!line.startsWith(DASH)) throw new NoteError('malformed', `${where} does not begin with an em dash (U+2014) and a space`);
    const rest = line.slice(DASH.length);
    const space = rest.indexOf(' ');
    const name = rest.slice(0, space);
    if (space <= 0 || !isKeyName(name)) throw new NoteError('malformed', `${where} has no key name, or one with a '+'`);
    const blob = decodeBase64(rest.slice(space + 1));
    if (!blob || blob.length < 5) throw new NoteError('malformed', `${where}: the signature is not canonical base64 of a key ID and a signature`);
    const keyId = (((blob[0] as number) << 24) | ((blob[1] as number) << 16) | ((blob[2] as number) << 8) | (blob[3] as number)) >>> 0;
    return { name, keyId, signature: blob.subarray(4) };
  });
  return { text, signatures };
}

/**
 * The note's text, once a signature by one of `verifiers` verifies. A
 * signature by a known key (same name and ID) that fails rejects the whole
 * note; signatures by other keys are ignored, as the format asks.
 */
export function openNote(note: string, verifiers: readonly NoteVerifier[]): { text: string; verifiedBy: NoteVerifier[] } {
  const { text, signatures } = parseNote(note);
  const message = utf8.encode(text);
  const verifiedBy: NoteVerifier[] = [];
  for (const s of signatures) {
    const v = verifiers.find((k) => k.name === s.name && k.keyId === s.keyId);
    if (!v) continue;
    if (!v.verify(message, s.signature)) {
      throw new NoteError('bad_signature', `the signature by ${s.name} (key ${hex8(s.keyId)}) does not verify: the note was changed, or signed by another key`);
    }
    if (!verifiedBy.includes(v)) verifiedBy.push(v);
  }
  if (verifiedBy.length === 0) {
    const by = signatures.map((s) => `${s.name}+${hex8(s.keyId)}`).join(', ') || 'nobody';
    throw new NoteError('unverified', `the note is signed by ${by}, none of them a trusted key (${verifiers.map((v) => `${v.name}+${hex8(v.keyId)}`).join(', ') || 'none given'})`);
  }
  return { text, verifiedBy };
}

/** A signature line for a text signed by an Ed25519 key. */
export function signatureLine(name: string, keyId: number, signature: Uint8Array): string {
  const blob = new Uint8Array(4 + signature.length);
  blob.set([(keyId >>> 24) & 0xff, (keyId >>> 16) & 0xff, (keyId >>> 8) & 0xff, keyId & 0xff]);
  blob.set(signature, 4);
  return `${DASH}${name} ${encodeBase64(blob)}\n`;
}

/** text (ending in a newline) + blank line + signature lines. */
export function assembleNote(text: string, signatureLines: readonly string[]): string {
  if (!text.endsWith('\n')) throw new NoteError('malformed', 'a note text must end in a newline');
  if (signatureLines.length === 0) throw new NoteError('malformed', 'a signed note needs at least one signature');
  return `${text}\n${signatureLines.join('')}`;
}
