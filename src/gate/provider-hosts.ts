// The host functions one provider call may reach, made for that call's action
// and principal only: an HTTP host limited to the action's egress allowlist,
// methods and declared secrets, which it fills only in the request the gate
// rendered from the action's template (src/providers/host-http.ts), an fs host under
// the call's root with the action's globs and operations
// (src/providers/host-fs.ts), and a log. Only what the manifest's
// required_imports names is made; the runtime links nothing else.
import type { SecureContext } from 'node:tls';
import type { ProviderConfig } from '../config/latchgate-toml.js';
import type { Pin } from '../egress/ssrf.js';
import type { UpstreamProxy } from '../egress/upstream-proxy.js';
import { FsHost, type ProtectedDir } from '../providers/host-fs.js';
import { createHttpHost, type RecordingHttpHost } from '../providers/host-http.js';
import type { FsOperation } from '../providers/host-fs.js';
import type { LogLevel } from '../providers/runtime-types.js';
import { GateError } from './errors.js';
import type { GateSecrets } from './secret-sources.js';
import type { ExpandedRequest } from './templates.js';
import type { ActionManifest } from './types.js';

/** What the operator configured for every call's hosts. */
export interface ProviderHostSettings {
  /** [gate.resolve], parsed. */
  pins: ReadonlyMap<string, Pin>;
  /** The default roots and [gate] extra_ca_certs (secureContextFor), built at the first call that needs them: parsing the roots costs a gate that never calls out (a command's) about 60 ms. */
  trust: () => SecureContext;
  /** [gate] upstream_proxy, else the gate's HTTPS_PROXY: the HTTP host's way out (null: direct). */
  upstreamProxy?: UpstreamProxy | null;
  /** The SOPS store, then LATCHGATE_SECRET_* (src/gate/secret-sources.ts). */
  secrets: GateSecrets;
  /** [providers.fs]; a box's gate sets root to its workspace when none is configured. */
  fs?: ProviderConfig['fs'];
  /** The secrets file and its age keys, latchgate's configuration files: never read, written or deleted through the fs host (FsHostOptions.protectedFiles). */
  protectedFiles: readonly string[];
  /** latchgate's state, configuration and runtime directories: nothing in them is served by the fs host (FsHostOptions.protectedDirs); where its code runs from: never written (src/gate/install-paths.ts). */
  protectedDirs: readonly ProtectedDir[];
}

/** One log line a provider wrote, and when (src/gate/provider-log.ts keeps them). */
export interface ProviderLogLine {
  time: string;
  level: LogLevel;
  message: string;
  fields: [string, string][];
}

export interface CallHosts {
  http?: RecordingHttpHost;
  fs?: FsHost;
  log: (level: LogLevel, message: string, fields: [string, string][]) => void;
  readonly logs: ProviderLogLine[];
}

const has = (m: ActionManifest, iface: string) => m.required_imports.some((i) => i.replace(/@[^/]*$/, '') === iface);

/** The root of a call: the action's, else the principal's, else the default; a GateError fs_root_missing when none is configured. */
export function fsRootFor(fs: ProviderConfig['fs'] | undefined, actionId: string, principal: string): string {
  const root = fs?.actions?.get(actionId) ?? fs?.principals?.get(principal) ?? fs?.root;
  if (root === undefined) {
    throw new GateError('fs_root_missing', `${actionId} reads or writes files, but no file root is configured for it: set [providers.fs] root (or [providers.fs.principals] ${principal} = "...", or [providers.fs.actions] "${actionId}" = "...") in latchgate.toml`, { action_id: actionId });
  }
  return root;
}

/** The body text of a rendered template, as the provider's task carries it (src/gate/stages/start-provider.ts). */
export function callBodyText(call: ExpandedRequest): string | undefined {
  return call.body === undefined ? undefined : JSON.stringify(call.body);
}

/**
 * The hosts of one call of `m` by `principal`; `call` is the gate's rendering
 * of the action's template for it (the only request a secret is filled in).
 * Throws GateError (before anything runs) when the configuration cannot serve the action.
 */
export function callHosts(s: ProviderHostSettings, m: ActionManifest, principal: string, call?: ExpandedRequest): CallHosts {
  const logs: ProviderLogLine[] = [];
  const out: CallHosts = { logs, log: (level, message, fields) => void logs.push({ time: new Date().toISOString(), level, message, fields }) };
  if (has(m, 'latchgate:io/http')) {
    out.http = createHttpHost({
      allowed_domains: m.egress.allowed_domains,
      allowed_methods: m.egress.allowed_methods.length ? m.egress.allowed_methods : m.template ? [m.template.method] : [],
      pins: s.pins,
      trust: s.trust(),
      upstream_proxy: s.upstreamProxy ?? null,
      timeout_ms: m.resource_limits.timeout_seconds * 1000,
      max_response_bytes: m.resource_limits.max_host_response_bytes,
      max_request_bytes: m.io.max_request_bytes,
      secrets: s.secrets,
      declared_secrets: m.secrets.map((x) => x.name),
      ...(call ? { secret_template: { method: call.method, url: call.url, headers: call.headers, body: callBodyText(call) } } : {}),
    });
  }
  if (has(m, 'latchgate:io/fs')) {
    if (!m.fs) throw new GateError('invalid_request', `${m.action_id} imports latchgate:io/fs but its manifest has no fs section`);
    out.fs = new FsHost({
      root: fsRootFor(s.fs, m.action_id, principal),
      allowed_operations: m.fs.allowed_operations as FsOperation[],
      allowed_paths: m.fs.allowed_paths,
      denied_paths: m.fs.denied_paths,
      max_file_bytes: m.fs.max_file_bytes,
    }, { protectedFiles: s.protectedFiles, protectedDirs: s.protectedDirs });
  }
  return out;
}
