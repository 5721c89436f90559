// What a host function may receive. The glue lifts a guest's arguments by the
// types the component declares, and a component can declare its own shape
// for a latchgate:io function; so every host call's arguments are checked
// against wit/latchgate-io.wit and rebuilt, and the hosts only ever see these.
import { HostIoError } from './host-error.js';
import type { HttpRequest, LogLevel } from './runtime-types.js';

const LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error'];

/** Header fields one request may carry. */
export const MAX_HEADER_COUNT = 100;

function bad(what: string): never {
  throw new HostIoError('invalid_arguments', `${what} (the component's types do not match wit/latchgate-io.wit)`);
}

const isPairs = (v: unknown): v is [string, string][] =>
  Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string');

export function httpArgs(args: unknown[]): HttpRequest {
  const r = args[0] as Record<string, unknown> | undefined;
  if (args.length !== 1 || !r || typeof r !== 'object') bad('http.fetch takes one request record');
  if (typeof r.method !== 'string' || typeof r.url !== 'string') bad('http.fetch: method and url must be strings');
  if (Array.isArray(r.headers) && r.headers.length > MAX_HEADER_COUNT) throw new HostIoError('headers_too_large', `more than ${MAX_HEADER_COUNT} header fields`);
  if (!isPairs(r.headers)) bad('http.fetch: headers must be a list of (name, value) strings');
  if (r.body !== undefined && !(r.body instanceof Uint8Array)) bad('http.fetch: body must be bytes');
  if (r.timeout_ms !== undefined && !(Number.isInteger(r.timeout_ms) && (r.timeout_ms as number) >= 0)) bad('http.fetch: timeout-ms must be a u32');
  return {
    method: r.method,
    url: r.url,
    headers: r.headers.map(([k, v]) => [k, v]),
    ...(r.body !== undefined ? { body: r.body } : {}),
    ...(r.timeout_ms !== undefined ? { timeout_ms: r.timeout_ms as number } : {}),
  };
}

export function fsPath(fn: string, args: unknown[]): string {
  if (typeof args[0] !== 'string') bad(`fs.${fn}: the path must be a string`);
  return args[0];
}

export function fsWriteArgs(args: unknown[]): [string, Uint8Array, 'create' | 'overwrite'] {
  const [path, data, mode] = args;
  if (typeof path !== 'string' || !(data instanceof Uint8Array) || (mode !== 'create' && mode !== 'overwrite'))
    bad('fs.write takes a path string, bytes and the mode create or overwrite');
  return [path, data, mode];
}

/** The log line, or undefined when it is malformed (dropped: logging never fails a provider). */
export function logArgs(args: unknown[]): [LogLevel, string, [string, string][]] | undefined {
  const [level, message, fields] = args;
  if (typeof level !== 'string' || !LEVELS.includes(level) || typeof message !== 'string' || !isPairs(fields)) return undefined;
  return [level as LogLevel, message, fields];
}
