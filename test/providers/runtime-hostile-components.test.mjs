// A hostile component against the glue generator and the worker: names that
// would be JavaScript in the generated glue, a world with a resource whose
// destructor a garbage collection would run outside any call, canonical
// built-ins whose JS machinery runs guest code later, values the canonical
// ABI does not allow (a byte list past the end of memory, invalid UTF-8), and
// a worker that fails while idle. Each is refused or trapped; next to them a
// well-formed component of the same shape runs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco';
import { ProviderRuntime } from '../../dist/providers/runtime.js';
import { WorkerPool } from '../../dist/providers/runtime-pool.js';
import { HostBridge } from '../../dist/providers/runtime-bridge.js';
import { checkWorld } from '../../dist/providers/component-world.js';
import { LIMITS, WIT } from '../helpers/providers.mjs';

const dir = mkdtempSync(join(tmpdir(), 'lg-prov-hostile-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const MARK = join(dir, 'ran');

async function load(name, wat) {
  const bytes = await parse(wat);
  const file = join(dir, `${name}.wasm`);
  writeFileSync(file, bytes);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const rt = new ProviderRuntime({ cacheDir: join(dir, 'cache'), poolSize: 1 });
  const loaded = await rt.load(file, digest).then(() => undefined, (e) => e);
  return { rt, digest, loaded };
}

/** JavaScript that, should it ever run, writes MARK. */
const PAYLOAD = `x'];process.getBuiltinModule('node:fs').writeFileSync(${JSON.stringify(MARK)}, 'ran');//`;

/** A provider whose execute answers {"output":"hi"}; `exportName` is its core export's name, `extra` more of the core module. */
const provider = (exportName, extra = '') => `(component
  (core module $m
    (memory (export "memory") 1)
    (data (i32.const 100) "{\\"output\\":\\"hi\\"}")
    (data (i32.const 0) "\\00\\00\\00\\00\\64\\00\\00\\00\\0f\\00\\00\\00")
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 1024)
    (func $e (param i32 i32) (result i32) i32.const 0)
    (export ${JSON.stringify(exportName)} (func $e))
    (export "x" (func $e))
    ${extra})
  (core instance $i (instantiate $m))
  (type $r (result string (error string)))
  (type $ft (func (param "task-json" string) (result $r)))
  (func $f (type $ft) (canon lift (core func $i ${JSON.stringify(exportName)}) (memory (core memory $i "memory")) (realloc (core func $i "cabi_realloc"))))
  (export "execute" (func $f))
)`;

test('a core export named with JavaScript in it is refused before any glue is made; the same provider with a plain name runs', async (t) => {
  const bad = await load('export-name', provider(PAYLOAD));
  t.after(() => bad.rt.close());
  assert.ok(bad.loaded instanceof Error, 'the component was loaded');
  assert.match(bad.loaded.message, /core import or export named .*refused/);
  const r = await bad.rt.run(bad.digest, {}, { ...LIMITS, required_imports: [] }, {});
  assert.equal(r.ok, false);
  assert.equal(existsSync(MARK), false, 'the name ran as JavaScript');

  const good = await load('export-plain', provider('run'));
  t.after(() => good.rt.close());
  assert.equal(good.loaded, undefined, String(good.loaded?.message));
  const ok = await good.rt.run(good.digest, {}, { ...LIMITS, required_imports: [] }, {});
  assert.equal(ok.ok, true, JSON.stringify(ok));
  assert.equal(ok.output, 'hi');
});

test("names in core imports and in the component's own core instances are read too", async (t) => {
  const importName = `(component
    (core module $h (func (export "f")))
    (core instance $hi (instantiate $h))
    (core module $m (import ${JSON.stringify(PAYLOAD)} "f" (func)))
    (core instance $i (instantiate $m (with ${JSON.stringify(PAYLOAD)} (instance $hi))))
  )`;
  const inlineExport = `(component
    (core module $h (func (export "f")))
    (core instance $hi (instantiate $h))
    (core instance $inline (export ${JSON.stringify(PAYLOAD)} (func $hi "f")) (export "f" (func $hi "f")))
    (core module $m (import "m" "f" (func)))
    (core instance $i (instantiate $m (with "m" (instance $inline))))
  )`;
  for (const [name, wat] of [['import-name', importName], ['inline-export', inlineExport]]) {
    const c = await load(name, wat);
    t.after(() => c.rt.close());
    assert.ok(c.loaded instanceof Error, `${name}: loaded`);
    assert.match(c.loaded.message, /core import or export named .*refused/, name);
  }
  assert.equal(existsSync(MARK), false);
});

test('a world with anything but execute and latchgate:io imports is refused: a resource export, a second function', async (t) => {
  const resource = `(component
    (core module $dt (func (export "dtor") (param i32) unreachable))
    (core instance $dti (instantiate $dt))
    (type $R (resource (rep i32) (dtor (core func $dti "dtor"))))
    (instance $ii (export "r" (type $R)))
    (export "my:pkg/res" (instance $ii))
  )`;
  const c = await load('resource', resource);
  t.after(() => c.rt.close());
  assert.ok(c.loaded instanceof Error);
  assert.match(c.loaded.message, /world has "export my:pkg\/res;".*refused/);

  const execute = 'export execute: func(task-json: string) -> result<string, string>;';
  const world = (...lines) => `package root:component;\n\nworld root {\n${lines.map((l) => `  ${l}\n`).join('')}}\n`;
  assert.doesNotThrow(() => checkWorld(world('import latchgate:io/http@0.1.0;', 'import latchgate:io/log@0.1.0;', '', execute)));
  for (const bad of [
    world(execute, 'export other: func();'),
    world('import wasi:cli/environment@0.2.0;', execute),
    world('export execute: func(task-json: string) -> result<string, list<r>>;'),
    world(execute, execute),
    world(),
    'no world at all',
  ]) assert.throws(() => checkWorld(bad), /refused/, bad);
});

test('a component that uses a canonical built-in beyond lift, lower and its own resources is refused', async (t) => {
  for (const builtin of ['waitable-set.new', 'context.get i32 0', 'backpressure.inc']) {
    const c = await load(`builtin-${builtin.split(' ')[0]}`, `(component (core func (canon ${builtin})))`);
    t.after(() => c.rt.close());
    assert.ok(c.loaded instanceof Error, `${builtin}: loaded`);
    assert.match(c.loaded.message, /uses the canonical built-in .*refused/, builtin);
  }
});

/** A fs-provider whose execute first calls write(path, body, mode) with the given pointers and lengths, then answers {"output":1}. */
async function fsWriter(name, [pathPtr, pathLen, bodyPtr, bodyLen], path = 'out.txt\\ff\\fe') {
  const core = await parse(`(module
    (import "latchgate:io/fs@0.1.0" "write" (func $w (param i32 i32 i32 i32 i32 i32)))
    (memory (export "memory") 1)
    (data (i32.const 64) "{\\"output\\":1}${path}")
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 2048))
    (func (export "execute") (param i32 i32) (result i32)
      (call $w (i32.const ${pathPtr}) (i32.const ${pathLen}) (i32.const ${bodyPtr}) (i32.const ${bodyLen}) (i32.const 1) (i32.const 512))
      (i32.store8 (i32.const 16) (i32.const 0)) (i32.store (i32.const 20) (i32.const 64))
      (i32.store (i32.const 24) (i32.const 12)) (i32.const 16))
    (func (export "cabi_post_execute") (param i32)))`);
  const bytes = await componentNew(await componentEmbed({ binary: core, witSource: WIT, world: 'fs-provider' }));
  const file = join(dir, `${name}.wasm`);
  writeFileSync(file, bytes);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const rt = new ProviderRuntime({ cacheDir: join(dir, 'cache'), poolSize: 1 });
  await rt.load(file, digest);
  const writes = [];
  const hosts = { fs: { write: async (path, data, mode) => void writes.push({ path, data, mode }) } };
  const r = await rt.run(digest, {}, { ...LIMITS, required_imports: ['latchgate:io/fs', 'latchgate:io/log'] }, hosts);
  await rt.close();
  return { r, writes };
}

test('a byte list past the end of the memory, or a string of invalid UTF-8, traps: the host is never called with a clipped or mended value; a leading byte-order mark arrives as sent', async () => {
  // 'out.txt' is at 76 (7 bytes), followed by two bytes that are not UTF-8.
  const fine = await fsWriter('write-fine', [76, 7, 64, 12]);
  assert.equal(fine.r.ok, true, JSON.stringify(fine.r));
  assert.deepEqual(fine.writes.map((w) => [w.path, Buffer.from(w.data).toString()]), [['out.txt', '{"output":1}']]);

  const clipped = await fsWriter('write-past-end', [76, 7, 65500, 100000]);
  assert.equal(clipped.r.ok, false, JSON.stringify(clipped.r));
  assert.equal(clipped.r.failure_class, 'trap', JSON.stringify(clipped.r));
  assert.deepEqual(clipped.writes, [], 'the host wrote a clipped body');

  const mended = await fsWriter('write-bad-utf8', [76, 9, 64, 12]);
  assert.equal(mended.r.ok, false, JSON.stringify(mended.r));
  assert.equal(mended.r.failure_class, 'trap', JSON.stringify(mended.r));
  assert.deepEqual(mended.writes, [], 'the host got a path with U+FFFD in it');

  // A leading byte-order mark is part of the string the guest sent: the host gets it, not a shortened path.
  const bom = await fsWriter('write-bom', [76, 10, 64, 12], '\\ef\\bb\\bfout.txt');
  assert.equal(bom.r.ok, true, JSON.stringify(bom.r));
  assert.deepEqual(bom.writes.map((w) => w.path), ['\uFEFFout.txt']);
});

test('a worker that fails while idle is retired: nothing is thrown on the gate thread, and the next call gets a new worker', async (t) => {
  // Glue whose instance throws from a timer after its call has answered: as a guest destructor run by a collection would.
  const js = `export async function instantiate() {
    return { execute() { setTimeout(() => { throw new Error('late failure'); }, 20); return JSON.stringify({ output: 'hi' }); } };
  }`;
  const pool = new WorkerPool(1, 0);
  t.after(() => pool.close());
  const job = () => ({
    msg: { type: 'run', key: 'late', task: '{}', fuel: 1000, linked: [], max_response_bytes: 1 << 20, memory_bytes: 1 << 20 },
    code: { js, modules: {}, memoryModules: [] },
    bridge: new HostBridge({}, new Set(), 1, 1 << 20),
    timeoutMs: 5000,
  });
  const first = await pool.run(job());
  assert.equal(first.done?.ok, true, JSON.stringify(first));
  await new Promise((r) => setTimeout(r, 300));
  const second = await pool.run(job());
  assert.equal(second.done?.ok, true, JSON.stringify(second));
});
