// The expression kinds the fuel meter (runtime-fuel.ts) walks: every kind the
// gate's WebAssembly features allow, with the C API getters of its operands.
// A kind missing here (table.fill, table.copy and table.init among them,
// whose work grows with a length the meter cannot charge) fails the
// metering, so nothing the meter cannot see runs.
import binaryen from 'binaryen';

const b = binaryen;
export type Ref = number;
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
export const OPERANDS = new Map<number, Operand[]>(
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
export const BULK = new Map<number, { size: (e: Ref) => Ref; setSize: (e: Ref, size: Ref) => void }>(
  (['MemoryFill', 'MemoryCopy', 'MemoryInit'] as const).map((k) => [b[`${k}Id`], { size: fn(`${k}GetSize`), setSize: fn(`${k}SetSize`) }]),
);

export const KIND_NAMES = new Map<number, string>([
  [fn('TableFillId')(), 'table.fill'],
  [fn('TableCopyId')(), 'table.copy'],
  [fn('TableInitId')(), 'table.init'],
]);

/** The operands of `e`, in order; throws, naming the kind, when the meter does not know it. */
export function operands(e: Ref, where: string): Ref[] {
  const id = b.getExpressionId(e);
  const os = OPERANDS.get(id);
  if (os === undefined) throw new Error(`${where} holds a ${KIND_NAMES.get(id) ?? `kind ${id}`} instruction, which the fuel meter cannot charge`);
  const out: Ref[] = [];
  for (const o of os) {
    if ('one' in o) {
      const c = o.one(e);
      if (c !== 0) out.push(c); // 0: an optional operand that is absent
    } else {
      for (let i = 0, n = o.count(e); i < n; i++) out.push(o.at(e, i));
    }
  }
  return out;
}

/** Setters the meter uses to put its charges in. */
export const set = {
  functionBody: fn('FunctionSetBody') as unknown as (f: number, body: Ref) => void,
  loopBody: fn('LoopSetBody') as unknown as (e: Ref, body: Ref) => void,
  ifTrue: fn('IfSetIfTrue') as unknown as (e: Ref, arm: Ref) => void,
  ifFalse: fn('IfSetIfFalse') as unknown as (e: Ref, arm: Ref) => void,
  blockChild: fn('BlockSetChildAt') as unknown as (e: Ref, i: number, child: Ref) => void,
};
export const get = {
  loopBody: fn('LoopGetBody'),
  ifTrue: fn('IfGetIfTrue'),
  ifFalse: fn('IfGetIfFalse'),
  ifCondition: fn('IfGetCondition'),
  blockCount: fn('BlockGetNumChildren'),
  blockChild: fn('BlockGetChildAt') as (e: Ref, i: number) => Ref,
};
