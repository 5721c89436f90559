// Empty placeholders for protected paths that do not exist yet: mounted
// read-only in the box so they cannot be created there, and removed when the
// last box using the workspace ends.
//
// Boxes may share a workspace: each holds a shared flock on every writable
// root for its life; placeholders carry an xattr so any launcher recognises
// them (also ones a killed launcher left); the launcher that gets the lock
// exclusively at exit removes those still empty.
//
// A root launcher does all of it as the agent's user (fs-identity.ts): the
// workspace is that user's, who could swap a symlink into any path here, so
// every path is resolved, and every file made, with that user's rights.
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, rmdirSync, unlinkSync, constants as fsc } from 'node:fs';
import { dirname } from 'node:path';
import { LOCK, loadAddon } from '../native/addon.js';
import { LaunchError } from './errors.js';
import { asOwner, type FsOwner } from './fs-identity.js';
import type { ProtectedAction } from './protected-paths.js';

export const PLACEHOLDER_XATTR = 'user.latchgate.placeholder';

interface Owned {
  path: string;
  type: 'file' | 'dir';
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
   * while a launcher cleans up). A file mounted read-write has no placeholders.
   */
  lock(roots: readonly string[]): void {
    for (const root of roots) {
      let fd: number | undefined;
      try {
        fd = this.asOwner(() => (lstatSync(root, { throwIfNoEntry: false })?.isDirectory() ? openSync(root, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW) : undefined));
      } catch (e) {
        this.unlock();
        throw new LaunchError(`cannot open ${root} to lock it (${(e as Error).message})${this.owner ? `; uid ${this.owner.uid}, whom the box runs as, must be able to read it` : ''}`);
      }
      if (fd === undefined) continue;
      const r = this.addon.flock(fd, LOCK.SH);
      if (r !== 0) {
        closeSync(fd);
        this.unlock();
        throw new LaunchError(`cannot lock ${root} (errno ${-r}) to share its placeholders with other boxes`);
      }
      this.locks.push(fd);
    }
  }

  create(actions: readonly ProtectedAction[]): void {
    let failure: unknown;
    try {
      this.asOwner(() => this.createAll(actions));
    } catch (e) {
      failure = e;
    }
    if (failure !== undefined) {
      this.release(); // what this box made, unless another box uses it
      throw failure;
    }
  }

  private createAll(actions: readonly ProtectedAction[]): void {
    for (const a of actions) {
      if (a.action === 'mask-symlink') continue;
      const type = a.action === 'pin' ? 'dir' : a.type;
      try {
        if (this.isPlaceholder(a.path)) {
          this.owned.push({ path: a.path, type, marked: true });
          continue;
        }
        if (a.action !== 'placeholder' && lstatSync(a.path, { throwIfNoEntry: false })) continue; // the user's own
        this.mkdirs(dirname(a.path));
        if (type === 'dir') mkdirSync(a.path, { mode: 0o755 });
        else closeSync(openSync(a.path, 'wx', 0o644));
        this.mark(a.path, type);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // appeared meanwhile: mounted read-only as it is
        const as = this.owner ? ` as uid ${this.owner.uid}, whom the box runs as` : '';
        throw new LaunchError(`cannot create the read-only placeholder ${a.path}${as} (it keeps the box from creating it): ${(e as Error).message}; check the workspace's permissions`);
      }
    }
  }

  private isPlaceholder(path: string): boolean {
    return this.addon.getXattr(path, PLACEHOLDER_XATTR) !== null;
  }

  private mkdirs(dir: string): void {
    if (lstatSync(dir, { throwIfNoEntry: false })) return;
    this.mkdirs(dirname(dir));
    mkdirSync(dir, { mode: 0o755 });
    this.mark(dir, 'dir');
  }

  private mark(path: string, type: 'file' | 'dir'): void {
    // On a filesystem without user xattrs only this launcher knows it made it.
    const marked = this.addon.setXattr(path, PLACEHOLDER_XATTR, '1') === 0;
    this.owned.push({ path, type, marked });
  }

  /**
   * Removes the placeholders if no other box uses the workspace (best effort;
   * never removes anything not marked, or no longer empty), then unlocks.
   */
  release(): void {
    let last = true;
    for (const fd of this.locks) if (this.addon.flock(fd, LOCK.EX | LOCK.NB) !== 0) last = false;
    const owned = this.owned.splice(0).sort((a, b) => b.path.length - a.path.length);
    try {
      if (last) this.asOwner(() => owned.forEach((o) => this.removeIfUnused(o)));
    } catch (e) {
      process.stderr.write(`latchgate: the placeholders were left in place: ${(e as Error).message}\n`);
    }
    this.unlock();
  }

  private removeIfUnused(o: Owned): void {
    try {
      if (o.marked && !this.isPlaceholder(o.path)) return; // replaced by someone else's
      const st = lstatSync(o.path);
      if (o.type === 'dir' && st.isDirectory() && readdirSync(o.path).length === 0) rmdirSync(o.path);
      if (o.type === 'file' && st.isFile() && st.size === 0) unlinkSync(o.path);
    } catch {
      // already gone
    }
  }

  private unlock(): void {
    for (const fd of this.locks.splice(0)) closeSync(fd);
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
