// The lease signing key. Unlike upstream (a fresh key per process start, so
// leases die with the process) it is persisted and rotatable: the current
// Ed25519 private key in PKCS8 PEM (mode 0600), and an append-only JWKS
// history of every public key that ever signed, so a lease issued before a
// rotation still verifies until it expires.
//
// Layout of `dir` (created 0700):
//   lease-signing-key.pem   current private key, PKCS8 PEM, 0600
//   lease-jwks.json         {"keys":[{kty,crv,x,kid,alg,use}, ...]} oldest first
//
// `latchgate sandbox` and `latchgate up` may share the directory: both
// files are re-read when they change on disk.
import {
  createPrivateKey,
  createPublicKey,
  createHash,
  generateKeyPairSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { importPKCS8, type JWK } from 'jose';

export interface LeaseSigningKey {
  kid: string;
  privateKey: CryptoKey | KeyObject;
  alg: string;
}

/** Where leases are signed and verified from. */
export interface LeaseKeySource {
  /** The key new leases are signed with. */
  current(): Promise<LeaseSigningKey>;
  /** Every public key that may have signed a still-valid lease (each with its kid). */
  publicKeys(): Promise<JWK[]>;
}

export const LEASE_KEY_ALG = 'EdDSA';
export const LEASE_PRIVATE_KEY_FILE = 'lease-signing-key.pem';
export const LEASE_JWKS_FILE = 'lease-jwks.json';

/** Hex of the first 8 bytes of SHA-256 over the SPKI DER (upstream's kid). */
export function leaseKid(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

function publicJwkOf(publicKey: KeyObject, kid: string): JWK {
  const j = publicKey.export({ format: 'jwk' });
  return { kty: 'OKP', crv: 'Ed25519', x: j.x, kid, alg: LEASE_KEY_ALG, use: 'sig' };
}

function isEnoent(e: unknown): boolean {
  return (e as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/** Writes a new file (must not exist) with `mode`, fsynced. */
function writeNew(path: string, data: string, mode: number): void {
  const fd = openSync(path, 'wx', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function tmpName(dir: string, base: string): string {
  return join(dir, `.${base}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

function sameFile(a: Stats | undefined, b: Stats): boolean {
  return !!a && a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.size === b.size;
}

interface LoadedKey {
  stat: Stats;
  kid: string;
  publicKey: KeyObject;
  signing: LeaseSigningKey;
}

export class FileLeaseKeys implements LeaseKeySource {
  readonly privateKeyPath: string;
  readonly jwksPath: string;
  private key: LoadedKey | undefined;
  private history: { stat: Stats; keys: JWK[] } | undefined;

  constructor(readonly dir: string) {
    this.privateKeyPath = join(dir, LEASE_PRIVATE_KEY_FILE);
    this.jwksPath = join(dir, LEASE_JWKS_FILE);
  }

  async current(): Promise<LeaseSigningKey> {
    return (await this.load()).signing;
  }

  async publicKeys(): Promise<JWK[]> {
    await this.load();
    return this.readHistory().map((k) => ({ ...k }));
  }

  /** The JWKS document served at /.well-known/jwks.json. */
  async jwks(): Promise<{ keys: JWK[] }> {
    return { keys: await this.publicKeys() };
  }

  /**
   * Replaces the signing key with a fresh one. The new public key is appended
   * to the history before the private key is swapped in, so no lease is ever
   * signed by a key missing from the history. The old private key is deleted;
   * its public key stays in the history.
   */
  async rotate(): Promise<{ kid: string; previous_kid: string }> {
    const previous = await this.load();
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const kid = leaseKid(publicKey);
    const tmp = tmpName(this.dir, LEASE_PRIVATE_KEY_FILE);
    writeNew(tmp, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    try {
      this.appendHistory(publicJwkOf(publicKey, kid));
      renameSync(tmp, this.privateKeyPath);
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {
        /* already gone */
      }
      throw e;
    }
    this.key = undefined;
    await this.load();
    return { kid, previous_kid: previous.kid };
  }

  // -- internals --------------------------------------------------------

  private async load(): Promise<LoadedKey> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    let st: Stats;
    try {
      st = statSync(this.privateKeyPath);
    } catch (e) {
      if (!isEnoent(e)) throw e;
      this.createFirstKey();
      st = statSync(this.privateKeyPath);
    }
    if (this.key && sameFile(this.key.stat, st)) return this.key;

    if ((st.mode & 0o077) !== 0) {
      throw new Error(
        `lease signing key ${this.privateKeyPath} is readable by others (mode ${(st.mode & 0o777).toString(8)}); ` +
          `fix with: chmod 600 ${this.privateKeyPath}`,
      );
    }
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
      throw new Error(
        `lease signing key ${this.privateKeyPath} belongs to uid ${st.uid}, not to this process (uid ${process.getuid()})`,
      );
    }
    const pem = readFileSync(this.privateKeyPath, 'utf8');
    let priv: KeyObject;
    try {
      priv = createPrivateKey({ key: pem, format: 'pem' });
    } catch (e) {
      throw new Error(`lease signing key ${this.privateKeyPath} is not a PKCS8 PEM private key`, { cause: e });
    }
    if (priv.asymmetricKeyType !== 'ed25519') {
      throw new Error(`lease signing key ${this.privateKeyPath} is ${priv.asymmetricKeyType}, expected ed25519`);
    }
    const publicKey = createPublicKey(priv);
    const kid = leaseKid(publicKey);
    // The history must know every key that signs: add it if a previous run
    // crashed before writing it, or the history was lost.
    if (!this.readHistory().some((k) => k.kid === kid)) this.appendHistory(publicJwkOf(publicKey, kid));
    const privateKey = await importPKCS8(pem, LEASE_KEY_ALG);
    this.key = { stat: st, kid, publicKey, signing: { kid, privateKey, alg: LEASE_KEY_ALG } };
    return this.key;
  }

  private createFirstKey(): void {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const kid = leaseKid(publicKey);
    const tmp = tmpName(this.dir, LEASE_PRIVATE_KEY_FILE);
    writeNew(tmp, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    try {
      this.appendHistory(publicJwkOf(publicKey, kid));
      // link() fails with EEXIST if another process created the key first: keep theirs.
      linkSync(tmp, this.privateKeyPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      unlinkSync(tmp);
    }
  }

  private readHistory(): JWK[] {
    let st: Stats;
    try {
      st = statSync(this.jwksPath);
    } catch (e) {
      if (isEnoent(e)) return [];
      throw e;
    }
    if (this.history && sameFile(this.history.stat, st)) return this.history.keys;
    const text = readFileSync(this.jwksPath, 'utf8');
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new Error(`lease key history ${this.jwksPath} is not valid JSON`, { cause: e });
    }
    const keys = (doc as { keys?: unknown })?.keys;
    if (!Array.isArray(keys)) throw new Error(`lease key history ${this.jwksPath} has no "keys" array`);
    keys.forEach((k: JWK, i) => {
      if (k?.kty !== 'OKP' || k.crv !== 'Ed25519' || typeof k.x !== 'string' || typeof k.kid !== 'string' || 'd' in k) {
        throw new Error(`lease key history ${this.jwksPath}: keys[${i}] is not an Ed25519 public key with a kid`);
      }
    });
    this.history = { stat: st, keys: keys as JWK[] };
    return this.history.keys;
  }

  /**
   * Appends one public key: read, append, atomic replace, under a lock file so
   * two processes rotating at once cannot drop each other's key. Nothing is
   * ever removed.
   */
  private appendHistory(jwk: JWK): void {
    withLockFile(`${this.jwksPath}.lock`, () => {
      this.history = undefined; // re-read under the lock
      const keys = this.readHistory();
      if (keys.some((k) => k.kid === jwk.kid)) return;
      const tmp = tmpName(this.dir, LEASE_JWKS_FILE);
      writeNew(tmp, `${JSON.stringify({ keys: [...keys, jwk] }, null, 2)}\n`, 0o644);
      renameSync(tmp, this.jwksPath);
      this.history = undefined;
    });
  }
}

const LOCK_WAIT_MS = 5000;
const LOCK_STALE_MS = 30_000;

function withLockFile<T>(lockPath: string, fn: () => T): T {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      closeSync(openSync(lockPath, 'wx', 0o600));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - statSync(lockPath).mtimeMs > LOCK_STALE_MS) unlinkSync(lockPath); // left by a crash
      } catch {
        /* gone meanwhile */
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${lockPath}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
  try {
    return fn();
  } finally {
    unlinkSync(lockPath);
  }
}
