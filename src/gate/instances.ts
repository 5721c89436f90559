// Which gate processes are alive. Each gate (`latchgate up`, each box's
// embedded gate) holds an exclusive flock on its own file under the state
// dir for its life; the kernel drops it when the process dies, even by
// SIGKILL. An intent without a receipt is "in flight" while its instance
// lives and "of unknown outcome" once it is gone.
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, constants as fsc } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { LOCK, loadAddon } from '../native/addon.js';

export class GateInstances {
  readonly id = randomUUID();
  private readonly dir: string;
  private readonly fd: number;
  /** Grants this process is dispatching right now. */
  readonly running = new Set<string>();

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'instances');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.fd = openSync(this.file(this.id), fsc.O_RDWR | fsc.O_CREAT, 0o600);
    if (loadAddon().flock(this.fd, LOCK.EX | LOCK.NB) !== 0) throw new Error(`cannot lock ${this.file(this.id)}`);
    this.sweep();
  }

  private file(id: string): string {
    return join(this.dir, `${id}.lock`);
  }

  /** Whether the gate process that wrote an intent may still be dispatching it. */
  isRunning(intent: { grant_id: string; instance_id?: string | null }): boolean {
    if (!intent.instance_id) return false;
    if (intent.instance_id === this.id) return this.running.has(intent.grant_id);
    return this.alive(intent.instance_id);
  }

  private alive(id: string): boolean {
    let fd: number;
    try {
      fd = openSync(this.file(id), fsc.O_RDWR);
    } catch {
      return false;
    }
    try {
      const r = loadAddon().flock(fd, LOCK.EX | LOCK.NB);
      if (r === 0) loadAddon().flock(fd, LOCK.UN);
      return r !== 0; // held: its process lives
    } finally {
      closeSync(fd);
    }
  }

  /** Removes the lock files of dead instances (their intents keep the id). */
  private sweep(): void {
    for (const name of readdirSync(this.dir)) {
      const id = name.replace(/\.lock$/, '');
      if (id !== this.id && !this.alive(id)) rmSync(this.file(id), { force: true });
    }
  }

  close(): void {
    closeSync(this.fd);
    rmSync(this.file(this.id), { force: true });
  }
}
