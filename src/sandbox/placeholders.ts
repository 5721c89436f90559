// Empty placeholders for protected paths that do not exist yet: mounted
// read-only in the box so they cannot be created there, and removed when the
// last box using the workspace ends.
//
// Boxes may share a workspace: each holds a shared flock on every writable
// root for its life; placeholders carry an xattr so any launcher recognises
// them (also ones a killed launcher left); the launcher that gets the lock
// exclusively at exit removes those still empty.
import { chownSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, unlinkSync, writeFileSync, constants as fsc } from 'node:fs';
import { dirname } from 'node:path';
import { LOCK, loadAddon } from '../native/addon.js';
import { LaunchError } from './errors.js';
import type { ProtectedAction } from './protected-paths.js';

export const PLACEHOLDER_XATTR = 'user.latchgate.placeholder';

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

  /** owner: whom to give them when root creates them in someone's workspace. */
  constructor(private readonly owner?: { uid: number; gid: number }) {}

  /**
   * Takes the shared lock on each writable root that is a directory (waits
   * while a launcher cleans up). A file mounted read-write has no placeholders.
   */
  lock(roots: readonly string[]): void {
    for (const root of roots) {
      if (!lstatSync(root, { throwIfNoEntry: false })?.isDirectory()) continue;
      const fd = openSync(root, fsc.O_RDONLY | fsc.O_DIRECTORY);
      const r = this.addon.flock(fd, LOCK.SH);
      if (r !== 0) {
        closeSync(fd);
        throw new LaunchError(`cannot lock ${root} (errno ${-r}) to share its placeholders with other boxes`);
      }
      this.locks.push(fd);
    }
  }

  create(actions: readonly ProtectedAction[]): void {
    for (const a of actions) {
      if (a.action === 'mask-symlink') continue;
      const type = a.action === 'pin' ? 'dir' : a.type;
      try {
        const content = a.action === 'placeholder' ? (a.content ?? '') : '';
        if (this.isPlaceholder(a.path)) {
          this.owned.push({ path: a.path, type, content, marked: true });
          continue;
        }
        if (a.action !== 'placeholder' && lstatSync(a.path, { throwIfNoEntry: false })) continue; // the user's own
        this.mkdirs(dirname(a.path));
        if (type === 'dir') mkdirSync(a.path, { mode: 0o755 });
        else writeFileSync(a.path, content, { flag: 'wx', mode: 0o644 });
        this.mark(a.path, type, content);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // appeared meanwhile: mounted read-only as it is
        this.release();
        throw new LaunchError(`cannot create the read-only placeholder ${a.path} (it keeps the box from creating it): ${(e as Error).message}; check the workspace's permissions`);
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
    this.mark(dir, 'dir', '');
  }

  private mark(path: string, type: 'file' | 'dir', content: string): void {
    if (this.owner) chownSync(path, this.owner.uid, this.owner.gid);
    // On a filesystem without user xattrs only this launcher knows it made it.
    const marked = this.addon.setXattr(path, PLACEHOLDER_XATTR, '1') === 0;
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
          if (o.marked && !this.isPlaceholder(o.path)) continue; // replaced by someone else's
          const st = lstatSync(o.path);
          if (o.type === 'dir' && st.isDirectory() && readdirSync(o.path).length === 0) rmdirSync(o.path);
          if (o.type === 'file' && st.isFile() && st.size === Buffer.byteLength(o.content) && readFileSync(o.path, 'utf8') === o.content) unlinkSync(o.path);
        } catch {
          // already gone
        }
      }
    }
    for (const fd of this.locks.splice(0)) closeSync(fd);
  }
}
