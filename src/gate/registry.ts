// The action registry: YAML manifests from definitions/manifests/ (shipped
// with the package) and configured directories, validated against the
// manifest schema with errors that name file, line and field; request and
// response JSON Schemas (inline, or a .json file beside the manifests)
// compiled and checked as src/gate/action-schema.ts says (costly ones in a
// worker under a deadline, src/gate/schema-judge.ts); append-only versions recorded
// in the ledger database; reload without restart (build the new set fully,
// then swap; on any error the old set stays).
import { closeSync, fstatSync, lstatSync, openSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { fixedValidator, type Ajv, type FixedSchema } from '../core/fixed-validators.js';
import { canonicalHash, CanonicalizationError } from '../crypto/jcs.js';
import { immediate, type Db } from '../ledger/db.js';
import { normalizeAllowHost } from '../config/hosts.js';
import { didYouMean } from '../config/suggest.js';
import { applyManifestDefaults, MANIFEST_SCHEMA, type RawManifest } from './manifest-schema.js';
import { readManifestYaml, type FieldLines } from './manifest-yaml.js';
import { actionSchemaCheck, createSchemaAjv, SCHEMA_META, validationResult, type ActionSchemaCheck, type SchemaAjv, type ValidationResult } from './action-schema.js';
import { SCHEMA_CHECK_DEFAULTS, SchemaJudge } from './schema-judge.js';
import { checkTemplate, hostMatches, templatePlaceholders, TemplateError } from './templates.js';
import { compileGlob, GlobError } from '../providers/fs-glob.js';
import type { FsOperation } from '../providers/fs-operations.js';
import type { ActionManifest } from './types.js';

export type { Ajv };
export { actionSchema, compileActionSchema, createSchemaAjv, type ValidationIssue, type ValidationResult } from './action-schema.js';

/** The manifests shipped with the package. */
export const BUILTIN_MANIFEST_DIR = fileURLToPath(new URL('../../definitions/manifests', import.meta.url));
/** Their root: file-referenced schemas may live anywhere below it (definitions/schemas/). */
export const BUILTIN_DEFINITIONS_ROOT = dirname(BUILTIN_MANIFEST_DIR);

const MAX_MANIFEST_BYTES = 1024 * 1024;
const MAX_SCHEMA_BYTES = 1024 * 1024;
const RISK_RATIONALE = /^[ \t]*#[ \t]*Risk rationale:/im;
const HTTP_SINK: Record<string, string> = { GET: 'http_read', HEAD: 'http_read', POST: 'http_write', PUT: 'http_write', PATCH: 'http_write', DELETE: 'http_delete' };
// list and stat reveal names and sizes: reads as far as policy is concerned.
const FS_SINK: Record<FsOperation, string> = { read: 'fs_read', create: 'fs_write', overwrite: 'fs_write', delete: 'fs_delete', list: 'fs_read', stat: 'fs_read' };

// ---------------------------------------------------------------- errors

export interface RegistryIssue {
  /** The file as shown to the user: relative to the working directory when inside it. */
  file: string;
  line?: number;
  /** Dotted field path in the manifest: "io.max_request_bytes", "secrets[0].name". */
  field?: string;
  message: string;
}

export function formatIssue(i: RegistryIssue): string {
  return `${i.file}${i.line !== undefined ? `:${i.line}` : ''}: ${i.field ? `${i.field}: ` : ''}${i.message}`;
}

export class RegistryError extends Error {
  constructor(readonly issues: RegistryIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'RegistryError';
  }
}

// ---------------------------------------------------------------- results

export interface LoadedAction {
  /** Validated, defaulted, schemas inlined; deep-frozen. */
  manifest: ActionManifest;
  /** canonicalHash(manifest): "sha256:<hex>" of its RFC 8785 form. */
  action_digest: string;
  /** Absolute path of the manifest file. */
  file: string;
  /** The path as shown in messages. */
  display: string;
}

export type ReloadResult =
  | { ok: true; actions: number; warnings: string[]; generation: number }
  | { ok: false; errors: RegistryIssue[]; message: string; warnings: string[]; generation: number };

export type ManifestDir = string | { dir: string; root?: string };

export interface RegistryOptions {
  /** Load the package's own definitions/manifests/ too (default true). */
  builtin?: boolean;
  /** How long a costly schema's check may take, in a worker ([gate] schema_check_ms; src/gate/schema-judge.ts). */
  schemaCheckMs?: number;
}

export interface ParseOptions {
  /** Schema files must resolve below this directory (default: the manifest's directory). */
  root?: string;
  /** How to name the file in messages (default: derived from the path). */
  display?: string;
  /** The ajv to compile request/response schemas with (createSchemaAjv(), or a function making it when first needed; default: a fresh one). */
  ajv?: SchemaAjv;
}

export interface ParsedManifest extends LoadedAction {
  /** Non-fatal findings (a missing "# Risk rationale:" comment). */
  warnings: string[];
  /** Line of the `version` key, for later messages. */
  versionLine: number;
  request: ActionSchemaCheck;
  response?: ActionSchemaCheck;
}

// ---------------------------------------------------------------- helpers

function displayPath(abs: string): string {
  const rel = relative(process.cwd(), abs);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.length === 0 ? 'an empty list' : 'a list';
  if (typeof v === 'object') return 'a mapping';
  return typeof v;
}

function unescapePointer(p: string): string[] {
  if (p === '') return [];
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function fieldName(segments: readonly (string | number)[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number' || /^\d+$/.test(String(s))) out += `[${s}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

// ---------------------------------------------------------------- manifest schema errors

/** The manifest schema as the registry checks it; strictRequired off for it alone: its if/then branches require fields declared at the top. */
const MANIFEST_SHAPE: FixedSchema = {
  name: 'manifest-shape',
  options: { strict: true, strictRequired: false, allErrors: true, verbose: true, allowUnionTypes: true, validateFormats: false, logger: false },
  schema: MANIFEST_SCHEMA as unknown as Record<string, unknown>,
};

/** The schemas the build generates validators for (scripts/build-validators.mjs). */
export const REGISTRY_SCHEMAS: readonly FixedSchema[] = [MANIFEST_SHAPE, SCHEMA_META];

let manifestValidator: ValidateFunction | undefined;
const validateManifestShape = (): ValidateFunction => (manifestValidator ??= fixedValidator(MANIFEST_SHAPE));

/** Why an allOf/if-then of MANIFEST_SCHEMA requires a field, by index. */
const CONDITIONAL_REASONS = [
  'builtin:http_api needs a template',
  'builtin:fs needs an fs section',
  'a high or critical http_write verified by http_status must list verification_config.required_fields',
];

function describeSchema(schema: unknown): string {
  if (isPlainObject(schema) && typeof schema.description === 'string') return schema.description;
  return 'a valid value';
}

function manifestIssue(e: ErrorObject, file: string, loc: FieldLines): RegistryIssue | undefined {
  const path = unescapePointer(e.instancePath);
  const params = e.params as Record<string, unknown>;
  const at = (segs: string[], message: string): RegistryIssue => ({ file, line: loc.line(segs), field: fieldName(segs) || undefined, message });
  switch (e.keyword) {
    case 'if':
    case 'propertyNames':
    case 'allOf':
      return undefined; // the underlying error is reported on its own
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const known = isPlainObject(e.parentSchema) && isPlainObject(e.parentSchema.properties) ? Object.keys(e.parentSchema.properties) : [];
      return at([...path, key], `unknown field; ${didYouMean(key, known)}`);
    }
    case 'required': {
      const key = String(params.missingProperty);
      const m = /^#\/allOf\/(\d+)\/then/.exec(e.schemaPath);
      const why = m ? ` (${CONDITIONAL_REASONS[Number(m[1])] ?? 'conditional'})` : '';
      const segs = [...path, key];
      return { file, line: loc.line(path), field: fieldName(segs), message: `missing required field${why}` };
    }
    default: {
      const e2 = e as ErrorObject & { propertyName?: string };
      if (e2.propertyName !== undefined) {
        return at([...path, e2.propertyName], `invalid name; expected ${describeSchema(e.parentSchema)}`);
      }
      const desc = describeSchema(e.parentSchema);
      let message: string;
      if (e.keyword === 'maximum') message = `expected ${desc} no larger than ${String(params.limit)}, got ${show(e.data)}`;
      else if (e.keyword === 'uniqueItems') message = `expected ${desc}; items ${String(params.j)} and ${String(params.i)} are the same`;
      else message = `expected ${desc}, got ${show(e.data)}`;
      return at(path, message);
    }
  }
}

// ---------------------------------------------------------------- schemas

function lexicallyInside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** Reads a file-referenced schema; returns it or a message. Never echoes the file's content. */
function readSchemaFile(ref: string, manifestFile: string, root: string): { schema: Record<string, unknown> } | { error: string } {
  if (ref.includes('\0')) return { error: 'a schema path may not contain NUL' };
  if (isAbsolute(ref)) return { error: `schema path ${JSON.stringify(ref)} must be relative to the manifest file` };
  if (!ref.endsWith('.json')) return { error: `schema path ${JSON.stringify(ref)} must name a .json file` };
  const target = resolve(dirname(manifestFile), ref);
  const rootDisplay = displayPath(root);
  const escapes = { error: `schema path ${JSON.stringify(ref)} escapes the manifests' root ${rootDisplay}; keep schema files under it` };
  if (!lexicallyInside(target, root)) return escapes;
  let real: string;
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(target);
  } catch {
    return { error: `schema file ${JSON.stringify(ref)} not found (looked for ${displayPath(target)})` };
  }
  if (!lexicallyInside(real, realRoot)) return escapes; // a symbolic link pointing out
  let text: string;
  let fd: number | undefined;
  try {
    fd = openSync(real, 'r');
    const st = fstatSync(fd);
    if (!st.isFile()) return { error: `schema path ${JSON.stringify(ref)} is not a regular file` };
    if (st.size > MAX_SCHEMA_BYTES) return { error: `schema file ${JSON.stringify(ref)} is larger than ${MAX_SCHEMA_BYTES} bytes` };
    text = readFileSync(fd, 'utf8');
  } catch (e) {
    return { error: `schema file ${JSON.stringify(ref)} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})` };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const pos = /position (\d+)/.exec(String((e as Error).message));
    const where = pos ? ` (line ${text.slice(0, Number(pos[1])).split('\n').length})` : '';
    return { error: `schema file ${JSON.stringify(ref)} is not valid JSON${where}` };
  }
  if (!isPlainObject(value)) return { error: `schema file ${JSON.stringify(ref)} must hold a JSON object (a schema), got ${show(value)}` };
  return { schema: value };
}

/** True when the dotted path is declared through nested `properties` of the schema. */
function schemaDeclares(schema: Record<string, unknown>, path: string): boolean {
  let node: unknown = schema;
  for (const seg of path.split('.')) {
    if (!isPlainObject(node)) return false;
    const props = node.properties;
    if (!isPlainObject(props) || !Object.hasOwn(props, seg)) return false;
    node = props[seg];
  }
  return true;
}

/** createSchemaAjv(), called once, at the first schema that needs it. */
function oneAjv(): () => Ajv {
  let made: Ajv | undefined;
  return () => (made ??= createSchemaAjv());
}

// ---------------------------------------------------------------- one manifest

/**
 * Parses, validates and compiles one manifest file's text. Throws
 * RegistryError (every problem found, each with file, line and field);
 * any other exception is a bug.
 */
export function parseManifest(text: string, file: string, options: ParseOptions = {}): ParsedManifest {
  const absFile = resolve(file);
  const display = options.display ?? displayPath(absFile);
  const root = resolve(options.root ?? dirname(absFile));
  const issues: RegistryIssue[] = [];
  const fail = (): never => {
    const seen = new Set<string>();
    const unique = issues.filter((i) => {
      const k = formatIssue(i);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    unique.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    throw new RegistryError(unique);
  };

  // 1. YAML
  const y = readManifestYaml(text);
  if ('issues' in y) {
    for (const i of y.issues) issues.push({ file: display, ...i });
    return fail();
  }
  const { value: raw, lines: loc } = y;

  // 2. The manifest schema
  const validateShape = validateManifestShape();
  if (!validateShape(raw)) {
    for (const e of validateShape.errors ?? []) {
      const i = manifestIssue(e, display, loc);
      if (i) issues.push(i);
    }
    if (issues.length === 0) issues.push({ file: display, line: 1, message: 'does not match the manifest schema' });
    fail();
  }
  const m = raw as RawManifest;
  const at = (segs: (string | number)[], message: string) => issues.push({ file: display, line: loc.line(segs), field: fieldName(segs), message });

  // 3. Request and response schemas: inline or a .json file under root
  const ajv = options.ajv ?? oneAjv();
  const resolveSchema = (key: 'request_schema' | 'response_schema'): ActionSchemaCheck | undefined => {
    const v = m.io[key];
    if (v === undefined) return undefined;
    let schema: Record<string, unknown>;
    let origin = '';
    if (typeof v === 'string') {
      const r = readSchemaFile(v, absFile, root);
      if ('error' in r) {
        at(['io', key], r.error);
        return undefined;
      }
      schema = r.schema;
      origin = ` (from ${v})`;
    } else {
      schema = v;
    }
    try {
      return actionSchemaCheck(ajv, schema);
    } catch (e) {
      at(['io', key], `not a valid JSON Schema (draft 2020-12, strict)${origin}: ${String((e as Error).message).split('\n')[0]}`);
      return undefined;
    }
  };
  const request = resolveSchema('request_schema');
  const response = resolveSchema('response_schema');
  if (request && request.schema.type !== 'object') {
    at(['io', 'request_schema'], 'the request schema must describe a JSON object (type: object at its root)');
  }

  // 4. Cross-field checks
  const egress = { profile: m.egress?.profile ?? 'none', allowed_domains: m.egress?.allowed_domains ?? [], allowed_methods: m.egress?.allowed_methods ?? [] };
  egress.allowed_domains.forEach((d, i) => {
    try {
      const n = normalizeAllowHost(d, 'egress.allowed_domains entry');
      if (n !== d) at(['egress', 'allowed_domains', i], `write the host name in its normal form: "${n}"`);
    } catch (e) {
      at(['egress', 'allowed_domains', i], (e as Error).message);
    }
  });
  if (egress.profile === 'none' && (egress.allowed_domains.length || egress.allowed_methods.length)) {
    at(['egress', 'profile'], 'profile "none" allows no network access; remove allowed_domains/allowed_methods or use "proxy_allowlist"');
  }
  if (egress.profile === 'proxy_allowlist' && egress.allowed_domains.length === 0) {
    at(['egress', 'allowed_domains'], 'profile "proxy_allowlist" needs at least one allowed domain');
  }
  for (const key of ['allowed_paths', 'denied_paths'] as const) {
    (m.fs?.[key] ?? []).forEach((g, i) => {
      try {
        compileGlob(g, `fs.${key}[${i}]`);
      } catch (e) {
        if (!(e instanceof GlobError)) throw e;
        at(['fs', key, i], e.message.replace(/^fs\.\w+\[\d+\]: /, ''));
      }
    });
  }
  const secretNames = new Set<string>();
  (m.secrets ?? []).forEach((s, i) => {
    if (secretNames.has(s.name)) at(['secrets', i, 'name'], `secret "${s.name}" is declared twice`);
    secretNames.add(s.name);
  });
  if (m.template) {
    const t = { method: m.template.method, url_template: m.template.url_template, headers: m.template.headers ?? {}, body_template: m.template.body_template };
    const { problems, info } = checkTemplate(t);
    for (const p of problems) at(['template', ...p.location], p.message);
    if (problems.length === 0) {
      let placeholders: ReturnType<typeof templatePlaceholders> = [];
      try {
        placeholders = templatePlaceholders(t);
      } catch (e) {
        if (!(e instanceof TemplateError)) throw e;
        at(['template'], e.message);
      }
      for (const p of placeholders) {
        const segs = ['template', ...p.location];
        if (p.kind === 'secret' && !secretNames.has(p.name)) {
          at(segs, `{{secret:${p.name}}} names a secret that is not declared under secrets`);
        }
        if (p.kind === 'var' && request && !schemaDeclares(request.schema, p.name)) {
          at(segs, `template variable "${p.name}" is not declared in io.request_schema (under properties); every variable must be validated before expansion`);
        }
      }
    }
    if ((t.method === 'GET' || t.method === 'HEAD') && t.body_template !== undefined) {
      at(['template', 'body_template'], `a ${t.method} request has no body; remove body_template`);
    }
    if (egress.allowed_methods.length && !egress.allowed_methods.includes(t.method)) {
      at(['template', 'method'], `${t.method} is not in egress.allowed_methods`);
    }
    if (egress.profile !== 'proxy_allowlist') {
      at(['egress', 'profile'], 'an HTTP template needs egress profile "proxy_allowlist" with the template\'s host in allowed_domains');
    } else if (info?.urlMode === 'fixed' && info.hostname && !hostMatches(info.hostname, egress.allowed_domains)) {
      at(['template', 'url_template'], `host "${info.hostname}" is not in egress.allowed_domains`);
    }
  }
  // The sinks a manifest declares (what policy sees) must cover what it can do.
  const declared = new Set(m.declared_side_effects ?? []);
  const implied: [string, (string | number)[], string][] = [];
  if (m.template) {
    const sink = HTTP_SINK[m.template.method];
    if (sink) implied.push([sink, ['template', 'method'], `a ${m.template.method} template`]);
  }
  for (const [i, op] of (m.fs?.allowed_operations ?? []).entries()) {
    const sink = FS_SINK[op as FsOperation];
    if (sink) implied.push([sink, ['fs', 'allowed_operations', i], `fs operation "${op}"`]);
  }
  const reported = new Set<string>();
  for (const [sink, segs, what] of implied) {
    if (declared.has(sink) || reported.has(sink)) continue;
    reported.add(sink);
    at(segs, `${what} is a "${sink}" side effect; add "${sink}" to declared_side_effects so policy sees it`);
  }
  if (issues.length || !request) fail();

  // 5. Defaults, digest
  const manifest = applyManifestDefaults(m, request!.schema, response?.schema);
  let action_digest: string;
  try {
    action_digest = canonicalHash(manifest);
  } catch (e) {
    if (!(e instanceof CanonicalizationError)) throw e;
    const why = e.message.length > 160 ? `${e.message.slice(0, 160)}…` : e.message;
    issues.push({ file: display, line: 1, message: `cannot be hashed: ${why}` });
    return fail();
  }
  const warnings: string[] = [];
  if (!RISK_RATIONALE.test(text)) {
    warnings.push(`${display}: no "# Risk rationale:" comment; add one saying why risk_level is "${manifest.risk_level}"`);
  }
  const out: ParsedManifest = {
    manifest: deepFreeze(manifest),
    action_digest,
    file: absFile,
    display,
    warnings,
    versionLine: loc.line(['version']),
    request: request!,
  };
  if (response) out.response = response;
  return out;
}

// ---------------------------------------------------------------- versions

interface SemVer {
  nums: [number, number, number];
  pre: string[];
}

function parseSemver(v: string): SemVer {
  const [core = '', pre] = v.split('+')[0]!.split(/-(.*)/s);
  const nums = core.split('.').map((x) => Number(x)) as [number, number, number];
  return { nums, pre: pre ? pre.split('.') : [] };
}

/** Semantic-version order (build metadata ignored, pre-releases before releases). */
export function compareVersions(a: string, b: string): number {
  const x = parseSemver(a);
  const y = parseSemver(b);
  for (let i = 0; i < 3; i++) if (x.nums[i] !== y.nums[i]) return x.nums[i]! < y.nums[i]! ? -1 : 1;
  if (!x.pre.length || !y.pre.length) return x.pre.length === y.pre.length ? 0 : x.pre.length ? -1 : 1;
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) return Number(p) < Number(q) ? -1 : 1;
    if (pn !== qn) return pn ? -1 : 1;
    return p < q ? -1 : 1;
  }
  return a.includes('+') || b.includes('+') ? (a < b ? -1 : a > b ? 1 : 0) : 0;
}

// ---------------------------------------------------------------- the registry

interface Entry extends ParsedManifest {}

interface ActionSet {
  byId: Map<string, Entry[]>; // versions ascending
  warnings: string[];
}

function toLoaded(e: Entry): LoadedAction {
  return { manifest: e.manifest, action_digest: e.action_digest, file: e.file, display: e.display };
}

export class Registry {
  readonly #db: Db;
  readonly #dirs: { dir: string; root: string }[];
  #set: ActionSet = { byId: new Map(), warnings: [] };
  #generation = 0;
  readonly #schemaCheckMs: number;
  #judge: SchemaJudge | undefined;

  /**
   * `dirs` are extra manifest directories. A string's schema root is its
   * parent when the directory is named "manifests" (the definitions/{manifests,
   * schemas} layout), else the directory itself; { dir, root } sets it.
   */
  constructor(db: Db, dirs: readonly ManifestDir[] = [], options: RegistryOptions = {}) {
    this.#db = db;
    this.#schemaCheckMs = options.schemaCheckMs ?? SCHEMA_CHECK_DEFAULTS.deadlineMs;
    const list: { dir: string; root: string }[] = [];
    if (options.builtin ?? true) list.push({ dir: BUILTIN_MANIFEST_DIR, root: BUILTIN_DEFINITIONS_ROOT });
    for (const d of dirs) {
      const dir = resolve(typeof d === 'string' ? d : d.dir);
      const root = typeof d !== 'string' && d.root !== undefined ? resolve(d.root) : basename(dir) === 'manifests' ? dirname(dir) : dir;
      if (!lexicallyInside(dir, root)) throw new RegistryError([{ file: displayPath(dir), message: `the manifests' root ${displayPath(root)} must contain the directory` }]);
      list.push({ dir, root });
    }
    this.#dirs = list;
  }

  /** Creates, migrate()s and load()s a registry; throws RegistryError. */
  static open(db: Db, dirs: readonly ManifestDir[] = [], options: RegistryOptions = {}): Registry {
    const r = new Registry(db, dirs, options);
    r.migrate();
    r.load();
    return r;
  }

  /** Creates the append-only version table in the shared database. */
  migrate(): void {
    this.#db.exec(`CREATE TABLE IF NOT EXISTS manifest_versions (
      action_id TEXT NOT NULL,
      version TEXT NOT NULL,
      digest TEXT NOT NULL,
      first_seen TEXT NOT NULL,
      PRIMARY KEY (action_id, version)
    ) WITHOUT ROWID`);
  }

  /** Loads (or reloads) every directory; throws RegistryError and keeps the old set on any error. */
  load(): { actions: number; warnings: string[] } {
    const r = this.reload();
    if (!r.ok) throw new RegistryError(r.errors);
    return { actions: r.actions, warnings: r.warnings };
  }

  /** Re-reads the directories: the new set is built fully, then swapped in; on any error the old set stays. */
  reload(): ReloadResult {
    const issues: RegistryIssue[] = [];
    const warnings: string[] = [];
    const entries: Entry[] = [];
    // One ajv for the whole set, made at the first schema that needs compiling (the shipped ones need none).
    const ajv = oneAjv();
    for (const { dir, root } of this.#dirs) {
      let names: string[];
      try {
        names = readdirSync(dir).filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.')).sort();
      } catch (e) {
        issues.push({ file: displayPath(dir), message: `cannot read the manifest directory (${(e as NodeJS.ErrnoException).code ?? 'error'})` });
        continue;
      }
      for (const name of names) {
        const file = join(dir, name);
        const display = displayPath(file);
        let text: string;
        try {
          const st = lstatSync(file);
          if (!st.isFile()) {
            if (st.isDirectory()) continue;
            issues.push({ file: display, message: 'not a regular file (symbolic links are not followed)' });
            continue;
          }
          if (st.size > MAX_MANIFEST_BYTES) {
            issues.push({ file: display, message: `larger than ${MAX_MANIFEST_BYTES} bytes` });
            continue;
          }
          text = readFileSync(file, 'utf8');
        } catch (e) {
          issues.push({ file: display, message: `cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})` });
          continue;
        }
        try {
          const p = parseManifest(text, file, { root, display, ajv });
          entries.push(p);
          warnings.push(...p.warnings);
        } catch (e) {
          if (!(e instanceof RegistryError)) throw e;
          issues.push(...e.issues);
        }
      }
    }

    // One declaration per (action_id, version).
    const byKey = new Map<string, Entry>();
    for (const e of entries) {
      const key = `${e.manifest.action_id}@${e.manifest.version}`;
      const first = byKey.get(key);
      if (first) {
        issues.push({
          file: e.display,
          line: e.versionLine,
          field: 'version',
          message: `action "${e.manifest.action_id}" version ${e.manifest.version} is also declared in ${first.display}; declare each (action_id, version) once`,
        });
      } else byKey.set(key, e);
    }

    // Append-only: a known (action_id, version) must keep its digest.
    const known = this.#db.prepare<[string, string], { digest: string; first_seen: string }>('SELECT digest, first_seen FROM manifest_versions WHERE action_id = ? AND version = ?');
    const changed = (e: Entry, row: { digest: string; first_seen: string }): RegistryIssue => ({
      file: e.display,
      line: e.versionLine,
      field: 'version',
      message:
        `action "${e.manifest.action_id}" version ${e.manifest.version} was published on ${row.first_seen} with digest ${row.digest}, ` +
        `and this file now gives ${e.action_digest}. Published versions are immutable: bump the version (e.g. ${bump(e.manifest.version)}) instead of editing it`,
    });
    if (issues.length === 0) {
      for (const e of byKey.values()) {
        const row = known.get(e.manifest.action_id, e.manifest.version);
        if (row && row.digest !== e.action_digest) issues.push(changed(e, row));
      }
    }

    if (issues.length === 0) {
      // Record new versions; a racing instance may have recorded one since the check.
      const insert = this.#db.prepare('INSERT OR IGNORE INTO manifest_versions (action_id, version, digest, first_seen) VALUES (?, ?, ?, ?)');
      const now = new Date().toISOString();
      try {
        immediate(this.#db, () => {
          for (const e of byKey.values()) {
            insert.run(e.manifest.action_id, e.manifest.version, e.action_digest, now);
            const row = known.get(e.manifest.action_id, e.manifest.version);
            if (row && row.digest !== e.action_digest) issues.push(changed(e, row));
          }
          if (issues.length) throw new RegistryError(issues);
        });
      } catch (e) {
        if (!(e instanceof RegistryError)) throw e;
      }
    }

    if (issues.length) {
      issues.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : (a.line ?? 0) - (b.line ?? 0)));
      return { ok: false, errors: issues, message: issues.map(formatIssue).join('\n'), warnings, generation: this.#generation };
    }

    const byId = new Map<string, Entry[]>();
    for (const e of byKey.values()) {
      const l = byId.get(e.manifest.action_id) ?? [];
      l.push(e);
      byId.set(e.manifest.action_id, l);
    }
    for (const l of byId.values()) l.sort((a, b) => compareVersions(a.manifest.version, b.manifest.version));
    this.#set = { byId, warnings };
    this.#generation++;
    return { ok: true, actions: byKey.size, warnings, generation: this.#generation };
  }

  /** Increases by one with every successful load or reload. */
  get generation(): number {
    return this.#generation;
  }

  /** Warnings of the current set (missing "# Risk rationale:" comments). */
  get warnings(): readonly string[] {
    return this.#set.warnings;
  }

  #entry(actionId: string, version?: string): Entry | undefined {
    const l = this.#set.byId.get(actionId);
    if (!l) return undefined;
    return version === undefined ? l[l.length - 1] : l.find((e) => e.manifest.version === version);
  }

  /** The highest version of an action, or the given version; undefined when unknown. */
  get(actionId: string, version?: string): LoadedAction | undefined {
    const e = this.#entry(actionId, version);
    return e ? toLoaded(e) : undefined;
  }

  /** The latest version of every action, by action_id. */
  list(): LoadedAction[] {
    return [...this.#set.byId.keys()].sort().map((id) => toLoaded(this.#entry(id)!));
  }

  /** The loaded versions of an action, ascending. */
  versions(actionId: string): string[] {
    return (this.#set.byId.get(actionId) ?? []).map((e) => e.manifest.version);
  }

  /**
   * Checks a request body against the action's request schema (latest
   * version unless given): a schema latchgate ships on this thread, to the
   * first error; any other, and the full list of a refused document's
   * errors, in a worker under the deadline (src/gate/schema-judge.ts).
   */
  validateRequest(actionId: string, body: unknown, version?: string, on: CheckOptions = {}): ValidationResult | Promise<ValidationResult> {
    const e = this.#entry(actionId, version);
    if (!e) return unknownAction(actionId, version);
    return this.#check(e.request, body, on, false);
  }

  /** Checks a provider's response against the action's response schema, as validateRequest; ok when the action declares none. */
  validateResponse(actionId: string, body: unknown, version?: string, on: CheckOptions = {}): ValidationResult | Promise<ValidationResult> {
    const e = this.#entry(actionId, version);
    if (!e) return unknownAction(actionId, version);
    return e.response ? this.#check(e.response, body, on, true) : { ok: true };
  }

  /** `mustWait`: a provider's answer, never refused as busy. */
  #check(c: ActionSchemaCheck, body: unknown, on: CheckOptions, mustWait: boolean): ValidationResult | Promise<ValidationResult> {
    const judged = () => {
      this.#judge ??= new SchemaJudge({ ...SCHEMA_CHECK_DEFAULTS, deadlineMs: this.#schemaCheckMs });
      return this.#judge.judge(on.who ?? '', c.schema, body, mustWait);
    };
    if (!c.shipped) return judged();
    const first = validationResult(c.validate, body);
    if (first.ok) return first;
    // Refused at its first error; the list of all of them (whose making a document can make costly) comes
    // from a worker. The refusal stands whatever the worker says.
    return judged().then((every) => (every.ok || every.unchecked ? first : every));
  }

  /** Ends the schema checks' workers. */
  close(): Promise<void> {
    return this.#judge?.close() ?? Promise.resolve();
  }
}

/** Who asks for a check: the principal (callers take turns at the workers). */
export interface CheckOptions {
  who?: string;
}

function unknownAction(actionId: string, version: string | undefined): ValidationResult {
  return { ok: false, errors: [{ pointer: '', message: `unknown action "${actionId}"${version ? ` version ${version}` : ''}` }] };
}

function bump(v: string): string {
  const [maj = '0', min = '0', patch = '0'] = v.split(/[-+]/)[0]!.split('.');
  return `${maj}.${min}.${Number(patch) + 1}`;
}
