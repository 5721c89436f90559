// Messages between the runtime (main thread) and its call workers.
import type { IoInterface } from './runtime-types.js';

/** Log lines kept per call; later ones are dropped (a provider cannot flood the gate's log). */
export const MAX_LOG_LINES = 256;

/** Main → worker: run one call on a fresh instance. */
export interface RunMessage {
  type: 'run';
  /** Cache key of the code: digest and memory cap. */
  key: string;
  /** The code, when this worker has not seen the key yet. */
  code?: { js: string; modules: Record<string, WebAssembly.Module> };
  task: string;
  fuel: number;
  linked: IoInterface[];
  max_response_bytes: number;
  memory_bytes: number;
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
 * (one port, in order) and counts toward MAX_LOG_LINES on both sides.
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
