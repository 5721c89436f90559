// The one store: SQLite in WAL mode (better-sqlite3). Every module that keeps
// state registers its tables through migrate(); `latchgate sandbox` and
// `latchgate up` may open the same file at the same time.
import Database from 'better-sqlite3';
import { closeSync, copyFileSync, constants as fsc, fdatasync as fdatasyncCb, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const fdatasync = promisify(fdatasyncCb);

export type Db = Database.Database;

export function openDb(path: string): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // WAL + NORMAL: every commit survives a crash of the process; before an
  // intent is acted on and before a receipt is announced, WalSync makes the
  // WAL (with every earlier commit) survive a power cut too.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  return db;
}

/**
 * Opens a database only to read it, writing nothing in its directory (the
 * verification of an archived or read-only state directory). While a -wal
 * file exists a process may be writing (or one died): SQLite opens the file
 * read-only and reads the WAL too. Without one every commit is in the
 * database file, but SQLite would create the -wal and -shm files to read it,
 * and cannot read it at all in a read-only directory: the file is read into
 * memory instead (so memory grows with it), again if it changed meanwhile.
 * A -wal without its -shm has no writer (a live one keeps the -shm): SQLite
 * would build the -shm beside it, so a private copy of both is read instead.
 */
export function openDbReadOnly(path: string): Db {
  const exists = (p: string) => statSync(p, { throwIfNoEntry: false }) !== undefined;
  if (exists(`${path}-wal`) && !exists(`${path}-shm`)) return openPrivateCopy(path);
  for (let attempt = 0; attempt < 3 && statSync(`${path}-wal`, { throwIfNoEntry: false }) === undefined; attempt++) {
    const image = readUnchanged(path);
    if (image === 'too large') break;
    if (image) {
      // A WAL-mode header would make SQLite look for a WAL beside the copy: none is needed.
      if (image[18] === 2 && image[19] === 2) image[18] = image[19] = 1;
      return new Database(image, { readonly: true });
    }
  }
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  return db;
}

/** The database and its WAL copied into a private directory, removed again when the copy is closed. */
function openPrivateCopy(path: string): Db {
  const dir = mkdtempSync(join(tmpdir(), 'latchgate-verify-'));
  try {
    const copy = join(dir, 'ledger.sqlite3');
    copyFileSync(path, copy);
    copyFileSync(`${path}-wal`, `${copy}-wal`);
    const db = new Database(copy, { readonly: true, fileMustExist: true });
    const close = db.close.bind(db);
    db.close = () => {
      close();
      rmSync(dir, { recursive: true, force: true });
      return db;
    };
    return db;
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** The whole file, or null when it changed while it was read. */
function readUnchanged(path: string): Buffer | null | 'too large' {
  const fd = openSync(path, fsc.O_RDONLY);
  try {
    const before = fstatSync(fd);
    let image: Buffer;
    try {
      image = readFileSync(fd);
    } catch (e) {
      // Past what one Buffer holds: SQLite reads it in place.
      if ((e as NodeJS.ErrnoException).code === 'ERR_FS_FILE_TOO_LARGE') return 'too large';
      throw e;
    }
    const after = fstatSync(fd);
    const same = before.size === after.size && before.mtimeMs === after.mtimeMs && before.ctimeMs === after.ctimeMs && image.length === after.size;
    return same ? image : null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether what a connection reads may have moved since it last looked: another
 * connection committed (PRAGMA data_version, which changes exactly then; see
 * https://sqlite.org/pragma.html#pragma_data_version), or this process wrote
 * through a path that says so (noteOwnWrite). The gate's checks of its plain
 * tables against the chain skip their probe query while the stamp stands.
 * One per connection (ChangeStamp.of).
 */
export class ChangeStamp {
  private static readonly byDb = new WeakMap<Db, ChangeStamp>();
  private own = 0;
  private readonly dataVersion: Database.Statement<[], number>;

  private constructor(db: Db) {
    this.dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
  }

  static of(db: Db): ChangeStamp {
    let s = ChangeStamp.byDb.get(db);
    if (!s) ChangeStamp.byDb.set(db, (s = new ChangeStamp(db)));
    return s;
  }

  /** Equal to an earlier value while nothing it watches was written meanwhile. */
  current(): string {
    return `${this.dataVersion.get()}.${this.own}`;
  }

  /** This connection wrote what a stamp must see (data_version moves only for other connections). */
  noteOwnWrite(): void {
    this.own++;
  }
}

/**
 * Runs fn in a BEGIN IMMEDIATE transaction: the write lock is taken up front,
 * so read-then-write sequences (budget debit, grant consumption, chain
 * append) cannot interleave with another process's. Inside an open
 * transaction fn simply joins it (no savepoint): a throw rolls back the
 * whole outer transaction, which is what every caller wants.
 */
export function immediate<T>(db: Db, fn: () => T): T {
  if (db.inTransaction) return fn();
  return db.transaction(fn).immediate();
}

/**
 * Makes every commit so far survive a power cut: an fdatasync of the WAL
 * (where WAL-mode commits land), run on the libuv thread pool so other
 * requests go on meanwhile. Concurrent callers share syncs (group commit):
 * a caller that arrives while a sync runs waits for the next one, which
 * starts when that one ends and covers every commit made before it began.
 * SQLite keeps the WAL file (same inode) while this process holds the
 * database open.
 */
export class WalSync {
  private fd = -1;
  private ino = -1;
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly dbPath: string) {}

  sync(): Promise<void> {
    if (this.dbPath === ':memory:' || this.dbPath === '') return Promise.resolve();
    if (!this.running) return this.start();
    // The running sync may have begun before the caller's commit: wait for the next one.
    this.next ??= this.running.then(
      () => this.start(),
      () => this.start(),
    );
    return this.next;
  }

  private start(): Promise<void> {
    this.next = undefined;
    const p = (async () => {
      const wal = `${this.dbPath}-wal`;
      const st = statSync(wal, { throwIfNoEntry: false });
      if (!st) throw new Error(`${wal} is missing: the database is not in WAL mode`);
      if (st.ino !== this.ino) {
        if (this.fd >= 0) closeSync(this.fd);
        this.fd = openSync(wal, 'r');
        this.ino = st.ino;
      }
      await fdatasync(this.fd);
    })();
    const running = p.finally(() => {
      if (this.running === running) this.running = undefined;
    });
    this.running = running;
    return running;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
