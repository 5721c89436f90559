// Where signed checkpoints go besides the ledger's own table (docs/EVIDENCE.md):
// checkpoints.log in the state directory (always), and the sinks of
// [ledger.checkpoints.sinks.<name>]: a directory (one file per checkpoint,
// named by size, never overwritten), a command (argv, no shell, the note on
// stdin) and an HTTPS endpoint (the note POSTed). A checkpoint is evidence
// only once it is kept where whoever can write the state directory cannot
// reach; the log is the local copy `latchgate verify` compares the table with.
//
// Delivery is at least once: each sink's progress (the largest size it took)
// is kept in checkpoint_sinks, a failure stops that sink's round and is
// retried at the next one, whatever was not delivered stays pending (across
// restarts too), never dropped. A failure is loud: on stderr every time, and
// in the ledger when a sink starts failing (checkpoint_sink_failed) and when
// it delivers again (checkpoint_sink_recovered).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsc, readFileSync, statSync } from 'node:fs';
import { link, open, readFile, unlink } from 'node:fs/promises';
import { request } from 'node:https';
import { dirname, join } from 'node:path';
import { rootCertificates } from 'node:tls';
import type { AuditEventInput } from '../core/audit-event.js';
import { LaunchError } from '../core/errors.js';
import type { Db } from './db.js';
import type { StoredCheckpoint, TreeCheckpoints } from './tree-checkpoints.js';

/** The file in the state directory every checkpoint is appended to. */
export const CHECKPOINT_LOG = 'checkpoints.log';
/** A command or HTTPS sink that has not finished by then has failed. */
export const DEFAULT_SINK_TIMEOUT_MS = 10_000;
/** Checkpoints one sink is given per round; the rest wait for the next round. */
const PER_ROUND = 64;
/** The part of a failing command's stderr or an endpoint's answer kept in the message. */
const DETAIL_MAX = 1024;

export interface CheckpointSink {
  /** Its progress row's key: 'log', or the name of its [ledger.checkpoints.sinks.<name>] section. */
  readonly name: string;
  /** Where it delivers, for messages and to notice a sink that now points elsewhere. */
  readonly target: string;
  deliver(cp: StoredCheckpoint): Promise<void>;
}

/** [ledger.checkpoints.sinks.<name>] as read from latchgate.toml: exactly one of directory, command, url. */
export interface SinkConfig {
  directory?: string;
  command?: string[];
  url?: string;
  caFile?: string;
  timeoutMs?: number;
  /** The file and section that configured it, for messages. */
  origin?: string;
}

/** The file name a checkpoint of this size has in a directory sink: the size, zero-padded so names sort. */
export function checkpointFileName(size: number): string {
  return `${String(size).padStart(16, '0')}.checkpoint`;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** checkpoints.log: each note appended whole, in one write, and made durable (fdatasync) before the next. */
export class LogSink implements CheckpointSink {
  readonly name = 'log';
  /** The same wherever the state directory is moved: its progress goes with it. */
  readonly target = CHECKPOINT_LOG;
  constructor(readonly path: string) {}

  async deliver(cp: StoredCheckpoint): Promise<void> {
    const fh = await open(this.path, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o644);
    try {
      // A blank line after each note: the next one starts after it.
      await fh.write(`${cp.note}\n`);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await syncDir(dirname(this.path));
  }
}

/**
 * A directory on another disk or mount: one file per checkpoint, written
 * aside, synced, then linked to its name (never over an existing file) and
 * the directory synced. A file of that name with other content is a second
 * checkpoint of the same size: a fork, or another ledger writing here.
 */
export class DirectorySink implements CheckpointSink {
  readonly target: string;
  constructor(
    readonly name: string,
    readonly dir: string,
  ) {
    this.target = `directory ${dir}`;
  }

  async deliver(cp: StoredCheckpoint): Promise<void> {
    const file = join(this.dir, checkpointFileName(cp.size));
    const have = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    if (have === null) {
      const tmp = join(this.dir, `.${checkpointFileName(cp.size)}.${process.pid}.${randomBytes(4).toString('hex')}`);
      const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644);
      try {
        await fh.write(cp.note);
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await link(tmp, file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      } finally {
        await unlink(tmp);
      }
      await syncDir(this.dir);
    }
    const now = have ?? (await readFile(file, 'utf8'));
    if (now !== cp.note) {
      throw new Error(`${file} holds another checkpoint of size ${cp.size}: a fork of this ledger, or another ledger writing to the same directory (give each ledger a directory of its own)`);
    }
  }
}

/** The environment a command sink runs with: the basics, never the gate's own (which may hold LATCHGATE_SECRET_* values). */
function commandEnv(cp: StoredCheckpoint): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ']) if (process.env[k] !== undefined) env[k] = process.env[k];
  env.PATH ??= '/usr/bin:/bin';
  return { ...env, LATCHGATE_CHECKPOINT_SIZE: String(cp.size), LATCHGATE_CHECKPOINT_ORIGIN: cp.origin };
}

/** A command run for each checkpoint: argv as given (no shell), the note on stdin; exit 0 within the timeout or it failed. */
export class CommandSink implements CheckpointSink {
  readonly target: string;
  constructor(
    readonly name: string,
    readonly argv: readonly string[],
    readonly timeoutMs: number,
  ) {
    this.target = `command ${JSON.stringify(argv)}`;
  }

  deliver(cp: StoredCheckpoint): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.argv[0]!, this.argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'], env: commandEnv(cp), shell: false });
      let stderr = '';
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, this.timeoutMs);
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        if (stderr.length < DETAIL_MAX) stderr += d;
      });
      // A command that exits without reading its stdin: the exit code says whether it failed.
      child.stdin.on('error', () => {});
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${this.argv[0]}: ${e.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const said = stderr.trim() ? `: ${stderr.trim().slice(0, DETAIL_MAX)}` : '';
        if (timedOut) reject(new Error(`${this.argv[0]} did not finish within ${this.timeoutMs} ms and was killed${said}`));
        else if (code !== 0) reject(new Error(`${this.argv[0]} exited with ${signal ? `signal ${signal}` : `code ${code}`}${said}`));
        else resolve();
      });
      child.stdin.end(cp.note);
    });
  }
}

/** An HTTPS endpoint the note is POSTed to (text/plain); a 2xx answer within the timeout, or it failed. No redirect is followed. */
export class HttpsSink implements CheckpointSink {
  readonly target: string;
  private readonly ca: string[] | undefined;
  constructor(
    readonly name: string,
    readonly url: URL,
    caPem: string | undefined,
    readonly timeoutMs: number,
  ) {
    this.target = url.href;
    // A CA file adds to the system's roots.
    this.ca = caPem === undefined ? undefined : [...rootCertificates, caPem];
  }

  deliver(cp: StoredCheckpoint): Promise<void> {
    return new Promise((resolve, reject) => {
      const body = Buffer.from(cp.note, 'utf8');
      const req = request(
        this.url,
        {
          method: 'POST',
          headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length, 'latchgate-checkpoint-size': String(cp.size) },
          ...(this.ca ? { ca: this.ca } : {}),
          timeout: this.timeoutMs,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            if (text.length < DETAIL_MAX) text += d;
          });
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve();
            else reject(new Error(`${this.url.href} answered HTTP ${status}${text.trim() ? `: ${text.trim().slice(0, DETAIL_MAX)}` : ''}`));
          });
          res.on('error', reject);
        },
      );
      const deadline = setTimeout(() => req.destroy(new Error(`${this.url.href} did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      req.on('timeout', () => req.destroy(new Error(`${this.url.href} did not answer within ${this.timeoutMs} ms`)));
      req.on('error', (e) => reject(new Error(`POST ${this.url.href}: ${e.message}`)));
      req.on('close', () => clearTimeout(deadline));
      req.end(body);
    });
  }
}

/** The sinks of [ledger.checkpoints.sinks]; a section that is not exactly one kind of sink is refused, naming it. */
export function sinksFromConfig(sinks: ReadonlyMap<string, SinkConfig>): CheckpointSink[] {
  const out: CheckpointSink[] = [];
  for (const [name, c] of sinks) {
    const at = c.origin ?? `latchgate.toml: [ledger.checkpoints.sinks.${name}]`;
    if (name === 'log') throw new LaunchError(`${at}: the name "log" is taken by the state directory's checkpoints.log; choose another name`);
    const kinds = (['directory', 'command', 'url'] as const).filter((k) => c[k] !== undefined);
    if (kinds.length !== 1) {
      throw new LaunchError(`${at}: expected exactly one of directory = "/path", command = ["argv", ...] or url = "https://...", got ${kinds.length ? kinds.join(' and ') : 'none'}`);
    }
    const timeoutMs = c.timeoutMs ?? DEFAULT_SINK_TIMEOUT_MS;
    if (c.caFile !== undefined && c.url === undefined) throw new LaunchError(`${at}: ca_file is for an HTTPS sink (url); remove it or add url`);
    if (c.directory !== undefined) {
      const st = statSync(c.directory, { throwIfNoEntry: false });
      if (!st?.isDirectory()) throw new LaunchError(`${at}: directory ${c.directory} ${st ? 'is not a directory' : 'does not exist'}; create it (on another disk or mount than the state directory) or fix the path`);
      out.push(new DirectorySink(name, c.directory));
    } else if (c.command !== undefined) {
      if (c.command.length === 0 || c.command[0] === '') throw new LaunchError(`${at}: command must name a program: ["git", "-C", "/path", ...]`);
      out.push(new CommandSink(name, c.command, timeoutMs));
    } else {
      let url: URL;
      try {
        url = new URL(c.url!);
      } catch {
        throw new LaunchError(`${at}: url ${JSON.stringify(c.url)} is not a URL; expected https://host[:port]/path`);
      }
      if (url.protocol !== 'https:') throw new LaunchError(`${at}: url ${JSON.stringify(c.url)} is not https: checkpoints are sent over HTTPS only`);
      if (url.username || url.password) throw new LaunchError(`${at}: url must not hold credentials`);
      let ca: string | undefined;
      if (c.caFile !== undefined) {
        try {
          ca = readFileSync(c.caFile, 'utf8');
        } catch (e) {
          throw new LaunchError(`${at}: ca_file ${c.caFile} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix the path`);
        }
        if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new LaunchError(`${at}: ca_file ${c.caFile} holds no PEM certificate`);
      }
      out.push(new HttpsSink(name, url, ca, timeoutMs));
    }
  }
  return out;
}

interface Progress {
  target: string;
  delivered_size: number;
  failures: number;
}

/** What one round did for one sink. */
export interface SinkOutcome {
  sink: string;
  target: string;
  delivered: number[];
  /** Checkpoints still waiting for this sink (0 when it is up to date; -1 when the ledger could not be read). */
  pending: number;
  error?: string;
}

/**
 * Delivers the stored checkpoints each sink has not taken yet, oldest first.
 * A sink seen for the first time (or now pointing elsewhere) starts at the
 * latest checkpoint.
 */
export class CheckpointPublisher {
  constructor(
    private readonly store: TreeCheckpoints,
    readonly sinks: readonly CheckpointSink[],
    private readonly record: (e: AuditEventInput) => void = (e) => store.ledger.append(e),
    private readonly warn: (message: string) => void = (m) => process.stderr.write(`latchgate: warning: ${m}\n`),
  ) {}

  /** One round for every sink at once; never throws (a failure is reported, and retried next round). */
  async publish(): Promise<SinkOutcome[]> {
    return Promise.all(
      this.sinks.map((s) =>
        this.round(s).catch((e: Error) => {
          // The ledger itself failed (closed, disk full): what waits stays pending.
          this.warn(`checkpoint sink ${s.name} (${s.target}): ${e.message}`);
          return { sink: s.name, target: s.target, delivered: [], pending: -1, error: e.message };
        }),
      ),
    );
  }

  private async round(sink: CheckpointSink): Promise<SinkOutcome> {
    const db = this.store.ledger.db;
    const progress = this.progress(db, sink);
    const delivered: number[] = [];
    for (const cp of this.store.checkpointsAfter(progress.delivered_size, PER_ROUND)) {
      try {
        await sink.deliver(cp);
      } catch (e) {
        const error = (e as Error).message;
        const left = countAfter(db, progress.delivered_size);
        this.failed(db, sink, progress, cp, error, left);
        return { sink: sink.name, target: sink.target, delivered, pending: left, error };
      }
      delivered.push(cp.size);
      progress.delivered_size = cp.size;
      db.prepare(`UPDATE checkpoint_sinks SET delivered_size = max(delivered_size, ?) WHERE name = ?`).run(cp.size, sink.name);
    }
    if (progress.failures > 0) {
      db.prepare('UPDATE checkpoint_sinks SET failures = 0, last_error = NULL WHERE name = ?').run(sink.name);
      this.safely(() =>
        this.record({ event_type: 'checkpoint_sink_recovered', decision: 'allow', details: { sink: sink.name, target: sink.target, failures: progress.failures, delivered_size: progress.delivered_size } }),
      );
    }
    return { sink: sink.name, target: sink.target, delivered, pending: countAfter(db, progress.delivered_size) };
  }

  private progress(db: Db, sink: CheckpointSink): Progress {
    const row = db.prepare('SELECT target, delivered_size, failures FROM checkpoint_sinks WHERE name = ?').get(sink.name) as Progress | undefined;
    if (row && row.target === sink.target) return row;
    // New here (or now elsewhere): from the latest checkpoint on.
    const latest = this.store.latestCheckpoint();
    const start = { target: sink.target, delivered_size: latest ? latest.size - 1 : -1, failures: 0 };
    db.prepare(
      `INSERT INTO checkpoint_sinks(name, target, delivered_size, failures) VALUES (?, ?, ?, 0)
       ON CONFLICT(name) DO UPDATE SET target = excluded.target, delivered_size = excluded.delivered_size, failures = 0, last_error = NULL`,
    ).run(sink.name, start.target, start.delivered_size);
    return start;
  }

  private failed(db: Db, sink: CheckpointSink, progress: Progress, cp: StoredCheckpoint, error: string, pending: number): void {
    db.prepare('UPDATE checkpoint_sinks SET failures = failures + 1, last_error = ? WHERE name = ?').run(error, sink.name);
    this.warn(
      `checkpoint sink ${sink.name} (${sink.target}) failed to take the checkpoint of size ${cp.size}: ${error}. ` +
        `${pending} checkpoint(s) wait for it and are retried at the next checkpoint. Fix: make the sink reachable again, or remove [ledger.checkpoints.sinks.${sink.name}] from latchgate.toml`,
    );
    if (progress.failures === 0) {
      this.safely(() => this.record({ event_type: 'checkpoint_sink_failed', decision: 'error', details: { sink: sink.name, target: sink.target, size: cp.size, error, pending } }));
    }
    progress.failures++;
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.warn(`could not record a checkpoint sink event in the ledger: ${(e as Error).message}`);
    }
  }
}

function countAfter(db: Db, size: number): number {
  return db.prepare('SELECT count(*) FROM checkpoints WHERE size > ?').pluck().get(size) as number;
}
