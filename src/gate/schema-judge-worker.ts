// The worker of src/gate/schema-judge.ts: checks documents against request
// and response schemas, compiled here as the registry compiles them, first to
// the first error (the verdict) and then, for a refused document, for every
// error (the list the refusal shows). The gate ends this thread when a check
// outlives its deadline.
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

/**
 * `started`: the schema is compiled and the document parsed; the check itself
 * begins (its deadline with it). `first`: refused, at its first error; the
 * list of every error follows as `result`.
 */
export type JudgeAnswer = { id: number; result: ValidationResult } | { id: number; first: ValidationResult } | { id: number; missing: true } | { id: number; started: true };

/** Schemas kept compiled; an older one is compiled again when it next comes with its job. */
const KEPT = 256;
const first = createSchemaAjv('first');
const every = createSchemaAjv('every');
const compiled = new Map<number, { first: ValidateFunction; every: ValidateFunction }>();

const answer = (a: JudgeAnswer) => parentPort!.postMessage(a);

parentPort!.on('message', (job: JudgeJob) => {
  let validators = compiled.get(job.key);
  if (!validators) {
    if (!job.schema) return answer({ id: job.id, missing: true });
    try {
      validators = { first: compileActionSchema(first, job.schema), every: compileActionSchema(every, job.schema, false) };
    } catch (e) {
      // The gate compiled it at load: only another ajv could refuse it now.
      return answer({ id: job.id, result: { ok: false, errors: [{ pointer: '', message: `the schema could not be compiled to check it (${(e as Error).message})` }] } });
    }
    if (compiled.size >= KEPT) compiled.delete(compiled.keys().next().value as number);
    compiled.set(job.key, validators);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(job.text);
  } catch (e) {
    return answer({ id: job.id, result: { ok: false, errors: [{ pointer: '', message: `not JSON (${(e as Error).message})` }] } });
  }
  answer({ id: job.id, started: true });
  const verdict = validationResult(validators.first, doc);
  if (verdict.ok) return answer({ id: job.id, result: verdict });
  answer({ id: job.id, first: verdict });
  const all = validationResult(validators.every, doc);
  // Both stop at the same verdict; were they ever to differ, the refusal stands.
  answer({ id: job.id, result: all.ok ? verdict : all });
});
