// Built-in agent profiles: one TOML file per agent under profiles/, checked
// against one schema (unknown keys refused with the nearest valid name, file
// and key named), aliases resolved, and the agent's installation discovered
// on the host PATH at launch.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LaunchError } from '../core/errors.js';
import { compileKeyRules, type ProtectRequest, type StateFileSpec } from './box-requests.js';
import { didYouMean } from './suggest.js';
import { checkSchema, parseTomlFile, type Schema } from './toml-schema.js';
import { isInside } from '../core/paths.js';
import { BOX_CREDENTIAL_PORT, BOX_RESERVED_PATHS } from '../core/box.js';

export const PROFILES_DIR = fileURLToPath(new URL('../../profiles/', import.meta.url));

export interface ProfileRoute {
  upstream: string;
  header: string;
  format: string;
  keySource: string;
  /** A route whose key does not resolve is dropped (subscription logins go through CONNECT). */
  optional: boolean;
  /** Set in the box only when the route is active; "{route_url}" is replaced. */
  placeholderEnv: Record<string, string>;
  /** Inserted after argv[0] (when it is the profile's command) only when the route is active. */
  args: string[];
  /** Generated file name -> a JSON object ("{route_url}" replaced) merged into it when the route is active. */
  files: Record<string, string>;
}

/**
 * A configuration file the launcher writes into the box (read-only) for an
 * agent that takes its provider settings from a file rather than from the
 * environment (opencode): a base JSON object, with the fragments of the
 * active routes merged in, and a variable that points the agent at it.
 */
export interface ProfileFile {
  /** Inside the box, under /run/latchgate/. */
  path: string;
  /** The variable set to the path inside the box. */
  env: string;
  /** The base JSON object, as text. */
  json: string;
}

export interface AgentProfile {
  name: string;
  file: string;
  description: string;
  command: string[];
  aliases: string[];
  allowHosts: string[];
  passEnv: string[];
  /** Fixed, non-secret variables for the box. */
  env: Record<string, string>;
  /** Inserted after argv[0] when argv[0] is the profile's command. */
  args: string[];
  /** "~/..." paths: mounted read-write when present on the host. */
  rwPaths: string[];
  /** "~/..." paths inside rwPaths that stay read-only; a trailing "/" marks a directory. */
  protected: string[];
  credentials: Map<string, ProfileRoute>;
  files: Map<string, ProfileFile>;
  /** Files the box gets a private copy of, merged back at exit (sandbox/state-files.ts); "~/..." paths. */
  stateFiles: StateFileSpec[];
}

const ROUTE_SCHEMA: Schema = { upstream: 'string', header: 'string', format: 'string', key_source: 'string', optional: 'bool', placeholder_env: 'env', args: 'string[]', files: 'env' };
const FILE_SCHEMA: Schema = { path: 'string', env: 'string', json: 'string' };
const STATE_SCHEMA: Schema = { path: 'string', format: 'string', also_at: 'string[]', box_keys: 'string[]', host_only_keys: 'string[]' };
const FILE_PATH = /^\/run\/latchgate\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const BOX_RESERVED = new Set(BOX_RESERVED_PATHS);

/** Parses a JSON object template; "{route_url}" stands for a URL (always JSON-safe). */
function jsonObject(text: string, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text.replaceAll('{route_url}', 'http://127.0.0.1:1/x'));
  } catch (e) {
    throw new LaunchError(`${where}: not valid JSON (${(e as Error).message}); write one JSON object, e.g. '''{"key": "value"}'''`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new LaunchError(`${where}: expected a JSON object`);
  return v as Record<string, unknown>;
}
const SCHEMA: Schema = {
  description: 'string',
  command: 'string[]',
  aliases: 'string[]',
  allow_hosts: 'string[]',
  pass_env: 'string[]',
  env: 'env',
  args: 'string[]',
  rw_paths: 'string[]',
  protected: 'string[]',
  credentials: { '*': ROUTE_SCHEMA },
  files: { '*': FILE_SCHEMA },
  state_files: { '*': STATE_SCHEMA },
};

const HOME_PATH = /^~\/[^\0]+$/;

/** Parses and validates one profile file's text. */
export function parseProfile(name: string, file: string, text: string): AgentProfile {
  const doc = parseTomlFile(file, text);
  checkSchema(file, doc, SCHEMA);
  const command = (doc.command as string[] | undefined) ?? [];
  if (command.length === 0 || command[0]!.includes('/') || command[0] === '') {
    throw new LaunchError(`${file}: key "command": required, an array whose first item is a program name without "/", e.g. command = ["${name}"]`);
  }
  for (const key of ['rw_paths', 'protected'] as const) {
    for (const p of (doc[key] as string[] | undefined) ?? []) {
      if (!HOME_PATH.test(p) || p.split('/').includes('..')) throw new LaunchError(`${file}: key "${key}": ${JSON.stringify(p)}: expected a path under the agent's home, written "~/..." without ".."`);
    }
  }
  const rw = (doc.rw_paths as string[] | undefined) ?? [];
  for (const p of (doc.protected as string[] | undefined) ?? []) {
    if (!rw.some((r) => isInside(r, p))) throw new LaunchError(`${file}: key "protected": ${p} is not under any rw_paths entry; protect only what the agent can write`);
  }
  const files = new Map<string, ProfileFile>();
  const paths = new Set<string>();
  for (const [fname, f] of Object.entries((doc.files ?? {}) as Record<string, Record<string, unknown>>)) {
    for (const req of ['path', 'env', 'json'] as const) {
      if (typeof f[req] !== 'string') throw new LaunchError(`${file}: [files.${fname}] key "${req}": required`);
    }
    const path = f.path as string;
    if (!FILE_PATH.test(path) || BOX_RESERVED.has(path)) throw new LaunchError(`${file}: [files.${fname}] key "path": ${JSON.stringify(path)}: expected a file directly under /run/latchgate/ (not gate.sock, proxy.sock, state or git-excludes), e.g. "/run/latchgate/${fname}.json"`);
    if (paths.has(path)) throw new LaunchError(`${file}: [files.${fname}] key "path": ${path} is already the path of another file`);
    paths.add(path);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(f.env as string)) throw new LaunchError(`${file}: [files.${fname}] key "env": expected a variable name, e.g. "OPENCODE_CONFIG"`);
    jsonObject(f.json as string, `${file}: [files.${fname}] key "json"`);
    files.set(fname, { path, env: f.env as string, json: f.json as string });
  }
  const stateFiles = parseStateFiles(file, (doc.state_files ?? {}) as Record<string, Record<string, unknown>>, rw);
  const credentials = new Map<string, ProfileRoute>();
  for (const [route, c] of Object.entries((doc.credentials ?? {}) as Record<string, Record<string, unknown>>)) {
    if (!/^[a-z][a-z0-9_-]*$/.test(route)) throw new LaunchError(`${file}: [credentials.${route}]: route names are lowercase letters, digits, _ and -`);
    for (const req of ['upstream', 'header', 'key_source'] as const) {
      if (typeof c[req] !== 'string') throw new LaunchError(`${file}: [credentials.${route}] key "${req}": required`);
    }
    const format = (c.format as string | undefined) ?? '{}';
    if (!format.includes('{}')) throw new LaunchError(`${file}: [credentials.${route}] key "format": must contain {} where the key goes`);
    if (!/^env:[A-Za-z_][A-Za-z0-9_]*$/.test(c.key_source as string)) throw new LaunchError(`${file}: [credentials.${route}] key "key_source": expected "env:VAR"`);
    credentials.set(route, {
      upstream: c.upstream as string,
      header: c.header as string,
      format,
      keySource: c.key_source as string,
      optional: (c.optional as boolean | undefined) ?? false,
      placeholderEnv: (c.placeholder_env as Record<string, string> | undefined) ?? {},
      args: (c.args as string[] | undefined) ?? [],
      files: (c.files as Record<string, string> | undefined) ?? {},
    });
    for (const [fname, fragment] of Object.entries((c.files as Record<string, string> | undefined) ?? {})) {
      if (!files.has(fname)) throw new LaunchError(`${file}: [credentials.${route}] key "files": no [files.${fname}] in this profile; ${didYouMean(fname, [...files.keys()])}`);
      jsonObject(fragment, `${file}: [credentials.${route}] key "files.${fname}"`);
    }
  }
  return {
    name,
    file,
    description: (doc.description as string | undefined) ?? name,
    command,
    aliases: (doc.aliases as string[] | undefined) ?? [],
    allowHosts: (doc.allow_hosts as string[] | undefined) ?? [],
    passEnv: (doc.pass_env as string[] | undefined) ?? [],
    env: (doc.env as Record<string, string> | undefined) ?? {},
    args: (doc.args as string[] | undefined) ?? [],
    rwPaths: rw,
    protected: (doc.protected as string[] | undefined) ?? [],
    credentials,
    files,
    stateFiles,
  };
}

/**
 * [state_files.NAME]: path (a "~/..." file outside rw_paths), format
 * ("json"), box_keys (the key paths whose box changes are merged back),
 * host_only_keys (names kept as the host has them at any depth) and also_at
 * (files under rw_paths where the agent also looks for it).
 */
function parseStateFiles(file: string, tables: Record<string, Record<string, unknown>>, rw: string[]): StateFileSpec[] {
  const out: StateFileSpec[] = [];
  const homePath = (name: string, key: string, p: string) => {
    if (!HOME_PATH.test(p) || p.split('/').includes('..') || p.endsWith('/')) throw new LaunchError(`${file}: [state_files.${name}] key "${key}": ${JSON.stringify(p)}: expected a file under the agent's home, written "~/..." without ".."`);
  };
  for (const [name, t] of Object.entries(tables)) {
    const where = `${file}: [state_files.${name}]`;
    if (!/^[a-z][a-z0-9_-]*$/.test(name)) throw new LaunchError(`${where}: state file names are lowercase letters, digits, _ and -`);
    for (const req of ['path', 'format', 'box_keys'] as const) {
      if (t[req] === undefined) throw new LaunchError(`${where} key "${req}": required`);
    }
    const path = t.path as string;
    homePath(name, 'path', path);
    const r = rw.find((root) => isInside(root, path));
    if (r !== undefined) throw new LaunchError(`${where} key "path": ${path} is inside rw_paths entry ${r}, where the box would write it directly; keep it out of rw_paths`);
    if (out.some((f) => f.path === path)) throw new LaunchError(`${where} key "path": ${path} is already another state file`);
    if (t.format !== 'json') throw new LaunchError(`${where} key "format": expected "json" (the only format merged so far), got ${JSON.stringify(t.format)}`);
    const alsoAt = (t.also_at as string[] | undefined) ?? [];
    for (const p of alsoAt) {
      homePath(name, 'also_at', p);
      if (!rw.some((root) => isInside(root, p) && p !== root)) throw new LaunchError(`${where} key "also_at": ${p} is not inside any rw_paths entry; list only files in the agent's read-write trees`);
    }
    try {
      compileKeyRules((t.box_keys as string[]) ?? [], (t.host_only_keys as string[] | undefined) ?? []);
    } catch (e) {
      throw new LaunchError(`${where} key ${(e as Error).message}`);
    }
    out.push({ name, path, format: 'json', alsoAt, boxKeys: t.box_keys as string[], hostOnlyKeys: (t.host_only_keys as string[] | undefined) ?? [] });
  }
  return out;
}

let cache: Map<string, AgentProfile> | undefined;

/** Every built-in profile, by canonical name (the file name without .toml). */
export function loadProfiles(dir = PROFILES_DIR): Map<string, AgentProfile> {
  if (dir === PROFILES_DIR && cache) return cache;
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.toml')).sort();
  } catch {
    throw new LaunchError(`${dir}: the built-in profiles directory is missing; reinstall latchgate`);
  }
  const out = new Map<string, AgentProfile>();
  const seen = new Map<string, string>();
  for (const n of names) {
    const file = join(dir, n);
    const p = parseProfile(n.slice(0, -'.toml'.length), file, readFileSync(file, 'utf8'));
    for (const a of [p.name, ...p.aliases]) {
      if (seen.has(a)) throw new LaunchError(`${file}: key "aliases": ${a} is already the name or alias of ${seen.get(a)}`);
      seen.set(a, p.name);
    }
    out.set(p.name, p);
  }
  if (dir === PROFILES_DIR) cache = out;
  return out;
}

export interface ProfileRef {
  name: string;
  command: string;
}

export function profileNames(): string[] {
  return [...loadProfiles().keys()];
}

export function loadProfile(name: string): AgentProfile {
  const all = loadProfiles();
  for (const p of all.values()) if (name === p.name || p.aliases.includes(name)) return p;
  const names = [...all.values()].flatMap((p) => [p.name, ...p.aliases]);
  throw new LaunchError(`--profile ${name}: unknown profile; ${didYouMean(name, names)} (available: ${[...all.keys()].join(', ')})`);
}

export function resolveProfile(name: string): ProfileRef {
  const p = loadProfile(name);
  return { name: p.name, command: p.command[0]! };
}

// ---------------------------------------------------------------- discovery

/** Trees the box already has read-only: nothing to mount for what lives there. */
const SYSTEM_TREES = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
const isUnder = (p: string, root: string) => {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};
const inSystemTree = (p: string) => SYSTEM_TREES.some((t) => isUnder(p, t));

export interface Discovery {
  /** The command as found on the host PATH (null: not found, nothing mounted). */
  launcher: string | null;
  /** Its real path, symlinks followed. */
  real: string | null;
  /** The interpreter named by a #! line, real path. */
  interpreter: string | null;
  /** Read-only mounts to add (empty when everything is under /usr). */
  ro: string[];
  /** Launcher directories the box PATH must get (not <mount>/bin). */
  path: string[];
}

export function findOnPath(name: string, pathVar: string | undefined): string | undefined {
  for (const d of (pathVar ?? '').split(':')) {
    if (!d.startsWith('/')) continue;
    const p = join(d, name);
    try {
      const st = statSync(p);
      if (st.isFile() && (st.mode & 0o111) !== 0) return p;
    } catch {
      // next
    }
  }
  return undefined;
}

function commonAncestor(a: string, b: string): string {
  const x = a.split('/');
  const y = b.split('/');
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  return x.slice(0, i).join('/') || '/';
}

/** The installation directory of a binary: a "bin" directory's parent, else its directory. */
function installDir(real: string): string {
  const d = dirname(real);
  return basename(d) === 'bin' && dirname(d) !== '/' ? dirname(d) : d;
}

/** Too broad to mount whole: /, a top-level directory, a system tree, a home directory itself. */
function tooBroad(dir: string, homes: string[]): boolean {
  return dir === '/' || dirname(dir) === '/' || inSystemTree(dir) || homes.some((h) => h === dir || isUnder(h, dir));
}

function shebang(file: string): string[] | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const buf = Buffer.alloc(256);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const head = buf.subarray(0, n).toString('latin1');
    if (!head.startsWith('#!')) return undefined;
    return head.slice(2).split('\n')[0]!.trim().split(/\s+/).filter(Boolean);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Finds `command` on the host PATH, follows symlinks, and plans read-only
 * mounts of its installation (the deepest common ancestor of the launcher's
 * directory and the real file, unless that is too broad) and of the
 * interpreter its #! line names. Nothing under /usr and the system trees.
 */
export function discoverInstall(command: string, pathVar: string | undefined, homes: string[]): Discovery {
  const out: Discovery = { launcher: null, real: null, interpreter: null, ro: [], path: [] };
  const launcher = findOnPath(command, pathVar);
  if (!launcher) return out;
  out.launcher = launcher;
  const real = realpathSync(launcher);
  out.real = real;
  const addInstall = (launcherDir: string, file: string) => {
    if (inSystemTree(file)) return;
    const realLauncherDir = existsSync(launcherDir) ? realpathSync(launcherDir) : launcherDir;
    let common = commonAncestor(realLauncherDir, dirname(file));
    // A prefix's bin directory stands for the prefix (its lib/ and share/ come with it).
    if (basename(common) === 'bin' && !tooBroad(dirname(common), homes)) common = dirname(common);
    if (!tooBroad(common, homes)) out.ro.push(common);
    else {
      const inst = installDir(file);
      out.ro.push(tooBroad(inst, homes) ? dirname(file) : inst);
      if (!inSystemTree(launcherDir) && !isUnder(launcherDir, out.ro.at(-1)!)) out.ro.push(launcherDir);
    }
  };
  addInstall(dirname(launcher), real);
  if (!inSystemTree(launcher) && !out.ro.some((r) => join(r, 'bin') === dirname(launcher))) out.path.push(dirname(launcher));
  const sb = shebang(real);
  if (sb && sb.length > 0) {
    let interp = sb[0]!;
    if (basename(interp) === 'env') {
      const prog = sb.slice(1).find((a) => !a.startsWith('-'));
      const found = prog ? findOnPath(prog, pathVar) : undefined;
      interp = found ?? '';
    }
    if (interp && existsSync(interp)) {
      const r = realpathSync(interp);
      out.interpreter = r;
      if (!inSystemTree(r)) {
        addInstall(dirname(interp), r);
        // `#!/usr/bin/env node` looks node up on the box PATH.
        const dir = dirname(interp);
        if (!inSystemTree(dir) && !out.ro.some((m) => join(m, 'bin') === dir)) out.path.push(dir);
      }
    }
  }
  // Parents cover children.
  const uniq = [...new Set(out.ro)].sort((a, b) => a.length - b.length);
  out.ro = uniq.filter((p, i) => !uniq.slice(0, i).some((q) => isUnder(p, q)));
  out.path = [...new Set(out.path)];
  return out;
}

// ---------------------------------------------------------------- merging

export interface ConfigCredential {
  upstream?: string;
  header?: string;
  format?: string;
  keySource?: string;
  caFile?: string;
  /** The file and section that configured it. */
  origin?: string;
}

export interface EffectiveRoute extends ConfigCredential {
  optional: boolean;
  /** The profile section the route comes from ("<file>: [credentials.<name>]"), if any. */
  profileOrigin?: string;
  from: 'profile' | 'config' | 'profile+config';
  /** Whether key_source resolves on the host now (the key itself is never kept here). */
  resolved: boolean;
}

export interface EffectiveProfile {
  profile: string | null;
  command: string[];
  allowHosts: string[];
  passEnv: string[];
  env: Record<string, string>;
  args: string[];
  ro: string[];
  rw: string[];
  protected: ProtectRequest[];
  /** Routes that go to the egress plan (active) and those dropped as optional and unresolved. */
  credentials: Map<string, EffectiveRoute>;
  /** Files written read-only into the box (their variables are in env). */
  files: GeneratedFile[];
  /** State files whose directory exists on the host (paths expanded). */
  stateFiles: StateFileSpec[];
  dropped: string[];
  discovery: Discovery | null;
}

export interface GeneratedFile {
  path: string;
  content: string;
}

/** b's keys over a's, objects merged key by key (arrays and scalars replaced). */
function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    const isObj = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);
    out[k] = isObj(prev) && isObj(v) ? deepMerge(prev, v) : v;
  }
  return out;
}

const keyResolves = (keySource: string | undefined, env: NodeJS.ProcessEnv) => {
  const m = keySource ? /^env:(.+)$/.exec(keySource) : null;
  return !!m && (env[m[1]!] ?? '') !== '';
};

export const routeUrl = (name: string) => `http://127.0.0.1:${BOX_CREDENTIAL_PORT}/${name}`;

/**
 * Profile first, then latchgate.toml [sandbox.agent], then CLI flags: lists
 * are appended (deduplicated), credentials merged by route name with the
 * configuration overriding the profile field by field.
 */
export function mergeProfile(
  profile: AgentProfile | undefined,
  file: { allowHosts: string[]; roMounts: string[]; rwMounts: string[]; passEnv: string[]; credentials: Map<string, ConfigCredential> },
  flags: { allowHost: string[]; ro: string[]; rw: string[]; passEnv: string[] },
  host: { env: NodeJS.ProcessEnv; home: string; hostHome?: string },
): EffectiveProfile {
  const uniq = (xs: string[]) => [...new Set(xs)];
  const expand = (p: string) => join(host.home, p.slice(2));
  const present = (p: string) => existsSync(p);
  const credentials = new Map<string, EffectiveRoute>();
  for (const [name, r] of profile?.credentials ?? []) {
    credentials.set(name, { upstream: r.upstream, header: r.header, format: r.format, keySource: r.keySource, optional: r.optional, from: 'profile', profileOrigin: `${profile!.file}: [credentials.${name}]`, resolved: false });
  }
  for (const [name, c] of file.credentials) {
    const base = credentials.get(name);
    const defined = Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) as ConfigCredential;
    // A route the operator configures is required, whatever the profile said.
    credentials.set(name, { ...(base ?? {}), ...defined, optional: false, from: base ? 'profile+config' : 'config', resolved: false });
  }
  const dropped: string[] = [];
  for (const [name, r] of credentials) {
    r.resolved = keyResolves(r.keySource, host.env);
    if (!r.resolved && r.optional) {
      credentials.delete(name);
      dropped.push(name);
    } else if (!r.resolved && r.from === 'profile') {
      throw new LaunchError(`${profile!.file}: [credentials.${name}]: ${r.keySource} is not set on the host; export it before launching (the box never sees it), or configure the route in [sandbox.agent.credentials.${name}]`);
    }
  }
  const env: Record<string, string> = { ...(profile?.env ?? {}) };
  const args = [...(profile?.args ?? [])];
  const docs = new Map([...(profile?.files ?? [])].map(([n, f]) => [n, JSON.parse(f.json) as Record<string, unknown>]));
  for (const [name, r] of profile?.credentials ?? []) {
    if (!credentials.has(name)) continue;
    for (const [k, v] of Object.entries(r.placeholderEnv)) env[k] = v.replaceAll('{route_url}', routeUrl(name));
    args.push(...r.args.map((a) => a.replaceAll('{route_url}', routeUrl(name))));
    for (const [fname, fragment] of Object.entries(r.files)) {
      docs.set(fname, deepMerge(docs.get(fname)!, JSON.parse(fragment.replaceAll('{route_url}', routeUrl(name))) as Record<string, unknown>));
    }
  }
  const files: GeneratedFile[] = [];
  for (const [fname, f] of profile?.files ?? []) {
    env[f.env] = f.path;
    files.push({ path: f.path, content: `${JSON.stringify(docs.get(fname), null, 2)}\n` });
  }
  const rwProfile = (profile?.rwPaths ?? []).map(expand).filter(present);
  const stateFiles = (profile?.stateFiles ?? [])
    .map((f) => ({ ...f, path: expand(f.path), alsoAt: f.alsoAt.map(expand) }))
    .filter((f) => present(dirname(f.path)));
  const protectedPaths: ProtectRequest[] = [
    ...(profile?.protected ?? []).map((p) => ({ path: expand(p).replace(/\/+$/, ''), type: p.endsWith('/') ? ('dir' as const) : ('file' as const) })),
    // Where the agent also looks for a state file: a read-only placeholder keeps the box from creating it there, and the box sees its copy.
    ...stateFiles.flatMap((f) => f.alsoAt.map((path) => ({ path, type: 'file' as const }))),
  ].filter((p) => rwProfile.some((r) => isUnder(p.path, r)));
  const discovery = profile ? discoverInstall(profile.command[0]!, host.env.PATH, uniq([host.home, host.hostHome ?? host.home])) : null;
  return {
    profile: profile?.name ?? null,
    command: profile?.command ?? [],
    allowHosts: uniq([...(profile?.allowHosts ?? []), ...file.allowHosts, ...flags.allowHost]),
    passEnv: uniq([...(profile?.passEnv ?? []), ...file.passEnv, ...flags.passEnv]),
    env,
    args,
    ro: uniq([...(discovery?.ro ?? []), ...file.roMounts, ...flags.ro]),
    rw: uniq([...rwProfile, ...file.rwMounts, ...flags.rw]),
    protected: protectedPaths,
    credentials,
    files,
    stateFiles,
    dropped,
    discovery,
  };
}

/** argv with the profile's args after argv[0] when argv[0] is the profile's command. */
export function applyProfileArgs(argv: string[], eff: EffectiveProfile): string[] {
  if (argv.length === 0 || eff.args.length === 0 || eff.command.length === 0) return argv;
  const cmd = eff.command[0]!;
  const a0 = argv[0]!;
  const same = a0 === cmd || (eff.discovery?.launcher != null && a0 === eff.discovery.launcher);
  return same ? [a0, ...eff.args, ...argv.slice(1)] : argv;
}

/** The effective profile as --print-profile shows it: no key, ever. */
export function describeProfile(eff: EffectiveProfile, argv: string[]) {
  return {
    profile: eff.profile,
    command: argv,
    allow_hosts: eff.allowHosts,
    pass_env: eff.passEnv,
    env: eff.env,
    ro_mounts: eff.ro,
    rw_mounts: eff.rw,
    protected: eff.protected.map((p) => (p.type === 'dir' ? `${p.path}/` : p.path)),
    credentials: Object.fromEntries(
      [...eff.credentials].map(([n, r]) => [n, { upstream: r.upstream ?? null, header: r.header ?? null, format: r.format ?? '{}', key_source: r.keySource ?? null, optional: r.optional, key_resolved: r.resolved, from: r.from, base_url: routeUrl(n) }]),
    ),
    generated_files: Object.fromEntries(eff.files.map((f) => [f.path, JSON.parse(f.content) as unknown])),
    state_files: eff.stateFiles.map((f) => ({ name: f.name, path: f.path, format: f.format, also_at: f.alsoAt, box_keys: f.boxKeys, host_only_keys: f.hostOnlyKeys })),
    dropped_optional_routes: eff.dropped,
    discovery: eff.discovery,
  };
}

export function listProfiles() {
  return [...loadProfiles().values()].map((p) => ({ name: p.name, aliases: p.aliases, command: p.command, description: p.description }));
}
