// The built-in providers (providers/http_api, providers/fs) through the
// runtime: hostile host answers (quotes, control characters, invalid UTF-8,
// lying content types) must still give exact, valid output; a write whose
// precondition fails or whose content is not base64 never reaches the host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { ProviderRuntime } from '../../dist/providers/runtime.js';
import { builtinProvider } from '../../dist/providers/builtins.js';
import { HostIoError } from '../../dist/providers/host-error.js';
import { buildProviders } from '../../scripts/build-providers.mjs';
import { LIMITS } from '../helpers/providers.mjs';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';

const dir = mkdtempSync(join(tmpdir(), 'lg-prov-builtins-'));
let rt;
let built;
const HTTP = { ...LIMITS, required_imports: ['latchgate:io/http', 'latchgate:io/log'] };
const FS = { ...LIMITS, required_imports: ['latchgate:io/fs', 'latchgate:io/log'] };
const sha = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  built = await buildProviders({ quiet: true });
  rt = new ProviderRuntime({ cacheDir: join(dir, 'cache') });
  await rt.load(built.http_api.file, built.http_api.digest);
  await rt.load(built.fs.file, built.fs.digest);
});
after(async () => {
  await rt.close();
  rmSync(dir, { recursive: true, force: true });
});

function httpHost(answer) {
  const seen = [];
  const fn = async (req) => {
    seen.push(req);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  fn.seen = seen;
  return fn;
}

const call = (over = {}) => ({ action_id: 'http_fetch', grant_id: 'g1', request: {}, call: { method: 'GET', url: 'https://example.test/x', headers: { Accept: 'text/plain' }, ...over } });

test('http_api sends the expanded call and returns status, lower-case headers and the body', async () => {
  const body = Buffer.from('{"n":[1,2.5,true,null],"s":"x"}');
  const http = httpHost({ status: 200, headers: [['Content-Type', 'application/json'], ['Set-Cookie', 'a=1'], ['set-cookie', 'b=2']], body });
  const r = await rt.run(built.http_api.digest, call({ method: 'POST', body: '{"q":1}' }), HTTP, { http, log: () => {} });
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.deepEqual(r.output, { status: 200, headers: { 'content-type': 'application/json', 'set-cookie': 'a=1, b=2' }, body: { n: [1, 2.5, true, null], s: 'x' } });
  assert.equal(http.seen.length, 1);
  assert.equal(http.seen[0].method, 'POST');
  assert.equal(http.seen[0].url, 'https://example.test/x');
  assert.deepEqual(http.seen[0].headers, [['Accept', 'text/plain']]);
  assert.equal(Buffer.from(http.seen[0].body).toString(), '{"q":1}');
  assert.deepEqual(r.provider_receipt, { claim: 'http', method: 'POST', url: 'https://example.test/x', status: 200, body_bytes: body.length });
});

test('hostile response text cannot break out of the output JSON', async () => {
  const nasty = 'a"},"status":599,"x":"\\\u0000\u001f\n\u2028 é 😀';
  const http = httpHost({ status: 200, headers: [['X-Evil', nasty], ['Content-Type', 'text/plain']], body: Buffer.from(nasty) });
  const r = await rt.run(built.http_api.digest, call(), HTTP, { http });
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.output.status, 200);
  assert.equal(r.output.body, nasty);
  assert.equal(r.output.headers['x-evil'], nasty);
  assert.deepEqual(Object.keys(r.output).sort(), ['body', 'headers', 'status']);
});

test('a body that is not UTF-8 comes back as base64; one that claims JSON but is not comes back as text', async () => {
  const bin = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
  const r = await rt.run(built.http_api.digest, call(), HTTP, { http: httpHost({ status: 200, headers: [['content-type', 'application/json']], body: bin }) });
  assert.deepEqual(r.output.body, { base64: bin.toString('base64') });
  const lie = await rt.run(built.http_api.digest, call(), HTTP, { http: httpHost({ status: 200, headers: [['content-type', 'application/json']], body: Buffer.from('{"a":1} trailing') }) });
  assert.equal(lie.output.body, '{"a":1} trailing');
});

test('an egress refusal is the provider error, with the host code', async () => {
  const http = httpHost(new HostIoError('egress_denied', 'example.test is not in allowed_domains'));
  const r = await rt.run(built.http_api.digest, call(), HTTP, { http });
  assert.equal(r.ok, false);
  assert.equal(r.failure_class, 'provider_error');
  assert.equal(r.error, 'egress_denied: example.test is not in allowed_domains');
  const bad = await rt.run(built.http_api.digest, { request: {} }, HTTP, { http });
  assert.match(bad.error, /^invalid_task: /);
  assert.equal(http.seen.length, 1, 'a task without a call never reaches the host');
});

function fsHost(files) {
  const writes = [];
  return {
    writes,
    read: async (p) => {
      if (!files.has(p)) throw new HostIoError('not_found', `${p} does not exist`);
      return files.get(p);
    },
    write: async (p, data, mode) => {
      writes.push([p, Buffer.from(data).toString(), mode]);
      files.set(p, data);
    },
    delete: async (p) => void files.delete(p),
    list: async () => [...files].map(([name, b]) => ({ name, kind: 'file', size: b.length })),
    stat: async (p) => ({ kind: 'file', size: files.get(p).length, mtime_ms: 1_700_000_000_123 }),
  };
}

test('fs reads a file: content, size and a sha256 the host can check', async () => {
  const content = Buffer.from([0, 1, 2, 250, 255, 0x68, 0x69]);
  const fs = fsHost(new Map([['src/a.bin', content]]));
  const r = await rt.run(built.fs.digest, { op: 'read', request: { path: 'src/a.bin' } }, FS, { fs });
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.deepEqual(r.output, { path: 'src/a.bin', content_base64: content.toString('base64'), sha256: sha(content), size: 7 });
  const big = Buffer.alloc(200_000, 7);
  const r2 = await rt.run(built.fs.digest, { op: 'read', request: { path: 'big' } }, { ...FS, fuel: 10_000_000 }, { fs: fsHost(new Map([['big', big]])) });
  assert.equal(r2.ok, true, JSON.stringify(r2));
  assert.equal(r2.output.sha256, sha(big));
  assert.equal(Buffer.from(r2.output.content_base64, 'base64').equals(big), true);
});

test('fs writes only after its precondition holds, and never undecodable content', async () => {
  const files = new Map([['src/a.txt', Buffer.from('old')]]);
  const fs = fsHost(files);
  const stale = await rt.run(built.fs.digest, { op: 'write', request: { path: 'src/a.txt', content_base64: Buffer.from('new').toString('base64'), expected_before_hash: sha('other') } }, FS, { fs });
  assert.match(stale.error, /^precondition_failed: /);
  const junk = await rt.run(built.fs.digest, { op: 'write', request: { path: 'src/a.txt', content_base64: 'bm!w' } }, FS, { fs });
  assert.match(junk.error, /^invalid_task: /);
  assert.deepEqual(fs.writes, [], 'nothing was written');
  const ok = await rt.run(built.fs.digest, { op: 'write', request: { path: 'src/a.txt', content_base64: Buffer.from('new').toString('base64'), expected_before_hash: sha('old') } }, FS, { fs });
  assert.equal(ok.ok, true, JSON.stringify(ok));
  assert.deepEqual(ok.output, { path: 'src/a.txt', sha256: sha('new'), size: 3, created: false });
  assert.deepEqual(fs.writes, [['src/a.txt', 'new', 'overwrite']]);
  const created = await rt.run(built.fs.digest, { op: 'write', request: { path: 'src/b.txt', content_base64: '', mode: 'create' } }, FS, { fs });
  assert.equal(created.output.created, true);
  assert.deepEqual(fs.writes.at(-1), ['src/b.txt', '', 'create']);
});

test('fs lists and stats; each built-in is refused the interface of the other', async () => {
  const fs = fsHost(new Map([['a', Buffer.from('12345')]]));
  const l = await rt.run(built.fs.digest, { op: 'list', request: { path: '.' } }, FS, { fs });
  assert.deepEqual(l.output, { path: '.', entries: [{ name: 'a', kind: 'file', size: 5 }] });
  const s = await rt.run(built.fs.digest, { op: 'stat', request: { path: 'a' } }, FS, { fs });
  assert.deepEqual(s.output, { path: 'a', kind: 'file', size: 5, mtime_ms: 1_700_000_000_123 });
  const crossed = await rt.run(built.fs.digest, { op: 'read', request: { path: 'a' } }, HTTP, { fs });
  assert.equal(crossed.failure_class, 'provider_import_denied');
  const crossed2 = await rt.run(built.http_api.digest, call(), FS, {});
  assert.equal(crossed2.failure_class, 'provider_import_denied');
});

test('fs hashes and encodes every length exactly (SHA-256 padding and base64 edges)', async () => {
  const files = new Map();
  const fs = fsHost(files);
  for (const n of [0, 1, 2, 3, 11, 12, 13, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000]) {
    const content = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 255));
    files.set('f', content);
    const r = await rt.run(built.fs.digest, { op: 'read', request: { path: 'f' } }, FS, { fs });
    assert.equal(r.output.sha256, sha(content), `sha256 of ${n} bytes`);
    assert.equal(r.output.content_base64, content.toString('base64'), `base64 of ${n} bytes`);
    const w = await rt.run(built.fs.digest, { op: 'write', request: { path: 'g', content_base64: content.toString('base64') } }, FS, { fs });
    assert.equal(w.output.sha256, sha(content), `decoded ${n} bytes`);
    assert.ok(Buffer.from(files.get('g')).equals(content));
  }
  for (const bad of ['bm9=', 'bmw==', 'b===', 'bm8', 'bm8=x', '____']) {
    const r = await rt.run(built.fs.digest, { op: 'write', request: { path: 'g', content_base64: bad } }, FS, { fs });
    assert.match(r.error ?? '', /^invalid_task: /, `${bad} is not canonical base64`);
  }
});

test('http_api keeps UTF-8 text exact and sends malformed UTF-8 as base64', async () => {
  for (const text of ['héllo wörld ✓ 😀', 'a'.repeat(100) + 'é' + 'b'.repeat(33)]) {
    const r = await rt.run(built.http_api.digest, call(), HTTP, { http: httpHost({ status: 200, headers: [], body: Buffer.from(text) }) });
    assert.equal(r.output.body, text);
  }
  for (const bytes of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x61, 0xe2, 0x82], [0x80]]) {
    const b = Buffer.from([...Buffer.from('x'.repeat(40)), ...bytes]);
    const r = await rt.run(built.http_api.digest, call(), HTTP, { http: httpHost({ status: 200, headers: [], body: b }) });
    assert.deepEqual(r.output.body, { base64: b.toString('base64') }, `${Buffer.from(bytes).toString('hex')} is not UTF-8`);
  }
});

test('the build is skipped when the sources did not change; builtinProvider finds what it built', async () => {
  const before = statSync(built.http_api.file);
  const again = await buildProviders({ quiet: true });
  const after = statSync(again.http_api.file);
  assert.equal(after.ino, before.ino, 'not rewritten');
  assert.equal(after.mtimeMs, before.mtimeMs);
  assert.deepEqual(builtinProvider('http_api'), built.http_api);
  assert.deepEqual(builtinProvider('fs'), built.fs);
  assert.throws(() => builtinProvider('fs', join(dir, 'nowhere/')), (e) => e.failure_class === 'provider_untrusted' && /build-providers/.test(e.message));
});

test("the built-ins' glue is the pinned transpiler's: without the async subtasks and waitables later ones wrap every call in", () => {
  // src/providers/runtime-compile-job.ts; those later versions are several times slower per call and
  // per instantiation (docs/PROVIDERS.md), and a pin moved to one of them fails here.
  for (const name of ['http_api', 'fs']) {
    const glue = readFileSync(join(dir, 'cache', built[name].digest.slice('sha256:'.length), 'component.js'), 'utf8');
    assert.match(glue, /export (async )?function instantiate\(/, `${name}: not jco glue`);
    assert.doesNotMatch(glue, /class (Waitable|AsyncSubtask)\b/, `${name}: the glue has the async task bookkeeping of later transpilers`);
  }
});
