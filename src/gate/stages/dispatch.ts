// Dispatch: the intent, committed with the grant, is made durable (an
// fdatasync of the WAL, shared by concurrent calls), and only then are the
// provider's I/O calls released (startProvider started it, HostIo holds
// them). The provider runs under the manifest's wall-clock limit, reaching
// the outside only through HostIo, which records what really happened. A
// failed sync fails the call before anything left the gate.
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Execution } from '../execution.js';
import { timed, timing } from '../stage-timing.js';

export async function dispatch(ctx: GateContext, x: Execution): Promise<void> {
  const run = need(x, 'providerRun');
  let syncError: Error | undefined;
  const syncing = timing();
  try {
    await ctx.wal.sync();
    timed(x.traceId, 'dispatch: the intent durable', syncing);
    run.release();
  } catch (e) {
    syncError = e instanceof Error ? e : new Error(String(e));
    run.release(new Error(`store_unavailable: the intent could not be made durable (${syncError.message}); nothing was done`));
  }
  const running = timing();
  const r = await run.outcome;
  timed(x.traceId, "dispatch: the provider's outcome", running);
  if (syncError) throw new GateError('store_unavailable', `the intent could not be made durable (${syncError.message}); nothing was dispatched`);
  x.dispatched = { ...r, io: run.io, started_at: run.started_at, finished_at: new Date().toISOString(), duration_ms: Math.round((performance.now() - run.t0) * 1000) / 1000 };
}
