// The durability part of this machine's floor for one execute (what bench/gate.mjs
// and bench/mcp.mjs judge the gate against): an fdatasync after a 32 KiB write
// (about an execute's WAL frames), cycling through a preallocated 16 MiB file
// as the ledger's WAL does. An execute pays two: the intent before dispatch,
// the receipt before the answer.
import { closeSync, fdatasync, fsyncSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const WAL_BYTES = 16 * 1024 * 1024;
const sync = promisify(fdatasync);

export class SyncProbe {
  #fd;
  #buf = Buffer.alloc(32 * 1024, 1);
  #pos = 0;

  /** dir: on the file system the gate's ledger is on. */
  constructor(dir) {
    this.#fd = openSync(path.join(dir, 'fsync-probe'), 'w');
    for (let i = 0; i < WAL_BYTES; i += this.#buf.length) writeSync(this.#fd, this.#buf);
    fsyncSync(this.#fd);
  }

  /** One write and its fdatasync; resolves the fdatasync's milliseconds. */
  async once() {
    writeSync(this.#fd, this.#buf, 0, this.#buf.length, this.#pos);
    this.#pos = (this.#pos + this.#buf.length) % WAL_BYTES;
    const t0 = performance.now();
    await sync(this.#fd);
    return performance.now() - t0;
  }

  close() {
    closeSync(this.#fd);
  }
}
