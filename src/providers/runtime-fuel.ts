// Fuel metering for a core module: V8 has no instruction counter, so the
// module is rewritten with binaryen to count what it runs in a mutable i64
// global it imports as `latchgate`.`fuel` (the runtime creates it per call
// with the budget and reads what is left). The code is cut into regions of
// straight-line code, one for each place a branch can land: a function's
// body, a loop's body, an if's arms, and the rest of a block after a block,
// if or loop in it. Each region starts by taking its size from the fuel and
// checking it: an instruction counts 1; slow arithmetic, calls into the
// engine or out of the module, and a function's declared locals more
// (SLOW_UNARY, SLOW_BINARY, WEIGHTS, IMPORTED_CALL, LOCAL). Below zero the
// module traps with `unreachable`, so an endless loop ends deterministically
// and no straight-line code runs before it is paid for (a call returns into
// a region its caller paid for in full). A region is charged in full even
// where a branch leaves it early. A bulk memory instruction (memory.fill,
// memory.copy, memory.init) is charged by its length too, through a function
// the meter adds. The runtime's fuel unit is FUEL_SCALE of these counts.
import binaryen from 'binaryen';
import { BULK, operands, set, get, type Ref } from './runtime-fuel-kinds.js';
import { BULK_BYTES_PER_UNIT, FUEL_FIELD, FUEL_MODULE, FUEL_SCALE } from './runtime-fuel-names.js';
import { leb, sectionBody } from './runtime-memory.js';

const b = binaryen;
const F = b.Features;
/**
 * What Node 20's V8 accepts. Features.All makes binaryen emit encodings it
 * rejects (e.g. "unknown import kind 0x7f"), so the set is explicit.
 */
const FEATURES = F.MutableGlobals | F.NontrappingFPToInt | F.SignExt | F.SIMD128 | F.BulkMemory | F.BulkMemoryOpt | F.Multivalue | F.ReferenceTypes;

/** Counts of instructions that call into the engine (about 200 ns for memory.grow, against 1 ns for an add). */
const WEIGHTS = new Map<number, number>([
  [b.MemoryGrowId, 200],
  [b.TableGrowId, 200],
  [b.CallIndirectId, 2],
]);
/**
 * Counts of the slow arithmetic, measured against an add: square roots and
 * vector conversions take 11 to 18 times as long, divisions (integer, float,
 * vector) and vector popcnt 5 to 8. Unary and binary operations are numbered
 * apart (the same number names one of each), so each has its map. (What no
 * count covers: a load that misses the cache. A call chasing pointers through
 * a large memory runs several times longer than its fuel suggests;
 * timeout_seconds bounds it.)
 */
function opWeights(weightOf: (name: string) => number | undefined): Map<number, number> {
  return new Map(
    Object.entries(b as unknown as Record<string, unknown>).flatMap(([name, op]): [number, number][] => {
      const w = typeof op === 'number' ? weightOf(name) : undefined;
      return w === undefined ? [] : [[op as number, w]];
    }),
  );
}
const SLOW_UNARY = opWeights((name) => (/^Sqrt|^(TruncSat|Convert).*Vec/.test(name) ? 16 : /^PopcntVec/.test(name) ? 8 : undefined));
const SLOW_BINARY = opWeights((name) => (/^(Div|Rem)/.test(name) ? 8 : undefined));
/** A call out of the module (a host import, a canonical built-in such as resource.new) runs JavaScript: about one unit. */
const IMPORTED_CALL = 64;
/** Each local a function declares is zeroed at each call (a vector one costs two). */
const LOCAL = 1;
const VECTOR_LOCAL = 2;
const api = b as unknown as { _BinaryenBinaryGetOp(e: Ref): number; _BinaryenUnaryGetOp(e: Ref): number };

/** Locals one function, and all of a module's functions, may declare: binaryen takes time and memory for each (StarlingMonkey: 136 at most, 58,560 in all). */
const LOCALS_PER_FUNCTION = 10_000;
const LOCALS_PER_MODULE = 1_000_000;

/** Refuses a module declaring more locals than the limits, read from its code section before binaryen sees it. */
function checkLocals(bytes: Uint8Array): void {
  const code = sectionBody(bytes, 10);
  if (!code) return;
  let [count, p] = leb(code, 0);
  let total = 0;
  for (let f = 0; f < count; f++) {
    const [size, body] = leb(code, p);
    let [groups, q] = leb(code, body);
    let locals = 0;
    for (; groups > 0; groups--) {
      const [n, r] = leb(code, q);
      locals += n;
      q = r + 1; // the group's value type (one byte for every type the gate runs)
      if (locals > LOCALS_PER_FUNCTION) throw new Error(`function ${f} of a core module declares more than ${LOCALS_PER_FUNCTION} locals; the gate runs at most that many`);
    }
    total += locals;
    if (total > LOCALS_PER_MODULE) throw new Error(`a core module declares more than ${LOCALS_PER_MODULE} locals in all; the gate runs at most that many`);
    p = body + size;
  }
}

/**
 * A name no global or function of the module has: binaryen takes names from
 * the module's name section, and adding an import under a name a global
 * already has would make that global, which the guest writes, the fuel.
 */
function freshName(m: binaryen.Module, base: string): string {
  for (let i = 0; ; i++) {
    const name = i === 0 ? base : `${base}_${i}`;
    if (m.getGlobal(name) === 0 && m.getFunction(name) === 0) return name;
  }
}

function importsFrom(m: binaryen.Module, module: string): boolean {
  for (let i = 0; i < m.getNumFunctions(); i++) if (b.getFunctionInfo(m.getFunctionByIndex(i)).module === module) return true;
  for (let i = 0; i < m.getNumGlobals(); i++) if (b.getGlobalInfo(m.getGlobalByIndex(i)).module === module) return true;
  return false;
}

const isControl = (e: Ref): boolean => {
  const id = b.getExpressionId(e);
  return id === b.BlockId || id === b.IfId || id === b.LoopId;
};

/** A region still to charge: a function body, a loop body, an if arm, or a block's children from `from` on. */
type Region = { body: number } | { loop: Ref } | { arm: Ref; which: 'true' | 'false' } | { block: Ref; from: number };

class Meter {
  bulkUsed = false;
  private readonly todo: Region[] = [];

  /** The functions the module imports: a call to one runs JavaScript. */
  private readonly imported = new Set<string>();

  constructor(
    private readonly m: binaryen.Module,
    private readonly fuel: string,
    private readonly bulkCharge: string,
  ) {
    for (let i = 0; i < m.getNumFunctions(); i++) {
      const f = b.getFunctionInfo(m.getFunctionByIndex(i));
      if (f.module) this.imported.add(f.name);
    }
  }

  private weight(id: number, e: Ref): number {
    if (id === b.BinaryId) return SLOW_BINARY.get(api._BinaryenBinaryGetOp(e)) ?? 1;
    if (id === b.UnaryId) return SLOW_UNARY.get(api._BinaryenUnaryGetOp(e)) ?? 1;
    if (id === b.CallId && this.imported.has((b.getExpressionInfo(e) as binaryen.CallInfo).target)) return IMPORTED_CALL;
    return WEIGHTS.get(id) ?? 1;
  }

  private take(n: number): Ref {
    return this.m.global.set(this.fuel, this.m.i64.sub(this.m.global.get(this.fuel, b.i64), this.m.i64.const(BigInt(n))));
  }

  private check(): Ref {
    return this.m.if(this.m.i64.lt_s(this.m.global.get(this.fuel, b.i64), this.m.i64.const(0n)), this.m.unreachable());
  }

  /** body, preceded by the charge of n and the check. */
  private led(n: number, body: Ref): Ref {
    return this.m.block(null, [this.take(n), this.check(), body], b.auto);
  }

  /**
   * The size of the straight-line code from the roots on, leaving out (and
   * queueing as regions of their own) loop bodies, if arms, and the rest of
   * a block after a block, if or loop; bulk instructions get their charge.
   */
  private size(roots: Ref[], where: string): number {
    let n = 0;
    const stack = [...roots];
    while (stack.length > 0) {
      const e = stack.pop() as Ref;
      const id = b.getExpressionId(e);
      if (id === b.LoopId) {
        n += 1;
        this.todo.push({ loop: e });
      } else if (id === b.IfId) {
        n += 1;
        stack.push(get.ifCondition(e));
        this.todo.push({ arm: e, which: 'true' });
        if (get.ifFalse(e) !== 0) this.todo.push({ arm: e, which: 'false' });
      } else if (id === b.BlockId) {
        n += 1;
        const count = get.blockCount(e);
        for (let i = 0; i < count; i++) {
          const c = get.blockChild(e, i);
          stack.push(c);
          if (isControl(c)) {
            if (i + 1 < count) this.todo.push({ block: e, from: i + 1 });
            break;
          }
        }
      } else {
        n += this.weight(id, e);
        stack.push(...operands(e, where));
        const bulk = BULK.get(id);
        if (bulk) {
          // The length is evaluated after the other operands, as before; its charge comes after it, before the instruction.
          bulk.setSize(e, this.m.call(this.bulkCharge, [bulk.size(e)], b.i32));
          this.bulkUsed = true;
        }
      }
    }
    return n;
  }

  /** Charges every region of function f. */
  function(f: number): void {
    const info = b.getFunctionInfo(f);
    if (info.module || !info.body) return; // imported: no body
    const where = `function ${info.name}`;
    this.todo.push({ body: f });
    while (this.todo.length > 0) {
      const r = this.todo.pop() as Region;
      if ('body' in r) {
        const { body, vars } = b.getFunctionInfo(r.body);
        const locals = (vars ?? []).reduce((n, t) => n + (t === b.v128 ? VECTOR_LOCAL : LOCAL), 0);
        set.functionBody(r.body, this.led(locals + this.size([body], where), body));
      } else if ('loop' in r) {
        const body = get.loopBody(r.loop);
        set.loopBody(r.loop, this.led(this.size([body], where), body));
      } else if ('arm' in r) {
        const arm = r.which === 'true' ? get.ifTrue(r.arm) : get.ifFalse(r.arm);
        const n = this.size([arm], where);
        (r.which === 'true' ? set.ifTrue : set.ifFalse)(r.arm, this.led(n, arm));
      } else {
        // Children from..last, where last is the first block, if or loop among them (or the end).
        const count = get.blockCount(r.block);
        let last = r.from;
        while (last + 1 < count && !isControl(get.blockChild(r.block, last))) last++;
        const children: Ref[] = [];
        for (let i = r.from; i <= last; i++) children.push(get.blockChild(r.block, i));
        // The charge wraps the region's first child: putting a child in would copy the block's list each time.
        set.blockChild(r.block, r.from, this.led(this.size(children, where), children[0] as Ref));
        if (last + 1 < count) this.todo.push({ block: r.block, from: last + 1 });
      }
    }
  }

  /** The function a bulk instruction's length goes through: one unit and one per BULK_BYTES_PER_UNIT bytes, then the check. */
  addBulkCharge(): void {
    const m = this.m;
    const n = () => m.local.get(0, b.i32);
    const units = m.i64.add(m.i64.const(1n), m.i64.extend_u(m.i32.shr_u(n(), m.i32.const(Math.log2(BULK_BYTES_PER_UNIT)))));
    const charge = m.global.set(this.fuel, m.i64.sub(m.global.get(this.fuel, b.i64), m.i64.mul(units, m.i64.const(BigInt(FUEL_SCALE)))));
    m.addFunction(this.bulkCharge, b.createType([b.i32]), b.i32, [], m.block(null, [charge, this.check(), n()], b.i32));
  }
}

/** The module with fuel metering; throws when it cannot be metered. */
export function meterFuel(bytes: Uint8Array): Uint8Array {
  checkLocals(bytes);
  const m = b.readBinaryWithFeatures(bytes, FEATURES);
  try {
    // A module that imported the fuel global itself could refill it.
    if (importsFrom(m, FUEL_MODULE)) throw new Error(`a core module imports from "${FUEL_MODULE}", which is reserved for the gate's fuel meter`);
    const fuel = freshName(m, '__latchgate_fuel');
    const globals = m.getNumGlobals();
    m.addGlobalImport(fuel, FUEL_MODULE, FUEL_FIELD, b.i64, true);
    if (m.getNumGlobals() !== globals + 1) throw new Error('the fuel meter could not add its global');
    const meter = new Meter(m, fuel, freshName(m, '__latchgate_bulk_fuel'));
    const count = m.getNumFunctions();
    for (let i = 0; i < count; i++) meter.function(m.getFunctionByIndex(i));
    if (meter.bulkUsed) meter.addBulkCharge();
    if (!m.validate()) throw new Error('the metered module does not validate (it uses WebAssembly features the gate does not run)');
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}
