// Configuration is used only when the user trusted it. A file a box could
// have written (the project's .latchgate/latchgate.toml, a --config or
// --sandbox-config file in a repository, a $LATCHGATE_CONFIG path in some
// workspace) must not widen the next box on its own: a file that grants more
// than the defaults (config/grants.ts) is used only when the trust store
// (config/trust-store.ts) holds its real path with the SHA-256 of exactly
// this content, recorded by `latchgate trust`. The user-level config under
// $XDG_CONFIG_HOME/latchgate/ needs no record while it is the user's own
// (owned by them, writable by no one else).
import { closeSync, existsSync, fstatSync, openSync, readFileSync, realpathSync, constants as fsc } from 'node:fs';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { trustedPathsOf, type TrustedPath } from './trusted-paths.js';
import { LaunchError } from '../core/errors.js';
import { shellWord } from '../core/shell-word.js';
import { diffGrants, grantsOf, type ConfigKind } from './grants.js';
import { projectConfigFile, userConfigFile } from './paths.js';
import { emptyConfig, LATCHGATE_TOML, parseConfig, parseStandaloneSandboxConfig, type LatchgateConfig, type SandboxFileConfig } from './latchgate-toml.js';
import { parseTomlFile } from './toml-schema.js';
import { readTrustStore, trustStorePath, type TrustEntry } from './trust-store.js';

/** How the file came to be read; error messages start with it. */
export type ConfigOrigin = '--config' | '$LATCHGATE_CONFIG' | 'project config' | 'user config' | '--sandbox-config' | 'latchgate trust';

export interface ConfigSource {
  origin: ConfigOrigin;
  real: string;
  text: string;
  sha256: string;
  /** Owner and mode of the file read. */
  uid: number;
  mode: number;
}

type Env = NodeJS.ProcessEnv;

/** Reads a configuration file once, by its real path (the hash, the grants and the parse all see the same bytes). */
export function readConfigSource(given: string, origin: ConfigOrigin, cwd = process.cwd()): ConfigSource {
  const fail = (code: string | undefined) => new LaunchError(`${origin === 'project config' || origin === 'user config' ? '' : `${origin} `}${given}: cannot read it (${code}); check the path`);
  let real: string;
  let fd: number;
  try {
    real = realpathSync(resolve(cwd, given));
    fd = openSync(real, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (e) {
    throw fail((e as NodeJS.ErrnoException).code);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw fail('EISDIR');
    const text = readFileSync(fd, 'utf8');
    return { origin, real, text, sha256: createHash('sha256').update(text).digest('hex'), uid: st.uid, mode: st.mode };
  } finally {
    closeSync(fd);
  }
}

const AGENT_KEYS = Object.keys(LATCHGATE_TOML.fields.sandbox.fields.agent.fields);

/** A file whose top level holds only [sandbox.agent] keys is a --sandbox-config file. */
export function kindOf(src: ConfigSource): ConfigKind {
  const keys = Object.keys(parseTomlFile(src.real, src.text));
  return keys.length > 0 && keys.every((k) => AGENT_KEYS.includes(k)) ? 'sandbox-config' : 'latchgate.toml';
}

function realOrUndefined(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

/** The user's own config: at $XDG_CONFIG_HOME/latchgate/latchgate.toml, theirs, and writable by no one else. */
function isUserConfig(src: ConfigSource, env: Env): boolean {
  return src.real === realOrUndefined(userConfigFile(env)) && src.uid === process.getuid!() && (src.mode & 0o022) === 0;
}

export interface Assessment {
  source: ConfigSource;
  grants: string[];
  /**
   * user-config: the user's own file; grant-free: grants nothing beyond the
   * defaults; trusted: this content was trusted and grants what it did then;
   * untrusted: never trusted; changed: other content than the one trusted;
   * retargeted: the content trusted, but a path it names now leads elsewhere.
   */
  status: 'user-config' | 'grant-free' | 'trusted' | 'untrusted' | 'changed' | 'retargeted';
  /** The trust store's entry for this path, if any. */
  entry?: TrustEntry;
}

const USABLE = new Set<Assessment['status']>(['user-config', 'grant-free', 'trusted']);

/** Parses the source (schema errors first) and compares what it grants with the trust store. */
export function assess(src: ConfigSource, kind: ConfigKind, env: Env = process.env, cwd = process.cwd()): Assessment {
  if (kind === 'sandbox-config') parseStandaloneSandboxConfig(src.real, src.text);
  else parseConfig(src.real, src.text);
  const grants = grantsOf(parseTomlFile(src.real, src.text), kind, { file: src.real, cwd });
  if (isUserConfig(src, env)) return { source: src, grants, status: 'user-config' };
  if (grants.length === 0) return { source: src, grants, status: 'grant-free' };
  const entry = readTrustStore(trustStorePath(env)).find((e) => e.path === src.real);
  const same = entry !== undefined && entry.grants.length === grants.length && entry.grants.every((g, i) => g === grants[i]);
  const status = entry === undefined ? 'untrusted' : entry.sha256 !== src.sha256 ? 'changed' : same ? 'trusted' : 'retargeted';
  return { source: src, grants, status, ...(entry ? { entry } : {}) };
}

/**
 * What it grants as a diff: "+ grant" new, "  grant" as before, "- grant" no
 * longer; against the trusted version when there is one, else the defaults.
 */
export function grantDiffLines(a: Assessment): string[] {
  const before = a.status === 'untrusted' || !a.entry ? [] : a.entry.grants;
  const { removed } = diffGrants(before, a.grants);
  return [...a.grants.map((g) => `${before.includes(g) ? ' ' : '+'} ${g}`), ...removed.map((g) => `- ${g}`)];
}

function trustCommandFor(src: ConfigSource): string {
  return `latchgate trust --sha256 ${src.sha256} ${shellWord(src.real)}`;
}

function refusal(a: Assessment): LaunchError {
  const src = a.source;
  const why = {
    untrusted: ['is not trusted and grants more than the defaults', 'against the defaults'],
    changed: [`changed since you trusted it (${a.entry?.trusted_at})`, 'against the version you trusted'],
    retargeted: ['is unchanged since you trusted it, but a path it names now leads elsewhere or a certificate file it names changed', 'against what it granted when you trusted it'],
  }[a.status as 'untrusted' | 'changed' | 'retargeted'];
  const lines = grantDiffLines(a);
  return new LaunchError(
    [
      `${src.origin} ${src.real} ${why[0]}; nothing was run (a box may have written this file).`,
      `What it would grant (${why[1]}${lines.every((l) => l.startsWith(' ')) ? ': no change' : ''}):`,
      ...lines.map((l) => `  ${l}`),
      'Read the file; to use this exact content, trust it:',
      `  ${trustCommandFor(src)}`,
    ].join('\n'),
  );
}

/** Throws the refusal (exit 125) unless the file may be used. */
function requireTrusted(a: Assessment): void {
  if (!USABLE.has(a.status)) throw refusal(a);
}

export interface LoadedConfig {
  config: LatchgateConfig;
  /** Real paths of the files read (kept read-only inside the box). */
  files: string[];
  /** What they name that the host trusts or runs (kept read-only inside the box too). */
  trustedPaths: TrustedPath[];
}

/**
 * --config FILE, else $LATCHGATE_CONFIG, else ./.latchgate/latchgate.toml,
 * else $XDG_CONFIG_HOME/latchgate/latchgate.toml, else the defaults; the file
 * is used only when it may be (requireTrusted).
 */
export function loadTrustedConfig(explicit?: string, env: Env = process.env, cwd = process.cwd()): LoadedConfig {
  const named: [string, ConfigOrigin][] = explicit ? [[explicit, '--config']] : env.LATCHGATE_CONFIG ? [[env.LATCHGATE_CONFIG, '$LATCHGATE_CONFIG']] : [];
  const found: [string, ConfigOrigin][] = [[projectConfigFile(cwd), 'project config'], [userConfigFile(env), 'user config']];
  const pick = named[0] ?? found.find(([f]) => existsSync(f));
  if (!pick) return { config: { ...emptyConfig(), file: null }, files: [], trustedPaths: [] };
  const src = readConfigSource(pick[0], pick[1], cwd);
  requireTrusted(assess(src, 'latchgate.toml', env, cwd));
  return { config: parseConfig(src.real, src.text), files: [src.real], trustedPaths: trustedPathsOf(parseTomlFile(src.real, src.text), src.real, cwd) };
}

/** --sandbox-config FILE, used only when it may be. */
export function loadTrustedSandboxConfig(file: string, env: Env = process.env, cwd = process.cwd()): { agent: SandboxFileConfig; file: string; trustedPaths: TrustedPath[] } {
  const src = readConfigSource(file, '--sandbox-config', cwd);
  requireTrusted(assess(src, 'sandbox-config', env, cwd));
  const trustedPaths = trustedPathsOf({ sandbox: { agent: parseTomlFile(src.real, src.text) } }, src.real, cwd);
  return { agent: parseStandaloneSandboxConfig(src.real, src.text), file: src.real, trustedPaths };
}
