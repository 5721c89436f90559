// A reader for git's configuration file syntax (git-config(1), "CONFIGURATION
// FILE"), enough to know which other files and programs a config makes git
// use: sections with optional subsections, keys, values with quotes, escapes
// and line continuations, comments, and include / includeIf. It never runs
// anything and never fails: where git would stop at a syntax error, the
// reader skips the line (the whole file is protected anyway; the reader only
// adds what the file points at).
import { readRegular } from './safe-read.js';
import { dirname, isAbsolute, join, resolve } from 'node:path';

export interface GitConfigEntry {
  /** Lowercased section name, e.g. "core", "includeif" ('' before the first header). */
  section: string;
  /** Subsection exactly as written (case-sensitive), or null. */
  subsection: string | null;
  /** Lowercased key name. */
  key: string;
  /** The value after unquoting and unescaping; null for a bare key (boolean true). */
  value: string | null;
}

const isKeyChar = (c: string) => /[A-Za-z0-9-]/.test(c);

/** Parses config text into its entries, in file order. */
export function parseGitConfig(text: string): GitConfigEntry[] {
  const out: GitConfigEntry[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let section = '';
  let subsection: string | null = null;
  const n = text.length;
  const skipLine = () => {
    while (i < n && text[i] !== '\n') i++;
  };
  while (i < n) {
    const c = text[i]!;
    if (c === '\n' || c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '#' || c === ';') {
      skipLine();
      continue;
    }
    if (c === '[') {
      const parsed = parseHeader(text, i + 1);
      if (!parsed) {
        section = '';
        subsection = null;
        skipLine();
        continue;
      }
      ({ section, subsection } = parsed);
      i = parsed.end; // git allows a key on the same line after the header
      continue;
    }
    // git reads keys before any section header too (named without one): inert, but read alike.
    if (!/[A-Za-z]/.test(c)) {
      skipLine();
      continue;
    }
    let j = i;
    while (j < n && isKeyChar(text[j]!)) j++;
    const key = text.slice(i, j).toLowerCase();
    while (j < n && (text[j] === ' ' || text[j] === '\t')) j++;
    if (j >= n || text[j] === '\n' || text[j] === '#' || text[j] === ';' || text[j] === '\r') {
      out.push({ section, subsection, key, value: null });
      i = j;
      if (j < n && text[j] !== '\n') skipLine();
      continue;
    }
    if (text[j] !== '=') {
      i = j;
      skipLine();
      continue;
    }
    const v = parseValue(text, j + 1);
    i = v.end;
    if (v.value !== null) out.push({ section, subsection, key, value: v.value });
  }
  return out;
}

function parseHeader(text: string, start: number): { section: string; subsection: string | null; end: number } | null {
  let i = start;
  const n = text.length;
  let name = '';
  while (i < n && /[A-Za-z0-9.-]/.test(text[i]!)) name += text[i++];
  if (name === '') return null;
  if (text[i] === ']') {
    // [section.sub] (deprecated form): the subsection is lowercased by git.
    const dot = name.indexOf('.');
    if (dot < 0) return { section: name.toLowerCase(), subsection: null, end: i + 1 };
    return { section: name.slice(0, dot).toLowerCase(), subsection: name.slice(dot + 1).toLowerCase(), end: i + 1 };
  }
  if (text[i] !== ' ' && text[i] !== '\t') return null;
  while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
  if (text[i] !== '"') return null;
  i++;
  let sub = '';
  while (i < n && text[i] !== '"') {
    if (text[i] === '\n') return null;
    if (text[i] === '\\') {
      i++;
      if (i >= n || text[i] === '\n') return null;
    }
    sub += text[i++];
  }
  if (text[i] !== '"' || text[i + 1] !== ']') return null;
  return { section: name.toLowerCase(), subsection: sub, end: i + 2 };
}

/** A value as git's parse_value reads it (config.c): blanks collapse to spaces between words, quotes toggle. */
function parseValue(text: string, start: number): { value: string | null; end: number } {
  let i = start;
  const n = text.length;
  let out = '';
  let quoted = false;
  let comment = false;
  let spaces = 0;
  const ESC: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', t: '\t', b: '\b' };
  for (;;) {
    let c = i < n ? text[i]! : '\n';
    if (c === '\r' && text[i + 1] === '\n') c = text[++i]!; // CRLF reads as LF
    i++;
    if (c === '\n') return quoted ? { value: null, end: i - 1 } : { value: out, end: Math.min(i - 1, n) };
    if (comment) continue;
    if (!quoted && /[ \t\r\v\f]/.test(c)) {
      if (out.length > 0) spaces++;
      continue;
    }
    if (!quoted && (c === ';' || c === '#')) {
      comment = true;
      continue;
    }
    out += ' '.repeat(spaces);
    spaces = 0;
    if (c === '\\') {
      let e = i < n ? text[i]! : '\n';
      if (e === '\r' && text[i + 1] === '\n') e = text[++i]!;
      i++;
      if (e === '\n') continue; // continuation
      const m = ESC[e];
      if (m === undefined) return { value: null, end: skipToEol(text, i) }; // git rejects the file
      out += m;
      continue;
    }
    if (c === '"') {
      quoted = !quoted;
      continue;
    }
    out += c;
  }
}

function skipToEol(text: string, i: number): number {
  while (i < text.length && text[i] !== '\n') i++;
  return i;
}

/** Expands "~/" (and "~" alone) and a path relative to the including file, as git does for include paths. */
export function resolveConfigPath(value: string, configFile: string, home: string | undefined): string | undefined {
  let p = value.replace(/^:\(optional\)/, '');
  if (p === '') return undefined;
  if (p === '~' || p.startsWith('~/')) {
    if (!home) return undefined;
    p = join(home, p.slice(1));
  } else if (p.startsWith('~')) return undefined; // ~user: another user's home, not ours to guess
  return isAbsolute(p) ? resolve(p) : resolve(dirname(configFile), p);
}

export interface ConfigFileRead {
  file: string;
  entries: GitConfigEntry[];
  /** The file's text, for the path references in its values. */
  text: string;
}

/**
 * Reads a config file and every file it includes (include.path and every
 * includeIf.<condition>.path, whatever the condition: any of them may apply
 * later), depth-first, at most 10 levels deep as git allows. Missing files
 * are returned with no entries so that callers can still protect them.
 */
export function readConfigChain(file: string, home: string | undefined, read: (p: string) => string | undefined = readSmallFile): { files: ConfigFileRead[]; missing: string[] } {
  const files: ConfigFileRead[] = [];
  const missing: string[] = [];
  const seen = new Set<string>();
  const visit = (f: string, depth: number) => {
    if (seen.has(f) || depth > 10) return;
    seen.add(f);
    const text = read(f);
    if (text === undefined) {
      missing.push(f);
      return;
    }
    const entries = parseGitConfig(text);
    files.push({ file: f, entries, text });
    for (const e of entries) {
      const isInclude = (e.section === 'include' && e.subsection === null) || (e.section === 'includeif' && e.subsection !== null);
      if (!isInclude || e.key !== 'path' || e.value === null) continue;
      const target = resolveConfigPath(e.value, f, home);
      if (target) visit(target, depth + 1);
    }
  };
  visit(file, 0);
  return { files, missing };
}

/** A config file's text, or undefined if it is missing, not a regular file or larger than 1 MiB (never blocks on a FIFO). */
export function readSmallFile(p: string): string | undefined {
  return readRegular(p)?.toString('utf8');
}
