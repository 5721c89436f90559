// Ed25519 signing keys of the gate, one per purpose (defence in depth: a
// leaked grant key cannot forge receipts): 'grant' and 'receipt'. (The lease
// JWT signer has its own key files: src/gate/auth/keys.ts.)
//
// On disk, in the KeyStore's directory (mode 0700):
//   <kind>.key         the current private key, PKCS8 PEM, mode 0600, written
//                      to a temporary file and then linked/renamed into place
//   <kind>-keys.jwks   append-only history of public keys ({keys:[...]}), so
//                      signatures made before `latchgate keys rotate` verify
//
// kid = the first 16 hex characters of SHA-256 over the 32-byte raw public key.
// A key file that is readable by group or others, not a regular file, or owned
// by another user is refused, with the fix in the message.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';
import {
  closeSync,
  constants as fsConstants,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export type KeyKind = 'grant' | 'receipt';
export const KEY_KINDS: readonly KeyKind[] = ['grant', 'receipt'];

export interface JwksEntry {
  kty: 'OKP';
  crv: 'Ed25519';
  /** base64url of the 32-byte raw public key. */
  x: string;
  kid: string;
  use: 'sig';
  alg: 'EdDSA';
  created_at: string;
  retired_at?: string;
}

export interface Jwks {
  keys: JwksEntry[];
}

export interface CurrentKey {
  kind: KeyKind;
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export class KeyStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyStoreError';
  }
}

// DER SubjectPublicKeyInfo prefix of an Ed25519 key (RFC 8410): the raw 32 bytes follow.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** SPKI KeyObject from a 32-byte raw Ed25519 public key; throws on a wrong length. */
export function ed25519PublicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new KeyStoreError(`an Ed25519 public key is 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(raw)]), format: 'der', type: 'spki' });
}

/** The 32 raw bytes of an Ed25519 public KeyObject. */
export function rawPublicKey(publicKey: KeyObject): Buffer {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  if (der.length !== 44 || !der.subarray(0, 12).equals(ED25519_SPKI_PREFIX)) throw new KeyStoreError('not an Ed25519 public key');
  return der.subarray(12);
}

/** kid = first 16 hex characters of SHA-256(raw public key). */
export function kidOf(publicKey: KeyObject | Uint8Array): string {
  const raw = publicKey instanceof Uint8Array ? publicKey : rawPublicKey(publicKey);
  return createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

/**
 * Plain Ed25519 verification (RFC 8032, as OpenSSL implements it: S >= L and
 * non-canonical encodings rejected, cofactorless equation), independent of any
 * KeyStore. Never throws: a key or signature of the wrong length, or one that
 * cannot be decoded, is simply not valid.
 */
export function verifyEd25519(publicKeyRaw: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (publicKeyRaw.length !== 32 || sig.length !== 64) return false;
  try {
    return cryptoVerify(null, msg, ed25519PublicKeyFromRaw(publicKeyRaw), sig);
  } catch {
    return false;
  }
}

const HEX_SIG = /^[0-9a-f]{128}$/i;

function isKind(kind: string): kind is KeyKind {
  return (KEY_KINDS as readonly string[]).includes(kind);
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function writeFileExclusive(path: string, data: string, mode: number): void {
  const fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort: some filesystems refuse fsync on a directory
  }
}

export class KeyStore {
  readonly dir: string;
  private readonly cache = new Map<KeyKind, CurrentKey>();
  private readonly history = new Map<KeyKind, Jwks>();
  private readonly publicKeys = new Map<string, KeyObject>(); // `${kind}:${kid}`

  constructor(dir: string) {
    this.dir = dir;
  }

  keyPath(kind: KeyKind): string {
    return join(this.dir, `${kind}.key`);
  }

  jwksPath(kind: KeyKind): string {
    return join(this.dir, `${kind}-keys.jwks`);
  }

  /** The current key of a kind, created on first use. */
  current(kind: KeyKind): CurrentKey {
    this.checkKind(kind);
    const cached = this.cache.get(kind);
    if (cached) return cached;
    this.ensureDir();
    let key = this.load(kind);
    if (!key) {
      // Create exclusively: link() fails if another process created the key meanwhile.
      const { privateKey } = generateKeyPairSync('ed25519');
      const tmp = this.writeTemp(kind, privateKey);
      try {
        linkSync(tmp, this.keyPath(kind));
        fsyncDir(this.dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      } finally {
        unlinkSync(tmp);
      }
      key = this.load(kind);
      if (!key) throw new KeyStoreError(`could not create ${this.keyPath(kind)}`);
    }
    // Self-healing: a key whose history entry was lost (crash between writes) is recorded now.
    this.ensureInHistory(kind, key.kid, key.publicKey, undefined);
    this.cache.set(kind, key);
    return key;
  }

  /**
   * Replaces the current key with a fresh one and returns its kid. The old
   * public key stays in the history (marked retired_at), so its signatures
   * still verify.
   */
  rotate(kind: KeyKind): string {
    this.checkKind(kind);
    const old = this.current(kind);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const kid = kidOf(publicKey);
    const now = new Date().toISOString();
    // History first: a signature must never exist whose key is not in the history.
    this.updateHistory(kind, (jwks) => {
      for (const e of jwks.keys) if (e.kid === old.kid && !e.retired_at) e.retired_at = now;
      if (!jwks.keys.some((e) => e.kid === kid)) jwks.keys.push(this.entry(kid, publicKey, now));
    });
    const tmp = this.writeTemp(kind, privateKey);
    renameSync(tmp, this.keyPath(kind));
    fsyncDir(this.dir);
    this.cache.delete(kind);
    return this.current(kind).kid;
  }

  /** Signs bytes with the current key of a kind. */
  sign(kind: KeyKind, bytes: Uint8Array): { kid: string; signature: string } {
    const key = this.current(kind);
    return { kid: key.kid, signature: cryptoSign(null, bytes, key.privateKey).toString('hex') };
  }

  /** Verifies a hex signature against the history key with that kid; false for an unknown kid. */
  verify(kind: KeyKind, kid: string, bytes: Uint8Array, sigHex: string): boolean {
    this.checkKind(kind);
    if (typeof sigHex !== 'string' || !HEX_SIG.test(sigHex) || typeof kid !== 'string') return false;
    const pub = this.publicKey(kind, kid, false) ?? this.publicKey(kind, kid, true);
    if (!pub) return false;
    try {
      return cryptoVerify(null, bytes, pub, Buffer.from(sigHex, 'hex'));
    } catch {
      return false;
    }
  }

  /** Whether the history of a kind holds this kid (creates nothing). */
  hasKey(kind: KeyKind, kid: string): boolean {
    this.checkKind(kind);
    return (this.publicKey(kind, kid, false) ?? this.publicKey(kind, kid, true)) !== undefined;
  }

  /** The public history of a kind (append-only), for /.well-known/jwks.json and receipt verifiers. */
  jwks(kind: KeyKind): Jwks {
    this.current(kind);
    return structuredClone(this.readHistory(kind, true));
  }

  /** Drops cached keys, so a rotation made by another process is picked up. */
  reload(): void {
    this.cache.clear();
    this.history.clear();
  }

  // --- internals ---

  private checkKind(kind: string): asserts kind is KeyKind {
    if (!isKind(kind)) throw new KeyStoreError(`unknown key kind ${JSON.stringify(kind)}; expected one of ${KEY_KINDS.join(', ')}`);
  }

  private ensureDir(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  private entry(kid: string, publicKey: KeyObject, createdAt: string): JwksEntry {
    return { kty: 'OKP', crv: 'Ed25519', x: rawPublicKey(publicKey).toString('base64url'), kid, use: 'sig', alg: 'EdDSA', created_at: createdAt };
  }

  private writeTemp(kind: KeyKind, privateKey: KeyObject): string {
    const tmp = join(this.dir, `.${kind}.key.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    writeFileExclusive(tmp, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, 0o600);
    return tmp;
  }

  /** Loads the key file if it exists, after checking it is safe to use. */
  private load(kind: KeyKind): CurrentKey | null {
    const path = this.keyPath(kind);
    let st;
    try {
      st = lstatSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    if (!st.isFile()) throw new KeyStoreError(`key file ${path} is not a regular file (a symlink or something else); refusing to use it. Fix: remove it and let latchgate create a new key, or put the real file there`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new KeyStoreError(`key file ${path} is readable or writable by group or others (mode ${mode}); refusing to use it. Fix: chmod 600 ${path}`);
    }
    const uid = process.getuid?.();
    if (uid !== undefined && uid !== 0 && st.uid !== uid) {
      throw new KeyStoreError(`key file ${path} is owned by uid ${st.uid}, not by this user (uid ${uid}); refusing to use it. Fix: chown ${uid} ${path}, or run latchgate as its owner`);
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: readFileSync(path, 'utf8'), format: 'pem' });
    } catch (e) {
      throw new KeyStoreError(`key file ${path} is not a PKCS8 PEM private key (${(e as Error).message}). Fix: restore it from a backup, or move it away and run \`latchgate keys rotate\``);
    }
    if (privateKey.asymmetricKeyType !== 'ed25519') {
      throw new KeyStoreError(`key file ${path} holds a ${privateKey.asymmetricKeyType} key, not Ed25519. Fix: move it away and let latchgate create a new key`);
    }
    const publicKey = createPublicKey(privateKey);
    return { kind, kid: kidOf(publicKey), privateKey, publicKey };
  }

  private publicKey(kind: KeyKind, kid: string, refresh: boolean): KeyObject | undefined {
    const id = `${kind}:${kid}`;
    const hit = this.publicKeys.get(id);
    if (hit) return hit;
    const entry = this.readHistory(kind, refresh).keys.find((e) => e.kid === kid);
    if (!entry) return undefined;
    const raw = Buffer.from(entry.x, 'base64url');
    if (raw.length !== 32 || kidOf(raw) !== kid) return undefined; // a history entry whose kid does not match its key is ignored
    const pub = ed25519PublicKeyFromRaw(raw);
    this.publicKeys.set(id, pub);
    return pub;
  }

  private readHistory(kind: KeyKind, refresh: boolean): Jwks {
    const cached = this.history.get(kind);
    if (cached && !refresh) return cached;
    const path = this.jwksPath(kind);
    let jwks: Jwks;
    try {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
      if (!parsed || typeof parsed !== 'object' || !Array.isArray((parsed as Jwks).keys)) throw new Error('no "keys" array');
      jwks = parsed as Jwks;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') jwks = { keys: [] };
      else throw new KeyStoreError(`key history ${path} is unreadable (${(e as Error).message}). Fix: restore it from a backup; without it, signatures made with older keys cannot be verified`);
    }
    this.history.set(kind, jwks);
    return jwks;
  }

  private ensureInHistory(kind: KeyKind, kid: string, publicKey: KeyObject, createdAt: string | undefined): void {
    if (this.readHistory(kind, false).keys.some((e) => e.kid === kid)) return;
    this.updateHistory(kind, (jwks) => {
      if (!jwks.keys.some((e) => e.kid === kid)) jwks.keys.push(this.entry(kid, publicKey, createdAt ?? new Date().toISOString()));
    });
  }

  /** Read-modify-write of the history under a lock file (two processes may share the directory). */
  private updateHistory(kind: KeyKind, change: (jwks: Jwks) => void): void {
    this.ensureDir();
    const path = this.jwksPath(kind);
    const lock = `${path}.lock`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        closeSync(openSync(lock, 'wx', 0o600));
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        try {
          if (Date.now() - statSync(lock).mtimeMs > 30_000) unlinkSync(lock); // stale: its holder died
        } catch {
          // gone meanwhile
        }
        if (Date.now() > deadline) throw new KeyStoreError(`timed out waiting for ${lock}. Fix: if no latchgate process is running, remove it`);
        sleepMs(5);
      }
    }
    try {
      const jwks = structuredClone(this.readHistory(kind, true));
      change(jwks);
      const tmp = join(this.dir, `.${kind}-keys.jwks.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
      writeFileExclusive(tmp, `${JSON.stringify(jwks, null, 2)}\n`, 0o644);
      renameSync(tmp, path);
      fsyncDir(this.dir);
      this.history.set(kind, jwks);
    } finally {
      unlinkSync(lock);
    }
  }
}
