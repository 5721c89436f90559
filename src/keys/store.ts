// The one store of latchgate's Ed25519 signing keys, one key per kind (a
// leaked key of one kind cannot sign for another): 'lease' (lease JWTs),
// 'grant', 'receipt' and 'checkpoint' (ledger checkpoints).
//
// On disk, in the store's directory (0700), for each kind:
//   <kind>.key             the current private key, PKCS8 PEM, 0600
//   <kind>-keys.jwks       its append-only public history (history.ts), 0644
//   <kind>-keys.jwks.lock  while a process creates, rotates or migrates it
//   <kind>.key.next        a new key written before the history lists it,
//                          until it replaces <kind>.key (a crash in between
//                          is finished by the next writer, recover())
// The history is a chain (chain.ts): every key is endorsed by the one before
// it, so a key added to the file by hand verifies nothing.
// kid = the RFC 7638 thumbprint of the public key. The file, lock and
// durability rules are in files.ts. `latchgate up` and every `latchgate
// sandbox` share the directory: a key file that changed on disk (another
// process rotated) is read again before the next signature.
//
// Reading (keyAt, publicKey, verify, jwks) writes nothing, creates nothing and takes
// no lock: verification must work on a read-only or archived state directory
// and leave it as it was. Files in an older form (legacy.ts) are read as they
// will be after their migration; that migration is written only on the paths
// that write anyway (current, and so sign, and rotate).
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { jwkThumbprint, KeyStoreError, rawPublicKey, verifyEd25519 } from './ed25519.js';
import { checkChain, endorse } from './chain.js';
import { createDurably, ensureKeyDir, existingKeyDir, lstatOrNull, readChecked, removeDurably, replaceDurably, sameFile, withLock } from './files.js';
import { KEY_KINDS, newEntry, parseHistory, publishedJwks, serializeHistory, type Jwks, type KeyKind, type ParsedHistory } from './history.js';
import { LEGACY_LEASE_JWKS_FILE, LEGACY_LEASE_KEY_FILE, legacyKid } from './legacy.js';

/**
 * The time an artifact says it was signed: Unix milliseconds, a Date, or an
 * RFC 3339 string. Artifacts that carry several times pass the latest
 * (latestTime), so that backdating one of them does not help.
 */
export type SignedAt = number | string | Date;

/** The key a kid names for a signature made at a given time, or why there is none. */
export type KeyLookup = { key: KeyObject; reason?: undefined } | { key?: undefined; reason: string };

/** The latest of the times given, in Unix ms; NaN when one of them is missing or not a time. */
export function latestTime(...times: unknown[]): number {
  let latest = -Infinity;
  for (const t of times) {
    const ms = typeof t === 'number' ? t : typeof t === 'string' ? Date.parse(t) : t instanceof Date ? t.getTime() : NaN;
    if (Number.isNaN(ms)) return NaN;
    latest = Math.max(latest, ms);
  }
  return times.length === 0 ? NaN : latest;
}

export interface CurrentKey {
  kind: KeyKind;
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

interface LoadedKey {
  stat: Stats;
  key: CurrentKey;
}

/** A history as read, with the files it was read from (to notice a change). */
interface CachedHistory {
  stats: (Stats | null)[];
  parsed: ParsedHistory;
}

/** The lease key files of an older latchgate (legacy.ts); each null when absent. */
interface LegacyLease {
  pem: { text: string; stat: Stats } | null;
  old: { text: string; stat: Stats } | null;
}

const emptyHistory = (): ParsedHistory => ({ jwks: { keys: [] }, byKid: new Map(), retiredAt: new Map(), converted: false, chain: { unchained: [], untrusted: new Map() } });

const HEX_SIG = /^[0-9a-f]{128}$/i;
/** How many of its own signatures a store remembers (KeyStore.ownSignatures). */
const OWN_SIGNATURES_KEPT = 64;

const now = () => new Date().toISOString();

function pemOf(privateKey: KeyObject): string {
  return privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
}

function parsePrivateKey(path: string, pem: string): KeyObject {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (e) {
    throw new KeyStoreError(`private key ${path} is not a PKCS8 PEM private key (${(e as Error).message}). Fix: restore it from a backup, or move it away and latchgate creates a new key`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new KeyStoreError(`private key ${path} holds a ${privateKey.asymmetricKeyType} key, not Ed25519. Fix: move it away and latchgate creates a new key`);
  }
  return privateKey;
}

export class KeyStore {
  private readonly loaded = new Map<KeyKind, LoadedKey>();
  private readonly histories = new Map<KeyKind, CachedHistory>();
  private readonly prepared = new Set<KeyKind>();
  /** The root each kind's history must have (recorded in the ledger: src/ledger/key-roots.ts). */
  private readonly pins = new Map<KeyKind, string>();
  /** Keys of each kind this process signed with, rotated to, or saw a rotation to recorded: a history without one was rolled back. */
  private readonly heads = new Map<KeyKind, Set<string>>();
  /**
   * The last signatures this process made, by signature, with a copy of the
   * bytes signed. A kid is its key's thumbprint and Ed25519 is
   * deterministic, so verifying one of them over the same bytes by the same
   * kid needs no curve arithmetic (about 0.13 ms: a grant is verified as it
   * is committed, right after it was signed). keyAt's checks still run. What
   * this gives up: a signature the signing itself got wrong (a hardware
   * fault) passes that check unnoticed; any other verifier still refuses it.
   */
  private readonly ownSignatures = new Map<string, { kind: KeyKind; kid: string; bytes: Buffer }>();

  private mustList(kind: KeyKind, kid: string): void {
    const set = this.heads.get(kind) ?? new Set<string>();
    set.add(kid);
    this.heads.set(kind, set);
  }

  constructor(readonly dir: string) {}

  keyPath(kind: KeyKind): string {
    return join(this.dir, `${kind}.key`);
  }

  jwksPath(kind: KeyKind): string {
    return join(this.dir, `${kind}-keys.jwks`);
  }

  private nextPath(kind: KeyKind): string {
    return `${this.keyPath(kind)}.next`;
  }

  /** The current key of a kind, created on first use, read again when its file changed. */
  current(kind: KeyKind): CurrentKey {
    this.prepare(kind);
    if (lstatOrNull(this.nextPath(kind))) this.locked(kind, () => this.recover(kind));
    const st = lstatOrNull(this.keyPath(kind));
    const cached = this.loaded.get(kind);
    if (cached && st && sameFile(cached.stat, st)) return cached.key;
    if (!st) this.create(kind);
    const loaded = this.readKey(kind);
    if (!loaded) throw new KeyStoreError(`private key ${this.keyPath(kind)} was removed while latchgate created it. Fix: let one process create the keys`);
    // A history an older latchgate wrote gets its chain's root before the key signs again.
    if (this.history(kind, true).chain.root === undefined) this.seal(kind);
    this.checkSigningKey(kind, loaded.key.kid);
    this.mustList(kind, loaded.key.kid);
    this.loaded.set(kind, loaded);
    return loaded.key;
  }

  /**
   * The key file's key must be the history's last entry, trusted and not
   * retired: nothing else may sign. A key file from a backup, or one swapped
   * in by hand, is refused rather than added to the history.
   */
  private checkSigningKey(kind: KeyKind, kid: string): void {
    const h = this.history(kind, true);
    const fix = `Fix: restore ${this.keyPath(kind)} and ${this.jwksPath(kind)} together from one backup, or move both away to start a new key history (what the old keys signed then no longer verifies here)`;
    const last = h.jwks.keys.at(-1);
    const untrusted = h.chain.untrusted.get(kid) ?? (last && h.chain.untrusted.get(last.kid)) ?? this.replaced(kind, h);
    if (untrusted) throw new KeyStoreError(`the ${kind} key history cannot be trusted to sign with: ${untrusted}. ${fix}`);
    if (!h.byKid.has(kid)) throw new KeyStoreError(`private key ${this.keyPath(kind)} is key ${kid}, which the ${kind} key history does not list. ${fix}`);
    if (last?.kid !== kid) throw new KeyStoreError(`private key ${this.keyPath(kind)} is key ${kid}, but the newest key in the ${kind} key history is ${last?.kid}${h.retiredAt.has(kid) ? ` (${kid} was retired at ${h.retiredAt.get(kid)})` : ''}. ${fix}`);
  }

  /**
   * Replaces the current key of a kind with a fresh one. Every earlier key
   * stays in the history (given its retired_at), so what it signed before then verifies.
   */
  rotate(kind: KeyKind): { kid: string; previous_kid: string } {
    this.current(kind);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    let previous = '';
    this.locked(kind, (jwks, save) => {
      this.recover(kind);
      // Read again under the lock: another process may have rotated meanwhile.
      const old = this.readKey(kind);
      if (!old) throw new KeyStoreError(`private key ${this.keyPath(kind)} was removed during the rotation. Fix: run the rotation again`);
      this.checkSigningKey(kind, old.key.kid);
      previous = old.key.kid;
      // Taken under the lock, just before the writes: a signature by the old
      // key dated after this time is refused (keyAt), so the old key must
      // stop signing as close to it as possible (only the history write and
      // the key file's replacement lie between).
      const at = now();
      for (const e of jwks.keys) e.retired_at ??= at;
      const next = newEntry(publicKey, at);
      // Endorsed by the key it replaces, over the history as it now stands.
      next.endorsement = endorse(kind, jwks.keys, next, old.key.privateKey, previous);
      this.install(kind, privateKey, () => {
        jwks.keys.push(next);
        save();
      });
    });
    const kid = jwkThumbprint(publicKey);
    this.mustList(kind, kid);
    return { kid, previous_kid: previous };
  }

  /**
   * Writes a new private key: first aside (.next), then the history that
   * lists it (written by addToHistory), then in place. A crash at any point
   * leaves either the old state or one recover() completes.
   */
  private install(kind: KeyKind, privateKey: KeyObject, addToHistory: () => void): void {
    const pem = pemOf(privateKey);
    replaceDurably(this.nextPath(kind), pem, 0o600);
    addToHistory();
    replaceDurably(this.keyPath(kind), pem, 0o600);
    removeDurably(this.dir, [`${kind}.key.next`]);
  }

  /** Under the lock: finishes an install() a crash cut short, or drops its key if the history never listed it. */
  private recover(kind: KeyKind): void {
    const next = readChecked(this.nextPath(kind), 'private key');
    if (!next) return;
    const kid = jwkThumbprint(createPublicKey(parsePrivateKey(this.nextPath(kind), next.text)));
    if (this.storedHistory(kind).byKid.has(kid)) replaceDurably(this.keyPath(kind), next.text, 0o600);
    removeDurably(this.dir, [`${kind}.key.next`]);
  }

  /**
   * Gives a history without a root (an older latchgate's) one: the current
   * key, moved last, endorses itself over the entries before it, which from
   * then on cannot change without breaking that endorsement.
   */
  private seal(kind: KeyKind): void {
    this.locked(kind, (jwks, save) => {
      if (checkChain(kind, jwks.keys).root !== undefined) return; // another process sealed it
      const key = this.readKey(kind);
      if (!key) return;
      const i = jwks.keys.findIndex((e) => e.kid === key.key.kid);
      if (i < 0) return; // checkSigningKey refuses it
      const [own] = jwks.keys.splice(i, 1);
      own!.endorsement = endorse(kind, jwks.keys, own!, key.key.privateKey, own!.kid);
      jwks.keys.push(own!);
      save();
    });
  }

  /** Signs bytes with the current key of a kind; the signature in hex. */
  sign(kind: KeyKind, bytes: Uint8Array): { kid: string; signature: string } {
    const key = this.current(kind);
    const signature = cryptoSign(null, bytes, key.privateKey).toString('hex');
    if (this.ownSignatures.size >= OWN_SIGNATURES_KEPT) this.ownSignatures.delete(this.ownSignatures.keys().next().value as string);
    this.ownSignatures.set(signature, { kind, kid: key.kid, bytes: Buffer.from(bytes) });
    return { kid: key.kid, signature };
  }

  /**
   * Verifies a hex signature with the history key of that kid (or legacy
   * kid), made at signedAt (the time the signed artifact claims); false for
   * an unknown kid, or a retired key and a time after its retirement (keyAt).
   */
  verify(kind: KeyKind, kid: string, bytes: Uint8Array, sigHex: string, when: { signedAt: SignedAt }): boolean {
    if (typeof sigHex !== 'string' || !HEX_SIG.test(sigHex) || typeof kid !== 'string') return false;
    // (Without a time, which only an untyped caller can give, no retired key verifies.)
    const pub = this.publicKey(kind, kid, when?.signedAt ?? NaN);
    if (pub === undefined) return false;
    const own = this.ownSignatures.get(sigHex);
    if (own !== undefined && own.kind === kind && own.kid === kid && bytes instanceof Uint8Array && own.bytes.equals(bytes)) return true;
    return verifyEd25519(pub, bytes, Buffer.from(sigHex, 'hex'));
  }

  /** The public key of keyAt, or undefined. */
  publicKey(kind: KeyKind, kid: string, signedAt: SignedAt): KeyObject | undefined {
    return this.keyAt(kind, kid, signedAt).key;
  }

  /**
   * The public key a kid (or a legacy kid) names in the history of a kind,
   * for a signature made at signedAt; otherwise why not. A retired key
   * verifies only what is dated no later than its retired_at: anyone who
   * kept a copy of an old private key could otherwise sign with it forever.
   * An artifact without a valid time gets no retired key.
   *
   * What time alone cannot refuse: an artifact signed with a stolen retired
   * key and dated before the retirement. Signed checkpoints of the ledger,
   * anchored outside it, are what close that; until then a lease is bounded
   * anyway (it lives at most LEASE_MAX_TTL_SECONDS from its iat and names
   * the current epoch, so a backdated one has expired).
   *
   * Writes nothing.
   */
  keyAt(kind: KeyKind, kid: string, signedAt: SignedAt): KeyLookup {
    checkKind(kind);
    // Always checked against the files (a stat, a read only when they
    // changed): a key another process retired must not verify from a cache.
    const h = this.history(kind, true);
    const key = typeof kid === 'string' ? h.byKid.get(kid) : undefined;
    if (!key) return { reason: `key ${JSON.stringify(kid)} is not in the ${kind} key history (${kind}-keys.jwks)` };
    const untrusted = h.chain.untrusted.get(kid) ?? this.replaced(kind, h);
    if (untrusted) return { reason: untrusted };
    const retired = h.retiredAt.get(kid);
    if (retired === undefined) return { key };
    const at = latestTime(signedAt);
    // Written so that a retired_at or a time that does not parse refuses too.
    if (!(at <= Date.parse(retired))) {
      const dated = Math.abs(at) <= 8.64e15 ? `is dated ${new Date(at).toISOString()}, after that` : `carries no valid time (${JSON.stringify(String(signedAt))})`;
      return { reason: `key ${kid} was retired at ${retired}; the signed ${kind} ${dated}: a retired key signs nothing after its retirement` };
    }
    return { key };
  }

  /**
   * The published history of a kind; writes nothing, so a kind that never
   * signed has no key in it yet (every key is in it before it signs).
   */
  jwks(kind: KeyKind): Jwks {
    checkKind(kind);
    const h = this.history(kind, true);
    return publishedJwks({ keys: h.jwks.keys.filter((e) => !h.chain.untrusted.has(e.kid)) });
  }

  /** From now on the history of a kind must have this root, or none of its keys signs or verifies. */
  pin(kind: KeyKind, root: string): void {
    checkKind(kind);
    this.pins.set(kind, root);
  }

  /** From now on the history of a kind must list this key (the newest one the ledger recorded a rotation to). */
  pinHead(kind: KeyKind, kid: string): void {
    checkKind(kind);
    this.mustList(kind, kid);
  }

  /** Why the kind's history is not the pinned one, or is older than a key already seen; undefined when neither. */
  private replaced(kind: KeyKind, h: ParsedHistory): string | undefined {
    const pinned = this.pins.get(kind);
    if (pinned !== undefined && h.chain.root !== pinned) {
      return `the ${kind} key history's root is ${h.chain.root ?? '(none)'}, not ${pinned}, the root the ledger recorded: the key history was replaced`;
    }
    const head = [...(this.heads.get(kind) ?? [])].find((kid) => !h.byKid.has(kid));
    if (head !== undefined) {
      return `the ${kind} key history no longer lists key ${head}, which was already current: the key files were rolled back to before a rotation, so a retired key would sign again`;
    }
    return undefined;
  }

  /** The chain of a kind's history as it reads now (root, older entries, untrusted keys); writes nothing. */
  chain(kind: KeyKind): ParsedHistory['chain'] {
    checkKind(kind);
    return this.history(kind, true).chain;
  }

  // --- internals ---

  /**
   * Once per kind, before its first write: checks the kind and directory,
   * and writes older files over in today's form.
   */
  private prepare(kind: KeyKind): void {
    if (this.prepared.has(kind)) return;
    checkKind(kind);
    ensureKeyDir(this.dir);
    const legacyLease = kind === 'lease' && [LEGACY_LEASE_KEY_FILE, LEGACY_LEASE_JWKS_FILE].some((f) => lstatOrNull(join(this.dir, f)));
    if (legacyLease || this.storedHistory(kind).converted) this.migrate(kind);
    this.prepared.add(kind);
  }

  /** Reads and checks the key file; null when there is none. */
  private readKey(kind: KeyKind): LoadedKey | null {
    const path = this.keyPath(kind);
    const file = readChecked(path, 'private key');
    if (!file) return null;
    const privateKey = parsePrivateKey(path, file.text);
    const publicKey = createPublicKey(privateKey);
    return { stat: file.stat, key: { kind, kid: jwkThumbprint(publicKey), privateKey, publicKey } };
  }

  /** The first key of a kind: the root of its chain, endorsed by itself. */
  private create(kind: KeyKind): void {
    this.locked(kind, (jwks, save) => {
      this.recover(kind);
      if (lstatOrNull(this.keyPath(kind))) return; // another process created it meanwhile
      if (jwks.keys.length > 0) {
        throw new KeyStoreError(`private key ${this.keyPath(kind)} is missing, but ${this.jwksPath(kind)} lists ${jwks.keys.length} key(s): the key was removed. Fix: restore it from a backup, or move the history away too to start a new key history (what the old keys signed then no longer verifies here)`);
      }
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const root = newEntry(publicKey, now());
      root.endorsement = endorse(kind, [], root, privateKey, root.kid);
      this.install(kind, privateKey, () => {
        jwks.keys.push(root);
        save();
      });
    });
  }

  /**
   * The history of a kind as it reads after migrate(), built in memory;
   * cached, and read again (refresh) when one of its files changed.
   */
  private history(kind: KeyKind, refresh: boolean): ParsedHistory {
    const cached = this.histories.get(kind);
    if (cached && !refresh) return cached.parsed;
    // Taken before the reads: a change during them makes the next refresh read again.
    const stats = this.historyFiles(kind).map(lstatOrNull);
    if (cached && stats.every((st, i) => (st && cached.stats[i] ? sameFile(st, cached.stats[i]) : st === cached.stats[i]))) return cached.parsed;
    const parsed = this.readHistory(kind);
    this.histories.set(kind, { stats, parsed });
    return parsed;
  }

  /** The files a kind's history is read from (the lease key's current kid decides which old entries are retired). */
  private historyFiles(kind: KeyKind): string[] {
    const own = [this.jwksPath(kind)];
    return kind === 'lease' ? [...own, join(this.dir, LEGACY_LEASE_KEY_FILE), join(this.dir, LEGACY_LEASE_JWKS_FILE), this.keyPath(kind)] : own;
  }

  private readHistory(kind: KeyKind): ParsedHistory {
    if (!existingKeyDir(this.dir)) return emptyHistory();
    // The old lease files are read before the history: a migration by another
    // process in between then shows in the history, which it makes durable
    // before it removes them, so no entry is missed.
    const legacy = kind === 'lease' ? this.readLegacyLease() : null;
    const stored = this.storedHistory(kind);
    if (!legacy) return stored;
    // Parsed from the very text migrate() would write: the same answers.
    return parseHistory(kind, this.jwksPath(kind), serializeHistory(this.withLegacyLease(stored.jwks, legacy)));
  }

  /** The history file as it is (entries of an older form converted in memory). */
  private storedHistory(kind: KeyKind): ParsedHistory {
    const path = this.jwksPath(kind);
    const file = readChecked(path, 'key history');
    return file ? parseHistory(kind, path, file.text) : emptyHistory();
  }

  private readLegacyLease(): LegacyLease | null {
    const pem = readChecked(join(this.dir, LEGACY_LEASE_KEY_FILE), 'private key');
    const old = readChecked(join(this.dir, LEGACY_LEASE_JWKS_FILE), 'key history');
    return pem || old ? { pem, old } : null;
  }

  /**
   * The lease history with the old lease files merged in: their entries
   * first (dated by the old history's last change: it recorded no dates),
   * the old key under its legacy kid, every key but the current one retired.
   */
  private withLegacyLease(jwks: Jwks, { pem, old }: LegacyLease): Jwks {
    const when = (old ?? pem)!.stat.mtime.toISOString();
    const older = old ? parseHistory('lease', join(this.dir, LEGACY_LEASE_JWKS_FILE), old.text, when).jwks.keys : [];
    const keys = [...older.filter((o) => !jwks.keys.some((e) => e.x === o.x)), ...structuredClone(jwks.keys)];
    let current = this.readKey('lease')?.key.kid;
    if (pem) {
      const publicKey = createPublicKey(parsePrivateKey(join(this.dir, LEGACY_LEASE_KEY_FILE), pem.text));
      const kid = jwkThumbprint(publicKey);
      if (!keys.some((e) => e.kid === kid)) keys.push(newEntry(publicKey, when, legacyKid('lease', rawPublicKey(publicKey))));
      current ??= kid;
    }
    for (const e of keys) if (e.kid !== current) e.retired_at ??= when;
    return { keys };
  }

  /**
   * Runs fn under the kind's lock with a fresh copy of its history; save()
   * writes that copy durably. Every change to a kind's files goes through
   * here, and writes the history before the key file: no signature ever
   * exists whose key the history lacks.
   */
  private locked(kind: KeyKind, fn: (jwks: Jwks, save: () => void) => void): void {
    ensureKeyDir(this.dir);
    withLock(`${this.jwksPath(kind)}.lock`, () => {
      const jwks = structuredClone(this.storedHistory(kind).jwks);
      fn(jwks, () => {
        replaceDurably(this.jwksPath(kind), serializeHistory(jwks), 0o644);
        this.histories.delete(kind);
      });
    });
  }

  /**
   * Writes a history with entries in an older form in today's form, and for
   * the lease key moves lease-signing-key.pem and lease-jwks.json (see
   * legacy.ts) to lease.key and lease-keys.jwks. The merged history is
   * durable before the old files go, so a crash at any point loses no entry:
   * the next start finishes the move.
   */
  private migrate(kind: KeyKind): void {
    this.locked(kind, (jwks, save) => {
      const legacy = kind === 'lease' ? this.readLegacyLease() : null;
      if (!legacy) return save(); // (for the lease key: another process finished the move)
      jwks.keys = this.withLegacyLease(jwks, legacy).keys;
      save();
      if (legacy.pem) createDurably(this.keyPath(kind), legacy.pem.text, 0o600);
      removeDurably(this.dir, [LEGACY_LEASE_KEY_FILE, LEGACY_LEASE_JWKS_FILE]);
    });
  }

  /**
   * The kid each kind this store has loaded signs with now, its key file read
   * again first when it changed (as current() does before a signature): a
   * rotation by another process shows here without waiting for a signature.
   * Kinds never loaded are left out (their first signature reads the file).
   */
  refresh(): Partial<Record<KeyKind, string>> {
    const kids: Partial<Record<KeyKind, string>> = {};
    for (const kind of [...this.loaded.keys()]) kids[kind] = this.current(kind).kid;
    return kids;
  }
}

function checkKind(kind: KeyKind): void {
  if (!(KEY_KINDS as readonly string[]).includes(kind)) {
    throw new KeyStoreError(`unknown key kind ${JSON.stringify(kind)}; expected one of ${KEY_KINDS.join(', ')}`);
  }
}
