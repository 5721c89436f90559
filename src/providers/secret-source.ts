// Where the providers' HTTP host (host-http.ts) gets the values of the
// secrets a manifest declares. The provider never sees a value: the host
// fills {{secret:NAME}} in the request the manifest's template renders, and
// redacts every secret the gate holds from what comes back.
//
// EnvSecretSource reads the gate's environment once, when made: the secret NAME is the
// variable LATCHGATE_SECRET_NAME, with NAME spelled exactly as the manifest
// declares it (names are letters, digits and "_"; environment variable
// names are case-sensitive). A store with encrypted files can take its place
// behind the same interface.

/** Secret names as manifests declare them (src/gate/manifest-schema.ts). */
export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** The prefix of the environment variables EnvSecretSource reads. */
export const SECRET_ENV_PREFIX = 'LATCHGATE_SECRET_';

export interface SecretSource {
  /** The secret's value, or undefined when it has none (unset or empty). */
  get(name: string): Promise<string | undefined>;
  /**
   * Every value a response must not carry back, whatever action asks: each
   * name's current value, and values replaced not long ago (an old key often
   * stays valid for a while). Only for building redaction matchers: never
   * shown to a provider, a log or a receipt.
   */
  redactionValues(): Promise<string[]>;
}

export class EnvSecretSource implements SecretSource {
  /** LATCHGATE_SECRET_<NAME> with a valid NAME, read once: get() and redactionValues() agree, and a call does not walk process.env. */
  readonly #values = new Map<string, string>();

  /** env: the environment to read (default: the gate's own), as it is now: a later change is not seen. */
  constructor(env: Readonly<Record<string, string | undefined>> = process.env) {
    for (const [key, v] of Object.entries(env)) {
      if (!key.startsWith(SECRET_ENV_PREFIX) || !SECRET_NAME.test(key.slice(SECRET_ENV_PREFIX.length))) continue;
      if (typeof v === 'string' && v !== '') this.#values.set(key.slice(SECRET_ENV_PREFIX.length), v);
    }
  }

  async get(name: string): Promise<string | undefined> {
    return typeof name === 'string' ? this.#values.get(name) : undefined;
  }

  async redactionValues(): Promise<string[]> {
    return [...this.#values.values()];
  }
}
