// The path globs of a manifest's fs section (allowed_paths, denied_paths),
// matched against the normalized relative path the fs host really opens
// (src/providers/fs-path.ts). The exact semantics:
//
// - A glob is a relative path: components separated by "/", none of them
//   empty, "." or "..", and no leading "/".
// - A component that is exactly `**` matches zero or more whole components;
//   `**` inside a longer component is refused (write `*` there).
// - In any other component `*` matches any run of characters, the empty one
//   included, within that one component (never a "/"), and `?` exactly one
//   character; every other character stands for itself. `[`, `]`, `{`, `}`
//   and `\` are refused: there are no classes, braces or escapes, and a glob
//   that looked like one would silently match something else.
// - A glob matches the whole path (anchored at both ends), case-sensitively.
//   Names starting with "." get no special treatment: `*`, `?` and `**`
//   match them like any other, so "src/**" covers "src/.env" (and a deny
//   glob "**/.env" then removes it: deny wins).
// - The root itself is the empty path (no components); only globs made of
//   `**` components match it. "src/**" matches "src" and everything under it.
// - A path is allowed when some allowed glob matches it and no denied glob
//   does.

export type GlobVerdict = 'allowed' | 'denied' | 'not_allowed';

export type Segment = { any: true } | { any: false; literal: string } | { any: false; re: RegExp };

/** A glob that breaks the rules above: names the field and the glob. */
export class GlobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GlobError';
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function compileComponent(c: string): Segment {
  if (c === '**') return { any: true };
  if (!c.includes('*') && !c.includes('?')) return { any: false, literal: c };
  let src = '';
  for (const ch of c) src += ch === '*' ? '[^/]*' : ch === '?' ? '[^/]' : escapeRe(ch);
  return { any: false, re: new RegExp(`^${src}$`, 'su') };
}

/** Compiles one glob; `where` names it in errors (e.g. 'fs.allowed_paths[2]'). */
export function compileGlob(glob: string, where: string): Segment[] {
  const bad = (why: string): GlobError => new GlobError(`${where}: the glob ${JSON.stringify(glob)} ${why}`);
  if (typeof glob !== 'string' || glob.length === 0) throw bad('is empty: give a relative path glob such as "src/**"');
  if (glob.startsWith('/')) throw bad('is absolute: globs are relative to the root, e.g. "src/**"');
  if (/[[\]{}\\]/.test(glob)) throw bad('uses [ ] { } or \\: only * (within a component), ** (whole components) and ? are supported');
  if (glob.includes('\0')) throw bad('contains NUL');
  return glob.split('/').map((c) => {
    if (c === '' || c === '.' || c === '..') throw bad(`has an ${c === '' ? 'empty' : `"${c}"`} component: write it without "//", "./" or "../"`);
    if (c !== '**' && c.includes('**')) throw bad(`has "**" inside the component "${c}": "**" must be a whole component (use "*" within one)`);
    return compileComponent(c);
  });
}

function segmentMatches(s: Segment, component: string): boolean {
  if (s.any) return true;
  return 'literal' in s ? s.literal === component : s.re.test(component);
}

/** Whether the compiled glob matches the path given as its components ([] is the root). */
export function matchGlob(glob: readonly Segment[], components: readonly string[]): boolean {
  const P = glob.length;
  const S = components.length;
  // ok[pi * (S + 1) + si]: glob[pi..] matches components[si..]; filled from the ends.
  const ok = new Uint8Array((P + 1) * (S + 1));
  ok[P * (S + 1) + S] = 1;
  for (let pi = P - 1; pi >= 0; pi--) {
    const seg = glob[pi]!;
    for (let si = S; si >= 0; si--) {
      const next = (pi + 1) * (S + 1);
      let v: number;
      if (seg.any) v = ok[next + si]! | (si < S ? ok[pi * (S + 1) + si + 1]! : 0);
      else v = si < S && segmentMatches(seg, components[si]!) ? ok[next + si + 1]! : 0;
      ok[pi * (S + 1) + si] = v;
    }
  }
  return ok[0] === 1;
}

/** A manifest's allowed and denied globs, compiled once (throws GlobError on a bad one). */
export class PathGlobs {
  private readonly allowed: Segment[][];
  private readonly denied: Segment[][];

  constructor(allowed: readonly string[], denied: readonly string[]) {
    this.allowed = allowed.map((g, i) => compileGlob(g, `fs.allowed_paths[${i}]`));
    this.denied = denied.map((g, i) => compileGlob(g, `fs.denied_paths[${i}]`));
  }

  verdict(components: readonly string[]): GlobVerdict {
    if (this.denied.some((g) => matchGlob(g, components))) return 'denied';
    return this.allowed.some((g) => matchGlob(g, components)) ? 'allowed' : 'not_allowed';
  }

  isDenied(components: readonly string[]): boolean {
    return this.denied.some((g) => matchGlob(g, components));
  }
}
