// The call workers: at most `size` calls run at once, each in its own worker
// thread; up to `queueLimit` more wait, and past that a call is refused with
// provider_busy. Idle workers stay warm for the next call; a worker whose
// call trapped, timed out or was aborted is terminated and replaced. A call
// aborted before it got a worker (the gate refused its run meanwhile) takes
// no slot and no place in the queue: it leaves the queue when aborted, so
// refused runs cannot crowd out the calls that go on.
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { workerCodeChanged } from './compiler-id.js';
import type { HostBridge } from './runtime-bridge.js';
import type { DoneMessage, HostMessage, LogMessage, RunMessage, SpareMessage } from './runtime-protocol.js';
import { refusal, type RunResult } from './runtime-types.js';

export interface Job {
  msg: Omit<RunMessage, 'code'>;
  code: NonNullable<RunMessage['code']>;
  bridge: HostBridge;
  timeoutMs: number;
  signal?: AbortSignal;
  /**
   * Settles when the caller is done with the call's outcome (the gate: its
   * receipt committed): only then does the worker make the next call's
   * instance, off the CPU the answer's way back needs. Without it, at once.
   */
  spareAfter?: Promise<unknown>;
}

export type Outcome = { done: DoneMessage } | { result: RunResult };

interface CallWorker {
  worker: Worker;
  flag: Int32Array;
  answers: MessagePort;
  keys: Set<string>;
}

const WORKER_URL = new URL('./runtime-worker.js', import.meta.url);
const WORKER_CHANGED =
  "latchgate's provider call worker (runtime-worker.js or a module it imports) changed on disk since this gate started (an upgrade or reinstall): restart the gate; no call runs on the new code with providers compiled for the old";

function spawn(): CallWorker {
  const signal = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(WORKER_URL, {
    workerData: { signal, answers: port2 },
    transferList: [port2],
    // Caps the glue's JS heap; linear memory and tables are capped per module (runtime-memory.ts).
    resourceLimits: { maxOldGenerationSizeMb: 256 },
  });
  worker.unref();
  return { worker, flag: new Int32Array(signal), answers: port1, keys: new Set() };
}

function ended(failure_class: 'timeout' | 'aborted' | 'trap', error: string, bridge: HostBridge): RunResult {
  return { ...refusal(failure_class, error), io_calls: bridge.ioCalls };
}

export class WorkerPool {
  private readonly idle: CallWorker[] = [];
  private readonly queue: (() => void)[] = [];
  private active = 0;
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly queueLimit: number,
  ) {
    // The call workers' code as the gate starts: what every later spawn is compared with.
    workerCodeChanged();
  }

  async run(job: Job): Promise<Outcome> {
    if (this.closed) return { result: refusal('provider_busy', 'the provider runtime is closed') };
    const notStarted = (): Outcome => ({ result: ended('aborted', 'the call was aborted before it started', job.bridge) });
    if (job.signal?.aborted) return notStarted();
    if (this.active < this.size) this.active++;
    else if (this.queue.length >= this.queueLimit)
      return { result: refusal('provider_busy', `${this.size} provider calls are running and ${this.queue.length} are waiting (the queue limit): try again later`) };
    // A finished call hands its slot straight to the first waiter, so `active` never overshoots.
    else if (!(await this.slot(job.signal))) return notStarted();
    try {
      if (this.closed) return { result: refusal('provider_busy', 'the provider runtime is closed') };
      if (job.signal?.aborted) return notStarted();
      const w = this.idle.pop() ?? this.spawn();
      if (!w) return { result: refusal('provider_untrusted', WORKER_CHANGED) };
      return await this.exec(w, job);
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }

  /** Waits in the queue for a slot: true once handed one, false when `signal` aborts first (the place is given up). */
  private slot(signal: AbortSignal | undefined): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const go = (): void => {
        signal?.removeEventListener('abort', leave);
        resolve(true);
      };
      const leave = (): void => {
        const i = this.queue.indexOf(go);
        if (i < 0) return; // already handed a slot: the run checks the signal itself
        this.queue.splice(i, 1);
        resolve(false);
      };
      this.queue.push(go);
      signal?.addEventListener('abort', leave, { once: true });
    });
  }

  /**
   * A new worker, unless its code changed on disk since this gate started;
   * an error or exit of it while it is idle (no call's listeners on it)
   * retires it, rather than being thrown on this thread.
   */
  private spawn(): CallWorker | undefined {
    if (workerCodeChanged()) return undefined;
    const w = spawn();
    const retire = (): void => {
      const i = this.idle.indexOf(w);
      if (i >= 0) this.idle.splice(i, 1);
      void w.worker.terminate();
    };
    w.worker.on('error', retire);
    w.worker.on('exit', retire);
    return w;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.idle.splice(0).map((w) => w.worker.terminate()));
  }

  private exec(w: CallWorker, job: Job): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const finish = (outcome: Outcome, keep: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        job.signal?.removeEventListener('abort', onAbort);
        w.worker.off('message', onMessage);
        w.worker.off('error', onError);
        w.worker.off('exit', onExit);
        if (keep && !this.closed) this.idle.push(w);
        else void w.worker.terminate();
        resolve(outcome);
      };
      const onMessage = (m: HostMessage | LogMessage | DoneMessage): void => {
        if (m.type === 'log') {
          if (!settled) job.bridge.log(m.args);
          return;
        }
        if (m.type === 'done') {
          // After a trap the worker is replaced, though the instance is gone anyway.
          finish({ done: m }, m.ok || m.failure_class === 'provider_error' || m.failure_class === 'response_too_large');
          // A worker another call has taken meanwhile makes that call's instance itself.
          const spare = (): void => {
            if (this.idle.includes(w)) w.worker.postMessage({ type: 'spare' } satisfies SpareMessage);
          };
          if (job.spareAfter) job.spareAfter.then(spare, spare);
          else spare();
          return;
        }
        void job.bridge.handle(m).then((answer) => {
          if (settled) return;
          w.answers.postMessage(answer);
          Atomics.store(w.flag, 0, 1);
          Atomics.notify(w.flag, 0);
        });
      };
      const onError = (e: Error): void => finish({ result: ended('trap', `the provider worker failed: ${e.message}`, job.bridge) }, false);
      const onExit = (code: number): void => finish({ result: ended('trap', `the provider worker exited (code ${code})`, job.bridge) }, false);
      const onAbort = (): void => finish({ result: ended('aborted', 'the call was aborted', job.bridge) }, false);
      const timer = setTimeout(
        () => finish({ result: ended('timeout', `the provider ran past its timeout of ${job.timeoutMs / 1000} s and was stopped`, job.bridge) }, false),
        job.timeoutMs,
      );
      job.signal?.addEventListener('abort', onAbort, { once: true });
      w.worker.on('message', onMessage);
      w.worker.on('error', onError);
      w.worker.on('exit', onExit);
      const first = !w.keys.has(job.msg.key);
      w.keys.add(job.msg.key);
      w.worker.postMessage({ ...job.msg, ...(first ? { code: job.code } : {}) } satisfies RunMessage);
    });
  }
}
