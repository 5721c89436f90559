// `latchgate providers build|digest|check` as an operator runs them: a
// provider built from JavaScript, its digest, and a check of a component
// against the manifest that must trust it (a wrong file or an import the
// manifest does not list is a problem, exit 1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const BUILD = fileURLToPath(new URL('../../providers/build/', import.meta.url));
const SOURCE = fileURLToPath(new URL('../fixtures/providers/custom-js/provider.js', import.meta.url));

function lg(t, ...args) {
  const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-cli-prov-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'config') };
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const sha = (file) => `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;

test('providers digest prints the sha256 a manifest trusts the file by', (t) => {
  const r = lg(t, 'providers', 'digest', path.join(BUILD, 'fs.wasm'));
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), sha(path.join(BUILD, 'fs.wasm')));
  const missing = lg(t, 'providers', 'digest', '/nonexistent.wasm');
  assert.notEqual(missing.code, 0);
  assert.match(missing.err, /\/nonexistent\.wasm: cannot be read \(ENOENT\)/);
});

test("providers check: the built-in http_api is what http_fetch trusts; fs's component is not, and imports what http_fetch does not link", (t) => {
  const ok = lg(t, 'providers', 'check', path.join(BUILD, 'http_api.wasm'), '--action', 'http_fetch', '--json');
  assert.equal(ok.code, 0, ok.out + ok.err);
  // It logs nothing (its receipt says what it did): http alone, within what http_fetch links.
  assert.deepEqual(JSON.parse(ok.out).imports, ['latchgate:io/http']);
  const bad = lg(t, 'providers', 'check', path.join(BUILD, 'fs.wasm'), '--action', 'http_fetch');
  assert.equal(bad.code, 1, bad.out + bad.err);
  assert.match(bad.out, /PROBLEM +the manifest of http_fetch trusts sha256:[0-9a-f]{64} \(builtin:http_api\), this file is sha256:/);
  assert.match(bad.out, /PROBLEM +it imports latchgate:io\/fs, which http_fetch's required_imports does not list/);
  const notWasm = lg(t, 'providers', 'check', SOURCE);
  assert.equal(notWasm.code, 1);
  assert.match(notWasm.out, /PROBLEM +it does not compile as a provider/);
});

test('providers build makes a component from JavaScript whose digest it prints, and check lists its imports', (t) => {
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'latchgate-built-')), 'words.wasm');
  t.after(() => rmSync(path.dirname(out), { recursive: true, force: true }));
  const b = lg(t, 'providers', 'build', SOURCE, '--world', 'http-provider', '-o', out, '--json');
  assert.equal(b.code, 0, b.err);
  const built = JSON.parse(b.out);
  assert.equal(built.digest, sha(out));
  const c = lg(t, 'providers', 'check', out, '--json');
  assert.equal(c.code, 0, c.out + c.err);
  assert.deepEqual(JSON.parse(c.out).imports, ['latchgate:io/http', 'latchgate:io/log']);
});
