// TOML files declared once. A declaration (leaf, table and named below)
// gives: the check (every unknown key and wrong type an error naming the
// file, the [section] and key, what was expected and the nearest valid
// name), the TypeScript type of what is read (Infer), the reading itself
// (defaults, required keys, camelCase names, paths relative to the file) and
// the rows of the key tables in docs/CONFIG.md (leaves). Shared by
// latchgate.toml and the agent profiles.
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { LaunchError } from '../core/errors.js';
import { didYouMean } from './suggest.js';

export type FieldType = 'string' | 'string[]' | 'int' | 'uint' | 'int[]' | 'bool' | 'env';

/** What a value of each type is read as. */
interface Values {
  string: string;
  'string[]': string[];
  int: number;
  uint: number;
  'int[]': number[];
  bool: boolean;
  env: Record<string, string>;
}

export interface LeafOptions<T extends FieldType> {
  /** The value read when the key is absent. */
  readonly default?: Values[T];
  /** The default as the docs show it, when it is decided where the value is used (the key reads as undefined). */
  readonly shown?: string;
  /** An absent key is an error. */
  readonly required?: true;
  /** A relative path (or each one of a list) is resolved against the directory of the file. */
  readonly fileRelative?: true;
  /** The file's content is what is trusted (a CA certificate): a trusted config naming it holds only while the content is the same (grants.ts). */
  readonly contentTrusted?: true;
  /**
   * What the host later trusts or runs from this path (certificates, manifests, a policy, checkpoints, a program it
   * runs): read-only in every box (trusted-paths.ts). 'program': the program of an argv (its first element) or of a
   * key source's cmd:, when given as a path.
   */
  readonly protectInBox?: 'file' | 'dir' | 'program';
}

/** A key and its value. */
export interface Leaf<T extends FieldType = FieldType, O extends LeafOptions<T> = LeafOptions<T>> {
  readonly kind: 'leaf';
  readonly type: T;
  readonly doc: string;
  readonly options: O;
}

/** A [section] with a fixed set of keys. */
export interface Table<F extends Fields = Fields> {
  readonly kind: 'table';
  readonly doc: string;
  readonly fields: F;
}

/** How the names of a named table's entries are written. */
export interface KeyRule {
  /** What a name stands for, as the docs write it: [operators.<name>]. */
  readonly label: string;
  /** Names must match it... */
  readonly pattern?: RegExp;
  /** ...or this is the error. */
  readonly problem?: string;
}

/** A table of entries under names the file chooses ([operators.alice], a route, a uid); doc adds to the entry's. */
export interface Named<E extends Leaf | Table = Leaf | Table, N extends boolean = boolean> {
  readonly kind: 'named';
  readonly doc: string;
  readonly entry: E;
  readonly key: KeyRule;
  /** Names are numbers (uids), read as number keys. */
  readonly numeric: N;
}

export type Node = Leaf | Table | Named;
export type Fields = { readonly [key: string]: Node };

export function leaf<T extends FieldType, O extends LeafOptions<T> = Record<never, never>>(type: T, doc: string, options?: O): Leaf<T, O> {
  return { kind: 'leaf', type, doc, options: options ?? ({} as O) };
}

export function table<F extends Fields>(doc: string, fields: F): Table<F> {
  return { kind: 'table', doc, fields };
}

export function named<E extends Leaf | Table>(entry: E, doc: string, key: KeyRule): Named<E, false> {
  return { kind: 'named', doc, entry, key, numeric: false };
}

/** A named table whose names are uids. */
export function byUid<E extends Leaf | Table>(entry: E, doc: string): Named<E, true> {
  return { kind: 'named', doc, entry, key: { label: 'uid', pattern: /^\d+$/, problem: 'expected a numeric uid as the table name' }, numeric: true };
}

// ------------------------------------------------------------------ types

type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type Flat<T> = { [K in keyof T]: T[K] } & {};
/** Whether a key is always there once read: a table, or a leaf with a default or required. */
type Present<N> = N extends Leaf<FieldType, infer O> ? (O extends { default: unknown } | { required: true } ? true : false) : true;
type InferFields<F extends Fields> = Flat<
  { [K in keyof F & string as Present<F[K]> extends true ? Camel<K> : never]: Infer<F[K]> } & {
    [K in keyof F & string as Present<F[K]> extends true ? never : Camel<K>]?: Infer<F[K]>;
  }
>;

/** What reading a declaration gives: keys in camelCase, named tables as Maps. */
export type Infer<N> =
  N extends Leaf<infer T, LeafOptions<infer T>> ? Values[T]
  : N extends Table<infer F> ? InferFields<F>
  : N extends Named<infer E, infer Num> ? Map<Num extends true ? number : string, Infer<E>>
  : never;

const camel = (key: string) => key.replace(/_(.)/g, (_, c: string) => c.toUpperCase());

// ------------------------------------------------------------------ checking

export function isTable(v: unknown): v is Record<string, unknown> {
  return Object.prototype.toString.call(v) === '[object Object]';
}

const EXPECTED: Record<FieldType, string> = {
  string: 'a string',
  bool: 'true or false',
  int: 'a positive integer',
  uint: 'an integer >= 0',
  'int[]': 'an array of port numbers',
  'string[]': 'an array of strings',
  env: 'a table of VARIABLE = "value" strings',
};

function fits(t: FieldType, v: unknown): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string';
    case 'bool':
      return typeof v === 'boolean';
    case 'int':
      return typeof v === 'number' && Number.isInteger(v) && v > 0;
    case 'uint':
      return typeof v === 'number' && Number.isInteger(v) && v >= 0;
    case 'int[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0 && x < 65536);
    case 'string[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'env':
      return isTable(v) && Object.entries(v).every(([n, x]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(n) && typeof x === 'string');
  }
}

/** A value as an error message shows it: one line, not too long; dates and nan/inf as TOML writes them. */
function display(v: unknown): string {
  let s: string;
  if (v instanceof Date) s = Number.isNaN(v.getTime()) ? 'a date' : `${v.toISOString()} (a date or time)`;
  else if (typeof v === 'number' && !Number.isFinite(v)) s = String(v).replace('Infinity', 'inf').replace('NaN', 'nan');
  else s = JSON.stringify(v) ?? String(v);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

const bare = (k: string) => /^[A-Za-z0-9_-]+$/.test(k);
/** A section name as TOML writes it (a name that is not a bare key quoted, so it stays on one line). */
const section = (path: readonly string[]) => path.map((k) => (bare(k) ? k : JSON.stringify(k))).join('.');
const keyAt = (path: readonly string[], k: string) => `${path.length ? `[${section(path)}] ` : ''}key ${JSON.stringify(k)}`;

/** Throws, naming the file, section and key, at the first unknown key or wrong type. */
export function checkSchema(file: string, value: unknown, decl: Table, path: string[] = []): void {
  if (!isTable(value)) throw new LaunchError(`${file}: [${section(path)}] must be a table`);
  for (const [k, v] of Object.entries(value)) {
    const node = Object.hasOwn(decl.fields, k) ? decl.fields[k] : undefined;
    if (node === undefined) throw new LaunchError(`${file}: ${keyAt(path, k)}: unknown key; ${didYouMean(k, Object.keys(decl.fields))}`);
    checkNode(file, v, node, path, k);
  }
}

function checkNode(file: string, v: unknown, node: Node, path: string[], k: string): void {
  const at = [...path, k];
  if (node.kind === 'table') checkSchema(file, v, node, at);
  else if (node.kind === 'named') {
    if (!isTable(v)) throw new LaunchError(`${file}: [${section(at)}] must be a table`);
    for (const [name, x] of Object.entries(v)) checkNode(file, x, node.entry, at, name);
  } else if (!fits(node.type, v)) throw new LaunchError(`${file}: ${keyAt(path, k)}: expected ${EXPECTED[node.type]}, got ${display(v)}`);
}

// ------------------------------------------------------------------ reading

/**
 * Reads a document checkSchema accepted: every declared key is there (its
 * default, or undefined), in camelCase; named tables are Maps. A missing
 * required key or a badly formed name is an error naming the file and section.
 */
export function readToml<T extends Table>(file: string, doc: Record<string, unknown>, decl: T): Infer<T> {
  // The one place the checked document becomes typed: checkSchema proved every value fits its leaf.
  return readTable({ file, base: dirname(resolve(file)) }, doc, decl, []) as Infer<T>;
}

interface ReadContext {
  file: string;
  /** Where relative paths resolve. */
  base: string;
}

function readTable(cx: ReadContext, doc: Record<string, unknown>, decl: Table, path: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, node] of Object.entries(decl.fields)) out[camel(k)] = readNode(cx, Object.hasOwn(doc, k) ? doc[k] : undefined, node, path, k);
  return out;
}

function readNode(cx: ReadContext, v: unknown, node: Node, path: string[], k: string): unknown {
  const at = [...path, k];
  if (node.kind === 'table') return readTable(cx, (v ?? {}) as Record<string, unknown>, node, at);
  if (node.kind === 'named') {
    const out = new Map<string | number, unknown>();
    for (const [name, x] of Object.entries((v ?? {}) as Record<string, unknown>)) {
      const { pattern, problem, label } = node.key;
      if (pattern && !pattern.test(name)) throw new LaunchError(`${cx.file}: [${section([...at, name])}]: ${problem ?? `expected a ${label} as the table name`}`);
      out.set(node.numeric ? Number(name) : name, readNode(cx, x, node.entry, at, name));
    }
    return out;
  }
  const o: LeafOptions<FieldType> = node.options;
  if (v === undefined) {
    if (o.required) throw new LaunchError(`${cx.file}: ${keyAt(path, k)}: required`);
    return structuredClone(o.default);
  }
  if (!o.fileRelative) return v;
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(cx.base, p));
  return Array.isArray(v) ? v.map((p: string) => rel(p)) : rel(v as string);
}

// ------------------------------------------------------------------ walking

export interface LeafRow {
  /** The keys from the top, '*' for a name the file chooses. */
  path: string[];
  /** path with each '*' written as its <label>. */
  shownPath: string[];
  type: FieldType;
  doc: string;
  options: LeafOptions<FieldType>;
}

/** Every key a declaration allows, in declaration order. */
export function leaves(decl: Table, path: string[] = [], shownPath: string[] = []): LeafRow[] {
  const walk = (node: Node, p: string[], s: string[]): LeafRow[] => {
    if (node.kind === 'table') return leaves(node, p, s);
    if (node.kind === 'named') return walk(node.entry, [...p, '*'], [...s, `<${node.key.label}>`]);
    return [{ path: p, shownPath: s, type: node.type, doc: node.doc, options: node.options }];
  };
  return Object.entries(decl.fields).flatMap(([k, node]) => walk(node, [...path, k], [...shownPath, k]));
}

export interface SectionRow {
  shownPath: string[];
  doc: string;
}

/** Every [section] and named table a declaration has, with what it is for, the top first. */
export function sections(decl: Table, shownPath: string[] = []): SectionRow[] {
  const out: SectionRow[] = [{ shownPath, doc: decl.doc }];
  for (const [k, node] of Object.entries(decl.fields)) {
    const s = [...shownPath, k];
    if (node.kind === 'table') out.push(...sections(node, s));
    else if (node.kind === 'named') {
      const doc = [node.entry.kind === 'table' ? node.entry.doc : '', node.doc].filter(Boolean).join(' ');
      if (node.entry.kind === 'table') out.push(...sections({ ...node.entry, doc }, [...s, `<${node.key.label}>`]));
      else out.push({ shownPath: s, doc });
    }
  }
  return out;
}

/** The declaration at a path of keys (names under a named table stand for its entry), or undefined. */
export function nodeAt(decl: Table, path: readonly string[]): Node | undefined {
  let node: Node = decl;
  for (const k of path) {
    if (node.kind === 'table') {
      const next: Node | undefined = Object.hasOwn(node.fields, k) ? node.fields[k] : undefined;
      if (next === undefined) return undefined;
      node = next;
    } else if (node.kind === 'named') node = node.entry;
    else return undefined;
  }
  return node;
}

// ------------------------------------------------------------------ parsing

/** Parses TOML text; a syntax error names the file, line and column. */
export function parseTomlFile(file: string, text: string): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>;
  } catch (e) {
    const where = e instanceof TomlError ? ` line ${e.line}, column ${e.column}` : '';
    throw new LaunchError(`${file}:${where}: not valid TOML: ${(e as Error).message.split('\n')[0]}`);
  }
}
