// What an agent profile asks of the box besides mounts: paths kept read-only
// and state files with the key rules their merge follows. The profile loader
// checks these when it reads a profile; src/sandbox/ does the work
// (protected-paths.ts, state-files.ts, state-merge.ts).

/** A path to protect besides the built-in ones (an agent profile's config files and directories). */
export interface ProtectRequest {
  path: string;
  type: 'file' | 'dir';
  /** Content of the placeholder when the path is missing (default empty). */
  content?: string;
  /** false: not settings (latchgate's own installation), so not searched for the scripts it names. */
  scan?: false;
}

/** A state file as the plan carries it (host paths absolute). */
export interface StateFileSpec {
  /** The profile's table name: the copy is <name>.json. */
  name: string;
  /** The host file, also its path in the box. */
  path: string;
  format: 'json';
  /** Paths inside the agent's read-write trees where it also reads this file if present: the box sees the copy there too. */
  alsoAt: string[];
  boxKeys: string[];
  hostOnlyKeys: string[];
}

/** One key name as box_keys and host_only_keys write it (no dots). */
const KEY_NAME = /^[A-Za-z0-9_$@-]+$/;

export interface KeyRules {
  /** Allowed key paths; "*" matches any one key. */
  allow: readonly (readonly string[])[];
  /** Names kept as the host has them at any depth. */
  hostOnly: ReadonlySet<string>;
}

/** Parses box_keys ("projects.*.lastCost") and host_only_keys; throws a one-line message naming the bad entry. */
export function compileKeyRules(boxKeys: readonly string[], hostOnlyKeys: readonly string[]): KeyRules {
  for (const k of hostOnlyKeys) {
    if (!KEY_NAME.test(k)) throw new Error(`"host_only_keys": ${JSON.stringify(k)}: expected a key name (letters, digits, _ $ @ -)`);
  }
  const hostOnly = new Set(hostOnlyKeys);
  const allow = boxKeys.map((p) => {
    const segs = p.split('.');
    for (const s of segs) {
      if (s !== '*' && !KEY_NAME.test(s)) throw new Error(`"box_keys": ${JSON.stringify(p)}: expected key names or * joined by dots, e.g. "projects.*.lastCost"`);
      if (hostOnly.has(s)) throw new Error(`"box_keys": ${JSON.stringify(p)} names ${s}, which is in host_only_keys`);
    }
    return segs;
  });
  if (allow.length === 0) throw new Error('"box_keys": required, at least one key path the box may change');
  return { allow, hostOnly };
}
