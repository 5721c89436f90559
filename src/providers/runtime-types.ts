// Shapes the provider runtime shares with its callers: the limits a call
// runs under (from the action manifest), the host functions it may reach
// (docs/PROVIDERS.md) and what a call returns.

import type { ProviderFailureClass } from '../core/failure-class.js';

/** The interfaces of wit/latchgate-io.wit a manifest may list in required_imports. */
export const IO_INTERFACES = ['latchgate:io/http', 'latchgate:io/fs', 'latchgate:io/log'] as const;
export type IoInterface = (typeof IO_INTERFACES)[number];

/** A manifest's required_imports and resource limits, plus its io byte bounds. */
export interface RunLimits {
  required_imports: string[];
  fuel: number;
  memory_mb: number;
  timeout_seconds: number;
  max_io_calls: number;
  /** Bytes of the task JSON handed to the provider. */
  max_request_bytes: number;
  /** Bytes of the JSON the provider returns. */
  max_response_bytes: number;
  /** Bytes of one host answer (an HTTP body, a file read) handed back to the provider. */
  max_host_response_bytes: number;
}

export type FileKind = 'file' | 'dir' | 'symlink' | 'other';

export interface HttpRequest {
  method: string;
  url: string;
  headers: [string, string][];
  body?: Uint8Array;
  timeout_ms?: number;
}

export interface HttpResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
}

/**
 * mayGo, when given, settles once the request may leave the gate (the call's
 * intent is durable) and rejects when it may not: the host checks the
 * request meanwhile and sends nothing before.
 */
export type HttpHost = (req: HttpRequest, mayGo?: () => Promise<void>) => Promise<HttpResponse>;

export interface FsHost {
  read(path: string): Promise<Uint8Array>;
  write(path: string, data: Uint8Array, mode: 'create' | 'overwrite'): Promise<void>;
  delete(path: string): Promise<void>;
  list(path: string): Promise<{ name: string; kind: FileKind; size: number }[]>;
  stat(path: string): Promise<{ kind: FileKind; size: number; mtime_ms: number }>;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogHost = (level: LogLevel, message: string, fields: [string, string][]) => void;

/** The main-thread host functions of one call; only those the manifest links are reachable. */
export interface Hosts {
  http?: HttpHost;
  fs?: FsHost;
  log?: LogHost;
}

/** Why a call failed (src/core/failure-class.ts). */
export type FailureClass = ProviderFailureClass;

export interface RunTimings {
  /** How long the call's instance took to make. */
  instantiate_ms: number;
  /** It was made ahead, while the worker was idle: not on the call's path. */
  made_ahead?: boolean;
  guest_ms: number;
  host_io_ms: number;
}

export interface RunResult {
  ok: boolean;
  /** The provider's `output` (validated by the gate against the response schema). */
  output?: unknown;
  error?: string;
  failure_class?: FailureClass;
  /** The provider's own account of what it did (its `receipt`): recorded, never trusted. */
  provider_receipt?: unknown;
  /** Host I/O calls (http and fs) the provider made, refused ones included. */
  io_calls: number;
  fuel_used?: number;
  timings: RunTimings;
}

/** Fails a call before a worker is involved. */
export function refusal(failure_class: FailureClass, error: string): RunResult {
  return { ok: false, failure_class, error, io_calls: 0, timings: { instantiate_ms: 0, guest_ms: 0, host_io_ms: 0 } };
}

/** A provider the runtime will not load or run (the failure class says why). */
export class ProviderRefused extends Error {
  constructor(
    readonly failure_class: FailureClass,
    message: string,
  ) {
    super(message);
    this.name = 'ProviderRefused';
  }
}
