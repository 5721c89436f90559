// The gate's secrets from one SOPS file, decrypted on the host when a value
// is first needed and held in memory for cache_seconds, then dropped. The
// file is stat'ed on every use: a changed file (device, inode, size, mtime or
// ctime differ; an editor's rename is a new inode) is read again at once, and
// so is every cache when an operator runs `latchgate reload` (which touches
// the reload marker beside the ledger, seen by every gate process sharing
// the state directory). Errors name the file and the fix, never a value.
import { statSync, type BigIntStats } from 'node:fs';
import { UnusableSecret, unusableError } from './unusable-secret.js';

export interface SecretResolverOptions {
  /** The SOPS file (for stat and messages). */
  file: string;
  /** Decrypts the file: its top-level values by name (or why one is unusable). Throws with a message that holds no value. */
  load: () => Promise<Map<string, string | UnusableSecret>>;
  /** How long decrypted values are kept, in seconds (0: read on every use). */
  cacheSeconds: number;
  /** A file whose change drops every cache (`latchgate reload` touches it); absent is fine. */
  reloadMarker?: string;
}

/** What identifies one version of a file without reading it. */
function identity(path: string): string {
  let s: BigIntStats | undefined;
  try {
    s = statSync(path, { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'absent';
    throw e;
  }
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

export class SecretResolver {
  private values: Map<string, string | UnusableSecret> | undefined;
  private version = '';
  private expiry: NodeJS.Timeout | undefined;
  private loading: Promise<Map<string, string | UnusableSecret>> | undefined;

  constructor(private readonly o: SecretResolverOptions) {
    if (!Number.isInteger(o.cacheSeconds) || o.cacheSeconds < 0) throw new Error(`[secrets] cache_seconds must be a whole number of seconds, 0 or more (got ${String(o.cacheSeconds)})`);
  }

  get file(): string {
    return this.o.file;
  }

  /** The file's and the reload marker's identity now. */
  private current(): string {
    return `${identity(this.o.file)}|${this.o.reloadMarker ? identity(this.o.reloadMarker) : ''}`;
  }

  /**
   * The value of a top-level key, or undefined when the file does not
   * mention it. A name it mentions with no usable value is an error (never
   * undefined: the caller would fall back to the environment).
   */
  async get(name: string): Promise<string | undefined> {
    const v = (await this.all()).get(name);
    if (v instanceof UnusableSecret) throw unusableError(this.o.file, name, v);
    if (v === '') throw unusableError(this.o.file, name, new UnusableSecret('its value is empty'));
    return v;
  }

  /** The names the file holds (for the shadowing check; no values leave). */
  async names(): Promise<string[]> {
    return [...(await this.all()).keys()];
  }

  /** Every usable value the file holds, read once (for redaction; the caller keeps them from every output). */
  async allValues(): Promise<string[]> {
    return [...(await this.all()).values()].filter((v): v is string => typeof v === 'string' && v !== '');
  }

  /** Reads the file now, whatever the cache holds; returns how many usable secrets it has. Throws when it cannot be read. */
  async reload(): Promise<number> {
    this.drop();
    return [...(await this.all()).values()].filter((v) => typeof v === 'string').length;
  }

  /** Forgets every decrypted value. */
  drop(): void {
    this.values = undefined;
    this.version = '';
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = undefined;
  }

  private async all(): Promise<Map<string, string | UnusableSecret>> {
    const now = this.current();
    if (this.values && this.version === now) return this.values;
    if (this.values) this.drop();
    // One read for every caller waiting on the same version.
    if (!this.loading) {
      this.loading = this.read(now).finally(() => (this.loading = undefined));
    }
    return this.loading;
  }

  private async read(version: string): Promise<Map<string, string | UnusableSecret>> {
    const values = await this.o.load();
    if (this.o.cacheSeconds > 0) {
      this.values = values;
      this.version = version;
      this.expiry = setTimeout(() => this.drop(), this.o.cacheSeconds * 1000);
      this.expiry.unref();
    }
    return values;
  }
}
