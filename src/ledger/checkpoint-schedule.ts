// When a gate signs checkpoints: every N events it appends, every T seconds,
// and at shutdown (docs/EVIDENCE.md, [ledger.checkpoints] in docs/CONFIG.md).
// The append path only counts (Ledger.onAppend); signing and publishing run
// after the append's transaction, from the event loop, one round at a time.
import type { AuditEventInput } from '../core/audit-event.js';
import type { CheckpointPublisher } from './checkpoint-sinks.js';
import { CheckpointRefusedError, type TreeCheckpoints } from './tree-checkpoints.js';

export const DEFAULT_EVERY_EVENTS = 1000;
export const DEFAULT_EVERY_SECONDS = 60;

export interface ScheduleOptions {
  /** Events this process appends between checkpoints (0: no count). */
  everyEvents: number;
  /** Seconds between checkpoints (0: no timer); a head that did not move is not signed again. */
  everySeconds: number;
  record?: (e: AuditEventInput) => void;
  warn?: (message: string) => void;
}

export class CheckpointSchedule {
  private count = 0;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** Refusals already reported: one that repeats at every round is reported once. */
  private readonly refusals = new Set<string>();
  private readonly record: (e: AuditEventInput) => void;
  private readonly warn: (message: string) => void;

  constructor(
    private readonly store: TreeCheckpoints,
    private readonly publisher: CheckpointPublisher,
    private readonly o: ScheduleOptions,
  ) {
    this.record = o.record ?? ((e) => store.ledger.append(e));
    this.warn = o.warn ?? ((m) => process.stderr.write(`latchgate: warning: ${m}\n`));
  }

  start(): this {
    if (this.o.everyEvents > 0) {
      this.unsubscribe = this.store.ledger.onAppend(() => {
        if (++this.count < this.o.everyEvents) return;
        this.count = 0;
        // After the append's transaction: setImmediate runs once the current task (and its commit) is done.
        setImmediate(() => void this.run());
      });
    }
    if (this.o.everySeconds > 0) {
      this.timer = setInterval(() => void this.run(), this.o.everySeconds * 1000);
      this.timer.unref();
    }
    return this;
  }

  /** Signs the head (unless it did not move) and publishes; a call during a round makes one more round after it. */
  run(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        this.count = 0;
        await this.round();
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Stops counting and the timer (a round under way goes on). */
  halt(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops counting and the timer, then signs and publishes one last time (gate shutdown). */
  async stop(): Promise<void> {
    this.halt();
    await this.running;
    if (this.stopped) return;
    this.stopped = true;
    await this.round();
  }

  private async round(): Promise<void> {
    try {
      this.store.signCheckpoint();
    } catch (e) {
      this.refused(e as Error);
    }
    // Pending deliveries are retried even when nothing new was signed.
    await this.publisher.publish();
  }

  private refused(e: Error): void {
    const code = e instanceof CheckpointRefusedError ? e.code : 'checkpoint_failed';
    if (this.refusals.has(e.message)) return;
    this.refusals.add(e.message);
    this.warn(`no checkpoint signed: ${e.message}`);
    try {
      this.record({ event_type: 'checkpoint_refused', decision: 'error', details: { reason: code, error: e.message } });
    } catch (x) {
      this.warn(`could not record the refusal in the ledger: ${(x as Error).message}`);
    }
  }
}
