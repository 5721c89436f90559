// Tables whose rows are large (a receipt, a stored reply) are rowid tables.
// In a WITHOUT ROWID table the row is the B-tree's key: a cell keeps about
// 1 KB of a 4 KB page locally, the rest in overflow pages, and every insert's
// seek compares the new key with whole rows, reading those pages, so its cost
// grows with the rows' size (measured: 121 against 54 us an insert and commit
// at 1 KB a row, 962 against 279 us at 100 KB). A file written with such a
// table is rebuilt at its first open by this version.
import type { Db } from './db.js';

/** Whether `table` exists in the main schema as a WITHOUT ROWID table. */
function isWithoutRowid(db: Db, table: string): boolean {
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
  // Never into a table that was there before: its rows would join the copy.
  if (db.prepare(`SELECT 1 FROM sqlite_master WHERE name = ?`).get(next) !== undefined) {
    throw new Error(`rebuilding ${table} as a rowid table: ${db.name} already has a ${next}, which no latchgate makes; nothing was changed. Fix: look at what it holds (sqlite3 ${db.name} '.dump ${next}'), then drop it`);
  }
  const cols = columns.join(', ');
  db.exec(create(next));
  db.exec(`INSERT INTO ${next} (${cols}) SELECT ${cols} FROM ${table} ORDER BY ${order}`);
  db.exec(`DROP TABLE ${table}`);
  db.exec(`ALTER TABLE ${next} RENAME TO ${table}`);
  return true;
}
