// `latchgate providers logs`: what providers wrote with latchgate:io/log, from
// the state directory's provider log (src/gate/provider-log.ts), filtered,
// the newest last; --follow goes on printing lines as gates append them.
import { Command, InvalidArgumentError, Option } from 'commander';
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gateSetup } from '../gate/setup.js';
import { LOG_LEVELS, matches, parseProviderLog, PROVIDER_LOG, PROVIDER_LOG_MAX_BYTES, readIfThere, type ProviderLogFilter, type ProviderLogRecord } from '../gate/provider-log.js';
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

/** A provider's text, escaped: a log line cannot move the cursor or hide itself on the operator's terminal. */
function textLine(r: ProviderLogRecord): string {
  const fields = r.fields.map(([k, v]) => ` ${displayText(k)}=${displayText(v)}`).join('');
  return `${r.time} ${r.level.padEnd(5)} ${displayText(r.action_id)} ${displayText(r.principal)} ${r.trace_id}  ${displayText(r.message)}${fields}`;
}

function show(o: LogsOptions, records: readonly ProviderLogRecord[]): void {
  if (records.length === 0) return;
  process.stdout.write(records.map((r) => (o.json ? safeJsonText(JSON.stringify(r)) : textLine(r))).join('\n') + '\n');
}

function noteUnreadable(path: string, n: number): void {
  if (n > 0) process.stderr.write(`latchgate: ${n} line(s) of ${path} are not provider log lines (cut short by a crash, or edited): skipped\n`);
}

/** The bytes appended to fd since `from`. */
function readNew(fd: number, from: number): Buffer {
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

/** Prints the lines appended from now on, across renames to `.1`, until the process is stopped. */
async function follow(o: LogsOptions, path: string, filter: ProviderLogFilter, start: { fd: number; pos: number; ino: number }): Promise<never> {
  let { fd, pos, ino } = start;
  let carry = Buffer.alloc(0);
  const take = (bytes: Buffer) => {
    if (bytes.length === 0) return;
    pos += bytes.length;
    const all = Buffer.concat([carry, bytes]);
    // The last piece may be a line still being written (cut anywhere, even inside a character).
    const cut = all.lastIndexOf(0x0a) + 1;
    carry = all.subarray(cut);
    const { records, unreadable } = parseProviderLog(all.subarray(0, cut).toString('utf8'));
    noteUnreadable(path, unreadable);
    show(o, records.filter((r) => matches(r, filter)));
  };
  for (;;) {
    await new Promise((go) => setTimeout(go, FOLLOW_INTERVAL_MS));
    if (fd >= 0) take(readNew(fd, pos));
    const st = statSync(path, { throwIfNoEntry: false });
    if (st && st.ino !== ino) {
      // Rotated (or made): the old file was read to its end above; the new one from its start.
      if (fd >= 0) closeSync(fd);
      // Rotated twice since the last look: the file in between is `.1` now.
      const between = statSync(`${path}.1`, { throwIfNoEntry: false });
      if (fd >= 0 && between && between.ino !== ino && between.ino !== st.ino) {
        carry = Buffer.alloc(0);
        take(Buffer.from(readIfThere(`${path}.1`)));
      }
      fd = openSync(path, 'r');
      ino = fstatSync(fd).ino;
      pos = 0;
      carry = Buffer.alloc(0);
      take(readNew(fd, 0));
    }
  }
}

export function providerLogsCommand(): Command {
  return new Command('logs')
    .summary('print what providers logged (latchgate:io/log), newest last')
    .description(`Print the lines providers wrote with latchgate:io/log, each with its time, level, action, principal and trace id (the trace id of the call's event in \`latchgate audit\`). Gates keep them in ${PROVIDER_LOG} in the state directory: ${MIB} MiB at most, and the ${MIB} MiB before in ${PROVIDER_LOG}.1.`)
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
      // The older file first, then the newer through a descriptor: --follow reads on from where this read ends.
      const older = readIfThere(`${path}.1`);
      let fd = -1;
      try {
        fd = openSync(path, 'r');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      const newer = fd >= 0 ? readNew(fd, 0).toString('utf8') : '';
      // In --follow, a last line still being written is read whole later.
      const cut = o.follow ? newer.lastIndexOf('\n') + 1 : newer.length;
      const { records, unreadable } = parseProviderLog(`${older}\n${newer.slice(0, cut)}`);
      noteUnreadable(path, unreadable);
      const shown = records.filter((r) => matches(r, filter));
      show(o, o.limit === 0 ? shown : shown.slice(-o.limit));
      if (!o.follow) {
        if (fd >= 0) closeSync(fd);
        if (shown.length === 0 && !o.json) process.stderr.write(`latchgate: no provider log lines${records.length ? ' match' : ` in ${path}`}\n`);
        return;
      }
      await follow(o, path, filter, { fd, pos: Buffer.byteLength(newer.slice(0, cut)), ino: fd >= 0 ? fstatSync(fd).ino : -1 });
    });
}
