// WAL checkpoints off the event loop. With wal_autocheckpoint = 0 nothing
// copies the WAL back into the database inside a request's commit; instead a
// worker thread with its own connection runs a PASSIVE checkpoint once a
// second (it takes no write lock, so requests go on). The WAL's writer then
// restarts it from the start once a checkpoint has caught up.
import { Worker } from 'node:worker_threads';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
const tick = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch { /* busy or closing: the next tick tries again */ }
}, workerData.intervalMs);
parentPort.on('message', () => { clearInterval(tick); db.close(); parentPort.close(); });
`;

export class Checkpointer {
  private readonly worker: Worker;

  constructor(dbPath: string, intervalMs = 1000) {
    const driver = new URL(import.meta.resolve('better-sqlite3')).pathname;
    this.worker = new Worker(WORKER, { eval: true, workerData: { path: dbPath, intervalMs, driver } });
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
