// Where a secret may go: only into the request the gate rendered from the
// manifest's template (src/gate/templates.ts), never where a provider chose.
// Redaction of responses cannot be complete against an upstream the provider
// steers (a store it writes the secret to and reads back in ranges, an API
// that echoes a slice or an encoding of its input), so a {{secret:NAME}} is
// filled only in a request whose method and URL (scheme, host, port, path
// and query) are the template's, in a header the template names with exactly
// the template's value, and in a body that is exactly the template's. Any
// other request holding a placeholder is refused (secret_placement) before a
// byte is sent. Redaction (src/egress/key-redaction.ts) stays as the second layer.
import { HostIoError } from './host-error.js';
import { secretRefs, type HeaderList } from './http-headers.js';
import type { HttpTarget } from './http-target.js';

/** The gate's rendering of the action's template for this call, placeholders left in place. */
export interface SecretTemplate {
  method: string;
  url: string;
  headers: Readonly<Record<string, string>>;
  /** The body text as the provider is handed it (JSON.stringify of the rendered body_template). */
  body?: string;
}

const START = Buffer.from('{{secret:');

const refuse = (why: string) =>
  new HostIoError('secret_placement', `${why}; a {{secret:NAME}} is filled only in the request the manifest's template renders, exactly as rendered (method, URL, the template's headers, its body)`);

/**
 * Throws secret_placement unless every placeholder of the request stands
 * where `template` put it. `templateTarget` is template.url read by the
 * same rules as the request's URL (undefined when it cannot be: then no
 * request matches it).
 */
export function checkSecretPlacement(
  template: SecretTemplate | undefined,
  templateTarget: HttpTarget | undefined,
  method: string,
  target: HttpTarget,
  headers: HeaderList,
  body: Uint8Array | undefined,
): void {
  const bodyHolds = body !== undefined && Buffer.from(body.buffer, body.byteOffset, body.byteLength).indexOf(START) >= 0;
  if (!bodyHolds && secretRefs(headers).length === 0) return;
  if (template === undefined || templateTarget === undefined) throw refuse('this call has no template (or its URL is not one this action may reach) to place a secret in');
  if (method !== template.method.toUpperCase()) throw refuse(`the method ${method} is not the template's ${template.method}`);
  if (target.url !== templateTarget.url) throw refuse(`the URL ${target.url} is not the template's`);
  const wanted = new Map(Object.entries(template.headers).map(([n, v]) => [n.toLowerCase(), v]));
  const used = new Set<string>();
  for (const [name, value] of headers) {
    if (secretRefs([[name, value]]).length === 0) continue;
    const lower = name.toLowerCase();
    if (wanted.get(lower) !== value) throw refuse(`the header ${name} is not one the template puts a secret in, with the template's value`);
    if (used.has(lower)) throw refuse(`the header ${name} is given twice`);
    used.add(lower);
  }
  if (bodyHolds && (template.body === undefined || !Buffer.from(template.body, 'utf8').equals(body))) throw refuse("the body is not the template's");
}
