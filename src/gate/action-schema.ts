// Request and response schemas of actions: how they are compiled (draft
// 2020-12 only, strict; refused: $dynamicRef, which ajv does not resolve as
// the specification does, and a $ref cycle on one value,
// src/gate/schema-cycles.ts), what a check's verdict looks like, and which
// checks may run on the gate's main thread: only those of the schemas that
// ship with latchgate, stopping at the first error. What an operator's schema
// costs on a document has no useful bound (a backtracking pattern, a $ref
// that applies a definition twice at each level, thousands of enum values
// or anyOf branches, each failed branch an error object: seconds to minutes
// for 64 KiB), so those checks, and the full list of a refused document's
// errors, run in a worker under a deadline (src/gate/schema-judge.ts).
import type { ValidateFunction } from 'ajv';
import { fixedDigest, fixedValidator, generatedValidator, isPlainJson, META_2020_12, newAjv2020, type Ajv, type FixedSchema } from '../core/fixed-validators.js';
import { withJsonEquality } from '../core/json-equality.js';
import { refProblem } from './schema-cycles.js';

const MAX_ERRORS = 20;
/** What of a pointer or message a verdict keeps: a document's keys can be a megabyte long. */
const MAX_POINTER = 256;
const MAX_MESSAGE = 512;

export interface ValidationIssue {
  /** JSON pointer (RFC 6901) of the offending field in the request or response ("" for the whole document). */
  pointer: string;
  message: string;
}

/** A check's verdict. `unchecked`: no verdict was reached (the deadline passed, or every checker was busy). */
export type ValidationResult = { ok: true } | { ok: false; errors: ValidationIssue[]; unchecked?: 'timeout' | 'busy' };

/**
 * Request and response schemas: strict mode (unknown keywords, ignored
 * "required" names, ambiguous types are errors); a document's field counts
 * only when it is its own (an inherited "toString" never meets "required").
 * Each is checked against the meta-schema by SCHEMA_META before ajv compiles
 * it. Every error: the meta-check, and documents checked in a worker.
 */
const SCHEMA_OPTIONS = { strict: true, allErrors: true, allowUnionTypes: true, validateFormats: false, addUsedSchema: false, ownProperties: true, logger: false } as const;
/** On the main thread (and the build's validators of the built-in schemas): the first error only. */
const INLINE_OPTIONS = { ...SCHEMA_OPTIONS, allErrors: false } as const;
export const SCHEMA_META: FixedSchema = { name: 'schema-meta-2020-12', options: SCHEMA_OPTIONS, schema: META_2020_12 };

let metaValidator: ValidateFunction | undefined;

/**
 * A request or response schema as the build generates its validator: the
 * built-in manifests' are in dist/generated/schemas/ (by digest), any other
 * is compiled at load.
 */
export function actionSchema(schema: Record<string, unknown>): { spec: FixedSchema; digest: string } | undefined {
  if (!isPlainJson(schema)) return undefined; // its digest would stand for another schema too: compiled
  const based = withBase(schema);
  const digest = fixedDigest({ name: '', options: INLINE_OPTIONS, schema: based });
  return { spec: { name: `schemas/${digest}`, options: INLINE_OPTIONS, schema: based }, digest };
}

/** The base URI of a request or response schema that names none: ajv resolves "#" (the whole schema) against it. */
const SCHEMA_BASE = 'https://action-schema.latchgate.invalid/schema.json';
const withBase = (schema: Record<string, unknown>): Record<string, unknown> => (Object.hasOwn(schema, '$id') ? schema : { $id: SCHEMA_BASE, ...schema });

/** The first $dynamicRef or $dynamicAnchor key anywhere in the schema. */
function dynamicKeyword(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  for (const [k, x] of Object.entries(v)) {
    if (k === '$dynamicRef' || k === '$dynamicAnchor') return k;
    const inner = dynamicKeyword(x);
    if (inner) return inner;
  }
  return undefined;
}

/**
 * An ajv instance configured as the registry compiles request/response
 * schemas (for ParseOptions.ajv): validators that stop at the first error,
 * or, `every`, that collect them all (the worker's).
 */
export function createSchemaAjv(errors: 'first' | 'every' = 'first'): Ajv {
  // No meta-schemas in it: compileActionSchema checks against draft 2020-12 itself, and a $ref into a meta-schema (whose $dynamicRef ajv misresolves) has nothing to resolve to.
  return withJsonEquality(newAjv2020({ ...(errors === 'every' ? SCHEMA_OPTIONS : INLINE_OPTIONS), validateSchema: false, meta: false }));
}

/**
 * ajv.compile with the checks a request or response schema gets first:
 * draft 2020-12's meta-schema (SCHEMA_META's validator, ajv's message), no
 * other dialect, no $dynamicRef, no $ref cycle on one value
 * (schema-cycles.ts). The build's validator of the same schema is used when
 * there is one, unless `generated` is false (it stops at the first error).
 */
export function compileActionSchema(ajv: SchemaAjv, schema: Record<string, unknown>, generated = true): ValidateFunction {
  return compiled(ajv, schema, generated).validate;
}

/** An ajv, or how to make it when a schema needs one (a shipped schema's validator needs none). */
export type SchemaAjv = Ajv | (() => Ajv);

function compiled(schemaAjv: SchemaAjv, schema: Record<string, unknown>, useGenerated = true): { validate: ValidateFunction; shipped: boolean } {
  const ajv = (): Ajv => (typeof schemaAjv === 'function' ? schemaAjv() : schemaAjv);
  const dynamic = dynamicKeyword(schema);
  if (dynamic) throw new Error(`${dynamic} is not supported: ajv resolves it unlike the specification (it accepts documents it should refuse, and can recurse without end); use $ref to $defs`);
  // Another dialect, or a part of a meta-schema, would check the schema against less than draft 2020-12 (a `true` one against nothing).
  if (Object.hasOwn(schema, '$schema') && schema.$schema !== META_2020_12 && schema.$schema !== `${META_2020_12}#`) {
    throw new Error(`$schema must be "${META_2020_12}" or left out (request and response schemas are draft 2020-12), got ${JSON.stringify(schema.$schema)}`);
  }
  const meta = (metaValidator ??= fixedValidator(SCHEMA_META));
  if (!meta(schema)) throw new Error(`schema is invalid: ${ajv().errorsText(meta.errors)}`);
  const refs = refProblem(schema);
  if (refs) throw new Error(refs);
  const fixed = useGenerated ? actionSchema(schema) : undefined;
  const generated = fixed && generatedValidator(fixed.spec.name, fixed.digest);
  if (generated) return { validate: generated, shipped: true };
  try {
    return { validate: ajv().compile(withBase(schema)), shipped: false };
  } catch (e) {
    // ajv's message names where in the schema: as the author wrote it, without the base given here.
    throw new Error((e as Error).message.replaceAll(SCHEMA_BASE, ''));
  }
}

/** A compiled request or response schema (its validator stops at the first error), and where its checks run. */
export interface ActionSchemaCheck {
  schema: Record<string, unknown>;
  validate: ValidateFunction;
  /**
   * One of the built-in manifests' schemas, by the build's validator: checked
   * on the main thread (they ship with latchgate: flat objects, anchored
   * patterns, short lists of scalars; test/unit/action-schema-cost.test.mjs
   * holds them to it). Any other is checked in a worker.
   */
  shipped: boolean;
}

/** compileActionSchema, and where its checks run. */
export function actionSchemaCheck(ajv: SchemaAjv, schema: Record<string, unknown>): ActionSchemaCheck {
  return { schema, ...compiled(ajv, schema) };
}

/** A validator's verdict on a document: a validator that throws is a refusal, never a crash. */
export function validationResult(validate: ValidateFunction, body: unknown): ValidationResult {
  let valid: boolean;
  try {
    valid = validate(body) as boolean;
  } catch (e) {
    // A schema the load-time checks let through that still cannot judge this document: refused, never a crash.
    return { ok: false, errors: [{ pointer: '', message: `the schema could not judge it (${(e as Error).message}); the action's schema needs fixing` }] };
  }
  if (valid) return { ok: true };
  const errors: ValidationIssue[] = [];
  const issue = (pointer: string, message: string) => errors.push({ pointer: cut(pointer, MAX_POINTER), message: cut(message, MAX_MESSAGE) });
  for (const e of validate.errors ?? []) {
    const p = e.params as Record<string, unknown>;
    if (e.keyword === 'required') {
      issue(`${e.instancePath}/${escapePointer(String(p.missingProperty))}`, `missing required field "${String(p.missingProperty)}"`);
    } else if (e.keyword === 'additionalProperties') {
      issue(`${e.instancePath}/${escapePointer(String(p.additionalProperty))}`, `unknown field "${String(p.additionalProperty)}"`);
    } else {
      issue(e.instancePath, e.message ?? `fails "${e.keyword}"`);
    }
    if (errors.length >= MAX_ERRORS) break;
  }
  if (errors.length === 0) errors.push({ pointer: '', message: 'does not match the schema' });
  return { ok: false, errors };
}

const cut = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max)}…` : s);

function escapePointer(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}
