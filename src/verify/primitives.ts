// The hash and signature primitives of the standalone verifier: SHA-256 and
// Ed25519 verification in pure JavaScript (@noble/hashes, @noble/ed25519),
// so that the same code verifies in Node and in a browser page opened from
// disk. These two packages are the only imports src/verify/ has outside
// itself (test/unit/merkle-verify.test.mjs checks).
import { hashes, Point, verify } from '@noble/ed25519';
import { sha256 as nobleSha256, sha512 } from '@noble/hashes/sha2';

// @noble/ed25519 takes its SHA-512 from here for its synchronous calls.
hashes.sha512 = (message) => sha512(message) as Uint8Array<ArrayBuffer>;

/** SHA-256 of the concatenation of the chunks. */
export function sha256(...chunks: Uint8Array[]): Uint8Array {
  const h = nobleSha256.create();
  for (const c of chunks) h.update(c);
  return h.digest();
}

// The subgroup check of a key costs a scalar multiplication; a bundle's few keys sign several things.
const keyChecks = new Map<string, boolean>();

function primeOrderKey(publicKey: Uint8Array): boolean {
  const id = Array.from(publicKey, (b) => b.toString(16).padStart(2, '0')).join('');
  let ok = keyChecks.get(id);
  if (ok === undefined) {
    const a = Point.fromBytes(publicKey, false); // throws for a non-canonical or undecodable key
    ok = !a.is0() && a.isTorsionFree();
    if (keyChecks.size >= 64) keyChecks.clear();
    keyChecks.set(id, ok);
  }
  return ok;
}

/**
 * Ed25519 verification (RFC 8032 5.1.7) under one pinned policy: the key
 * and R canonically encoded, S below the group order, and both the key and
 * R in the prime-order subgroup (no small-order or mixed-order point). For
 * such points the cofactored and cofactorless equations agree, so every
 * signature this accepts also verifies with OpenSSL, which latchgate's own
 * key store uses (src/keys/ed25519.ts): a bundle never verifies here and
 * fails there. Every signature an honest Ed25519 signer makes passes.
 * Never throws: bad lengths and undecodable points are simply not valid.
 */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || !(signature instanceof Uint8Array) || publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const r = Point.fromBytes(signature.subarray(0, 32), false);
    if (!primeOrderKey(publicKey) || !r.isTorsionFree()) return false;
    return verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}
