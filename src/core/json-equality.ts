// JSON Schema's const, enum and uniqueItems as ajv checks them, but with
// JSON's equality. ajv compares values with fast-deep-equal, which reads an
// object's constructor, valueOf and toString: a document's key of that name
// changed the answer (two {"constructor": {}} were different items, `not
// enum` let the very value it forbids through, {"valueOf": 1} threw). And
// ajv's uniqueItems, for items of scalar types, remembered the items it had
// seen as keys of a plain object, where "__proto__" sets the prototype: two
// "__proto__" items were never the same. Here values are equal when JSON says
// so (own keys only, in any order; 1 and 1.0, 0 and -0 alike), and seen items
// are kept in a Map. The messages and their params are ajv's.
import { createRequire } from 'node:module';
import type { CodeKeywordDefinition, KeywordCxt } from 'ajv';
import type { Ajv } from './fixed-validators.js';

type Code = unknown;
type Tag = (strings: TemplateStringsArray, ...values: unknown[]) => Code;
interface Gen {
  let(prefix: string, value?: Code): Code;
  forOf(prefix: string, iterable: Code, body: (v: Code) => void): Gen;
  const(prefix: string, value: Code): Code;
  name(prefix: string): Code;
  assign(lhs: Code, rhs: Code): Gen;
  if(condition: Code, then?: Code | (() => void)): Gen;
  code(c: Code): Gen;
  for(iteration: Code, body: () => void): Gen;
  label(label: Code): Gen;
  break(label?: Code): Gen;
}

// ajv's code generator and helpers (CommonJS, no exports map): what its own
// keywords use, loaded at the first schema compiled (a process that only
// runs the build's validators never loads them).
const require = createRequire(import.meta.url);
type DataTypes = {
  getSchemaTypes(schema: unknown): string[];
  checkDataTypes(types: string[], data: Code, strictNumbers: unknown, correct: number): Code;
  DataType: { Wrong: number };
};
let ajvCode: { codegen: { _: Tag; str: Tag }; types: DataTypes; useFunc(gen: Gen, f: unknown): Code } | undefined;
const code = () =>
  (ajvCode ??= {
    codegen: require('ajv/dist/compile/codegen') as { _: Tag; str: Tag },
    types: require('ajv/dist/compile/validate/dataType') as DataTypes,
    useFunc: (require('ajv/dist/compile/util') as { useFunc(gen: Gen, f: unknown): Code }).useFunc,
  });
const _: Tag = (strings, ...values) => code().codegen._(strings, ...values);
const str: Tag = (strings, ...values) => code().codegen.str(strings, ...values);
const useFunc = (gen: Gen, f: unknown): Code => code().useFunc(gen, f);

/**
 * Whether two JSON values are equal as JSON: own keys only, compared
 * whatever their names. Self-contained: ajv's standalone validators
 * (dist/generated/) carry its source (`code`).
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const list = Array.isArray(a);
  if (list !== Array.isArray(b)) return false;
  if (list) {
    const x = a as unknown[];
    const y = b as unknown[];
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!jsonEqual(x[i], y[i])) return false;
    return true;
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}
(jsonEqual as unknown as { code: string }).code = `(${jsonEqual.toString()})`;

/** Part of the generated validators' digests (fixed-validators.ts): a change here makes them stale. */
export const JSON_EQUALITY_REVISION = 'json-equal-1';

const constKeyword: CodeKeywordDefinition = {
  keyword: 'const',
  error: { message: 'must be equal to constant', params: ({ schemaCode }) => _`{allowedValue: ${schemaCode}}` as never },
  code(cxt: KeywordCxt) {
    const { data, schemaCode, schema } = cxt;
    const gen = cxt.gen as unknown as Gen;
    if (schema !== null && typeof schema === 'object') cxt.fail(_`!${useFunc(gen, jsonEqual)}(${data}, ${schemaCode})` as never);
    else cxt.fail(_`${schema} !== ${data}` as never);
  },
};

const enumKeyword: CodeKeywordDefinition = {
  keyword: 'enum',
  schemaType: 'array',
  error: { message: 'must be equal to one of the allowed values', params: ({ schemaCode }) => _`{allowedValues: ${schemaCode}}` as never },
  code(cxt: KeywordCxt) {
    const { data, schema, schemaCode } = cxt;
    const gen = cxt.gen as unknown as Gen;
    if ((schema as unknown[]).length === 0) throw new Error('enum must have non-empty array');
    const valid = gen.let('valid', false);
    const eql = useFunc(gen, jsonEqual);
    gen.forOf('v', schemaCode, (v) => gen.if(_`${eql}(${data}, ${v})`, () => gen.assign(valid, true).break()));
    cxt.pass(valid as never);
  },
};

const uniqueItems: CodeKeywordDefinition = {
  keyword: 'uniqueItems',
  type: 'array',
  schemaType: 'boolean',
  error: {
    message: ({ params: { i, j } }) => str`must NOT have duplicate items (items ## ${j} and ${i} are identical)` as never,
    params: ({ params: { i, j } }) => _`{i: ${i}, j: ${j}}` as never,
  },
  code(cxt: KeywordCxt) {
    const { data, schema, parentSchema, it } = cxt;
    const gen = cxt.gen as unknown as Gen;
    if (!schema) return;
    const valid = gen.let('valid', true);
    const itemTypes = parentSchema.items ? code().types.getSchemaTypes(parentSchema.items) : [];
    const i = gen.let('i', _`${data}.length`);
    const j = gen.let('j');
    cxt.setParams({ i, j } as never);
    // Seen items by value only when every item is of a scalar type: `items` says so and no prefixItems
    // comes first (an item prefixItems checks is of any type: ajv skipped it as of a wrong type).
    const scalars = itemTypes.length > 0 && !itemTypes.some((t) => t === 'object' || t === 'array') && parentSchema.prefixItems === undefined;
    gen.if(_`${i} > 1`, () => (scalars ? bySeen() : pairwise()));
    cxt.ok(valid as never);

    function bySeen(): void {
      const item = gen.name('item');
      const wrongType = code().types.checkDataTypes(itemTypes, item, it.opts.strictNumbers, code().types.DataType.Wrong);
      const seen = gen.const('seen', _`new Map()`);
      gen.for(_`;${i}--;`, () => {
        gen.let(item as string, _`${data}[${i}]`);
        gen.if(wrongType, _`continue`);
        // (A Map tells the number 1 from the string "1": no mark on strings, as ajv's object needed.)
        gen
          .if(_`${seen}.has(${item})`, () => {
            gen.assign(j, _`${seen}.get(${item})`);
            cxt.error();
            gen.assign(valid, false).break();
          })
          .code(_`${seen}.set(${item}, ${i})`);
      });
    }

    function pairwise(): void {
      const eql = useFunc(gen, jsonEqual);
      const outer = gen.name('outer');
      gen.label(outer).for(_`;${i}--;`, () =>
        gen.for(_`${j} = ${i}; ${j}--;`, () =>
          gen.if(_`${eql}(${data}[${i}], ${data}[${j}])`, () => {
            cxt.error();
            gen.assign(valid, false).break(outer);
          }),
        ),
      );
    }
  },
};

/** The ajv, its const, enum and uniqueItems these. */
export function withJsonEquality(ajv: Ajv): Ajv {
  for (const def of [constKeyword, enumKeyword, uniqueItems]) {
    ajv.removeKeyword(def.keyword as string);
    ajv.addKeyword(def);
  }
  return ajv;
}
