// One SOPS value: the tree's scalar types, the bytes each one contributes to
// the MAC (sops.go ToBytes: Go's decimal ints, shortest %f floats, True and
// False), and the `ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]` string
// that holds it encrypted: AES-256-GCM with a 32-byte IV, the key path as
// associated data.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { SecretsError } from './errors.js';

/** A YAML/JSON float, kept apart from ints (bigint) because SOPS types and prints them differently. */
export class GoFloat {
  constructor(readonly value: number) {}
}

/** A value of `type:time` (newer sops): its RFC 3339 text as sops wrote it. */
export class GoTime {
  constructor(readonly text: string) {}
}

export type SopsScalar = string | bigint | GoFloat | boolean | Uint8Array | GoTime;
export type SopsNode = SopsScalar | null | SopsNode[] | SopsMap;
/** A mapping in document order (a Map keeps every key's place, numeric-looking ones too). */
export type SopsMap = Map<string, SopsNode>;

export const isMap = (n: SopsNode): n is SopsMap => n instanceof Map;

/** strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that read back as v, never an exponent. */
export function goFloatF(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  const { neg, digits, exp } = shortest(v);
  const dp = exp + 1; // digits before the point
  let s: string;
  if (dp <= 0) s = `0.${'0'.repeat(-dp)}${digits}`;
  else if (dp >= digits.length) s = digits + '0'.repeat(dp - digits.length);
  else s = `${digits.slice(0, dp)}.${digits.slice(dp)}`;
  return neg ? `-${s}` : s;
}

function shortest(v: number): { neg: boolean; digits: string; exp: number } {
  const neg = v < 0 || Object.is(v, -0);
  if (v === 0) return { neg, digits: '0', exp: 0 };
  const [m, e] = Math.abs(v).toExponential().split('e') as [string, string];
  return { neg, digits: m.replace('.', ''), exp: Number(e) };
}

/** The bytes a leaf adds to the MAC. */
export function macBytes(v: SopsScalar): Buffer {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (typeof v === 'bigint') return Buffer.from(v.toString());
  if (typeof v === 'boolean') return Buffer.from(v ? 'True' : 'False');
  if (v instanceof GoFloat) return Buffer.from(goFloatF(v.value));
  if (v instanceof GoTime) return Buffer.from(v.text);
  return Buffer.from(v);
}

// --- ENC[...] ------------------------------------------------------------

const ENC = /^ENC\[AES256_GCM,data:([^,\]]*),iv:([^,\]]*),tag:([^,\]]*),type:([^,\]]*)\]$/;
const TYPES = new Set(['str', 'int', 'float', 'bool', 'bytes', 'time', 'comment']);
const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };

export const looksEncrypted = (s: string): boolean => s.startsWith('ENC[');

/** Standard padded base64 as Go writes it; anything else is null. */
function b64(s: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return null;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : null;
}

export interface EncParts { data: Buffer; iv: Buffer; tag: Buffer; type: string }

export function parseEnc(s: string, place: { file?: string; keyPath?: string }): EncParts {
  const bad = (why: string) => new SecretsError('bad_value', `${place.file ?? '(secrets file)'}: ${place.keyPath ?? 'value'}: malformed encrypted value (${why}); the file was damaged or edited by hand: restore it from version control`, place);
  const m = ENC.exec(s);
  if (!m) throw bad('not ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]');
  const [, d, i, t, type] = m as unknown as [string, string, string, string, string];
  const data = b64(d);
  const iv = b64(i);
  const tag = b64(t);
  if (!data || data.length === 0) throw bad('data is not base64');
  if (!iv || iv.length !== 32) throw bad('iv is not 32 bytes of base64');
  if (!tag || tag.length !== 16) throw bad('tag is not 16 bytes of base64');
  if (!TYPES.has(type)) throw bad(`unknown type ${JSON.stringify(type.slice(0, 20))}`);
  return { data, iv, tag, type };
}

/** The plaintext bytes and type of an ENC[...] string, authenticated against aad. */
export function decryptEnc(s: string, key: Buffer, aad: string, place: { file?: string; keyPath?: string }): { bytes: Buffer; type: string } {
  const p = parseEnc(s, place);
  const d = createDecipheriv('aes-256-gcm', key, p.iv, { authTagLength: 16 });
  d.setAAD(Buffer.from(aad, 'utf8'));
  d.setAuthTag(p.tag);
  try {
    return { bytes: Buffer.concat([d.update(p.data), d.final()]), type: p.type };
  } catch {
    throw new SecretsError('value_auth_failed', `${place.file ?? '(secrets file)'}: ${place.keyPath ?? 'value'}: the encrypted value does not authenticate: its data, iv or tag was altered, or it was moved from another key path; restore the file from version control`, place);
  }
}

/** The typed value of decrypted bytes, as aes/cipher.go Decrypt reads each type. */
export function typedValue(bytes: Buffer, type: string, place: { file?: string; keyPath?: string }): SopsScalar {
  const text = bytes.toString('utf8');
  const bad = (what: string) => new SecretsError('bad_value', `${place.file ?? '(secrets file)'}: ${place.keyPath ?? 'value'}: the decrypted value is not ${what}`, place);
  switch (type) {
    case 'str': return text;
    case 'bytes': return Buffer.from(bytes);
    case 'time': return new GoTime(text);
    case 'int': {
      if (!/^[+-]?\d+$/.test(text)) throw bad('an int');
      const n = BigInt(text);
      if (n < INT64.min || n > INT64.max) throw bad('an int in the 64-bit range');
      return n;
    }
    case 'float': {
      const special = /^([+-]?)(inf|infinity|nan)$/i.exec(text);
      if (special) return new GoFloat(special[2]!.toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity);
      if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw bad('a float');
      const n = Number(text);
      if (!Number.isFinite(n)) throw bad('a float in range');
      return new GoFloat(n);
    }
    case 'bool':
      if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
      if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
      throw bad('a bool');
    default:
      throw bad(`a value (type ${type} is only for comments)`);
  }
}

/** ENC[...] of a value; type and plaintext bytes as aes/cipher.go Encrypt writes them. */
export function encryptEnc(v: SopsScalar, key: Buffer, aad: string): string {
  let type: string;
  if (typeof v === 'string') type = 'str';
  else if (typeof v === 'bigint') type = 'int';
  else if (typeof v === 'boolean') type = 'bool';
  else if (v instanceof GoFloat) type = 'float';
  else if (v instanceof GoTime) type = 'time';
  else type = 'bytes';
  const iv = randomBytes(32);
  const c = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  c.setAAD(Buffer.from(aad, 'utf8'));
  const data = Buffer.concat([c.update(macBytes(v)), c.final()]);
  return `ENC[AES256_GCM,data:${data.toString('base64')},iv:${iv.toString('base64')},tag:${c.getAuthTag().toString('base64')},type:${type}]`;
}
