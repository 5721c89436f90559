// Tables whose rows are large (a receipt, a stored reply) are rowid tables.
// In a WITHOUT ROWID table the row is the B-tree's key: a cell keeps about
// 1 KB of a 4 KB page locally, and every insert's seek compares the new key
// with whole rows, reading each one's overflow pages, so its cost grows with
// the rows' size (https://www.sqlite.org/withoutrowid.html, section 4: "best
// for rows under 1/20th of page size"). Files written before this keep such a
// table until their first open by this version, which rebuilds it.
import type { Db } from './db.js';

/** Whether `table` exists in the main schema as a WITHOUT ROWID table. */
export function isWithoutRowid(db: Db, table: string): boolean {
  const row = db.prepare(`SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?`).get(table) as { wr: number } | undefined;
  return row?.wr === 1;
}

/**
 * Rebuilds a WITHOUT ROWID `table` as the rowid table `create(name)` makes,
 * with every row, in `order`; nothing if the table is absent or already a
 * rowid table. Must run inside the caller's write transaction (db.ts
 * immediate()), so a failure leaves the old table whole. The old table's
 * indexes go with it: the caller creates them again.
 */
export function rebuildAsRowidTable(db: Db, table: string, create: (name: string) => string, columns: readonly string[], order: string): boolean {
  if (!db.inTransaction) throw new Error(`rebuilding ${table}: not inside a transaction`);
  if (!isWithoutRowid(db, table)) return false;
  const next = `${table}_rowid`;
  const cols = columns.join(', ');
  db.exec(create(next));
  db.exec(`INSERT INTO ${next} (${cols}) SELECT ${cols} FROM ${table} ORDER BY ${order}`);
  db.exec(`DROP TABLE ${table}`);
  db.exec(`ALTER TABLE ${next} RENAME TO ${table}`);
  return true;
}
