// A worker thread of verify-pool.ts: the facts of each batch of rows it is
// sent (verify-row.ts), answered in order on its port, each answer counted in
// shared memory so the blocked verifier wakes.
import { workerData } from 'node:worker_threads';
import { rowFacts, rowOf, type RawRow } from './verify-row.js';
import type { BatchFacts, WorkerInit } from './verify-pool.js';

const { port, done } = workerData as WorkerInit;
const count = new Int32Array(done);

port.on('message', (rows: RawRow[]) => {
  let answer: BatchFacts | { error: string };
  try {
    const leaves = new Uint8Array(new ArrayBuffer(rows.length * 32));
    const f: BatchFacts = { computed: [], isObject: [], linked: [], problem: [], named: [], type: [], leaves };
    rows.forEach((row, i) => {
      const x = rowFacts(rowOf(row));
      f.computed.push(x.computed);
      f.isObject.push(x.isObject);
      f.linked.push(x.linked);
      f.problem.push(x.problem);
      f.named.push(x.named);
      f.type.push(x.type);
      leaves.set(x.leaf, i * 32);
    });
    answer = f;
  } catch (e) {
    answer = { error: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
  port.postMessage(answer, 'leaves' in answer ? [answer.leaves.buffer as ArrayBuffer] : []);
  Atomics.add(count, 0, 1);
  Atomics.notify(count, 0);
});
