// `latchgate providers logs`: what providers wrote with latchgate:io/log, from
// the state directory's provider log (src/gate/provider-log.ts), filtered,
// the newest last; --follow goes on printing lines as gates append them.
import { Command, InvalidArgumentError, Option } from 'commander';
import { closeSync, fstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gateSetup } from '../gate/setup.js';
import { LOG_LEVELS, matches, openLogToRead, parseProviderLog, PROVIDER_LOG, PROVIDER_LOG_MAX_BYTES, readFrom, type ProviderLogFilter, type ProviderLogRecord } from '../gate/provider-log.js';
import type { LogLevel } from '../providers/runtime-types.js';
import { displayText, safeJsonText } from './safe-text.js';

const FOLLOW_INTERVAL_MS = 250;
const MIB = PROVIDER_LOG_MAX_BYTES / (1024 * 1024);

interface LogsOptions {
  config?: string;
  action?: string;
  traceId?: string;
  principal?: string;
  level?: LogLevel;
  limit: number;
  follow?: boolean;
  json?: boolean;
}

function count(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('a whole number (0: every line)');
  return Number(v);
}

/** Characters that pass for a quote: inside a quoted text they would fake its end. */
const QUOTE_LIKE = /[\u02ba\u05f4\u201c-\u201f\u2033\u2036\u3003\uff02]/gu;

/** A provider's text in quotes, escaped: its bounds show, and nothing in it acts on the terminal. */
const quoted = (s: string) => `"${displayText(s).replace(/"/g, '\\"').replace(QUOTE_LIKE, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)}"`;

function textLine(r: ProviderLogRecord): string {
  const fields = r.fields.map(([k, v]) => ` ${quoted(k)}=${quoted(v)}`).join('');
  return `${displayText(r.time)} ${r.level.padEnd(5)} ${displayText(r.action_id)} ${displayText(r.principal)} ${displayText(r.trace_id)} ${quoted(r.message)}${fields}`;
}

/**
 * On a terminal, a line is cut at its width: a line that wrapped would start
 * a row with the provider's text, which could pass for a line of its own.
 * Every character past ASCII counts two columns (wide, or a mark: never
 * more than that), so a cut line never wraps.
 */
function fitted(line: string, columns: number | undefined): string {
  if (!columns) return line;
  let width = 0;
  let i = 0;
  for (const c of line) {
    const w = c.charCodeAt(0) < 0x80 ? 1 : 2;
    if (width + w > columns - 1) return `${line.slice(0, i)}…`;
    width += w;
    i += c.length;
  }
  return line;
}

/** A terminal's width now (it may have been resized); one that tells none (0) is taken as 80 columns. */
function terminalColumns(): number | undefined {
  if (!process.stdout.isTTY) return undefined;
  return process.stdout.columns || 80;
}

class Printer {
  cut = 0;

  constructor(private readonly o: LogsOptions) {}

  show(records: readonly ProviderLogRecord[]): void {
    if (records.length === 0) return;
    const columns = terminalColumns();
    const lines = records.map((r) => {
      if (this.o.json) return safeJsonText(JSON.stringify(r));
      const line = textLine(r);
      const fit = fitted(line, columns);
      if (fit !== line) this.cut++;
      return fit;
    });
    process.stdout.write(lines.join('\n') + '\n');
  }
}

function noteUnreadable(path: string, n: number): void {
  if (n > 0) process.stderr.write(`latchgate: ${n} line(s) of ${path} are not provider log lines (cut short by a crash, or edited): skipped\n`);
}

/** The complete lines of bytes as text, and what is left after the last newline (a line still being written). */
function completeLines(bytes: Buffer): { text: string; rest: Buffer } {
  const cut = bytes.lastIndexOf(0x0a) + 1;
  return { text: bytes.subarray(0, cut).toString('utf8'), rest: bytes.subarray(cut) };
}

type FileId = string;
const idOf = (fd: number): FileId => {
  const st = fstatSync(fd);
  return `${st.dev}:${st.ino}`;
};

/**
 * Prints the lines appended from now on, across renames to `.1`, until the
 * process is stopped. The files compared by inode are held open while
 * compared, so an inode number cannot be reused meanwhile.
 */
async function follow(path: string, filter: ProviderLogFilter, out: Printer, start: { fd: number | undefined; pos: number; rest: Buffer; older: number | undefined }): Promise<never> {
  let { fd, pos, rest, older } = start;
  const take = (bytes: Buffer) => {
    const { text, rest: left } = completeLines(Buffer.concat([rest, bytes]));
    rest = left;
    const { records, unreadable } = parseProviderLog(text);
    noteUnreadable(path, unreadable);
    out.show(records.filter((r) => matches(r, filter)));
  };
  const drain = () => {
    if (fd === undefined) return;
    const bytes = readFrom(fd, pos);
    pos += bytes.length;
    take(bytes);
  };
  for (;;) {
    await new Promise((go) => setTimeout(go, FOLLOW_INTERVAL_MS));
    drain();
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st || (fd !== undefined && `${st.dev}:${st.ino}` === idOf(fd))) continue;
    // Another file there now. Renamed twice since the last look: the file in between is `.1` now (not
    // the old file, not one read before). Whatever `.1` is stays open until the next change: known by
    // its inode meanwhile.
    const between = openLogToRead(`${path}.1`);
    const unread = between !== undefined && !(fd !== undefined && idOf(between) === idOf(fd)) && !(older !== undefined && idOf(between) === idOf(older));
    // The old file read to its very end first (a gate may write just as it is renamed), then the one between.
    drain();
    rest = Buffer.alloc(0);
    if (unread) {
      take(readFrom(between, 0));
      rest = Buffer.alloc(0);
    }
    if (fd !== undefined) closeSync(fd);
    if (older !== undefined) closeSync(older);
    older = between;
    fd = openLogToRead(path);
    pos = 0;
    drain();
  }
}

export function providerLogsCommand(): Command {
  return new Command('logs')
    .summary('print what providers logged (latchgate:io/log), newest last')
    .description(
      `Print the lines providers wrote with latchgate:io/log, each with its time, level, action, principal and trace id (the trace id of the call's event in \`latchgate audit\`), then the provider's message and fields in quotes. On a terminal a line is cut at its width (--json prints every line whole). Gates keep them in ${PROVIDER_LOG} in the state directory: ${MIB} MiB at most, and the ${MIB} MiB before in ${PROVIDER_LOG}.1.`,
    )
    .option('--config <file>', 'latchgate.toml')
    .option('--action <id>', "only this action's calls")
    .option('--trace-id <id>', 'only this call')
    .option('--principal <name>', "only this principal's calls")
    .addOption(new Option('--level <level>', 'only this level and above').choices([...LOG_LEVELS]))
    .addOption(new Option('-n, --limit <n>', 'the newest N lines (0: every line)').argParser(count).default(50))
    .option('-f, --follow', 'go on printing lines as they are logged (stop with Ctrl-C)')
    .option('--json', 'one JSON object per line')
    .action(async (o: LogsOptions) => {
      const path = join(gateSetup(o.config).stateDir, PROVIDER_LOG);
      const filter: ProviderLogFilter = { ...(o.action ? { action: o.action } : {}), ...(o.traceId ? { trace_id: o.traceId } : {}), ...(o.principal ? { principal: o.principal } : {}), ...(o.level ? { level: o.level } : {}) };
      // The newer file first, then the older: a rotation in between shows as the older being the newer one.
      const fd = openLogToRead(path);
      const olderFd = openLogToRead(`${path}.1`);
      const newer = fd !== undefined ? readFrom(fd, 0) : Buffer.alloc(0);
      const sameAsNewer = olderFd !== undefined && fd !== undefined && idOf(olderFd) === idOf(fd);
      const older = olderFd !== undefined && !sameAsNewer ? readFrom(olderFd, 0).toString('utf8') : '';
      // In --follow, a last line still being written is read whole later.
      const { text, rest } = o.follow ? completeLines(newer) : { text: newer.toString('utf8'), rest: Buffer.alloc(0) };
      const { records, unreadable } = parseProviderLog(`${older}\n${text}`);
      noteUnreadable(path, unreadable);
      const shown = records.filter((r) => matches(r, filter));
      const out = new Printer(o);
      out.show(o.limit === 0 ? shown : shown.slice(-o.limit));
      if (out.cut > 0) process.stderr.write(`latchgate: ${out.cut} line(s) cut at the terminal's width; --json prints them whole\n`);
      if (!o.follow) {
        if (fd !== undefined) closeSync(fd);
        if (olderFd !== undefined) closeSync(olderFd);
        if (shown.length === 0 && !o.json) process.stderr.write(`latchgate: no provider log lines${records.length ? ' match' : ` in ${path}`}\n`);
        return;
      }
      await follow(path, filter, out, { fd, pos: newer.length, rest, older: olderFd });
    });
}
