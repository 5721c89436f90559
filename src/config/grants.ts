// What a configuration file grants beyond the built-in defaults, as one line
// per grant ("rw_mounts: /home/me"). A file that grants nothing is used
// without trust; one that grants something only once the user has trusted
// its exact content (config/trust.ts).
//
// What counts as a grant is decided fail-closed: every key is a grant except
// the few listed in NOT_GRANTS below, so a key added to the schema later is a
// grant until someone decides otherwise. Not grants:
//   [sandbox.limits] (nofile, nproc, tmp_size): resources, not reach;
//   [sandbox.network] strict_net: true narrows, false is the default;
//   [sandbox.agent] workspace at or below the directory that holds the file
//     (the directory holding .latchgate/ for a project config): a box that
//     could write the file could already write there.
// Grants, each element of a list its own line: ro_mounts and rw_mounts (with
// the real path when a symlink leads elsewhere), any other workspace,
// allow_hosts, allow_ports other than 443, pass_env, every field of a
// credential route, resolve pins, extra_ca_certs, principal, and every key of
// [gate], [identity], [operators], [policy] and [state]. A CA certificate
// file (extra_ca_certs, ca_file) is shown with its content's SHA-256: the
// certificates are what is trusted, so a changed file is a changed grant. An empty table that
// names something (a credential route, a principal, an operator) is a grant too.
// upstream_proxy is shown without its credentials (user:password@), which
// would otherwise be printed and kept in the trust store.
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, relative, resolve } from 'node:path';
import { LATCHGATE_TOML } from './latchgate-toml.js';
import { isTable, leaves, nodeAt } from './toml-schema.js';

export type ConfigKind = 'latchgate.toml' | 'sandbox-config';

export interface GrantContext {
  /** The file's real path: relative paths in it resolve against its directory. */
  file: string;
  /** Where a relative workspace resolves (the launcher's working directory). */
  cwd: string;
  /** Real path of p, or undefined when it does not resolve (default: realpathSync). */
  realpath?: (p: string) => string | undefined;
}

const NOT_GRANTS = new Set(['sandbox.limits.nofile', 'sandbox.limits.nproc', 'sandbox.limits.tmp_size', 'sandbox.network.strict_net']);
/** Keys whose relative paths latchgate resolves against the file's directory: shown resolved, as they are used. */
const FILE_RELATIVE = new Set(leaves(LATCHGATE_TOML).filter((l) => l.options.fileRelative).map((l) => l.path.join('.')));
/** Keys naming a file whose content is what is trusted (CA certificates): the grant names the content's hash too. */
const CONTENT_TRUSTED = new Set(leaves(LATCHGATE_TOML).filter((l) => l.options.contentTrusted).map((l) => l.path.join('.')));

/** "sha256:<hex>" of a file's content, or why it cannot be read: a grant line that changes with the content. */
function contentHash(file: string): string {
  try {
    return `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;
  } catch (e) {
    return `cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}
const MOUNTS = new Set(['sandbox.agent.ro_mounts', 'sandbox.agent.rw_mounts']);
const DEFAULT_PORTS = new Set([443]);
/** Keys whose values are shown with the userinfo of a URL replaced. */
const REDACTED_USERINFO = new Set(['sandbox.network.upstream_proxy', 'gate.upstream_proxy']);
const redactUserinfo = (v: string) => v.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/?#]*@/i, '$1***@');

function defaultRealpath(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

const isUnder = (p: string, root: string) => {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/** The directory a file configures: the project for .latchgate/latchgate.toml, else the file's own directory. */
export function configRoot(file: string): string {
  const dir = dirname(file);
  return basename(dir) === '.latchgate' ? dirname(dir) : dir;
}

const quoted = (s: string) => `"${s.replace(/[^\x20-\x7e]|["\\]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))}"`;

/**
 * A value as shown to the person deciding whether to trust it: plain when it
 * is harmless printable ASCII, otherwise quoted with every control, non-ASCII
 * and quote character escaped, so a value can neither forge lines nor hide text.
 */
export function showValue(v: unknown): string {
  const s = String(v);
  return /^[A-Za-z0-9._/:@*+=,~%-]+$/.test(s) ? s : quoted(s);
}

const showKey = (k: string) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : quoted(k));

/** "sandbox.agent.rw_mounts" -> "rw_mounts"; [sandbox.network] keys likewise; other sections keep their name. */
function label(path: string[]): string {
  const shown = path.map(showKey);
  if (path[0] === 'sandbox' && (path[1] === 'agent' || path[1] === 'network') && path.length > 2) return shown.slice(2).join('.');
  return shown.join('.');
}

/** Whether the table at path holds entries under names the file chooses (routes, uids, operators, pins). */
const isNamed = (path: string[]) => nodeAt(LATCHGATE_TOML, path)?.kind === 'named';

/**
 * The grants of a parsed, schema-checked document. kind 'sandbox-config':
 * the [sandbox.agent] keys at the top level (--sandbox-config).
 */
export function grantsOf(doc: Record<string, unknown>, kind: ConfigKind, ctx: GrantContext): string[] {
  const real = ctx.realpath ?? defaultRealpath;
  const full = kind === 'sandbox-config' ? { sandbox: { agent: doc } } : doc;
  const base = dirname(ctx.file);
  const out: string[] = [];
  const add = (line: string) => {
    if (!out.includes(line)) out.push(line);
  };
  const leaf = (path: string[], value: unknown) => {
    const key = path.join('.');
    const generic = path.map((k, i) => (isNamed(path.slice(0, i)) ? '*' : k)).join('.');
    if (NOT_GRANTS.has(key)) return;
    if (key === 'sandbox.agent.workspace') {
      const ws = real(resolve(ctx.cwd, String(value)));
      const root = real(configRoot(ctx.file)) ?? configRoot(ctx.file);
      if (ws === undefined || !isUnder(ws, root)) add(`${label(path)}: ${showValue(ws ?? resolve(ctx.cwd, String(value)))}`);
      return;
    }
    for (const v of Array.isArray(value) ? value : [value]) {
      if (key === 'sandbox.network.allow_ports' && DEFAULT_PORTS.has(v as number)) continue;
      const file = FILE_RELATIVE.has(generic) && !isAbsolute(String(v)) ? resolve(base, String(v)) : String(v);
      let shown = showValue(FILE_RELATIVE.has(generic) ? file : REDACTED_USERINFO.has(key) ? redactUserinfo(String(v)) : v);
      // A box that can write the certificate file could otherwise change what a trusted config makes the host trust.
      if (CONTENT_TRUSTED.has(generic)) shown += ` (${showValue(contentHash(file))})`;
      if (MOUNTS.has(key)) {
        const r = real(String(v));
        if (r !== undefined && r !== v) shown += ` -> ${showValue(r)}`;
      }
      add(`${label(path)}: ${shown}`);
    }
  };
  const walk = (path: string[], v: unknown) => {
    if (!isTable(v)) return leaf(path, v);
    const entries = Object.entries(v);
    // An empty table under a keyed one still names a route, principal or operator.
    if (entries.length === 0 && path.length > 0 && isNamed(path.slice(0, -1))) add(`${label(path)}: {}`);
    for (const [k, x] of entries) walk([...path, k], x);
  };
  walk([], full);
  return out;
}

/** Lines granted now and not before (added), and before and not now (removed). */
export function diffGrants(before: readonly string[], now: readonly string[]): { added: string[]; removed: string[] } {
  return { added: now.filter((g) => !before.includes(g)), removed: before.filter((g) => !now.includes(g)) };
}
