// What providers write with latchgate:io/log, kept for the operator in the
// state directory (never in a box): one JSON line per log line, with the call
// it came from, appended when the call ends, in one write per call. Every gate
// on the state directory appends to the same file (O_APPEND). Past its size
// cap the file is renamed to `.1` (the one before is dropped), under a lock
// file so that two gates never both rename, so the two files hold the newest
// lines. What one principal's calls may write is bounded per call and per
// minute, so one principal cannot push everyone else's lines out at once.
// Log lines are a provider's text, not evidence: the receipt and the ledger
// say what a call did.
import { closeSync, constants as fsc, fchmodSync, fstatSync, lstatSync, openSync, readSync, renameSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import type { LogLevel } from '../providers/runtime-types.js';

export const PROVIDER_LOG = 'provider-logs.jsonl';
export const PROVIDER_LOG_MAX_BYTES = 16 * 1024 * 1024;
/** What one call may write (as JSON lines): past it, its later lines are dropped and counted. */
export const CALL_LOG_MAX_BYTES = 64 * 1024;
/** What one principal's calls may write per minute, in a burst up to as much (per gate process). */
export const PRINCIPAL_LOG_BYTES_PER_MINUTE = 2 * 1024 * 1024;
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
/** A rotation lock older than this was left by a gate that died holding it. */
const LOCK_STALE_MS = 10_000;
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

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

/** What the gate writes in a call's place when it drops lines: prefixed so that it reads as the gate's. */
function dropNote(like: ProviderLogRecord, dropped: number, why: string): ProviderLogRecord {
  return { ...like, time: new Date().toISOString(), level: 'warn', message: `latchgate: ${dropped} log line(s) dropped: ${why}`, fields: [] };
}

/** Token bucket of bytes per principal, and the lines it refused. */
class PrincipalBudget {
  private readonly buckets = new Map<string, { bytes: number; at: number; dropped: number }>();

  constructor(readonly perMinute: number) {}

  /** Whether `bytes` more may be written for `principal` now; if not, its `lines` are counted as dropped. */
  take(principal: string, bytes: number, lines: number, now = Date.now()): boolean {
    const b = this.buckets.get(principal) ?? { bytes: this.perMinute, at: now, dropped: 0 };
    b.bytes = Math.min(this.perMinute, b.bytes + ((now - b.at) * this.perMinute) / 60_000);
    b.at = now;
    this.buckets.set(principal, b);
    if (b.bytes < bytes) {
      b.dropped += lines;
      return false;
    }
    b.bytes -= bytes;
    return true;
  }

  /** The lines of `principal` refused since the last call of this. */
  takeDropped(principal: string): number {
    const b = this.buckets.get(principal);
    const n = b?.dropped ?? 0;
    if (b) b.dropped = 0;
    return n;
  }
}

export class ProviderLogFile {
  private fd = -1;
  private readonly warned = new Set<string>();
  private readonly budget: PrincipalBudget;

  constructor(
    readonly path: string,
    private readonly limits: { maxBytes?: number; callBytes?: number; principalBytesPerMinute?: number } = {},
    private readonly warn: (message: string) => void = (m) => process.stderr.write(`latchgate: warning: ${m}\n`),
  ) {
    this.budget = new PrincipalBudget(limits.principalBytesPerMinute ?? PRINCIPAL_LOG_BYTES_PER_MINUTE);
  }

  private get maxBytes(): number {
    return this.limits.maxBytes ?? PROVIDER_LOG_MAX_BYTES;
  }

  /**
   * Appends the lines of one call, as far as its caps allow. A failure
   * loses those lines and is reported (each kind once, until a write is
   * back to normal): the call itself is over and its receipt written, so it
   * is not failed for its log.
   */
  append(records: readonly ProviderLogRecord[]): void {
    if (records.length === 0) return;
    const first = records[0]!;
    const text = this.capped(records);
    if (text === '') return;
    try {
      this.write(Buffer.from(text));
    } catch (e) {
      this.closeFd();
      this.warnOnce('write', `provider log lines of trace ${first.trace_id} were lost: ${this.path} cannot be written (${(e as Error).message}). Fix: make the state directory writable by the gate's user, with room on its disk, and ${this.path} a regular file of that user with one link`);
    }
  }

  close(): void {
    this.closeFd();
  }

  /** The call's lines as JSON lines within the call's and its principal's caps, with a note of what was dropped. */
  private capped(records: readonly ProviderLogRecord[]): string {
    const first = records[0]!;
    const callBytes = this.limits.callBytes ?? CALL_LOG_MAX_BYTES;
    const out: string[] = [];
    let bytes = 0;
    let kept = 0;
    for (const r of records) {
      const line = `${JSON.stringify(r)}\n`;
      const n = Buffer.byteLength(line);
      if (bytes + n > callBytes) break;
      out.push(line);
      bytes += n;
      kept++;
    }
    const overCall = records.length - kept;
    if (!this.budget.take(first.principal, bytes, records.length)) return '';
    const notes: ProviderLogRecord[] = [];
    const earlier = this.budget.takeDropped(first.principal);
    if (earlier > 0) notes.push(dropNote(first, earlier, `principal ${first.principal}'s calls logged more than ${this.budget.perMinute} bytes a minute`));
    if (overCall > 0) notes.push(dropNote(first, overCall, `this call logged more than ${callBytes} bytes`));
    return out.join('') + notes.map((r) => `${JSON.stringify(r)}\n`).join('');
  }

  private write(bytes: Buffer): void {
    let fd = this.current();
    let size = fstatSync(fd).size;
    if (size > 0 && size + bytes.length > this.maxBytes) {
      this.rotate(fd, bytes.length);
      fd = this.current();
      size = fstatSync(fd).size;
    }
    // Still full (the rename failed, or another gate is renaming it): a little past the cap, then nothing.
    if (size > 0 && size + bytes.length > this.maxBytes + this.maxBytes / 8) {
      throw new Error(`it holds ${size} bytes, past its cap of ${this.maxBytes}, and could not be renamed to ${this.path}.1`);
    }
    // A write cut short before (a full disk) left half a line: these start on a line of their own.
    const out = size > 0 && lastByte(fd, size) !== 0x0a ? Buffer.concat([Buffer.from('\n'), bytes]) : bytes;
    // One write, so that no other gate's lines land inside these; cut short, the rest is not written.
    const n = writeSync(fd, out);
    if (n !== out.length) throw new Error(`only ${n} of ${out.length} bytes were written`);
    if (size + out.length <= this.maxBytes) this.warned.clear();
  }

  /** The descriptor of the file the path names now (another gate may have renamed it, or someone removed it). */
  private current(): number {
    if (this.fd >= 0) {
      const there = lstatSync(this.path, { throwIfNoEntry: false });
      if (there && sameInode(there, fstatSync(this.fd))) return this.fd;
      this.closeFd();
    }
    // O_NOFOLLOW: a link put in the state directory does not redirect the writes.
    // O_NONBLOCK: a FIFO put there fails the open instead of blocking the gate. Read too: its last byte.
    const fd = openSync(this.path, fsc.O_RDWR | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW | fsc.O_NONBLOCK, 0o600);
    try {
      checkOwnFile(fstatSync(fd));
      fchmodSync(fd, 0o600);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    this.fd = fd;
    return fd;
  }

  /** Renames the full file to `.1` under the rotation lock, unless another gate holds it or did it already. */
  private rotate(fd: number, adding: number): void {
    const lock = `${this.path}.lock`;
    let held: number;
    try {
      held = openSync(lock, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const st = lstatSync(lock, { throwIfNoEntry: false });
      // Left by a gate that died holding it: removed (unless another gate did first), and the next append rotates.
      if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) unlinkIfSame(lock, st);
      return;
    }
    const mineLock = fstatSync(held);
    try {
      const there = lstatSync(this.path, { throwIfNoEntry: false });
      const mine = fstatSync(fd);
      if (!there || !sameInode(there, mine) || mine.size + adding <= this.maxBytes) return;
      try {
        renameSync(this.path, `${this.path}.1`);
      } catch (e) {
        this.warnOnce('rotate', `${this.path} is full and cannot be renamed to ${this.path}.1 (${(e as Error).message}): past an eighth more its lines are dropped. Fix: remove what is at ${this.path}.1`);
        return;
      }
      this.closeFd();
    } finally {
      closeSync(held);
      // Only this gate's lock: one that stalled past LOCK_STALE_MS may have had it taken over.
      unlinkIfSame(lock, mineLock);
    }
  }

  private warnOnce(kind: string, message: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this.warn(message);
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

function sameInode(a: Stats, b: Stats): boolean {
  return a.ino === b.ino && a.dev === b.dev;
}

/** Removes path when it is still the file st describes; gone already is fine. */
function unlinkIfSame(path: string, st: Stats): void {
  const now = lstatSync(path, { throwIfNoEntry: false });
  if (!now || !sameInode(now, st)) return;
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** A regular file of this user with one name: no FIFO, no file of another user, no hard link to a file elsewhere. */
function checkOwnFile(st: Stats): void {
  if (!st.isFile()) throw new Error('it is not a regular file');
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new Error(`it is owned by uid ${st.uid}, not by this user`);
  if (st.nlink !== 1) throw new Error(`it has ${st.nlink} hard links`);
}

function lastByte(fd: number, size: number): number {
  const b = Buffer.alloc(1);
  return readSync(fd, b, 0, 1, size - 1) === 1 ? b[0]! : -1;
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
    ISO_TIME.test(r.time as string) &&
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

/**
 * Opens a log file to read: never through a link, never blocking on a FIFO,
 * a regular file only; undefined when there is none.
 */
export function openLogToRead(path: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new Error(`${path} is not a regular file`);
  }
  return fd;
}

/** The bytes of fd from `from` to its end now. */
export function readFrom(fd: number, from: number): Buffer {
  const size = fstatSync(fd).size;
  if (size <= from) return Buffer.alloc(0);
  const buf = Buffer.alloc(size - from);
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, from + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}
