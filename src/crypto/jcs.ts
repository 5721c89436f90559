// RFC 8785 JSON Canonicalization Scheme: UTF-16 code-unit key order, ES6
// number serialisation, minimal string escapes. The bytes every hash and
// signature in latchgate is computed over.
import { createHash } from 'node:crypto';

export class CanonicalizationError extends Error {
  constructor(message: string, readonly path: string) {
    super(`${message} at ${path || '/'}`);
    this.name = 'CanonicalizationError';
  }
}

export interface CanonicalizeLimits {
  maxDepth?: number;
  maxBytes?: number;
}

const DEFAULT_LIMITS = { maxDepth: 64, maxBytes: 4 * 1024 * 1024 };

function escapePointer(k: string): string {
  return k.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function canonicalize(value: unknown, limits: CanonicalizeLimits = {}): string {
  const maxDepth = limits.maxDepth ?? DEFAULT_LIMITS.maxDepth;
  const maxBytes = limits.maxBytes ?? DEFAULT_LIMITS.maxBytes;
  const out: string[] = [];
  let size = 0;
  const emit = (s: string, path: string) => {
    size += s.length;
    if (size > maxBytes) throw new CanonicalizationError(`canonical form exceeds ${maxBytes} bytes`, path);
    out.push(s);
  };
  const walk = (v: unknown, path: string, depth: number): void => {
    if (depth > maxDepth) throw new CanonicalizationError(`nesting deeper than ${maxDepth}`, path);
    if (v === null) return emit('null', path);
    switch (typeof v) {
      case 'boolean':
        return emit(v ? 'true' : 'false', path);
      case 'number':
        if (!Number.isFinite(v)) throw new CanonicalizationError('a number that is not finite (NaN or Infinity) has no JSON form', path);
        return emit(JSON.stringify(v), path); // ES6 Number::toString, as RFC 8785 requires (-0 -> 0)
      case 'string':
        return emit(JSON.stringify(v), path); // JSON.stringify escapes exactly as RFC 8785 §3.2.2.2 (lone surrogates as \u)
      case 'object': {
        if (Array.isArray(v)) {
          emit('[', path);
          v.forEach((x, i) => {
            if (i > 0) emit(',', path);
            walk(x === undefined ? null : x, `${path}/${i}`, depth + 1);
          });
          return emit(']', path);
        }
        if (Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) {
          const json = (v as { toJSON?: () => unknown }).toJSON;
          if (typeof json === 'function') return walk(json.call(v), path, depth);
          throw new CanonicalizationError(`a ${(v as object).constructor?.name ?? 'non-plain'} object has no JSON form`, path);
        }
        // Keys sorted by UTF-16 code units: JavaScript's default string order.
        const keys = Object.keys(v as object).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
        emit('{', path);
        keys.forEach((k, i) => {
          if (i > 0) emit(',', path);
          emit(JSON.stringify(k), path);
          emit(':', path);
          walk((v as Record<string, unknown>)[k], `${path}/${escapePointer(k)}`, depth + 1);
        });
        return emit('}', path);
      }
      default:
        throw new CanonicalizationError(`a ${typeof v} has no JSON form`, path);
    }
  };
  walk(value, '', 0);
  return out.join('');
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** "sha256:<hex>" of the canonical UTF-8 bytes. */
export function canonicalHash(value: unknown, limits?: CanonicalizeLimits): string {
  return `sha256:${sha256Hex(Buffer.from(canonicalize(value, limits), 'utf8'))}`;
}
