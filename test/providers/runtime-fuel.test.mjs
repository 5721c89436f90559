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
