// Template expansion for builtin:http_api manifests: `{{var}}` placeholders
// filled from the validated request. Fails closed: an unknown variable, a
// value of the wrong kind for its place, a URL whose origin would change,
// a header value with CR/LF/NUL, an undeclared secret: each is an error
// naming the variable, never a best-effort request.
//
//   url_template    placeholders only in the path and query, each value
//                   percent-encoded with encodeURIComponent (so it cannot
//                   add "/", "?", "#", "@" or change the host); the result
//                   is parsed and its origin compared with the template's.
//                   Special case: a url_template that is exactly one
//                   placeholder ("{{url}}") takes a whole URL, whose host
//                   must then be in the egress allowlist (options.allowedDomains).
//   headers         values only; inserted as strings; {{secret:NAME}} left
//                   in place for the transport layer (listed in secretRefs).
//   body_template   a string that is exactly "{{x}}" takes x's JSON value and
//                   type; a placeholder inside a longer string is interpolated.
//                   {{secret:NAME}} may stand in a string of a JSON body (the
//                   template's Content-Type is JSON, the body an object or
//                   array), left in place for the transport, which fills it
//                   JSON-escaped (src/providers/http-body.ts).
// Secrets never go in the URL, and a request value can never make a
// placeholder the transport would fill: a value holding "{{secret:" (in any
// letter case and spacing), or one that would make it together with the
// template text around it, is refused wherever it goes.
import { isJsonContentType } from '../providers/http-body.js';
import type { ActionManifest } from './types.js';

export type HttpTemplate = NonNullable<ActionManifest['template']>;

export interface ExpandedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** The expanded body_template; undefined when the template has none. */
  body: unknown;
  /** Secret names referenced by {{secret:NAME}} in header values and the body, in order, each once. */
  secretRefs: string[];
}

export interface ExpandOptions {
  /** The egress allowlist ("api.example.com", "*.example.com"); required for a whole-URL template. */
  allowedDomains?: readonly string[];
}

export class TemplateError extends Error {
  constructor(
    message: string,
    /** Where in the template: "url_template", "headers.Accept", "body_template/title". */
    readonly where: string,
    /** The variable (dotted path) or secret name concerned, when there is one. */
    readonly variable?: string,
  ) {
    super(`${where}: ${message}`);
    this.name = 'TemplateError';
  }
}

type Part = { kind: 'text'; text: string } | { kind: 'var'; path: string; raw: string } | { kind: 'secret'; name: string; raw: string };

const PLACEHOLDER = /\{\{([^{}]*)\}\}/g;
const VAR_PATH = /^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*$/;
const SECRET_REF = /^secret:\s*([A-Za-z_][A-Za-z0-9_]*)$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const MAX_DEPTH = 64;
const SECRET_PLACES = 'secrets may only appear in header values and in strings of a JSON body_template';

/** Splits a template string into text and placeholders; malformed or unbalanced braces are errors. */
function tokenize(s: string, where: string): Part[] {
  const parts: Part[] = [];
  let last = 0;
  const pushText = (text: string) => {
    if (text.includes('{{') || text.includes('}}')) {
      throw new TemplateError(`unbalanced "{{" or "}}" in ${JSON.stringify(abbrev(s))}; placeholders look like {{name}} or {{a.b}}`, where);
    }
    if (text !== '') parts.push({ kind: 'text', text });
  };
  for (const m of s.matchAll(PLACEHOLDER)) {
    pushText(s.slice(last, m.index));
    last = m.index + m[0].length;
    const inner = (m[1] ?? '').trim();
    const secret = SECRET_REF.exec(inner);
    if (secret) parts.push({ kind: 'secret', name: secret[1]!, raw: m[0] });
    else if (VAR_PATH.test(inner)) parts.push({ kind: 'var', path: inner, raw: m[0] });
    else {
      throw new TemplateError(
        `malformed placeholder ${JSON.stringify(m[0])}; expected {{name}}, {{a.b}} (a field path of the request) or {{secret:NAME}}`,
        where,
      );
    }
  }
  pushText(s.slice(last));
  return parts;
}

function abbrev(s: string, n = 80): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

/** The value at a dotted path through own properties of plain objects; undefined if absent. */
function lookup(vars: Record<string, unknown>, path: string): unknown {
  let cur: unknown = vars;
  for (const seg of path.split('.')) {
    if (!isPlainObject(cur) || !Object.hasOwn(cur, seg)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

function resolveVar(vars: Record<string, unknown>, part: { path: string }, where: string): unknown {
  const v = lookup(vars, part.path);
  if (v === undefined) {
    throw new TemplateError(`unknown template variable "${part.path}": the request has no field "${part.path}"`, where, part.path);
  }
  return v;
}

function scalar(v: unknown, path: string, where: string, context: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TemplateError(`variable "${path}" is not a finite number`, where, path);
    return String(v);
  }
  const kind = v === null ? 'null' : Array.isArray(v) ? 'an array' : 'an object';
  throw new TemplateError(`variable "${path}" is ${kind}; only strings, numbers and booleans can go in ${context}`, where, path);
}

function secretPlaceholder(name: string): string {
  return `{{secret:${name}}}`;
}

/** The start of a secret placeholder, read more broadly than the transport reads it (src/providers/http-headers.ts). */
const FORGED = /\{\{\s*secret\s*:/i;

/**
 * Refuses text made from template text and request values (the template's
 * own secret placeholders stand as NUL, which no placeholder contains) that
 * holds the start of a secret placeholder.
 */
function refuseForged(shadow: string, where: string, variable?: string): void {
  if (FORGED.test(shadow)) throw new TemplateError('a request value would make a "{{secret:" placeholder here; refused (only the template names secrets)', where, variable);
}

/** A request value taken whole into the body: no string or key in it may hold a secret placeholder. */
function refuseForgedJson(v: unknown, path: string, where: string): void {
  if (typeof v === 'string') refuseForged(v, where, path);
  else if (Array.isArray(v)) for (const x of v) refuseForgedJson(x, path, where);
  else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      refuseForged(k, where, path);
      refuseForgedJson(x, path, where);
    }
  }
}

function contentTypeOf(headers: Record<string, string>): string | undefined {
  for (const [n, v] of Object.entries(headers)) if (n.toLowerCase() === 'content-type') return v;
  return undefined;
}

// ---------------------------------------------------------------- URL

interface UrlShape {
  /** "whole": the template is exactly one placeholder holding a full URL. */
  mode: 'fixed' | 'whole';
  parts: Part[];
  /** Index in the raw template where the authority ends (first "/", "?" or "#" after "//"). */
  authorityEnd: number;
  /** Origin of the template, for a fixed-origin template. */
  origin: string;
  /** Host name of the template, for a fixed-origin template. */
  hostname: string;
}

/** Checks the URL template's structure (the same rules at load time and at expansion). */
function urlShape(t: string): UrlShape {
  const where = 'url_template';
  const parts = tokenize(t, where);
  if (parts.length === 1 && parts[0]!.kind === 'var') return { mode: 'whole', parts, authorityEnd: 0, origin: '', hostname: '' };
  for (const p of parts) {
    if (p.kind === 'secret') throw new TemplateError(`${p.raw}: never in the URL; ${SECRET_PLACES}`, where, p.name);
  }
  const scheme = /^(https?):\/\//i.exec(t);
  if (!scheme) throw new TemplateError(`must start with "https://" or "http://" and a fixed host, got ${JSON.stringify(abbrev(t))}`, where);
  const afterScheme = scheme[0].length;
  const rest = t.slice(afterScheme);
  const end = rest.search(/[/?#]/);
  const authorityEnd = end < 0 ? t.length : afterScheme + end;
  const firstPlaceholder = t.search(/\{\{/);
  if (firstPlaceholder >= 0 && firstPlaceholder < authorityEnd) {
    throw new TemplateError('placeholders are only allowed in the path and the query, not in the scheme, host or port', where);
  }
  const hashAt = t.indexOf('#');
  if (hashAt >= 0) throw new TemplateError('a URL template may not have a fragment ("#")', where);
  let u: URL;
  try {
    u = new URL(t.replace(PLACEHOLDER, 'x'));
  } catch {
    throw new TemplateError(`not a valid URL: ${JSON.stringify(abbrev(t))}`, where);
  }
  if (u.username !== '' || u.password !== '') throw new TemplateError('a URL template may not carry a user name or password', where);
  if (t.slice(afterScheme, authorityEnd).includes('@')) throw new TemplateError('a URL template may not carry a user name or password', where);
  const path = t.slice(authorityEnd).split(/[?]/)[0] ?? '';
  if (path.split('/').some((seg) => /^(?:\.|%2e){1,2}$/i.test(seg))) throw new TemplateError('the path may not contain "." or ".." segments', where);
  return { mode: 'fixed', parts, authorityEnd, origin: u.origin, hostname: u.hostname };
}

/** True when host equals an entry or is a subdomain of a "*.suffix" entry (the apex is not matched). */
export function hostMatches(host: string, allowed: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h === '') return false;
  return allowed.some((raw) => {
    const a = raw.toLowerCase().replace(/\.$/, '');
    if (a.startsWith('*.')) {
      const suffix = a.slice(1); // ".example.com"
      return h.length > suffix.length && h.endsWith(suffix);
    }
    return h === a;
  });
}

function expandUrl(t: string, vars: Record<string, unknown>, options: ExpandOptions): string {
  const where = 'url_template';
  const shape = urlShape(t);
  if (shape.mode === 'whole') {
    const part = shape.parts[0] as { kind: 'var'; path: string; raw: string };
    const v = resolveVar(vars, part, where);
    if (typeof v !== 'string') throw new TemplateError(`variable "${part.path}" must be a string holding a URL`, where, part.path);
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw new TemplateError(`variable "${part.path}" is not an absolute URL`, where, part.path);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new TemplateError(`variable "${part.path}": only http and https URLs are allowed, got "${u.protocol}"`, where, part.path);
    if (u.username !== '' || u.password !== '') throw new TemplateError(`variable "${part.path}": a URL with a user name or password is refused`, where, part.path);
    if (u.port !== '') throw new TemplateError(`variable "${part.path}": a URL with an explicit port is refused`, where, part.path);
    if (options.allowedDomains === undefined) {
      throw new TemplateError('a whole-URL template needs the egress allowlist (options.allowedDomains) to check the host', where, part.path);
    }
    if (!hostMatches(u.hostname, options.allowedDomains)) {
      throw new TemplateError(`variable "${part.path}": host "${u.hostname}" is not in the action's egress allowlist`, where, part.path);
    }
    u.hash = '';
    return u.href;
  }
  let out = '';
  let inQuery = false; // variables are encoded, so only template text can open the query
  for (const p of shape.parts) {
    if (p.kind === 'text') {
      out += p.text;
      if (p.text.includes('?')) inQuery = true;
      continue;
    }
    if (p.kind !== 'var') throw new TemplateError(`${p.raw}: ${SECRET_PLACES}`, where, p.name);
    const s = scalar(resolveVar(vars, p, where), p.path, where, 'a URL');
    if (!inQuery && s === '') throw new TemplateError(`variable "${p.path}" is empty; it would leave an empty path segment`, where, p.path);
    let enc: string;
    try {
      enc = encodeURIComponent(s);
    } catch {
      throw new TemplateError(`variable "${p.path}" is not valid Unicode (a lone surrogate)`, where, p.path);
    }
    out += enc;
  }
  // The parser would fold "." and ".." segments (also "%2e"): refuse them.
  const pathEnd = out.slice(shape.authorityEnd).search(/[?#]/);
  const path = pathEnd < 0 ? out.slice(shape.authorityEnd) : out.slice(shape.authorityEnd, shape.authorityEnd + pathEnd);
  if (path.split('/').some((seg) => /^(?:\.|%2e){1,2}$/i.test(seg))) {
    throw new TemplateError('a variable would make a "." or ".." path segment', where);
  }
  let u: URL;
  try {
    u = new URL(out);
  } catch {
    throw new TemplateError('the expanded URL does not parse', where);
  }
  if (u.origin !== shape.origin || u.username !== '' || u.password !== '') {
    throw new TemplateError(`the expanded URL's origin ${u.origin} differs from the template's ${shape.origin}`, where);
  }
  return u.href;
}

// ---------------------------------------------------------------- headers

const BAD_HEADER_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

/** A declared secret's placeholder, as the transport reads it; the name noted in refs. */
function secretRef(name: string, secrets: ReadonlySet<string>, refs: string[], where: string): string {
  if (!secrets.has(name)) throw new TemplateError(`secret "${name}" is not declared in the manifest's secrets`, where, name);
  if (!refs.includes(name)) refs.push(name);
  return secretPlaceholder(name);
}

function expandHeaders(headers: Record<string, string>, vars: Record<string, unknown>, secrets: ReadonlySet<string>, refs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const seen = new Set<string>();
  for (const [name, tmpl] of Object.entries(headers)) {
    const where = `headers.${name}`;
    if (!HEADER_NAME.test(name)) throw new TemplateError('not a valid HTTP header name', where);
    if (seen.has(name.toLowerCase())) throw new TemplateError('header given twice (names are case-insensitive)', where);
    seen.add(name.toLowerCase());
    if (typeof tmpl !== 'string') throw new TemplateError('a header value must be a string', where);
    let value = '';
    let shadow = '';
    for (const p of tokenize(tmpl, where)) {
      if (p.kind === 'text') {
        value += p.text;
        shadow += p.text;
      } else if (p.kind === 'secret') {
        value += secretRef(p.name, secrets, refs, where);
        shadow += '\0';
      } else {
        const s = scalar(resolveVar(vars, p, where), p.path, where, 'a header value');
        if (/[\r\n\0]/.test(s)) throw new TemplateError(`variable "${p.path}" contains CR, LF or NUL; refused in a header value`, where, p.path);
        if (BAD_HEADER_CHAR.test(s)) throw new TemplateError(`variable "${p.path}" contains a character not allowed in a header value`, where, p.path);
        // The transport layer replaces {{secret:NAME}}; a value must not be able to forge one.
        if (s.includes('{{') || s.includes('}}')) throw new TemplateError(`variable "${p.path}" contains "{{" or "}}"; refused in a header value`, where, p.path);
        value += s;
        shadow += s;
      }
    }
    refuseForged(shadow, where);
    if (/[\r\n\0]/.test(value) || BAD_HEADER_CHAR.test(value)) throw new TemplateError('contains a character not allowed in a header value', where);
    out[name] = value;
  }
  return out;
}

// ---------------------------------------------------------------- body

function cloneJson(v: unknown, path: string, where: string, depth = 0): unknown {
  if (depth > MAX_DEPTH) throw new TemplateError(`variable "${path}" is nested deeper than ${MAX_DEPTH}`, where, path);
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TemplateError(`variable "${path}" is not a finite number`, where, path);
    return v;
  }
  if (Array.isArray(v)) return v.map((x) => cloneJson(x, path, where, depth + 1));
  if (isPlainObject(v)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) Object.defineProperty(o, k, { value: cloneJson(x, path, where, depth + 1), enumerable: true, writable: true, configurable: true });
    return o;
  }
  throw new TemplateError(`variable "${path}" has no JSON form`, where, path);
}

interface BodyContext {
  vars: Record<string, unknown>;
  secrets: ReadonlySet<string>;
  refs: string[];
  /** The template's Content-Type is JSON: the only body the transport fills secrets in. */
  json: boolean;
}

function expandBody(node: unknown, c: BodyContext, where: string, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new TemplateError(`nested deeper than ${MAX_DEPTH}`, where);
  if (typeof node === 'string') {
    const parts = tokenize(node, where);
    const only = parts.length === 1 ? parts[0] : undefined;
    if (only?.kind === 'var') {
      const v = cloneJson(resolveVar(c.vars, only, where), only.path, where);
      refuseForgedJson(v, only.path, where);
      return v;
    }
    let s = '';
    let shadow = '';
    for (const p of parts) {
      if (p.kind === 'secret') {
        if (depth === 0 || !c.json) throw new TemplateError(`${p.raw}: ${SECRET_PLACES} (a Content-Type: application/json header, a body that is an object or array)`, where, p.name);
        s += secretRef(p.name, c.secrets, c.refs, where);
        shadow += '\0';
      } else {
        const t = p.kind === 'var' ? scalar(resolveVar(c.vars, p, where), p.path, where, 'a string') : p.text;
        s += t;
        shadow += t;
      }
    }
    refuseForged(shadow, where);
    return s;
  }
  if (Array.isArray(node)) return node.map((x, i) => expandBody(x, c, `${where}/${i}`, depth + 1));
  if (isPlainObject(node)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(node)) {
      if (k.includes('{{') || k.includes('}}')) throw new TemplateError('placeholders are not allowed in keys', `${where}/${k}`);
      Object.defineProperty(o, k, { value: expandBody(x, c, `${where}/${k}`, depth + 1), enumerable: true, writable: true, configurable: true });
    }
    return o;
  }
  if (node === null || typeof node === 'number' || typeof node === 'boolean') return node;
  throw new TemplateError('has no JSON form', where);
}

// ---------------------------------------------------------------- API

/**
 * Expands an HTTP template with the validated request `vars`. `secretsNames`
 * are the secret names the manifest declares (a {{secret:NAME}} not among them
 * fails). Throws TemplateError; never returns a partially expanded request.
 */
export function expandTemplate(
  template: HttpTemplate,
  vars: unknown,
  secretsNames: readonly string[] = [],
  options: ExpandOptions = {},
): ExpandedRequest {
  if (!isPlainObject(vars)) throw new TemplateError('the request must be a JSON object', 'template');
  if (typeof template.method !== 'string' || !/^[A-Z]+$/.test(template.method)) throw new TemplateError('not an HTTP method', 'method');
  const secretRefs: string[] = [];
  const url = expandUrl(template.url_template, vars, options);
  const secrets = new Set(secretsNames);
  const headers = expandHeaders(template.headers ?? {}, vars, secrets, secretRefs);
  const json = isJsonContentType(contentTypeOf(template.headers ?? {}));
  const body = template.body_template === undefined ? undefined : expandBody(template.body_template, { vars, secrets, refs: secretRefs, json }, 'body_template', 0);
  return { method: template.method, url, headers, body, secretRefs };
}

export interface TemplatePlaceholder {
  kind: 'var' | 'secret';
  /** The variable's dotted path, or the secret's name. */
  name: string;
  /** Where inside the template: ["url_template"], ["headers", "Accept"], ["body_template", "items", 0]. */
  location: (string | number)[];
}

/** Every placeholder of a template with its location. Throws TemplateError on a malformed one. */
export function templatePlaceholders(template: HttpTemplate): TemplatePlaceholder[] {
  const out: TemplatePlaceholder[] = [];
  const add = (s: string, location: (string | number)[]) => {
    for (const p of tokenize(s, location.join('.'))) {
      if (p.kind === 'var') out.push({ kind: 'var', name: p.path, location });
      else if (p.kind === 'secret') out.push({ kind: 'secret', name: p.name, location });
    }
  };
  add(template.url_template, ['url_template']);
  for (const [name, v] of Object.entries(template.headers ?? {})) if (typeof v === 'string') add(v, ['headers', name]);
  const walk = (n: unknown, location: (string | number)[]): void => {
    if (location.length > MAX_DEPTH) throw new TemplateError(`nested deeper than ${MAX_DEPTH}`, location.join('/'));
    if (typeof n === 'string') add(n, location);
    else if (Array.isArray(n)) n.forEach((x, i) => walk(x, [...location, i]));
    else if (isPlainObject(n)) for (const [k, x] of Object.entries(n)) walk(x, [...location, k]);
  };
  if (template.body_template !== undefined) walk(template.body_template, ['body_template']);
  return out;
}

/** The request variables (dotted paths) a template uses, each once, in order. Throws TemplateError on a malformed placeholder. */
export function templateVariables(template: HttpTemplate): string[] {
  const out: string[] = [];
  for (const p of templatePlaceholders(template)) if (p.kind === 'var' && !out.includes(p.name)) out.push(p.name);
  return out;
}

/** The secret names a template references ({{secret:NAME}}), each once, in order. */
export function templateSecretRefs(template: HttpTemplate): string[] {
  const out: string[] = [];
  for (const p of templatePlaceholders(template)) if (p.kind === 'secret' && !out.includes(p.name)) out.push(p.name);
  return out;
}

export interface TemplateProblem {
  /** Where inside the template: ["url_template"], ["headers", "X-A"], ["body_template", "a", 0]. */
  location: (string | number)[];
  message: string;
}

export interface TemplateInfo {
  /** "fixed": the origin is in the template; "whole": url_template is one placeholder holding a full URL. */
  urlMode: 'fixed' | 'whole';
  /** Host name of a fixed-origin template. */
  hostname?: string;
}

/** templatePlaceholders, with the malformed ones (reported by checkTemplate itself) left out. */
function safePlaceholders(template: HttpTemplate): TemplatePlaceholder[] {
  try {
    return templatePlaceholders(template);
  } catch (e) {
    if (e instanceof TemplateError) return [];
    throw e;
  }
}

/**
 * Load-time checks of a template's structure: placeholders well formed, the
 * URL's origin fixed with placeholders only in path and query (or a whole-URL
 * template), header names valid and distinct, secrets only in header
 * values and strings of a JSON body, no placeholders in body keys.
 */
export function checkTemplate(template: HttpTemplate): { problems: TemplateProblem[]; info?: TemplateInfo } {
  const problems: TemplateProblem[] = [];
  const strip = (e: TemplateError) => e.message.slice(e.where.length + 2);
  let info: TemplateInfo | undefined;
  try {
    const shape = urlShape(template.url_template);
    info = shape.mode === 'fixed' ? { urlMode: 'fixed', hostname: shape.hostname } : { urlMode: 'whole' };
  } catch (e) {
    if (!(e instanceof TemplateError)) throw e;
    problems.push({ location: ['url_template'], message: strip(e) });
  }
  const seen = new Set<string>();
  for (const [name, v] of Object.entries(template.headers ?? {})) {
    const location = ['headers', name];
    if (!HEADER_NAME.test(name)) problems.push({ location, message: 'not a valid HTTP header name' });
    if (seen.has(name.toLowerCase())) problems.push({ location, message: 'header given twice (names are case-insensitive)' });
    seen.add(name.toLowerCase());
    if (BAD_HEADER_CHAR.test(v)) problems.push({ location, message: 'contains CR, LF, NUL or another character not allowed in a header value' });
    try {
      tokenize(v, `headers.${name}`);
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      problems.push({ location, message: strip(e) });
    }
  }
  const json = isJsonContentType(contentTypeOf(template.headers ?? {}));
  const walk = (n: unknown, location: (string | number)[]): void => {
    if (location.length > MAX_DEPTH) {
      problems.push({ location, message: `nested deeper than ${MAX_DEPTH}` });
      return;
    }
    if (typeof n === 'string') {
      try {
        for (const p of tokenize(n, location.join('/'))) {
          if (p.kind === 'secret' && (location.length === 1 || !json)) {
            problems.push({ location, message: `${p.raw}: ${SECRET_PLACES} (a Content-Type: application/json header, a body that is an object or array)` });
          }
        }
      } catch (e) {
        if (!(e instanceof TemplateError)) throw e;
        problems.push({ location, message: strip(e) });
      }
    } else if (Array.isArray(n)) n.forEach((x, i) => walk(x, [...location, i]));
    else if (isPlainObject(n)) {
      for (const [k, x] of Object.entries(n)) {
        if (k.includes('{{') || k.includes('}}')) problems.push({ location: [...location, k], message: 'placeholders are not allowed in keys' });
        walk(x, [...location, k]);
      }
    }
  };
  if (template.body_template !== undefined) walk(template.body_template, ['body_template']);
  // The request would choose the URL, so where the secret goes (an allowlisted host that stores or
  // echoes its input hands it back past any redaction): a secret needs a template with a fixed origin.
  if (info?.urlMode === 'whole') {
    for (const p of safePlaceholders(template)) {
      if (p.kind === 'secret') problems.push({ location: p.location, message: `{{secret:${p.name}}}: a whole-URL template ("{{url}}") may not send a secret; write the origin in url_template` });
    }
  }
  return info ? { problems, info } : { problems };
}

/**
 * For the transport layer: header values with every {{secret:NAME}} replaced
 * by its value. A missing secret, or a value with CR, LF, NUL or another
 * character not allowed in a header, throws.
 */
export function injectSecrets(headers: Record<string, string>, resolve: (name: string) => string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, tmpl] of Object.entries(headers)) {
    const where = `headers.${name}`;
    let value = '';
    for (const p of tokenize(tmpl, where)) {
      if (p.kind === 'text') value += p.text;
      else if (p.kind === 'var') throw new TemplateError(`unexpanded variable "${p.path}"`, where, p.path);
      else {
        const s = resolve(p.name);
        if (s === undefined) throw new TemplateError(`secret "${p.name}" has no value`, where, p.name);
        if (BAD_HEADER_CHAR.test(s)) throw new TemplateError(`secret "${p.name}" contains CR, LF, NUL or another character not allowed in a header value`, where, p.name);
        value += s;
      }
    }
    out[name] = value;
  }
  return out;
}
