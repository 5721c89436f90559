// Where the fuel global is imported from (runtime-fuel.ts meters, runtime-worker.ts supplies).
export const FUEL_MODULE = 'latchgate';
export const FUEL_FIELD = 'fuel';
