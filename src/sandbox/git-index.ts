// The gitlinks (submodule entries, mode 160000) recorded in a git index file,
// read straight from the file (gitformat-index(5): versions 2, 3 and 4, SHA-1
// or SHA-256 object names), so that latchgate never has to run git on the
// host to learn what a box registered. Malformed input never throws: the
// reader reports it, and callers treat an unreadable index as changed.

const GITLINK = 0o160000;
/** Stands for a gitlink whose path is that of an entry in the shared index. */
export const REPLACED_ENTRY = '(an entry of the shared index)';
const MAX_ENTRIES = 4_000_000;

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
 * Parses index bytes. hashLen: 20 (SHA-1) or 32 (SHA-256, a repository with
 * extensions.objectFormat = sha256).
 */
export function readIndexGitlinks(buf: Buffer, hashLen: 20 | 32 = 20): IndexRead {
  if (buf.length < 12) return { ok: false, error: 'shorter than the header' };
  if (buf.toString('latin1', 0, 4) !== 'DIRC') return { ok: false, error: 'not an index (no DIRC signature)' };
  const version = buf.readUInt32BE(4);
  if (version < 2 || version > 4) return { ok: false, error: `unsupported index version ${version}` };
  const count = buf.readUInt32BE(8);
  if (count > MAX_ENTRIES) return { ok: false, error: `implausible entry count ${count}` };
  const gitlinks: string[] = [];
  let pos = 12;
  let prev = '';
  const fixed = 40 + hashLen + 2; // stat data, mode..size, object name, flags
  for (let k = 0; k < count; k++) {
    const start = pos;
    if (pos + fixed > buf.length) return { ok: false, error: `entry ${k} is truncated` };
    const mode = buf.readUInt32BE(pos + 24);
    const flags = buf.readUInt16BE(pos + 40 + hashLen);
    pos += fixed;
    if (flags & 0x4000) {
      if (version < 3) return { ok: false, error: `entry ${k} has extended flags in a version ${version} index` };
      if (pos + 2 > buf.length) return { ok: false, error: `entry ${k} is truncated` };
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
    // A split index writes an entry that replaces one of the shared index
    // with an empty path (it takes that entry's path): named here as such.
    if ((mode & 0o170000) === GITLINK) gitlinks.push(path === '' ? REPLACED_ENTRY : path);
    prev = path;
  }
  return { ok: true, version, entries: count, gitlinks };
}
