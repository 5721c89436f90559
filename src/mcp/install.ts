// `latchgate mcp install`: latchgate's entry in an MCP client's configuration
// file (src/mcp/clients.ts says where), merged into what the file holds:
// every other key and server is kept, a file that does not parse is refused
// and left as it is, an entry already as it should be is not rewritten, and a
// write is atomic (a temporary file renamed over the original, with its mode
// and owner). TOML keeps its comments: latchgate's table is spliced into the
// text, and the result checked by parsing it.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import { LaunchError } from '../core/errors.js';
import { ENTRY_NAME, type Target } from './clients.js';

export type Outcome = 'created' | 'updated' | 'unchanged' | 'removed' | 'absent';

export interface InstallReport {
  target: Target;
  outcome: Outcome;
  /** latchgate's entry before and after (undefined: none). */
  before: unknown;
  after: unknown;
  /** Whether the file was written (never on a dry run, nor when nothing changes). */
  written: boolean;
  /** The entry's change, one line per line of it: "- " before, "+ " after. */
  diff: string;
}

type Doc = Record<string, unknown>;
const isObject = (v: unknown): v is Doc => !!v && typeof v === 'object' && !Array.isArray(v);

/** Installs (or with remove, removes) latchgate's entry in the target's file. */
export function applyInstall(target: Target, o: { remove?: boolean; dryRun?: boolean } = {}): InstallReport {
  const file = target.file;
  const exists = existsSync(file);
  const text = exists ? readFileSync(file, 'utf8') : undefined;
  const doc = text === undefined || text.trim() === '' ? {} : parseDoc(target, text);
  const table = doc[target.key];
  if (table !== undefined && !isObject(table)) throw new LaunchError(`${file}: "${target.key}" is not a table of servers (it is ${Array.isArray(table) ? 'an array' : typeof table}); fix it by hand, nothing was written`);
  const before = table && Object.prototype.hasOwnProperty.call(table, ENTRY_NAME) ? table[ENTRY_NAME] : undefined;
  const after = o.remove ? undefined : target.entry;
  const outcome: Outcome = sameData(before, after) ? (o.remove ? 'absent' : 'unchanged') : o.remove ? 'removed' : before === undefined && !exists ? 'created' : 'updated';
  const report = { target, outcome, before, after, written: false, diff: entryDiff(target, before, after) };
  if (outcome === 'unchanged' || outcome === 'absent' || o.dryRun) return report;
  const next: Doc = { ...doc, [target.key]: { ...(table ?? {}) } };
  const servers = next[target.key] as Doc;
  if (after === undefined) delete servers[ENTRY_NAME];
  else servers[ENTRY_NAME] = after;
  writeAtomic(file, target.format === 'toml' ? tomlText(text ?? '', next, target.key) : jsonText(text, next));
  return { ...report, written: true };
}

/**
 * Equal as data: the same keys and values, whatever the objects' prototypes
 * (a TOML parser's tables have none) or the keys' order; dates by their time.
 */
export function sameData(a: unknown, b: unknown): boolean {
  if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && String(a) === String(b) && a.getTime() === b.getTime();
  if (Array.isArray(a) || Array.isArray(b)) return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameData(x, b[i]));
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && sameData((a as Doc)[k], (b as Doc)[k]));
  }
  return Object.is(a, b);
}

function parseDoc(t: Target, text: string): Doc {
  let doc: unknown;
  try {
    doc = t.format === 'toml' ? parseToml(text) : JSON.parse(text);
  } catch (e) {
    throw new LaunchError(`${t.file} is not valid ${t.format === 'toml' ? 'TOML' : 'JSON'} (${(e as Error).message.split('\n')[0]}); fix it (or move it away) and run this again: nothing was written`);
  }
  if (!isObject(doc)) throw new LaunchError(`${t.file}: expected a JSON object at the top, found ${Array.isArray(doc) ? 'an array' : JSON.stringify(doc)}; nothing was written`);
  return doc;
}

/** The JSON, indented as the file was (two spaces for a new file). */
function jsonText(old: string | undefined, doc: Doc): string {
  const indent = old ? (/^([ \t]+)"/m.exec(old)?.[1] ?? 2) : 2;
  return `${JSON.stringify(doc, null, indent)}\n`;
}

/**
 * The TOML with latchgate's table replaced in place of the old text (comments
 * and layout kept), or, when the old entry was not a plain [key.latchgate]
 * section, the whole document written anew.
 */
function tomlText(old: string, doc: Doc, key: string): string {
  const lines = old.split('\n');
  const header = new RegExp(`^\\s*\\[\\s*${key}\\s*\\.\\s*"?${ENTRY_NAME}"?\\s*(\\.[^\\]]*)?\\]\\s*(#.*)?$`);
  const kept: string[] = [];
  let inEntry = false;
  for (const line of lines) {
    if (/^\s*\[/.test(line)) inEntry = header.test(line);
    if (!inEntry) kept.push(line);
  }
  const servers = doc[key] as Doc;
  let body = kept.join('\n').replace(/\n*$/, '\n');
  if (body.trim() === '') body = '';
  if (servers[ENTRY_NAME] !== undefined) body += `${body ? '\n' : ''}${stringifyToml({ [key]: { [ENTRY_NAME]: servers[ENTRY_NAME] } }).trim()}\n`;
  // A table of servers left empty by a removal is as good as none (the text has no header for it).
  const withoutServers = Object.fromEntries(Object.entries(doc).filter(([k]) => k !== key));
  try {
    const parsed = parseToml(body);
    if (sameData(parsed, doc) || (Object.keys(servers).length === 0 && sameData(parsed, withoutServers))) return body;
  } catch {
    // spliced into something this reading did not foresee: written anew below
  }
  return stringifyToml(doc);
}

/** Writes by renaming a temporary file over the file (a symbolic link's target), with the file's mode and owner. */
export function writeAtomic(file: string, text: string): void {
  const real = existsSync(file) ? realpathSync(file) : file;
  const st = existsSync(real) ? statSync(real) : undefined;
  mkdirSync(path.dirname(real), { recursive: true });
  const tmp = path.join(path.dirname(real), `.${path.basename(real)}.latchgate-${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, text, { flag: 'wx', mode: 0o600 });
    chmodSync(tmp, st ? st.mode & 0o7777 : 0o644);
    if (st && process.getuid?.() === 0) chownSync(tmp, st.uid, st.gid);
    renameSync(tmp, real);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // not created
    }
    throw new LaunchError(`cannot write ${file}: ${(e as Error).message}`);
  }
}

function entryDiff(t: Target, before: unknown, after: unknown): string {
  const show = (v: unknown) => (t.format === 'toml' ? stringifyToml({ [t.key]: { [ENTRY_NAME]: v } }).trim() : JSON.stringify({ [ENTRY_NAME]: v }, null, 2)).split('\n');
  if (sameData(before, after)) return before === undefined ? '' : show(before).map((l) => `  ${l}`).join('\n');
  return [...(before !== undefined ? show(before).map((l) => `- ${l}`) : []), ...(after !== undefined ? show(after).map((l) => `+ ${l}`) : [])].join('\n');
}
