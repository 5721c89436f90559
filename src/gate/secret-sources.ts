// Where the gate's providers get secret values (src/providers/secret-source.ts):
// the SOPS file (src/secrets/resolver.ts) when there is one, then the gate's
// environment (LATCHGATE_SECRET_<NAME>). The file wins: a name set in both
// is taken from the file, and the gate says so once per name on stderr (the
// variable is shadowed, never silently). Neither source's errors hold a value.
//
// What a response must not carry back (redactionValues) is every value of
// both sources, for every action, plus each value replaced in the last
// RETAIN_REPLACED_MS: after `latchgate secrets set` the old key is often
// still valid upstream, and an upstream may still hold it.
import { writeFileSync } from 'node:fs';
import { HostIoError } from '../providers/host-error.js';
import { EnvSecretSource, type SecretSource } from '../providers/secret-source.js';
import { SecretsError } from '../secrets/errors.js';
import type { SecretResolver } from '../secrets/resolver.js';

/** How long a value stays redacted after the gate last saw it current. */
export const RETAIN_REPLACED_MS = 60 * 60 * 1000;

export class GateSecrets implements SecretSource {
  private readonly env: EnvSecretSource;
  private readonly warned = new Set<string>();
  /** Every value seen current, with when it last was: kept RETAIN_REPLACED_MS past that. */
  private readonly seen = new Map<string, number>();

  constructor(
    /** The SOPS store, when the gate has one. */
    readonly store: SecretResolver | undefined,
    /** Touched by reload(): every gate process on the state directory drops its cache (SecretResolverOptions.reloadMarker). */
    private readonly reloadMarker?: string,
    env: Readonly<Record<string, string | undefined>> = process.env,
    private readonly warn: (message: string) => void = (m) => process.stderr.write(`latchgate: warning: ${m}\n`),
    /** The clock of the retention (tests move it). */
    private readonly now: () => number = Date.now,
  ) {
    this.env = new EnvSecretSource(env);
  }

  async get(name: string): Promise<string | undefined> {
    const fromFile = await this.fromFile(name);
    const fromEnv = await this.env.get(name);
    const v = fromFile ?? fromEnv;
    if (v !== undefined) this.seen.set(v, this.now());
    if (fromFile === undefined) return fromEnv;
    if (fromEnv !== undefined && !this.warned.has(name)) {
      this.warned.add(name);
      this.warn(`secret ${name} is set both in ${this.store!.file} and as LATCHGATE_SECRET_${name}; the file's value is used (unset the variable to silence this)`);
    }
    return fromFile;
  }

  /**
   * Every value of the file and of LATCHGATE_SECRET_*, and those replaced in
   * the last RETAIN_REPLACED_MS. A file that cannot be read fails closed
   * (secrets_unavailable): the gate cannot tell what to redact.
   */
  async redactionValues(): Promise<string[]> {
    let fromFile: string[] = [];
    if (this.store) {
      try {
        fromFile = await this.store.allValues();
      } catch (e) {
        throw new HostIoError('secrets_unavailable', `the SOPS file cannot be read, so the gate cannot tell which secrets to redact from the response: ${(e as Error).message}`);
      }
    }
    const now = this.now();
    for (const v of [...fromFile, ...(await this.env.redactionValues())]) this.seen.set(v, now);
    for (const [v, at] of this.seen) if (now - at > RETAIN_REPLACED_MS) this.seen.delete(v);
    return [...this.seen.keys()];
  }

  /**
   * The file's value. A file that cannot be read now (changed to one that no
   * longer decrypts, its key gone) fails closed: the resolver keeps no value
   * past a change it cannot read, and the environment does not stand in.
   */
  private async fromFile(name: string): Promise<string | undefined> {
    if (!this.store) return undefined;
    try {
      return await this.store.get(name);
    } catch (e) {
      if (e instanceof SecretsError && e.code === 'secret_unusable') throw new HostIoError('secret_unusable', `secret ${name}: ${e.message}`);
      throw new HostIoError('secrets_unavailable', `secret ${name}: the SOPS file cannot be read: ${(e as Error).message}`);
    }
  }

  /** The SOPS file, or null when the gate has none. */
  get file(): string | null {
    return this.store?.file ?? null;
  }

  /** `latchgate reload`: the file read again now; how many values it holds (0 without a store). */
  async reload(): Promise<{ file: string | null; secrets: number }> {
    if (this.reloadMarker) writeFileSync(this.reloadMarker, `${new Date().toISOString()}\n`, { mode: 0o600 });
    if (!this.store) return { file: null, secrets: 0 };
    return { file: this.store.file, secrets: await this.store.reload() };
  }
}
