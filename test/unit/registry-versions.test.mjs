// Registry versions: append-only (a published (action_id, version) keeps its
// digest, across registry instances sharing one SQLite file), one declaration
// per version, and reload without restart that keeps the old set on error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareVersions, Registry, RegistryError } from '../../dist/gate/registry.js';
import { openDb } from '../../dist/ledger/db.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

function manifest(id, version, { limit = 64, extra = '' } = {}) {
  return [
    '# Risk rationale: a test action.',
    `action_id: "${id}"`,
    `version: "${version}"`,
    'provider_module_digest: "builtin:noop"',
    'io:',
    '  request_schema:',
    '    type: object',
    '    properties:',
    `      name: { type: string, maxLength: ${limit} }`,
    'risk_level: low',
    'verifier_kind: none',
    extra,
  ].join('\n');
}

function setup(t) {
  const dir = tempDir(t);
  const manifests = join(dir, 'manifests');
  mkdirSync(manifests);
  const db = join(dir, 'state/ledger.db');
  const open = (dirs = [manifests]) => {
    const handle = openDb(db);
    t.after(() => handle.close());
    const r = new Registry(handle, dirs, { builtin: false });
    r.migrate();
    return r;
  };
  const write = (name, text) => writeFileSync(join(manifests, name), text);
  return { dir, manifests, open, write, db };
}

test('a changed manifest under a published version is refused, across instances on one database', (t) => {
  const { open, write, dir } = setup(t);
  write('echo.yaml', manifest('echo', '1.0.0'));
  const a = open();
  a.load();
  const digest = a.get('echo').action_digest;

  // A second process (another registry on the same file) sees the edited file.
  const other = join(dir, 'other/manifests');
  mkdirSync(other, { recursive: true });
  writeFileSync(join(other, 'echo.yaml'), manifest('echo', '1.0.0', { limit: 65 }));
  const b = open([other]);
  assert.throws(
    () => b.load(),
    (e) => {
      assert.ok(e instanceof RegistryError);
      assert.equal(e.issues.length, 1);
      const [i] = e.issues;
      assert.match(i.file, /other\/manifests\/echo\.yaml$/);
      assert.equal(i.line, 3);
      assert.equal(i.field, 'version');
      assert.match(i.message, /action "echo" version 1\.0\.0 was published on \d{4}-\d\d-\d\dT.* with digest sha256:[0-9a-f]{64}/);
      assert.match(i.message, /bump the version \(e\.g\. 1\.0\.1\)/);
      assert.ok(i.message.includes(digest));
      return true;
    },
  );
  assert.deepEqual(b.list(), []);

  // The same content loads fine in the second instance; a bumped version too, beside the old one.
  writeFileSync(join(other, 'echo.yaml'), manifest('echo', '1.0.0'));
  writeFileSync(join(other, 'echo-1.0.1.yaml'), manifest('echo', '1.0.1', { limit: 65 }));
  b.load();
  assert.deepEqual(b.versions('echo'), ['1.0.0', '1.0.1']);
  assert.equal(b.get('echo', '1.0.0').action_digest, digest);
  assert.equal(b.get('echo').manifest.version, '1.0.1');

  // And the first instance, reloading an edited file, is refused too.
  write('echo.yaml', manifest('echo', '1.0.0', { limit: 1 }));
  const r = a.reload();
  assert.equal(r.ok, false);
  assert.match(r.message, /echo\.yaml:3: version: .*bump the version/);
  assert.equal(a.get('echo').action_digest, digest, 'the old set stays');
});

test('the version record survives reopening the database', (t) => {
  const { open, write, db } = setup(t);
  write('echo.yaml', manifest('echo', '2.0.0'));
  open().load();
  const h = openDb(db);
  const rows = h.prepare('SELECT action_id, version, digest, first_seen FROM manifest_versions').all();
  h.close();
  assert.equal(rows.length, 1);
  assert.equal(rows[0].action_id, 'echo');
  assert.equal(rows[0].version, '2.0.0');
  assert.match(rows[0].digest, /^sha256:[0-9a-f]{64}$/);
  write('echo.yaml', manifest('echo', '2.0.0', { extra: 'cost: 3' }));
  assert.throws(() => open().load(), /bump the version/);
});

test('two files declaring the same action_id and version are refused', (t) => {
  const { open, write } = setup(t);
  write('a.yaml', manifest('echo', '1.0.0'));
  write('b.yaml', manifest('echo', '1.0.0'));
  const r = open();
  assert.throws(() => r.load(), /b\.yaml:3: version: action "echo" version 1\.0\.0 is also declared in .*a\.yaml/);
});

test('the same action in two directories is refused, naming both files', (t) => {
  const { dir, open, write, manifests } = setup(t);
  write('a.yaml', manifest('echo', '1.0.0'));
  const second = join(dir, 'more');
  mkdirSync(second);
  writeFileSync(join(second, 'z.yaml'), manifest('echo', '1.0.0'));
  assert.throws(() => open([manifests, second]).load(), /more\/z\.yaml:3: version: .*also declared in .*manifests\/a\.yaml/);
});

test('reload without restart: new versions appear; on any error the old set stays', async (t) => {
  const { open, write, manifests } = setup(t);
  write('echo.yaml', manifest('echo', '1.0.0'));
  write('ping.yaml', manifest('ping', '1.0.0'));
  const r = open();
  const first = r.reload();
  assert.equal(first.ok, true);
  assert.equal(first.generation, 1);
  assert.equal(r.list().length, 2);

  // A new version and a new action, picked up by reload.
  write('echo-2.yaml', manifest('echo', '2.0.0'));
  write('pong.yaml', manifest('pong', '0.1.0'));
  const second = r.reload();
  assert.equal(second.ok, true);
  assert.equal(second.actions, 4);
  assert.equal(r.generation, 2);
  assert.equal(r.get('echo').manifest.version, '2.0.0');
  assert.equal(r.get('pong').manifest.version, '0.1.0');

  // One broken file: nothing of the new set is taken, not even the good new file.
  write('zeta.yaml', manifest('zeta', '1.0.0'));
  write('broken.yaml', manifest('broken', '1.0.0').replace('risk_level: low', 'risk_level: lowish'));
  const third = r.reload();
  assert.equal(third.ok, false);
  assert.equal(third.generation, 2);
  assert.match(third.message, /broken\.yaml:10: risk_level: expected one of low, medium, high, critical, got "lowish"/);
  assert.equal(r.get('zeta'), undefined, 'the new set was not swapped in');
  assert.equal(r.get('echo').manifest.version, '2.0.0');
  assert.equal(r.list().length, 3);
  assert.deepEqual(await r.validateRequest('ping', { name: 'x' }), { ok: true });
  // zeta was not recorded as published either: it can still change before it loads.
  write('zeta.yaml', manifest('zeta', '1.0.0', { limit: 3 }));
  rmSync(join(manifests, 'broken.yaml'));
  assert.equal(r.reload().ok, true);
  assert.equal(r.get('zeta').manifest.io.request_schema.properties.name.maxLength, 3);
  assert.equal(r.generation, 3);

  // A removed file disappears from the set on reload (its version stays published).
  rmSync(join(manifests, 'pong.yaml'));
  assert.equal(r.reload().ok, true);
  assert.equal(r.get('pong'), undefined);
});

test('load() throws and keeps the old set', (t) => {
  const { open, write } = setup(t);
  write('echo.yaml', manifest('echo', '1.0.0'));
  const r = open();
  r.load();
  write('bad.yaml', 'action_id: [\n');
  assert.throws(() => r.load(), (e) => e instanceof RegistryError && /bad\.yaml:\d+: YAML: /.test(e.message));
  assert.equal(r.get('echo').manifest.version, '1.0.0');
});

test('Registry.open migrates and loads', (t) => {
  const { manifests, write, db } = setup(t);
  write('echo.yaml', manifest('echo', '1.0.0'));
  const h = openDb(db);
  t.after(() => h.close());
  const r = Registry.open(h, [manifests], { builtin: false });
  assert.equal(r.list().length, 1);
});

test('semantic version order', () => {
  const sorted = ['0.0.1', '0.1.0', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.2.0', '1.10.0', '2.0.0', '10.0.0'];
  for (let i = 0; i < sorted.length; i++) {
    for (let j = 0; j < sorted.length; j++) {
      assert.equal(compareVersions(sorted[i], sorted[j]), Math.sign(i - j), `${sorted[i]} vs ${sorted[j]}`);
    }
  }
});

test('the highest version wins whatever the file order', (t) => {
  const { open, write } = setup(t);
  write('a.yaml', manifest('echo', '1.10.0'));
  write('b.yaml', manifest('echo', '1.9.0'));
  write('c.yaml', manifest('echo', '2.0.0-rc.1'));
  const r = open();
  r.load();
  assert.deepEqual(r.versions('echo'), ['1.9.0', '1.10.0', '2.0.0-rc.1']);
  assert.equal(r.get('echo').manifest.version, '2.0.0-rc.1');
});
