// Signed checkpoints of the ledger's Merkle tree (docs/EVIDENCE.md): the
// tree's size and root as a C2SP tlog-checkpoint, signed as a C2SP signed
// note by the key store's 'checkpoint' key, stored in the `checkpoints`
// table. A checkpoint kept outside the state directory is what shows, later,
// that the ledger was not cut short or rewritten since (src/ledger/tree-verify.ts).
//
// The origin (first line, and the key name of the signature) names this
// ledger: latchgate.local/ledger/<ledger id>, the id random, made once and
// kept in ledger_metadata. Signing reads the stored tree (O(log n) nodes);
// it never runs inside an append's transaction, and refuses to sign a tree
// that does not extend the latest checkpoint (that would launder the change).
import { randomBytes, sign as cryptoSign } from 'node:crypto';
import { formatCheckpoint } from '../verify/checkpoint.js';
import { assembleNote, ed25519KeyId, signatureLine } from '../verify/note.js';
import { sha256Chunks, verifierKey } from '../crypto/signed-note.js';
import { rawPublicKey } from '../keys/ed25519.js';
import type { KeyStore } from '../keys/store.js';
import { immediate, type Db } from './db.js';
import type { Ledger } from './ledger.js';

export interface StoredCheckpoint {
  /** The tree size (number of events) the checkpoint covers. */
  size: number;
  /** The RFC 9162 root of the tree of `size` events: 32 bytes. */
  root: Uint8Array;
  /** The whole signed note (the checkpoint text, a blank line, the signature line). */
  note: string;
  origin: string;
  /** The RFC 7638 kid of the checkpoint key that signed it. */
  kid: string;
  /** The signer's verifier key string (`<origin>+<key ID>+<base64 key>`), what an auditor is given. */
  vkey: string;
  created_at: string;
}

export const ORIGIN_PREFIX = 'latchgate.local/ledger/';
const LEDGER_ID = /^[0-9a-f]{32}$/;

export class CheckpointRefusedError extends Error {
  constructor(
    message: string,
    readonly code: 'checkpoint_truncated' | 'checkpoint_rewritten' | 'checkpoint_origin' | 'checkpoint_fork',
  ) {
    super(message);
    this.name = 'CheckpointRefusedError';
  }
}

/** The checkpoint origin of the ledger with this id. */
export function ledgerOrigin(ledgerId: string): string {
  return `${ORIGIN_PREFIX}${ledgerId}`;
}

/**
 * Inside the ledger's migration transaction: the checkpoints table, and the
 * ledger's id (made once; a ledger from before it gets one now).
 */
export function migrateCheckpoints(db: Db): void {
  db.exec(`CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    origin TEXT NOT NULL,
    kid TEXT NOT NULL,
    vkey TEXT NOT NULL,
    created_at TEXT NOT NULL
  ) WITHOUT ROWID`);
  // Each sink's progress (src/ledger/checkpoint-sinks.ts): the largest size it took, its failures in a row.
  db.exec(`CREATE TABLE IF NOT EXISTS checkpoint_sinks (
    name TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    delivered_size INTEGER NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
  ) WITHOUT ROWID`);
  db.prepare(`INSERT OR IGNORE INTO ledger_metadata(key, value) VALUES ('ledger_id', ?)`).run(randomBytes(16).toString('hex'));
}

/** The ledger's id as stored (undefined: none, a ledger no latchgate with checkpoints has opened). */
export function storedLedgerId(db: Db): string | undefined {
  return db.prepare(`SELECT value FROM ledger_metadata WHERE key = 'ledger_id'`).pluck().get() as string | undefined;
}

interface Row {
  size: number;
  root: Buffer;
  note: string;
  origin: string;
  kid: string;
  vkey: string;
  created_at: string;
}

/** Every stored checkpoint, smallest size first; [] when the table does not exist (an older ledger). Only reads. */
export function checkpointRows(db: Db): StoredCheckpoint[] {
  if (db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'`).get() === undefined) return [];
  return (db.prepare('SELECT size, root, note, origin, kid, vkey, created_at FROM checkpoints ORDER BY size, created_at').all() as Row[]).map(fromRow);
}

function fromRow(r: Row): StoredCheckpoint {
  return { size: r.size, root: new Uint8Array(r.root), note: r.note, origin: r.origin, kid: r.kid, vkey: r.vkey, created_at: r.created_at };
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const FIX = 'Fix: run `latchgate verify` to see what changed, and restore the state directory from a backup';

/** The checkpoints of one open ledger, signed with the checkpoint key of `keys`. */
export class TreeCheckpoints {
  private stmts?: ReturnType<TreeCheckpoints['prepare']>;

  constructor(
    readonly ledger: Ledger,
    private readonly keys: KeyStore,
  ) {
    ledger.migrate(); // the table and the ledger id exist before the first read
  }

  /** This ledger's origin line, and the key name of its checkpoints' signatures. */
  get origin(): string {
    const id = storedLedgerId(this.ledger.db);
    if (id === undefined || !LEDGER_ID.test(id)) {
      throw new CheckpointRefusedError(
        `the ledger's id in ledger_metadata is ${id === undefined ? 'missing' : JSON.stringify(id)}, not 32 hex digits: it was edited, and checkpoints would name another ledger. ${FIX}`,
        'checkpoint_origin',
      );
    }
    return ledgerOrigin(id);
  }

  /**
   * Signs the tree's current head, stores it and returns it; when the head
   * did not move since the latest checkpoint, returns that one. Refuses
   * (CheckpointRefusedError) a tree that is smaller than the latest
   * checkpoint, or whose root at that size is not the checkpoint's.
   */
  signCheckpoint(): StoredCheckpoint {
    // The key first (it may be created, under the key store's lock), outside any SQLite transaction.
    const key = this.keys.current('checkpoint');
    const origin = this.origin;
    const { head, latest } = this.ledger.db.transaction(() => {
      const head = this.ledger.merkle.head();
      const latest = this.latestCheckpoint();
      if (latest) this.checkExtends(latest, head.size);
      return { head, latest };
    })();
    if (latest?.size === head.size) return latest;
    const text = formatCheckpoint({ origin, size: head.size, rootHash: head.root, extensions: [] });
    const raw = rawPublicKey(key.publicKey);
    const signature = cryptoSign(null, Buffer.from(text, 'utf8'), key.privateKey);
    const signed: StoredCheckpoint = {
      size: head.size,
      root: new Uint8Array(head.root),
      note: assembleNote(text, [signatureLine(origin, ed25519KeyId(sha256Chunks, origin, raw), signature)]),
      origin,
      kid: key.kid,
      vkey: verifierKey(origin, raw),
      created_at: new Date().toISOString(),
    };
    return immediate(this.ledger.db, () => {
      // Another process may have signed meanwhile: the newest one stands.
      const newest = this.latestCheckpoint();
      if (newest && newest.size >= signed.size) {
        if (newest.size === signed.size && !same(newest.root, signed.root)) {
          throw new CheckpointRefusedError(`a checkpoint of size ${newest.size} with another root (${hex(newest.root)}) was stored meanwhile: a fork. ${FIX}`, 'checkpoint_fork');
        }
        return newest;
      }
      this.s.insert.run(signed.size, Buffer.from(signed.root), signed.note, signed.origin, signed.kid, signed.vkey, signed.created_at);
      return signed;
    });
  }

  /** The checkpoint of the largest size, if any. */
  latestCheckpoint(): StoredCheckpoint | undefined {
    const r = this.s.latest.get() as Row | undefined;
    return r && fromRow(r);
  }

  /** The oldest (smallest) stored checkpoint that covers leaf `leafIndex`: its size is above the index. */
  checkpointCovering(leafIndex: number): StoredCheckpoint | undefined {
    if (!Number.isSafeInteger(leafIndex) || leafIndex < 0) throw new RangeError(`leafIndex must be a non-negative integer, got ${leafIndex}`);
    const r = this.s.covering.get(leafIndex) as Row | undefined;
    return r && fromRow(r);
  }

  /** Every stored checkpoint, smallest size first. */
  listCheckpoints(): StoredCheckpoint[] {
    return (this.s.all.all() as Row[]).map(fromRow);
  }

  /** The first `limit` stored checkpoints of a size above `size`, smallest first. */
  checkpointsAfter(size: number, limit: number): StoredCheckpoint[] {
    return (this.s.after.all(size, limit) as Row[]).map(fromRow);
  }

  /** Every checkpoint key of the history with its verifier key string under this ledger's origin, oldest first. */
  verifierKeys(): { kid: string; vkey: string; created_at: string; retired_at?: string }[] {
    const origin = this.origin;
    return this.keys.jwks('checkpoint').keys.filter((k) => !k.legacy_kid).map((k) => ({
      kid: k.kid,
      vkey: verifierKey(origin, Buffer.from(k.x, 'base64url')),
      created_at: k.created_at,
      ...(k.retired_at ? { retired_at: k.retired_at } : {}),
    }));
  }

  /** The verifier key string of the current checkpoint key (made if there is none yet): what an auditor is given. */
  currentVerifierKey(): string {
    return verifierKey(this.origin, rawPublicKey(this.keys.current('checkpoint').publicKey));
  }

  /** Throws unless the stored tree of `size` leaves extends `latest` (same origin, not smaller, same root at its size). */
  private checkExtends(latest: StoredCheckpoint, size: number): void {
    if (latest.origin !== this.origin) {
      throw new CheckpointRefusedError(`the latest checkpoint (size ${latest.size}) is of ${latest.origin}, but this ledger is ${this.origin}: ledger_metadata ledger_id was edited. ${FIX}`, 'checkpoint_origin');
    }
    if (latest.size > size) {
      throw new CheckpointRefusedError(`the ledger's tree holds ${size} events, fewer than the latest checkpoint (size ${latest.size}): events were deleted. ${FIX}`, 'checkpoint_truncated');
    }
    const root = this.ledger.merkle.merkleRoot(latest.size);
    if (!same(root, latest.root)) {
      throw new CheckpointRefusedError(
        `the ledger's tree at size ${latest.size} has root ${hex(root)}, not the latest checkpoint's ${hex(latest.root)}: the history it covers was rewritten. ${FIX}`,
        'checkpoint_rewritten',
      );
    }
  }

  private prepare() {
    const db = this.ledger.db;
    const cols = 'size, root, note, origin, kid, vkey, created_at';
    return {
      insert: db.prepare(`INSERT INTO checkpoints(${cols}) VALUES (?, ?, ?, ?, ?, ?, ?)`),
      latest: db.prepare(`SELECT ${cols} FROM checkpoints ORDER BY size DESC LIMIT 1`),
      covering: db.prepare(`SELECT ${cols} FROM checkpoints WHERE size > ? ORDER BY size LIMIT 1`),
      all: db.prepare(`SELECT ${cols} FROM checkpoints ORDER BY size`),
      after: db.prepare(`SELECT ${cols} FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?`),
    };
  }

  private get s() {
    this.stmts ??= this.prepare();
    return this.stmts;
  }
}
