// Agent state files (a profile's [state_files.*], e.g. ~/.claude.json): files
// the agent keeps its state in but that also hold keys its host installation
// later runs or honours (MCP servers, tool allowlists, trust flags, helper
// commands). The box never writes the host file: at launch it gets a private
// copy, at exit its changes are merged back (state-merge.ts) under the
// profile's key rules, written atomically as the file's owner.
//
// Layout: the copies live in a fresh directory only the launcher and the
// box's user can reach, mounted at /run/latchgate/state; the state file's
// path in the box is a symlink into it. Claude Code (2.1.x) writes
// ~/.claude.json by writing a temporary file next to the file and renaming
// it over; through a symlink it resolves the link first and does the same in
// the target's directory, so the rename happens inside the private directory
// (a bind-mounted single file would refuse the rename with EBUSY and Claude
// Code would fall back to rewriting it in place).
import { chownSync, closeSync, constants as fsc, fchmodSync, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readSync, realpathSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { LaunchError } from '../core/errors.js';
import { asOwner, type FsOwner } from './fs-identity.js';
import type { MountPlanner } from './mount-plan.js';
import type { ProtectedAction } from './protected-paths.js';
import { isObject, mergeState, sameJson, type JsonObject } from './state-merge.js';
import { compileKeyRules, type KeyRules, type StateFileSpec } from '../config/box-requests.js';
import { BOX_STATE_DIR } from '../core/box.js';

export interface PlannedStateFiles {
  /** The private directory on the host (created at launch). */
  dir: string;
  files: StateFileSpec[];
}

export const boxCopyPath = (f: StateFileSpec) => `${BOX_STATE_DIR}/${f.name}.json`;
const copyPath = (dir: string, f: StateFileSpec) => join(dir, `${f.name}.json`);
const isUnder = (p: string, root: string) => {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/**
 * The private directory's name for one launch (created by the session just
 * before the box starts, removed after it ends): unguessable, under the
 * launcher's temporary directory.
 */
export function stateDirName(): string {
  return join(tmpdir(), `latchgate-state-${randomBytes(9).toString('hex')}`);
}

/**
 * Mounts for the state files, after the trees and protected paths: the
 * private directory at /run/latchgate/state, each state file's path a
 * symlink into it (or, inside a tree mounted from the host, the copy bound
 * over the host file), and the copy again over the read-only placeholder at
 * each alsoAt path, so the agent finds its own state there and the box can
 * create no such file on the host.
 */
export function planStateFileMounts(m: MountPlanner, s: PlannedStateFiles, boundTrees: readonly string[], protectedPaths: readonly ProtectedAction[]): void {
  if (s.files.length === 0) return;
  m.ensureDir(BOX_STATE_DIR, 0o700);
  m.entries.push({ kind: 'bind', src: s.dir, path: BOX_STATE_DIR, readonly: false, why: 'state files: private copies, merged back at exit' });
  m.rule(BOX_STATE_DIR, 'rw-noexec');
  for (const f of s.files) {
    const copy = copyPath(s.dir, f);
    const tree = boundTrees.find((t) => isUnder(f.path, t));
    if (tree === undefined) m.symlink(f.path, boxCopyPath(f));
    else {
      const st = lstatSync(f.path, { throwIfNoEntry: false });
      if (!st?.isFile()) {
        throw new LaunchError(`state file ${f.path}: it is inside ${tree}, which is mounted from the host, and ${st ? 'not a regular file' : 'missing'}; the box's private copy needs a file to cover there: create it (echo '{}' > ${f.path}) or mount a narrower directory`);
      }
      m.entries.push({ kind: 'bind', src: copy, path: f.path, readonly: false, why: 'state file: the private copy' });
      m.rule(f.path, 'rw-noexec', true);
    }
    for (const p of f.alsoAt) {
      const a = protectedPaths.find((x) => x.path === p);
      if (a && (a.action === 'placeholder' || a.action === 'readonly') && a.type === 'file') {
        m.entries.push({ kind: 'bind', src: copy, path: p, readonly: false, why: 'state file: the private copy, where the agent also looks for it' });
      }
    }
  }
}

// ---------------------------------------------------------------- files

const ENOTREG = 'ENOTREG';

/** A regular file's text (never blocks on a FIFO); follow=false refuses a symlink (ELOOP). */
function readRegular(path: string, follow: boolean): string {
  const fd = openSync(path, fsc.O_RDONLY | fsc.O_NONBLOCK | (follow ? 0 : fsc.O_NOFOLLOW));
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error(`${path}: not a regular file`), { code: ENOTREG });
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(64 * 1024);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) chunks.push(Buffer.from(buf.subarray(0, n)));
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** A new file, mode 0600, never through a symlink, never over an existing name. */
function createExclusive(path: string, text: string, mode = 0o600): void {
  const fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, text);
    fchmodSync(fd, mode);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

type Parsed = { ok: true; value: JsonObject } | { ok: false; why: string };
function parseJsonObject(text: string): Parsed {
  let v: unknown;
  try {
    v = JSON.parse(text.startsWith('\uFEFF') ? text.slice(1) : text);
  } catch (e) {
    return { ok: false, why: `not valid JSON: ${(e as Error).message}` };
  }
  return isObject(v) ? { ok: true, value: v } : { ok: false, why: 'valid JSON but not an object' };
}

/**
 * Replaces path's content atomically: a temporary file in the directory of
 * the file it names (a symlink is followed, as the agent itself does), with
 * the old file's mode, renamed over it. Runs as the owner, so a symlink
 * leads nowhere that user could not write anyway.
 */
function writeAtomically(path: string, text: string): void {
  const l = lstatSync(path, { throwIfNoEntry: false });
  const target = l?.isSymbolicLink() ? realpathSync(path) : path;
  const st = l ? statSync(target) : undefined;
  if (st && !st.isFile()) throw Object.assign(new Error(`${target}: not a regular file`), { code: ENOTREG });
  const tmp = join(dirname(target), `.${basename(target)}.latchgate-${process.pid}-${randomBytes(6).toString('hex')}`);
  createExclusive(tmp, text, st ? st.mode & 0o7777 : 0o600);
  try {
    renameSync(tmp, target);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
}

// ---------------------------------------------------------------- a run

export interface StateMergeReport {
  name: string;
  path: string;
  /** merged: the host file was written; unchanged: nothing to write; kept-aside: not merged, the box's copy saved. */
  outcome: 'merged' | 'unchanged' | 'kept-aside';
  /** Key paths (JSON Pointers) the box changed that were not merged. */
  dropped: string[];
  /** Where the box's copy was saved, if it was. */
  keptAt?: string;
  /** Why the box's copy was not merged. */
  reason?: string;
}

interface Open {
  spec: StateFileSpec;
  rules: KeyRules;
  /** The content at launch (the copy the box got); a missing host file is {}. */
  base: JsonObject;
}

/**
 * One run's state files: `prepare` makes the private directory and the
 * copies before the box starts, `mergeBack` merges them after it exits,
 * `discard` removes the directory. Inside it and in the user's home every
 * filesystem operation runs as the owner (fs-identity.ts).
 */
export class StateFileSession {
  private files: Open[] = [];
  private made = false;
  private keepDir = false;

  constructor(
    private readonly planned: PlannedStateFiles | null,
    private readonly owner: FsOwner | undefined,
  ) {}

  prepare(): void {
    const planned = this.planned;
    if (!planned || planned.files.length === 0) return;
    // mkdir fails on an existing name (nobody can have made it for us); mode
    // 0700 from the start, then given to the box's user: never a chmod by
    // path after the chown, when that user could swap the name in /tmp.
    try {
      mkdirSync(planned.dir, { mode: 0o700 });
      this.made = true;
      if (this.owner) chownSync(planned.dir, this.owner.uid, this.owner.gid);
    } catch (e) {
      throw new LaunchError(`cannot create the private directory for the state files, ${planned.dir}: ${code(e)}; check that the temporary directory (TMPDIR) is writable`);
    }
    this.files = this.asOwnerOrFail(() =>
      planned.files.map((spec) => {
        let text: string | undefined;
        try {
          text = readRegular(spec.path, true);
        } catch (e) {
          if (code(e) !== 'ENOENT') {
            throw new LaunchError(`state file ${spec.path}: cannot read it as its owner${this.owner ? ` (uid ${this.owner.uid})` : ''} (${code(e)}); make it a regular file that user can read, or move it aside`);
          }
        }
        const parsed = text === undefined ? { ok: true as const, value: {} } : parseJsonObject(text);
        if (!parsed.ok) throw new LaunchError(`state file ${spec.path}: ${parsed.why}; repair it or move it aside, then launch again`);
        try {
          createExclusive(copyPath(planned.dir, spec), text ?? '{}');
        } catch (e) {
          throw new LaunchError(`state file ${spec.path}: cannot write the box's copy in ${planned.dir}: ${code(e)}`);
        }
        return { spec, rules: compileKeyRules(spec.boxKeys, spec.hostOnlyKeys), base: parsed.value };
      }),
    );
  }

  private asOwnerOrFail<T>(fn: () => T): T {
    try {
      return asOwner(this.owner, fn);
    } catch (e) {
      if (e instanceof LaunchError) throw e;
      throw new LaunchError(`state files: cannot act as uid ${this.owner?.uid ?? process.getuid!()} to copy them (${(e as Error).message}); run \`latchgate doctor\``);
    }
  }

  /** Merges every copy back into its host file; never throws (a failure keeps the copy aside). */
  mergeBack(): StateMergeReport[] {
    // Whatever goes wrong, nothing is lost: the copy stays in the private directory.
    const failed = ({ spec }: Open, e: unknown): StateMergeReport => {
      this.keepDir = true;
      return { name: spec.name, path: spec.path, outcome: 'kept-aside', dropped: [], keptAt: copyPath(this.planned!.dir, spec), reason: `could not merge (${(e as Error).message}); the host file is unchanged` };
    };
    try {
      return asOwner(this.owner, () =>
        this.files.map((f) => {
          try {
            return this.mergeOne(f);
          } catch (e) {
            return failed(f, e);
          }
        }),
      );
    } catch (e) {
      return this.files.map((f) => failed(f, e)); // the owner's identity could not be taken
    }
  }

  private mergeOne(f: Open): StateMergeReport {
    const { spec } = f;
    const report = (r: Omit<StateMergeReport, 'name' | 'path' | 'dropped'> & { dropped?: string[] }): StateMergeReport => ({ name: spec.name, path: spec.path, dropped: [], ...r });
    const copy = copyPath(this.planned!.dir, spec);
    let boxText: string;
    try {
      boxText = readRegular(copy, false);
    } catch (e) {
      return report({ outcome: 'unchanged', reason: `the box removed or replaced its copy (${code(e)}); the host file is unchanged` });
    }
    const keepAside = (why: string, dropped: string[] = []): StateMergeReport => {
      const at = `${spec.path}.latchgate-box-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      try {
        createExclusive(at, boxText);
        return report({ outcome: 'kept-aside', keptAt: at, reason: why, dropped });
      } catch (e) {
        this.keepDir = true; // nothing is lost: the private directory stays
        return report({ outcome: 'kept-aside', keptAt: copy, reason: `${why} (could not save it next to the host file: ${code(e)})`, dropped });
      }
    };
    const box = parseJsonObject(boxText);
    if (!box.ok) return keepAside(`the box left ${box.why}; the host file is unchanged`);
    let hostText: string | undefined;
    try {
      hostText = readRegular(spec.path, true);
    } catch (e) {
      if (code(e) !== 'ENOENT') return keepAside(`cannot read the host file now (${code(e)}); it is unchanged`);
    }
    const host = hostText === undefined ? { ok: true as const, value: {} } : parseJsonObject(hostText);
    if (!host.ok) return keepAside(`the host file is ${host.why} now; it is unchanged`);
    const { value, dropped } = mergeState(f.base, box.value, host.value, f.rules);
    const nothing = hostText === undefined ? Object.keys(value).length === 0 : sameJson(value, host.value);
    if (nothing) return report({ outcome: 'unchanged', dropped });
    try {
      writeAtomically(spec.path, JSON.stringify(value, null, 2));
    } catch (e) {
      return keepAside(`cannot write the host file (${code(e)}); it is unchanged`, dropped);
    }
    return report({ outcome: 'merged', dropped });
  }

  /** Removes the private directory (kept if a copy could not be saved elsewhere). */
  discard(): void {
    if (!this.made || this.keepDir) return;
    const dir = this.planned!.dir;
    this.made = false;
    try {
      asOwner(this.owner, () => rmSync(dir, { recursive: true, force: true }));
    } catch (e) {
      process.stderr.write(`latchgate: could not remove the state files' private directory ${dir}: ${code(e)}\n`);
    }
  }
}

/** The stderr line for one report, if there is anything to say. */
export function describeStateMerge(r: StateMergeReport): string | undefined {
  const parts: string[] = [];
  if (r.dropped.length > 0) parts.push(`not merged (they run or grant something on the host): ${r.dropped.join(', ')}`);
  if (r.outcome === 'kept-aside') parts.push(`WARNING: ${r.reason}; the box's copy is kept at ${r.keptAt}`);
  else if (r.reason) parts.push(r.reason);
  return parts.length > 0 ? `latchgate: state file ${r.path}: ${parts.join('; ')}` : undefined;
}
