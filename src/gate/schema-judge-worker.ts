// The worker of src/gate/schema-judge.ts: checks documents against request
// and response schemas that may be costly, compiled here as the registry
// compiles them. The gate ends this thread when a check outlives its deadline.
import { parentPort } from 'node:worker_threads';
import type { ValidateFunction } from 'ajv';
import { compileActionSchema, createSchemaAjv, validationResult, type ValidationResult } from './action-schema.js';

export interface JudgeJob {
  id: number;
  /** The schema's key (schema-judge.ts); `schema` comes with it when this worker may not have it. */
  key: number;
  schema?: Record<string, unknown>;
  /** The document as JSON text: parsed here as the gate parsed it. */
  text: string;
}

/** `started`: the schema is compiled and the document parsed; the check itself begins (its deadline with it). */
export type JudgeAnswer = { id: number; result: ValidationResult } | { id: number; missing: true } | { id: number; started: true };

/** Schemas kept compiled; an older one is compiled again when it next comes with its job. */
const KEPT = 256;
// Every error: the full report of a document the main thread refused at its first, or could not check.
const ajv = createSchemaAjv('every');
const compiled = new Map<number, ValidateFunction>();

parentPort!.on('message', (job: JudgeJob) => {
  let validate = compiled.get(job.key);
  if (!validate) {
    if (!job.schema) return parentPort!.postMessage({ id: job.id, missing: true } satisfies JudgeAnswer);
    try {
      validate = compileActionSchema(ajv, job.schema, false);
    } catch (e) {
      // The gate compiled it at load: only another ajv could refuse it now.
      const result: ValidationResult = { ok: false, errors: [{ pointer: '', message: `the schema could not be compiled to check it (${(e as Error).message})` }] };
      return parentPort!.postMessage({ id: job.id, result } satisfies JudgeAnswer);
    }
    if (compiled.size >= KEPT) compiled.delete(compiled.keys().next().value as number);
    compiled.set(job.key, validate);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(job.text);
  } catch (e) {
    const result: ValidationResult = { ok: false, errors: [{ pointer: '', message: `not JSON (${(e as Error).message})` }] };
    return parentPort!.postMessage({ id: job.id, result } satisfies JudgeAnswer);
  }
  parentPort!.postMessage({ id: job.id, started: true } satisfies JudgeAnswer);
  parentPort!.postMessage({ id: job.id, result: validationResult(validate, doc) } satisfies JudgeAnswer);
});
