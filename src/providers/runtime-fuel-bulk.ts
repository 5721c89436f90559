// Fuel for the bulk instructions: memory.fill, memory.copy and memory.init
// do work in proportion to a length operand, yet the fuel meter
// (runtime-fuel.ts) counts only function entries and loop headers, so one of
// them would cost no more than a `nop`. Every one is rewritten to pass its
// length through a function of the module that charges one unit per
// BULK_BYTES_PER_UNIT bytes (and one for the instruction) before the
// instruction runs, trapping like the meter below zero. The walk knows every
// expression kind the gate's WebAssembly features allow; a kind it does not
// know (table.fill, table.copy and table.init among them, whose work also
// grows with a length) fails the metering, so nothing it cannot charge runs.
import binaryen from 'binaryen';
import { BULK_BYTES_PER_UNIT } from './runtime-fuel-names.js';

const b = binaryen;
type Ref = number;
/** binaryen.js's C API (its type declarations leave it out): getters of an expression's operands, by name. */
const api = binaryen as unknown as Record<string, (...a: number[]) => number>;
const fn = (name: string): ((...a: number[]) => number) => {
  const f = api[`_Binaryen${name}`];
  if (typeof f !== 'function') throw new Error(`binaryen has no ${name}: the fuel meter cannot walk its expressions`);
  return f;
};

/**
 * The operands of each expression kind the gate's features allow, as C API
 * getter names: "Binary.Left" reads one (_BinaryenBinaryGetLeft), "Block*Child"
 * a list (_BinaryenBlockGetNumChildren, _BinaryenBlockGetChildAt).
 */
const KINDS: [number, string[]][] = [
  [b.BlockId, ['Block*Child']],
  [b.IfId, ['If.Condition', 'If.IfTrue', 'If.IfFalse']],
  [b.LoopId, ['Loop.Body']],
  [b.BreakId, ['Break.Condition', 'Break.Value']],
  [b.SwitchId, ['Switch.Condition', 'Switch.Value']],
  [b.CallId, ['Call*Operand']],
  [b.CallIndirectId, ['CallIndirect.Target', 'CallIndirect*Operand']],
  [b.LocalGetId, []],
  [b.LocalSetId, ['LocalSet.Value']],
  [b.GlobalGetId, []],
  [b.GlobalSetId, ['GlobalSet.Value']],
  [b.LoadId, ['Load.Ptr']],
  [b.StoreId, ['Store.Ptr', 'Store.Value']],
  [b.ConstId, []],
  [b.UnaryId, ['Unary.Value']],
  [b.BinaryId, ['Binary.Left', 'Binary.Right']],
  [b.SelectId, ['Select.IfTrue', 'Select.IfFalse', 'Select.Condition']],
  [b.DropId, ['Drop.Value']],
  [b.ReturnId, ['Return.Value']],
  [b.NopId, []],
  [b.UnreachableId, []],
  [b.MemorySizeId, []],
  [b.MemoryGrowId, ['MemoryGrow.Delta']],
  [b.SIMDExtractId, ['SIMDExtract.Vec']],
  [b.SIMDReplaceId, ['SIMDReplace.Vec', 'SIMDReplace.Value']],
  [b.SIMDShuffleId, ['SIMDShuffle.Left', 'SIMDShuffle.Right']],
  [b.SIMDTernaryId, ['SIMDTernary.A', 'SIMDTernary.B', 'SIMDTernary.C']],
  [b.SIMDShiftId, ['SIMDShift.Vec', 'SIMDShift.Shift']],
  [b.SIMDLoadId, ['SIMDLoad.Ptr']],
  [b.SIMDLoadStoreLaneId, ['SIMDLoadStoreLane.Ptr', 'SIMDLoadStoreLane.Vec']],
  [b.MemoryInitId, ['MemoryInit.Dest', 'MemoryInit.Offset', 'MemoryInit.Size']],
  [b.DataDropId, []],
  [b.MemoryCopyId, ['MemoryCopy.Dest', 'MemoryCopy.Source', 'MemoryCopy.Size']],
  [b.MemoryFillId, ['MemoryFill.Dest', 'MemoryFill.Value', 'MemoryFill.Size']],
  [b.RefNullId, []],
  [b.RefIsNullId, ['RefIsNull.Value']],
  [b.RefFuncId, []],
  [b.TableGetId, ['TableGet.Index']],
  [b.TableSetId, ['TableSet.Index', 'TableSet.Value']],
  [b.TableSizeId, []],
  [b.TableGrowId, ['TableGrow.Value', 'TableGrow.Delta']],
  [b.TupleMakeId, ['TupleMake*Operand']],
  [b.TupleExtractId, ['TupleExtract.Tuple']],
];

type Operand = { one: (e: Ref) => Ref } | { count: (e: Ref) => number; at: (e: Ref, i: number) => Ref };
const OPERANDS = new Map<number, Operand[]>(
  KINDS.map(([id, names]) => [
    id,
    names.map((n): Operand => {
      const list = /^(\w+)\*(\w+)$/.exec(n);
      if (list) return { count: fn(`${list[1]}GetNum${list[2] === 'Child' ? 'Children' : `${list[2]}s`}`), at: fn(`${list[1]}Get${list[2]}At`) };
      const [kind, field] = n.split('.') as [string, string];
      return { one: fn(`${kind}Get${field}`) };
    }),
  ]),
);

/** The kinds whose length operand sets their work, and how to replace it. */
const BULK = new Map<number, { size: (e: Ref) => Ref; setSize: (e: Ref, size: Ref) => void }>(
  (['MemoryFill', 'MemoryCopy', 'MemoryInit'] as const).map((k) => [b[`${k}Id`], { size: fn(`${k}GetSize`), setSize: fn(`${k}SetSize`) }]),
);

const KIND_NAMES = new Map<number, string>([
  [fn('TableFillId')(), 'table.fill'],
  [fn('TableCopyId')(), 'table.copy'],
  [fn('TableInitId')(), 'table.init'],
]);

/**
 * Rewrites every bulk memory instruction of m's functions to charge its
 * length to the fuel global `fuel` (an i64 the module has already); throws
 * when a function holds an expression kind the walk does not know.
 */
export function chargeBulkInstructions(m: binaryen.Module, fuel: string): void {
  const charge = '__latchgate_bulk_fuel';
  let used = false;
  const stack: Ref[] = [];
  for (let i = 0; i < m.getNumFunctions(); i++) {
    const f = b.getFunctionInfo(m.getFunctionByIndex(i));
    if (f.module || !f.body) continue; // imported: no body
    stack.push(f.body);
    while (stack.length > 0) {
      const e = stack.pop() as Ref;
      const id = b.getExpressionId(e);
      const operands = OPERANDS.get(id);
      if (operands === undefined) {
        throw new Error(`function ${f.name} holds a ${KIND_NAMES.get(id) ?? `kind ${id}`} instruction, which the fuel meter cannot charge by its length`);
      }
      for (const o of operands) {
        if ('one' in o) {
          const c = o.one(e);
          if (c !== 0) stack.push(c); // 0: an optional operand that is absent
        } else {
          for (let i = 0, n = o.count(e); i < n; i++) stack.push(o.at(e, i));
        }
      }
      const bulk = BULK.get(id);
      if (bulk) {
        // The length is evaluated after the other operands, as before; the charge comes after it, before the instruction.
        bulk.setSize(e, m.call(charge, [bulk.size(e)], b.i32));
        used = true;
      }
    }
  }
  if (!used) return;
  const left = () => m.global.get(fuel, b.i64);
  const n = () => m.local.get(0, b.i32);
  m.addFunction(
    charge,
    b.createType([b.i32]),
    b.i32,
    [],
    m.block(
      null,
      [
        m.global.set(fuel, m.i64.sub(left(), m.i64.add(m.i64.const(1n), m.i64.extend_u(m.i32.shr_u(n(), m.i32.const(Math.log2(BULK_BYTES_PER_UNIT))))))),
        m.if(m.i64.lt_s(left(), m.i64.const(0n)), m.unreachable()),
        n(),
      ],
      b.i32,
    ),
  );
}
