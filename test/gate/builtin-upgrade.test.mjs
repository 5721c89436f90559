// A gate keeps the built-in digests it read at start. When the installation's
// built-ins change under it, its calls are refused, and the answer tells an
// upgrade or rebuild (the recorded digest changed too: restart the gate) from
// a component changed without its digest (rebuild it, or look at who did).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('a built-in rebuilt under a running gate is refused with "restart the gate"; one changed without its digest, with "rebuild"', async (t) => {
  const inst = mkdtempSync(join(tmpdir(), 'latchgate-upgrade-'));
  t.after(() => rmSync(inst, { recursive: true, force: true }));
  cpSync(join(root, 'dist'), join(inst, 'dist'), { recursive: true });
  cpSync(join(root, 'providers', 'build'), join(inst, 'providers', 'build'), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(inst, 'node_modules'));
  const there = (m) => import(pathToFileURL(join(inst, 'dist', 'gate', m)).href);
  const [{ WasmProviders }, { ProviderTable }] = await Promise.all([there('wasm-providers.js'), there('providers.js')]);
  const providers = new WasmProviders({ cacheDir: join(inst, 'cache') });
  t.after(() => providers.close());
  const table = new ProviderTable();
  const manifest = { action_id: 'probe', provider_module_digest: 'builtin:http_api' };
  providers.register(table, [{ manifest, file: join(inst, 'probe.yaml') }]);
  const provider = table.get('builtin:http_api');
  assert.ok(provider, JSON.stringify([...providers.refused]));
  assert.equal(await provider.prepare(), undefined, 'the built-in as the gate started with it');

  const build = join(inst, 'providers', 'build');
  const original = readFileSync(join(build, 'http_api.wasm'));
  // Changed without its recorded digest (the digest file is what the gate read).
  copyFileSync(join(build, 'fs.wasm'), join(build, 'http_api.wasm'));
  const tampered = await provider.prepare();
  assert.equal(tampered.failure_class, 'provider_untrusted');
  assert.match(tampered.error, /http_api\.wasm has digest .*rebuild the provider/);
  assert.doesNotMatch(tampered.error, /restart/);
  // Rebuilt: the component and its recorded digest both changed.
  copyFileSync(join(build, 'fs.digest'), join(build, 'http_api.digest'));
  const rebuilt = await provider.prepare();
  assert.equal(rebuilt.failure_class, 'provider_untrusted');
  assert.match(rebuilt.error, /built-in provider http_api was rebuilt or upgraded since this gate started .*: restart the gate$/);
  // Back as it was: served again.
  copyFileSync(join(root, 'providers', 'build', 'http_api.digest'), join(build, 'http_api.digest'));
  writeFileSync(join(build, 'http_api.wasm'), original);
  assert.equal(await provider.prepare(), undefined);
});
