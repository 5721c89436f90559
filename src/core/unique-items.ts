// JSON Schema's uniqueItems as ajv checks it, with one change: its linear
// path (items of scalar types only) remembers the items it has seen in a Map,
// not in a plain object. Used as an object's key, the string "__proto__"
// sets the object's prototype instead of a property, so ajv never saw two
// "__proto__" items as the same and accepted ["__proto__", "__proto__"].
// Items of other types are compared pairwise, as ajv does.
import { createRequire } from 'node:module';
import type { CodeKeywordDefinition, KeywordCxt } from 'ajv';
import type { Ajv } from './fixed-validators.js';

type Code = unknown;
type Tag = (strings: TemplateStringsArray, ...values: unknown[]) => Code;
interface Gen {
  let(prefix: string, value?: Code): Code;
  const(prefix: string, value: Code): Code;
  name(prefix: string): Code;
  assign(lhs: Code, rhs: Code): Gen;
  if(condition: Code, then?: Code | (() => void)): Gen;
  code(c: Code): Gen;
  for(iteration: Code, body: () => void): Gen;
  label(label: Code): Gen;
  break(label?: Code): Gen;
}

// ajv's code generator and helpers (CommonJS, no exports map): what its own uniqueItems uses.
const require = createRequire(import.meta.url);
const { _, str } = require('ajv/dist/compile/codegen') as { _: Tag; str: Tag };
const types = require('ajv/dist/compile/validate/dataType') as {
  getSchemaTypes(schema: unknown): string[];
  checkDataTypes(types: string[], data: Code, strictNumbers: unknown, correct: number): Code;
  DataType: { Wrong: number };
};
const { useFunc } = require('ajv/dist/compile/util') as { useFunc(gen: Gen, f: unknown): Code };
const equal = (require('ajv/dist/runtime/equal') as { default: unknown }).default;

/** Part of the generated validators' digests (fixed-validators.ts): a change here makes them stale. */
export const UNIQUE_ITEMS_REVISION = 'map-1';

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
    const itemTypes = parentSchema.items ? types.getSchemaTypes(parentSchema.items) : [];
    const i = gen.let('i', _`${data}.length`);
    const j = gen.let('j');
    cxt.setParams({ i, j } as never);
    const scalars = itemTypes.length > 0 && !itemTypes.some((t) => t === 'object' || t === 'array');
    gen.if(_`${i} > 1`, () => (scalars ? bySeen() : pairwise()));
    cxt.ok(valid as never);

    function bySeen(): void {
      const item = gen.name('item');
      const wrongType = types.checkDataTypes(itemTypes, item, it.opts.strictNumbers, types.DataType.Wrong);
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
      const eql = useFunc(gen, equal);
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

/** The ajv, its uniqueItems this one. */
export function withUniqueItems(ajv: Ajv): Ajv {
  ajv.removeKeyword('uniqueItems');
  ajv.addKeyword(uniqueItems);
  return ajv;
}
