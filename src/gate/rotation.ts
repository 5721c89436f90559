// After a key rotation: which running gate processes took the new key. Each
// live instance publishes the kid it signs with (instances.ts, kept current
// by key-watch.ts); the rotation waits, bounded, until every one of them
// names the new kid, and reports each. A process still on the old key after
// the rotation signs what verification refuses (a retired key signs nothing
// dated after its retired_at, src/keys/store.ts keyAt): it must be restarted.
import { setTimeout as sleep } from 'node:timers/promises';
import type { KeyKind } from '../keys/history.js';
import type { GateInstances, LiveInstance } from './instances.js';

export const ROTATION_WAIT_DEFAULT_SECONDS = 5;
export const ROTATION_WAIT_MAX_SECONDS = 60;
const POLL_MS = 100;

export interface RotationProcess {
  instance_id: string;
  pid: number | null;
  role: string | null;
  started_at: string | null;
  /** The kid it signs this kind with; null when it has not loaded the kind (its first signature reads the new key). */
  kid: string | null;
  picked_up: boolean;
  /** This process (the one that rotated). */
  self: boolean;
  /** Why it did not pick the key up, or why it needed not to. */
  note?: string;
}

export interface RotationReport {
  kind: KeyKind;
  kid: string;
  previous_kid: string;
  all_picked_up: boolean;
  processes: RotationProcess[];
}

/** What one live instance signs with against the current kid (the new one, unless a later rotation replaced it too). */
function assess(i: LiveInstance, kind: KeyKind, kid: string, current: string): RotationProcess {
  const base = { instance_id: i.id, pid: i.info?.pid ?? null, role: i.info?.role ?? null, started_at: i.info?.started_at ?? null, self: i.self };
  if (!i.info) return { ...base, kid: null, picked_up: false, note: 'it publishes no key state (it is starting, or runs an older latchgate)' };
  if (!i.info.kids) return { ...base, kid: null, picked_up: false, note: `it has not read its keys${i.info.key_error ? `: ${i.info.key_error}` : ' yet'}` };
  const has = i.info.kids[kind];
  if (has === undefined) return { ...base, kid: null, picked_up: true, note: `it has not loaded the ${kind} key; its first signature reads the new one` };
  if (has === current) return { ...base, kid: has, picked_up: true, ...(has !== kid ? { note: `it signs with ${has}, made current by a later rotation` } : {}) };
  const why = i.info.key_error ? `; reading the key files failed: ${i.info.key_error}` : '';
  return { ...base, kid: has, picked_up: false, note: `it still signs with ${has}${why}` };
}

/**
 * Reports which live gate processes sign with the current kid (current():
 * read from the key file each time, so a rotation made meanwhile by another
 * operator is not taken for a lag), waiting up to waitSeconds for all of them.
 */
export async function awaitRotation(instances: GateInstances, r: { kind: KeyKind; kid: string; previous_kid: string }, current: () => string, waitSeconds: number): Promise<RotationReport> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    const now = current();
    const processes = instances.live().map((i) => assess(i, r.kind, r.kid, now));
    const all = processes.every((p) => p.picked_up);
    if (all || Date.now() >= deadline) return { ...r, all_picked_up: all, processes };
    await sleep(POLL_MS);
  }
}

/** The wait_seconds of a rotation request: a number of seconds within bounds, or the default. */
export function rotationWait(v: unknown): number | string {
  if (v === undefined) return ROTATION_WAIT_DEFAULT_SECONDS;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > ROTATION_WAIT_MAX_SECONDS) {
    return `wait_seconds: expected a number of seconds from 0 to ${ROTATION_WAIT_MAX_SECONDS} (default ${ROTATION_WAIT_DEFAULT_SECONDS}), got ${JSON.stringify(v)}`;
  }
  return v;
}
