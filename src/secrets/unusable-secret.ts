// A name the SOPS file mentions whose value is no usable secret, and the
// error that says so: apart from secret-values.ts, so that the value cache
// (resolver.ts) loads without the code that reads SOPS files.
import { SecretsError } from './errors.js';
import { extractPath } from './sops-tree.js';

/** A top-level name of the file whose value is not a usable secret. */
export class UnusableSecret {
  constructor(readonly why: string) {}
}

/** The error for a name the file mentions but cannot serve. */
export function unusableError(file: string, name: string, u: UnusableSecret): SecretsError {
  return new SecretsError('secret_unusable', `${file}: ${name} is in the file but is not a usable secret: ${u.why}; the file may have been altered without sops. Set it again with \`latchgate secrets set ${name}\`, or remove it (\`latchgate secrets remove ${name}\`); the environment (LATCHGATE_SECRET_${name}) never stands in for a name the file holds`, { file, keyPath: extractPath([name]) });
}
