// latchgate.toml, the sandbox part: parsed with smol-toml, checked against a
// schema; unknown keys and wrong types are errors that name the file, the key
// and what was expected.
import { readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import { LaunchError } from '../sandbox/errors.js';
import { didYouMean } from './suggest.js';

type FieldType = 'string' | 'string[]' | 'int' | 'bool';
type Schema = { [key: string]: FieldType | Schema };

const SCHEMA: Schema = {
  sandbox: {
    agent: {
      workspace: 'string',
      allow_hosts: 'string[]',
      ro_mounts: 'string[]',
      rw_mounts: 'string[]',
      pass_env: 'string[]',
    },
    limits: { nofile: 'int', nproc: 'int', tmp_size: 'string' },
    network: { strict_net: 'bool' },
  },
};

export interface SandboxFileConfig {
  workspace?: string;
  allowHosts: string[];
  roMounts: string[];
  rwMounts: string[];
  passEnv: string[];
  limits: { nofile?: number; nproc?: number; tmpSize?: string };
  strictNet?: boolean;
}

function check(file: string, value: unknown, schema: Schema, path: string[]): void {
  if (Object.prototype.toString.call(value) !== '[object Object]') {
    throw new LaunchError(`${file}: [${path.join('.')}] must be a table`);
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const where = path.length ? `[${path.join('.')}] key "${k}"` : `key "${k}"`;
    const t = Object.hasOwn(schema, k) ? schema[k] : undefined;
    if (t === undefined) throw new LaunchError(`${file}: ${where}: unknown key; ${didYouMean(k, Object.keys(schema))}`);
    if (typeof t === 'object') {
      check(file, v, t, [...path, k]);
      continue;
    }
    const ok =
      t === 'string' ? typeof v === 'string'
      : t === 'bool' ? typeof v === 'boolean'
      : t === 'int' ? typeof v === 'number' && Number.isInteger(v) && v > 0
      : Array.isArray(v) && v.every((x) => typeof x === 'string');
    if (!ok) {
      const expected = { string: 'a string', bool: 'true or false', int: 'a positive integer', 'string[]': 'an array of strings' }[t];
      throw new LaunchError(`${file}: ${where}: expected ${expected}, got ${JSON.stringify(v)}`);
    }
  }
}

export function parseSandboxConfig(file: string, text: string): SandboxFileConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    const where = e instanceof TomlError ? ` line ${e.line}, column ${e.column}` : '';
    throw new LaunchError(`${file}:${where}: not valid TOML: ${(e as Error).message.split('\n')[0]}`);
  }
  check(file, doc, SCHEMA, []);
  const sb = (doc.sandbox ?? {}) as Record<string, Record<string, unknown>>;
  const a = sb.agent ?? {};
  const l = sb.limits ?? {};
  return {
    workspace: a.workspace as string | undefined,
    allowHosts: (a.allow_hosts as string[]) ?? [],
    roMounts: (a.ro_mounts as string[]) ?? [],
    rwMounts: (a.rw_mounts as string[]) ?? [],
    passEnv: (a.pass_env as string[]) ?? [],
    limits: { nofile: l.nofile as number | undefined, nproc: l.nproc as number | undefined, tmpSize: l.tmp_size as string | undefined },
    strictNet: sb.network?.strict_net as boolean | undefined,
  };
}

export function loadSandboxConfig(file: string): SandboxFileConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new LaunchError(`--config ${file}: cannot read it (${(e as NodeJS.ErrnoException).code}); check the path`);
  }
  return parseSandboxConfig(file, text);
}
