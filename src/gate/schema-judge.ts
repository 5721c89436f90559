// Checks documents against operators' request and response schemas, and
// lists the errors of documents refused on the main thread
// (src/gate/action-schema.ts), in worker threads, each check under a
// deadline, so that no request or provider answer can hold the gate's main
// thread: a catastrophic backtrack costs the worker, which is ended at the
// deadline, and the document is refused (as unchecked, or with the first
// error found before it). One check runs per worker at a time; the rest
// wait, callers taking turns (one caller's line of costly documents delays
// another's check by about a deadline), up to a limit per caller and in
// all, and are refused as busy beyond it.
import { Worker } from 'node:worker_threads';
import type { ValidationResult } from './action-schema.js';
import type { JudgeAnswer, JudgeJob } from './schema-judge-worker.js';

const WORKER_URL = new URL('./schema-judge-worker.js', import.meta.url);
/**
 * How long a worker may take to start, compile the schema (the gate compiled
 * it already, at load) and parse the document, before the check's own
 * deadline begins: a loaded machine must not make a plain check overdue.
 */
const SETUP_MS = 30_000;

export const SCHEMA_CHECK_DEFAULTS = {
  /** How long one check may take ([gate] schema_check_ms). */
  deadlineMs: 1000,
  /** Checks at once: one per worker. */
  workers: 2,
  /** Checks that may wait for a worker, in all. */
  queueLimit: 1024,
  /**
   * Checks one caller may have waiting: as many requests as it may have open
   * (the gate's default max_connections_per_peer), so that ordinary parallel
   * calls never meet it. Turns, not this, keep one caller from delaying another.
   */
  callerQueueLimit: 64,
};

interface Job {
  /** Whose check it is (a principal): callers take turns. */
  who: string;
  key: number;
  schema: Record<string, unknown>;
  text: string;
  /** A provider's answer: never refused as busy, and not counted against the limits it is exempt from. */
  mustWait: boolean;
  resolve: (r: ValidationResult) => void;
}

interface Slot {
  worker: Worker;
  /** The schemas sent to this worker, by key. */
  sent: Set<number>;
  job?: { id: number; job: Job; timer: NodeJS.Timeout; first?: ValidationResult };
}

/**
 * Waiting checks, a line per caller; the lines take turns. The counts the
 * limits read leave out the checks that must wait (providers' answers): a
 * flood of one caller's answers never turns another caller's request away.
 */
class TakingTurns {
  private readonly lines = new Map<string, Job[]>();
  private readonly refusableBy = new Map<string, number>();
  /** The waiting checks that could have been refused. */
  refusable = 0;

  /** A caller's waiting checks that could have been refused. */
  waiting(who: string): number {
    return this.refusableBy.get(who) ?? 0;
  }

  /** Whether a caller has any check waiting. */
  has(who: string): boolean {
    return this.lines.has(who);
  }

  push(job: Job): void {
    const line = this.lines.get(job.who);
    if (line) line.push(job);
    else this.lines.set(job.who, [job]);
    this.count(job, 1);
  }

  private count(job: Job, n: 1 | -1): void {
    if (job.mustWait) return;
    this.refusable += n;
    const mine = (this.refusableBy.get(job.who) ?? 0) + n;
    if (mine) this.refusableBy.set(job.who, mine);
    else this.refusableBy.delete(job.who);
  }

  /** The next check of the caller `rank` puts first (the lowest; the first line on a tie). */
  shift(rank: (who: string) => number): Job | undefined {
    let pick: string | undefined;
    let best = Infinity;
    for (const who of this.lines.keys()) {
      const r = rank(who);
      if (r < best) [pick, best] = [who, r];
    }
    if (pick === undefined) return undefined;
    const line = this.lines.get(pick)!;
    const job = line.shift()!;
    if (!line.length) this.lines.delete(pick);
    this.count(job, -1);
    return job;
  }

  drain(): Job[] {
    const all = [...this.lines.values()].flat();
    this.lines.clear();
    this.refusableBy.clear();
    this.refusable = 0;
    return all;
  }
}

const unchecked = (why: 'timeout' | 'busy', message: string): ValidationResult => ({ ok: false, errors: [{ pointer: '', message }], unchecked: why });
const shuttingDown = (): ValidationResult => unchecked('busy', 'not checked: the gate is shutting down');

export class SchemaJudge {
  private readonly slots: (Slot | undefined)[];
  private readonly queue = new TakingTurns();
  private readonly keys = new WeakMap<object, number>();
  private nextKey = 1;
  private nextId = 1;
  private closed = false;
  /** When each caller's last check started (by nextId), for the turns; forgotten when its last check ends. */
  private readonly served = new Map<string, number>();

  constructor(private readonly settings: typeof SCHEMA_CHECK_DEFAULTS = SCHEMA_CHECK_DEFAULTS) {
    this.slots = new Array<Slot | undefined>(settings.workers).fill(undefined);
  }

  /**
   * The verdict of `schema` on `doc`, reached in a worker within the
   * deadline, or `unchecked`. `mustWait`: never refused as busy (a provider's
   * answer, whose effect has happened: it waits its turn however long the line).
   */
  judge(who: string, schema: Record<string, unknown>, doc: unknown, mustWait = false): Promise<ValidationResult> {
    let text: string;
    try {
      text = JSON.stringify(doc);
    } catch (e) {
      return Promise.resolve({ ok: false, errors: [{ pointer: '', message: `not JSON (${(e as Error).message})` }] });
    }
    if (text === undefined) return Promise.resolve({ ok: false, errors: [{ pointer: '', message: 'not JSON (no value)' }] });
    let key = this.keys.get(schema);
    if (key === undefined) this.keys.set(schema, (key = this.nextKey++));
    return new Promise((resolve) => {
      if (this.closed) return resolve(shuttingDown());
      // Every checker starts with the first check: while a costly document holds one, the next
      // caller's check meets a worker ready, not one still starting on a loaded machine.
      for (let i = 0; i < this.slots.length; i++) this.slot(i);
      const job: Job = { who, key: key!, schema, text, mustWait, resolve };
      const free = this.slots.findIndex((s) => s!.job === undefined);
      if (free >= 0) return this.start(free, job);
      if (!mustWait) {
        const mine = this.queue.waiting(who);
        if (mine >= this.settings.callerQueueLimit) return resolve(unchecked('busy', `not checked: ${mine} of this caller's schema checks are already waiting; retry shortly`));
        if (this.queue.refusable >= this.settings.queueLimit) {
          return resolve(unchecked('busy', `not checked: ${this.queue.refusable} schema checks are already waiting for the gate's ${this.settings.workers} checkers; retry shortly`));
        }
      }
      this.queue.push(job);
    });
  }

  /** Ends the workers; checks still waiting are refused. */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.drain()) j.resolve(shuttingDown());
    await Promise.all(
      this.slots.map((s, i) => {
        if (!s) return undefined;
        this.slots[i] = undefined;
        if (s.job) {
          clearTimeout(s.job.timer);
          s.job.job.resolve(shuttingDown());
        }
        return s.worker.terminate();
      }),
    );
  }

  private slot(i: number): Slot {
    const existing = this.slots[i];
    if (existing) return existing;
    // A heap of its own, capped: a document and schema that need more fail the check, not the gate.
    const worker = new Worker(WORKER_URL, { resourceLimits: { maxOldGenerationSizeMb: 256 } });
    const s: Slot = { worker, sent: new Set() };
    worker.on('message', (a: JudgeAnswer) => this.answered(i, s, a));
    const lost = (why: string) => this.lost(i, s, why);
    worker.on('error', (e) => lost(`its worker failed (${e.message})`));
    worker.on('exit', (code) => lost(`its worker exited (${code})`));
    // After its listeners, which ref its port: an idle checker keeps no process up.
    worker.unref();
    this.slots[i] = s;
    return s;
  }

  private start(i: number, job: Job): void {
    const s = this.slot(i);
    const id = this.nextId++;
    this.served.set(job.who, id);
    const timer = setTimeout(() => this.overdue(i, s), Math.max(SETUP_MS, this.settings.deadlineMs));
    s.job = { id, job, timer };
    s.worker.ref(); // a check under way keeps the process up until its answer
    const msg: JudgeJob = { id, key: job.key, text: job.text };
    if (!s.sent.has(job.key)) {
      msg.schema = job.schema;
      s.sent.add(job.key);
    }
    s.worker.postMessage(msg);
  }

  private answered(i: number, s: Slot, a: JudgeAnswer): void {
    const current = s.job;
    if (!current || current.id !== a.id) return;
    if ('started' in a) {
      clearTimeout(current.timer);
      current.timer = setTimeout(() => this.overdue(i, s), this.settings.deadlineMs);
      return;
    }
    if ('first' in a) {
      current.first = a.first;
      return;
    }
    if ('missing' in a) {
      // The worker let the compiled schema go: once more, with it.
      s.sent.delete(current.job.key);
      clearTimeout(current.timer);
      s.job = undefined;
      return this.start(i, current.job);
    }
    this.settle(i, s, a.result);
  }

  /** Gives the slot's check its verdict and the slot the next check waiting. */
  private settle(i: number, s: Slot, result: ValidationResult): void {
    const current = s.job!;
    clearTimeout(current.timer);
    s.job = undefined;
    current.job.resolve(result);
    const running = (who: string) => this.slots.some((o) => o?.job?.job.who === who);
    if (!running(current.job.who) && !this.queue.has(current.job.who)) this.served.delete(current.job.who);
    // Who has a check running goes last, then who was served latest: a caller's line waits behind every other caller.
    const next = this.queue.shift((who) => (running(who) ? 2 ** 52 : 0) + (this.served.get(who) ?? 0));
    if (next) this.start(i, next);
    else if (this.slots[i] === s) s.worker.unref();
  }

  private overdue(i: number, s: Slot): void {
    if (this.slots[i] !== s || !s.job) return;
    // Whatever it is doing (a backtracking pattern, say) stops here.
    this.retire(i, s);
    void s.worker.terminate();
    // Refused already, while its errors were being listed: the refusal, with its first error.
    if (s.job.first) return this.settle(i, s, s.job.first);
    this.settle(i, s, unchecked('timeout', `not checked: the check took longer than ${this.settings.deadlineMs} ms ([gate] schema_check_ms in latchgate.toml); the action's schema is costly on this document (a pattern that backtracks, uniqueItems over many items, $ref branches that multiply): simplify it`));
  }

  private lost(i: number, s: Slot, why: string): void {
    if (this.slots[i] !== s) return;
    this.retire(i, s);
    if (s.job) this.settle(i, s, { ok: false, errors: [{ pointer: '', message: `not checked: ${why}` }] });
  }

  /** The slot's worker is not used again; the next check there starts a new one. */
  private retire(i: number, s: Slot): void {
    this.slots[i] = undefined;
    s.worker.removeAllListeners('message');
  }
}
