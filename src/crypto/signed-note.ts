// The signed-note and checkpoint functions of src/verify/ over node:crypto:
// SHA-256 and Ed25519 verification passed in, as that standalone code asks.
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { formatVerifierKey, parseVerifierKey, type Ed25519Verify, type NoteVerifier } from '../verify/note.js';
import { sha256Chunks } from './merkle.js';

// DER SubjectPublicKeyInfo prefix of an Ed25519 key (RFC 8410): the raw 32 bytes follow.
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Ed25519 verification of a raw 32-byte public key; false (never a throw) for anything malformed. */
export const ed25519VerifyRaw: Ed25519Verify = (publicKey, message, signature) => {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return cryptoVerify(null, message, createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }), signature);
  } catch {
    return false;
  }
};

export { sha256Chunks };

/** The verifier key string (`name+hex8+base64`) of a raw Ed25519 public key under a name. */
export function verifierKey(name: string, rawPublicKey: Uint8Array): string {
  return formatVerifierKey(sha256Chunks, name, rawPublicKey);
}

/** A verifier from its key string; throws NoteError ('bad_key') naming what is wrong. */
export function noteVerifier(vkey: string): NoteVerifier {
  return parseVerifierKey(vkey, sha256Chunks, ed25519VerifyRaw);
}
