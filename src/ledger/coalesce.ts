// Counted denials: a flood of refusals must neither fill the ledger nor bury
// the real trail in it. Events are sorted per source (a box, a gate caller)
// into kinds (src/ledger/denial-kinds.ts says which events are denials and
// what their kind is; everything else passes straight through):
//   - the first denial of a kind is written in full at once, and opens an
//     interval for that kind;
//   - further ones of the kind within the interval are only counted (with
//     the first and last time and a few distinct samples), and written as
//     one summary event when the interval ends; a kind that stays quiet for a
//     whole interval is forgotten, so its next denial is in full again;
//   - a source holds at most maxKinds kinds at once: denials of any further
//     kind go to one over-cap summary per source, event type and decision,
//     which says so and lists a few of the kinds;
//   - close() writes whatever is counted; later events pass straight through.
// So the full events plus the summaries' counts are exactly the denials
// recorded, and per source and interval at most about 2 * maxKinds events are
// written however many denials there were (counts only grow a number).
import type { AuditEventInput } from '../core/audit-event.js';

export interface DenialKind {
  /** Same key (within a source, event type and decision) = same kind. Readable: over-cap summaries list it. */
  key: string;
  /** What a summary of the kind says besides its counts: the fields the key covers, nothing per request. */
  summary: AuditEventInput;
  /** The part of one denial that varies within its kind (a raw target, a path, a message), listed in the summary. */
  sample?: string;
}

export interface CoalescerOptions {
  /** Appends one event (full or summary). A throw from a full write reaches record()'s caller. */
  write(e: AuditEventInput): void;
  /** The event's kind if it is a denial that may be counted, else null (written in full). */
  classify(e: AuditEventInput): DenialKind | null;
  /** Default 5000. */
  intervalMs?: number;
  /** Kinds one source holds at once. Default 16. */
  maxKinds?: number;
  /** Distinct samples one summary lists. Default 8. */
  maxSamples?: number;
  /** Milliseconds since the epoch (tests inject a clock). */
  now?: () => number;
  /** Close intervals on a timer (default true); with false, only record(), sweep() and close() do. */
  timer?: boolean;
}

export const COALESCE_DEFAULTS = { intervalMs: 5000, maxKinds: 16, maxSamples: 8 } as const;
const SAMPLE_CHARS = 256;

interface Bucket {
  source: string;
  summary: AuditEventInput;
  /** The source's over-cap bucket: counts denials of kinds beyond maxKinds. */
  overCap: boolean;
  windowEnd: number;
  count: number;
  firstAt: number;
  lastAt: number;
  samples: Set<string>;
  /** Denials counted whose sample was not listed (the list was full). */
  samplesDropped: number;
}

export class DenialCoalescer {
  private readonly write: CoalescerOptions['write'];
  private readonly classify: CoalescerOptions['classify'];
  private readonly intervalMs: number;
  private readonly maxKinds: number;
  private readonly maxSamples: number;
  private readonly now: () => number;
  private readonly useTimer: boolean;
  private readonly buckets = new Map<string, Bucket>();
  /** Kind buckets (not over-cap ones) per source. */
  private readonly kinds = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(o: CoalescerOptions) {
    this.write = o.write;
    this.classify = o.classify;
    this.intervalMs = positive(o.intervalMs, COALESCE_DEFAULTS.intervalMs, 'intervalMs');
    this.maxKinds = positive(o.maxKinds, COALESCE_DEFAULTS.maxKinds, 'maxKinds');
    this.maxSamples = positive(o.maxSamples, COALESCE_DEFAULTS.maxSamples, 'maxSamples');
    this.now = o.now ?? Date.now;
    this.useTimer = o.timer ?? true;
  }

  /** Writes the event in full, or counts it into its kind's summary. */
  record(e: AuditEventInput, source: string): void {
    const kind = this.closed ? null : this.classify(e);
    if (!kind) return this.write(e);
    const now = this.now();
    const id = bucketId(source, e, kind.key);
    const open = this.current(id, now);
    if (open) return this.count(open, kind.sample, now);
    if ((this.kinds.get(source) ?? 0) < this.maxKinds) {
      this.write(e); // first of its kind: in full, before anything is remembered
      this.buckets.set(id, newBucket(source, kind.summary, false, now + this.intervalMs));
      this.kinds.set(source, (this.kinds.get(source) ?? 0) + 1);
      this.arm(now);
      return;
    }
    const capId = bucketId(source, e, null);
    let cap = this.current(capId, now);
    if (!cap) {
      const { event_type, decision, subject } = kind.summary;
      cap = newBucket(source, { event_type, ...(decision ? { decision } : {}), ...(subject ? { subject } : {}) }, true, now + this.intervalMs);
      this.buckets.set(capId, cap);
      this.arm(now);
    }
    this.count(cap, kind.key, now);
  }

  /** Ends every interval that is over: writes its summary, or forgets a kind that stayed quiet. */
  sweep(): void {
    const now = this.now();
    for (const id of [...this.buckets.keys()]) this.current(id, now);
  }

  /** Writes every summary now and passes later events straight through (the box or gate is closing). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.closed = true;
    const pending = [...this.buckets.values()].filter((b) => b.count > 0);
    this.buckets.clear();
    this.kinds.clear();
    for (const b of pending) this.writeSummary(b);
  }

  /** The bucket's open interval, after ending it if it is over (undefined when there is none). */
  private current(id: string, now: number): Bucket | undefined {
    const b = this.buckets.get(id);
    if (!b || now < b.windowEnd) return b;
    if (b.count === 0) {
      this.buckets.delete(id);
      if (!b.overCap) {
        const left = this.kinds.get(b.source)! - 1;
        if (left > 0) this.kinds.set(b.source, left);
        else this.kinds.delete(b.source);
      }
      return undefined;
    }
    // Still flooding: the summary goes out and the next interval starts now.
    const summary = { ...b };
    Object.assign(b, { windowEnd: now + this.intervalMs, count: 0, samples: new Set<string>(), samplesDropped: 0 });
    this.writeSummary(summary);
    return b;
  }

  private count(b: Bucket, sample: string | undefined, now: number): void {
    if (b.count === 0) b.firstAt = now;
    b.count++;
    b.lastAt = now;
    if (sample === undefined) return;
    const s = sample.length > SAMPLE_CHARS ? `${sample.slice(0, SAMPLE_CHARS)}...` : sample;
    if (b.samples.has(s)) return;
    if (b.samples.size < this.maxSamples) b.samples.add(s);
    else b.samplesDropped++;
  }

  private writeSummary(b: Bucket): void {
    const coalesced: Record<string, unknown> = {
      count: b.count,
      first_at: new Date(b.firstAt).toISOString(),
      last_at: new Date(b.lastAt).toISOString(),
      interval_ms: this.intervalMs,
    };
    if (b.overCap) coalesced.over_cap = { max_kinds: this.maxKinds, note: 'more kinds of denial than the cap at once; samples are the kinds' };
    if (b.samples.size > 0) coalesced.samples = [...b.samples];
    if (b.samplesDropped > 0) coalesced.samples_dropped = b.samplesDropped;
    const e: AuditEventInput = { ...b.summary, details: { ...b.summary.details, coalesced } };
    try {
      this.write(e);
    } catch (err) {
      // Not silent: the count that could not be recorded is said on stderr.
      process.stderr.write(`latchgate: cannot record a summary of ${b.count} ${b.summary.event_type} denial(s) in the ledger: ${(err as Error).message}\n`);
    }
  }

  /** One timer, for the earliest interval end (a new bucket's end is never earlier than the armed one). */
  private arm(now: number): void {
    if (!this.useTimer || this.timer || this.buckets.size === 0) return;
    let end = Infinity;
    for (const b of this.buckets.values()) end = Math.min(end, b.windowEnd);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sweep();
      this.arm(this.now());
    }, Math.max(1, end - now));
    this.timer.unref();
  }
}

function newBucket(source: string, summary: AuditEventInput, overCap: boolean, windowEnd: number): Bucket {
  return { source, summary, overCap, windowEnd, count: 0, firstAt: 0, lastAt: 0, samples: new Set(), samplesDropped: 0 };
}

/** Kinds are per source, event type and decision; key null is the over-cap bucket of those three. */
function bucketId(source: string, e: AuditEventInput, key: string | null): string {
  return JSON.stringify([source, e.event_type, e.decision ?? null, key]);
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`DenialCoalescer ${name}: expected a positive integer, got ${v}`);
  return v;
}
