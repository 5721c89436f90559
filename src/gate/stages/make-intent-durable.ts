// The intent is the evidence that survives a crash during dispatch: on disk
// before the provider runs.
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';

export async function makeIntentDurable(ctx: GateContext): Promise<void> {
  try {
    await ctx.wal.sync();
  } catch (e) {
    throw new GateError('store_unavailable', `the intent could not be made durable (${(e as Error).message}); nothing was dispatched`);
  }
}
