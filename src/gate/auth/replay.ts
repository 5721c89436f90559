// DPoP proof jti replay cache in the shared SQLite store, so it survives a
// restart and is shared by every process on the same ledger. One atomic
// statement per proof; any database failure denies (replay_cache_unavailable).
import type Database from 'better-sqlite3';
import type { Db } from '../../ledger/db.js';
import { AuthError } from './errors.js';

export const REPLAY_TTL_SECONDS = 180;
const PURGE_INTERVAL_SECONDS = 30;

export interface ReplayCacheOptions {
  /** How long a seen jti is remembered (default 180 s; must exceed the proof iat window). */
  ttlSeconds?: number;
}

export class ReplayCache {
  readonly ttlSeconds: number;
  private readonly insert: Database.Statement<[string, number, number]>;
  private readonly purge: Database.Statement<[number]>;
  private lastPurge = 0;

  constructor(
    db: Db,
    options: ReplayCacheOptions = {},
  ) {
    this.ttlSeconds = options.ttlSeconds ?? REPLAY_TTL_SECONDS;
    db.exec(`
      CREATE TABLE IF NOT EXISTS dpop_jti (
        jti        TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL   -- unix seconds
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS dpop_jti_expires_at ON dpop_jti(expires_at);
    `);
    // Insert-or-fail in one statement. A row whose time has passed may be
    // taken over (the conflict branch updates only an expired row); a live
    // row leaves `changes` at 0: a replay.
    this.insert = db.prepare<[string, number, number]>(`
      INSERT INTO dpop_jti (jti, expires_at) VALUES (?, ?)
      ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at
      WHERE dpop_jti.expires_at <= ?
    `);
    this.purge = db.prepare<[number]>('DELETE FROM dpop_jti WHERE expires_at <= ?');
  }

  /**
   * Records `jti` as used. Throws AuthError `replay_detected` if it was seen
   * within the TTL, `replay_cache_unavailable` if the store fails.
   */
  checkAndStore(jti: string, nowSeconds: number = Date.now() / 1000): void {
    const now = Math.floor(nowSeconds);
    let changes: number;
    try {
      changes = this.insert.run(jti, now + this.ttlSeconds, now).changes;
    } catch (e) {
      throw new AuthError('replay_cache_unavailable', 'DPoP replay cache unavailable; request denied', { cause: e });
    }
    if (changes !== 1) throw new AuthError('replay_detected', 'DPoP proof jti has already been used');
    if (now - this.lastPurge >= PURGE_INTERVAL_SECONDS) {
      this.lastPurge = now;
      try {
        this.purgeExpired(now);
      } catch {
        /* housekeeping only: the next proof retries */
      }
    }
  }

  /** Deletes expired entries; returns how many. */
  purgeExpired(nowSeconds: number = Date.now() / 1000): number {
    return this.purge.run(Math.floor(nowSeconds)).changes;
  }
}
