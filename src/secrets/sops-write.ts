// Writing a SOPS YAML file: a plaintext tree encrypted (sops-encrypt.ts) and
// put in place atomically (atomic-write.ts), then read back with the same
// checks as any file before the write counts, so a file latchgate cannot
// read is never left behind.
import { writeFileAtomic, type AtomicOptions } from './atomic-write.js';
import { SecretsError } from './errors.js';
import { encryptSopsYaml, type EncryptOptions } from './sops-encrypt.js';
import { decryptSopsText } from './sops-read.js';
import type { AgeIdentity } from './age.js';
import type { SopsMap } from './sops-value.js';

export async function writeSopsFile(
  file: string,
  plain: SopsMap,
  o: EncryptOptions & { atomic?: AtomicOptions; verifyWith?: readonly AgeIdentity[] },
): Promise<void> {
  const text = encryptSopsYaml(plain, o);
  // Our own reader accepts what we write, before it replaces anything.
  if (o.verifyWith) decryptSopsText(text, { file, format: 'yaml', identities: o.verifyWith });
  try {
    await writeFileAtomic(file, text, o.atomic);
  } catch (e) {
    if (e instanceof SecretsError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EEXIST') throw new SecretsError('exists', `${file} exists already; latchgate does not overwrite it (move it away first)`, { file });
    throw new SecretsError('write_failed', `${file}: cannot write the secrets file: ${err.code ?? err.message}`, { file });
  }
}
