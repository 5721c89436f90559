// Boxes sharing a workspace. A box started while another runs would take
// what that other box's agent planted for part of the workspace as it was,
// and its own after-run check would let it be (or its agent could undo the
// other check's work). The launcher that starts alone on the writable trees
// records what was there (the baseline, in its runtime directory, out of
// every box's reach); a launcher that starts while others run counts as
// existing only what the baseline also lists.
import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GitSnapshot } from './git-surface.js';
import { readRegular } from './safe-read.js';

interface Baseline {
  roots: string[];
  gitDirs: string[];
  pointers: string[];
  toolConfigs: string[];
  worldWritable?: string[];
  homeEntries: Record<string, string[]>;
}

export function baselineFile(dir: string, roots: readonly string[]): string {
  return join(dir, 'baselines', `${createHash('sha256').update([...roots].sort().join('\0')).digest('hex').slice(0, 32)}.json`);
}

/**
 * Alone: records the snapshot as the baseline. Not alone: narrows what the
 * snapshot takes as existing to the baseline. Returns a warning when another
 * box runs but no baseline can be read (its launcher is another user).
 */
export function shareBaseline(snap: GitSnapshot, file: string, roots: readonly string[], alone: boolean): string | undefined {
  if (alone) {
    const b: Baseline = { roots: [...roots], gitDirs: snap.gitDirs, pointers: snap.pointers, toolConfigs: snap.toolConfigs, worldWritable: snap.worldWritable, homeEntries: snap.homeEntries ?? {} };
    mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(b), { mode: 0o600 });
    renameSync(tmp, file);
    return undefined;
  }
  let b: Baseline | undefined;
  try {
    b = JSON.parse(readRegular(file, 64 << 20)?.toString('utf8') ?? 'null') as Baseline | undefined;
  } catch {
    b = undefined;
  }
  if (!b || !Array.isArray(b.gitDirs) || !Array.isArray(b.pointers) || !Array.isArray(b.toolConfigs)) {
    return 'another box is running on this workspace and no record of how it was before is readable here (its launcher may be another user): what that box planted before this one started is checked only by its own launcher';
  }
  const keep = (now: string[], then: string[]) => now.filter((p) => then.includes(p));
  snap.gitDirs = keep(snap.gitDirs, b.gitDirs);
  snap.pointers = keep(snap.pointers, b.pointers);
  snap.toolConfigs = keep(snap.toolConfigs, b.toolConfigs);
  snap.worldWritable = keep(snap.worldWritable, b.worldWritable ?? []);
  if (snap.homeEntries) for (const h of Object.keys(snap.homeEntries)) snap.homeEntries[h] = keep(snap.homeEntries[h]!, b.homeEntries?.[h] ?? []);
  return undefined;
}
