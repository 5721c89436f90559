// Where a provider's HTTP request may go: the URL read strictly, before any
// URL parser can fold or reinterpret it, and checked with the CONNECT proxy's
// rules (src/egress/allowlist.ts): the host normalised the same way and
// matched against the same allowlist, literal IPs refused in every spelling,
// no userinfo, and the port one of the allowed ports.
import { HostAllowlist, isLiteralIp, normalizeConnectHost } from '../egress/allowlist.js';
import { HostIoError } from './host-error.js';

/** Longer URLs are refused (no API needs more; RFC 9110 §4.1 recommends supporting 8000 octets). */
export const MAX_URL_LENGTH = 8192;

export interface HttpTarget {
  scheme: 'https' | 'http';
  /** The normalised host name (what the allowlist matched, what is resolved, what the certificate must name). */
  host: string;
  /** The port the URL names (its scheme's default when it names none). */
  port: number;
  /** Path and query as sent in the request line (the fragment is never sent). */
  path: string;
  /** The URL with the normalised host and without its fragment: what the evidence records. */
  url: string;
  /** The Host header: the host, and the port when it is not the scheme's default. */
  hostHeader: string;
}

export interface TargetRules {
  allowlist: HostAllowlist;
  ports: ReadonlySet<number>;
  /** Whether plain http:// may go to this (normalised) host. */
  plainHttp(host: string): boolean;
}

// Spaces, controls, invisible format characters: the WHATWG parser drops some
// (tab, newline) and trims others, so the text checked would not be the URL
// used. A backslash is a "/" to it in http(s) URLs.
const REFUSED_CHARS = /[\p{Z}\p{C}\s\\]/u;
const SCHEME = /^(https?):\/\//i;
const PORT = /^[1-9][0-9]{0,4}$/;

/** Throws HostIoError(code) with a message that names what was expected. */
function refuse(code: string, message: string): never {
  throw new HostIoError(code, message);
}

/**
 * The target of url, or a HostIoError: bad_url, secret_not_allowed,
 * scheme_not_allowed, userinfo_refused, literal_ip, host_not_allowed,
 * port_not_allowed, plain_http_refused.
 */
export function parseHttpTarget(url: unknown, rules: TargetRules): HttpTarget {
  if (typeof url !== 'string' || url === '') return refuse('bad_url', 'the URL must be a non-empty string such as "https://api.example.com/v1/items"');
  if (url.length > MAX_URL_LENGTH) return refuse('bad_url', `the URL is longer than ${MAX_URL_LENGTH} characters`);
  if (/\{\{\s*secret\s*:/i.test(url) || /%7b%7b\s*secret/i.test(url)) {
    return refuse('secret_not_allowed', 'a {{secret:NAME}} placeholder is filled only in header values, never in the URL');
  }
  if (REFUSED_CHARS.test(url)) return refuse('bad_url', 'the URL contains a space, a control or invisible character, or a backslash');
  const scheme = SCHEME.exec(url);
  if (!scheme) return refuse('scheme_not_allowed', 'only https:// URLs are allowed');
  const kind = (scheme[1] as string).toLowerCase() as 'https' | 'http';
  const rest = url.slice(scheme[0].length);
  const end = rest.search(/[/?#]/);
  const authority = end === -1 ? rest : rest.slice(0, end);
  if (authority.includes('@')) return refuse('userinfo_refused', 'the URL may not carry userinfo ("user:password@"); credentials go in {{secret:NAME}} header values');
  if (authority.startsWith('[') || authority.includes(']')) return refuse('literal_ip', 'a literal IP address is refused; name a host in the allowlist');

  const colon = authority.lastIndexOf(':');
  const rawHost = colon === -1 ? authority : authority.slice(0, colon);
  const defaultPort = kind === 'https' ? 443 : 80;
  let port = defaultPort;
  if (colon !== -1) {
    const p = authority.slice(colon + 1);
    if (!PORT.test(p) || Number(p) > 65535) return refuse('bad_url', `bad port ${JSON.stringify(p.slice(0, 16))} (expected 1-65535 in decimal, without leading zeros)`);
    port = Number(p);
  }
  if (rawHost === '') return refuse('bad_url', 'the URL has no host');
  if (isLiteralIp(rawHost)) return refuse('literal_ip', 'a literal IP address is refused; name a host in the allowlist');
  const host = normalizeConnectHost(rawHost);
  if (host === null) return refuse('bad_url', `not a valid host name: ${JSON.stringify(rawHost.slice(0, 253))}`);
  if (!rules.allowlist.matches(host)) {
    const allowed = rules.allowlist.entries();
    return refuse('host_not_allowed', `${host} is not in the action's egress.allowed_domains (${allowed.length ? allowed.join(', ') : 'none'})`);
  }
  if (!rules.ports.has(port)) return refuse('port_not_allowed', `port ${port} is not allowed (allowed: ${[...rules.ports].join(', ')})`);
  if (kind === 'http' && !rules.plainHttp(host)) {
    return refuse('plain_http_refused', `plain http:// to ${host} is refused; use https:// (plain HTTP is only for an operator-pinned local test upstream)`);
  }

  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return refuse('bad_url', 'the URL does not parse');
  }
  // The parser must have read the host this module checked.
  if (u.hostname.replace(/\.$/, '') !== host || (u.port === '' ? defaultPort : Number(u.port)) !== port) {
    return refuse('bad_url', 'the URL parser reads another host or port than the text names; write the host plainly');
  }
  const path = `${u.pathname}${u.search}`;
  const hostHeader = port === defaultPort ? host : `${host}:${port}`;
  return { scheme: kind, host, port, path, url: `${kind}://${hostHeader}${path}`, hostHeader };
}
