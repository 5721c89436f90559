// Checkpoints (C2SP tlog-checkpoint, https://c2sp.org/tlog-checkpoint): the
// text of a signed note that states a log's tree head:
//   <origin>\n<tree size, decimal>\n<base64 root hash>\n[extension lines\n]
// Standalone like the rest of src/verify/: no Node API.
import { decodeBase64, encodeBase64 } from './base64.js';
import { openNote, type NoteVerifier } from './note.js';

export interface Checkpoint {
  origin: string;
  /** The number of leaves (a safe integer). */
  size: number;
  /** The RFC 9162 root of the tree of `size` leaves: 32 bytes. */
  rootHash: Uint8Array;
  /** Opaque extra lines; latchgate writes none. */
  extensions: string[];
}

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** The note text of a checkpoint. */
export function formatCheckpoint(c: Checkpoint): string {
  if (c.origin === '' || /[\n\s+]/u.test(c.origin)) throw new CheckpointError(`the origin ${JSON.stringify(c.origin)} is empty or holds a space or '+'`);
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw new CheckpointError(`the tree size ${c.size} is not a non-negative safe integer`);
  if (c.rootHash.length !== 32) throw new CheckpointError('the root hash is not 32 bytes');
  for (const e of c.extensions) if (e === '' || e.includes('\n')) throw new CheckpointError('an extension line is empty or holds a newline');
  return [c.origin, String(c.size), encodeBase64(c.rootHash), ...c.extensions].join('\n') + '\n';
}

/** Reads the note text of a checkpoint (after its signature was checked: see openCheckpoint). */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw new CheckpointError('the checkpoint does not end in a newline');
  const lines = text.slice(0, -1).split('\n');
  const [origin, size, root, ...extensions] = lines;
  if (origin === undefined || size === undefined || root === undefined) throw new CheckpointError('a checkpoint has at least three lines: origin, tree size, root hash');
  if (origin === '') throw new CheckpointError('line 1 (origin) is empty');
  if (!/^(0|[1-9][0-9]*)$/.test(size)) throw new CheckpointError(`line 2 (tree size) ${JSON.stringify(size)} is not a decimal number without leading zeros`);
  const n = Number(size);
  if (!Number.isSafeInteger(n)) throw new CheckpointError(`line 2 (tree size) ${size} is beyond 2^53 - 1`);
  const rootHash = decodeBase64(root);
  if (!rootHash || rootHash.length !== 32) throw new CheckpointError('line 3 (root hash) is not canonical base64 of 32 bytes');
  extensions.forEach((e, i) => {
    if (e === '') throw new CheckpointError(`line ${i + 4} (an extension) is empty`);
  });
  return { origin, size: n, rootHash, extensions };
}

/**
 * A signed checkpoint's content, once its signature by one of `verifiers`
 * checks out and its origin is the one expected. Throws NoteError (the
 * signature) or CheckpointError (the content).
 */
export function openCheckpoint(note: string, verifiers: readonly NoteVerifier[], origin?: string): Checkpoint & { text: string; verifiedBy: NoteVerifier[] } {
  const { text, verifiedBy } = openNote(note, verifiers);
  const c = parseCheckpoint(text);
  if (origin !== undefined && c.origin !== origin) throw new CheckpointError(`the checkpoint is of the log ${JSON.stringify(c.origin)}, not ${JSON.stringify(origin)}`);
  return { ...c, text, verifiedBy };
}
