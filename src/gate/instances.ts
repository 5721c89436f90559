// Which gate processes are alive, and what each says of itself. Each gate
// (`latchgate up`, each box's embedded gate, a gate command of the CLI) holds
// an exclusive flock on its own file under the state dir for its life; the
// kernel drops it when the process dies, even by SIGKILL. An intent without a
// receipt is "in flight" while its instance lives and "of unknown outcome"
// once it is gone.
//
// Next to its lock file each instance publishes <id>.json (written to a
// temporary file and renamed over, so a reader never sees half of it): its
// pid, role, start time and the kid it signs with for each key kind it has
// loaded (key-watch.ts keeps that current), which is how `latchgate keys
// rotate` tells which processes took a new key.
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, constants as fsc } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { KeyKind } from '../keys/history.js';
import { LOCK, loadAddon } from '../native/addon.js';

/** Who opened a gate: `latchgate up`, a box's gate, a CLI gate command, or anything else (tests, embedders). */
export type GateRole = 'up' | 'sandbox' | 'cli' | 'other';

/** What an instance publishes of itself (<id>.json). */
export interface InstanceInfo {
  id: string;
  pid: number;
  role: GateRole;
  started_at: string;
  /** The kid it signs with, per key kind it has loaded; null until it first read its keys. */
  kids: Partial<Record<KeyKind, string>> | null;
  /** Why its last look at the key files failed, if it did. */
  key_error?: string;
}

/** A live instance as another process sees it: info null when it has published none (yet, or an older latchgate). */
export interface LiveInstance {
  id: string;
  self: boolean;
  info: InstanceInfo | null;
}

/** Whether the process that holds this lock file lives; opens it read-only and writes nothing. */
function lockHeld(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, fsc.O_RDONLY);
  } catch {
    return false;
  }
  try {
    // A shared probe: two processes probing a dead instance at once do not
    // see each other's probe as its holder.
    const r = loadAddon().flock(fd, LOCK.SH | LOCK.NB);
    if (r === 0) loadAddon().flock(fd, LOCK.UN);
    return r !== 0; // held: its process lives
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether the gate process that wrote an intent may still be dispatching it,
 * seen from outside any gate (`latchgate verify`): its instance still holds
 * its lock. Creates nothing, so it works on a read-only state directory.
 */
export function intentInFlight(stateDir: string, intent: { instance_id?: string | null }): boolean {
  return typeof intent.instance_id === 'string' && /^[0-9a-f-]{36}$/.test(intent.instance_id) && lockHeld(join(stateDir, 'instances', `${intent.instance_id}.lock`));
}

export class GateInstances {
  readonly id = randomUUID();
  private readonly dir: string;
  private readonly fd: number;
  private info: InstanceInfo;
  private published = '';
  /** Grants this process is dispatching right now. */
  readonly running = new Set<string>();

  constructor(stateDir: string, role: GateRole = 'other') {
    this.dir = join(stateDir, 'instances');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.fd = openSync(this.file(this.id), fsc.O_RDWR | fsc.O_CREAT, 0o600);
    if (loadAddon().flock(this.fd, LOCK.EX | LOCK.NB) !== 0) throw new Error(`cannot lock ${this.file(this.id)}`);
    this.info = { id: this.id, pid: process.pid, role, started_at: new Date().toISOString(), kids: null };
    this.write();
    this.sweep();
  }

  private file(id: string, ext = 'lock'): string {
    return join(this.dir, `${id}.${ext}`);
  }

  /**
   * Publishes the kids this process signs with now, or (kids omitted) why it
   * could not read them, keeping the kids last published. Written only when
   * something changed.
   */
  publish(kids: Partial<Record<KeyKind, string>> | undefined, keyError?: string): void {
    const { key_error: _, ...rest } = this.info;
    this.info = { ...rest, kids: kids ?? rest.kids, ...(keyError !== undefined ? { key_error: keyError } : {}) };
    this.write();
  }

  private write(): void {
    const text = JSON.stringify(this.info) + '\n';
    if (text === this.published) return;
    const tmp = this.file(this.id, 'json.tmp');
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, this.file(this.id, 'json'));
    this.published = text;
  }

  /** Every gate process alive now on this state dir (this one included), with what it published. */
  live(): LiveInstance[] {
    const out: LiveInstance[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.lock')) continue;
      const id = name.slice(0, -'.lock'.length);
      const self = id === this.id;
      if (!self && !this.alive(id)) continue;
      out.push({ id, self, info: self ? { ...this.info } : this.read(id) });
    }
    return out;
  }

  private read(id: string): InstanceInfo | null {
    try {
      const v = JSON.parse(readFileSync(this.file(id, 'json'), 'utf8')) as InstanceInfo;
      return v && v.id === id && typeof v.pid === 'number' && typeof v.kids === 'object' ? v : null;
    } catch {
      return null; // none yet, or not of this form: reported as unknown
    }
  }

  /** Whether the gate process that wrote an intent may still be dispatching it. */
  isRunning(intent: { grant_id: string; instance_id?: string | null }): boolean {
    if (!intent.instance_id) return false;
    if (intent.instance_id === this.id) return this.running.has(intent.grant_id);
    return this.alive(intent.instance_id);
  }

  private alive(id: string): boolean {
    return lockHeld(this.file(id));
  }

  /** Removes the files of dead instances (their intents keep the id). */
  private sweep(): void {
    for (const name of readdirSync(this.dir)) {
      const id = name.split('.')[0]!;
      if (id !== this.id && !this.alive(id)) this.remove(id);
    }
  }

  private remove(id: string): void {
    for (const ext of ['json', 'json.tmp', 'lock']) rmSync(this.file(id, ext), { force: true });
  }

  close(): void {
    closeSync(this.fd);
    this.remove(this.id);
  }
}
