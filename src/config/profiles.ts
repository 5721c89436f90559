// Built-in agent profiles: one TOML file per agent under profiles/, declared
// once (PROFILE_TOML, which gives their check, their types and their part of
// docs/CONFIG.md; unknown keys refused with the nearest valid name, file and
// key named), aliases resolved, and the agent's installation discovered on
// the host PATH at launch.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LaunchError } from '../core/errors.js';
import { compileKeyRules, type ProtectRequest, type StateFileSpec } from './box-requests.js';
import { parseKeySource, KEY_SOURCE_DOC } from './key-source.js';
import { didYouMean } from './suggest.js';
import { checkSchema, leaf, named, parseTomlFile, readToml, table, type Infer } from './toml-schema.js';
import type { ConfigRoute } from './latchgate-toml.js';
import { isInside } from '../core/paths.js';
import { BOX_CREDENTIAL_PORT, BOX_MCP_COMMAND, BOX_RESERVED_PATHS } from '../core/box.js';

export const PROFILES_DIR = fileURLToPath(new URL('../../profiles/', import.meta.url));

const ROUTE = table(`A credential route: the box calls \`http://127.0.0.1:${BOX_CREDENTIAL_PORT}/<name>\` and the launcher adds the key, read on the host. latchgate.toml's \`[sandbox.agent.credentials.<name>]\` overrides it field by field.`, {
  upstream: leaf('string', 'Where calls go: `https://host[:port][/base]`.', { required: true }),
  header: leaf('string', 'The request header that carries the key.', { required: true }),
  format: leaf('string', 'The header value, `{}` standing for the key, e.g. `"Bearer {}"`.', { default: '{}' }),
  key_source: leaf('string', KEY_SOURCE_DOC, { required: true }),
  optional: leaf('bool', 'A route whose key does not resolve is dropped (subscription logins go through CONNECT).', { default: false }),
  placeholder_env: leaf('env', 'Set in the box only when the route is active; `{route_url}` is replaced by its URL.', { default: {} }),
  args: leaf('string[]', 'Inserted after argv[0] (when it is the profile\'s command) only when the route is active; `{route_url}` replaced.', { default: [] }),
  files: leaf('env', 'A `[files.<name>]` name and a JSON object (`{route_url}` replaced) merged into that file when the route is active.', { default: {} }),
});

const FILE = table('A configuration file the launcher writes into the box (read-only) for an agent that takes its settings from a file rather than from the environment (opencode, or an MCP configuration given by flag): a base JSON object, with the fragments of the active routes and of `[gate_tools]` merged in.', {
  path: leaf('string', 'Where the box sees it: a file directly under `/run/latchgate/`.', { required: true }),
  env: leaf('string', 'The variable set to the path inside the box. Without one, the file is written only when a fragment was merged into it (the agent is pointed at it by an argument).', { shown: 'none' }),
  json: leaf('string', 'The base JSON object, as text.', { required: true }),
});

const GATE_TOOLS = table('How the agent gets the gate\'s actions as MCP tools for this run (the server `latchgate`, run in the box as `/run/latchgate/bin/latchgate-mcp`); applied unless `--no-gate-tools` or `[sandbox.agent] gate_tools = false`. Only latchgate\'s tools are let run without a prompt: the gate decides every call.', {
  args: leaf('string[]', 'Inserted after argv[0] (when it is the profile\'s command).', { default: [] }),
  env: leaf('env', 'Variables set in the box.', { default: {} }),
  files: leaf('env', 'A `[files.<name>]` name and a JSON object merged into that file.', { default: {} }),
});

const STATE_FILE = table('A file the agent keeps its state in that also holds keys its host installation later runs or honours: the box gets a private copy, merged back at exit.', {
  path: leaf('string', 'The host file, `"~/..."`, outside `rw_paths`; also its path in the box.', { required: true }),
  format: leaf('string', 'How it is merged: `"json"`.', { required: true }),
  also_at: leaf('string[]', 'Files under `rw_paths` where the agent also looks for it: the box sees its copy there.', { default: [] }),
  box_keys: leaf('string[]', 'The key paths whose box changes are merged back (`projects.*.lastCost`); at least one.', { required: true }),
  host_only_keys: leaf('string[]', 'Key names kept as the host has them, at any depth.', { default: [] }),
});

const PROFILE_NAME = /^[a-z][a-z0-9_-]*$/;

export const PROFILE_TOML = table('profiles/<agent>.toml', {
  description: leaf('string', 'One line about the agent, for `latchgate profiles`.', { shown: 'the profile\'s name' }),
  command: leaf('string[]', 'The agent\'s command: a program name without "/" (found on the host PATH at launch), then its arguments.', { shown: 'required' }),
  aliases: leaf('string[]', 'Other names `--profile` accepts.', { default: [] }),
  allow_hosts: leaf('string[]', 'Hosts the box may reach through the CONNECT proxy.', { default: [] }),
  pass_env: leaf('string[]', 'Host environment variables passed into the box.', { default: [] }),
  env: leaf('env', 'Fixed, non-secret variables for the box.', { default: {} }),
  args: leaf('string[]', 'Inserted after argv[0] when argv[0] is the profile\'s command.', { default: [] }),
  rw_paths: leaf('string[]', '`"~/..."` paths mounted read-write when present on the host.', { default: [] }),
  protected: leaf('string[]', '`"~/..."` paths inside `rw_paths` that stay read-only; a trailing "/" marks a directory.', { default: [] }),
  credentials: named(ROUTE, '', { label: 'name', pattern: PROFILE_NAME, problem: 'route names are lowercase letters, digits, _ and -' }),
  files: named(FILE, '', { label: 'name' }),
  gate_tools: GATE_TOOLS,
  state_files: named(STATE_FILE, 'The box\'s copy is `<name>.json`.', { label: 'name', pattern: PROFILE_NAME, problem: 'state file names are lowercase letters, digits, _ and -' }),
});

export type AgentProfile = Omit<Infer<typeof PROFILE_TOML>, 'description' | 'command' | 'stateFiles'> & {
  name: string;
  file: string;
  description: string;
  command: string[];
  /** Host paths still "~/...". */
  stateFiles: StateFileSpec[];
};

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
const HOME_PATH = /^~\/[^\0]+$/;

/** Parses and validates one profile file's text. */
export function parseProfile(name: string, file: string, text: string): AgentProfile {
  const doc = parseTomlFile(file, text);
  checkSchema(file, doc, PROFILE_TOML);
  const p = readToml(file, doc, PROFILE_TOML);
  const command = p.command ?? [];
  if (command.length === 0 || command[0]!.includes('/') || command[0] === '') {
    throw new LaunchError(`${file}: key "command": required, an array whose first item is a program name without "/", e.g. command = ["${name}"]`);
  }
  for (const [key, list] of [['rw_paths', p.rwPaths], ['protected', p.protected]] as const) {
    for (const x of list) {
      if (!HOME_PATH.test(x) || x.split('/').includes('..')) throw new LaunchError(`${file}: key "${key}": ${JSON.stringify(x)}: expected a path under the agent's home, written "~/..." without ".."`);
    }
  }
  const rw = p.rwPaths;
  for (const x of p.protected) {
    if (!rw.some((r) => isInside(r, x))) throw new LaunchError(`${file}: key "protected": ${x} is not under any rw_paths entry; protect only what the agent can write`);
  }
  const paths = new Set<string>();
  for (const [fname, f] of p.files) {
    const path = f.path;
    if (!FILE_PATH.test(path) || BOX_RESERVED.has(path)) throw new LaunchError(`${file}: [files.${fname}] key "path": ${JSON.stringify(path)}: expected a file directly under /run/latchgate/ (not gate.sock, proxy.sock, state, git-excludes or gitconfig), e.g. "/run/latchgate/${fname}.json"`);
    if (paths.has(path)) throw new LaunchError(`${file}: [files.${fname}] key "path": ${path} is already the path of another file`);
    paths.add(path);
    if (f.env !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(f.env)) throw new LaunchError(`${file}: [files.${fname}] key "env": expected a variable name, e.g. "OPENCODE_CONFIG"`);
    jsonObject(f.json, `${file}: [files.${fname}] key "json"`);
  }
  const stateFiles = parseStateFiles(file, p.stateFiles, rw);
  const checkFragments = (section: string, fragments: Record<string, string>) => {
    for (const [fname, fragment] of Object.entries(fragments)) {
      if (!p.files.has(fname)) throw new LaunchError(`${file}: ${section} key "files": no [files.${fname}] in this profile; ${didYouMean(fname, [...p.files.keys()])}`);
      jsonObject(fragment, `${file}: ${section} key "files.${fname}"`);
    }
  };
  for (const [route, c] of p.credentials) {
    if (!c.format.includes('{}')) throw new LaunchError(`${file}: [credentials.${route}] key "format": must contain {} where the key goes`);
    parseKeySource(c.keySource, `${file}: [credentials.${route}] key "key_source"`);
    checkFragments(`[credentials.${route}]`, c.files);
  }
  checkFragments('[gate_tools]', p.gateTools.files);
  return { ...p, name, file, description: p.description ?? name, command, stateFiles };
}

/**
 * [state_files.NAME]: path (a "~/..." file outside rw_paths), format
 * ("json"), box_keys (the key paths whose box changes are merged back),
 * host_only_keys (names kept as the host has them at any depth) and also_at
 * (files under rw_paths where the agent also looks for it).
 */
function parseStateFiles(file: string, tables: Infer<typeof PROFILE_TOML>['stateFiles'], rw: string[]): StateFileSpec[] {
  const out: StateFileSpec[] = [];
  const homePath = (name: string, key: string, p: string) => {
    if (!HOME_PATH.test(p) || p.split('/').includes('..') || p.endsWith('/')) throw new LaunchError(`${file}: [state_files.${name}] key "${key}": ${JSON.stringify(p)}: expected a file under the agent's home, written "~/..." without ".."`);
  };
  for (const [name, t] of tables) {
    const where = `${file}: [state_files.${name}]`;
    const path = t.path;
    homePath(name, 'path', path);
    const r = rw.find((root) => isInside(root, path));
    if (r !== undefined) throw new LaunchError(`${where} key "path": ${path} is inside rw_paths entry ${r}, where the box would write it directly; keep it out of rw_paths`);
    if (out.some((f) => f.path === path)) throw new LaunchError(`${where} key "path": ${path} is already another state file`);
    if (t.format !== 'json') throw new LaunchError(`${where} key "format": expected "json" (the only format merged so far), got ${JSON.stringify(t.format)}`);
    for (const p of t.alsoAt) {
      homePath(name, 'also_at', p);
      if (!rw.some((root) => isInside(root, p) && p !== root)) throw new LaunchError(`${where} key "also_at": ${p} is not inside any rw_paths entry; list only files in the agent's read-write trees`);
    }
    try {
      compileKeyRules(t.boxKeys, t.hostOnlyKeys);
    } catch (e) {
      throw new LaunchError(`${where} key ${(e as Error).message}`);
    }
    out.push({ name, path, format: 'json', alsoAt: t.alsoAt, boxKeys: t.boxKeys, hostOnlyKeys: t.hostOnlyKeys });
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

export function loadProfile(name: string): AgentProfile {
  const all = loadProfiles();
  for (const p of all.values()) if (name === p.name || p.aliases.includes(name)) return p;
  const names = [...all.values()].flatMap((p) => [p.name, ...p.aliases]);
  throw new LaunchError(`--profile ${name}: unknown profile; ${didYouMean(name, names)} (available: ${[...all.keys()].join(', ')})`);
}


// ---------------------------------------------------------------- discovery

/** Trees the box already has read-only: nothing to mount for what lives there. */
const SYSTEM_TREES = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
const isUnder = (p: string, root: string) => {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};
export const inSystemTree = (p: string) => SYSTEM_TREES.some((t) => isUnder(p, t));

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
 * The read-only mounts that make `file` (a real path, reached from
 * launcherDir) run in a box: its installation, the deepest common ancestor
 * of both unless that is too broad; nothing for what lives in a system tree.
 */
export function installMounts(launcherDir: string, file: string, homes: string[]): string[] {
  if (inSystemTree(file)) return [];
  const realLauncherDir = existsSync(launcherDir) ? realpathSync(launcherDir) : launcherDir;
  let common = commonAncestor(realLauncherDir, dirname(file));
  // A prefix's bin directory stands for the prefix (its lib/ and share/ come with it).
  if (basename(common) === 'bin' && !tooBroad(dirname(common), homes)) common = dirname(common);
  if (!tooBroad(common, homes)) return [common];
  const inst = installDir(file);
  const out = [tooBroad(inst, homes) ? dirname(file) : inst];
  if (!inSystemTree(launcherDir) && !isUnder(launcherDir, out[0]!)) out.push(launcherDir);
  return out;
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
  const addInstall = (launcherDir: string, file: string) => out.ro.push(...installMounts(launcherDir, file, homes));
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

/** A route as latchgate.toml configures it, with the file and section that did (origin). */
export type ConfigCredential = Omit<ConfigRoute, 'profileOrigin' | 'from'>;

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
  /** The profile's [gate_tools] wiring, when applied: its arguments, variables and the files it merged into. */
  gateTools: { args: string[]; env: Record<string, string>; files: string[] } | null;
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

/**
 * Whether key_source resolves on the host now, as far as can be told without
 * reading a secret: an env: variable is set. A sops:, file: or cmd: source
 * counts as resolving (it is read once, at launch, where a failure stops the
 * launch): an optional route is dropped only for an unset variable.
 */
const keyResolves = (keySource: string | undefined, env: NodeJS.ProcessEnv) => {
  if (!keySource) return false;
  const m = /^env:(.+)$/.exec(keySource);
  return m ? (env[m[1]!] ?? '') !== '' : true;
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
  flags: { allowHost: string[]; ro: string[]; rw: string[]; passEnv: string[]; gateTools?: boolean },
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
  const merged = new Set<string>();
  const apply = (part: { env: Record<string, string>; args: string[]; files: Record<string, string> }, fill: (text: string) => string) => {
    for (const [k, v] of Object.entries(part.env)) env[k] = fill(v);
    args.push(...part.args.map(fill));
    for (const [fname, fragment] of Object.entries(part.files)) {
      docs.set(fname, deepMerge(docs.get(fname)!, JSON.parse(fill(fragment)) as Record<string, unknown>));
      merged.add(fname);
    }
  };
  for (const [name, r] of profile?.credentials ?? []) {
    if (credentials.has(name)) apply({ ...r, env: r.placeholderEnv }, (t) => t.replaceAll('{route_url}', routeUrl(name)));
  }
  const gt = profile?.gateTools;
  const wired = !!gt && (gt.args.length > 0 || Object.keys(gt.env).length > 0 || Object.keys(gt.files).length > 0);
  const gateTools = wired && flags.gateTools !== false ? { args: gt.args, env: gt.env, files: Object.keys(gt.files).map((n) => profile!.files.get(n)!.path) } : null;
  if (gateTools) apply(gt!, (t) => t);
  const files: GeneratedFile[] = [];
  for (const [fname, f] of profile?.files ?? []) {
    // A file no variable names is read only through an argument, which only a merged fragment brings.
    if (f.env === undefined && !merged.has(fname)) continue;
    if (f.env !== undefined) env[f.env] = f.path;
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
    gateTools,
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
    gate_tools: eff.gateTools ? { mcp_server: { name: 'latchgate', command: BOX_MCP_COMMAND }, args: eff.gateTools.args, env: eff.gateTools.env, files: eff.gateTools.files } : null,
    dropped_optional_routes: eff.dropped,
    discovery: eff.discovery,
  };
}

export function listProfiles() {
  return [...loadProfiles().values()].map((p) => ({ name: p.name, aliases: p.aliases, command: p.command, description: p.description }));
}
