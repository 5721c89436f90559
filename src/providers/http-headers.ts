// The request headers a provider hands the HTTP host: checked, then their
// {{secret:NAME}} placeholders filled at the transport, after the provider
// let go of the request. The provider never holds a value.
//
// A provider may not set the headers that frame or route the request (Host,
// Content-Length, Transfer-Encoding, Connection and the other hop-by-hop
// headers, Proxy-*) nor Accept-Encoding: the host sets those itself, and asks
// for an unencoded body so the response can be searched for the secrets.
import { MAX_KEY_LENGTH, MIN_KEY_LENGTH } from '../egress/key-redaction.js';
import { HostIoError } from './host-error.js';
import { MAX_HEADER_COUNT } from './runtime-args.js';
import type { SecretSource } from './secret-source.js';

/** Bytes of header names and values together, before secrets are filled. */
export const MAX_HEADER_BYTES = 32 * 1024;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What Node (and RFC 9110 §5.5) allows in a field value: no CR, LF, NUL or other controls but tab. */
const BAD_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;
const HOST_SET = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'accept-encoding',
]);
/** Exactly the form src/gate/templates.ts leaves in an expanded header value. */
const PLACEHOLDER = /\{\{secret:([A-Za-z_][A-Za-z0-9_]*)\}\}/g;

export type HeaderList = [string, string][];

/**
 * Checks the provider's headers: a list of [name, value] pairs, names HTTP
 * tokens not set by the host, values without CR, LF, NUL or other controls.
 * Throws HostIoError bad_header, header_not_allowed or headers_too_large.
 */
export function checkHeaders(headers: unknown): HeaderList {
  if (headers === undefined) return [];
  if (!Array.isArray(headers)) throw new HostIoError('bad_header', 'headers must be a list of [name, value] pairs');
  if (headers.length > MAX_HEADER_COUNT) throw new HostIoError('headers_too_large', `more than ${MAX_HEADER_COUNT} header fields`);
  let bytes = 0;
  const out: HeaderList = [];
  headers.forEach((h: unknown, i) => {
    if (!Array.isArray(h) || h.length !== 2 || typeof h[0] !== 'string' || typeof h[1] !== 'string') {
      throw new HostIoError('bad_header', `headers[${i}] must be a [name, value] pair of strings`);
    }
    const [name, value] = h as [string, string];
    if (!TOKEN.test(name)) throw new HostIoError('bad_header', `headers[${i}]: ${JSON.stringify(name.slice(0, 64))} is not a valid header name (an HTTP token)`);
    const lower = name.toLowerCase();
    if (HOST_SET.has(lower) || lower.startsWith('proxy-')) {
      throw new HostIoError('header_not_allowed', `headers[${i}]: ${name} is set by the host, not by the provider`);
    }
    if (BAD_VALUE_CHAR.test(value)) throw new HostIoError('bad_header', `headers[${i}] (${name}): the value contains CR, LF, NUL or another control character`);
    bytes += name.length + value.length + 4;
    if (bytes > MAX_HEADER_BYTES) throw new HostIoError('headers_too_large', `header names and values exceed ${MAX_HEADER_BYTES} bytes`);
    out.push([name, value]);
  });
  return out;
}

/** The secret names the values reference, each once. */
export function secretRefs(headers: HeaderList): string[] {
  const names = new Set<string>();
  for (const [, v] of headers) for (const m of v.matchAll(PLACEHOLDER)) names.add(m[1] as string);
  return [...names];
}

/**
 * A secret's value checked for a header and for redaction: printable ASCII
 * (no CR, LF, NUL, space or control that could split or end the header),
 * and long enough to be searched for in what comes back without eating
 * ordinary text. Throws HostIoError secret_invalid (never with the value).
 */
export function checkSecretValue(name: string, value: string): string {
  if (value.length < MIN_KEY_LENGTH) throw new HostIoError('secret_invalid', `secret ${name} is shorter than ${MIN_KEY_LENGTH} characters, too short to be redacted from responses`);
  if (value.length > MAX_KEY_LENGTH) throw new HostIoError('secret_invalid', `secret ${name} is longer than ${MAX_KEY_LENGTH} characters`);
  const bad = value.search(/[^\x21-\x7e]/);
  if (bad >= 0) throw new HostIoError('secret_invalid', `secret ${name} has a CR, LF, NUL, space, control or non-ASCII character at position ${bad} (the value is not shown)`);
  return value;
}

/**
 * The headers with every {{secret:NAME}} replaced by its value. Only names in
 * declared are filled (else secret_not_declared); a name without a value is
 * secret_missing. Returns the filled headers and the values used.
 */
export async function fillSecrets(headers: HeaderList, declared: ReadonlySet<string>, source: Pick<SecretSource, 'get'>): Promise<{ headers: HeaderList; values: string[] }> {
  const names = secretRefs(headers);
  const values = new Map<string, string>();
  for (const name of names) {
    if (!declared.has(name)) throw new HostIoError('secret_not_declared', `secret ${name} is not among the action's declared secrets`);
  }
  for (const name of names) {
    const v = await source.get(name);
    if (v === undefined || v === '') throw new HostIoError('secret_missing', `secret ${name} has no value on the gate`);
    values.set(name, checkSecretValue(name, v));
  }
  const filled: HeaderList = headers.map(([n, v]) => [n, v.replace(PLACEHOLDER, (_, name: string) => values.get(name) as string)]);
  return { headers: filled, values: [...values.values()] };
}
