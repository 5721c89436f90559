// A hostile provider against what the fuel does not count by itself: long
// straight-line code (the meter must charge it by its size), tables
// on the worker's JS heap (one too large aborted the whole process), core
// instances made at every call (data copied, memories allocated, no guest
// code run), and host import arguments whose lifting is work by their size
// (many tiny list entries, types or parameters the component declares for
// itself). Each attack is refused, capped or runs out of fuel, and nothing
// reaches the gate's thread; next to them the legitimate shape still runs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco';
import { ProviderRuntime } from '../../dist/providers/runtime.js';
import { TABLE_MAX_ENTRIES } from '../../dist/providers/runtime-memory.js';
import { LIMITS, WIT } from '../helpers/providers.mjs';

const dir = mkdtempSync(join(tmpdir(), 'lg-prov-resources-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Loads component bytes; resolves { run(task?, limits?, hosts?), close }. */
async function runtimeFor(name, bytes) {
  const file = join(dir, `${name}.wasm`);
  writeFileSync(file, bytes);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const rt = new ProviderRuntime({ cacheDir: join(dir, `cache-${name}`), poolSize: 1 });
  await rt.load(file, digest);
  return { run: (limits = {}, hosts = counting()) => rt.run(digest, {}, { ...LIMITS, ...limits }, hosts), close: () => rt.close() };
}

/** A core provider (the WIT's provider world) from `body`, the rest of its module. */
async function core(name, body, wit = WIT, world = 'provider') {
  return runtimeFor(name, await componentNew(await componentEmbed({ binary: await parse(`(module ${body})`), witSource: wit, world })));
}

/** Hosts that count what reaches them. */
function counting() {
  const seen = { http: 0, log: 0 };
  return { seen, http: async () => (seen.http++, { status: 200, headers: [], body: new Uint8Array(0) }), log: () => void seen.log++ };
}

/** A bump allocator over the module's memory, and $ok: execute's result {"output":1}. */
const STD = `
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 196608))
  (data (i32.const 100) "{\\"output\\":1}")
  (func (export "cabi_realloc") (param i32 i32) (param $align i32) (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (block $fits
      (loop $more
        (br_if $fits (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.lt_s (memory.grow (i32.const 1)) (i32.const 0)) (then unreachable))
        (br $more)))
    (local.get $p))
  (func $ok (result i32)
    (i32.store8 (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 100))
    (i32.store (i32.const 24) (i32.const 12))
    (i32.const 16))`;

test('tables are capped: three declared with 10 million entries are refused (the process lives on); grown past the cap, table.grow fails inside the guest', async (t) => {
  const big = await core('tables-declared', `${STD} (table 10000000 funcref) (table 10000000 funcref) (table 10000000 funcref)
    (func (export "execute") (param i32 i32) (result i32) (call $ok))`);
  t.after(() => big.close());
  const r = await big.run();
  assert.equal(r.ok, false, JSON.stringify(r));
  assert.match(r.error, new RegExp(`table of 10000000 entries, over the ${TABLE_MAX_ENTRIES}`));

  // Each grow by 10 million must return -1; the call then succeeds. One within the cap grows.
  const grow = await core('tables-grown', `${STD} (table $a 0 funcref) (table $b 0 funcref)
    (func (export "execute") (param i32 i32) (result i32)
      (if (i32.ne (table.grow $a (ref.null func) (i32.const 10000000)) (i32.const -1)) (then unreachable))
      (if (i32.ne (table.grow $b (ref.null func) (i32.const 10000000)) (i32.const -1)) (then unreachable))
      (if (i32.ne (table.grow $a (ref.null func) (i32.const 1000)) (i32.const 0)) (then unreachable))
      (call $ok))`);
  t.after(() => grow.close());
  const g = await grow.run({ fuel: 1000 });
  assert.equal(g.ok, true, JSON.stringify(g));
});

test('straight-line code is charged by its size: a function of 20,000 divisions called in a loop runs out of fuel, not on to the timeout', async (t) => {
  // Counted by calls and loop iterations alone, each call would cost a unit or two: 100,000 calls
  // (two billion divisions) would fit in this fuel and run until the timeout.
  const divisions = '(local.set $x (i32.div_u (local.get $x) (i32.const 3)))\n'.repeat(20_000);
  const heavy = await core('straight-line', `${STD}
    (func $heavy (local $x i32) (local.set $x (i32.const -1)) ${divisions})
    (func (export "execute") (param i32 i32) (result i32) (local $i i32)
      (loop $again
        (call $heavy)
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $again (i32.lt_u (local.get $i) (i32.const 100000))))
      (call $ok))`);
  t.after(() => heavy.close());
  const r = await heavy.run({ fuel: 1_000_000, timeout_seconds: 10 });
  assert.equal(r.failure_class, 'fuel_exhausted', JSON.stringify(r));
  assert.equal(r.fuel_used, 1_000_000);
  // The same function called a few times runs within the fuel.
  const few = await core('straight-line-few', `${STD}
    (func $heavy (local $x i32) (local.set $x (i32.const -1)) ${divisions})
    (func (export "execute") (param i32 i32) (result i32) (call $heavy) (call $heavy) (call $ok))`);
  t.after(() => few.close());
  const ok = await few.run({ fuel: 1_000_000 });
  assert.equal(ok.ok, true, JSON.stringify(ok));
  assert.ok(ok.fuel_used > 2 * 20_000 / 8, `two calls of 20,000 divisions used ${ok.fuel_used} units`);
});

test('straight-line code run on the way back from a deep recursion is paid for before it runs: the call runs out of fuel', async (t) => {
  // Each of 20,000 frames runs a tail of 5,000 adds after its recursive call returns: 6 million units
  // of work. Were only function entries and loop headers checked, the tails would all run, the fuel
  // far below zero, and the call succeed.
  const tail = '(local.set $x (i32.add (local.get $x) (i32.const 3)))\n'.repeat(5_000);
  const deep = await core('unwind', `${STD}
    (func $f (param $d i32) (local $x i32)
      (if (local.get $d) (then (call $f (i32.sub (local.get $d) (i32.const 1)))))
      ${tail})
    (func (export "execute") (param i32 i32) (result i32) (call $f (i32.const 20000)) (call $ok))`);
  t.after(() => deep.close());
  const r = await deep.run({ fuel: 100_000, timeout_seconds: 30 });
  assert.equal(r.failure_class, 'fuel_exhausted', JSON.stringify(r));
  const shallow = await deep.run({ fuel: 10_000_000 });
  assert.equal(shallow.ok, true, JSON.stringify(shallow));
});

/** A component that instantiates `$blob` `count` times next to its provider module. */
function instancesOf(blob, count) {
  return `(component
  (core module $blob ${blob})
  ${Array.from({ length: count }, (_, i) => `(core instance $b${i} (instantiate $blob))`).join('\n  ')}
  (core module $m
    (memory (export "memory") 1)
    (data (i32.const 100) "{\\"output\\":\\"hi\\"}")
    (data (i32.const 0) "\\00\\00\\00\\00\\64\\00\\00\\00\\0f\\00\\00\\00")
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 1024)
    (func (export "run") (param i32 i32) (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (type $r (result string (error string)))
  (type $ft (func (param "task-json" string) (result $r)))
  (func $f (type $ft) (canon lift (core func $i "run") (memory (core memory $i "memory")) (realloc (core func $i "cabi_realloc"))))
  (export "execute" (func $f))
)`;
}

test('core instances are capped per call: a second one with a memory of its own, or more than 16 in all, is refused before it is made', async (t) => {
  // Each instance of $blob would copy 1 MiB into a memory of its own, at every call, for no fuel.
  const memories = await runtimeFor('memories', await parse(instancesOf(`(memory (export "memory") 17) (data (i32.const 0) "${'a'.repeat(1 << 20)}")`, 8)));
  t.after(() => memories.close());
  const m = await memories.run({ required_imports: [] });
  assert.equal(m.ok, false, JSON.stringify(m));
  assert.match(m.error, /more than 1 core instance with a memory of its own/);

  const many = await runtimeFor('instances', await parse(instancesOf('(func (export "f"))', 20)));
  t.after(() => many.close());
  const n = await many.run({ required_imports: [] });
  assert.equal(n.ok, false, JSON.stringify(n));
  assert.match(n.error, /more than 16 core instances/);

  const few = await runtimeFor('few-instances', await parse(instancesOf('(func (export "f"))', 4)));
  t.after(() => few.close());
  const ok = await few.run({ required_imports: [] });
  assert.equal(ok.ok, true, JSON.stringify(ok));
  assert.equal(ok.output, 'hi');
});

const IMPORTS = `
  (import "latchgate:io/http@0.1.0" "fetch" (func $fetch (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "latchgate:io/log@0.1.0" "log" (func $log (param i32 i32 i32 i32 i32)))`;

/** execute: grow the memory by `pages` of zeros (each 16-byte list entry reads as ("", "")), then `call` `times` times. */
const looping = (pages, call, times) => `${IMPORTS} ${STD}
  (func (export "execute") (param i32 i32) (result i32) (local $i i32)
    (drop (memory.grow (i32.const ${pages})))
    (loop $again
      ${call}
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const ${times}))))
    (call $ok))`;

test('lists of tiny entries cost fuel by their count: a million empty log fields or headers per call run out of fuel, and none reaches the gate', async (t) => {
  const N = 1_000_000;
  const log = await core('tiny-fields', looping(1020, `(call $log (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 1048576) (i32.const ${N}))`, 1000));
  t.after(() => log.close());
  const hl = counting();
  const l = await log.run({ memory_mb: 80, timeout_seconds: 30 }, hl);
  assert.equal(l.failure_class, 'fuel_exhausted', JSON.stringify(l));
  assert.equal(hl.seen.log, 0, 'a line of a million fields is past the log cap: dropped in the worker');

  const fetch = await core('tiny-headers', looping(1020, `(call $fetch (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1048576) (i32.const ${N})
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 32))`, 1000));
  t.after(() => fetch.close());
  const hf = counting();
  const f = await fetch.run({ memory_mb: 80, timeout_seconds: 30, max_io_calls: 1000 }, hf);
  assert.equal(f.failure_class, 'fuel_exhausted', JSON.stringify(f));
  assert.equal(hf.seen.http, 0, 'more than 100 headers: refused in the worker');
  assert.equal(f.io_calls, 0);

  // A few fields and headers are nothing out of the ordinary.
  const few = await core('few-fields', looping(16, `(call $log (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 1048576) (i32.const 3))`, 5));
  t.after(() => few.close());
  const hw = counting();
  const w = await few.run({}, hw);
  assert.equal(w.ok, true, JSON.stringify(w));
  assert.equal(hw.seen.log, 5);
});

test('a component that declares its own parameters for a latchgate:io function pays for all it lifts, and nothing of the wrong shape is posted', async (t) => {
  const wit = `package latchgate:io@0.1.0;
interface log {
  enum level { debug, info, warn, error }
  log: func(level: level, message: string, fields: list<tuple<string, string>>, junk: list<list<u8>>);
}
world p { import log; export execute: func(task-json: string) -> result<string, string>; }`;
  const body = `(import "latchgate:io/log@0.1.0" "log" (func $log (param i32 i32 i32 i32 i32 i32 i32))) ${STD}
    (func (export "execute") (param i32 i32) (result i32) (local $i i32)
      (drop (memory.grow (i32.const 252)))
      (loop $again
        (call $log (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1048576) (i32.const 1000000))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $again (i32.lt_u (local.get $i) (i32.const 1000))))
      (call $ok))`;
  const extra = await core('extra-parameter', body, wit, 'p');
  t.after(() => extra.close());
  const h = counting();
  const r = await extra.run({ memory_mb: 20, timeout_seconds: 30, required_imports: ['latchgate:io/log'] }, h);
  assert.equal(r.failure_class, 'fuel_exhausted', JSON.stringify(r));
  assert.equal(h.seen.log, 0, 'a log call with four arguments is not the WIT shape: dropped in the worker');
});
