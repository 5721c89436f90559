// age v1 (https://age-encryption.org/v1) on node:crypto: X25519 recipients
// and identities, the header and its HMAC, the STREAM payload and the ASCII
// armor. Only what SOPS needs and what the spec requires is accepted; every
// other input fails with its own SecretsError code.
//
// Post-quantum (mlkem768x25519), plugin and passphrase (scrypt) recipients
// are refused by name: node:crypto has no ML-KEM, and SOPS files carry age
// keys, not passphrases.
import {
  createCipheriv, createDecipheriv, createHmac, createPrivateKey, createPublicKey, diffieHellman,
  generateKeyPairSync, hkdfSync, randomBytes, timingSafeEqual, type KeyObject,
} from 'node:crypto';
import { bech32Decode, bech32Encode } from './bech32.js';
import { SecretsError } from './errors.js';

export interface AgeIdentity {
  readonly type: 'X25519';
  /** The matching recipient, `age1...`. */
  readonly publicKey: string;
  readonly key: KeyObject;
  /** Where it was read (a file, an environment variable), for messages. */
  readonly source: string;
}

const VERSION_LINE = 'age-encryption.org/v1';
const X25519_INFO = 'age-encryption.org/v1/X25519';
const CHUNK = 64 * 1024;
const TAG = 16;
const ARMOR_BEGIN = '-----BEGIN AGE ENCRYPTED FILE-----';
const ARMOR_END = '-----END AGE ENCRYPTED FILE-----';
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
/** The stanza type of each recipient kind age names by its Bech32 prefix. */
const UNSUPPORTED_HRP: Record<string, string> = { age1pq: 'mlkem768x25519', 'age-secret-key-pq-': 'mlkem768x25519' };

export function unsupportedRecipient(type: string, what: string): SecretsError {
  return new SecretsError('unsupported_recipient', `unsupported recipient type ${type} (${what}): latchgate reads X25519 age keys only (age1... / AGE-SECRET-KEY-1...); add an X25519 recipient to the file with \`latchgate secrets recipients add\` or \`sops updatekeys\``);
}

// --- keys ----------------------------------------------------------------

function x25519Private(secret: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, secret]), format: 'der', type: 'pkcs8' });
}

function x25519Public(pub: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, pub]), format: 'der', type: 'spki' });
}

/** Each private key's public half, computed once: a file may be tried against it many times. */
const publicOf = new WeakMap<KeyObject, Buffer>();

function rawPublic(key: KeyObject): Buffer {
  let pub = publicOf.get(key);
  if (!pub) {
    pub = ((key.type === 'public' ? key : createPublicKey(key)).export({ format: 'der', type: 'spki' }) as Buffer).subarray(-32);
    publicOf.set(key, pub);
  }
  return pub;
}

/**
 * Most stanzas one age file may have. Each X25519 stanza costs a DH, an HKDF
 * and an AEAD per identity before the header MAC can be checked, so their
 * number bounds the work a crafted file causes; sops writes one per entry.
 */
export const MAX_STANZAS = 64;

/**
 * How many (stanza, identity) tries one read may make in all, across every
 * age file of a SOPS document: each is an X25519, an HKDF and an AEAD, about
 * half a millisecond, so this keeps a crafted file's cost near 100 ms.
 */
export const MAX_UNWRAP_TRIES = 128;

/** Shared by every ageDecrypt of one read: what is left of MAX_UNWRAP_TRIES. */
export interface UnwrapBudget { tries: number }

export const newUnwrapBudget = (): UnwrapBudget => ({ tries: MAX_UNWRAP_TRIES });

/** One identity line, `AGE-SECRET-KEY-1...`. */
export function parseAgeIdentity(text: string, source: string): AgeIdentity {
  const d = bech32Decode(text);
  if (d?.hrp === 'age-secret-key-' && d.data.length === 32) {
    const key = x25519Private(d.data);
    return { type: 'X25519', publicKey: bech32Encode('age', rawPublic(key)), key, source };
  }
  const upper = text.toUpperCase();
  if (upper.startsWith('AGE-SECRET-KEY-PQ-')) throw unsupportedRecipient('mlkem768x25519', `the post-quantum identity in ${source}`);
  if (upper.startsWith('AGE-PLUGIN-')) throw unsupportedRecipient(`plugin ${upper.slice(11).split('-')[0]!.toLowerCase()}`, `the plugin identity in ${source}`);
  throw new SecretsError('bad_identity', `${source}: not an age identity (expected a line AGE-SECRET-KEY-1... as age-keygen writes it; the key is mistyped or cut)`, { file: source });
}

/** An age key file: identities one a line; `#` comments and blank lines skipped. */
export function parseAgeIdentities(text: string, source: string): AgeIdentity[] {
  const out: AgeIdentity[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) return;
    out.push(parseAgeIdentity(line, `${source} line ${i + 1}`));
  });
  return out;
}

/** The 32-byte X25519 key of a recipient `age1...`. */
export function parseAgeRecipient(text: string): Buffer {
  const d = bech32Decode(text);
  if (d?.hrp === 'age' && d.data.length === 32) return d.data;
  if (d && UNSUPPORTED_HRP[d.hrp]) throw unsupportedRecipient(UNSUPPORTED_HRP[d.hrp]!, `recipient ${text.slice(0, 12)}...`);
  if (d?.hrp.startsWith('age1')) throw unsupportedRecipient(`plugin ${d.hrp.slice(4)}`, `recipient ${text.slice(0, 16)}...`);
  throw new SecretsError('bad_recipient', `not an age recipient: ${JSON.stringify(text.slice(0, 80))} (expected age1... as age-keygen prints it)`);
}

/** A new identity: the key file line and its recipient. */
export function generateAgeIdentity(): { secretKey: string; recipient: string } {
  const { privateKey } = generateKeyPairSync('x25519');
  const secret = (privateKey.export({ format: 'der', type: 'pkcs8' }) as Buffer).subarray(-32);
  return { secretKey: bech32Encode('age-secret-key-', secret).toUpperCase(), recipient: bech32Encode('age', rawPublic(privateKey)) };
}

// --- primitives ----------------------------------------------------------

const hkdf = (ikm: Buffer, salt: Buffer, info: string): Buffer => Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));

function seal(key: Buffer, nonce: Buffer, plaintext: Buffer): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** null when the tag does not verify. */
function open(key: Buffer, nonce: Buffer, sealed: Buffer): Buffer | null {
  if (sealed.length < TAG) return null;
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  try {
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG)), d.final()]);
  } catch {
    return null;
  }
}

/** Unpadded base64 as age writes it; anything else (padding, stray bits, other characters) is null. */
function b64raw(s: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*$/.test(s) || s.length % 4 === 1) return null;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64').replace(/=+$/, '') === s ? b : null;
}

const toB64raw = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');

// --- header --------------------------------------------------------------

interface Stanza { type: string; args: string[]; body: Buffer }
interface Header { stanzas: Stanza[]; mac: Buffer; macInput: Buffer; payload: Buffer }

const headerError = (why: string): SecretsError => new SecretsError('age_header', `age header: ${why}`);

function parseHeader(file: Buffer): Header {
  let pos = 0;
  const line = (): string => {
    const nl = file.indexOf(0x0a, pos);
    if (nl < 0) throw headerError('it ends before its last line (the file is truncated)');
    const bytes = file.subarray(pos, nl);
    for (const b of bytes) if (b < 0x20 || b > 0x7e) throw headerError('a byte that is not printable ASCII');
    pos = nl + 1;
    return bytes.toString('latin1');
  };
  const first = line();
  if (first !== VERSION_LINE) throw headerError(first.startsWith('age-encryption.org/') ? `unsupported version ${JSON.stringify(first)}` : 'not an age file (no age-encryption.org/v1 line)');
  const stanzas: Stanza[] = [];
  for (;;) {
    const start = pos;
    const l = line();
    if (l.startsWith('--- ')) {
      const mac = b64raw(l.slice(4));
      if (!mac || mac.length !== 32) throw headerError('the MAC line is malformed');
      return { stanzas, mac, macInput: file.subarray(0, start + 3), payload: file.subarray(pos) };
    }
    if (!l.startsWith('-> ')) throw headerError('a line that is neither a stanza (-> ) nor the MAC (--- )');
    if (stanzas.length === MAX_STANZAS) throw new SecretsError('too_many_stanzas', `age header: more than ${MAX_STANZAS} stanzas (sops writes one per recipient entry); refused unread, as trying each costs work per identity`);
    const args = l.slice(3).split(' ');
    if (args.some((a) => a === '')) throw headerError('a stanza with an empty argument');
    const parts: Buffer[] = [];
    for (;;) {
      const b = line();
      const bytes = b.length <= 64 ? b64raw(b) : null;
      if (!bytes) throw headerError(`stanza ${args[0]}: its body is not unpadded base64 in lines of 64 columns`);
      parts.push(bytes);
      if (b.length < 64) break;
    }
    stanzas.push({ type: args[0]!, args: args.slice(1), body: Buffer.concat(parts) });
  }
}

function unwrapX25519(s: Stanza, identities: readonly AgeIdentity[], budget: UnwrapBudget): Buffer | null {
  const share = s.args.length === 1 ? b64raw(s.args[0]!) : null;
  if (!share || share.length !== 32 || s.body.length !== 32) throw headerError('malformed X25519 stanza');
  let sharePublic: KeyObject;
  try {
    sharePublic = x25519Public(share);
  } catch {
    return null;
  }
  for (const id of identities) {
    if (budget.tries-- <= 0) {
      throw new SecretsError('too_many_stanzas', `age: gave up after ${MAX_UNWRAP_TRIES} tries of a stanza against an identity without finding the data key; a SOPS file has one stanza per recipient, so this one was made to cost work (or lists far more recipients than latchgate reads)`);
    }
    let shared: Buffer;
    try {
      shared = diffieHellman({ privateKey: id.key, publicKey: sharePublic });
    } catch {
      return null; // a low-order share: OpenSSL refuses the all-zero secret
    }
    if (shared.every((b) => b === 0)) return null;
    const key = hkdf(shared, Buffer.concat([share, rawPublic(id.key)]), X25519_INFO);
    const fileKey = open(key, Buffer.alloc(12), s.body);
    if (fileKey) return fileKey;
  }
  return null;
}

// --- decrypt / encrypt ---------------------------------------------------

/** The plaintext of a binary age file, or a SecretsError saying which part failed. */
export function ageDecrypt(file: Buffer, identities: readonly AgeIdentity[], budget: UnwrapBudget = newUnwrapBudget()): Buffer {
  const h = parseHeader(file);
  if (h.stanzas.some((s) => s.type === 'scrypt') && h.stanzas.length > 1) throw headerError('an scrypt stanza must be the only one');
  let fileKey: Buffer | null = null;
  for (const s of h.stanzas) {
    if (s.type !== 'X25519') continue;
    fileKey = unwrapX25519(s, identities, budget);
    if (fileKey) break;
  }
  if (!fileKey) {
    const types = [...new Set(h.stanzas.map((s) => s.type))];
    if (!types.includes('X25519') && types.length > 0) throw unsupportedRecipient(types.join(', '), 'an age stanza of the file');
    throw new SecretsError('no_matching_identity', `no age identity opens the file (stanzas: ${types.join(', ') || 'none'}; identities: ${identities.map((i) => i.publicKey).join(', ') || 'none'})`);
  }
  if (fileKey.length !== 16) throw new SecretsError('age_stanza', 'age: the file key is not 16 bytes');
  const mac = createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header')).update(h.macInput).digest();
  if (!timingSafeEqual(mac, h.mac)) throw new SecretsError('age_header_mac', 'age header MAC mismatch: the header was altered after it was written');
  return decryptPayload(fileKey, h.payload);
}

function decryptPayload(fileKey: Buffer, payload: Buffer): Buffer {
  if (payload.length < 16) throw new SecretsError('age_payload', 'age payload: truncated before its nonce');
  const key = hkdf(fileKey, payload.subarray(0, 16), 'payload');
  const body = payload.subarray(16);
  const chunks: Buffer[] = [];
  const sealedChunk = CHUNK + TAG;
  const count = Math.max(1, Math.ceil(body.length / sealedChunk));
  for (let i = 0; i < count; i++) {
    const sealed = body.subarray(i * sealedChunk, (i + 1) * sealedChunk);
    const last = i === count - 1;
    const nonce = Buffer.alloc(12);
    nonce.writeUIntBE(i, 5, 6);
    nonce[11] = last ? 1 : 0;
    const plain = open(key, nonce, sealed);
    if (!plain) throw new SecretsError('age_payload', `age payload: chunk ${i} does not authenticate (truncated or altered)`);
    if (last && plain.length === 0 && i > 0) throw new SecretsError('age_payload', 'age payload: an empty last chunk after full ones');
    chunks.push(plain);
  }
  return Buffer.concat(chunks);
}

/** A binary age file of plaintext for the recipients (`age1...`). */
export function ageEncrypt(plaintext: Buffer, recipients: readonly string[]): Buffer {
  if (recipients.length === 0) throw new SecretsError('bad_recipient', 'age: no recipients to encrypt to');
  const fileKey = randomBytes(16);
  let header = `${VERSION_LINE}\n`;
  for (const r of recipients) {
    const pub = parseAgeRecipient(r);
    const { privateKey, publicKey } = generateKeyPairSync('x25519');
    const share = rawPublic(publicKey);
    const shared = diffieHellman({ privateKey, publicKey: x25519Public(pub) });
    const body = seal(hkdf(shared, Buffer.concat([share, pub]), X25519_INFO), Buffer.alloc(12), fileKey);
    header += `-> X25519 ${toB64raw(share)}\n${toB64raw(body)}\n`; // 43 characters: one short line
  }
  header += '---';
  const mac = createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header')).update(header).digest();
  header += ` ${toB64raw(mac)}\n`;
  const nonce = randomBytes(16);
  const key = hkdf(fileKey, nonce, 'payload');
  const parts: Buffer[] = [Buffer.from(header, 'latin1'), nonce];
  const count = Math.max(1, Math.ceil(plaintext.length / CHUNK));
  for (let i = 0; i < count; i++) {
    const n = Buffer.alloc(12);
    n.writeUIntBE(i, 5, 6);
    n[11] = i === count - 1 ? 1 : 0;
    parts.push(seal(key, n, plaintext.subarray(i * CHUNK, (i + 1) * CHUNK)));
  }
  return Buffer.concat(parts);
}

// --- armor ---------------------------------------------------------------

export function armor(file: Buffer): string {
  const b64 = file.toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `${ARMOR_BEGIN}\n${lines.join('\n')}${lines.length ? '\n' : ''}${ARMOR_END}\n`;
}

/** The binary file inside an ASCII armor; whitespace around it is ignored, nothing inside it is. */
export function dearmor(text: string): Buffer {
  const bad = (why: string) => new SecretsError('age_armor', `age armor: ${why}`);
  const lines = text.trim().split(/\r?\n/);
  if (lines[0] !== ARMOR_BEGIN) throw bad(`it does not start with ${ARMOR_BEGIN}`);
  if (lines.length < 3 || lines[lines.length - 1] !== ARMOR_END) throw bad(`it does not end with ${ARMOR_END} (truncated?)`);
  const body = lines.slice(1, -1);
  body.forEach((l, i) => {
    const lastLine = i === body.length - 1;
    if (lastLine ? l.length === 0 || l.length > 64 : l.length !== 64) throw bad(`line ${i + 2} is not a 64-column base64 line`);
  });
  const joined = body.join('');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(joined) || joined.length % 4 !== 0) throw bad('the body is not base64');
  const bytes = Buffer.from(joined, 'base64');
  if (bytes.toString('base64') !== joined) throw bad('the body is not canonical base64');
  return bytes;
}
