// What a git index records (entries with their object names and flags,
// gitlinks: submodule entries, mode 160000), read straight from the file (gitformat-index(5): versions 2, 3 and 4, SHA-1
// or SHA-256 object names), so that latchgate never has to run git on the
// host to learn what a box registered. Malformed input never throws: the
// reader reports it, and callers treat an unreadable index as changed.

import { createHash } from 'node:crypto';

const GITLINK = 0o160000;
/** Stands for a gitlink whose path is that of an entry in the shared index. */
export const REPLACED_ENTRY = '(an entry of the shared index)';
const MAX_ENTRIES = 4_000_000;

export interface IndexEntry {
  /** '' for a split index entry that replaces one of the shared index. */
  path: string;
  mode: number;
  /** Object name, hex. */
  oid: string;
  /** assume-valid: git takes the file as unchanged and never looks. */
  assumeValid: boolean;
  /** skip-worktree: git neither looks at nor writes the file. */
  skipWorktree: boolean;
  /** Byte offsets of the 16-bit flags and (v3+, extended) the second flags word. */
  flagsAt: number;
  flags2At: number | null;
}

export type IndexEntries = { ok: true; version: number; entries: IndexEntry[]; hashLen: 20 | 32 } | { ok: false; error: string };
export type IndexRead = { ok: true; version: number; entries: number; gitlinks: string[] } | { ok: false; error: string };

/** Git's offset varint (index v4 path compression). */
function readVarint(buf: Buffer, pos: number): { value: number; next: number } | undefined {
  if (pos >= buf.length) return undefined;
  let c = buf[pos++]!;
  let value = c & 127;
  while (c & 128) {
    if (pos >= buf.length || value > 2 ** 40) return undefined;
    c = buf[pos++]!;
    value = ((value + 1) * 128) + (c & 127);
  }
  return { value, next: pos };
}

/**
 * Every entry of an index. hashLen: 20 (SHA-1) or 32 (SHA-256, a repository
 * with extensions.objectFormat = sha256).
 */
export function readIndexEntries(buf: Buffer, hashLen: 20 | 32 = 20): IndexEntries {
  if (buf.length < 12) return { ok: false, error: 'shorter than the header' };
  if (buf.toString('latin1', 0, 4) !== 'DIRC') return { ok: false, error: 'not an index (no DIRC signature)' };
  const version = buf.readUInt32BE(4);
  if (version < 2 || version > 4) return { ok: false, error: `unsupported index version ${version}` };
  const count = buf.readUInt32BE(8);
  if (count > MAX_ENTRIES) return { ok: false, error: `implausible entry count ${count}` };
  const entries: IndexEntry[] = [];
  let pos = 12;
  let prev = '';
  const fixed = 40 + hashLen + 2; // stat data, mode..size, object name, flags
  for (let k = 0; k < count; k++) {
    const start = pos;
    if (pos + fixed > buf.length) return { ok: false, error: `entry ${k} is truncated` };
    const mode = buf.readUInt32BE(pos + 24);
    const oid = buf.toString('hex', pos + 40, pos + 40 + hashLen);
    const flagsAt = pos + 40 + hashLen;
    const flags = buf.readUInt16BE(flagsAt);
    pos += fixed;
    let flags2At: number | null = null;
    if (flags & 0x4000) {
      if (version < 3) return { ok: false, error: `entry ${k} has extended flags in a version ${version} index` };
      if (pos + 2 > buf.length) return { ok: false, error: `entry ${k} is truncated` };
      flags2At = pos;
      pos += 2;
    }
    let path: string;
    if (version === 4) {
      const v = readVarint(buf, pos);
      if (!v || v.value > prev.length) return { ok: false, error: `entry ${k} has a bad path prefix` };
      const end = buf.indexOf(0, v.next);
      if (end < 0) return { ok: false, error: `entry ${k} has an unterminated path` };
      path = prev.slice(0, prev.length - v.value) + buf.toString('utf8', v.next, end);
      pos = end + 1;
    } else {
      const end = buf.indexOf(0, pos);
      if (end < 0) return { ok: false, error: `entry ${k} has an unterminated path` };
      path = buf.toString('utf8', pos, end);
      // 1-8 NULs pad the entry to a multiple of 8 bytes.
      pos = start + Math.ceil((end - start + 1) / 8) * 8;
      if (pos > buf.length) return { ok: false, error: `entry ${k} is truncated` };
    }
    entries.push({ path, mode, oid, assumeValid: (flags & 0x8000) !== 0, skipWorktree: flags2At !== null && (buf.readUInt16BE(flags2At) & 0x4000) !== 0, flagsAt, flags2At });
    prev = path;
  }
  return { ok: true, version, entries, hashLen };
}

/** The gitlinks of an index (a split index's replacing entries named REPLACED_ENTRY). */
export function readIndexGitlinks(buf: Buffer, hashLen: 20 | 32 = 20): IndexRead {
  const r = readIndexEntries(buf, hashLen);
  if (!r.ok) return r;
  // A split index writes an entry that replaces one of the shared index
  // with an empty path (it takes that entry's path): named here as such.
  const gitlinks = r.entries.filter((e) => (e.mode & 0o170000) === GITLINK).map((e) => (e.path === '' ? REPLACED_ENTRY : e.path));
  return { ok: true, version: r.version, entries: r.entries.length, gitlinks };
}

/**
 * The index with assume-valid and skip-worktree cleared on the given
 * entries and its trailing checksum recomputed (SHA-1 or SHA-256 over all
 * bytes before it, as git writes it). Extensions are left as they are.
 */
export function clearHidingFlags(buf: Buffer, entries: readonly IndexEntry[], hashLen: 20 | 32): Buffer {
  const out = Buffer.from(buf);
  for (const e of entries) {
    out.writeUInt16BE(out.readUInt16BE(e.flagsAt) & ~0x8000, e.flagsAt);
    if (e.flags2At !== null) out.writeUInt16BE(out.readUInt16BE(e.flags2At) & ~0x4000, e.flags2At);
  }
  const body = out.subarray(0, out.length - hashLen);
  createHash(hashLen === 32 ? 'sha256' : 'sha1').update(body).digest().copy(out, out.length - hashLen);
  return out;
}
