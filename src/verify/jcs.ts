// RFC 8785 JSON Canonicalization Scheme: UTF-16 code-unit key order, ES6
// number serialisation, minimal string escapes. The bytes every hash and
// signature in latchgate is computed over. Standalone (no Node API), so the
// receipt bundle verifier computes the very same bytes in a browser;
// src/crypto/jcs.ts re-exports it beside the node:crypto hashes.

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
  let out = '';
  // The keys and indexes down to the value being written: its JSON pointer is made only for an error.
  const at: (string | number)[] = [];
  const fail = (message: string): never => {
    throw new CanonicalizationError(message, at.map((k) => `/${typeof k === 'number' ? k : escapePointer(k)}`).join(''));
  };
  const emit = (s: string) => {
    out += s;
    if (out.length > maxBytes) fail(`canonical form exceeds ${maxBytes} bytes`);
  };
  const walk = (v: unknown, depth: number): void => {
    if (depth > maxDepth) fail(`nesting deeper than ${maxDepth}`);
    if (v === null) return emit('null');
    switch (typeof v) {
      case 'boolean':
        return emit(v ? 'true' : 'false');
      case 'number':
        if (!Number.isFinite(v)) fail('a number that is not finite (NaN or Infinity) has no JSON form');
        return emit(JSON.stringify(v)); // ES6 Number::toString, as RFC 8785 requires (-0 -> 0)
      case 'string':
        return emit(JSON.stringify(v)); // JSON.stringify escapes exactly as RFC 8785 §3.2.2.2 (lone surrogates as \u)
      case 'object': {
        if (Array.isArray(v)) {
          emit('[');
          for (let i = 0; i < v.length; i++) {
            if (i > 0) emit(',');
            at.push(i);
            const x: unknown = v[i];
            walk(x === undefined ? null : x, depth + 1);
            at.pop();
          }
          return emit(']');
        }
        const proto: unknown = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) {
          const json = (v as { toJSON?: () => unknown }).toJSON;
          if (typeof json === 'function') return walk(json.call(v), depth);
          fail(`a ${(v as object).constructor?.name ?? 'non-plain'} object has no JSON form`);
        }
        // Keys sorted by UTF-16 code units: JavaScript's default string order.
        const o = v as Record<string, unknown>;
        const keys = Object.keys(o).sort();
        emit('{');
        let first = true;
        for (const k of keys) {
          const x = o[k];
          if (x === undefined) continue;
          emit(first ? JSON.stringify(k) : `,${JSON.stringify(k)}`);
          first = false;
          emit(':');
          at.push(k);
          walk(x, depth + 1);
          at.pop();
        }
        return emit('}');
      }
      default:
        return fail(`a ${typeof v} has no JSON form`);
    }
  };
  walk(value, 0);
  return out;
}

/**
 * Whether text is the canonical form of parsed (JSON.parse(text)), by a
 * quicker road than canonicalize(parsed) === text: for a value JSON.parse
 * made (plain objects and arrays, finite numbers, strings, booleans, null),
 * JSON.stringify writes numbers, strings and arrays exactly as canonicalize
 * does, and object members in their own key order. So when every object's
 * keys are already in canonicalize's order (UTF-16 code units) and the value
 * is within the default depth and size limits, the two forms are the same
 * string. true means canonicalize(parsed) === text; false means nothing: ask
 * canonicalize.
 */
export function isCanonicalText(text: string, parsed: unknown): boolean {
  return text.length <= DEFAULT_LIMITS.maxBytes && sortedWithin(parsed, 0) && JSON.stringify(parsed) === text;
}

/** Every object's keys in ascending UTF-16 order, and no value deeper than canonicalize allows. */
function sortedWithin(v: unknown, depth: number): boolean {
  if (depth > DEFAULT_LIMITS.maxDepth) return false;
  if (v === null) return true;
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'number': // 1e999 parses to Infinity, which JSON.stringify writes as null: never the text
      return true;
    case 'object':
      break;
    default:
      return false; // no JSON form: canonicalize says why
  }
  if (Array.isArray(v)) {
    for (const x of v) if (!sortedWithin(x, depth + 1)) return false;
    return true;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) return false;
  let prev: string | undefined;
  for (const k in v) {
    if (prev !== undefined && !(prev < k)) return false;
    prev = k;
    if (!sortedWithin((v as Record<string, unknown>)[k], depth + 1)) return false;
  }
  return true;
}
