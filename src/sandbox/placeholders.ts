// Placeholders (empty, or with a fixed content) for protected paths that do not exist yet: mounted
// read-only in the box so they cannot be created there, and removed when the
// last box using the workspace ends.
//
// Boxes may share a workspace: each holds a shared flock on every writable
// root for its life; placeholders carry an xattr so any launcher recognises
// them (also ones a killed launcher left); the launcher that gets the lock
// exclusively at exit removes those still as they were made.
//
// A root launcher does all of it as the agent's user (fs-identity.ts): the
// workspace is that user's, who could swap a symlink into any path here, so
// every path is resolved, and every file made, with that user's rights
// (as root only where no one but root can change the way there: act()),
// and each path is reached through its parent directory opened with no
// symlink on the way (beneath()): a box on the same workspace that swaps a
// name above it for a symlink makes the launch fail, never act elsewhere.
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, rmdirSync, unlinkSync, writeFileSync, constants as fsc } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname } from 'node:path';
import { LOCK, loadAddon } from '../native/addon.js';
import { LaunchError } from '../core/errors.js';
import { asOwner, type FsOwner } from './fs-identity.js';
import { inDir, inParent } from './no-follow.js';
import { PLACEHOLDER_CONTENT, type ProtectedAction } from './protected-paths.js';
import { readRegular } from './safe-read.js';
import { whyUntrusted } from './trusted-path.js';

export const PLACEHOLDER_XATTR = 'user.latchgate.placeholder';
/**
 * How long a launch waits for a root's shared lock. Another launcher holds it
 * exclusively only while it removes its placeholders; anything holding it
 * longer (a box's process running flock on a directory it can write) would
 * otherwise keep every launch there waiting, silently, for ever.
 */
const LOCK_WAIT_MS = 5000;
const EWOULDBLOCK = osConstants.errno.EWOULDBLOCK;
const PAUSE = new Int32Array(new SharedArrayBuffer(4));
/** What placeholder files hold: nothing, (a commondir) the directory itself, or (a JSON config) an empty one. */
export const PLACEHOLDER_CONTENTS: ReadonlySet<string> = new Set(['', '.\n', ...Object.values(PLACEHOLDER_CONTENT)]);

interface Owned {
  path: string;
  type: 'file' | 'dir';
  /** A file placeholder's content (removed only while it still holds exactly that). */
  content: string;
  /** Carries the xattr: removed only while it still does. */
  marked: boolean;
}

export class Placeholders {
  private readonly owned: Owned[] = [];
  private readonly locks: number[] = [];
  private readonly addon = loadAddon();

  /** owner: whom to act as (fsOwnerOf) when root launches a box for another user. */
  constructor(private readonly owner?: FsOwner) {}

  /**
   * Takes the shared lock on each writable root that is a directory (waits
   * while a launcher cleans up, at most LOCK_WAIT_MS). A file mounted
   * read-write has no placeholders. alone: no other box held any of them at
   * that moment.
   */
  lock(roots: readonly string[]): { alone: boolean } {
    let alone = true;
    for (const root of roots) {
      let fd: number | undefined;
      try {
        // Opened again through /proc from a descriptor reached through no symlink (flock needs a real descriptor).
        fd = this.asOwner(() => (lstatSync(root, { throwIfNoEntry: false })?.isDirectory() ? inDir(root, (d) => openSync(d.self, fsc.O_RDONLY | fsc.O_DIRECTORY)) : undefined));
      } catch (e) {
        this.unlock();
        throw new LaunchError(`cannot open ${root} to lock it (${(e as Error).message})${this.owner ? `; uid ${this.owner.uid}, whom the box runs as, must be able to read it` : ''}`);
      }
      if (fd === undefined) continue;
      // Exclusive for a moment when no other box holds the root: then this box is alone on it.
      if (this.addon.flock(fd, LOCK.EX | LOCK.NB) !== 0) alone = false;
      const r = this.lockShared(fd);
      if (r !== 0) {
        closeSync(fd);
        this.unlock();
        if (r === -EWOULDBLOCK) {
          throw new LaunchError(`cannot lock ${root} to share its placeholders with other boxes: something has held it locked exclusively for over ${LOCK_WAIT_MS / 1000} s, longer than a leaving box ever does (a process running flock on it, in another box that can write it?); find it with \`lslocks\` or \`fuser -v ${root}\`, end it, then start the box again`);
        }
        throw new LaunchError(`cannot lock ${root} (errno ${-r}) to share its placeholders with other boxes`);
      }
      this.locks.push(fd);
    }
    return { alone };
  }

  /** flock LOCK_SH, waiting at most LOCK_WAIT_MS: 0, or -errno (-EWOULDBLOCK when the wait ran out). */
  private lockShared(fd: number): number {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      const r = this.addon.flock(fd, LOCK.SH | LOCK.NB);
      if (r !== -EWOULDBLOCK || Date.now() >= deadline) return r;
      Atomics.wait(PAUSE, 0, 0, 20);
    }
  }

  create(actions: readonly ProtectedAction[]): void {
    for (const a of actions) {
      if (a.action === 'mask-symlink') continue;
      try {
        this.act(a.path, () => this.createOne(a));
      } catch (e) {
        this.release(); // what this box made, unless another box uses it
        if (e instanceof LaunchError) throw e;
        const as = this.owner ? ` as uid ${this.owner.uid}, whom the box runs as` : '';
        throw new LaunchError(`cannot create the read-only placeholder ${a.path}${as} (it keeps the box from creating it): ${(e as Error).message}; check the workspace's permissions`);
      }
    }
  }

  private createOne(a: Exclude<ProtectedAction, { action: 'mask-symlink' }>): void {
    const type = a.action === 'pin' ? 'dir' : a.type;
    const content = a.action === 'placeholder' ? (a.content ?? '') : '';
    try {
      this.mkdirs(dirname(a.path));
      this.beneath(a.path, (at) => {
        if (this.isPlaceholder(at)) {
          // Another box's, or a killed launcher's: shared, and removed by the last one out while it still is what a placeholder holds.
          const now = type === 'dir' ? '' : readRegular(at, 64)?.toString();
          if (now !== undefined && PLACEHOLDER_CONTENTS.has(now)) this.owned.push({ path: a.path, type, content: now, marked: true });
          return;
        }
        if (a.action !== 'placeholder' && lstatSync(at, { throwIfNoEntry: false })) return; // the user's own
        if (type === 'dir') mkdirSync(at, { mode: 0o755 });
        else writeFileSync(at, content, { flag: 'wx', mode: 0o644 });
        this.mark(a.path, at, type, content);
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // else it appeared meanwhile: mounted read-only as it is
    }
  }

  /** fn on the path through its parent opened with no symlink on the way (no-follow.ts: ELOOP, as an errno error, when one is there now). */
  private beneath<T>(path: string, fn: (at: string) => T): T {
    return inParent(path, (dir, name) => fn(dir.at(name) as string));
  }

  private isPlaceholder(at: string): boolean {
    return this.addon.getXattr(at, PLACEHOLDER_XATTR) !== null;
  }

  /** Whether path exists (its parent missing: no). */
  private present(path: string): boolean {
    try {
      return this.beneath(path, (at) => lstatSync(at, { throwIfNoEntry: false }) !== undefined);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  private mkdirs(dir: string): void {
    if (this.present(dir)) return;
    this.mkdirs(dirname(dir));
    this.beneath(dir, (at) => {
      mkdirSync(at, { mode: 0o755 });
      this.mark(dir, at, 'dir', '');
    });
  }

  private mark(path: string, at: string, type: 'file' | 'dir', content: string): void {
    // On a filesystem without user xattrs only this launcher knows it made it.
    const marked = this.addon.setXattr(at, PLACEHOLDER_XATTR, '1') === 0;
    this.owned.push({ path, type, content, marked });
  }

  /**
   * Removes the placeholders if no other box uses the workspace (best effort;
   * never removes anything not marked, or no longer empty), then unlocks.
   */
  release(): void {
    let last = true;
    for (const fd of this.locks) if (this.addon.flock(fd, LOCK.EX | LOCK.NB) !== 0) last = false;
    const owned = this.owned.splice(0).sort((a, b) => b.path.length - a.path.length);
    if (last) {
      for (const o of owned) {
        try {
          this.act(o.path, () => this.removeIfUnused(o));
        } catch (e) {
          if (e instanceof LaunchError) process.stderr.write(`latchgate: the placeholder ${o.path} was left in place: ${e.message}\n`);
          // else not the owner's to remove, and not in a place only root controls: left
        }
      }
    }
    this.unlock();
  }

  /** Throws only EACCES or EPERM (for act()); anything else means it is gone or not ours. */
  private removeIfUnused(o: Owned): void {
    try {
      this.beneath(o.path, (at) => {
        if (o.marked && !this.isPlaceholder(at)) return; // replaced by someone else's
        const st = lstatSync(at);
        if (o.type === 'dir' && st.isDirectory() && readdirSync(at).length === 0) rmdirSync(at);
        if (o.type === 'file' && st.isFile() && st.size === Buffer.byteLength(o.content) && readRegular(at)?.toString() === o.content) unlinkSync(at);
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') throw e;
    }
  }

  private unlock(): void {
    for (const fd of this.locks.splice(0)) closeSync(fd);
  }

  /**
   * fn as the owner. Where the owner may not (EACCES, EPERM) the box's user
   * could not make or remove the path either, but the box's mounts need it:
   * then fn runs as root, only if nobody but root can change any directory
   * on the way to it, nor make names in the one fn makes names in
   * (trusted-path.ts); e.g. a root-owned workspace handed to nobody.
   */
  private act<T>(path: string, fn: () => T): T {
    try {
      return this.asOwner(fn);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Through an idmap, root's directories are the box's: none is root's alone.
      if (!this.owner || this.owner.view || (code !== 'EACCES' && code !== 'EPERM')) throw e;
      let above = dirname(path);
      while (!lstatSync(above, { throwIfNoEntry: false })) above = dirname(above);
      if (whyUntrusted(above, true) !== undefined) throw e;
      return fn();
    }
  }

  /** fn as the owner (all of fn's fs calls); failing to become the owner is a LaunchError. */
  private asOwner<T>(fn: () => T): T {
    let inside = false;
    try {
      return asOwner(this.owner, () => {
        inside = true;
        return fn();
      });
    } catch (e) {
      if (inside || e instanceof LaunchError) throw e;
      throw new LaunchError(`cannot act as uid ${this.owner?.uid} in the workspace (${(e as Error).message}); run latchgate as root or as the workspace's owner`);
    }
  }
}
