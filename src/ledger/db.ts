// The one store: SQLite in WAL mode (better-sqlite3). Every module that keeps
// state registers its tables through migrate(); `latchgate sandbox` and
// `latchgate up` may open the same file at the same time.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

export function openDb(path: string): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // WAL + NORMAL: every commit survives a crash of the process; the commits
  // that must also survive a power cut (intents, receipts) go through durable(),
  // whose fsync of the WAL carries every earlier commit with it.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  return db;
}

/**
 * Runs fn in a BEGIN IMMEDIATE transaction: the write lock is taken up front,
 * so read-then-write sequences (budget debit, grant consumption, chain
 * append) cannot interleave with another process's.
 */
export function immediate<T>(db: Db, fn: () => T): T {
  return db.transaction(fn).immediate();
}

/** An immediate transaction whose commit is fsynced before this returns. */
export function durable<T>(db: Db, fn: () => T): T {
  if (db.inTransaction) return db.transaction(fn)(); // the outer commit decides
  db.pragma('synchronous = FULL');
  try {
    return db.transaction(fn).immediate();
  } finally {
    db.pragma('synchronous = NORMAL');
  }
}
