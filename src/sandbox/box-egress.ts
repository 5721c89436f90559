// The box's two network exits, served by the launcher on listening sockets
// the box's init made inside its network namespace: the allowlisted CONNECT
// proxy (127.0.0.1:3128 inside) and the credential reverse proxy
// (127.0.0.1:3129 inside), which adds keys the box never holds. Both reach
// the internet through the host's upstream proxy when it has one
// (src/egress/upstream-proxy.ts); extra_ca_certs are trusted by both and,
// through a CA bundle generated for the run, by the tools in the box.
import type { SandboxFileConfig } from '../config/latchgate-toml.js';
import { HostAllowlist } from '../egress/allowlist.js';
import type { ConnectProxy } from '../egress/connect-proxy.js';
import type { CredentialProxy, CredentialRoute } from '../egress/credential-proxy.js';
import { validateRoute } from '../egress/credential-proxy.js';
import { resolveKeySource, type KeySourceContext } from '../secrets/key-source.js';
import { parsePins, type Pin } from '../egress/ssrf.js';
import type { AuditEventInput } from '../core/audit-event.js';
import { listenInBoxDir } from './box-dir.js';
import { LaunchError } from '../core/errors.js';
import { BOX_CA_BUNDLE, BOX_CREDENTIAL_PORT, BOX_PROXY_PORT } from '../core/box.js';
import { readExtraCaFiles, systemCaBundle } from '../egress/trust-roots.js';
import { describeUpstreamProxy, upstreamProxyFrom, type UpstreamProxy } from '../egress/upstream-proxy.js';

/** The variables that point TLS clients in the box (OpenSSL, curl, Node, Python requests, git) at the CA bundle. */
export const CA_BUNDLE_ENV = ['SSL_CERT_FILE', 'NODE_EXTRA_CA_CERTS', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO'] as const;

/** The run's CA bundle: the system's CAs and the extra ones, written into the box at BOX_CA_BUNDLE. */
export interface CaBundle {
  content: string;
  /** The system bundle it starts with (null: Node's bundled roots). */
  system: string | null;
  /** The extra_ca_certs files it adds. */
  extra: string[];
  /** Certificates it adds. */
  extraCertificates: number;
}

export interface EgressPlan {
  allowHosts: string[];
  allowPorts: number[];
  pins: Map<string, Pin>;
  /** The extra_ca_certs files' certificates, read and checked when the plan was made. */
  extraCaCerts: string[];
  /** The box's CA bundle, when extra_ca_certs names any file. */
  caBundle: CaBundle | null;
  /** The host's own proxy both exits go through; null: they connect directly. */
  upstreamProxy: UpstreamProxy | null;
  /** Routes with their keys resolved on the host (never printed: see describeEgress()), and where each key came from. */
  routes: (CredentialRoute & { keySource: string })[];
  /** What the box's environment gets. */
  env: Record<string, string>;
  /** Files written into the box (the CA bundle). */
  files: { path: string; content: string }[];
  listenPorts: number[];
}

/**
 * Builds the egress part of a launch from configuration; keys are read on the
 * host here (key_source), and the CA files and the upstream proxy (config over
 * hostEnv) are checked even for a box that ends up without exits.
 */
export async function planEgress(allowHosts: string[], file: SandboxFileConfig, keys: KeySourceContext, source: string, hostEnv: NodeJS.ProcessEnv): Promise<EgressPlan | undefined> {
  const caField = `${source}: [sandbox.network] extra_ca_certs`;
  const caFiles = file.network.extraCaCerts;
  const extraCaCerts = readExtraCaFiles(caFiles, caField).flat();
  const upstreamProxy = upstreamProxyFrom({ upstreamProxy: file.network.upstreamProxy, noProxy: file.network.noProxy, section: `${source}: [sandbox.network]` }, hostEnv);
  if (allowHosts.length === 0 && file.credentials.size === 0) return undefined;
  const pins = parsePins(file.network.resolve, `${source}: [sandbox.network.resolve]`);
  const routes: EgressPlan['routes'] = [];
  for (const [name, c] of file.credentials) {
    // Name the section that defined the route: the profile's, latchgate.toml's, or both.
    const own = c.origin ?? `${source}: [sandbox.agent.credentials.${name}]`;
    const where = !c.profileOrigin ? own : c.from === 'profile' ? c.profileOrigin : `${own} (over ${c.profileOrigin})`;
    const missing = (['upstream', 'header', 'keySource'] as const).find((k) => !c[k]);
    if (missing) throw new LaunchError(`${where} key "${missing === 'keySource' ? 'key_source' : missing}": required`);
    let key: string | undefined;
    try {
      key = await resolveKeySource(c.keySource!, keys, '"key_source"');
    } catch (e) {
      throw new LaunchError(`${where} key ${(e as Error).message}`);
    }
    if (key === undefined) {
      const fix = c.keySource!.startsWith('sops:') ? `add it with latchgate secrets set ${c.keySource!.slice(5)}` : 'export it before launching';
      throw new LaunchError(`${where}: ${c.keySource} is not set on the host; ${fix} (the box never sees it)`);
    }
    const route = { name, upstream: c.upstream!, header: c.header!, format: c.format ?? '{}', key, keySource: c.keySource!, ...(c.caFile ? { caFile: c.caFile } : {}) };
    try {
      validateRoute(route);
    } catch (e) {
      throw new LaunchError(`${where}: ${(e as Error).message}`);
    }
    routes.push(route);
  }
  const proxy = `http://127.0.0.1:${BOX_PROXY_PORT}`;
  const env: Record<string, string> = {
    HTTPS_PROXY: proxy,
    https_proxy: proxy,
    HTTP_PROXY: proxy,
    http_proxy: proxy,
    // Local base URLs (the credential routes, the agent's own test servers) must not loop through the proxy.
    NO_PROXY: 'localhost,127.0.0.1,::1',
    no_proxy: 'localhost,127.0.0.1,::1',
  };
  for (const r of routes) env[`${r.name.toUpperCase().replace(/-/g, '_')}_BASE_URL`] = `http://127.0.0.1:${BOX_CREDENTIAL_PORT}/${r.name}`;
  let caBundle: CaBundle | null = null;
  if (caFiles.length > 0) {
    // TLS through the CONNECT tunnel is the box's own, end to end: its tools must trust what the operator trusts.
    const system = systemCaBundle();
    caBundle = { content: `${system.pem.trimEnd()}\n${extraCaCerts.join('\n')}\n`, system: system.path, extra: [...caFiles], extraCertificates: extraCaCerts.length };
    for (const name of CA_BUNDLE_ENV) env[name] = BOX_CA_BUNDLE;
  }
  return {
    allowHosts,
    allowPorts: file.network.allowPorts ?? [443],
    pins,
    extraCaCerts,
    caBundle,
    upstreamProxy,
    routes,
    env,
    files: caBundle ? [{ path: BOX_CA_BUNDLE, content: caBundle.content }] : [],
    listenPorts: [BOX_PROXY_PORT, BOX_CREDENTIAL_PORT],
  };
}

/** The plan as --dry-run prints it: route names, upstreams and where each key comes from, never a key. */
export function describeEgress(p: EgressPlan) {
  return {
    allow_hosts: p.allowHosts,
    allow_ports: p.allowPorts,
    pinned: Object.fromEntries([...p.pins].map(([h, pin]) => [h, `${pin.ip}:${pin.port}`])),
    connect_proxy: `127.0.0.1:${BOX_PROXY_PORT}`,
    credential_proxy: `127.0.0.1:${BOX_CREDENTIAL_PORT}`,
    routes: p.routes.map((r) => ({ name: r.name, upstream: r.upstream, header: r.header, key_source: r.keySource })),
    // Redacted: the proxy's credentials are never printed.
    upstream_proxy: p.upstreamProxy ? describeUpstreamProxy(p.upstreamProxy) : null,
    ca_bundle: p.caBundle ? { path: BOX_CA_BUNDLE, system: p.caBundle.system ?? "Node's bundled roots", extra_ca_certs: p.caBundle.extra, extra_certificates: p.caBundle.extraCertificates, env: [...CA_BUNDLE_ENV] } : null,
  };
}

export class BoxEgress {
  private connect: ConnectProxy | undefined;
  private credentials: CredentialProxy | undefined;

  constructor(private readonly plan: EgressPlan, private readonly record: (e: AuditEventInput) => void) {}

  /**
   * Starts the proxies before the box exists, with the CONNECT proxy also on
   * a Unix socket (mounted at /run/latchgate/proxy.sock) for clients that
   * speak to a socket path rather than to 127.0.0.1.
   */
  async start(proxySocket: string): Promise<void> {
    const [{ ConnectProxy }, { CredentialProxy }] = await Promise.all([import('../egress/connect-proxy.js'), import('../egress/credential-proxy.js')]);
    const upstreamProxy = this.plan.upstreamProxy;
    this.connect = new ConnectProxy({ allowlist: new HostAllowlist(this.plan.allowHosts), allowPorts: this.plan.allowPorts, pinned: this.plan.pins, record: this.record, upstreamProxy });
    this.credentials = new CredentialProxy({
      routes: this.plan.routes,
      record: this.record,
      extraCaCerts: this.plan.extraCaCerts,
      upstreamProxy,
      resolve: (host) => {
        const pin = this.plan.pins.get(host);
        return pin ? { host: pin.ip, port: pin.port } : undefined;
      },
    });
    const connect = this.connect;
    // In the box's socket directory: mode and group from the bind itself (box-dir.ts).
    await listenInBoxDir(proxySocket, () => connect.listenUnix(proxySocket));
  }

  /** Serves the two listening sockets the box's init made (in plan.listenPorts order). */
  async serve(fds: number[]): Promise<void> {
    if (!this.connect || !this.credentials) throw new Error('the egress proxies were not started');
    await Promise.all([this.connect.listenFd(fds[0]!), this.credentials.listenFd(fds[1]!)]);
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.connect?.close(), this.credentials?.close()]);
  }
}
