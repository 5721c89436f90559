// The fuel meter on bare core modules: every region of straight-line code is
// paid for, and the payment checked, before it runs. The fuel global is read
// after each call: below zero by more than one region means code ran unpaid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from '@bytecodealliance/jco';
import { meterFuel } from '../../dist/providers/runtime-fuel.js';

/** The metered module of `wat`, instantiated with `fuel` counts; resolves { exports, fuel }. */
async function metered(wat, fuel) {
  const global = new WebAssembly.Global({ value: 'i64', mutable: true }, BigInt(fuel));
  const { instance } = await WebAssembly.instantiate(meterFuel(await parse(wat)), { latchgate: { fuel: global } });
  return { exports: instance.exports, fuel: global };
}

const TAIL = 5_000;
/** f(d) recurses d deep, then each frame runs a tail of TAIL adds on the way back. */
const UNWIND = `(module
  (func (export "f") (param $d i32) (local $x i32)
    (if (local.get $d) (then (call 0 (i32.sub (local.get $d) (i32.const 1)))))
    ${'(local.set $x (i32.add (local.get $x) (i32.const 3)))\n'.repeat(TAIL)}))`;

test('code after a call returns is paid for before it runs: a recursion 5,000 deep with long tails traps at the first tail it cannot pay', async () => {
  // Enough for the way down (a few counts a frame) and about ten tails, not for 5,000 of them.
  const { exports, fuel } = await metered(UNWIND, 300_000);
  assert.throws(() => exports.f(5_000), WebAssembly.RuntimeError);
  // One tail is about 4 counts an add: the fuel went below zero by one region at most, not by 5,000 of them.
  assert.ok(fuel.value < 0n && -fuel.value <= BigInt(TAIL * 4 + 64), `fuel left: ${fuel.value}`);
  const enough = await metered(UNWIND, 10_000_000);
  enough.exports.f(10);
  assert.ok(enough.fuel.value > 0n && 10_000_000n - enough.fuel.value >= BigInt(11 * TAIL * 4), `fuel used: ${10_000_000n - enough.fuel.value}`);
});

test('every place a branch lands is paid for: br_table cases, if arms, the rest of a block, loop bodies', async () => {
  // Cases 0 and 1 of the switch are 400 adds each (case 1 in an if's arms); run(n) takes case n a million times.
  const adds = (n) => '(local.set $x (i32.add (local.get $x) (i32.const 1)))\n'.repeat(n);
  const { exports, fuel } = await metered(`(module
    (func (export "run") (param $n i32) (local $x i32) (local $i i32)
      (loop $again
        (block $c2 (block $c1 (block $c0
          (br_table $c0 $c1 $c2 (i32.rem_u (local.get $n) (i32.const 3))))
          ${adds(400)} (br $c2))
          (if (local.get $n) (then ${adds(400)}) (else ${adds(400)})))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $again (i32.lt_u (local.get $i) (i32.const 1000000))))))`, 0);
  // Ten million counts pay for 25,000 iterations of a 400-add case, not a million.
  for (const n of [0, 1]) {
    fuel.value = 10_000_000n;
    assert.throws(() => exports.run(n), WebAssembly.RuntimeError, `case ${n} ran a million times on ten million counts`);
    assert.ok(-fuel.value <= 2_000n, `case ${n}: fuel left ${fuel.value}`);
  }
});

test("a module's own global named as the meter names its fuel is not the fuel: setting it refills nothing", async () => {
  // binaryen takes names from the name section: adding the fuel import under a name the module's
  // global has would have made that global, which the guest writes, the fuel.
  for (const decl of ['(global $__latchgate_fuel (mut i64) (i64.const 0))', '(import "env" "g" (global $__latchgate_fuel (mut i64)))']) {
    const env = { g: new WebAssembly.Global({ value: 'i64', mutable: true }, 0n) };
    const global = new WebAssembly.Global({ value: 'i64', mutable: true }, 1000n);
    const bytes = meterFuel(await parse(`(module ${decl}
      (func (export "f") (local $i i32)
        (loop $again
          (global.set $__latchgate_fuel (i64.const 1000000))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 100000000))))))`));
    const { instance } = await WebAssembly.instantiate(bytes, { latchgate: { fuel: global }, env });
    assert.throws(() => instance.exports.f(), WebAssembly.RuntimeError, decl);
    assert.ok(global.value < 0n, `${decl}: fuel left ${global.value}`);
  }
});

test('declared locals are paid for at each call (the engine zeroes them), and a function may declare at most 10,000', async () => {
  const { exports, fuel } = await metered(`(module (func (export "f") (local ${'v128 '.repeat(5_000)})))`, 1_000_000);
  exports.f();
  assert.ok(1_000_000n - fuel.value >= 10_000n, `a call with 5,000 vector locals used ${1_000_000n - fuel.value} counts`);
  await assert.rejects(async () => meterFuel(await parse(`(module (func (local ${'i32 '.repeat(10_001)})))`)), /declares more than 10000 locals/);
});

test('a call to an imported function (JavaScript: a host import, a canonical built-in) costs a unit', async () => {
  const global = new WebAssembly.Global({ value: 'i64', mutable: true }, 1_000_000n);
  const bytes = meterFuel(await parse(`(module (import "env" "h" (func $h))
    (func (export "f") (call $h) (call $h) (call $h) (call $h)))`));
  const { instance } = await WebAssembly.instantiate(bytes, { latchgate: { fuel: global }, env: { h: () => {} } });
  instance.exports.f();
  assert.ok(1_000_000n - global.value >= 4n * 64n, `four imported calls used ${1_000_000n - global.value} counts`);
});
