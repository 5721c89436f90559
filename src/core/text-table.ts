// The human form of every list the CLI prints: a header line of upper-case
// column names, then one row per item, columns aligned with two spaces (the
// last one unpadded, no trailing spaces). Cells come already made safe for a
// terminal; an empty cell shows as "-" so every row has each column.

export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = rows.map((r) => header.map((_, i) => r[i] || '-'));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...cells.map(line)].join('\n');
}
