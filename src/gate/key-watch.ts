// Keeps what this gate process publishes of its signing keys (instances.ts)
// current: a cheap timer (stats of the key files; a read only when one
// changed) notices a rotation made by another process promptly, not only
// at this process's next signature, so the rotating operator can tell that
// this process switched (rotation.ts).
import type { KeyKind } from '../keys/history.js';
import type { KeyStore } from '../keys/store.js';
import type { GateInstances } from './instances.js';

export const KEY_WATCH_INTERVAL_MS = 250;

/**
 * The kinds a gate signs with, loaded before it first publishes: a kind
 * loaded only at its first signature would otherwise be held for up to an
 * interval before it is published.
 */
const GATE_KINDS: readonly KeyKind[] = ['lease', 'grant', 'receipt'];

export class KeyWatch {
  private readonly timer: NodeJS.Timeout;
  private loaded = false;

  constructor(private readonly keys: KeyStore, private readonly instances: GateInstances, intervalMs = KEY_WATCH_INTERVAL_MS) {
    this.check();
    this.timer = setInterval(() => {
      try {
        this.check();
      } catch {
        // Nowhere to publish (the state directory went away under a gate
        // that was not closed): a timer must not throw; the report of a
        // rotation then shows this process as not picked up.
      }
    }, intervalMs);
    this.timer.unref(); // never keeps a process alive
  }

  /** Reads changed key files now and publishes the kids this process signs with. */
  check(): void {
    try {
      if (!this.loaded) for (const kind of GATE_KINDS) this.keys.current(kind);
      this.loaded = true;
      this.instances.publish(this.keys.refresh());
    } catch (e) {
      // The kids published stay as they were (none, before the first
      // success), so a rotation shows as not picked up; the next signature
      // fails with the same error.
      this.instances.publish(undefined, (e as Error).message);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
