// What `latchgate verify` checks of the ledger's signed checkpoints
// (docs/EVIDENCE.md): every checkpoint kept (the table, checkpoints.log, one
// given with --checkpoint) is signed by a checkpoint key of the endorsed key
// history (or the key given), names this ledger, agrees with every other of
// its size (else a fork), and its root is the root of the tree recomputed
// from the events themselves at its size (else the history it covers was
// rewritten; a size beyond the events: they were deleted). Each checkpoint
// is shown consistent with the next, and the latest with the ledger as it
// is, by a consistency proof from the recomputed tree. Only reads.
import { readFileSync } from 'node:fs';
import { nodeMerkle } from '../crypto/merkle.js';
import { noteVerifier, verifierKey } from '../crypto/signed-note.js';
import type { KeyStore } from '../keys/store.js';
import { CheckpointError, openCheckpoint } from '../verify/checkpoint.js';
import { MerkleProofError } from '../verify/merkle.js';
import { NoteError, parseNote, type NoteVerifier } from '../verify/note.js';
import type { Db } from './db.js';
import { MerkleStore, MerkleStoreError } from './merkle-store.js';
import { TreeRecompute } from './tree-recompute.js';
import { checkpointRows, ledgerOrigin, storedLedgerId } from './tree-checkpoints.js';

/** What verification is given besides the database: read before the database's snapshot is taken. */
export interface CheckpointInputs {
  /** checkpoints.log of the state directory (text null: there is none). */
  log?: { path: string; text: string | null };
  /** A signed checkpoint kept elsewhere (--checkpoint FILE), and the verifier key to trust for it (--trusted-key; else the key history's). */
  external?: { file: string; note: string; trustedKey?: string };
}

export type CheckpointProblemKind =
  /** The ledger's id is missing or edited, or a checkpoint names another ledger. */
  | 'origin'
  /** Not a signed checkpoint. */
  | 'malformed'
  /** Signed by no key of the checkpoint key history (or not by the key given). */
  | 'unknown_key'
  /** A signature by a known key that does not verify: changed after it was signed. */
  | 'forged'
  /** A table row whose columns disagree with its signed note. */
  | 'edited'
  /** In checkpoints.log but not in the table. */
  | 'deleted'
  /** Two checkpoints of one size with different roots. */
  | 'fork'
  /** A checkpoint of more events than the ledger holds. */
  | 'truncated'
  /** The root recomputed from the events at a checkpoint's size is not the checkpoint's. */
  | 'rewritten'
  /** A consistency proof between two checkpoints that does not verify. */
  | 'inconsistent'
  /** merkle_nodes disagree with the events. */
  | 'tree_mismatch';

export interface CheckpointProblem {
  kind: CheckpointProblemKind;
  /** Where the checkpoint was found: 'checkpoints table', 'checkpoints.log entry 3', the --checkpoint file. */
  where: string;
  size?: number;
  message: string;
}

export interface CheckpointReport {
  ok: boolean;
  /** This ledger's origin (null: its id is missing or edited). */
  origin: string | null;
  /** Events in the ledger: the leaves of the recomputed tree. */
  tree_size: number;
  /** Checkpoints in the table. */
  stored: number;
  latest: { size: number; root: string; created_at: string } | null;
  log: { path: string; entries: number } | null;
  external: { file: string; size: number; root: string; key: 'given' | 'history'; extended: boolean } | null;
  /** Every problem found, the most telling first. */
  problems: CheckpointProblem[];
}

/** A checkpoint that passed its own checks (signature, origin, form), and where it was found. */
interface Claim {
  size: number;
  root: Uint8Array;
  where: string;
}

const LEDGER_ID = /^[0-9a-f]{32}$/;
const MAX_PROBLEMS = 50;
const FIX = 'Fix: restore the state directory from a backup taken before the change, and find out who could write it';
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

/** checkpoints.log as it is now (read it before the database snapshot: every note in it is then in the table too). */
export function readCheckpointLog(path: string): { path: string; text: string | null } {
  try {
    return { path, text: readFileSync(path, 'utf8') };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { path, text: null };
    throw e;
  }
}

/** The notes of checkpoints.log (one after another, blank lines between): each note, or why the entry is not one. */
export function splitNotes(text: string): ({ note: string } | { error: string })[] {
  const lines = text.split('\n');
  const out: ({ note: string } | { error: string })[] = [];
  let i = 0;
  while (i < lines.length) {
    if (lines[i] === '') {
      i++;
      continue;
    }
    const body: string[] = [];
    while (i < lines.length && lines[i] !== '') body.push(lines[i++]!);
    const sigs: string[] = [];
    if (i < lines.length) i++; // the blank line before the signatures
    while (i < lines.length && lines[i]!.startsWith('\u2014 ')) sigs.push(lines[i++]!);
    if (sigs.length === 0 || i >= lines.length) {
      out.push({ error: `it ends without a signature line${i >= lines.length ? ' or the newline after it' : ''} (cut short: written when the machine lost power, or edited)` });
    } else out.push({ note: `${body.join('\n')}\n\n${sigs.join('\n')}\n` });
  }
  return out;
}

/** Checks the checkpoints against the tree recomputed from the events, in a pass of its own over them. Only reads. */
export function checkCheckpoints(db: Db, keys: KeyStore, inputs: CheckpointInputs = {}): CheckpointReport {
  const check = checkpointCheck(db, keys, inputs);
  for (const json of db.prepare('SELECT event_json FROM audit_events ORDER BY id').pluck().iterate() as IterableIterator<string>) check.push(json);
  return check.finish();
}

/**
 * The same check fed by a caller's own pass over the events (the chain walk
 * of verify.ts: one read of each event for the chain and the tree): push()
 * every event_json in id order, every one, inside the read transaction this
 * was started in, then finish().
 */
export function checkpointCheck(db: Db, keys: KeyStore, inputs: CheckpointInputs = {}): { push(eventJson: string): void; pushLeafHash(leafHash: Uint8Array): void; finish(): CheckpointReport } {
  const problems: CheckpointProblem[] = [];
  const problem = (p: CheckpointProblem) => problems.length < MAX_PROBLEMS && problems.push(p);
  const id = storedLedgerId(db);
  const origin = id !== undefined && LEDGER_ID.test(id) ? ledgerOrigin(id) : null;
  const rows = checkpointRows(db);
  const opener = new Opener(keys, origin);

  // The table: each row's note, and its columns against the note.
  const claims: Claim[] = [];
  const tableNotes = new Set<string>();
  for (const row of rows) {
    const where = 'checkpoints table';
    const c = opener.open(row.note, where, problem);
    if (!c) continue;
    const vkey = c.verifiedBy ? opener.vkeyOf(c.verifiedBy) : undefined;
    const off = [
      row.size !== c.size && `size ${row.size}`,
      !same(row.root, c.rootHash) && `root ${hex(row.root)}`,
      row.origin !== c.origin && `origin ${row.origin}`,
      vkey && row.vkey !== vkey.vkey && `vkey ${row.vkey}`,
      vkey && row.kid !== vkey.kid && `kid ${row.kid}`,
    ].filter(Boolean);
    if (off.length) {
      problem({ kind: 'edited', where, size: c.size, message: `the checkpoints row of size ${row.size} has ${off.join(', ')}, which its signed note does not say (size ${c.size}, root ${hex(c.rootHash)}): the row was edited. ${FIX}` });
      continue;
    }
    tableNotes.add(row.note);
    claims.push({ size: c.size, root: c.rootHash, where });
  }
  const tableSizes = new Set(claims.map((c) => c.size));
  if (origin === null && (rows.length > 0 || inputs.external)) {
    problem({ kind: 'origin', where: 'ledger_metadata', message: `the ledger's id (ledger_metadata ledger_id) is ${id === undefined ? 'missing' : JSON.stringify(id)}, not 32 hex digits, yet checkpoints name it: it was edited. ${FIX}` });
  }

  // checkpoints.log: every note in it must be in the table (it was written from there).
  let log: CheckpointReport['log'] = null;
  if (inputs.log && inputs.log.text !== null) {
    const entries = splitNotes(inputs.log.text);
    log = { path: inputs.log.path, entries: entries.length };
    entries.forEach((e, i) => {
      const where = `checkpoints.log entry ${i + 1}`;
      if ('error' in e) {
        const last = i === entries.length - 1 ? 'if the machine lost power while this last entry was written, remove the partial entry from the file; otherwise ' : '';
        return void problem({ kind: 'malformed', where, message: `${where} is not a signed checkpoint: ${e.error}. Fix: ${last}${FIX.slice('Fix: '.length)}` });
      }
      if (tableNotes.has(e.note)) return;
      const c = opener.open(e.note, where, problem);
      if (!c) return;
      claims.push({ size: c.size, root: c.rootHash, where });
      if (!tableSizes.has(c.size)) {
        problem({ kind: 'deleted', where, size: c.size, message: `the checkpoint of size ${c.size} in ${inputs.log!.path} (${where}) is not in the checkpoints table: it was deleted from the table. ${FIX}` });
      }
    });
  }

  // The checkpoint kept elsewhere.
  let external: CheckpointReport['external'] = null;
  if (inputs.external) {
    const where = inputs.external.file;
    const c = opener.open(inputs.external.note, where, problem, inputs.external.trustedKey);
    if (c) {
      claims.push({ size: c.size, root: c.rootHash, where });
      // Every checkpoint of this ledger is stored before it leaves: one the table lacks was deleted from it.
      if (!tableSizes.has(c.size)) {
        problem({ kind: 'deleted', where, size: c.size, message: `the checkpoint of size ${c.size} in ${where} is not in the checkpoints table: it was deleted from the table. ${FIX}` });
      }
      external = { file: where, size: c.size, root: hex(c.rootHash), key: inputs.external.trustedKey ? 'given' : 'history', extended: false };
    }
  }

  // Forks: one size, two roots.
  const bySize = new Map<number, Claim[]>();
  for (const c of claims) bySize.set(c.size, [...(bySize.get(c.size) ?? []), c]);
  const forked = new Set<number>();
  for (const [size, cs] of bySize) {
    const other = cs.find((c) => !same(c.root, cs[0]!.root));
    if (other) {
      forked.add(size);
      problem({ kind: 'fork', where: other.where, size, message: `two checkpoints of size ${size} have different roots: ${hex(cs[0]!.root)} (${cs[0]!.where}) and ${hex(other.root)} (${other.where}); a fork: the history was rewritten and signed again. ${FIX}` });
    }
  }

  // Checkpoints of more events than there are.
  const treeSize = db.prepare('SELECT count(*) FROM audit_events').pluck().get() as number;
  for (const [size, cs] of [...bySize].sort((a, b) => a[0] - b[0])) {
    if (size <= treeSize) continue;
    for (const c of cs) {
      const ext = c.where === inputs.external?.file;
      problem({
        kind: 'truncated',
        where: c.where,
        size,
        message: `the ledger was truncated below the checkpoint: the checkpoint of size ${size} (${c.where}) covers ${size} events, the ledger holds ${treeSize}; ${ext ? 'events it covers were deleted' : 'the newest events were deleted'}. ${FIX}`,
      });
    }
  }

  // The tree recomputed from the events, stopping at every size a checkpoint or the stored tree names, and at the end.
  const stored = storedTree(db, problem);
  if (stored && stored.size > treeSize) {
    problem({ kind: 'tree_mismatch', where: 'merkle_nodes', size: stored.size, message: `the stored Merkle tree holds ${stored.size} leaves, but the ledger only ${treeSize} events: events were deleted. ${FIX}` });
  }
  const sizes = [...new Set([...bySize.keys(), ...(stored ? [stored.size] : []), treeSize])].filter((s) => s <= treeSize).sort((a, b) => a - b);
  let prev: { root: Uint8Array; sound: boolean } | undefined;
  const tree = new TreeRecompute(sizes, (stop) => {
    // Every checkpoint of this size against the root recomputed at it.
    let sound = !forked.has(stop.size);
    for (const c of bySize.get(stop.size) ?? []) {
      if (same(stop.root, c.root)) continue;
      sound = false;
      problem({
        kind: 'rewritten',
        where: c.where,
        size: stop.size,
        message: `history was rewritten: the root of the first ${stop.size} events, recomputed from the events, is ${hex(stop.root)}, not ${hex(c.root)} as the checkpoint of size ${stop.size} (${c.where}) says: events it covers were changed, removed or added. ${FIX}`,
      });
    }
    // This checkpoint (or the ledger as it is, at the last stop) extends the one before: the consistency proof between their roots.
    const p = stop.proofFromPrevious;
    if (p && prev?.sound && sound) {
      try {
        nodeMerkle.verifyConsistency(p.from, stop.size, p.proof, prev.root, stop.root);
      } catch (e) {
        if (!(e instanceof MerkleProofError)) throw e;
        problem({ kind: 'inconsistent', where: 'recomputed tree', size: stop.size, message: `the tree of ${stop.size} events does not extend the one of ${p.from}: ${e.message}` });
      }
    }
    if (stored?.size === stop.size && !same(stored.root, stop.root)) {
      problem({
        kind: 'tree_mismatch',
        where: 'merkle_nodes',
        size: stored.size,
        message: `the stored Merkle tree (merkle_nodes) has root ${hex(stored.root)} at its size ${stored.size}, but the events give ${hex(stop.root)}: the events or the stored tree were edited, and checkpoints signed from here would not match the events. ${FIX}`,
      });
    }
    prev = { root: stop.root, sound };
  });
  const finish = (): CheckpointReport => {
    if (tree.size !== treeSize) throw new Error(`internal: ${tree.size} events pushed for a ledger of ${treeSize}`);
    if (external && !problems.some((p) => p.where === external!.file)) external.extended = true;
    const latest = rows.at(-1);
    return {
      ok: problems.length === 0,
      origin,
      tree_size: treeSize,
      stored: rows.length,
      latest: latest ? { size: latest.size, root: hex(latest.root), created_at: latest.created_at } : null,
      log,
      external,
      problems: order(problems),
    };
  };
  return { push: (json) => tree.push(json), pushLeafHash: (h) => tree.pushLeafHash(h), finish };
}

const RANK: CheckpointProblemKind[] = ['origin', 'malformed', 'unknown_key', 'forged', 'edited', 'deleted', 'fork', 'truncated', 'rewritten', 'inconsistent', 'tree_mismatch'];
const order = (ps: CheckpointProblem[]) => [...ps].sort((a, b) => RANK.indexOf(a.kind) - RANK.indexOf(b.kind));

/** The stored tree's size and root (null: a ledger without one); a damaged one is a problem. */
function storedTree(db: Db, problem: (p: CheckpointProblem) => void): { size: number; root: Uint8Array } | null {
  if (db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'merkle_nodes'`).get() === undefined) return null;
  try {
    return new MerkleStore(db).head();
  } catch (e) {
    if (!(e instanceof MerkleStoreError)) throw e;
    problem({ kind: 'tree_mismatch', where: 'merkle_nodes', message: e.message });
    return null;
  }
}

/** Opens signed checkpoints with the checkpoint key history (or one key given), under the key name each note claims. */
class Opener {
  private readonly byName = new Map<string, { verifiers: NoteVerifier[]; vkeys: Map<NoteVerifier, { kid: string; vkey: string }> }>();

  constructor(
    private readonly keys: KeyStore,
    private readonly origin: string | null,
  ) {}

  /** The kid and verifier key string of a history key's verifier. */
  vkeyOf(v: NoteVerifier): { kid: string; vkey: string } | undefined {
    for (const k of this.byName.values()) if (k.vkeys.has(v)) return k.vkeys.get(v);
    return undefined;
  }

  open(note: string, where: string, problem: (p: CheckpointProblem) => void, trustedKey?: string): { size: number; rootHash: Uint8Array; origin: string; verifiedBy?: NoteVerifier } | null {
    try {
      // The key name is the origin: the note's own first line says which name to look for.
      const claimed = parseNote(note).text.split('\n')[0]!;
      const verifiers = trustedKey !== undefined ? [noteVerifier(trustedKey)] : this.history(claimed).verifiers;
      const c = openCheckpoint(note, verifiers);
      if (this.origin !== null && c.origin !== this.origin) {
        problem({ kind: 'origin', where, size: c.size, message: `the checkpoint in ${where} is of the ledger ${c.origin}, not of this one (${this.origin}): ${trustedKey ? 'it was kept for another ledger, or ' : ''}this ledger's id (ledger_metadata ledger_id) was changed. ${FIX}` });
        return null;
      }
      return { size: c.size, rootHash: c.rootHash, origin: c.origin, verifiedBy: trustedKey === undefined ? c.verifiedBy[0] : undefined };
    } catch (e) {
      if (e instanceof NoteError) {
        if (e.reason === 'unverified') {
          const whose = trustedKey !== undefined ? 'the key given with --trusted-key' : 'any checkpoint key of the endorsed key history (keys/checkpoint-keys.jwks)';
          problem({ kind: 'unknown_key', where, message: `the checkpoint in ${where} is not signed by ${whose}: it was forged, or signed by a key that history never endorsed (${e.message}). ${FIX}` });
        } else if (e.reason === 'bad_signature') {
          problem({ kind: 'forged', where, message: `the checkpoint in ${where} was changed after it was signed: ${e.message}. ${FIX}` });
        } else if (e.reason === 'bad_key') {
          problem({ kind: 'unknown_key', where, message: `the verifier key given for ${where} cannot be used: ${e.message}` });
        } else {
          problem({ kind: 'malformed', where, message: `${where} is not a signed note: ${e.message}` });
        }
        return null;
      }
      if (e instanceof CheckpointError) {
        problem({ kind: 'malformed', where, message: `${where} is not a checkpoint: ${e.message}` });
        return null;
      }
      throw e;
    }
  }

  /** The verifiers of every trusted checkpoint key, under a key name. */
  private history(name: string) {
    let h = this.byName.get(name);
    if (!h) {
      h = { verifiers: [], vkeys: new Map() };
      const seen = new Set<string>();
      for (const k of this.keys.jwks('checkpoint').keys) {
        if (seen.has(k.x) || k.legacy_kid) continue;
        seen.add(k.x);
        let vkey: string;
        try {
          vkey = verifierKey(name, Buffer.from(k.x, 'base64url'));
        } catch {
          continue; // a name no key can have: nothing verifies under it
        }
        const v = noteVerifier(vkey);
        h.verifiers.push(v);
        h.vkeys.set(v, { kid: k.kid, vkey });
      }
      this.byName.set(name, h);
    }
    return h;
  }
}

/** The report's lines for `latchgate verify` (the first problem first). */
export function checkpointLines(r: CheckpointReport): string[] {
  const out: string[] = [];
  if (r.problems.length) {
    out.push(`Checkpoints FAIL: ${r.problems[0]!.message}`);
    if (r.problems.length > 1) out.push(`${r.problems.length - 1} more checkpoint problem(s):`, ...r.problems.slice(1).map((p) => `  ${p.message}`));
  } else if (r.latest) {
    const log = r.log ? `; ${r.log.path} agrees (${r.log.entries} entries)` : '';
    out.push(`Checkpoints: ${r.stored} signed, the latest of size ${r.latest.size} (${r.latest.created_at}); each matches the tree recomputed from the ${r.tree_size} events${log}.`);
  } else {
    out.push(`Checkpoints: none stored yet (a gate signs them as it runs; \`latchgate checkpoint\` signs one now).`);
  }
  const x = r.external;
  if (x?.extended) {
    const key = x.key === 'given' ? 'the key given with --trusted-key' : 'a checkpoint key of THIS state directory\'s key history (no --trusted-key was given: whoever can write the state directory can sign with its keys; give the key you kept to rule that out)';
    out.push(`The checkpoint in ${x.file} (size ${x.size}, root ${x.root}), signed by ${key}: the ledger (${r.tree_size} events) extends it.`);
  }
  return out;
}
