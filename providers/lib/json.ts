// A small JSON reader and writer (RFC 8259) for task and output documents.

// @ts-ignore: decorator
@inline
function plain(c: u32): bool {
  return c >= 32 && c != 34 && c != 92;
}

/** True when the 8 UTF-16 units at `p` need no escaping (one loop iteration, one unit of fuel, for 8). */
// @ts-ignore: decorator
@inline
function plain8(p: usize): bool {
  return (
    plain(load<u16>(p)) && plain(load<u16>(p + 2)) && plain(load<u16>(p + 4)) && plain(load<u16>(p + 6)) &&
    plain(load<u16>(p + 8)) && plain(load<u16>(p + 10)) && plain(load<u16>(p + 12)) && plain(load<u16>(p + 14))
  );
}

export enum Kind {
  Null,
  Bool,
  Num,
  Str,
  Arr,
  Obj,
}

export class JValue {
  kind: Kind = Kind.Null;
  b: bool = false;
  n: f64 = 0;
  s: string = '';
  items: JValue[] = [];
  keys: string[] = [];
  values: JValue[] = [];

  get(key: string): JValue | null {
    for (let i = this.keys.length - 1; i >= 0; i--) if (this.keys[i] == key) return this.values[i];
    return null;
  }

  /** The member as a string, or null when absent or not a string. */
  str(key: string): string | null {
    const v = this.get(key);
    if (v == null || v.kind != Kind.Str) return null;
    return v.s;
  }
}

export class Parser {
  pos: i32 = 0;
  error: string = '';

  constructor(public text: string) {}

  fail(what: string): JValue | null {
    if (this.error.length == 0) this.error = what + ' at offset ' + this.pos.toString();
    return null;
  }

  ws(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c != 32 && c != 9 && c != 10 && c != 13) break;
      this.pos++;
    }
  }

  /** The whole text as one value, or null (see `error`). */
  document(): JValue | null {
    const v = this.value(0);
    if (v == null) return null;
    this.ws();
    if (this.pos != this.text.length) return this.fail('trailing characters');
    return v;
  }

  value(depth: i32): JValue | null {
    if (depth > 64) return this.fail('nesting too deep');
    this.ws();
    if (this.pos >= this.text.length) return this.fail('unexpected end');
    const c = this.text.charCodeAt(this.pos);
    const v = new JValue();
    if (c == 123) {
      v.kind = Kind.Obj;
      this.pos++;
      this.ws();
      if (this.text.charCodeAt(this.pos) == 125) {
        this.pos++;
        return v;
      }
      while (true) {
        this.ws();
        if (this.text.charCodeAt(this.pos) != 34) return this.fail('expected a member name');
        const k = this.string();
        if (k == null) return null;
        this.ws();
        if (this.text.charCodeAt(this.pos) != 58) return this.fail('expected :');
        this.pos++;
        const m = this.value(depth + 1);
        if (m == null) return null;
        v.keys.push(k);
        v.values.push(m);
        this.ws();
        const d = this.text.charCodeAt(this.pos);
        this.pos++;
        if (d == 125) return v;
        if (d != 44) return this.fail('expected , or }');
      }
    }
    if (c == 91) {
      v.kind = Kind.Arr;
      this.pos++;
      this.ws();
      if (this.text.charCodeAt(this.pos) == 93) {
        this.pos++;
        return v;
      }
      while (true) {
        const m = this.value(depth + 1);
        if (m == null) return null;
        v.items.push(m);
        this.ws();
        const d = this.text.charCodeAt(this.pos);
        this.pos++;
        if (d == 93) return v;
        if (d != 44) return this.fail('expected , or ]');
      }
    }
    if (c == 34) {
      const s = this.string();
      if (s == null) return null;
      v.kind = Kind.Str;
      v.s = s;
      return v;
    }
    if (this.text.startsWith('true', this.pos)) {
      this.pos += 4;
      v.kind = Kind.Bool;
      v.b = true;
      return v;
    }
    if (this.text.startsWith('false', this.pos)) {
      this.pos += 5;
      v.kind = Kind.Bool;
      return v;
    }
    if (this.text.startsWith('null', this.pos)) {
      this.pos += 4;
      return v;
    }
    const start = this.pos;
    while (this.pos < this.text.length) {
      const d = this.text.charCodeAt(this.pos);
      if (!((d >= 48 && d <= 57) || d == 45 || d == 43 || d == 46 || d == 101 || d == 69)) break;
      this.pos++;
    }
    if (start == this.pos) return this.fail('unexpected character');
    v.kind = Kind.Num;
    v.n = parseFloat(this.text.substring(start, this.pos));
    if (isNaN(v.n)) return this.fail('bad number');
    return v;
  }

  string(): string | null {
    this.pos++; // opening quote
    const parts: string[] = [];
    let start = this.pos;
    const base = changetype<usize>(this.text);
    const n = this.text.length;
    while (true) {
      while (this.pos + 8 <= n && plain8(base + (<usize>this.pos << 1))) this.pos += 8;
      if (this.pos >= this.text.length) {
        this.fail('unterminated string');
        return null;
      }
      const c = this.text.charCodeAt(this.pos);
      if (c == 34) break;
      if (c < 32) {
        this.fail('control character in string');
        return null;
      }
      if (c == 92) {
        parts.push(this.text.substring(start, this.pos));
        const e = this.text.charCodeAt(this.pos + 1);
        this.pos += 2;
        if (e == 110) parts.push('\n');
        else if (e == 116) parts.push('\t');
        else if (e == 114) parts.push('\r');
        else if (e == 98) parts.push('\b');
        else if (e == 102) parts.push('\f');
        else if (e == 117) {
          const code = I32.parseInt(this.text.substring(this.pos, this.pos + 4), 16);
          if (this.pos + 4 > this.text.length || isNaN(<f64>code)) {
            this.fail('bad \\u escape');
            return null;
          }
          parts.push(String.fromCharCode(code));
          this.pos += 4;
        } else if (e == 34 || e == 92 || e == 47) parts.push(String.fromCharCode(e));
        else {
          this.fail('bad escape');
          return null;
        }
        start = this.pos;
        continue;
      }
      this.pos++;
    }
    parts.push(this.text.substring(start, this.pos));
    this.pos++;
    return parts.join('');
  }
}

const HEX = '0123456789abcdef';

/** A JSON string literal. */
export function quote(s: string): string {
  const parts: string[] = ['"'];
  let start = 0;
  const base = changetype<usize>(s);
  const n = s.length;
  for (let i = 0; i < n; i++) {
    while (i + 8 <= n && plain8(base + (<usize>i << 1))) i += 8;
    if (i >= n) break;
    const c = s.charCodeAt(i);
    if (plain(c)) continue;
    parts.push(s.substring(start, i));
    if (c == 34) parts.push('\\"');
    else if (c == 92) parts.push('\\\\');
    else if (c == 10) parts.push('\\n');
    else if (c == 13) parts.push('\\r');
    else if (c == 9) parts.push('\\t');
    else parts.push('\\u00' + HEX.charAt(c >> 4) + HEX.charAt(c & 15));
    start = i + 1;
  }
  parts.push(s.substring(start));
  parts.push('"');
  return parts.join('');
}

/** Builds a JSON object member by member. */
export class Obj {
  parts: string[] = [];

  raw(key: string, json: string): Obj {
    this.parts.push(quote(key) + ':' + json);
    return this;
  }

  str(key: string, value: string): Obj {
    return this.raw(key, quote(value));
  }

  num(key: string, value: f64): Obj {
    return this.raw(key, num(value));
  }

  bool(key: string, value: bool): Obj {
    return this.raw(key, value ? 'true' : 'false');
  }

  toString(): string {
    return '{' + this.parts.join(',') + '}';
  }
}

function num(n: f64): string {
  if (!isFinite(n)) return 'null';
  if (Number.isInteger(n) && Math.abs(n) < 9007199254740992) return (<i64>n).toString();
  return n.toString();
}

/** The value as JSON text. */
export function stringify(v: JValue): string {
  if (v.kind == Kind.Null) return 'null';
  if (v.kind == Kind.Bool) return v.b ? 'true' : 'false';
  if (v.kind == Kind.Num) return num(v.n);
  if (v.kind == Kind.Str) return quote(v.s);
  const parts: string[] = [];
  if (v.kind == Kind.Arr) {
    for (let i = 0; i < v.items.length; i++) parts.push(stringify(v.items[i]));
    return '[' + parts.join(',') + ']';
  }
  for (let i = 0; i < v.keys.length; i++) parts.push(quote(v.keys[i]) + ':' + stringify(v.values[i]));
  return '{' + parts.join(',') + '}';
}
