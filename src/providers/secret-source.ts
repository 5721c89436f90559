// Where the providers' HTTP host (host-http.ts) gets the values of the
// secrets a manifest declares. The provider never sees a value: the host
// fills {{secret:NAME}} in the request the manifest's template renders, and
// redacts every secret the gate holds from what comes back.
//
// EnvSecretSource reads the gate's environment: the secret NAME is the
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
  /** env: the environment to read (default: the gate's own). */
  constructor(private readonly env: Readonly<Record<string, string | undefined>> = process.env) {}

  async get(name: string): Promise<string | undefined> {
    if (typeof name !== 'string' || !SECRET_NAME.test(name)) return undefined;
    const key = `${SECRET_ENV_PREFIX}${name}`;
    const v = Object.hasOwn(this.env, key) ? this.env[key] : undefined;
    return typeof v === 'string' && v !== '' ? v : undefined;
  }

  /** The value of every LATCHGATE_SECRET_<NAME> with a valid name (the environment does not change). */
  async redactionValues(): Promise<string[]> {
    const out: string[] = [];
    for (const [key, v] of Object.entries(this.env)) {
      if (!key.startsWith(SECRET_ENV_PREFIX) || !SECRET_NAME.test(key.slice(SECRET_ENV_PREFIX.length))) continue;
      if (typeof v === 'string' && v !== '') out.push(v);
    }
    return out;
  }
}
