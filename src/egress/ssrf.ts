// Server-side request forgery guard for the CONNECT proxy: which resolved
// addresses the box may reach, and a resolver that checks every address of a
// name and hands back the exact address to connect to (one lookup, so a DNS
// answer that changes between check and connect cannot slip through).
import { promises as dnsPromises } from 'node:dns';
import { LaunchError } from '../core/errors.js';
import { isLiteralIp, normalizeConnectHost } from './allowlist.js';

export type AddressVerdict = { allowed: boolean; reason?: string };

// ---------------------------------------------------------------------------
// Strict parsers (own bit math; no reliance on the platform's inet_pton).

/** Dotted-decimal IPv4 ("a.b.c.d", each 0-255, no leading zeros) as an unsigned 32-bit integer, else null. */
export function parseIPv4(s: string): number | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n;
}

/** IPv6 text (RFC 4291 §2.2, with an optional dotted IPv4 tail; no zone, no brackets) as eight 16-bit groups, else null. */
export function parseIPv6(s: string): number[] | null {
  if (s.length < 2 || s.length > 45 || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const pieces = (t: string | undefined): string[] => (t === undefined || t === '' ? [] : t.split(':'));
  const head = pieces(halves[0]);
  const tail = pieces(halves[1]);
  const compressed = halves.length === 2;
  const all = [...head, ...tail];
  const groups: number[] = [];
  const headGroups: number[] = [];
  for (let i = 0; i < all.length; i++) {
    const p = all[i] as string;
    // A dotted IPv4 tail is only allowed as the very last piece of the text
    // (so not in "1.2.3.4::", where it would end the part before "::").
    const isLast = i === all.length - 1 && (!compressed || i >= head.length);
    let out: number[];
    if (p.includes('.')) {
      if (!isLast) return null;
      const v4 = parseIPv4(p);
      if (v4 === null) return null;
      out = [Math.floor(v4 / 65536), v4 % 65536];
    } else {
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
      out = [parseInt(p, 16)];
    }
    if (i < head.length) headGroups.push(...out);
    groups.push(...out);
  }
  if (!compressed) return groups.length === 8 ? groups : null;
  if (groups.length > 7) return null; // "::" stands for at least one zero group
  const tailGroups = groups.slice(headGroups.length);
  return [...headGroups, ...new Array<number>(8 - groups.length).fill(0), ...tailGroups];
}

function v4Text(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

// ---------------------------------------------------------------------------
// IPv4

type V4Range = { base: number; len: number; reason: string };

function v4(cidr: string, reason: string): V4Range {
  const [addr, len] = cidr.split('/') as [string, string];
  const base = parseIPv4(addr);
  if (base === null) throw new Error(`bad range ${cidr}`);
  return { base, len: Number(len), reason };
}

// Order matters only for the reason given: the narrowest range comes first.
const V4_DENY: readonly V4Range[] = [
  v4('169.254.169.254/32', 'link-local cloud metadata address (169.254.169.254)'),
  v4('255.255.255.255/32', 'limited broadcast (255.255.255.255)'),
  v4('0.0.0.0/8', 'unspecified / "this network" (0.0.0.0/8)'),
  v4('10.0.0.0/8', 'private (RFC 1918, 10.0.0.0/8)'),
  v4('100.64.0.0/10', 'carrier-grade NAT shared space (100.64.0.0/10)'),
  v4('127.0.0.0/8', 'loopback (127.0.0.0/8)'),
  v4('169.254.0.0/16', 'link-local (169.254.0.0/16)'),
  v4('172.16.0.0/12', 'private (RFC 1918, 172.16.0.0/12)'),
  v4('192.0.0.0/24', 'IETF protocol assignments (192.0.0.0/24)'),
  v4('192.0.2.0/24', 'documentation TEST-NET-1 (192.0.2.0/24)'),
  v4('192.88.99.0/24', 'deprecated 6to4 relay anycast (192.88.99.0/24)'),
  v4('192.168.0.0/16', 'private (RFC 1918, 192.168.0.0/16)'),
  v4('198.18.0.0/15', 'benchmarking (198.18.0.0/15)'),
  v4('198.51.100.0/24', 'documentation TEST-NET-2 (198.51.100.0/24)'),
  v4('203.0.113.0/24', 'documentation TEST-NET-3 (203.0.113.0/24)'),
  v4('224.0.0.0/4', 'multicast (224.0.0.0/4)'),
  v4('240.0.0.0/4', 'reserved (240.0.0.0/4)'),
];

function inV4(n: number, r: V4Range): boolean {
  const size = 2 ** (32 - r.len);
  return n >= r.base && n < r.base + size;
}

function classifyV4(n: number): AddressVerdict {
  for (const r of V4_DENY) if (inV4(n, r)) return { allowed: false, reason: r.reason };
  return { allowed: true };
}

// ---------------------------------------------------------------------------
// IPv6

type V6Range = { groups: number[]; len: number; reason: string };

function v6(cidr: string, reason: string): V6Range {
  const [addr, len] = cidr.split('/') as [string, string];
  const groups = parseIPv6(addr);
  if (groups === null) throw new Error(`bad range ${cidr}`);
  return { groups, len: Number(len), reason };
}

function inV6(g: readonly number[], r: V6Range): boolean {
  let bits = r.len;
  for (let i = 0; i < 8 && bits > 0; i++, bits -= 16) {
    const take = Math.min(16, bits);
    const mask = (0xffff << (16 - take)) & 0xffff;
    if (((g[i] as number) & mask) !== ((r.groups[i] as number) & mask)) return false;
  }
  return true;
}

const V6_UNSPECIFIED = v6('::/128', 'unspecified (::)');
const V6_LOOPBACK = v6('::1/128', 'loopback (::1)');
const V6_MAPPED = v6('::ffff:0:0/96', 'IPv4-mapped');
const V6_COMPAT = v6('::/96', 'IPv4-compatible (deprecated)');
const V6_NAT64 = v6('64:ff9b::/96', 'NAT64 (64:ff9b::/96)');
const V6_6TO4 = v6('2002::/16', '6to4 (2002::/16)');
const V6_GLOBAL_UNICAST = v6('2000::/3', 'global unicast');

const V6_DENY: readonly V6Range[] = [
  v6('64:ff9b:1::/48', 'NAT64 local-use (64:ff9b:1::/48)'),
  v6('100::/64', 'discard-only (100::/64)'),
  v6('2001::/32', 'Teredo (2001::/32)'),
  v6('2001:2::/48', 'benchmarking (2001:2::/48)'),
  v6('2001:db8::/32', 'documentation (2001:db8::/32)'),
  v6('3fff::/20', 'documentation (3fff::/20)'),
  v6('fc00::/7', 'unique local (fc00::/7)'),
  v6('fe80::/10', 'link-local (fe80::/10)'),
  v6('fec0::/10', 'site-local, deprecated (fec0::/10)'),
  v6('ff00::/8', 'multicast (ff00::/8)'),
];

function embedded(g: readonly number[], hi: number): number {
  return (g[hi] as number) * 65536 + (g[hi + 1] as number);
}

function classifyEmbedded(kind: string, n: number): AddressVerdict {
  const inner = classifyV4(n);
  return inner.allowed ? { allowed: true } : { allowed: false, reason: `${kind} form of ${v4Text(n)}: ${inner.reason}` };
}

function classifyV6(g: readonly number[]): AddressVerdict {
  if (inV6(g, V6_UNSPECIFIED)) return { allowed: false, reason: V6_UNSPECIFIED.reason };
  if (inV6(g, V6_LOOPBACK)) return { allowed: false, reason: V6_LOOPBACK.reason };
  if (inV6(g, V6_MAPPED)) return classifyEmbedded('IPv4-mapped IPv6', embedded(g, 6));
  if (inV6(g, V6_COMPAT)) return classifyEmbedded('IPv4-compatible IPv6', embedded(g, 6));
  if (inV6(g, V6_NAT64)) return classifyEmbedded('NAT64 (64:ff9b::/96)', embedded(g, 6));
  for (const r of V6_DENY) if (inV6(g, r)) return { allowed: false, reason: r.reason };
  if (inV6(g, V6_6TO4)) return classifyEmbedded('6to4 (2002::/16)', embedded(g, 1));
  if (!inV6(g, V6_GLOBAL_UNICAST)) return { allowed: false, reason: 'reserved (outside global unicast 2000::/3)' };
  return { allowed: true };
}

/**
 * Whether the proxy may connect to ip (an address as dns.lookup returns it:
 * dotted-decimal IPv4 or IPv6 text). Anything that is not such an address,
 * including zone identifiers and brackets, is refused.
 */
export function classifyAddress(ip: string): AddressVerdict {
  if (typeof ip !== 'string') return { allowed: false, reason: 'not an IP address' };
  if (ip.includes('%')) return { allowed: false, reason: 'an IPv6 zone identifier ("%") is refused' };
  const a = parseIPv4(ip);
  if (a !== null) return classifyV4(a);
  const g = parseIPv6(ip);
  if (g !== null) return classifyV6(g);
  return { allowed: false, reason: `not an IP address: ${JSON.stringify(ip.slice(0, 64))}` };
}

/** 4 or 6 for an address classifyAddress can read, else 0. */
export function addressFamily(ip: string): 0 | 4 | 6 {
  if (typeof ip !== 'string' || ip.includes('%')) return 0;
  if (parseIPv4(ip) !== null) return 4;
  return parseIPv6(ip) !== null ? 6 : 0;
}

// ---------------------------------------------------------------------------
// Operator pins: [sandbox.network.resolve] name = "ip:port"

export type Pin = { ip: string; port: number };

/**
 * Parses a pin "ip:port" or "[ipv6]:port". Throws a LaunchError naming source,
 * the value and the expected form.
 */
export function parsePin(spec: string, source = '[sandbox.network.resolve]'): Pin {
  const fail = (why: string): never => {
    throw new LaunchError(`${source} ${JSON.stringify(spec)}: ${why}; expected "ip:port" such as "127.0.0.1:8443" or "[::1]:8443"`);
  };
  if (typeof spec !== 'string' || spec.trim() === '') return fail('empty');
  const s = spec.trim();
  let ipText: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close === -1) return fail('"[" without "]"');
    ipText = s.slice(1, close);
    const rest = s.slice(close + 1);
    if (!rest.startsWith(':')) return fail('missing ":port" after the IPv6 address');
    portText = rest.slice(1);
    if (ipText.includes('%')) return fail('an IPv6 zone identifier ("%") is not supported');
    if (parseIPv6(ipText) === null) return fail(`${JSON.stringify(ipText)} is not an IPv6 address`);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon === -1) return fail('missing ":port"');
    ipText = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (ipText.includes(':')) return fail('an IPv6 address must be in brackets, as "[::1]:8443"');
    if (parseIPv4(ipText) === null) {
      return fail(isLiteralIp(ipText) ? `${JSON.stringify(ipText)} is not a dotted-decimal IPv4 address (write a.b.c.d)` : `${JSON.stringify(ipText)} is not an IP address (a pin maps a name to an address, not to another name)`);
    }
  }
  if (!/^[1-9][0-9]{0,4}$/.test(portText) || Number(portText) > 65535) return fail(`bad port ${JSON.stringify(portText)} (expected 1-65535)`);
  const g = parseIPv4(ipText) === null ? parseIPv6(ipText) : null;
  if (ipText === '0.0.0.0' || (g !== null && g.every((x) => x === 0))) return fail('the unspecified address cannot be a connection target');
  const ip = g === null ? ipText : formatIPv6(g);
  return { ip, port: Number(portText) };
}

/**
 * A table of pins as a config file writes it (host name -> "ip:port"), keyed
 * by the normalised host name. section names the table in errors, e.g.
 * "latchgate.toml: [gate.resolve]".
 */
export function parsePins(table: ReadonlyMap<string, string>, section: string): Map<string, Pin> {
  const pins = new Map<string, Pin>();
  for (const [name, spec] of table) {
    const host = normalizeConnectHost(name);
    if (!host) throw new LaunchError(`${section} key "${name}": expected a host name`);
    pins.set(host, parsePin(spec, `${section} ${name}`));
  }
  return pins;
}

/** RFC 5952 text for eight groups (lowercase, longest run of two or more zero groups compressed). */
export function formatIPv6(g: readonly number[]): string {
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: readonly number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestAt === -1) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

// ---------------------------------------------------------------------------
// Resolve and check

export type LookupAddress = { address: string; family?: number };
/** dns.promises.lookup's shape with { all: true }; injectable for tests. */
export type LookupFn = (hostname: string, options: { all: true; verbatim: true }) => Promise<readonly LookupAddress[]>;

export type ResolveOptions = {
  lookup?: LookupFn;
  /** Operator pins keyed by normalised host name (normalizeAllowHost form). */
  pinned?: ReadonlyMap<string, Pin>;
  /** Give up on the lookup after this many milliseconds (default 10000). */
  timeoutMs?: number;
};

export type ResolveResult =
  | { ok: true; address: string; family: 4 | 6; port: number; pinned: boolean }
  | { ok: false; reason: string; addresses: string[] };

/** The system resolver (getaddrinfo), as resolveAndCheck uses it when given no lookup. */
export const defaultLookup: LookupFn = (hostname, options) => dnsPromises.lookup(hostname, options);

/**
 * Resolves host once and checks every address it resolves to. A pinned name
 * returns its pin (ip and port) without a lookup or an address check: pins are
 * the operator's choice. Otherwise one refused address refuses the whole name
 * (a name resolving to public and private addresses is refused), and the first
 * address is returned: connect to exactly that address, never to the name.
 */
export async function resolveAndCheck(host: string, port: number, options: ResolveOptions = {}): Promise<ResolveResult> {
  const refuse = (reason: string, addresses: string[] = []): ResolveResult => ({ ok: false, reason, addresses });
  if (!Number.isInteger(port) || port < 1 || port > 65535) return refuse(`bad port ${String(port)}`);
  if (typeof host !== 'string' || isLiteralIp(host)) return refuse(`literal IP address ${JSON.stringify(String(host))} refused (name a host)`);
  const name = normalizeConnectHost(host);
  if (name === null) return refuse(`not a valid host name: ${JSON.stringify(host.slice(0, 300))}`);

  const pin = options.pinned?.get(name);
  if (pin !== undefined) {
    const family = addressFamily(pin.ip);
    if (family === 0) return refuse(`pin for ${name} is not an IP address: ${JSON.stringify(pin.ip)}`);
    if (!Number.isInteger(pin.port) || pin.port < 1 || pin.port > 65535) return refuse(`pin for ${name} has a bad port ${String(pin.port)}`);
    return { ok: true, address: pin.ip, family, port: pin.port, pinned: true };
  }

  const lookup = options.lookup ?? defaultLookup;
  const timeoutMs = options.timeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  let answers: readonly LookupAddress[];
  try {
    answers = await Promise.race([
      Promise.resolve().then(() => lookup(name, { all: true, verbatim: true })),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (e) {
    const err = e as { code?: unknown; message?: unknown };
    const what = typeof err?.code === 'string' ? err.code : typeof err?.message === 'string' ? err.message : String(e);
    return refuse(`DNS lookup for ${name} failed: ${what}`);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }

  if (!Array.isArray(answers)) return refuse(`DNS lookup for ${name} returned no address list`);
  const addresses = [...new Set(answers.map((a) => (a && typeof a.address === 'string' ? a.address : String(a?.address))))];
  if (addresses.length === 0) return refuse(`DNS lookup for ${name} returned no addresses`);
  for (const a of addresses) {
    const v = classifyAddress(a);
    if (!v.allowed) return refuse(`${name} resolves to ${a}, ${v.reason ?? 'refused'}`, addresses);
  }
  const first = addresses[0] as string;
  const family = addressFamily(first) as 4 | 6; // classifyAddress allowed it, so it parses
  return { ok: true, address: first, family, port, pinned: false };
}
