// Where the built-in providers are: scripts/build-providers.mjs builds
// providers/<name>/ into providers/build/<name>.wasm and records its digest
// in providers/build/<name>.digest (the digest the gate trusts for
// "builtin:<name>"; ProviderRuntime.load checks the file against it), and
// scripts/precompile-providers.mjs compiles them into PREBUILT_DIR, so that
// no gate compiles a built-in on its first call.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ProviderRefused } from './runtime-types.js';

export const BUILTIN_PROVIDERS = ['http_api', 'fs'] as const;
export type BuiltinProvider = (typeof BUILTIN_PROVIDERS)[number];

const BUILD_DIR = fileURLToPath(new URL('../../providers/build/', import.meta.url));
/** The installation's compiled built-ins (runtime-cache.ts entries), read-only to every gate. */
export const PREBUILT_DIR = `${BUILD_DIR}compiled`;

/** The component file and recorded digest of a built-in provider; ProviderRefused when it was not built. */
export function builtinProvider(name: BuiltinProvider, dir: string = BUILD_DIR): { file: string; digest: string } {
  const file = `${dir}${name}.wasm`;
  let digest: string;
  try {
    digest = readFileSync(`${dir}${name}.digest`, 'utf8').trim();
  } catch {
    throw new ProviderRefused('provider_untrusted', `the built-in provider ${name} is not built (${file}): run \`node scripts/build-providers.mjs\``);
  }
  return { file, digest };
}
