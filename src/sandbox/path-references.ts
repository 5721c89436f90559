// The paths a configuration file names. A protected config that runs a
// script (a git core.fsmonitor, a hook command in an agent's settings, an
// editor task) protects nothing if the script itself stays writable: every
// token of the file's text that looks like a path is resolved, and those
// inside a writable root become protected too. Format-blind on purpose (JSON,
// JSONC, TOML, YAML, git config, shell lines alike): it may find more than a
// parser would, never less.
import { isAbsolute, join, resolve } from 'node:path';

/** Characters that cannot be part of a path as configs write them (quotes, shell syntax, separators). */
const SPLIT = /[\s"'`=,;|&()<>[\]]+/;

export interface ReferenceContext {
  /** Directories relative tokens are resolved against (the config's directory, the project root). */
  bases: string[];
  home?: string;
  /** Variables that stand for directories in agent configs (e.g. CLAUDE_PROJECT_DIR). */
  vars?: Record<string, string>;
}

/** Candidate path strings of a text, unescaped (\" \' \/ \\ as JSON and shells write them), "file://" handled. */
export function pathTokens(text: string): string[] {
  const out = new Set<string>();
  const unescaped = text.replace(/\\(["'/\\])/g, '$1');
  // Shells join quoted and unquoted parts ("$DIR"/x.sh): read the text once
  // as written and once with its quotes dropped (then a JSON "key":"value" joins at the colon).
  for (let t of [...unescaped.split(SPLIT), ...unescaped.replace(/["']/g, '').split(/[:\s"'`=,;|&()<>[\]]+/)]) {
    t = t.replace(/^file:\/\//, '').replace(/[:.]+$/, '');
    while (t.endsWith('}') && t.split('{').length < t.split('}').length) t = t.slice(0, -1); // a JSON object's end
    if (t.length < 2 || t.length > 4096 || !t.includes('/')) continue;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t) || t.startsWith('//')) continue; // a URL (or its tail)
    out.add(t);
  }
  return [...out];
}

/** Absolute paths a token may stand for ($VAR and ${VAR} expanded from ctx.vars; unknown variables drop the token). */
export function resolveToken(token: string, ctx: ReferenceContext): string[] {
  let t = token;
  let unknown = false;
  t = t.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, name: string) => {
    const v = name === 'HOME' ? ctx.home : ctx.vars?.[name];
    if (v === undefined) unknown = true;
    return v ?? '';
  });
  if (unknown) return [];
  if (t === '~' || t.startsWith('~/')) return ctx.home ? [join(ctx.home, t.slice(1))] : [];
  if (t.startsWith('~')) return [];
  if (isAbsolute(t)) return [resolve(t)];
  return ctx.bases.map((b) => resolve(b, t));
}

/** Every absolute path the text's tokens may stand for, at most `limit`. */
export function referencedPaths(text: string, ctx: ReferenceContext, limit = 256): string[] {
  const out = new Set<string>();
  for (const t of pathTokens(text)) {
    for (const p of resolveToken(t, ctx)) {
      out.add(p);
      if (out.size >= limit) return [...out];
    }
  }
  return [...out];
}

/** A token written as a path on purpose (./x, ../x, /x, ~/x, $DIR/x): worth protecting even before it exists. */
export const explicitPath = (token: string): boolean => /^(\.{1,2}\/|\/|~\/|\$)/.test(token);
