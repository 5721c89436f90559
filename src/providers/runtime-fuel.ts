// Fuel metering for a core module: V8 has no instruction counter, so the
// module is rewritten with binaryen to spend one unit of fuel at every
// function entry and every loop header (binaryen's log-execution pass, whose
// hook is then replaced by a function in the module itself). The fuel is a
// mutable i64 global the module imports as `latchgate`.`fuel`; the runtime
// creates it per call, sets the budget and reads what is left. Below zero the
// module traps with `unreachable`, so an endless loop ends deterministically.
// A bulk memory instruction is charged by its length (runtime-fuel-bulk.ts).
import binaryen from 'binaryen';
import { chargeBulkInstructions } from './runtime-fuel-bulk.js';
import { FUEL_FIELD, FUEL_MODULE } from './runtime-fuel-names.js';

const F = binaryen.Features;
/**
 * What Node 20's V8 accepts. Features.All makes binaryen emit encodings it
 * rejects (e.g. "unknown import kind 0x7f"), so the set is explicit.
 */
const FEATURES =
  F.MutableGlobals | F.NontrappingFPToInt | F.SignExt | F.SIMD128 | F.BulkMemory | F.BulkMemoryOpt | F.Multivalue | F.ReferenceTypes;

function importedFunctions(m: binaryen.Module): Set<string> {
  const names = new Set<string>();
  for (let i = 0; i < m.getNumFunctions(); i++) {
    const f = binaryen.getFunctionInfo(m.getFunctionByIndex(i));
    if (f.module) names.add(f.name);
  }
  return names;
}

function importsFrom(m: binaryen.Module, module: string): boolean {
  for (let i = 0; i < m.getNumFunctions(); i++) if (binaryen.getFunctionInfo(m.getFunctionByIndex(i)).module === module) return true;
  for (let i = 0; i < m.getNumGlobals(); i++) if (binaryen.getGlobalInfo(m.getGlobalByIndex(i)).module === module) return true;
  return false;
}

/** The module with fuel metering; throws when it cannot be metered. */
export function meterFuel(bytes: Uint8Array): Uint8Array {
  const m = binaryen.readBinaryWithFeatures(bytes, FEATURES);
  try {
    // A module that imported the fuel global itself could refill it.
    if (importsFrom(m, FUEL_MODULE)) throw new Error(`a core module imports from "${FUEL_MODULE}", which is reserved for the gate's fuel meter`);
    const before = importedFunctions(m);
    m.runPasses(['log-execution']);
    const hook = [...importedFunctions(m)].find((n) => !before.has(n));
    if (hook === undefined) throw new Error('binaryen log-execution added no hook');
    const fuel = '__latchgate_fuel';
    m.removeFunction(hook);
    m.addGlobalImport(fuel, FUEL_MODULE, FUEL_FIELD, binaryen.i64, true);
    const left = () => m.global.get(fuel, binaryen.i64);
    m.addFunction(
      hook,
      binaryen.createType([binaryen.i32]),
      binaryen.none,
      [],
      m.block(null, [m.global.set(fuel, m.i64.sub(left(), m.i64.const(1n))), m.if(m.i64.lt_s(left(), m.i64.const(0n)), m.unreachable())]),
    );
    chargeBulkInstructions(m, fuel);
    if (!m.validate()) throw new Error('the metered module does not validate (it uses WebAssembly features the gate does not run)');
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}
