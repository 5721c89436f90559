// Empty placeholders for protected paths that do not exist yet: mounted
// read-only in the box so they cannot be created there, and removed after the
// run when they are still ours and still empty.
import { chownSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { LaunchError } from './errors.js';
import type { ProtectedAction } from './protected-paths.js';

interface Created {
  path: string;
  type: 'file' | 'dir';
  ino: number;
}

export class Placeholders {
  private readonly created: Created[] = [];

  /** owner: whom to give them when root creates them in someone's workspace. */
  constructor(private readonly owner?: { uid: number; gid: number }) {}

  create(actions: readonly ProtectedAction[]): void {
    for (const a of actions) {
      if (a.action !== 'placeholder') continue;
      try {
        this.mkdirs(dirname(a.path));
        if (a.type === 'dir') mkdirSync(a.path, { mode: 0o755 });
        else closeSync(openSync(a.path, 'wx', 0o644));
        this.record(a.path, a.type);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // appeared meanwhile: mounted read-only as it is
        this.remove();
        throw new LaunchError(`cannot create the read-only placeholder ${a.path} (it keeps the box from creating it): ${(e as Error).message}; check the workspace's permissions`);
      }
    }
  }

  private mkdirs(dir: string): void {
    try {
      lstatSync(dir);
      return;
    } catch {
      // missing: create it and its missing parents
    }
    this.mkdirs(dirname(dir));
    mkdirSync(dir, { mode: 0o755 });
    this.record(dir, 'dir');
  }

  private record(path: string, type: 'file' | 'dir'): void {
    if (this.owner) chownSync(path, this.owner.uid, this.owner.gid);
    this.created.push({ path, type, ino: lstatSync(path).ino });
  }

  /** Best effort; never removes anything that changed since we made it. */
  remove(): void {
    for (const c of this.created.splice(0).reverse()) {
      try {
        const st = lstatSync(c.path);
        if (st.ino !== c.ino) continue;
        if (c.type === 'dir' && st.isDirectory() && readdirSync(c.path).length === 0) rmdirSync(c.path);
        if (c.type === 'file' && st.isFile() && st.size === 0) unlinkSync(c.path);
      } catch {
        // already gone
      }
    }
  }
}
