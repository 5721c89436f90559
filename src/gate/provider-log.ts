// What providers write with latchgate:io/log, kept for the operator in the
// state directory (never in a box): one JSON line per log line, with the call
// it came from, appended when the call ends, in one write per call. Every gate
// on the state directory appends to the same file (O_APPEND). Past its size
// cap the file is renamed to `.1` (the one before is dropped), so the two
// files hold the newest lines. Log lines are a provider's text, not evidence:
// the receipt and the ledger say what a call did.
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import type { LogLevel } from '../providers/runtime-types.js';

export const PROVIDER_LOG = 'provider-logs.jsonl';
export const PROVIDER_LOG_MAX_BYTES = 16 * 1024 * 1024;
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** One line a provider logged, and the call it was logged in. */
export interface ProviderLogRecord {
  time: string;
  trace_id: string;
  action_id: string;
  principal: string;
  level: LogLevel;
  message: string;
  fields: [string, string][];
}

export class ProviderLogFile {
  private fd = -1;
  private warned = false;

  constructor(
    readonly path: string,
    private readonly maxBytes = PROVIDER_LOG_MAX_BYTES,
    private readonly warn: (message: string) => void = (m) => process.stderr.write(`latchgate: warning: ${m}\n`),
  ) {}

  /**
   * Appends the lines of one call. A failure loses those lines and is
   * reported (once until a write succeeds again): the call itself is over
   * and its receipt written, so it is not failed for its log.
   */
  append(records: readonly ProviderLogRecord[]): void {
    if (records.length === 0) return;
    const text = records.map((r) => JSON.stringify(r)).join('\n') + '\n';
    try {
      this.rotateIfFull(Buffer.byteLength(text));
      const bytes = Buffer.from(text);
      // O_APPEND: one write lands whole at the end, whatever other gates append meanwhile.
      for (let off = 0; off < bytes.length; ) off += writeSync(this.open(), bytes, off);
      this.warned = false;
    } catch (e) {
      this.closeFd();
      if (!this.warned) this.warn(`${records.length} provider log line(s) of trace ${records[0]!.trace_id} were lost: ${this.path} cannot be written (${(e as Error).message}). Fix: make the state directory writable by the gate's user, with room on its disk`);
      this.warned = true;
    }
  }

  close(): void {
    this.closeFd();
  }

  private open(): number {
    if (this.fd >= 0) return this.fd;
    // O_NOFOLLOW: a link put in the state directory does not redirect the writes.
    const fd = openSync(this.path, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
    const st = fstatSync(fd);
    const uid = process.getuid?.();
    if (!st.isFile() || (uid !== undefined && st.uid !== uid)) {
      closeSync(fd);
      throw new Error(st.isFile() ? `it is owned by uid ${st.uid}, not by this user` : 'it is not a regular file');
    }
    this.fd = fd;
    return fd;
  }

  /** Renames a full file to `.1`, unless another gate did meanwhile (then this one opens the new file). */
  private rotateIfFull(adding: number): void {
    if (this.fd < 0) return;
    const mine = fstatSync(this.fd);
    const there = lstatSync(this.path, { throwIfNoEntry: false });
    if (!there || there.ino !== mine.ino || there.dev !== mine.dev) return this.closeFd();
    if (mine.size === 0 || mine.size + adding <= this.maxBytes) return;
    renameSync(this.path, `${this.path}.1`);
    this.closeFd();
  }

  private closeFd(): void {
    if (this.fd < 0) return;
    try {
      closeSync(this.fd);
    } catch {
      // already closed: nothing to release
    }
    this.fd = -1;
  }
}

export interface ProviderLogFilter {
  action?: string;
  trace_id?: string;
  principal?: string;
  /** The lowest level shown. */
  level?: LogLevel;
}

/** Whether a parsed line has the shape append() writes. */
function isRecord(v: unknown): v is ProviderLogRecord {
  if (v === null || typeof v !== 'object') return false;
  const r = v as Record<string, unknown>;
  return (
    ['time', 'trace_id', 'action_id', 'principal', 'message'].every((k) => typeof r[k] === 'string') &&
    LOG_LEVELS.includes(r.level as LogLevel) &&
    Array.isArray(r.fields) &&
    r.fields.every((f) => Array.isArray(f) && f.length === 2 && typeof f[0] === 'string' && typeof f[1] === 'string')
  );
}

export function matches(r: ProviderLogRecord, f: ProviderLogFilter): boolean {
  return (
    (f.action === undefined || r.action_id === f.action) &&
    (f.trace_id === undefined || r.trace_id === f.trace_id) &&
    (f.principal === undefined || r.principal === f.principal) &&
    (f.level === undefined || LOG_LEVELS.indexOf(r.level) >= LOG_LEVELS.indexOf(f.level))
  );
}

/** The records in text, and how many of its lines are not records (a line cut short by a crash, an edit). */
export function parseProviderLog(text: string): { records: ProviderLogRecord[]; unreadable: number } {
  const records: ProviderLogRecord[] = [];
  let unreadable = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      unreadable++;
      continue;
    }
    if (isRecord(v)) records.push(v);
    else unreadable++;
  }
  return { records, unreadable };
}

/** A file's text; none there reads as empty. */
export function readIfThere(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}
