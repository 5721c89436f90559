// Validators for the JSON Schemas latchgate ships (a manifest's shape, the
// policy decision's documents, draft 2020-12's meta-schema that every
// request and response schema is checked against), generated at build by
// scripts/build-validators.mjs as ajv's standalone code in dist/generated/,
// so that no process spends 50 to 100 ms compiling each one again. Every
// generated module carries the digest of what it was made from (ajv's
// version, the revision of our const, enum and uniqueItems (json-equality.ts), the options,
// the schema); one that does not match (a build that skipped the step, ajv
// upgraded since) is not used: the schema is then compiled here, as ajv
// always did, with the same result.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type Ajv2020Module from 'ajv/dist/2020.js';
import type { Options, ValidateFunction } from 'ajv';
import { JSON_EQUALITY_REVISION, withJsonEquality } from './json-equality.js';

type Ajv2020Class = typeof Ajv2020Module.default;
export type Ajv = InstanceType<Ajv2020Class>;

/** ajv's own meta-schema of draft 2020-12, by its id. */
export const META_2020_12 = 'https://json-schema.org/draft/2020-12/schema';

export interface FixedSchema {
  /** The generated module: dist/generated/<name>.cjs. */
  name: string;
  options: Options;
  /** The schema, or META_2020_12 for the meta-schema as an ajv with these options checks schemas against it. */
  schema: Record<string, unknown> | typeof META_2020_12;
}

const require = createRequire(import.meta.url);
let ajvVersion: string | undefined;
let ajvClass: Ajv2020Class | undefined;

/** A new ajv for draft 2020-12: the package is loaded at the first (a process that only runs generated validators never loads it). */
export function newAjv2020(options: Options): Ajv {
  // ajv ships CommonJS: its class is the module's default export.
  ajvClass ??= (require('ajv/dist/2020.js') as { default: Ajv2020Class }).default;
  return new ajvClass(options);
}

/** What a generated module must have been made from to be used (SHA-256, hex). */
export function fixedDigest(s: FixedSchema): string {
  ajvVersion ??= (require('ajv/package.json') as { version: string }).version;
  return createHash('sha256').update(JSON.stringify([ajvVersion, JSON_EQUALITY_REVISION, s.options, s.schema])).digest('hex');
}

/**
 * True when v is JSON that JSON.stringify writes as it is (no NaN or
 * Infinity, which it writes as null; no Date or other object it would turn
 * into something else): only such a schema is looked up by its digest.
 */
export function isPlainJson(v: unknown): boolean {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every(isPlainJson);
  if (typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return (proto === Object.prototype || proto === null) && Object.values(v).every(isPlainJson);
}

/** Where the build writes the generated module of `name` (dist/core/ -> dist/generated/). */
export const generatedFile = (name: string): string => fileURLToPath(new URL(`../generated/${name}.cjs`, import.meta.url));

/** Compiles s now; `source` keeps the code for the build's standalone module. */
export function compileFixed(s: FixedSchema, source = false): { ajv: Ajv; validate: ValidateFunction } {
  const ajv = withJsonEquality(newAjv2020({ ...s.options, ...(source ? { code: { source: true } } : {}) }));
  const validate = s.schema === META_2020_12 ? ajv.getSchema(META_2020_12) : ajv.compile(s.schema);
  if (!validate) throw new Error(`ajv has no ${META_2020_12}`);
  return { ajv, validate };
}

/** The generated validator `name` when it was made from what has `digest`; undefined when there is none or it was made from something else. */
export function generatedValidator(name: string, digest: string): ValidateFunction | undefined {
  let generated: (ValidateFunction & { digest?: unknown }) | undefined;
  try {
    generated = require(generatedFile(name)) as ValidateFunction & { digest?: unknown };
  } catch {
    return undefined; // not generated (a build that ran tsc alone, or a schema the build never saw)
  }
  return typeof generated === 'function' && generated.digest === digest ? generated : undefined;
}

/** The validator of s: the generated one when it was made from s, else compiled now. */
export function fixedValidator(s: FixedSchema): ValidateFunction {
  return generatedValidator(s.name, fixedDigest(s)) ?? compileFixed(s).validate;
}
