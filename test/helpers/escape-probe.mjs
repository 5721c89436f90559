// Builds test/fixtures/escape-probe.c on demand for the isolation tests.
//
//   import { buildEscapeProbe, probeSourcePath } from '../helpers/escape-probe.mjs';
//   const probe = await buildEscapeProbe();          // absolute path of the binary
//
// The binary lives in a cache directory (default: <os.tmpdir()>/latchgate-probe-<hash>),
// created mode 0755 and holding a 0755 binary so that an unprivileged sandbox user
// can execute it from there. The binary name also carries the source hash, so a
// caller-supplied cache directory never serves a stale build.
//
// If `cc` is not installed this throws; the isolation tests must not pass silently.

import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CC = 'cc';
const CFLAGS = ['-O1', '-Wall'];

/** Absolute path of test/fixtures/escape-probe.c. */
export function probeSourcePath() {
  return fileURLToPath(new URL('../fixtures/escape-probe.c', import.meta.url));
}

/** @type {Map<string, Promise<string>>} one build per binary path per process */
const inFlight = new Map();

function run(file, args) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        error.stdout = stdout;
        error.stderr = stderr;
        reject(error);
      } else {
        resolve({ stdout, stderr });
      }
    });
  });
}

async function isExecutableFile(p) {
  try {
    const st = await stat(p);
    return st.isFile() && (st.mode & 0o111) === 0o111;
  } catch {
    return false;
  }
}

// The default directory sits in a shared, world-writable tmpdir under a predictable
// name: refuse to use one that is a symlink or that belongs to someone else.
async function ensureDir(dir, strictOwnership) {
  // mkdir's mode is filtered by the umask: chmod every directory we created,
  // so that a restrictive umask cannot leave an untraversable parent behind.
  const firstCreated = await mkdir(dir, { recursive: true, mode: 0o755 });
  if (firstCreated) {
    for (let d = dir; ; d = path.dirname(d)) {
      await chmod(d, 0o755);
      if (d === firstCreated || d === path.dirname(d)) break;
    }
  }
  const st = await lstat(dir);
  if (!st.isDirectory()) {
    throw new Error(`escape-probe cache ${dir} is not a directory`);
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (st.uid === uid) {
    if ((st.mode & 0o7777) !== 0o755) await chmod(dir, 0o755);
  } else if (strictOwnership) {
    throw new Error(`escape-probe cache ${dir} is owned by uid ${st.uid}, not by us (uid ${uid}); refusing to use it`);
  }
}

/**
 * Compiles the escape probe (once per source version) and returns the absolute
 * path of the binary.
 * @param {string} [cacheDir] directory to hold the binary
 * @returns {Promise<string>}
 */
export async function buildEscapeProbe(cacheDir) {
  const src = probeSourcePath();
  const source = await readFile(src);
  const hash = createHash('sha256')
    .update(source)
    .update('\0' + [CC, ...CFLAGS, process.arch].join(' '))
    .digest('hex')
    .slice(0, 16);

  const useDefault = cacheDir === undefined || cacheDir === null || cacheDir === '';
  const dir = path.resolve(useDefault ? path.join(os.tmpdir(), `latchgate-probe-${hash}`) : cacheDir);
  const bin = path.join(dir, `escape-probe-${hash}`);

  let pending = inFlight.get(bin);
  if (!pending) {
    pending = build(src, dir, bin, useDefault);
    inFlight.set(bin, pending);
    pending.catch(() => inFlight.delete(bin));
  }
  return pending;
}

async function build(src, dir, bin, strictOwnership) {
  await ensureDir(dir, strictOwnership);
  if (await isExecutableFile(bin)) return bin;

  // Compile to a private name, then rename: concurrent test processes may race here.
  const tmp = `${bin}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await run(CC, [...CFLAGS, '-o', tmp, src]);
  } catch (e) {
    await rm(tmp, { force: true });
    if (e && e.code === 'ENOENT') {
      throw new Error(`cc is missing: cannot compile the escape probe ${src} (install a C compiler, e.g. apt-get install gcc)`);
    }
    const out = [e && e.stderr, e && e.stdout].filter(Boolean).join('\n').trim();
    throw new Error(`compiling the escape probe failed: ${CC} ${[...CFLAGS, '-o', tmp, src].join(' ')}\n${out || String(e)}`);
  }
  try {
    await chmod(tmp, 0o755);
    await rename(tmp, bin);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return bin;
}
