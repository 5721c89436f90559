// A string as one word of a POSIX shell command line.

/** s as a shell word: as is when plainly safe, else single-quoted. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_/.,:@%+=-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}
