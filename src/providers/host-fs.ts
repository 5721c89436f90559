// The provider file-system host: read, write (create or overwrite), delete,
// list and stat under one root, as a manifest's fs section allows. Runs on
// the gate's main thread as the user who owns the root (or root); it changes
// no uid.
//
// Each call: the path must be normalized and relative (fs-path.ts); the
// operation must be in allowed_operations; the path must match an allowed
// glob and no denied one (fs-glob.ts). Then the root is opened as a directory
// fd and everything else is resolved beneath it by the kernel, never through
// a symbolic link (native/openat.cc); a symlink inside the root is refused
// too, since its name would pass the globs while its target might not. Files
// are then used through their fd only: fstat, read, write. read, overwrite
// and delete take regular files with a single link (fs-fd.ts says why);
// FIFOs are opened O_NONBLOCK so that one cannot stall the gate. Writes go
// to a temporary file in the same directory and are renamed over the name;
// create never replaces anything (RENAME_NOREPLACE), overwrite only an
// existing regular file, keeping its permission bits (set-uid and set-gid
// dropped) and owner (when the gate is root; a new file then belongs to its
// directory's owner).
//
// `evidence` holds what was done, one entry per completed call:
// read: sha256_before and sha256_after of the content (the same: a read
// changes nothing) and bytes; create/overwrite: sha256_before (overwrite),
// sha256_after of the new content and bytes; delete: sha256_before and
// bytes (neither when another entry was swapped in: file_changed); list and
// stat: op and path.
import { randomBytes } from 'node:crypto';
import { fchmodSync, fchownSync, fstatSync, fsyncSync, lstatSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { diskLocation, insideOnDisk, mountOf, mountTable, overlayLayers } from '../core/mount-location.js';
import { hostRunsFrom } from '../core/host-run-names.js';
import { isInside } from '../core/paths.js';
import { sha256Hex } from '../crypto/jcs.js';
import { Beneath, FdScope, hostErrorOf } from './fs-beneath.js';
import { hashFd, kindOf, readCapped, regularFile, writeAll, type FsKind } from './fs-fd.js';
import { GlobError, PathGlobs } from './fs-glob.js';
import { FS_OPERATIONS, type FsOperation } from './fs-operations.js';
import { parseRelPath, splitParent, type RelPath } from './fs-path.js';
import { HostIoError } from './host-error.js';

export type { FsKind } from './fs-fd.js';
export type { FsOperation } from './fs-operations.js';

/** A manifest's fs section with the root of this call. */
export interface FsHostConfig {
  root: string;
  allowed_operations: readonly FsOperation[];
  allowed_paths: readonly string[];
  denied_paths: readonly string[];
  max_file_bytes: number;
  /** list refuses a directory with more entries (default DEFAULT_MAX_LIST_ENTRIES). */
  max_list_entries?: number;
}

export interface FsHostOptions {
  /** Resolve by the O_NOFOLLOW walk even where openat2 exists (tests of the fallback). */
  forceWalk?: boolean;
  /**
   * Files no provider may read, overwrite or delete wherever a root shows
   * them (the secrets file and the age keys that open it). Compared by the
   * file each path names at the time of the call (device and inode), so a
   * hard link, another name or a file saved by rename is the same file.
   */
  protectedFiles?: readonly string[];
  /**
   * Directories no provider may read, list, write or delete in, wherever a
   * root shows them or lies in them (latchgate's state, configuration and
   * runtime directories, what the configuration names). Compared by device
   * and inode with every directory above what a call opened, so another
   * mount of the same directory (a bind mount) is the same directory.
   */
  protectedDirs?: readonly ProtectedDir[];
}

/** A directory no call works in, and what it is (for the refusal). */
export interface ProtectedDir {
  path: string;
  what: string;
  /** Read, listed and stat'ed as any directory; only written in and deleted from never (code the gate runs). */
  readable?: boolean;
}

/** The operations that change what a directory holds. */
const WRITES: ReadonlySet<FsOperation> = new Set(['create', 'overwrite', 'delete']);
const refusedThere = (d: ProtectedDir): string => `no provider ${d.readable ? 'writes or deletes' : 'reads, lists, writes or deletes'} there`;

export interface FsEvidence {
  kind: 'fs';
  op: FsOperation;
  path: string;
  sha256_before?: string;
  sha256_after?: string;
  bytes?: number;
}

export interface FsEntry {
  name: string;
  kind: FsKind;
  size: number;
}

export interface FsStat {
  kind: FsKind;
  size: number;
  mtime_ms: number;
}

export const DEFAULT_MAX_LIST_ENTRIES = 1000;
/** The largest max_file_bytes: a read holds max_file_bytes + 1 bytes in memory. */
export const FS_MAX_FILE_BYTES_LIMIT = 1024 * 1024 * 1024;
const MAX_LIST_ENTRIES_LIMIT = 100_000;

function intIn(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
}

/** Refuses a configuration the host cannot honour, naming the field (a plain Error: this is the gate's fault, not the provider's). */
function checkConfig(c: FsHostConfig): void {
  const bad = (field: string, want: string, got: unknown): Error => new Error(`fs host: ${field} must be ${want}, got ${JSON.stringify(got)}`);
  if (typeof c.root !== 'string' || !isAbsolute(c.root)) throw bad('root', 'an absolute directory path', c.root);
  if (!Array.isArray(c.allowed_operations) || c.allowed_operations.some((o) => !(FS_OPERATIONS as readonly string[]).includes(o))) {
    throw bad('fs.allowed_operations', `a list of ${FS_OPERATIONS.join(', ')}`, c.allowed_operations);
  }
  if (!intIn(c.max_file_bytes, 0, FS_MAX_FILE_BYTES_LIMIT)) throw bad('fs.max_file_bytes', `an integer in [0, ${FS_MAX_FILE_BYTES_LIMIT}]`, c.max_file_bytes);
  if (c.max_list_entries !== undefined && !intIn(c.max_list_entries, 1, MAX_LIST_ENTRIES_LIMIT)) {
    throw bad('fs.max_list_entries', `an integer in [1, ${MAX_LIST_ENTRIES_LIMIT}]`, c.max_list_entries);
  }
}

/** Where a path names, through its symbolic links (a few), even when nothing is there. */
function linkTarget(path: string): string {
  let p = path;
  for (let i = 0; i < 8; i++) {
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st?.isSymbolicLink()) return p;
    p = resolve(dirname(p), readlinkSync(p));
  }
  return p;
}

export class FsHost {
  readonly evidence: FsEvidence[] = [];
  private readonly ops: ReadonlySet<FsOperation>;
  private readonly globs: PathGlobs;
  private readonly beneath: Beneath;
  private readonly maxFileBytes: number;
  private readonly maxListEntries: number;
  private readonly protectedFiles: readonly string[];
  private readonly protectedDirs: readonly ProtectedDir[];

  /** Throws an Error naming the field when the configuration is invalid (a bad glob included). */
  constructor(config: FsHostConfig, options: FsHostOptions = {}) {
    checkConfig(config);
    try {
      this.globs = new PathGlobs(config.allowed_paths, config.denied_paths);
    } catch (e) {
      if (e instanceof GlobError) throw new Error(`fs host: ${e.message}`);
      throw e;
    }
    this.ops = new Set(config.allowed_operations);
    this.beneath = new Beneath(config.root, options.forceWalk === true);
    this.maxFileBytes = config.max_file_bytes;
    this.maxListEntries = config.max_list_entries ?? DEFAULT_MAX_LIST_ENTRIES;
    this.protectedFiles = options.protectedFiles ?? [];
    this.protectedDirs = options.protectedDirs ?? [];
  }

  /**
   * Refuses a call in a protected directory: the directory dirFd (where the
   * call reads, lists, writes or deletes) and every one above it, read up
   * through ".." from the fd itself (never from a path, which could be
   * renamed meanwhile), compared with them by device and inode.
   */
  private refuseInProtectedDir(scope: FdScope, dirFd: number, op: FsOperation, p: RelPath): void {
    if (this.protectedDirs.length === 0) return;
    const dirs = new Map<string, ProtectedDir>();
    for (const d of this.protectedDirs) {
      if (d.readable && !WRITES.has(op)) continue;
      const st = statSync(d.path, { throwIfNoEntry: false });
      if (st?.isDirectory()) dirs.set(`${st.dev}:${st.ino}`, d);
    }
    if (dirs.size === 0) return;
    let cur = dirFd;
    let st = fstatSync(cur);
    for (;;) {
      const d = dirs.get(`${st.dev}:${st.ino}`);
      if (d) throw new HostIoError('path_denied', `${op} ${JSON.stringify(p.text)}: is in latchgate's ${d.what}; ${refusedThere(d)}`);
      const parent = scope.add(this.beneath.native.openParent(cur));
      const up = fstatSync(parent);
      if (up.dev === st.dev && up.ino === st.ino) return; // "/" is its own parent
      cur = parent;
      st = up;
    }
  }

  /** Refuses the open file when it is one of the protected files now. */
  private refuseProtected(st: Stats, op: FsOperation, p: RelPath): void {
    for (const f of this.protectedFiles) {
      let other: Stats;
      try {
        other = statSync(f);
      } catch {
        continue; // no such file now: nothing there to protect
      }
      if (other.dev === st.dev && other.ino === st.ino) {
        throw new HostIoError('path_denied', `${op} ${JSON.stringify(p.text)}: is the gate's secrets file or an age key that opens it; no provider reads, writes or deletes it`);
      }
    }
  }

  /**
   * Refuses every call when the root is another mount of a part of a
   * protected directory (a bind mount of any depth: where it lies on its
   * filesystem, /proc/self/mountinfo), or an overlay one of whose layers
   * holds a protected directory or lies in one: the walk up through ".."
   * from there never meets the protected directory itself.
   */
  private refuseRootOnProtected(root: number, op: FsOperation, p: RelPath): void {
    if (this.protectedDirs.length === 0) return;
    const table = mountTable();
    const at = readlinkSync(`/proc/self/fd/${root}`);
    const here = diskLocation(at, table);
    const layers = overlayLayers(mountOf(at, table) ?? { dev: '', root: '', point: '' });
    for (const d of this.protectedDirs) {
      if (d.readable && !WRITES.has(op)) continue;
      let real: string;
      try {
        real = realpathSync(d.path);
      } catch {
        continue; // not there: nothing of it to show
      }
      const there = diskLocation(real, table);
      const refuse = (why: string) => new HostIoError('path_denied', `${op} ${JSON.stringify(p.text)}: the root ${at} ${why} latchgate's ${d.what}; ${refusedThere(d)}`);
      if (here && there && here.dev === there.dev && isInside(there.path, here.path)) throw refuse('lies in (through this or another mount)');
      for (const layer of layers) {
        if (insideOnDisk(layer, real, table) || insideOnDisk(real, layer, table)) throw refuse(`is an overlay whose layer ${layer} holds or lies in`);
      }
    }
  }

  /** Refuses to make a protected file that is not there yet (by its directory and name): it would be trusted once made. */
  private refuseProtectedName(dir: number, name: string, op: FsOperation, p: RelPath): void {
    const here = fstatSync(dir);
    for (const f of this.protectedFiles.map(linkTarget)) {
      if (basename(f) !== name) continue;
      const parent = statSync(dirname(f), { throwIfNoEntry: false });
      if (parent && parent.dev === here.dev && parent.ino === here.ino) {
        throw new HostIoError('path_denied', `${op} ${JSON.stringify(p.text)}: is where latchgate reads its secrets, a key or its configuration; no provider makes it`);
      }
    }
  }

  async read(path: string): Promise<Uint8Array> {
    const p = this.admit('read', path, false);
    const { parent, name } = splitParent(p);
    return this.run('read', p, (scope, root) => {
      const F = this.beneath.flags;
      const dir = this.beneath.openDir(scope, root, parent, 'read');
      this.refuseInProtectedDir(scope, dir, 'read', p);
      const fd = this.beneath.open(scope, dir, name, F.O_RDONLY | F.O_NONBLOCK | F.O_NOCTTY, 'read');
      const st = regularFile(fd, 'read', p.text);
      this.refuseProtected(st, 'read', p);
      this.capSize(st.size, 'read', p);
      const data = readCapped(fd, this.maxFileBytes);
      this.capSize(data.length, 'read', p);
      const sha = sha256Hex(data);
      this.evidence.push({ kind: 'fs', op: 'read', path: p.text, sha256_before: sha, sha256_after: sha, bytes: data.length });
      return new Uint8Array(data);
    });
  }

  async write(path: string, data: Uint8Array, mode: 'create' | 'overwrite'): Promise<void> {
    if (mode !== 'create' && mode !== 'overwrite') throw new HostIoError('invalid_argument', `write mode must be "create" or "overwrite", got ${JSON.stringify(mode)}`);
    const p = this.admit(mode, path, false);
    if (!(data instanceof Uint8Array)) throw new HostIoError('invalid_argument', 'write data must be bytes (a Uint8Array)');
    this.capSize(data.length, mode, p);
    const { parent, name } = splitParent(p);
    this.run(mode, p, (scope, root) => {
      const dir = this.beneath.openDir(scope, root, parent, mode);
      this.refuseInProtectedDir(scope, dir, mode, p);
      this.refuseProtectedName(dir, name, mode, p);
      const before = mode === 'overwrite' ? this.existingFile(scope, dir, name, p, mode) : this.mustBeAbsent(scope, dir, name, p);
      this.replace(scope, dir, name, p, data, mode, before?.st);
      this.evidence.push({ kind: 'fs', op: mode, path: p.text, ...(before ? { sha256_before: before.sha256 } : {}), sha256_after: sha256Hex(data), bytes: data.length });
    });
  }

  async delete(path: string): Promise<void> {
    const p = this.admit('delete', path, false);
    const { parent, name } = splitParent(p);
    this.run('delete', p, (scope, root) => {
      const dir = this.beneath.openDir(scope, root, parent, 'delete');
      this.refuseInProtectedDir(scope, dir, 'delete', p);
      const { fd, st, sha256 } = this.existingFile(scope, dir, name, p, 'delete');
      try {
        this.beneath.native.unlinkAt(dir, name);
      } catch (e) {
        throw hostErrorOf(e, 'delete', p.text);
      }
      // Linux has no "unlink if this inode": an entry swapped in at the same
      // name between the check and the unlink goes instead (a name the
      // globs allowed; removing a name never touches what it links to). It
      // is noticed when the checked file still has its link: the evidence
      // then records a delete at that path without the checked file's digest.
      if (fstatSync(fd).nlink !== 0) {
        this.evidence.push({ kind: 'fs', op: 'delete', path: p.text });
        throw new HostIoError('file_changed', `delete ${JSON.stringify(p.text)}: the name was replaced while it was deleted; the entry removed is not the file that was checked`);
      }
      this.evidence.push({ kind: 'fs', op: 'delete', path: p.text, sha256_before: sha256, bytes: st.size });
    });
  }

  /** The entries of a directory ("." is the root), sorted by name; entries matching a denied glob are left out. */
  async list(path: string): Promise<FsEntry[]> {
    const p = this.admit('list', path, true);
    return this.run('list', p, (scope, root) => {
      const dir = this.beneath.openDir(scope, root, p.text, 'list');
      this.refuseInProtectedDir(scope, dir, 'list', p);
      let entries: FsEntry[];
      try {
        entries = this.beneath.native.listDir(dir, this.maxListEntries + 1);
      } catch (e) {
        throw hostErrorOf(e, 'list', p.text);
      }
      if (entries.length > this.maxListEntries) {
        throw new HostIoError('too_many_entries', `list ${JSON.stringify(p.text)}: more than ${this.maxListEntries} entries (fs.max_list_entries)`);
      }
      const shown = entries.filter((e) => !this.globs.isDenied([...p.components, e.name])).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      this.evidence.push({ kind: 'fs', op: 'list', path: p.text });
      return shown;
    });
  }

  /** What path is ("." is the root); a symlink is reported as one, never followed. */
  async stat(path: string): Promise<FsStat> {
    const p = this.admit('stat', path, true);
    return this.run('stat', p, (scope, root) => {
      const { parent, name } = p.components.length ? splitParent(p) : { parent: '.', name: '.' };
      const dir = this.beneath.openDir(scope, root, parent, 'stat');
      this.refuseInProtectedDir(scope, dir, 'stat', p);
      const fd = this.beneath.open(scope, dir, name, this.beneath.flags.O_PATH, 'stat');
      const st = fstatSync(fd);
      // A directory stat'ed is where a list would look.
      if (st.isDirectory()) this.refuseInProtectedDir(scope, fd, 'stat', p);
      this.evidence.push({ kind: 'fs', op: 'stat', path: p.text });
      return { kind: kindOf(st), size: st.size, mtime_ms: Math.floor(st.mtimeMs) };
    });
  }

  private admit(op: FsOperation, path: string, allowRoot: boolean): RelPath {
    if (!this.ops.has(op)) throw new HostIoError('operation_not_allowed', `${op} is not in this action's fs.allowed_operations (${[...this.ops].join(', ')})`);
    const p = parseRelPath(path, allowRoot);
    const verdict = this.globs.verdict(p.components);
    if (verdict === 'denied') throw new HostIoError('path_denied', `${op} ${JSON.stringify(p.text)}: the path matches fs.denied_paths`);
    if (verdict === 'not_allowed') throw new HostIoError('path_not_allowed', `${op} ${JSON.stringify(p.text)}: the path matches none of fs.allowed_paths`);
    // Whatever the manifest's globs allow: what the host runs from later is never written.
    const runs = WRITES.has(op) ? hostRunsFrom(p.components) : undefined;
    if (runs) throw new HostIoError('path_denied', `${op} ${JSON.stringify(p.text)}: is in ${runs}; no provider writes or deletes there`);
    return p;
  }

  private capSize(size: number, op: string, p: RelPath): void {
    if (size > this.maxFileBytes) throw new HostIoError('file_too_large', `${op} ${JSON.stringify(p.text)}: more than ${this.maxFileBytes} bytes (fs.max_file_bytes)`);
  }

  /** fn with the root's fd; every fd opened through scope is closed afterwards. */
  private run<T>(op: FsOperation, p: RelPath, fn: (scope: FdScope, root: number) => T): T {
    const scope = new FdScope();
    try {
      const root = this.beneath.openRoot(scope);
      this.refuseRootOnProtected(root, op, p);
      return fn(scope, root);
    } catch (e) {
      throw hostErrorOf(e, op, p.text);
    } finally {
      scope.close();
    }
  }

  /** name in dir as a regular single-link file, with its content's hash. */
  private existingFile(scope: FdScope, dir: number, name: string, p: RelPath, op: FsOperation): { fd: number; st: Stats; sha256: string } {
    const F = this.beneath.flags;
    const fd = this.beneath.open(scope, dir, name, F.O_RDONLY | F.O_NONBLOCK | F.O_NOCTTY, op);
    const st = regularFile(fd, op, p.text);
    this.refuseProtected(st, op, p);
    return { fd, st, sha256: hashFd(fd) };
  }

  /** create: nothing may exist at name, not even a dangling symlink (the rename would refuse it later anyway). */
  private mustBeAbsent(scope: FdScope, dir: number, name: string, p: RelPath): undefined {
    try {
      this.beneath.open(scope, dir, name, this.beneath.flags.O_PATH, 'create');
    } catch (e) {
      if (e instanceof HostIoError && e.code === 'not_found') return undefined;
      throw e;
    }
    throw new HostIoError('file_exists', `create ${JSON.stringify(p.text)}: already exists (use overwrite to replace a file)`);
  }

  /** Writes data to a fresh temporary name in dir and renames it to name (create: never over an existing entry). */
  private replace(scope: FdScope, dir: number, name: string, p: RelPath, data: Uint8Array, mode: 'create' | 'overwrite', old: Stats | undefined): void {
    const F = this.beneath.flags;
    const tmp = `.lg-tmp-${randomBytes(12).toString('hex')}`;
    const fd = this.beneath.open(scope, dir, tmp, F.O_WRONLY | F.O_CREAT | F.O_EXCL, mode, old ? 0o600 : 0o666);
    try {
      writeAll(fd, data);
      // A gate running as root leaves files to whom they belong: the old
      // file's owner, or for a new one the directory's (the root's user).
      const owner = old ?? fstatSync(dir);
      if (process.geteuid?.() === 0) fchownSync(fd, owner.uid, owner.gid); // before fchmod: a chown clears set-id bits
      if (old) fchmodSync(fd, old.mode & 0o1777); // the permissions, not set-uid/set-gid: new content earns no privilege
      fsyncSync(fd);
      this.beneath.native.renameAt(dir, tmp, name, mode === 'create');
    } catch (e) {
      try {
        this.beneath.native.unlinkAt(dir, tmp);
      } catch {
        // the temporary name is gone already (renamed, or removed by someone else)
      }
      throw hostErrorOf(e, mode, p.text);
    }
  }
}
