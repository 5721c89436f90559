// The four SOPS file formats ("stores"), read into one ordered tree, the
// `sops` metadata split off: YAML (the `yaml` package, one document, string
// keys, no anchors), JSON (our own parser: it keeps key order and exact
// integers), dotenv (KEY=VALUE lines, "\n" escaped, metadata in flat
// `sops_...` keys) and binary (the JSON store's `{"data": ..., "sops": ...}`
// envelope). YAML is also written: our own files are YAML.
import { Document, isMap as isYamlMap, isScalar, isSeq, parseAllDocuments, Scalar, visit, type Node as YamlNode } from 'yaml';
import { SecretsError } from './errors.js';
import { GoFloat, isMap, type SopsMap, type SopsNode } from './sops-value.js';

export type SopsFormat = 'yaml' | 'json' | 'dotenv' | 'binary';

const MAX_DEPTH = 100;

/** The store sops picks for a file name (by its extension; anything unknown is binary). */
export function formatOf(file: string): SopsFormat {
  const lower = file.toLowerCase();
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml';
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.env')) return 'dotenv';
  if (lower.endsWith('.ini')) throw new SecretsError('unsupported_format', `${file}: the sops INI store is not supported; convert the file to YAML (sops -d --output-type yaml)`, { file });
  return 'binary';
}

const malformed = (file: string, why: string) =>
  new SecretsError('malformed_file', `${file}: not a readable SOPS file (${why}); the file is truncated or damaged: restore it from version control`, { file });

/** The data tree and the `sops` metadata map. */
export function parseStore(format: SopsFormat, text: string, file: string): { data: SopsMap; metadata: SopsMap } {
  let root: SopsMap;
  try {
    root = format === 'yaml' ? parseYaml(text, file) : format === 'dotenv' ? parseDotenv(text, file) : parseJson(text, file);
  } catch (e) {
    if (e instanceof SecretsError) throw e;
    // A parser's own failure (a stack overflow on absurd nesting, say) is still a malformed file.
    throw malformed(file, e instanceof Error ? e.message : String(e));
  }
  const metadata = format === 'dotenv' ? unflattenMetadata(root, file) : root.get('sops');
  root.delete('sops');
  if (metadata === undefined || metadata === null) {
    throw new SecretsError('missing_metadata', `${file}: no sops metadata: the file is not encrypted with sops, or it is truncated`, { file });
  }
  if (!isMap(metadata)) throw new SecretsError('bad_metadata', `${file}: sops: expected a mapping`, { file });
  if (format === 'binary' && (root.size !== 1 || typeof root.get('data') !== 'string')) {
    throw malformed(file, 'a binary-store file holds exactly one string, "data", beside "sops"');
  }
  return { data: root, metadata };
}

// --- YAML ----------------------------------------------------------------

function parseYaml(text: string, file: string): SopsMap {
  const docs = parseAllDocuments(text, { schema: 'core', intAsBigInt: true, uniqueKeys: true, strict: true, prettyErrors: false });
  if (!Array.isArray(docs)) throw malformed(file, 'no YAML document');
  if (docs.length !== 1) throw malformed(file, docs.length === 0 ? 'empty' : 'more than one YAML document; latchgate reads single-document files');
  const doc = docs[0]!;
  if (doc.errors.length > 0) throw malformed(file, `YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const root = doc.contents;
  if (!isYamlMap(root)) throw malformed(file, 'the top of the document is not a mapping');
  return fromYaml(root, file, 0) as SopsMap;
}

function fromYaml(node: YamlNode | null, file: string, depth: number): SopsNode {
  if (depth > MAX_DEPTH) throw malformed(file, `nested deeper than ${MAX_DEPTH}`);
  if (node === null) return null;
  if (isYamlMap(node)) {
    const out: SopsMap = new Map();
    for (const pair of node.items) {
      const k = pair.key as YamlNode | null;
      if (!isScalar(k) || typeof k.value !== 'string') throw malformed(file, `a key that is not a string (${String(isScalar(k) ? k.value : 'a collection').slice(0, 40)})`);
      out.set(k.value, fromYaml(pair.value as YamlNode | null, file, depth + 1));
    }
    return out;
  }
  if (isSeq(node)) return node.items.map((n) => fromYaml(n as YamlNode | null, file, depth + 1));
  if (isScalar(node)) {
    const v = node.value;
    if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'bigint') return v;
    if (typeof v === 'number') return new GoFloat(v);
    throw malformed(file, `a value of an unsupported YAML type (${node.tag ?? typeof v})`);
  }
  throw malformed(file, 'YAML anchors and aliases are not allowed in a SOPS file (sops writes them expanded)');
}

/** A SOPS YAML file: the data, then the `sops` map, 4-space indents, long strings on one line, armored keys as literal blocks. */
export function emitYaml(data: SopsMap, metadata: SopsMap): string {
  const all: SopsMap = new Map([...data, ['sops', metadata]]);
  const doc = new Document(toYamlJs(all));
  // Times quoted, as Go's YAML writes them: a YAML 1.1 reader would take them for timestamps.
  visit(doc, { Scalar: (_k, s) => { if (typeof s.value === 'string' && /^\d{4}-\d\d-\d\d/.test(s.value)) s.type = Scalar.QUOTE_DOUBLE; } });
  return doc.toString({ indent: 4, lineWidth: 0, minContentWidth: 0, blockQuote: 'literal', indentSeq: true });
}

function toYamlJs(node: SopsNode): unknown {
  if (isMap(node)) return new Map([...node].map(([k, v]) => [k, toYamlJs(v)]));
  if (Array.isArray(node)) return node.map(toYamlJs);
  if (node instanceof GoFloat) return node.value;
  if (node instanceof Uint8Array) return Buffer.from(node).toString('utf8');
  if (node !== null && typeof node === 'object') return node.text;
  return node;
}

// --- JSON ----------------------------------------------------------------

/** JSON (RFC 8259) into the ordered tree: ints as bigint (exact), other numbers as floats, duplicate keys refused. */
function parseJson(text: string, file: string): SopsMap {
  let i = 0;
  const fail = (why: string): never => { throw malformed(file, `JSON at offset ${i}: ${why}`); };
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++; };
  const str = (): string => {
    const m = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(text.slice(i, i + 16 * 1024 * 1024));
    if (!m) return fail('a malformed string');
    i += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  const value = (depth: number): SopsNode => {
    if (depth > MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH}`);
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const out: SopsMap = new Map();
      ws();
      if (text[i] === '}') { i++; return out; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        if (out.has(k)) fail(`duplicate key ${JSON.stringify(k)}`);
        ws();
        if (text[i++] !== ':') fail('expected ":"');
        out.set(k, value(depth + 1));
        ws();
        const sep = text[i++];
        if (sep === '}') return out;
        if (sep !== ',') fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const out: SopsNode[] = [];
      ws();
      if (text[i] === ']') { i++; return out; }
      for (;;) {
        out.push(value(depth + 1));
        ws();
        const sep = text[i++];
        if (sep === ']') return out;
        if (sep !== ',') fail('expected "," or "]"');
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) { i += word.length; return v; }
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail('expected a value');
    i += m[0].length;
    if (m[2] === undefined && m[3] === undefined) {
      const n = BigInt(m[0]);
      if (n >= -(2n ** 63n) && n < 2n ** 63n) return n; // stores/json normalizeJSONNumber: int64 or float
    }
    const f = Number(m[0]);
    if (!Number.isFinite(f)) fail('a number out of range');
    return new GoFloat(f);
  };
  const root = value(0);
  ws();
  if (i !== text.length) fail('text after the document');
  if (!isMap(root)) fail('the top is not an object');
  return root as SopsMap;
}

// --- dotenv --------------------------------------------------------------

function parseDotenv(text: string, file: string): SopsMap {
  const out: SopsMap = new Map();
  text.split('\n').forEach((line, n) => {
    if (line === '' || line.startsWith('#')) return; // comments are not part of the data
    const eq = line.indexOf('=');
    if (eq < 0) throw malformed(file, `line ${n + 1} has no "="`);
    const key = line.slice(0, eq);
    if (out.has(key)) throw malformed(file, `line ${n + 1}: duplicate key ${JSON.stringify(key.slice(0, 60))}`);
    out.set(key, line.slice(eq + 1).replaceAll('\\n', '\n'));
  });
  return out;
}

/** The `sops_...` keys of a dotenv file as the nested metadata map (stores/flatten.go: `__map_` and `__list_N__` separators). */
function unflattenMetadata(root: SopsMap, file: string): SopsMap | undefined {
  const flat = [...root].filter(([k]) => k.startsWith('sops_'));
  if (flat.length === 0) return undefined;
  const meta: SopsMap = new Map();
  for (const [k, v] of flat) {
    root.delete(k);
    const tokens = k.slice(5).split(/(__map_|__list_)/);
    let node: SopsMap | SopsNode[] = meta;
    let key: string | number = tokens[0]!;
    for (let t = 1; t < tokens.length; t += 2) {
      const next: string | number = tokens[t] === '__list_' ? Number(tokens[t + 1]) : tokens[t + 1]!;
      if (typeof next === 'number' && !(Number.isInteger(next) && next >= 0 && next < 1000)) throw new SecretsError('bad_metadata', `${file}: ${k}: a bad list index`, { file });
      const existing: SopsNode | undefined = Array.isArray(node) ? node[key as number] : node.get(key as string);
      const found: SopsNode = existing ?? (typeof next === 'number' ? [] : new Map());
      if (typeof next === 'number' ? !Array.isArray(found) : !isMap(found)) throw new SecretsError('bad_metadata', `${file}: ${k}: conflicts with another sops_ key`, { file });
      const child = found as SopsMap | SopsNode[];
      if (Array.isArray(node)) node[key as number] = child; else node.set(key as string, child);
      node = child;
      key = next;
    }
    if (Array.isArray(node) ? node[key as number] !== undefined : node.has(key as string)) throw new SecretsError('bad_metadata', `${file}: ${k}: duplicate`, { file });
    if (Array.isArray(node)) node[key as number] = v; else node.set(key as string, v);
  }
  return meta;
}
