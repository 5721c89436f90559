// What would allow a refused connection, said once for everyone who tells it:
// the CONNECT proxy's refusal (read by the agent in the box), the box's
// resolver (its Extended DNS Error text) and the launcher's summary of the
// run's denials (read by the user who started the box). The box is told what
// to ask for; the user also gets what only the host knows (the addresses a
// name resolved to, the upstream proxy), which never goes into the box.
import { upstreamProxyFix } from './upstream-proxy.js';

/** Who reads the advice: the agent inside the box, or the user who started it. */
export type Audience = 'box' | 'operator';

export interface RefusedTarget {
  /** The event's reason (connect-proxy.ts MESSAGES, box-dns.ts, credential-proxy.ts). */
  reason: string;
  /** A validated host name (or null when the request named none). */
  host: string | null;
  port?: number | null;
  /** Addresses the host resolved to (operator only). */
  addresses?: readonly string[];
  /** The ports the CONNECT proxy allows. */
  allowPorts?: readonly number[];
  /** The box has an HTTPS proxy (an allowlist or credential routes). */
  proxied?: boolean;
  /** A box-dns refusal: the name is one the CONNECT proxy would allow. */
  allowlisted?: boolean;
  /** The upstream proxy the exit went through (redacted URL and where it was configured; operator only). */
  upstreamProxy?: { url: string; source: string } | null;
}

/** Host names and route names as they may be printed: what the proxy and the resolver validated. */
const PRINTABLE = /^[a-z0-9_.-]{1,253}$/;

export function printableName(s: unknown): s is string {
  return typeof s === 'string' && PRINTABLE.test(s);
}

/** "ip:port" as a pin is written ([ipv6]:port). */
function pinAddress(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * What would allow it: a flag, a configuration line, or what to do instead;
 * null when nothing the operator sets would (a malformed request, a closed
 * proxy, an unreachable host).
 */
export function denialFix(t: RefusedTarget, audience: Audience): string | null {
  const host = printableName(t.host) ? t.host : null;
  const port = t.port ?? 443;
  const allowHost = host ? `--allow-host ${host}` : null;
  switch (t.reason) {
    case 'host_not_allowed':
    case 'egress_disabled':
      if (!allowHost) return null;
      return audience === 'operator' ? `${allowHost} (or "${host}" in allow_hosts of [sandbox.agent])` : allowHost;
    case 'port_not_allowed':
      return `allow_ports = [${[...new Set([...(t.allowPorts ?? [443]), port])].join(', ')}] in [sandbox.network]`;
    case 'address_not_allowed': {
      if (!host) return null;
      const address = audience === 'operator' ? t.addresses?.[0] : undefined;
      // A pin is connected to without the address check: the user decides that this name may reach that address.
      return address ? `[sandbox.network.resolve] "${host}" = "${pinAddress(address, port)}"` : `a pin for ${host} in [sandbox.network.resolve] (it resolves to an address the box may not reach)`;
    }
    case 'literal_ip':
      return 'name a host instead of an address (an address is only reached through a name pinned to it in [sandbox.network.resolve])';
    case 'plain_http_refused':
    case 'absolute_form_refused':
      return `use https:// (CONNECT ${host ?? 'host'}:443); plain HTTP is never forwarded`;
    case 'dns_failed':
    case 'dns_timeout':
      return host ? `check that ${host} resolves on the host, or pin it in [sandbox.network.resolve]` : null;
    case 'dns_refused':
      // The box resolves no names itself: a program reaches a host by naming it to the proxy.
      if (t.allowlisted) return 'it is allowed: connect through HTTPS_PROXY by name';
      if (!allowHost) return null;
      return `${allowHost}, then connect through HTTPS_PROXY by name${t.proxied ? '' : ' (the box then gets one)'}`;
    case 'upstream_proxy_unreachable':
    case 'upstream_proxy_refused':
    case 'upstream_proxy_timeout':
    case 'upstream_proxy_bad_answer':
      // The box is not told where the host's proxy is.
      if (audience === 'box' || !t.upstreamProxy) return "a working upstream proxy on the host (HTTPS_PROXY, or upstream_proxy in [sandbox.network])";
      return upstreamProxyFix({ display: t.upstreamProxy.url, source: t.upstreamProxy.source });
    case 'unknown_route':
      return host ? `a [sandbox.agent.credentials.${host}] section in latchgate.toml` : 'a [sandbox.agent.credentials.NAME] section in latchgate.toml';
    default:
      return null;
  }
}

/** The lines a refusal tells the box: the fix, and that only the user who started the box can apply it. */
export function boxAdvice(t: RefusedTarget): string[] {
  const fix = denialFix(t, 'box');
  if (!fix) return [];
  if (t.reason === 'dns_refused' && t.allowlisted) return [fix];
  if (t.reason === 'literal_ip' || t.reason === 'plain_http_refused' || t.reason === 'absolute_form_refused') return [`Instead: ${fix}.`];
  return [`To allow it, ask the user who started this box for: ${fix}. Nothing inside the box can change it.`];
}
