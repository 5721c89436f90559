// Which providers run, and with which host imports: the digest must match
// before anything is compiled, a component importing an interface the
// manifest does not list is refused before it is instantiated (and the host
// side checks again per call), and the compile cache cannot be used to slip
// in a module without its fuel meter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from '@bytecodealliance/jco';
import { ProviderRuntime } from '../../dist/providers/runtime.js';
import { HostBridge } from '../../dist/providers/runtime-bridge.js';
import { buildWat, LIMITS, tempDir } from '../helpers/providers.mjs';

test('a component whose digest is not the expected one is refused before it is compiled', async (t) => {
  const dir = tempDir(t);
  const p = await buildWat('limits', dir);
  const rt = new ProviderRuntime({ cacheDir: join(dir, 'cache') });
  t.after(() => rt.close());
  const other = `sha256:${'0'.repeat(64)}`;
  await assert.rejects(rt.load(p.file, other), (e) => e.failure_class === 'provider_untrusted' && /provider_module_digest/.test(e.message));
  assert.equal(existsSync(join(dir, 'cache')), false, 'nothing was compiled or cached');
  const r = await rt.run(other, { mode: 'g' }, LIMITS, {});
  assert.equal(r.failure_class, 'provider_untrusted');
  const unloaded = await rt.run(p.digest, { mode: 'g' }, LIMITS, {});
  assert.equal(unloaded.failure_class, 'provider_untrusted', 'a digest is runnable only after load');
  await rt.load(p.file, p.digest);
  const ok = await rt.run(p.digest, { mode: 'g' }, LIMITS, {});
  assert.equal(ok.ok, true, JSON.stringify(ok));
});

test('a loaded file changed afterwards is refused at the next load: rewritten in place with the same size, or replaced by rename', async (t) => {
  const dir = tempDir(t);
  const p = await buildWat('limits', dir);
  const good = readFileSync(p.file);
  const rt = new ProviderRuntime({ cacheDir: join(dir, 'cache') });
  t.after(() => rt.close());
  await rt.load(p.file, p.digest);
  await rt.load(p.file, p.digest); // unchanged: accepted again
  const bad = Buffer.from(good);
  bad[bad.length - 1] ^= 1;
  writeFileSync(p.file, bad);
  await assert.rejects(rt.load(p.file, p.digest), (e) => e.failure_class === 'provider_untrusted');
  writeFileSync(p.file, good);
  await rt.load(p.file, p.digest); // the trusted bytes again
  writeFileSync(`${p.file}.new`, bad);
  renameSync(`${p.file}.new`, p.file);
  await assert.rejects(rt.load(p.file, p.digest), (e) => e.failure_class === 'provider_untrusted');
});

test('a component importing an interface outside required_imports is not instantiated', async (t) => {
  const dir = tempDir(t);
  const p = await buildWat('limits', dir);
  const rt = new ProviderRuntime({ cacheDir: join(dir, 'cache') });
  t.after(() => rt.close());
  await rt.load(p.file, p.digest);
  let reads = 0;
  const hosts = { fs: { read: async () => (reads++, new Uint8Array(1)) }, http: async () => ({ status: 200, headers: [], body: new Uint8Array() }) };
  const r = await rt.run(p.digest, { mode: 'r' }, { ...LIMITS, required_imports: ['latchgate:io/http', 'latchgate:io/log'] }, hosts);
  assert.equal(r.failure_class, 'provider_import_denied', JSON.stringify(r));
  assert.match(r.error, /latchgate:io\/fs/);
  assert.equal(reads, 0);
  const unknown = await rt.run(p.digest, { mode: 'g' }, { ...LIMITS, required_imports: [...LIMITS.required_imports, 'wasi:filesystem/types'] }, hosts);
  assert.equal(unknown.failure_class, 'provider_import_denied', 'an interface the gate does not provide');
  const ok = await rt.run(p.digest, { mode: 'r' }, LIMITS, hosts);
  assert.equal(ok.ok, true, JSON.stringify(ok));
  assert.equal(reads, 1);
});

test('the host side refuses a call to an interface that is not linked', async () => {
  let reads = 0;
  const hosts = { fs: { read: async () => (reads++, new Uint8Array(1)) }, log: () => {} };
  const bridge = new HostBridge(hosts, new Set(['latchgate:io/log']), 10, 1024);
  const a = await bridge.handle({ type: 'host', iface: 'latchgate:io/fs', fn: 'read', args: ['a.txt'] });
  assert.deepEqual(a.ok, false);
  assert.match(a.error, /^provider_import_denied: /);
  assert.equal(reads, 0);
  const linked = new HostBridge(hosts, new Set(['latchgate:io/fs']), 10, 1024);
  assert.equal((await linked.handle({ type: 'host', iface: 'latchgate:io/fs', fn: 'read', args: ['a.txt'] })).ok, true);
  assert.equal(reads, 1);
});

test('a cache entry swapped for an unmetered module is discarded and rebuilt', async (t) => {
  const dir = tempDir(t);
  const cacheDir = join(dir, 'cache');
  const p = await buildWat('limits', dir);
  const first = new ProviderRuntime({ cacheDir });
  await first.load(p.file, p.digest);
  await first.close();
  const [entry] = readdirSync(cacheDir).filter((n) => !n.startsWith('.'));
  assert.equal(`sha256:${entry}`, p.digest);
  // The attack: an endless loop without the fuel import, in place of the metered module.
  const core = readdirSync(join(cacheDir, entry)).find((n) => n.endsWith('.core.wasm'));
  const metered = readFileSync(join(cacheDir, entry, core));
  writeFileSync(join(cacheDir, entry, core), await parse('(module (func (export "execute") (loop $l (br $l))))'));
  const second = new ProviderRuntime({ cacheDir });
  t.after(() => second.close());
  await second.load(p.file, p.digest);
  assert.deepEqual(readFileSync(join(cacheDir, entry, core)), metered, 'the entry was rebuilt from the component');
  const r = await second.run(p.digest, { mode: 'l' }, { ...LIMITS, fuel: 10_000 }, {});
  assert.equal(r.failure_class, 'fuel_exhausted', JSON.stringify(r));
});

test('a component that declares its own types for a latchgate:io function cannot hand the host anything but the WIT shapes', async (t) => {
  const dir = tempDir(t);
  const fake = 'package latchgate:io@0.1.0;\ninterface http { fetch: func(req: u32) -> u32; }\nworld fake { import http; export execute: func(task-json: string) -> result<string, string>; }\n';
  const p = await buildWat('fake-http', dir, 'fake', fake);
  const rt = new ProviderRuntime({ cacheDir: join(dir, 'cache') });
  t.after(() => rt.close());
  await rt.load(p.file, p.digest);
  let calls = 0;
  const r = await rt.run(p.digest, {}, { ...LIMITS, required_imports: ['latchgate:io/http'] }, { http: async () => (calls++, { status: 200, headers: [], body: new Uint8Array() }) });
  assert.equal(r.ok, false, JSON.stringify(r));
  assert.match(r.error, /invalid_arguments: http\.fetch/);
  assert.equal(calls, 0, 'the HTTP host never saw the call');
  assert.equal(r.io_calls, 0, 'refused in the worker: never posted to the gate');
});

test('host arguments are checked and rebuilt before a host sees them', async () => {
  const seen = [];
  const hosts = { http: async (req) => (seen.push(req), { status: 200, headers: [], body: new Uint8Array() }), fs: { write: async (...a) => seen.push(a) }, log: (...a) => seen.push(a) };
  const bridge = new HostBridge(hosts, new Set(['latchgate:io/http', 'latchgate:io/fs', 'latchgate:io/log']), 10, 1024);
  const call = (iface, fn, args) => bridge.handle({ type: 'host', iface, fn, args });
  for (const [iface, fn, args] of [
    ['latchgate:io/http', 'fetch', [{ method: 1, url: 'u', headers: [] }]],
    ['latchgate:io/http', 'fetch', [{ method: 'GET', url: 'u', headers: [['a']] }]],
    ['latchgate:io/http', 'fetch', [{ method: 'GET', url: 'u', headers: [], body: 'text' }]],
    ['latchgate:io/fs', 'write', ['p', new Uint8Array(1), 'append']],
    ['latchgate:io/fs', 'write', [{ toString: () => 'p' }, new Uint8Array(1), 'create']],
  ]) {
    const a = await call(iface, fn, args);
    assert.equal(a.ok, false);
    assert.match(a.error, /^invalid_arguments: /);
  }
  bridge.log(['loud', 'm', []]); // a malformed log line is dropped, not an error
  assert.deepEqual(seen, []);
  assert.equal((await call('latchgate:io/log', 'log', ['info', 'm', []])).ok, false, 'log lines are posted, never answered');
  const ok = await call('latchgate:io/http', 'fetch', [{ method: 'GET', url: 'https://x/', headers: [['a', 'b']], extra: 'dropped' }]);
  assert.equal(ok.ok, true);
  assert.deepEqual(seen, [{ method: 'GET', url: 'https://x/', headers: [['a', 'b']] }]);
});
