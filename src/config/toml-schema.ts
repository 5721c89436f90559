// TOML files checked against a schema: every unknown key and every wrong
// type is an error naming the file, the key, what was expected, and the
// nearest valid name. Shared by latchgate.toml and the agent profiles.
import { parse, TomlError } from 'smol-toml';
import { LaunchError } from '../core/errors.js';
import { didYouMean } from './suggest.js';

export type FieldType = 'string' | 'string[]' | 'int' | 'uint' | 'int[]' | 'bool' | 'env';
/** A table; the key '*' stands for any key (tables keyed by uid or name). */
export type Schema = { [key: string]: FieldType | Schema };

export function isTable(v: unknown): v is Record<string, unknown> {
  return Object.prototype.toString.call(v) === '[object Object]';
}

const EXPECTED: Record<FieldType, string> = {
  string: 'a string',
  bool: 'true or false',
  int: 'a positive integer',
  uint: 'an integer >= 0',
  'int[]': 'an array of port numbers',
  'string[]': 'an array of strings',
  env: 'a table of VARIABLE = "value" strings',
};

function fits(t: FieldType, v: unknown): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string';
    case 'bool':
      return typeof v === 'boolean';
    case 'int':
      return typeof v === 'number' && Number.isInteger(v) && v > 0;
    case 'uint':
      return typeof v === 'number' && Number.isInteger(v) && v >= 0;
    case 'int[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0 && x < 65536);
    case 'string[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'env':
      return isTable(v) && Object.entries(v).every(([n, x]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(n) && typeof x === 'string');
  }
}

export function checkSchema(file: string, value: unknown, schema: Schema, path: string[] = []): void {
  if (!isTable(value)) throw new LaunchError(`${file}: [${path.join('.')}] must be a table`);
  for (const [k, v] of Object.entries(value)) {
    const where = path.length ? `[${path.join('.')}] key "${k}"` : `key "${k}"`;
    const t = Object.hasOwn(schema, k) ? schema[k] : Object.hasOwn(schema, '*') ? schema['*'] : undefined;
    if (t === undefined) throw new LaunchError(`${file}: ${where}: unknown key; ${didYouMean(k, Object.keys(schema))}`);
    if (typeof t === 'object') checkSchema(file, v, t, [...path, k]);
    else if (!fits(t, v)) throw new LaunchError(`${file}: ${where}: expected ${EXPECTED[t]}, got ${JSON.stringify(v)}`);
  }
}

/** Parses TOML text; a syntax error names the file, line and column. */
export function parseTomlFile(file: string, text: string): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>;
  } catch (e) {
    const where = e instanceof TomlError ? ` line ${e.line}, column ${e.column}` : '';
    throw new LaunchError(`${file}:${where}: not valid TOML: ${(e as Error).message.split('\n')[0]}`);
  }
}
