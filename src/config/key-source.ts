// key_source of a credential route: where the launcher reads the key on the
// host (the box never holds it). Parsed here, where the configuration is
// read; resolved by src/secrets/key-source.ts at launch.
//   env:VAR                   the host's environment variable VAR
//   sops:NAME                 the top-level key NAME of the SOPS secrets file
//   file:PATH                 the first line of PATH (absolute, or ~/...), a
//                             regular file no one but its owner may read
//   cmd:["prog","arg",...]    the first line a program prints (a JSON array
//                             run as argv, without a shell)
import { LaunchError } from '../core/errors.js';

export type KeySource =
  | { kind: 'env'; variable: string }
  | { kind: 'sops'; name: string }
  | { kind: 'file'; path: string }
  | { kind: 'cmd'; argv: string[] };

const ENV_VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** As manifests name secrets (src/providers/secret-source.ts SECRET_NAME). */
const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const MAX_ARGS = 64;
const MAX_ARG_LENGTH = 4096;

/** key_source as docs/CONFIG.md describes it. */
export const KEY_SOURCE_DOC =
  'Where the launcher reads the key on the host (the box never sees it): `"env:VAR"` (an environment variable), `"sops:NAME"` (a key of the SOPS secrets file, [secrets]), `"file:PATH"` (the first line of a regular file of mode 600 or stricter, in a directory the box does not mount; PATH absolute or `~/...`) or `\'cmd:["pass","show","anthropic"]\'` (the first line a program prints: a JSON array run without a shell and without the secret variables, killed after 5 s; its stderr is never shown). `--dry-run` and `--print-profile` show this spec, never the key.';

export const KEY_SOURCE_FORMS = '"env:VAR", "sops:NAME", "file:/path/to/key" or \'cmd:["pass","show","anthropic"]\'';

/** The spec read, or a LaunchError naming `field` and the forms expected. */
export function parseKeySource(spec: unknown, field = 'key_source'): KeySource {
  const bad = (why: string): never => {
    throw new LaunchError(`${field} ${JSON.stringify(spec)}: ${why}; expected ${KEY_SOURCE_FORMS}`);
  };
  if (typeof spec !== 'string') return bad('not a string');
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? '' : spec.slice(0, colon);
  const rest = spec.slice(colon + 1);
  switch (kind) {
    case 'env':
      if (!ENV_VAR.test(rest)) bad('after "env:" comes an environment variable name (letters, digits and "_", not starting with a digit)');
      return { kind, variable: rest };
    case 'sops':
      if (!SECRET_NAME.test(rest)) bad('after "sops:" comes a secret name (letters, digits and "_", not starting with a digit)');
      return { kind, name: rest };
    case 'file':
      if (!(rest.startsWith('/') || rest.startsWith('~/')) || rest.includes('\0') || rest.length > MAX_ARG_LENGTH) bad('after "file:" comes an absolute path or one starting with ~/');
      return { kind, path: rest };
    case 'cmd': {
      let argv: unknown;
      try {
        argv = JSON.parse(rest);
      } catch {
        return bad('after "cmd:" comes a JSON array of strings (the program and its arguments; no shell runs it)');
      }
      if (!Array.isArray(argv) || argv.length === 0 || argv.length > MAX_ARGS) bad(`after "cmd:" comes a JSON array of 1 to ${MAX_ARGS} strings`);
      (argv as unknown[]).forEach((a, i) => {
        if (typeof a !== 'string' || a.includes('\0') || a.length > MAX_ARG_LENGTH) bad(`argument ${i} is not a string (without NUL, at most ${MAX_ARG_LENGTH} characters)`);
      });
      if ((argv as string[])[0] === '') bad('the program (argument 0) is empty');
      return { kind, argv: argv as string[] };
    }
    default:
      return bad(kind === '' ? 'no source kind before ":"' : `unknown source kind "${kind}"`);
  }
}
