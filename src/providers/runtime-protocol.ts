// Messages between the runtime (main thread) and its call workers.
import type { IoInterface } from './runtime-types.js';

/** Log lines kept per call; later ones are dropped (a provider cannot flood the gate's log). */
export const MAX_LOG_LINES = 256;

/**
 * Log text kept per call (message and fields, in UTF-16 code units): the
 * line that would pass it and every later one are dropped, so a provider
 * cannot make the gate's thread copy and hold more than this per call.
 */
export const MAX_LOG_BYTES = 65536;

/** What each field of a log line counts for besides its text: a line of many empty fields is no free line. */
const LOG_FIELD_OVERHEAD = 16;

/** The size of one log line as MAX_LOG_BYTES counts it; 0 for a malformed one. */
export function logLineSize(message: unknown, fields: unknown): number {
  if (typeof message !== 'string' || !Array.isArray(fields)) return 0;
  let n = message.length;
  for (const f of fields) {
    n += LOG_FIELD_OVERHEAD;
    if (Array.isArray(f)) for (const part of f) n += typeof part === 'string' ? part.length : 0;
  }
  return n;
}

/** Counts one call's log lines against MAX_LOG_LINES and MAX_LOG_BYTES; true while a line still fits. */
export class LogBudget {
  private lines = 0;
  private bytes = 0;

  take(message: unknown, fields: unknown): boolean {
    if (this.lines >= MAX_LOG_LINES) return false;
    const size = logLineSize(message, fields);
    if (this.bytes + size > MAX_LOG_BYTES) {
      this.lines = MAX_LOG_LINES; // later lines are dropped too: the log keeps its order
      return false;
    }
    this.lines++;
    this.bytes += size;
    return true;
  }
}

/** Main → worker: run one call on a fresh instance. */
export interface RunMessage {
  type: 'run';
  /** Cache key of the code: digest and memory cap. */
  key: string;
  /** The code, when this worker has not seen the key yet. */
  code?: { js: string; modules: Record<string, WebAssembly.Module>; memoryModules: string[] };
  task: string;
  fuel: number;
  linked: IoInterface[];
  max_response_bytes: number;
  memory_bytes: number;
}

/**
 * Main → worker: the caller is done with the call that ran last (its evidence
 * written): make the next call's instance now. Until then the worker leaves
 * the CPU to the work on the call's answer.
 */
export interface SpareMessage {
  type: 'spare';
}

/** Worker → main: a host call; the worker blocks until the answer is on its port. */
export interface HostMessage {
  type: 'host';
  iface: IoInterface;
  fn: string;
  args: unknown[];
}

/**
 * Worker → main: a log line. It returns nothing to the provider, so the
 * worker does not wait for it; it arrives before the call's done message
 * (one port, in order) and counts toward MAX_LOG_LINES and MAX_LOG_BYTES on
 * both sides (LogBudget): the worker does not post a line past them, and the
 * gate drops one should it arrive.
 */
export interface LogMessage {
  type: 'log';
  args: unknown[];
}

/** Main → worker (on the answer port): the outcome of a host call. */
export type HostAnswer = { ok: true; value: unknown } | { ok: false; error: string };

/** Worker → main: the call ended. */
export interface DoneMessage {
  type: 'done';
  ok: boolean;
  /** The guest's ok string (size-checked), when ok. */
  json?: string;
  error?: string;
  failure_class?: 'provider_error' | 'trap' | 'fuel_exhausted' | 'memory_exhausted' | 'response_too_large';
  fuel_used: number;
  instantiate_ms: number;
  /** The instance was made while the worker was idle, before the call came: instantiate_ms was not spent on the call's path. */
  made_ahead: boolean;
  guest_ms: number;
  host_io_ms: number;
}
