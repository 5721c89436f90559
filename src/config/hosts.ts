// Allowlist entries: bare host names, or "*.example.com" for subdomains.
import { isIPv4 } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';
import { LaunchError } from '../core/errors.js';

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * An "xn--" label names a Unicode label only if it is that label's punycode:
 * it decodes, and the decoded label encodes back to it. Checked here because
 * Node's URL parser stopped checking it (Node 24 passes "xn--zz" through), so
 * every Node version reads the same names.
 */
function isALabel(label: string): boolean {
  const unicode = domainToUnicode(label);
  return unicode !== '' && unicode !== label && domainToASCII(unicode) === label;
}

export function normalizeAllowHost(raw: string, source = '--allow-host'): string {
  const fail = (why: string) => {
    throw new LaunchError(`${source} ${JSON.stringify(raw)}: ${why}; expected a host name such as api.example.com or *.example.com`);
  };
  let h = raw.trim().toLowerCase();
  if (h === '') fail('empty');
  if (h.includes('://')) fail('remove the scheme');
  if (h.includes('/')) fail('remove the path');
  if (h.includes(':') || h.startsWith('[')) fail('remove the port (ports are set by [sandbox.network] allow_ports)');
  if (h.endsWith('.')) h = h.slice(0, -1);
  let wildcard = false;
  if (h.startsWith('*.')) {
    wildcard = true;
    h = h.slice(2);
  }
  // Only letters, digits, '-' and '.' reach the URL parser, which would
  // otherwise read another host out of "a@b", "a\\b", "a?b" or drop tabs.
  if (!/^[\p{L}\p{N}\p{M}.-]+$/u.test(h)) fail('not a valid host name (only letters, digits, "-" and "." may appear)');
  let ascii: string;
  try {
    ascii = new URL(`http://${h}`).hostname; // IDN -> punycode, width and dot variants folded
  } catch {
    return fail('not a valid host name');
  }
  // No IPv6 literal gets here (':' and '[' were refused): isIPv4 spares every process the first isIPv6's costly regex.
  if (isIPv4(ascii) || /^[\d.]+$/.test(ascii) || /^[\d.]+$/.test(h)) fail('an IP address is not a host name (literal-IP egress is refused)');
  const labels = ascii.split('.');
  if (labels.length < (wildcard ? 2 : 1) || !labels.every((l) => LABEL.test(l) && (!l.startsWith('xn--') || isALabel(l)))) fail('not a valid host name');
  return (wildcard ? '*.' : '') + ascii;
}
