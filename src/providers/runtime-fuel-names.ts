// Where the fuel global is imported from (runtime-fuel.ts meters, runtime-worker.ts supplies),
// and what work by a length costs in it.
export const FUEL_MODULE = 'latchgate';
export const FUEL_FIELD = 'fuel';
/**
 * Bytes per unit of fuel, about what 64 instructions cost, for work whose
 * size a length sets: a bulk memory instruction (runtime-fuel.ts), the
 * arguments of a host import (runtime-worker.ts). Each also costs one unit.
 */
export const BULK_BYTES_PER_UNIT = 64;
/**
 * Counts of the fuel meter (runtime-fuel.ts: about one per instruction) in
 * one unit of fuel: what `fuel` in a manifest, fuel_used and the charges by
 * length are given in.
 */
export const FUEL_SCALE = 64;
