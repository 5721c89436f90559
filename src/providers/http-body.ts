// {{secret:NAME}} in a request body, filled at the transport after the
// provider let go of the request (as header values are, http-headers.ts).
//
// Only a JSON body (the request's Content-Type is application/json or a
// +json type) is filled, and only inside its strings: the value goes in
// JSON-escaped, so a value with a quote or a backslash stays inside the
// string it was put in. A placeholder outside a string, in a body that is not
// JSON, or in one that is not UTF-8 is refused (secret_placement): the host
// does not guess how another format escapes a value. The template engine
// (src/gate/templates.ts) makes sure a request value never holds a
// placeholder, so every one here is the manifest's (or the provider's own).
import { isUtf8 } from 'node:buffer';
import { HostIoError } from './host-error.js';
import { checkSecretValue, type HeaderList } from './http-headers.js';
import type { SecretSource } from './secret-source.js';

const START = Buffer.from('{{secret:');
/** Exactly the form the template engine leaves, read at one position of the text. */
const AT = /\{\{secret:([A-Za-z_][A-Za-z0-9_]*)\}\}/y;

/** Whether a Content-Type names JSON (application/json, or a +json type). */
export function isJsonContentType(value: string | undefined): boolean {
  const t = (value ?? '').split(';')[0]!.trim().toLowerCase();
  return t === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(t);
}

function contentType(headers: HeaderList): string | undefined {
  return headers.find(([n]) => n.toLowerCase() === 'content-type')?.[1];
}

/**
 * The body with every {{secret:NAME}} in its JSON strings replaced by the
 * JSON-escaped value. Names not in `declared`: secret_not_declared; without
 * a value: secret_missing. A body without a placeholder is returned as it is.
 */
export async function fillBodySecrets(
  body: Uint8Array | undefined,
  headers: HeaderList,
  declared: ReadonlySet<string>,
  source: Pick<SecretSource, 'get'>,
): Promise<{ body: Uint8Array | undefined; values: string[] }> {
  if (body === undefined || Buffer.from(body.buffer, body.byteOffset, body.byteLength).indexOf(START) < 0) return { body, values: [] };
  if (!isJsonContentType(contentType(headers))) {
    throw new HostIoError('secret_placement', 'a {{secret:NAME}} placeholder in the body is filled only in a JSON body (Content-Type: application/json)');
  }
  if (!isUtf8(body)) throw new HostIoError('secret_placement', 'a body with a {{secret:NAME}} placeholder must be UTF-8 JSON');
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  // Where each placeholder is, found by walking the JSON text's strings.
  const found: { at: number; end: number; name: string }[] = [];
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      else if (ch === '{') {
        AT.lastIndex = i;
        const m = AT.exec(text);
        if (m) {
          found.push({ at: i, end: i + m[0].length, name: m[1]! });
          i += m[0].length - 1;
        }
      }
    } else if (ch === '"') inString = true;
    else if (ch === '{' && text.startsWith('{{secret:', i)) {
      throw new HostIoError('secret_placement', 'a {{secret:NAME}} placeholder in a JSON body must be inside a string');
    }
  }
  const values = new Map<string, string>();
  for (const { name } of found) {
    if (!declared.has(name)) throw new HostIoError('secret_not_declared', `secret ${name} is not among the action's declared secrets`);
  }
  for (const { name } of found) {
    if (values.has(name)) continue;
    const v = await source.get(name);
    if (v === undefined || v === '') throw new HostIoError('secret_missing', `secret ${name} has no value on the gate`);
    values.set(name, checkSecretValue(name, v));
  }
  let out = '';
  let last = 0;
  for (const f of found) {
    out += text.slice(last, f.at) + JSON.stringify(values.get(f.name)).slice(1, -1);
    last = f.end;
  }
  out += text.slice(last);
  return { body: new Uint8Array(Buffer.from(out, 'utf8')), values: [...values.values()] };
}
