// How long each step of an execution took, for whoever in the gate's process
// asks: every step of the pipeline (src/gate/pipeline.ts), the two waits of
// dispatch, the receipt's signature, commit and sync, and the answer's
// write, each published on a diagnostics channel (node:diagnostics_channel)
// once it ended. Nothing is timed or published while no one subscribes, and
// nothing leaves the process: a client never sees these times. `make
// bench-mcp` subscribes in its gate to print where an execute's time goes.
import { channel } from 'node:diagnostics_channel';

export const STAGE_TIMING_CHANNEL = 'latchgate:gate:stage';

/** One message on the channel: `step` of execution `trace_id` took `ms` (a step that throws publishes nothing). */
export interface StageTiming {
  trace_id: string;
  step: string;
  ms: number;
}

const published = channel(STAGE_TIMING_CHANNEL);

/** A step's start for timed(), or undefined while no one subscribes. */
export const timing = (): number | undefined => (published.hasSubscribers ? performance.now() : undefined);

/** Publishes that `step` of execution `traceId` ended, `start` being what timing() returned as it began. */
export function timed(traceId: string, step: string, start: number | undefined): void {
  if (start === undefined || !published.hasSubscribers) return;
  published.publish({ trace_id: traceId, step, ms: performance.now() - start } satisfies StageTiming);
}
