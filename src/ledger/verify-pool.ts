// The per-row work of `latchgate verify` (verify-row.ts: parse, canonical
// form, two SHA-256, columns) spread over worker threads, while the walk's
// own thread reads the rows from SQLite and checks what links them. The walk
// stays synchronous (it runs inside one read transaction): each worker
// answers on a MessagePort that this thread reads with receiveMessageOnPort,
// and wakes it through a counter in shared memory (Atomics.wait). Batches go
// round robin and each worker answers in order, so the facts come back in
// row order.
import { availableParallelism } from 'node:os';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { rowFacts, rowOf, type NamedReceipt, type RawRow, type RowFacts } from './verify-row.js';

/** What a worker answers for one batch: the facts column by column, leaf hashes in one buffer. */
export interface BatchFacts {
  computed: string[];
  isObject: boolean[];
  linked: unknown[];
  problem: (string | null)[];
  named: (NamedReceipt | null)[];
  type: string[];
  leaves: Uint8Array;
}

export interface WorkerInit {
  port: MessagePort;
  done: SharedArrayBuffer;
}

const BATCH = 1024;
/** Below this many rows the threads cost more than they save. */
const PARALLEL_FROM = 20_000;
/** A worker that answers nothing for this long has died (a fatal error cannot be reported to a blocked thread). */
const STALL_MS = 300_000;

/** How many worker threads to use for this many rows: LATCHGATE_VERIFY_THREADS, else one per core up to 4 from PARALLEL_FROM rows. */
export function verifyThreads(rows: number, env: NodeJS.ProcessEnv = process.env): number {
  const set = env.LATCHGATE_VERIFY_THREADS;
  if (set !== undefined && set !== '') {
    if (!/^\d+$/.test(set) || Number(set) > 64) throw new Error(`LATCHGATE_VERIFY_THREADS is ${JSON.stringify(set)}: expected a whole number of worker threads from 0 (none) to 64`);
    return Number(set);
  }
  return rows >= PARALLEL_FROM ? Math.min(4, availableParallelism()) : 0;
}

/** Every row with its facts, in the order given; threads = 0 works in this thread. */
export function* factsOf(rows: Iterable<RawRow>, threads: number): Generator<[RawRow, RowFacts]> {
  if (threads === 0) {
    for (const row of rows) yield [row, rowFacts(rowOf(row))];
    return;
  }
  const workers = Array.from({ length: threads }, () => new FactsWorker());
  try {
    const it = rows[Symbol.iterator]();
    const inFlight: { rows: RawRow[]; worker: FactsWorker }[] = [];
    let next = 0;
    let more = true;
    for (;;) {
      // Two batches per worker: one being worked on, one waiting, while this thread uses the oldest answer.
      while (more && inFlight.length < threads * 2) {
        const batch: RawRow[] = [];
        for (let r = it.next(); ; r = it.next()) {
          if (r.done) {
            more = false;
            break;
          }
          batch.push(r.value);
          if (batch.length === BATCH) break;
        }
        if (batch.length === 0) break;
        const worker = workers[next++ % threads]!;
        worker.send(batch);
        inFlight.push({ rows: batch, worker });
      }
      const head = inFlight.shift();
      if (!head) return;
      const f = head.worker.receive();
      for (let i = 0; i < head.rows.length; i++) {
        yield [
          head.rows[i]!,
          { computed: f.computed[i]!, isObject: f.isObject[i]!, linked: f.linked[i], problem: f.problem[i]!, named: f.named[i]!, type: f.type[i]!, leaf: f.leaves.subarray(i * 32, i * 32 + 32) },
        ];
      }
    }
  } finally {
    for (const w of workers) w.close();
  }
}

class FactsWorker {
  private readonly port: MessagePort;
  private readonly done = new Int32Array(new SharedArrayBuffer(4));
  private readonly worker: Worker;
  private received = 0;

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const init: WorkerInit = { port: port2, done: this.done.buffer as SharedArrayBuffer };
    this.worker = new Worker(new URL('./verify-worker.js', import.meta.url), { workerData: init, transferList: [port2] });
    this.worker.unref();
  }

  send(rows: RawRow[]): void {
    this.port.postMessage(rows);
  }

  /** The answer to the oldest batch not yet received; blocks this thread until it is there. */
  receive(): BatchFacts {
    for (;;) {
      const m = receiveMessageOnPort(this.port);
      if (m) {
        this.received++;
        const answer = m.message as BatchFacts | { error: string };
        if ('error' in answer) throw new Error(`internal: a verification worker failed: ${answer.error}`);
        return answer;
      }
      // The worker posts its answer before it counts it, so a count ahead of ours means the answer is there.
      const count = Atomics.load(this.done, 0);
      if (count > this.received) continue;
      if (Atomics.wait(this.done, 0, count, STALL_MS) === 'timed-out') {
        throw new Error(`internal: a verification worker answered nothing for ${STALL_MS / 1000} s; run again with LATCHGATE_VERIFY_THREADS=0 to verify in one thread`);
      }
    }
  }

  close(): void {
    this.port.close();
    void this.worker.terminate();
  }
}
