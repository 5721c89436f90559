// Where the providers' HTTP host (host-http.ts) gets the values of the
// secrets a manifest declares. The provider never sees a value: the host
// fills {{secret:NAME}} in a header value on its way out, and redacts every
// declared secret from what comes back.
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
}
