// Resolves a credential route's key_source (src/config/key-source.ts) on the
// host, at launch. Every failure is a LaunchError naming the field and the
// fix; none holds the key. A program's stderr is never shown: a password
// manager may print the secret, or part of it, there.
import { spawn } from 'node:child_process';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { parseKeySource, type KeySource } from '../config/key-source.js';
import { LaunchError } from '../core/errors.js';

/** How long a cmd: source may run before it is killed. */
export const KEY_COMMAND_TIMEOUT_MS = 5000;
/** The most a file: or cmd: source may hold; a key is far shorter. */
const MAX_KEY_SOURCE_BYTES = 64 * 1024;

export interface KeySourceContext {
  /** The host environment (env: sources; a cmd: source's, less its secrets: keyCommandEnv). */
  env: Readonly<Record<string, string | undefined>>;
  /** The host home directory, for file:~/... */
  home?: string;
  /** The SOPS store for sops: sources; a function that throws (naming the fix) when there is none. */
  sops?: () => { get(name: string): Promise<string | undefined> };
  /** Variables of env that hold secrets (the env: sources' own): a cmd: program does not get them. */
  secretVariables?: readonly string[];
  /** cmd: time limit (default KEY_COMMAND_TIMEOUT_MS). */
  timeoutMs?: number;
}

const firstLine = (s: string) => s.split(/\r?\n/, 1)[0] ?? '';

/**
 * The key, or undefined when an env: variable or a sops: name is not set
 * (the caller decides whether the route is optional). A file: or cmd: source
 * that yields no key is an error.
 */
export async function resolveKeySource(spec: string | KeySource, ctx: KeySourceContext, field = 'key_source'): Promise<string | undefined> {
  const s = typeof spec === 'string' ? parseKeySource(spec, field) : spec;
  switch (s.kind) {
    case 'env': {
      const v = ctx.env[s.variable];
      return v === undefined || v === '' ? undefined : v;
    }
    case 'sops': {
      if (!ctx.sops) throw new LaunchError(`${field} "sops:${s.name}": this launch has no SOPS secrets file; set [secrets] sops_file, or create the file with latchgate secrets set ${s.name}`);
      return ctx.sops().get(s.name);
    }
    case 'file':
      return readKeyFile(keyFilePath(s.path, ctx.home), field);
    case 'cmd':
      return runKeyCommand(s.argv, ctx, field);
  }
}

/** Where a file: source reads: PATH, or ~/... under home. */
export function keyFilePath(path: string, home: string | undefined): string {
  return path.startsWith('~/') ? join(home ?? '/nonexistent', path.slice(2)) : path;
}

/**
 * A cmd: program's environment: the launcher's, minus what holds a secret
 * (LATCHGATE_SECRET_*, the inline age key $SOPS_AGE_KEY, the variables the
 * env: sources read). What password managers need (HOME, PATH, GNUPGHOME,
 * GPG_*, XDG_*, DISPLAY, ...) stays.
 */
export function keyCommandEnv(env: KeySourceContext['env'], secretVariables: readonly string[] = []): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || k.startsWith('LATCHGATE_SECRET_') || k === 'SOPS_AGE_KEY' || secretVariables.includes(k)) continue;
    out[k] = v;
  }
  return out;
}

/** The first line of a regular file only its owner may read. */
function readKeyFile(path: string, field: string): string {
  const where = `${field} "file:${path}"`;
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO opens at once (and is refused below) instead of waiting for a writer.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw new LaunchError(`${where}: cannot be opened (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix the path or create the file (chmod 600)`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new LaunchError(`${where}: not a regular file; point it at a file holding the key on its first line (chmod 600)`);
    if (st.mode & 0o077) {
      throw new LaunchError(`${where}: its mode ${(st.mode & 0o777).toString(8).padStart(3, '0')} lets others than its owner read or write it; run chmod 600 ${path}`);
    }
    if (st.size > MAX_KEY_SOURCE_BYTES) throw new LaunchError(`${where}: larger than ${MAX_KEY_SOURCE_BYTES} bytes; a key file holds the key on its first line`);
    const buf = Buffer.alloc(Number(st.size));
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
    }
    const key = firstLine(buf.subarray(0, n).toString('utf8')).trim();
    if (key === '') throw new LaunchError(`${where}: its first line is empty; write the key on the first line`);
    return key;
  } finally {
    closeSync(fd);
  }
}

/** The first line a program prints, run without a shell, killed after the time limit. */
function runKeyCommand(argv: string[], ctx: KeySourceContext, field: string): Promise<string> {
  const where = `${field} cmd:${JSON.stringify(argv)}`;
  const timeoutMs = ctx.timeoutMs ?? KEY_COMMAND_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const fail = (why: string) => reject(new LaunchError(`${where}: ${why}`));
    const child = spawn(argv[0]!, argv.slice(1), { shell: false, stdio: ['ignore', 'pipe', 'pipe'], env: keyCommandEnv(ctx.env, ctx.secretVariables) });
    const out: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let timedOut = false;
    let tooLong = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      outBytes += b.length;
      if (outBytes > MAX_KEY_SOURCE_BYTES) {
        tooLong = true;
        child.kill('SIGKILL');
      } else out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => (errBytes += b.length));
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail(e.code === 'ENOENT' ? `${argv[0]} was not found (give its absolute path, or install it)` : `could not be run (${e.code ?? e.message})`);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderrNote = errBytes ? ` (it wrote ${errBytes} bytes to stderr, not shown as they may hold the key: run the command yourself to read them)` : '';
      if (timedOut) return fail(`did not finish within ${timeoutMs / 1000} s and was killed${stderrNote}`);
      if (tooLong) return fail(`printed more than ${MAX_KEY_SOURCE_BYTES} bytes and was killed; it should print the key on its first line`);
      if (signal) return fail(`was killed by ${signal}${stderrNote}`);
      if (code !== 0) return fail(`exited with status ${code}${stderrNote}`);
      const key = firstLine(Buffer.concat(out).toString('utf8')).trim();
      if (key === '') return fail(`printed nothing on its first line; it should print the key${stderrNote}`);
      resolve(key);
    });
  });
}
