// The built-in http_api provider: performs the action's expanded HTTP call
// (task.call: method, url, headers, body) through latchgate:io/http and
// returns {status, headers, body} (definitions/schemas/http_api_response.json):
// the body parsed when the response is JSON, as text when it is UTF-8, else
// {"base64": ...}. Its receipt is what it believes it did (method, URL,
// status, body size): no log line repeats it, which would cost a host call
// on every request's way back.
import { cabi_realloc } from '../lib/abi';
import { executeTask } from '../lib/task';
import { base64Encode, isUtf8 } from '../lib/bytes';
import { fetch } from '../lib/io';
import { JValue, Kind, Obj, Parser, quote, stringify } from '../lib/json';
import { decodeUtf8 } from '../lib/text';

export { cabi_realloc };

function body(contentType: string, b: Uint8Array): string {
  if (!isUtf8(b)) return new Obj().str('base64', base64Encode(b)).toString();
  const text = decodeUtf8(b.dataStart, b.length);
  if (contentType.toLowerCase().includes('json')) {
    const v = new Parser(text).document();
    if (v != null) return stringify(v);
  }
  return quote(text);
}

function run(task: JValue): string {
  const call = task.get('call');
  if (call == null || call.kind != Kind.Obj) return 'E' + 'invalid_task: the task has no "call" object (method, url, headers, body)';
  const method = call.str('method');
  const url = call.str('url');
  if (method == null || url == null) return 'E' + 'invalid_task: call.method and call.url must be strings';
  const names: string[] = [];
  const values: string[] = [];
  const headers = call.get('headers');
  if (headers != null) {
    if (headers.kind != Kind.Obj) return 'E' + 'invalid_task: call.headers must be an object of strings';
    for (let i = 0; i < headers.keys.length; i++) {
      if (headers.values[i].kind != Kind.Str) return 'E' + 'invalid_task: call.headers.' + headers.keys[i] + ' must be a string';
      names.push(headers.keys[i]);
      values.push(headers.values[i].s);
    }
  }
  let payload: Uint8Array | null = null;
  const b = call.get('body');
  if (b != null && b.kind != Kind.Null) {
    const text = b.kind == Kind.Str ? b.s : stringify(b);
    payload = Uint8Array.wrap(String.UTF8.encode(text));
  }
  const r = fetch(method, url, names, values, payload);
  if (r.error != null) return 'E' + (r.error as string);
  const hs = new Obj();
  const seen: string[] = [];
  let contentType = '';
  for (let i = 0; i < r.headerNames.length; i++) {
    const name = r.headerNames[i].toLowerCase();
    if (seen.includes(name)) continue;
    seen.push(name);
    let value = r.headerValues[i];
    for (let j = i + 1; j < r.headerNames.length; j++) if (r.headerNames[j].toLowerCase() == name) value += ', ' + r.headerValues[j];
    if (name == 'content-type') contentType = value;
    hs.str(name, value);
  }
  const output = new Obj().num('status', r.status).raw('headers', hs.toString()).raw('body', body(contentType, r.body));
  const receipt = new Obj().str('claim', 'http').str('method', method).str('url', url).num('status', r.status).num('body_bytes', r.body.length);
  return 'O' + new Obj().raw('output', output.toString()).raw('receipt', receipt.toString()).toString();
}

export function execute(ptr: usize, len: usize): usize {
  return executeTask(ptr, len, run);
}
