// Writes git configuration files (git-config(1), "CONFIGURATION FILE") from
// data. Section and key names come from the caller's code and are checked;
// every value is quoted and escaped, so no value (a user name holding quotes,
// backslashes, newlines, `[` or `#`) can end its line, open a section or add
// a key: git reads back exactly the entries given.

export interface GitConfigWrite {
  /** Section name, e.g. "user" (no subsections: nothing written here needs one). */
  section: string;
  /** Key name, e.g. "name" or "defaultBranch". */
  key: string;
  /** The value; null writes a bare key (git's boolean true, and a missing value for any other key). */
  value: string | null;
}

const NAME = /^[A-Za-z][A-Za-z0-9-]*$/;

/** The escapes git's value parser knows (config.c parse_value); any other character stands for itself inside quotes. */
const ESCAPES: Record<string, string> = { '\\': '\\\\', '"': '\\"', '\n': '\\n', '\t': '\\t', '\b': '\\b' };

/** A value as git reads it back unchanged: in double quotes, with \\ " newline tab and backspace escaped. */
export function quoteGitValue(value: string): string {
  if (value.includes('\0')) throw new Error('internal: a git config value cannot hold NUL');
  return `"${value.replace(/[\\"\n\t\b]/g, (c) => ESCAPES[c]!)}"`;
}

/** The file: comment lines first ("# " each), then the entries, one section header per run of the same section. */
export function renderGitConfig(comments: readonly string[], entries: readonly GitConfigWrite[]): string {
  const out: string[] = [];
  for (const c of comments) {
    if (/[\r\n]/.test(c)) throw new Error('internal: a git config comment must be one line');
    out.push(c === '' ? '#' : `# ${c}`);
  }
  let section: string | undefined;
  for (const e of entries) {
    if (!NAME.test(e.section) || !NAME.test(e.key)) throw new Error(`internal: not a git config name: ${JSON.stringify(`${e.section}.${e.key}`)}`);
    if (e.section.toLowerCase() !== section?.toLowerCase()) {
      section = e.section;
      out.push(`[${section}]`);
    }
    out.push(e.value === null ? `\t${e.key}` : `\t${e.key} = ${quoteGitValue(e.value)}`);
  }
  return out.join('\n') + '\n';
}
