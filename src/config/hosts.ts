// Allowlist entries: bare host names, or "*.example.com" for subdomains.
import { LaunchError } from '../sandbox/errors.js';

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

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
  if (/^[\d.]+$/.test(h)) fail('an IP address is not a host name (literal-IP egress is refused)');
  let ascii: string;
  try {
    ascii = new URL(`http://${h}`).hostname; // IDN -> punycode
  } catch {
    return fail('not a valid host name');
  }
  const labels = ascii.split('.');
  if (labels.length < (wildcard ? 2 : 1) || !labels.every((l) => LABEL.test(l))) fail('not a valid host name');
  return (wildcard ? '*.' : '') + ascii;
}
