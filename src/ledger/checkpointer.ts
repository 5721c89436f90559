// WAL checkpoints off the event loop. With wal_autocheckpoint = 0 nothing
// copies the WAL back into the database inside a request's commit; instead a
// worker thread with its own connection runs a PASSIVE checkpoint a few times
// a second (it takes no write lock, so requests go on). The WAL's next writer
// restarts it from the start once a checkpoint has caught up.
//
// Under steady writes a passive checkpoint never catches up (new frames land
// while it copies), so the WAL would never restart and would grow for as long
// as the load lasts, every commit appending to it (an fdatasync that must also
// commit the file's new size costs about twice one that overwrites). Once the
// WAL holds more than restartBytes, the worker escalates to RESTART: writers
// wait (their busy timeout; at most 50 ms, the worker's own, when a
// reader holds it up) while it copies the few frames the passive
// checkpoint left, and the next commit starts again at the WAL's head,
// overwriting blocks the file already has.
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
// Short: a pending RESTART holds back new writers for as long as it waits
// (for a long reader, say); better to give up and try at the next tick.
db.pragma('busy_timeout = 50');
const restartFrames = Math.max(1, Math.floor(workerData.restartBytes / db.pragma('page_size', { simple: true })));
const tick = setInterval(() => {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    // r.log is the WAL as this checkpoint began: frames written meanwhile are not in it.
    if (r.log >= restartFrames) db.pragma('wal_checkpoint(RESTART)');
  } catch { /* busy or closing: the next tick tries again */ }
}, workerData.intervalMs);
parentPort.on('message', () => { clearInterval(tick); db.close(); parentPort.close(); });
`;

export interface CheckpointerOptions {
  /** How often a passive checkpoint runs (default 250 ms). */
  intervalMs?: number;
  /** WAL size past which a checkpoint that could not catch up becomes a RESTART (default 16 MiB). */
  restartBytes?: number;
}

export class Checkpointer {
  private readonly worker: Worker;

  constructor(dbPath: string, o: CheckpointerOptions = {}) {
    // fileURLToPath, not .pathname: a path with a space or non-ASCII is percent-encoded in the URL.
    const driver = fileURLToPath(import.meta.resolve('better-sqlite3'));
    const workerData = { path: dbPath, driver, intervalMs: o.intervalMs ?? 250, restartBytes: o.restartBytes ?? 16 * 1024 * 1024 };
    this.worker = new Worker(WORKER, { eval: true, workerData });
    this.worker.on('error', () => {
      // A checkpointer that died only lets the WAL grow; the next open starts a new one.
    });
    this.worker.unref();
  }

  /** Stops the worker after its current checkpoint. */
  close(): void {
    this.worker.postMessage('stop');
  }
}
