// The main-thread side of a call's host imports: checks that the interface
// is linked for this call (the import check before instantiation is the
// first line; this is the second), counts I/O calls against max_io_calls,
// runs the host function and bounds what goes back to the provider.
import { HostIoError } from './host-error.js';
import { LogBudget, type HostAnswer, type HostMessage } from './runtime-protocol.js';
import { fsPath, fsWriteArgs, httpArgs, logArgs } from './runtime-args.js';
import type { Hosts, IoInterface } from './runtime-types.js';

/** Rough byte size of a host answer: the bytes and strings in it. */
function sizeOf(v: unknown): number {
  if (v instanceof Uint8Array) return v.byteLength;
  if (typeof v === 'string') return Buffer.byteLength(v);
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + 8 + sizeOf(x), 0);
  if (v && typeof v === 'object') return Object.values(v).reduce((n: number, x) => n + 8 + sizeOf(x), 0);
  return 8;
}


export class HostBridge {
  private calls = 0;
  private readonly logBudget = new LogBudget();

  constructor(
    private readonly hosts: Hosts,
    private readonly linked: ReadonlySet<IoInterface>,
    private readonly maxIoCalls: number,
    private readonly maxAnswerBytes: number,
  ) {}

  /** http and fs calls made, refused ones included. */
  get ioCalls(): number {
    return this.calls;
  }

  async handle(msg: HostMessage): Promise<HostAnswer> {
    try {
      return { ok: true, value: await this.dispatch(msg) };
    } catch (e) {
      if (e instanceof HostIoError) return { ok: false, error: `${e.code}: ${e.message}` };
      return { ok: false, error: `host_error: ${e instanceof Error ? e.message : String(e)}` };
    }
  }

  private async dispatch({ iface, fn, args }: HostMessage): Promise<unknown> {
    if (!this.linked.has(iface)) throw new HostIoError('provider_import_denied', `${iface} is not in this action's required_imports`);
    if (iface === 'latchgate:io/log') throw new HostIoError('unknown_function', 'latchgate:io/log lines are posted, not called');
    if (++this.calls > this.maxIoCalls) throw new HostIoError('io_limit_exceeded', `this call may make at most ${this.maxIoCalls} I/O calls (max_io_calls)`);
    const value = await this.io(iface, fn, args);
    const size = sizeOf(value);
    if (size > this.maxAnswerBytes)
      throw new HostIoError('host_response_too_large', `the answer of ${iface}.${fn} is ${size} bytes, over max_host_response_bytes (${this.maxAnswerBytes})`);
    return value;
  }

  /** A log line the worker posted (LogMessage); dropped when log is not linked, malformed or past the caps. */
  log(args: unknown[]): void {
    if (!this.linked.has('latchgate:io/log')) return;
    const line = logArgs(args);
    if (!line || !this.logBudget.take(line[1], line[2])) return;
    try {
      this.hosts.log?.(...line);
    } catch {
      // A failing log sink is the gate's problem, not the provider's.
    }
  }

  private async io(iface: IoInterface, fn: string, args: unknown[]): Promise<unknown> {
    if (iface === 'latchgate:io/http') {
      if (!this.hosts.http) throw new HostIoError('host_unavailable', 'no HTTP host is configured for this call');
      if (fn !== 'fetch') throw new HostIoError('unknown_function', `latchgate:io/http has no function ${fn}`);
      return this.hosts.http(httpArgs(args));
    }
    const fs = this.hosts.fs;
    if (!fs) throw new HostIoError('host_unavailable', 'no file host is configured for this call');
    switch (fn) {
      case 'read':
        return fs.read(fsPath(fn, args));
      case 'write':
        return fs.write(...fsWriteArgs(args));
      case 'delete':
        return fs.delete(fsPath(fn, args));
      case 'list':
        return fs.list(fsPath(fn, args));
      case 'stat':
        return fs.stat(fsPath(fn, args));
      default:
        throw new HostIoError('unknown_function', `latchgate:io/fs has no function ${fn}`);
    }
  }
}
