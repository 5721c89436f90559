// latchgate.toml: parsed with smol-toml, checked against one schema; unknown
// keys and wrong types are errors that name the file, the key and what was
// expected (with the nearest valid name). Found through --config,
// $LATCHGATE_CONFIG, ./.latchgate/latchgate.toml, $XDG_CONFIG_HOME and used
// only when trusted (config/trust.ts).
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LaunchError } from '../core/errors.js';
import { checkSchema, parseTomlFile, type Schema } from './toml-schema.js';

export const SCHEMA: Schema = {
  sandbox: {
    agent: {
      workspace: 'string',
      allow_hosts: 'string[]',
      ro_mounts: 'string[]',
      rw_mounts: 'string[]',
      pass_env: 'string[]',
      principal: 'string',
      credentials: { '*': { upstream: 'string', header: 'string', format: 'string', key_source: 'string', ca_file: 'string' } },
    },
    limits: { nofile: 'int', nproc: 'int', tmp_size: 'string' },
    network: { strict_net: 'bool', allow_ports: 'int[]', extra_ca_certs: 'string[]', resolve: { '*': 'string' } },
  },
  gate: {
    public_base_url: 'string',
    lease_ttl_seconds: 'int',
    max_body_bytes: 'int',
    approval_ttl_seconds: 'int',
    manifest_dirs: 'string[]',
    expose_http: 'string',
  },
  state: { dir: 'string', runtime_dir: 'string' },
  identity: { principals: { '*': { name: 'string', scopes: 'string[]' } } },
  operators: { '*': { uid: 'uint' } },
  policy: { engine: 'string', opa_wasm: 'string', opa_url: 'string', opa_timeout_ms: 'int' },
};

export interface SandboxFileConfig {
  workspace?: string;
  allowHosts: string[];
  roMounts: string[];
  rwMounts: string[];
  passEnv: string[];
  principal?: string;
  limits: { nofile?: number; nproc?: number; tmpSize?: string };
  strictNet?: boolean;
  network: { allowPorts?: number[]; extraCaCerts: string[]; resolve: Map<string, string> };
  /**
   * origin: the file and section that configured the route; profileOrigin and
   * from: set by mergeProfile for routes an agent profile defines. Error
   * messages name them.
   */
  credentials: Map<string, { upstream?: string; header?: string; format?: string; keySource?: string; caFile?: string; origin?: string; profileOrigin?: string; from?: 'profile' | 'config' | 'profile+config' }>;
}

export interface GateFileConfig {
  publicBaseUrl?: string;
  leaseTtlSeconds?: number;
  maxBodyBytes?: number;
  approvalTtlSeconds?: number;
  manifestDirs: string[];
  exposeHttp?: string;
  stateDir?: string;
  runtimeDir?: string;
  principals: Map<number, { name: string; scopes: string[] }>;
  operators: Map<string, { uid: number }>;
  policy: { engine?: string; opaWasm?: string; opaUrl?: string; opaTimeoutMs?: number };
}

export interface LatchgateConfig {
  /** The file read, or null when built-in defaults apply. */
  file: string | null;
  sandbox: SandboxFileConfig;
  gate: GateFileConfig;
}

type T = Record<string, unknown>;

export function parseConfig(file: string, text: string): LatchgateConfig {
  const doc = parseTomlFile(file, text) as T;
  checkSchema(file, doc, SCHEMA);
  return fromDocument(file, doc);
}

/**
 * --sandbox-config FILE: a standalone file whose top level holds the keys of
 * [sandbox.agent]; it replaces that section of latchgate.toml.
 */
export function loadStandaloneSandboxConfig(file: string): SandboxFileConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new LaunchError(`--sandbox-config ${file}: cannot read it (${(e as NodeJS.ErrnoException).code}); check the path`);
  }
  return parseStandaloneSandboxConfig(file, text);
}

export function parseStandaloneSandboxConfig(file: string, text: string): SandboxFileConfig {
  const doc = parseTomlFile(file, text);
  checkSchema(file, doc, (SCHEMA.sandbox as Schema).agent as Schema);
  return fromDocument(file, { sandbox: { agent: doc } }, '').sandbox;
}

/** agentSection: how [sandbox.agent] is written in the file (empty: its keys are at the top level). */
function fromDocument(file: string, doc: T, agentSection = 'sandbox.agent.'): LatchgateConfig {
  const sb = (doc.sandbox ?? {}) as Record<string, T>;
  const a = sb.agent ?? {};
  const l = sb.limits ?? {};
  const g = (doc.gate ?? {}) as T;
  const st = (doc.state ?? {}) as T;
  const pol = (doc.policy ?? {}) as T;
  const base = dirname(resolve(file));
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const principals = new Map<number, { name: string; scopes: string[] }>();
  for (const [uid, p] of Object.entries(((doc.identity ?? {}) as T).principals ?? {})) {
    if (!/^\d+$/.test(uid)) throw new LaunchError(`${file}: [identity.principals.${uid}]: expected a numeric uid as the table name`);
    const e = p as T;
    if (typeof e.name !== 'string') throw new LaunchError(`${file}: [identity.principals.${uid}] key "name": required`);
    principals.set(Number(uid), { name: e.name, scopes: (e.scopes as string[]) ?? ['tools:call'] });
  }
  const operators = new Map<string, { uid: number }>();
  for (const [name, o] of Object.entries((doc.operators ?? {}) as T)) {
    if (typeof (o as T).uid !== 'number') throw new LaunchError(`${file}: [operators.${name}] key "uid": required`);
    operators.set(name, { uid: (o as T).uid as number });
  }
  return {
    file,
    sandbox: {
      workspace: a.workspace as string | undefined,
      allowHosts: (a.allow_hosts as string[]) ?? [],
      roMounts: (a.ro_mounts as string[]) ?? [],
      rwMounts: (a.rw_mounts as string[]) ?? [],
      passEnv: (a.pass_env as string[]) ?? [],
      principal: a.principal as string | undefined,
      limits: { nofile: l.nofile as number | undefined, nproc: l.nproc as number | undefined, tmpSize: l.tmp_size as string | undefined },
      strictNet: sb.network?.strict_net as boolean | undefined,
      network: {
        allowPorts: sb.network?.allow_ports as number[] | undefined,
        extraCaCerts: ((sb.network?.extra_ca_certs as string[]) ?? []).map(rel),
        resolve: new Map(Object.entries((sb.network?.resolve ?? {}) as Record<string, string>)),
      },
      credentials: new Map(
        Object.entries((a.credentials ?? {}) as Record<string, T>).map(([name, c]) => [
          name,
          {
            upstream: c.upstream as string | undefined,
            header: c.header as string | undefined,
            format: c.format as string | undefined,
            keySource: c.key_source as string | undefined,
            caFile: c.ca_file !== undefined ? rel(c.ca_file as string) : undefined,
            origin: `${file}: [${agentSection}credentials.${name}]`,
          },
        ]),
      ),
    },
    gate: {
      publicBaseUrl: g.public_base_url as string | undefined,
      leaseTtlSeconds: g.lease_ttl_seconds as number | undefined,
      maxBodyBytes: g.max_body_bytes as number | undefined,
      approvalTtlSeconds: g.approval_ttl_seconds as number | undefined,
      manifestDirs: ((g.manifest_dirs as string[]) ?? []).map(rel),
      exposeHttp: g.expose_http as string | undefined,
      stateDir: st.dir !== undefined ? rel(st.dir as string) : undefined,
      runtimeDir: st.runtime_dir !== undefined ? rel(st.runtime_dir as string) : undefined,
      principals,
      operators,
      policy: {
        engine: pol.engine as string | undefined,
        opaWasm: pol.opa_wasm !== undefined ? rel(pol.opa_wasm as string) : undefined,
        opaUrl: pol.opa_url as string | undefined,
        opaTimeoutMs: pol.opa_timeout_ms as number | undefined,
      },
    },
  };
}

/** Backwards-compatible entry point for the sandbox part alone. */
export function parseSandboxConfig(file: string, text: string): SandboxFileConfig {
  return parseConfig(file, text).sandbox;
}

export function emptyConfig(): LatchgateConfig {
  return parseConfig('(defaults)', '');
}
