// A strict JSON reader (RFC 8259, within I-JSON, RFC 7493) for documents
// that cross a trust boundary, such as receipt bundles. JSON.parse keeps the
// last of two members with one name and reads a lone surrogate, so two
// readers could see different documents in the same bytes; this one refuses
// both, and a number without a double, and says where, by line and column.
// Standalone: no Node API.

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    /** Offset in UTF-16 code units. */
    readonly offset: number,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${message} at line ${line} column ${column}`);
    this.name = 'JsonSyntaxError';
  }
}

export interface JsonLimits {
  /** Nesting of arrays and objects (default 64). */
  maxDepth?: number;
  /** Length of the text in UTF-16 code units (default 16 Mi). */
  maxLength?: number;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** The value of a JSON text; throws JsonSyntaxError naming the place of the first fault. */
export function parseJson(text: string, limits: JsonLimits = {}): unknown {
  const maxDepth = limits.maxDepth ?? 64;
  const maxLength = limits.maxLength ?? 16 * 1024 * 1024;
  let i = 0;
  const fail = (message: string, at = i): never => {
    const before = text.slice(0, at);
    const line = before.split('\n').length;
    throw new JsonSyntaxError(message, at, line, at - before.lastIndexOf('\n'));
  };
  if (typeof text !== 'string') fail('the document is not text', 0);
  if (text.length > maxLength) fail(`the document is over ${maxLength} characters`, 0);

  const space = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const describe = () => (i >= text.length ? 'the end of the document' : JSON.stringify(text[i]));

  const string = (): string => {
    const start = i;
    i++; // the opening quote
    let out = '';
    for (;;) {
      if (i >= text.length) fail('a string is not closed', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        break;
      }
      if (c < 0x20) fail(`a control character (U+${c.toString(16).padStart(4, '0')}) in a string must be escaped`);
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('\\u must be followed by four hex digits');
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else if (e !== undefined && e in ESCAPES) {
          out += ESCAPES[e];
          i += 2;
        } else {
          fail(`${JSON.stringify(`\\${e ?? ''}`)} is not a JSON escape`);
        }
        continue;
      }
      out += text[i];
      i++;
    }
    // I-JSON: no lone surrogate, escaped or not (it has no UTF-8 form).
    if (/[\ud800-\udfff]/.test(out.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))) fail('a string holds a lone surrogate (not Unicode text)', start);
    return out;
  };

  const value = (depth: number): unknown => {
    space();
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth >= maxDepth) fail(`nesting deeper than ${maxDepth}`);
      i++;
      return c === '{' ? object(depth + 1) : array(depth + 1);
    }
    if (c === '"') return string();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m && m[0] !== '-') {
      const n = Number(m[0]);
      if (!Number.isFinite(n)) fail(`the number ${m[0]} is beyond a double`);
      i += m[0].length;
      return n;
    }
    return fail(`expected a value, found ${describe()}`);
  };

  const object = (depth: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    const names = new Set<string>();
    space();
    if (text[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      space();
      if (text[i] !== '"') fail(`expected a member name in quotes, found ${describe()}`);
      const at = i;
      const name = string();
      if (names.has(name)) fail(`the member ${JSON.stringify(name)} appears twice in one object`, at);
      names.add(name);
      space();
      if (text[i] !== ':') fail(`expected ':' after the member name, found ${describe()}`);
      i++;
      // defineProperty: a member called __proto__ is data, not the object's prototype.
      Object.defineProperty(out, name, { value: value(depth), enumerable: true, writable: true, configurable: true });
      space();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return out;
      }
      fail(`expected ',' or '}' in an object, found ${describe()}`);
    }
  };

  const array = (depth: number): unknown[] => {
    const out: unknown[] = [];
    space();
    if (text[i] === ']') {
      i++;
      return out;
    }
    for (;;) {
      out.push(value(depth));
      space();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return out;
      }
      fail(`expected ',' or ']' in an array, found ${describe()}`);
    }
  };

  const v = value(0);
  space();
  if (i < text.length) fail(`unexpected ${describe()} after the document`);
  return v;
}
