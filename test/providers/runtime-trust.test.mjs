// Which providers run, and with which host imports: the digest must match
// before anything is compiled, a component importing an interface the
// manifest does not list is refused before it is instantiated (and the host
// side checks again per call), and neither compile cache (the gate's, the
// installation's precompiled one) can be used to slip in a module without
// its fuel meter, or one metered by another compile step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs, { appendFileSync, cpSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createHash } from 'node:crypto';
import { parse } from '@bytecodealliance/jco';
import { ProviderRuntime } from '../../dist/providers/runtime.js';
import { HostBridge } from '../../dist/providers/runtime-bridge.js';
import { readCache, writeCache } from '../../dist/providers/runtime-cache.js';
import { compiled } from '../../dist/providers/runtime-compile.js';
import { compilerPackages } from '../../dist/providers/compiler-id.js';
import { builtinProvider } from '../../dist/providers/builtins.js';
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

/** One compiled entry of the fixture 'limits' in cacheDir: its directory and the metered bytes of its main core module. */
async function compiledEntry(t, dir, cacheDir) {
  const p = await buildWat('limits', dir);
  const rt = new ProviderRuntime({ cacheDir });
  await rt.load(p.file, p.digest);
  await rt.close();
  const entry = join(cacheDir, p.digest.slice('sha256:'.length));
  const core = readdirSync(entry).find((n) => n.endsWith('.core.wasm'));
  return { p, entry, core, metered: readFileSync(join(entry, core)) };
}

/** The attack on an entry: an endless loop without the fuel import, hashed into meta.json as if another compile step had made it. */
async function madeByAnotherCompiler(entry, core) {
  const bytes = await parse('(module (func (export "execute") (loop $l (br $l))))');
  writeFileSync(join(entry, core), bytes);
  const meta = JSON.parse(readFileSync(join(entry, 'meta.json'), 'utf8'));
  meta.modules[core] = createHash('sha256').update(bytes).digest('hex');
  meta.compiler = `sha256:${'0'.repeat(64)}`;
  writeFileSync(join(entry, 'meta.json'), JSON.stringify(meta));
}

test('an entry another compile step made (metering changed since) is never run: the gate\'s cache rebuilds it', async (t) => {
  const dir = tempDir(t);
  const cacheDir = join(dir, 'cache');
  const { p, entry, core, metered } = await compiledEntry(t, dir, cacheDir);
  await madeByAnotherCompiler(entry, core);
  const rt = new ProviderRuntime({ cacheDir });
  t.after(() => rt.close());
  await rt.load(p.file, p.digest);
  assert.deepEqual(readFileSync(join(entry, core)), metered, 'the entry was rebuilt from the component');
  const r = await rt.run(p.digest, { mode: 'l' }, { ...LIMITS, fuel: 10_000 }, {});
  assert.equal(r.failure_class, 'fuel_exhausted', JSON.stringify(r));
});

test('the installation\'s precompiled entry is used as it is when it verifies, and never when it does not (left in place, read-only to the gate)', async (t) => {
  const dir = tempDir(t);
  const { p, entry, core, metered } = await compiledEntry(t, dir, join(dir, 'made'));
  const prebuiltDir = join(dir, 'prebuilt');
  const name = p.digest.slice('sha256:'.length);
  cpSync(entry, join(prebuiltDir, name), { recursive: true });
  // A good entry: nothing compiled, nothing written to the gate's cache, and the module it runs is metered.
  const good = new ProviderRuntime({ cacheDir: join(dir, 'own-good'), prebuiltDir });
  t.after(() => good.close());
  await good.load(p.file, p.digest);
  assert.equal(existsSync(join(dir, 'own-good')), false, 'compiled although the installation had it');
  const r1 = await good.run(p.digest, { mode: 'l' }, { ...LIMITS, fuel: 10_000 }, {});
  assert.equal(r1.failure_class, 'fuel_exhausted', JSON.stringify(r1));
  // The same entry made by another compile step, and one whose module was swapped without its hash.
  for (const spoil of [() => madeByAnotherCompiler(join(prebuiltDir, name), core), () => writeFileSync(join(prebuiltDir, name, core), metered.subarray(8))]) {
    cpSync(entry, join(prebuiltDir, name), { recursive: true });
    await spoil();
    const spoiled = readFileSync(join(prebuiltDir, name, core));
    const own = join(dir, `own-${Math.random()}`);
    const rt = new ProviderRuntime({ cacheDir: own, prebuiltDir });
    t.after(() => rt.close());
    await rt.load(p.file, p.digest);
    assert.deepEqual(readFileSync(join(own, name, core)), metered, 'compiled into the gate\'s own cache');
    assert.deepEqual(readFileSync(join(prebuiltDir, name, core)), spoiled, 'the installation\'s entry was not touched');
    const r = await rt.run(p.digest, { mode: 'l' }, { ...LIMITS, fuel: 10_000 }, {});
    assert.equal(r.failure_class, 'fuel_exhausted', JSON.stringify(r));
  }
});

test('two gates on one state directory that compile the same component at once both succeed (the one that lands second keeps the first\'s entry)', async (t) => {
  const dir = tempDir(t);
  const { p, entry } = await compiledEntry(t, dir, join(dir, 'made'));
  const out = readCache(join(dir, 'made'), p.digest);
  assert.ok(out);
  const cacheDir = join(dir, 'shared');
  const final = join(cacheDir, p.digest.slice('sha256:'.length));
  // The other gate renames its entry into place just before this one renames its own.
  const renameSync = fs.renameSync;
  fs.renameSync = (from, to) => {
    if (to === final && from.includes('.tmp-')) cpSync(entry, final, { recursive: true });
    renameSync(from, to);
  };
  syncBuiltinESMExports();
  try {
    writeCache(cacheDir, p.digest, out);
  } finally {
    fs.renameSync = renameSync;
    syncBuiltinESMExports();
  }
  assert.deepEqual(readCache(cacheDir, p.digest), out);
  assert.deepEqual(readdirSync(cacheDir), [p.digest.slice('sha256:'.length)], 'no temporary directory left behind');
});

test('nothing is compiled or cached under a digest the bytes do not have, nor under a digest that is not one (it names the entry\'s directory)', async (t) => {
  const dir = tempDir(t);
  const a = await buildWat('limits', dir);
  const cacheDir = join(dir, 'cache');
  await assert.rejects(compiled(cacheDir, `sha256:${'1'.repeat(64)}`, readFileSync(a.file)), /has digest sha256:[0-9a-f]{64}, not sha256:1{64}/);
  assert.equal(existsSync(cacheDir), false);
  for (const bad of ['sha256:../../x', `sha256:${'A'.repeat(64)}`, 'builtin:fs']) {
    assert.throws(() => readCache(cacheDir, bad), /"sha256:<64 lower-case hex>"/, bad);
  }
});

test('the compile step\'s identity covers every package the compile worker loads, and a compile by a step that changed under the running gate is refused, not cached', async (t) => {
  const dir = tempDir(t);
  // Every module the worker loads, recorded by a loader hook.
  const loads = join(dir, 'loads.txt');
  const script = `import { Worker } from 'node:worker_threads'; import { readFileSync } from 'node:fs';
    const w = new Worker(new URL(${JSON.stringify(new URL('../../dist/providers/runtime-compile-job.js', import.meta.url).href)}), { workerData: readFileSync(${JSON.stringify(builtinProvider('fs').file)}) });
    w.once('message', (m) => { process.stdout.write(String(m.ok)); w.terminate(); });`;
  writeFileSync(join(dir, 'run-worker.mjs'), script);
  const r = spawnSync(process.execPath, ['--import', fileURLToPath(new URL('../fixtures/record-loads.mjs', import.meta.url)), join(dir, 'run-worker.mjs')], { encoding: 'utf8', env: { ...process.env, RECORD_LOADS: loads } });
  assert.equal(r.stdout, 'true', r.stderr);
  const packages = compilerPackages();
  const loaded = readFileSync(loads, 'utf8').split('\n').filter((u) => u.startsWith('file:') && u.includes('/node_modules/')).map((u) => fileURLToPath(u));
  assert.ok(loaded.length > 20, loaded.join('\n'));
  for (const f of loaded) assert.ok(packages.some((p) => f.startsWith(`${p}/`)), `${f} is outside the packages the compile step's identity covers`);
  // An installation whose compile step changes after this gate read its identity (an upgrade in place).
  const inst = join(dir, 'inst');
  cpSync(fileURLToPath(new URL('../../dist', import.meta.url)), join(inst, 'dist'), { recursive: true });
  symlinkSync(fileURLToPath(new URL('../../node_modules', import.meta.url)), join(inst, 'node_modules'));
  const copy = (m) => import(pathToFileURL(join(inst, 'dist', 'providers', m)).href);
  const [{ compiled: compiledThere }, { compilerId: idThere }] = await Promise.all([copy('runtime-compile.js'), copy('compiler-id.js')]);
  const before = idThere();
  appendFileSync(join(inst, 'dist', 'providers', 'runtime-fuel.js'), '\n// changed\n');
  const p = await buildWat('limits', dir);
  const cacheDir = join(dir, 'cache');
  await assert.rejects(compiledThere(cacheDir, p.digest, readFileSync(p.file)), /changed on disk since this gate started.*restart the gate/);
  assert.equal(idThere(), before, 'the gate keeps the identity it started with');
  assert.deepEqual(existsSync(cacheDir) ? readdirSync(cacheDir) : [], []);
});

test('a call worker is never started on call-worker code that changed under the running gate: a call that needs a new worker is refused, the warm one serves', async (t) => {
  const dir = tempDir(t);
  const inst = join(dir, 'inst');
  cpSync(fileURLToPath(new URL('../../dist', import.meta.url)), join(inst, 'dist'), { recursive: true });
  symlinkSync(fileURLToPath(new URL('../../node_modules', import.meta.url)), join(inst, 'node_modules'));
  const { ProviderRuntime: RuntimeThere } = await import(pathToFileURL(join(inst, 'dist', 'providers', 'runtime.js')).href);
  const p = await buildWat('limits', dir);
  const rt = new RuntimeThere({ cacheDir: join(dir, 'cache') });
  t.after(() => rt.close());
  await rt.load(p.file, p.digest);
  assert.equal((await rt.run(p.digest, { mode: 'g' }, LIMITS, {})).ok, true, 'before the change');
  // A gate that started before the change but had no call yet.
  const idle = new RuntimeThere({ cacheDir: join(dir, 'cache') });
  t.after(() => idle.close());
  await idle.load(p.file, p.digest);
  // A module the call worker imports changes (an upgrade in place): the fuel constants.
  appendFileSync(join(inst, 'dist', 'providers', 'runtime-fuel-names.js'), '\n// changed\n');
  const first = await idle.run(p.digest, { mode: 'g' }, LIMITS, {});
  assert.equal(first.failure_class, 'provider_untrusted', `its first call needs a worker: ${JSON.stringify(first)}`);
  const warm = await rt.run(p.digest, { mode: 'g' }, LIMITS, {});
  assert.equal(warm.ok, true, `the worker started before the change still serves: ${JSON.stringify(warm)}`);
  const trap = await rt.run(p.digest, { mode: 't' }, LIMITS, {});
  assert.equal(trap.failure_class, 'trap', 'the trap retires the warm worker');
  const r = await rt.run(p.digest, { mode: 'g' }, LIMITS, {});
  assert.equal(r.failure_class, 'provider_untrusted', JSON.stringify(r));
  assert.match(r.error, /changed on disk since this gate started.*restart the gate/);
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
