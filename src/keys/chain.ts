// The key history as a chain: a history file anyone who can write the state
// directory could append a key to must not make that key trusted.
//
// Each entry's `endorsement` is an Ed25519 signature over
//   JCS({typ, kind, prior: sha256 of the JCS of every earlier entry as written,
//        key: {x, kid, created_at}})
// (RFC 8785 canonical JSON). Exactly one entry, the chain's root, is endorsed
// by itself: a store's first key, or, in a history an older latchgate wrote,
// the key current when it was sealed (its endorsement covers the entries
// before it, which stay as they were: the unchained prefix). Every entry
// after the root is endorsed by the entry just before it, which was the
// current key when it rotated: forging an entry needs the private key of the
// one before, and editing an earlier entry (its key, its dates) breaks every
// endorsement after it. A history replaced as a whole has a root of its own;
// the gate keeps each kind's root in the hash-chained ledger and checks it
// (src/gate/key-roots.ts).
import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import { canonicalHash, canonicalize } from '../crypto/jcs.js';
import { ed25519PublicKeyFromRaw, verifyEd25519 } from './ed25519.js';
import type { JwksEntry, KeyKind } from './history.js';

const TYP = 'latchgate-key-endorsement/1';

export interface Endorsement {
  /** The kid of the key that signed: the entry before, or the entry itself for the root. */
  by: string;
  /** base64url Ed25519 signature over endorsementPayload(). */
  sig: string;
}

export interface ChainState {
  /** The kid of the root (self-endorsed) entry; absent in a history no latchgate of today wrote yet. */
  root?: string;
  /** Kids before the root (an older latchgate's entries): trusted as the root's endorsement found them. */
  unchained: string[];
  /**
   * Kids that must not verify anything, and why: once one endorsement fails,
   * every key of the history, since the entries before the break may be the
   * ones edited (a retired_at moved later would let a stolen old key sign on).
   */
  untrusted: Map<string, string>;
}

export function endorsementPayload(kind: KeyKind, prior: readonly JwksEntry[], e: Pick<JwksEntry, 'x' | 'kid' | 'created_at'>): Buffer {
  return Buffer.from(canonicalize({ typ: TYP, kind, prior: canonicalHash(prior), key: { x: e.x, kid: e.kid, created_at: e.created_at } }), 'utf8');
}

/** The endorsement of entry `e` (to be appended after `prior`) by `signer`, whose kid is `by`. */
export function endorse(kind: KeyKind, prior: readonly JwksEntry[], e: JwksEntry, signer: KeyObject, by: string): Endorsement {
  return { by, sig: cryptoSign(null, endorsementPayload(kind, prior, e), signer).toString('base64url') };
}

/** Checks every endorsement of a parsed history (entries as written, oldest first). */
export function checkChain(kind: KeyKind, entries: readonly JwksEntry[]): ChainState {
  const out: ChainState = { unchained: [], untrusted: new Map() };
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const broken = fault(kind, entries, i, out.root);
    if (broken !== undefined) {
      for (const k of entries) for (const name of k.legacy_kid ? [k.kid, k.legacy_kid] : [k.kid]) out.untrusted.set(name, broken);
      return out;
    }
    if (e.endorsement?.by === e.kid) out.root = e.kid;
    else if (out.root === undefined) out.unchained.push(e.kid);
  }
  // A history without a root yet (written by an older latchgate, not sealed
  // since): its entries stand as they are; the key store seals it on its next write.
  return out;
}

/** Why entry i breaks the chain (no key of the history then verifies anything); undefined when it holds. */
function fault(kind: KeyKind, entries: readonly JwksEntry[], i: number, root: string | undefined): string | undefined {
  const e = entries[i]!;
  const where = `key ${e.kid} (entry ${i} of the ${kind} key history)`;
  const edited = 'the history was edited or a key was added to it by hand; restore it from a backup';
  const en = e.endorsement;
  if (!en) {
    // Entries of an older latchgate come before the root; after it, every key is endorsed.
    return root === undefined ? undefined : `${where} is not endorsed by the key before it: ${edited}`;
  }
  const selfSigned = en.by === e.kid;
  if (selfSigned && root !== undefined) return `${where} endorses itself, but the history's root is ${root}: ${edited}`;
  if (!selfSigned && root === undefined) return `${where} is endorsed by ${en.by}, but no root key comes before it: ${edited}`;
  const signer = selfSigned ? e : entries[i - 1];
  if (!selfSigned && signer?.kid !== en.by) return `${where} names ${en.by} as its endorser, not the key before it (${signer?.kid}): ${edited}`;
  const sig = Buffer.from(en.sig, 'base64url');
  const ok = verifyEd25519(ed25519PublicKeyFromRaw(Buffer.from(signer!.x, 'base64url')), endorsementPayload(kind, entries.slice(0, i), e), sig);
  return ok ? undefined : `${where} carries an endorsement by ${en.by} that does not verify: ${edited}`;
}
