// Tables whose rows are large (a receipt, a stored reply) are rowid tables.
// In a WITHOUT ROWID table the row is the B-tree's key: a cell keeps about
// 1 KB of a 4 KB page locally, the rest in overflow pages, and every insert's
// seek compares the new key with whole rows, reading those pages, so its cost
// grows with the rows' size (measured: 121 against 54 us an insert and commit
// at 1 KB a row, 962 against 279 us at 100 KB). A file written with such a
// table is rebuilt at its first open by this version.
//
// The rebuild drops the old table, and with it whatever hangs on it: a
// trigger (which `latchgate verify` reports as tampering), a damaged index,
// rows of a table that cascades from it. So it rebuilds only a table exactly
// as an earlier latchgate made it, in a file holding nothing that could
// change or hide what it copies, and stops with the fix otherwise.
import type { Db } from './db.js';
import { LedgerError } from './ledger.js';

export interface RowidRebuild {
  table: string;
  /** The table's CREATE statement as the earlier latchgate made it (whitespace aside). */
  earlier: string;
  /** The CREATE INDEX statements the earlier latchgate gave it (whitespace aside), besides its primary key's. */
  indexes: readonly string[];
  /** The rowid table's CREATE statement, for a name: the same columns. */
  create: (name: string) => string;
  /** The order the rows are copied in: the new rowids follow it. */
  order: string;
}

const oneLine = (sql: string | undefined) => sql?.replace(/\s+/g, ' ').replace(/\( /g, '(').replace(/ \)/g, ')').trim();

/**
 * Rebuilds a WITHOUT ROWID table as the rowid table `create(table)` makes,
 * with every row; nothing (false) if the table is absent or a rowid table
 * already. Must run inside the caller's write transaction (db.ts
 * immediate()): a failure leaves the file as it was. The old table's
 * indexes go with it: the caller creates them again.
 */
export function rebuildAsRowidTable(db: Db, r: RowidRebuild): boolean {
  const { table } = r;
  if (!db.inTransaction) throw new Error(`rebuilding ${table}: not inside a transaction`);
  const wr = db.prepare(`SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ? COLLATE NOCASE`).pluck().get(table) as number | undefined;
  if (wr !== 1) return false;
  const refuse = (what: string, fix = `run \`latchgate verify\` on this state directory to see what the file holds, and restore it from a backup`) => {
    throw new LedgerError(`${db.name}: not rebuilding its ${table} table as a rowid table (what this latchgate keeps it as), because ${what}; nothing was changed. Fix: ${fix}`, 'ledger_rebuild_refused');
  };
  // Nothing that would run, or go, with the copy or the drop.
  const objects = db.prepare(`SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view') ORDER BY type, name`).all() as { type: string; name: string }[];
  if (objects.length) refuse(`the file holds ${objects.map((o) => `${o.type} ${JSON.stringify(o.name)}`).join(', ')}, which no latchgate makes`);
  const referring = db
    .prepare(`SELECT DISTINCT m.name FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table' AND f."table" = ? COLLATE NOCASE ORDER BY m.name`)
    .pluck()
    .all(table) as string[];
  if (referring.length) refuse(`table(s) ${referring.join(', ')} refer to it by a foreign key, which no latchgate makes (dropping it would delete their rows)`);
  const sql = db.prepare(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE`).pluck().get(table) as string | undefined;
  if (oneLine(sql) !== oneLine(r.earlier)) refuse(`it is not the table an earlier latchgate made: ${JSON.stringify(sql)}`);
  const indexes = (db.prepare(`SELECT m.sql FROM pragma_index_list(?) i JOIN sqlite_master m ON m.name = i.name WHERE i.origin = 'c'`).pluck().all(table) as string[]).map(oneLine).sort();
  const earlierIndexes = r.indexes.map(oneLine).sort();
  if (indexes.join('\n') !== earlierIndexes.join('\n')) refuse(`its indexes are ${JSON.stringify(indexes)}, not the ${JSON.stringify(earlierIndexes)} an earlier latchgate made`);
  // The table against its indexes, then the whole file's pages: the copy is written into pages the
  // file calls free, and a free list that names pages in use would have it overwrite other tables.
  for (const [check, ...args] of [['pragma_integrity_check(?)', table], ['pragma_quick_check']]) {
    const damage = db.prepare(`SELECT * FROM ${check}`).pluck().all(...args) as string[];
    if (damage.join() !== 'ok') refuse(`SQLite finds the file damaged: ${damage.slice(0, 5).join('; ')}`);
  }
  const next = `${table}_rowid`;
  const taken = db.prepare(`SELECT type, name FROM sqlite_master WHERE name = ? COLLATE NOCASE`).get(next) as { type: string; name: string } | undefined;
  if (taken) refuse(`the file already has a ${taken.type} named ${JSON.stringify(taken.name)}, which no latchgate makes`, `look at what it holds (sqlite3 ${db.name} '.schema ${taken.name}'), then drop it`);

  db.exec(r.create(next));
  const cols = (db.prepare(`SELECT name FROM pragma_table_info(?)`).pluck().all(next) as string[]).join(', ');
  db.exec(`INSERT INTO ${next} (${cols}) SELECT ${cols} FROM ${table} ORDER BY ${r.order}`);
  db.exec(`DROP TABLE ${table}`);
  db.exec(`ALTER TABLE ${next} RENAME TO ${table}`);
  return true;
}

/**
 * Runs fn, a migration; a write lock held past the busy timeout (another
 * process migrating, say, and rebuilding a large table of an earlier
 * layout) is named, with what to do.
 */
export function busyExplained<T>(db: Db, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'SQLITE_BUSY') throw e;
    throw new LedgerError(
      `${db.name} is busy: another process has held its write lock for longer than this one waits (a latchgate of this version rebuilding the tables of a large file an earlier one wrote, say, which takes a second or two per hundred MB of receipts). Fix: wait for it and start again, or stop the other latchgate processes on this state directory first`,
      'ledger_busy',
    );
  }
}
