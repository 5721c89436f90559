// The CONNECT proxy's host allowlist and its request-target parser.
//
// Entries are what normalizeAllowHost accepts: exact names ("api.example.com")
// and "*.example.com" (every subdomain at any depth, never the apex). A CONNECT
// host is normalised by the same rules (lowercase, trailing dot dropped, IDN to
// punycode through the WHATWG URL host parser), so an entry and a host that
// name the same DNS name compare equal. The caller must resolve and connect to
// the normalised name this module returns, never to the raw text of the
// request, so the name that was checked is the name that is used.
import { isIP } from 'node:net';
import { normalizeAllowHost } from '../config/hosts.js';

/** Longest DNS name in text form, without the trailing dot (RFC 1035 §2.3.4). */
export const MAX_HOST_LENGTH = 253;
/** Longest request target parseConnectTarget reads: "[" 45-char IPv6 "]:65535" or a name and a port, with room to spare. */
export const MAX_TARGET_LENGTH = 300;

// What may appear in a host before IDN mapping: letters, digits, marks, '.'
// and '-'. Everything else ('%', '@', ':', '*', '_', '\\', '/', spaces,
// controls, format characters such as soft hyphen or zero-width joiners) is
// refused before the URL parser could fold or reinterpret it.
const HOST_CHARS = /^[\p{L}\p{N}\p{M}.-]+$/u;
// The same plus the dots the URL parser folds to '.', used only to recognise
// spellings of a literal IP (which are refused either way).
const IP_SPELLING_CHARS = /^[\p{L}\p{N}\p{M}.\u3002\uff0e\uff61-]+$/u;

/**
 * True when host is a literal IP address in any spelling that a URL parser or
 * inet_aton would read as one: dotted IPv4, IPv6 (bare or in brackets), and
 * the WHATWG "ends in a number" forms such as "2130706433", "0x7f000001",
 * "127.1", "0177.0.0.1", "1.2.3.4." and full-width digits. Such hosts are
 * refused by the proxy, so erring towards true is the safe direction.
 */
export function isLiteralIp(host: string): boolean {
  if (typeof host !== 'string' || host === '') return false;
  // A gate asks it of every call's host.
  return remembered(literalIps, host, readsAsIp);
}

const MEMO_KEPT = 1024;
/** isLiteralIp's and normalizeConnectHost's answers, the oldest forgotten first. */
const literalIps = new Map<string, boolean>();
const normalized = new Map<string, string | null>();

/** f(host), remembered for a host of a name's length at most (a longer one is worked out each time, never kept). */
function remembered<T>(memo: Map<string, T>, host: string, f: (host: string) => T): T {
  if (host.length > 4 * MAX_HOST_LENGTH) return f(host);
  if (memo.has(host)) return memo.get(host) as T;
  const out = f(host);
  if (memo.size >= MEMO_KEPT) memo.delete(memo.keys().next().value as string);
  memo.set(host, out);
  return out;
}

function readsAsIp(host: string): boolean {
  let h = host;
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (isIP(h) !== 0) return true;
  if (!IP_SPELLING_CHARS.test(h)) return false;
  // Compatibility mapping (full-width digits and letters, the ideographic dots)
  // as UTS #46 does, then the WHATWG "ends in a number" test: the last label
  // (ignoring one trailing empty label) is all digits or 0x-hex.
  const folded = h.normalize('NFKC').toLowerCase().replace(/[\u3002\uff0e\uff61]/g, '.');
  if (isIP(folded) !== 0) return true;
  const labels = folded.split('.');
  if (labels.length > 1 && labels[labels.length - 1] === '') labels.pop();
  const last = labels[labels.length - 1] ?? '';
  if (/^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/.test(last)) return true;
  try {
    return isIP(new URL(`http://${h}/`).hostname.replace(/^\[|\]$/g, '')) !== 0;
  } catch {
    return false;
  }
}

/**
 * The normalised form of a host named in a CONNECT request, or null when it is
 * not a syntactically valid DNS name (including every literal IP spelling).
 * The rules are normalizeAllowHost's, minus the wildcard and the trimming.
 */
export function normalizeConnectHost(host: string): string | null {
  if (typeof host !== 'string' || host === '' || host.length > 4 * MAX_HOST_LENGTH) return null;
  // A pure function of the string, asked several times per request for the same few names (a URL parse and NFKC each time).
  return remembered(normalized, host, normalizeConnectHostAfresh);
}

function normalizeConnectHostAfresh(host: string): string | null {
  if (!HOST_CHARS.test(host)) return null;
  if (isLiteralIp(host)) return null;
  let out: string;
  try {
    out = normalizeAllowHost(host, 'CONNECT host');
  } catch {
    return null;
  }
  if (out.startsWith('*.') || out.length > MAX_HOST_LENGTH || isLiteralIp(out)) return null;
  return out;
}

export class HostAllowlist {
  readonly #exact = new Set<string>();
  readonly #suffixes = new Set<string>(); // "example.com" for the entry "*.example.com"

  /**
   * entries: allowlist entries; each is passed through normalizeAllowHost again
   * (idempotent on its own output), so a raw entry throws its LaunchError here
   * rather than being matched by other rules.
   */
  constructor(entries: Iterable<string>, source = 'allow_hosts') {
    for (const raw of entries) {
      const e = normalizeAllowHost(raw, source);
      if (e.startsWith('*.')) this.#suffixes.add(e.slice(2));
      else this.#exact.add(e);
    }
  }

  get size(): number {
    return this.#exact.size + this.#suffixes.size;
  }

  /** The normalised entries, exact names first, then wildcards. */
  entries(): string[] {
    return [...this.#exact, ...[...this.#suffixes].map((s) => `*.${s}`)];
  }

  /**
   * True when host (as named in a CONNECT request) equals an exact entry or is a
   * subdomain, at any depth, of a "*." entry. Hosts that are not valid DNS
   * names, and literal IPs, never match.
   */
  matches(host: string): boolean {
    const h = normalizeConnectHost(host);
    return h !== null && this.#matchesNormalized(h);
  }

  #matchesNormalized(h: string): boolean {
    if (this.#exact.has(h)) return true;
    // Every proper suffix that starts at a label boundary: "a.b.example.com"
    // tries "b.example.com", "example.com", "com". The host itself is not
    // tried, so "*.example.com" does not match the apex.
    for (let dot = h.indexOf('.'); dot !== -1; dot = h.indexOf('.', dot + 1)) {
      if (this.#suffixes.has(h.slice(dot + 1))) return true;
    }
    return false;
  }
}

export type ConnectTarget = {
  /** Normalised host name, or the canonical text of a literal IP (no brackets). */
  host: string;
  port: number;
  /** True when the target names an IP address rather than a DNS name; the proxy refuses these. */
  literalIp: boolean;
};

function parsePort(s: string): number | null {
  if (!/^[1-9][0-9]{0,4}$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : null;
}

/**
 * Parses a CONNECT request target in authority form, "host:port" or
 * "[ipv6]:port" (RFC 9110 §9.3.6). The port is required and is 1-65535 in
 * plain decimal without leading zeros. No userinfo, percent-encoding, spaces,
 * paths or zone identifiers. A literal IP is returned with literalIp: true so
 * the caller can refuse it with its own reason.
 */
export function parseConnectTarget(target: string): ConnectTarget | { error: string } {
  if (typeof target !== 'string' || target === '') return { error: 'empty CONNECT target' };
  if (target.length > MAX_TARGET_LENGTH) return { error: `CONNECT target longer than ${MAX_TARGET_LENGTH} characters` };
  // Spaces, controls and invisible format characters anywhere are refused; the
  // host itself is further limited to letters, digits, marks, '.' and '-'.
  if (/[\p{Z}\p{C}\s]/u.test(target)) return { error: 'CONNECT target contains spaces, control or invisible characters' };
  if (target.includes('@')) return { error: 'CONNECT target may not carry userinfo ("@")' };
  if (target.includes('%')) return { error: 'CONNECT target may not contain percent-encoding or a zone identifier ("%")' };
  if (/[/?#\\]/.test(target)) return { error: 'CONNECT target must be host:port (no scheme, path, query or fragment)' };

  if (target.startsWith('[')) {
    const close = target.indexOf(']');
    if (close === -1) return { error: 'unterminated IPv6 literal ("[" without "]")' };
    const inner = target.slice(1, close);
    const rest = target.slice(close + 1);
    if (isIP(inner) !== 6) return { error: `not an IPv6 address in brackets: ${JSON.stringify(inner)}` };
    if (!rest.startsWith(':')) return { error: 'CONNECT target needs a port after the IPv6 literal ("[addr]:port")' };
    const port = parsePort(rest.slice(1));
    if (port === null) return { error: `bad port ${JSON.stringify(rest.slice(1))} (expected 1-65535, decimal)` };
    let host = inner.toLowerCase();
    try {
      host = new URL(`http://[${inner}]/`).hostname.slice(1, -1); // canonical compressed form
    } catch {
      /* isIP accepted it; keep the lowercased text */
    }
    return { host, port, literalIp: true };
  }

  if (target.includes('[') || target.includes(']')) return { error: 'brackets are only allowed around a whole IPv6 literal' };
  const colon = target.lastIndexOf(':');
  if (colon === -1) return { error: 'CONNECT target needs a port ("host:port")' };
  const rawHost = target.slice(0, colon);
  const rawPort = target.slice(colon + 1);
  if (rawHost.includes(':')) {
    return { error: isIP(rawHost) === 6 ? 'an IPv6 literal must be in brackets ("[addr]:port")' : 'more than one ":" in CONNECT target' };
  }
  if (rawHost === '') return { error: 'CONNECT target has an empty host' };
  const port = parsePort(rawPort);
  if (port === null) return { error: `bad port ${JSON.stringify(rawPort)} (expected 1-65535, decimal)` };
  if (isLiteralIp(rawHost)) {
    let host = rawHost.toLowerCase();
    try {
      host = new URL(`http://${rawHost}/`).hostname; // "127.1" and "0x7f000001" -> "127.0.0.1"
    } catch {
      /* an invalid IPv4 spelling such as "999.1": still a literal, keep the text */
    }
    return { host, port, literalIp: true };
  }
  const host = normalizeConnectHost(rawHost);
  if (host === null) return { error: `not a valid host name: ${JSON.stringify(rawHost)}` };
  return { host, port, literalIp: false };
}
