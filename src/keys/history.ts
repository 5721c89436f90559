// The JWKS history of one kind of key: {"keys":[entry, ...]}, oldest first,
// append-only (an entry is only ever added, or given its retired_at), so a
// signature any key of the store made while it was current still verifies.
// One format for every kind; entries an older latchgate wrote are read too
// and carried over (see legacy.ts).
import type { KeyObject } from 'node:crypto';
import { ed25519PublicKeyFromRaw, jwkThumbprint, KeyStoreError, rawPublicKey } from './ed25519.js';
import { checkChain, type ChainState, type Endorsement } from './chain.js';
import { legacyKid } from './legacy.js';

/** What each key signs: lease JWTs, grants, receipts, ledger checkpoints. */
export type KeyKind = 'lease' | 'grant' | 'receipt' | 'checkpoint';
export const KEY_KINDS: readonly KeyKind[] = ['lease', 'grant', 'receipt', 'checkpoint'];

export interface JwksEntry {
  kty: 'OKP';
  crv: 'Ed25519';
  /** base64url of the 32-byte raw public key. */
  x: string;
  /** The RFC 7638 thumbprint of the key. */
  kid: string;
  use: 'sig';
  alg: 'EdDSA';
  created_at: string;
  retired_at?: string;
  /** The kid an older latchgate gave this key: what the artifacts it signed then record. */
  legacy_kid?: string;
  /** Its place in the history's chain (chain.ts); absent only on an older latchgate's entries. */
  endorsement?: Endorsement;
}

export interface Jwks {
  keys: JwksEntry[];
}

export interface ParsedHistory {
  jwks: Jwks;
  /** The public key under every name it resolves by (kid, and legacy_kid). */
  byKid: Map<string, KeyObject>;
  /** When each retired key was retired, by kid and legacy kid (absent: the key is current). */
  retiredAt: Map<string, string>;
  /** Whether some entry was in an older form (and was converted here). */
  converted: boolean;
  /** The endorsements checked: the root, an older latchgate's entries, the keys that verify nothing. */
  chain: ChainState;
}

/** An entry with its members in the one order the history is written in. */
function entry(x: string, kid: string, createdAt: string, retiredAt?: string, legacy?: string, endorsement?: Endorsement): JwksEntry {
  return {
    kty: 'OKP',
    crv: 'Ed25519',
    x,
    kid,
    use: 'sig',
    alg: 'EdDSA',
    created_at: createdAt,
    ...(retiredAt !== undefined ? { retired_at: retiredAt } : {}),
    ...(legacy !== undefined ? { legacy_kid: legacy } : {}),
    ...(endorsement !== undefined ? { endorsement: { by: endorsement.by, sig: endorsement.sig } } : {}),
  };
}

export function newEntry(publicKey: KeyObject, createdAt: string, legacy?: string): JwksEntry {
  const raw = rawPublicKey(publicKey);
  return entry(raw.toString('base64url'), jwkThumbprint(raw), createdAt, undefined, legacy);
}

export function serializeHistory(jwks: Jwks): string {
  const keys = jwks.keys.map((e) => entry(e.x, e.kid, e.created_at, e.retired_at, e.legacy_kid, e.endorsement));
  return `${JSON.stringify({ keys }, null, 2)}\n`;
}

const B64URL_32 = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const B64URL_SIG = /^[A-Za-z0-9_-]{85}[AQgw]$/;

/**
 * Parses and checks a history. An entry whose kid is the one an older
 * latchgate derived is converted (kid = thumbprint, the old one kept as
 * legacy_kid); an entry without created_at gets `undatedAt` if given. Any
 * other entry that does not hold together (a kid that is not derived from
 * its key, private material, a second entry for one key) is refused: a
 * history that was edited cannot be trusted to verify anything.
 */
export function parseHistory(kind: KeyKind, path: string, text: string, undatedAt?: string): ParsedHistory {
  const broken = (what: string) =>
    new KeyStoreError(`key history ${path} ${what}. Fix: restore it from a backup; without it, signatures made with older keys cannot be verified`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw broken(`is not valid JSON (${(e as Error).message})`);
  }
  const list = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) throw broken('has no "keys" array');
  const out: ParsedHistory = { jwks: { keys: [] }, byKid: new Map(), retiredAt: new Map(), converted: false, chain: { unchained: [], untrusted: new Map() } };
  list.forEach((e: Record<string, unknown> | null, i) => {
    const at = `keys[${i}]`;
    if (!e || typeof e !== 'object' || e.kty !== 'OKP' || e.crv !== 'Ed25519' || typeof e.x !== 'string' || !B64URL_32.test(e.x) || typeof e.kid !== 'string') {
      throw broken(`has an entry ${at} that is not an Ed25519 public key with a kid`);
    }
    if ('d' in e) throw broken(`holds private key material in ${at}`);
    const raw = Buffer.from(e.x, 'base64url');
    const kid = jwkThumbprint(raw);
    const old = legacyKid(kind, raw);
    let legacy = e.legacy_kid;
    if (e.kid !== kid) {
      if (e.kid !== old || legacy !== undefined) throw broken(`has an entry ${at} whose kid ${JSON.stringify(e.kid)} is not derived from its key`);
      legacy = e.kid;
      out.converted = true;
    } else if (legacy !== undefined && legacy !== old) {
      throw broken(`has an entry ${at} whose legacy_kid ${JSON.stringify(legacy)} is not derived from its key`);
    }
    let createdAt = e.created_at;
    if (createdAt === undefined && undatedAt !== undefined) {
      createdAt = undatedAt;
      out.converted = true;
    }
    if (typeof createdAt !== 'string' || (e.retired_at !== undefined && typeof e.retired_at !== 'string')) {
      throw broken(`has an entry ${at} without created_at, or with a retired_at that is not a string`);
    }
    const en = e.endorsement as Record<string, unknown> | undefined;
    if (en !== undefined && (!en || typeof en !== 'object' || typeof en.by !== 'string' || typeof en.sig !== 'string' || !B64URL_SIG.test(en.sig))) {
      throw broken(`has an entry ${at} whose endorsement is not {"by": kid, "sig": base64url Ed25519 signature}`);
    }
    if (out.byKid.has(kid)) throw broken(`lists the key ${kid} twice`);
    const publicKey = ed25519PublicKeyFromRaw(raw);
    out.byKid.set(kid, publicKey);
    if (typeof legacy === 'string') out.byKid.set(legacy, publicKey);
    if (typeof e.retired_at === 'string') {
      for (const name of typeof legacy === 'string' ? [kid, legacy] : [kid]) out.retiredAt.set(name, e.retired_at);
    }
    out.jwks.keys.push(entry(e.x, kid, createdAt, e.retired_at as string | undefined, legacy as string | undefined, en as Endorsement | undefined));
  });
  out.chain = checkChain(kind, out.jwks.keys);
  return out;
}

/**
 * The history as published (/.well-known/jwks.json, /v1/receipt-keys): every
 * entry, and after one with a legacy_kid the same key again under that kid,
 * so a verifier holding an artifact that names the old kid finds its key by
 * plain kid matching.
 */
export function publishedJwks(jwks: Jwks): Jwks {
  return {
    keys: jwks.keys.flatMap(({ legacy_kid, ...e }) => (legacy_kid ? [{ ...e, legacy_kid }, { ...e, kid: legacy_kid }] : [{ ...e }])),
  };
}
