// The SOPS value cache (src/secrets/resolver.ts) and the gate's source order
// (src/gate/secret-sources.ts), over a real file: read when first needed,
// kept for cache_seconds, read again when the file changes (content, or a
// rename over it) or the reload marker is touched; the file wins over
// LATCHGATE_SECRET_*, and a shadowed variable is reported once. The loader
// here parses the file as JSON: what is tested is when it is called.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SecretResolver } from '../../dist/secrets/resolver.js';
import { GateSecrets } from '../../dist/gate/secret-sources.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

function store(t, cacheSeconds = 300) {
  const dir = tempDir(t);
  const file = join(dir, 'secrets.json');
  const marker = join(dir, 'secrets-reload');
  writeFileSync(file, JSON.stringify({ A: 'value-a-1', B: 'value-b-1' }));
  let reads = 0;
  const load = async () => {
    reads++;
    return new Map(Object.entries(JSON.parse(readFileSync(file, 'utf8'))));
  };
  const r = new SecretResolver({ file, load, cacheSeconds, reloadMarker: marker });
  return { dir, file, marker, r, reads: () => reads };
}

test('read once when first needed, then from memory while the file is the same', async (t) => {
  const s = store(t);
  assert.equal(s.reads(), 0, 'nothing is read before a value is needed');
  assert.equal(await s.r.get('A'), 'value-a-1');
  assert.equal(await s.r.get('B'), 'value-b-1');
  assert.equal(await s.r.get('C'), undefined);
  await Promise.all([s.r.get('A'), s.r.get('B')]);
  assert.equal(s.reads(), 1);
});

test('a changed file, a file renamed over it, or a touched reload marker is read again at the next use', async (t) => {
  const s = store(t);
  await s.r.get('A');
  writeFileSync(s.file, JSON.stringify({ A: 'value-a-2' }));
  assert.equal(await s.r.get('A'), 'value-a-2');
  assert.equal(await s.r.get('B'), undefined);
  // Same size, same mtime, new inode: what an editor's save-by-rename does.
  const next = join(s.dir, 'next.json');
  writeFileSync(next, JSON.stringify({ A: 'value-a-3' }));
  const st = new Date('2020-01-01T00:00:00Z');
  utimesSync(next, st, st);
  renameSync(next, s.file);
  assert.equal(await s.r.get('A'), 'value-a-3');
  const before = s.reads();
  assert.equal(await s.r.get('A'), 'value-a-3');
  assert.equal(s.reads(), before, 'unchanged: from memory');
  writeFileSync(s.marker, 'now');
  await s.r.get('A');
  assert.equal(s.reads(), before + 1, 'the marker dropped the cache');
});

test('cache_seconds 0 reads on every use; reload() reads now; a load that fails keeps nothing and fails every use', async (t) => {
  const s = store(t, 0);
  await s.r.get('A');
  await s.r.get('A');
  assert.equal(s.reads(), 2);
  assert.equal(await s.r.reload(), 2);
  writeFileSync(s.file, '{ not json');
  await assert.rejects(s.r.get('A'), SyntaxError);
  await assert.rejects(s.r.get('A'), SyntaxError);
  assert.throws(() => new SecretResolver({ file: s.file, load: async () => new Map(), cacheSeconds: -1 }), /cache_seconds/);
});

test('the gate: the file wins over LATCHGATE_SECRET_*, a shadowed variable is reported once, naming the file and never a value', async (t) => {
  const s = store(t);
  const warnings = [];
  const env = { LATCHGATE_SECRET_A: 'env-value-a', LATCHGATE_SECRET_E: 'env-value-e' };
  const g = new GateSecrets(s.r, s.marker, env, (m) => warnings.push(m));
  assert.equal(await g.get('A'), 'value-a-1');
  assert.equal(await g.get('A'), 'value-a-1');
  assert.equal(await g.get('E'), 'env-value-e');
  assert.equal(await g.get('Z'), undefined);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /secret A is set both in .*secrets\.json and as LATCHGATE_SECRET_A; the file's value is used/);
  assert.ok(!warnings[0].includes('value-a'));
  // Without a store: the environment alone; reload says there is no file and touches the marker.
  const none = new GateSecrets(undefined, s.marker, env, () => {});
  assert.equal(await none.get('A'), 'env-value-a');
  assert.deepEqual(await none.reload(), { file: null, secrets: 0 });
  assert.deepEqual(await g.reload(), { file: s.file, secrets: 2 });
});

test('decrypted values are kept cache_seconds (300, the default of [secrets]), then dropped: the next use reads the file again', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const s = store(t);
  assert.equal(await s.r.get('A'), 'value-a-1');
  t.mock.timers.tick(299_999);
  await s.r.get('A');
  assert.equal(s.reads(), 1, 'read again before 300 s had passed');
  t.mock.timers.tick(1);
  await s.r.get('A');
  assert.equal(s.reads(), 2, 'still held after 300 s');
  // The timer starts again with the new read.
  t.mock.timers.tick(299_999);
  await s.r.get('B');
  assert.equal(s.reads(), 2);
  const short = store(t, 5);
  await short.r.get('A');
  t.mock.timers.tick(5000);
  await short.r.get('A');
  assert.equal(short.reads(), 2, 'cache_seconds 5 held the values longer');
});
