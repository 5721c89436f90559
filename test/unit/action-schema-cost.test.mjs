// Which request and response schemas are checked on the gate's main thread
// (src/gate/action-schema.ts: those whose cost is bounded by the schema's size
// times the document's), and the worker that checks the others under a
// deadline (src/gate/schema-judge.ts): the same verdicts and messages as a
// check on the main thread, an overdue check ended and refused while other
// checks go on, a full line refused as busy except for answers that must wait.
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import assert from 'node:assert/strict';
import { actionSchemaCheck, compileActionSchema, createSchemaAjv, validationResult } from '../../dist/gate/action-schema.js';
import { Registry } from '../../dist/gate/registry.js';
import { SchemaJudge } from '../../dist/gate/schema-judge.js';
import { openDb } from '../../dist/ledger/db.js';

/** `^(a|a?)+$` on n a's and a b backtracks for about 2^(n/2) steps: seconds at n = 30 on the main thread. */
const BACKTRACKS = { type: 'object', properties: { s: { type: 'string', pattern: '^(a|a?)+$' } } };
const backtracking = (n) => ({ s: `${'a'.repeat(n)}b` });

test('only the schemas latchgate ships are checked on the main thread: an operator\'s is not, whatever it holds; the same schema as a built-in one is', () => {
  const ajv = createSchemaAjv();
  for (const schema of [BACKTRACKS, { type: 'object', properties: { n: { type: 'integer' } } }, { type: 'array', items: { enum: [1, 2, 3] } }]) {
    assert.equal(actionSchemaCheck(ajv, schema).shipped, false, JSON.stringify(schema));
  }
  const db = openDb(':memory:');
  const builtin = Registry.open(db, [], { builtin: true }).get('http_fetch').manifest.io.request_schema;
  assert.equal(actionSchemaCheck(ajv, structuredClone(builtin)).shipped, true);
  db.close();
});

test('the built-in actions\' schemas are checked on the main thread: their patterns anchored with no repeated group, their unique arrays short lists of scalars', () => {
  const db = openDb(':memory:');
  const r = Registry.open(db, [], { builtin: true });
  const ajv = createSchemaAjv();
  let patterns = 0;
  const lint = (v, where) => {
    if (typeof v !== 'object' || v === null) return;
    if (typeof v.pattern === 'string') {
      patterns++;
      assert.match(v.pattern, /^\^/, `${where}: ${v.pattern} is anchored`);
      assert.doesNotMatch(v.pattern, /\)[*+?{]/, `${where}: ${v.pattern} repeats no group`);
    }
    if (v.uniqueItems === true) {
      assert.ok(Number.isInteger(v.maxItems) && v.maxItems <= 100, `${where}: uniqueItems with maxItems <= 100`);
      assert.ok(['string', 'integer', 'number'].includes(v.items?.type), `${where}: uniqueItems over scalars`);
    }
    for (const x of Object.values(v)) lint(x, where);
  };
  for (const { manifest } of r.list()) {
    for (const schema of [manifest.io.request_schema, manifest.io.response_schema].filter(Boolean)) {
      assert.equal(actionSchemaCheck(ajv, schema).shipped, true, `${manifest.action_id}: run npm run build (its generated validator)`);
      lint(schema, manifest.action_id);
    }
  }
  assert.ok(patterns >= 8, `${patterns} patterns looked at`);
  db.close();
});

test('the worker gives the verdict and every message a check on the main thread gives, on documents JSON can carry; the main thread stops at the first', async (t) => {
  const judge = new SchemaJudge({ deadlineMs: 5000, workers: 2, queueLimit: 8, callerQueueLimit: 8 });
  t.after(() => judge.close());
  const ajv = createSchemaAjv();
  const every = createSchemaAjv('every');
  const schemas = [
    BACKTRACKS,
    { type: 'object', required: ['__proto__', 'toString'], properties: { __proto__: { type: 'integer' } }, patternProperties: { '^x-': { type: 'string' } } },
    { type: 'array', items: { type: 'object' }, uniqueItems: true },
    { $defs: { n: { type: 'object', properties: { c: { $ref: '#/$defs/n' }, v: { type: 'integer', maximum: 3 } } } }, $ref: '#/$defs/n' },
  ];
  const docs = [{ s: 'aaa' }, { s: 'b' }, JSON.parse('{"__proto__": 1, "toString": 2}'), JSON.parse('{"__proto__": "x"}'), {}, { 'x-a': 1, 'x-b': 'ok' }, [{ a: 1 }, { a: 1 }], [{ a: 1 }, { a: 2 }], { c: { c: { v: 4 } } }, { c: { v: 1 } }, 'text', null];
  let compared = 0;
  for (const schema of schemas) {
    const c = actionSchemaCheck(ajv, schema);
    const all = compileActionSchema(every, schema, false);
    for (const doc of docs) {
      const judged = await judge.judge('p', schema, doc);
      assert.deepEqual(judged, validationResult(all, doc), `${JSON.stringify(schema)} on ${JSON.stringify(doc)}`);
      const first = validationResult(c.validate, doc);
      assert.equal(first.ok, judged.ok);
      if (!first.ok) assert.deepEqual(first.errors, [judged.errors[0]]);
      compared++;
    }
  }
  assert.equal(compared, schemas.length * docs.length);
  // What JSON cannot carry is refused, not judged as something else.
  const cyclic = {};
  cyclic.self = cyclic;
  assert.equal((await judge.judge('p', BACKTRACKS, cyclic)).ok, false);
});

test('an overdue check is ended at its deadline and refused as unchecked; checks in the other worker answer meanwhile, and the next check gets a new worker', async (t) => {
  const judge = new SchemaJudge({ deadlineMs: 400, workers: 2, queueLimit: 8, callerQueueLimit: 8 });
  t.after(() => judge.close());
  const order = [];
  const slow = judge.judge('p', BACKTRACKS, backtracking(60)).then((r) => (order.push('slow'), r));
  const quick = judge.judge('p', BACKTRACKS, { s: 'aa' }).then((r) => (order.push('quick'), r));
  assert.deepEqual(await quick, { ok: true });
  const r = await slow;
  assert.equal(r.ok, false);
  assert.equal(r.unchecked, 'timeout');
  assert.match(r.errors[0].message, /took longer than 400 ms \(\[gate\] schema_check_ms/);
  assert.deepEqual(order, ['quick', 'slow']);
  assert.deepEqual(await judge.judge('p', BACKTRACKS, { s: 'a' }), { ok: true }, 'a new worker after the old one was ended');
  assert.deepEqual((await judge.judge('p', BACKTRACKS, { s: 'ab' })).errors, [{ pointer: '/s', message: 'must match pattern "^(a|a?)+$"' }]);
});

test('every checker starts with the first check, so that while a costly document holds one the next check meets a worker started, not one starting; an ended one is replaced at the next check', async (t) => {
  const started = [];
  const onWorker = (w) => started.push(w.threadId);
  process.on('worker', onWorker);
  t.after(() => process.off('worker', onWorker));
  const judge = new SchemaJudge({ deadlineMs: 400, workers: 3, queueLimit: 8, callerQueueLimit: 8 });
  t.after(() => judge.close());
  assert.equal(started.length, 0, 'a judge that checked nothing started a worker');
  assert.deepEqual(await judge.judge('p', BACKTRACKS, { s: 'a' }), { ok: true });
  assert.equal(started.length, 3, `the first check started ${started.length} of 3 workers`);
  await judge.judge('p', BACKTRACKS, { s: 'aa' });
  assert.equal(started.length, 3, 'a check started a worker beside three idle ones');
  assert.equal((await judge.judge('p', BACKTRACKS, backtracking(60))).unchecked, 'timeout');
  assert.deepEqual(await judge.judge('p', BACKTRACKS, { s: 'aaa' }), { ok: true });
  assert.equal(started.length, 4, 'the ended worker was not replaced, or more than it');
});

test('checkers left idle, their judge never closed, keep no process up', (t) => {
  const judge = new URL('../../dist/gate/schema-judge.js', import.meta.url).href;
  const script = join(mkdtempSync(join(tmpdir(), 'latchgate-judge-')), 'idle.mjs');
  t.after(() => rmSync(dirname(script), { recursive: true, force: true }));
  writeFileSync(script, `import { SchemaJudge } from ${JSON.stringify(judge)};
    const j = new SchemaJudge({ deadlineMs: 1000, workers: 2, queueLimit: 8, callerQueueLimit: 8 });
    console.log(JSON.stringify(await j.judge('p', { type: 'object' }, {})));`);
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.signal, null, `the process did not end by itself: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '{"ok":true}');
});

test('past the line\'s limit a check is refused as busy, unless it must wait (a provider\'s answer); closing refuses what waits', async (t) => {
  const judge = new SchemaJudge({ deadlineMs: 300, workers: 1, queueLimit: 1, callerQueueLimit: 8 });
  t.after(() => judge.close());
  const first = judge.judge('p', BACKTRACKS, backtracking(60));
  const second = judge.judge('p', BACKTRACKS, { s: 'a' });
  const refused = await judge.judge('p', BACKTRACKS, { s: 'a' });
  assert.equal(refused.unchecked, 'busy');
  assert.match(refused.errors[0].message, /1 schema checks are already waiting/);
  const waited = judge.judge('p', BACKTRACKS, { s: 'aa' }, true);
  assert.equal((await first).unchecked, 'timeout');
  assert.deepEqual(await second, { ok: true });
  assert.deepEqual(await waited, { ok: true });
  const pending = judge.judge('p', BACKTRACKS, backtracking(60));
  const queued = judge.judge('p', BACKTRACKS, { s: 'a' });
  await judge.close();
  assert.equal((await pending).unchecked, 'busy');
  assert.equal((await queued).unchecked, 'busy');
  assert.equal((await judge.judge('p', BACKTRACKS, { s: 'a' })).unchecked, 'busy', 'closed');
});

test('callers take turns: a line of one caller\'s costly documents delays another caller\'s check by one deadline, and past its own limit is refused', async (t) => {
  const judge = new SchemaJudge({ deadlineMs: 300, workers: 1, queueLimit: 64, callerQueueLimit: 2 });
  t.after(() => judge.close());
  const order = [];
  const note = (name) => (r) => (order.push(name), r);
  const attacks = [1, 2, 3].map((i) => judge.judge('mallory', BACKTRACKS, backtracking(60)).then(note(`mallory ${i}`)));
  const refused = await judge.judge('mallory', BACKTRACKS, backtracking(60));
  assert.equal(refused.unchecked, 'busy');
  assert.match(refused.errors[0].message, /2 of this caller's schema checks are already waiting/);
  const victim = judge.judge('alice', BACKTRACKS, { s: 'aa' }).then(note('alice'));
  assert.deepEqual(await victim, { ok: true });
  for (const r of await Promise.all(attacks)) assert.equal(r.unchecked, 'timeout');
  assert.deepEqual(order, ['mallory 1', 'alice', 'mallory 2', 'mallory 3'], 'alice waited for the check running, not for the line');
});

test('a verdict keeps at most 20 errors, each pointer and message cut short: a megabyte-long key is not repeated into the answer', () => {
  const ajv = createSchemaAjv('every');
  const v = compileActionSchema(ajv, { type: 'object', additionalProperties: { type: 'object', properties: Object.fromEntries('abcdefghijklmnopqrstuvwxyz'.split('').map((k) => [k, { type: 'string' }])) } }, false);
  const key = 'k'.repeat(1 << 20);
  const r = validationResult(v, { [key]: Object.fromEntries('abcdefghijklmnopqrstuvwxyz'.split('').map((k) => [k, 1])) });
  assert.equal(r.ok, false);
  assert.equal(r.errors.length, 20);
  for (const e of r.errors) {
    assert.ok(e.pointer.length <= 257 && e.pointer.endsWith('…'), e.pointer.slice(0, 40));
    assert.ok(e.message.length <= 513);
  }
});

test('const, enum and uniqueItems compare as JSON does (two "__proto__" or {"constructor": {}} items are the same), on the main thread, in the worker and in the built-in actions\' generated validators', async (t) => {
  const judge = new SchemaJudge({ deadlineMs: 5000, workers: 1, queueLimit: 8, callerQueueLimit: 8 });
  t.after(() => judge.close());
  const ajv = createSchemaAjv();
  const dup = (i, j) => ({ ok: false, errors: [{ pointer: '', message: `must NOT have duplicate items (items ## ${i} and ${j} are identical)` }] });
  for (const [schema, doc, verdict] of [
    [{ type: 'array', items: { type: 'string' }, uniqueItems: true }, ['__proto__', '__proto__'], dup(1, 0)],
    [{ type: 'array', items: { type: 'string' }, uniqueItems: true }, ['a', 'b', 'a'], dup(2, 0)],
    [{ type: 'array', items: { type: 'string' }, uniqueItems: true }, ['__proto__', 'constructor', 'toString'], { ok: true }],
    [{ type: 'array', items: { type: ['string', 'integer'] }, uniqueItems: true }, [1, '1', '__proto_', '__proto__'], { ok: true }],
    [{ type: 'array', items: { type: ['string', 'integer'] }, uniqueItems: true }, ['__proto__', 2, '__proto__'], dup(2, 0)],
    [{ type: 'array', uniqueItems: true }, [{ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }], dup(0, 1)],
    [{ type: 'array', uniqueItems: true }, [{ a: 1, b: 2 }, { b: 2, a: 1 }], dup(0, 1)],
    [{ type: 'array', uniqueItems: true }, [{ constructor: {} }, { constructor: {} }], dup(0, 1)],
    [{ type: 'array', uniqueItems: true }, [[{ a: { constructor: {} } }], [{ a: { constructor: {} } }]], dup(0, 1)],
    [{ type: 'array', uniqueItems: true }, [{ valueOf: 1 }, { valueOf: 2 }, { toString: 1 }, JSON.parse('{"__proto__": 1}'), JSON.parse('{"__proto__": 2}')], { ok: true }],
    [{ type: 'array', uniqueItems: true }, [1, 1.0], dup(0, 1)],
    [{ type: 'array', prefixItems: [{}, {}], minItems: 2, maxItems: 2, items: { type: 'string' }, uniqueItems: true }, [1, 1], dup(0, 1)],
    [{ not: { enum: [{ constructor: {} }] } }, { constructor: {} }, { ok: false, errors: [{ pointer: '', message: 'must NOT be valid' }] }],
    [{ enum: [{ valueOf: 1 }, 'x'] }, { valueOf: 1 }, { ok: true }],
    [{ enum: [{ a: 1 }, 'x'] }, { a: 1, b: 1 }, { ok: false, errors: [{ pointer: '', message: 'must be equal to one of the allowed values' }] }],
    [{ const: { constructor: {} } }, { constructor: {} }, { ok: true }],
    [{ const: { a: [1] } }, { a: [1], toString: 1 }, { ok: false, errors: [{ pointer: '', message: 'must be equal to constant' }] }],
  ]) {
    const what = `${JSON.stringify(schema)} on ${JSON.stringify(doc)}`;
    assert.deepEqual(validationResult(compileActionSchema(ajv, schema), doc), verdict, what);
    assert.deepEqual(await judge.judge('p', schema, doc), verdict, `in the worker: ${what}`);
  }
  const db = openDb(':memory:');
  const r = Registry.open(db, [], { builtin: true });
  const issue = { owner: 'octocat', repo: 'hello-world', title: 't', body: '' };
  assert.deepEqual(r.validateRequest('github_create_issue', { ...issue, labels: ['bug', 'help'] }), { ok: true });
  const refused = await r.validateRequest('github_create_issue', { ...issue, labels: ['__proto__', '__proto__'] });
  assert.equal(refused.ok, false);
  assert.match(refused.errors[0].message, /duplicate items/);
  await r.close();
  db.close();
});

test('a refused document whose list of errors outlives the deadline is refused with the first error found', async (t) => {
  const judge = new SchemaJudge({ deadlineMs: 300, workers: 1, queueLimit: 8, callerQueueLimit: 8 });
  t.after(() => judge.close());
  const fields = Array.from({ length: 8 }, (_, i) => `f${i}`);
  const branch = (i) => ({ type: 'object', required: ['kind', ...fields], properties: { kind: { const: `t${i}` }, ...Object.fromEntries(fields.map((f) => [f, { type: 'string' }])) } });
  // Every {} breaks 81 rules: a few hundred thousand of them, millions of errors to list.
  const schema = { type: 'array', items: { anyOf: Array.from({ length: 10 }, (_, i) => branch(i)) } };
  const doc = new Array(300_000).fill({});
  const r = await judge.judge('p', schema, doc);
  assert.equal(r.unchecked, undefined, 'refused, not unchecked');
  assert.deepEqual(r, validationResult(compileActionSchema(createSchemaAjv(), schema), doc), 'the verdict of the check that stops at the first error');
  assert.ok(r.errors.every((e) => e.pointer.startsWith('/0')));
});

test('providers\' answers that must wait do not count against the limits: a flood of one caller\'s answers turns no other caller\'s request away', async (t) => {
  const judge = new SchemaJudge({ deadlineMs: 300, workers: 1, queueLimit: 2, callerQueueLimit: 2 });
  t.after(() => judge.close());
  const order = [];
  const note = (name) => (r) => (order.push(name), r);
  const running = judge.judge('mallory', BACKTRACKS, backtracking(60)).then(note('mallory running'));
  const answers = Array.from({ length: 5 }, (_, i) => judge.judge('mallory', BACKTRACKS, { s: 'a' }, true).then(note(`mallory answer ${i}`)));
  const request = judge.judge('alice', BACKTRACKS, { s: 'aa' }).then(note('alice'));
  assert.deepEqual(await request, { ok: true }, 'not refused as busy');
  assert.equal((await running).unchecked, 'timeout');
  for (const r of await Promise.all(answers)) assert.deepEqual(r, { ok: true });
  assert.deepEqual(order.slice(0, 2), ['mallory running', 'alice'], 'alice took her turn before the flood');
});
