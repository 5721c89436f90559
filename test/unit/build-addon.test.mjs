// scripts/build-addon.mjs on a copy of the addon's sources: one quiet line
// per run (no node-gyp log unless it fails); nothing rebuilt when the sources
// did not change; a changed source recompiled alone, build/ kept; the
// prebuilt binary taken when it was made from the same sources and loads,
// with no compiler needed, and never when it is broken or from other
// sources; a failed build leaves the working addon in place and says what
// it needs. Every build compiles only what changed since this checkout's
// build (its objects are copied in), and links.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProblem } from '../../scripts/build-addon.mjs';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ADDON = 'build/Release/latchgate.node';
const PREBUILT = 'prebuilds/linux-x64/latchgate.node';

/**
 * The addon's sources and build script at dir, the dependencies linked, and
 * this checkout's compiled objects with their make dependencies: make then
 * compiles only what is newer than them (a full compile costs a minute of
 * CPU in a busy suite, and `npm ci` has just shown that one works). Times are
 * kept, so the sources stay older than their objects; without a build here
 * the first build compiles everything.
 */
function sources(dir) {
  for (const p of ['package.json', 'binding.gyp', 'native', 'scripts/build-addon.mjs', 'scripts/gen-protocol.mjs']) cpSync(join(ROOT, p), join(dir, p), { recursive: true, preserveTimestamps: true });
  for (const p of ['build/Release/obj.target', 'build/Release/.deps']) if (existsSync(join(ROOT, p))) cpSync(join(ROOT, p), join(dir, p), { recursive: true, preserveTimestamps: true });
  // node-addon-api copied, not linked: its include path, relative to build/, is then the checkout's, and so is every compile command make compares.
  mkdirSync(join(dir, 'node_modules'));
  for (const m of readdirSync(join(ROOT, 'node_modules'))) {
    if (m === 'node-addon-api') cpSync(join(ROOT, 'node_modules', m), join(dir, 'node_modules', m), { recursive: true, preserveTimestamps: true });
    else symlinkSync(join(ROOT, 'node_modules', m), join(dir, 'node_modules', m));
  }
  return dir;
}

/** A directory with node alone: no compiler, make or python for node-gyp. */
function nodeOnly(t) {
  const dir = tempDir(t);
  symlinkSync(realpathSync(process.execPath), join(dir, 'node'));
  return dir;
}

test('build-addon: quiet, incremental, the prebuilt binary when it fits, and a failed build keeps the addon', { timeout: 600_000 }, (t) => {
  const dir = sources(tempDir(t));
  const noCompiler = nodeOnly(t);
  const build = (args = [], path = process.env.PATH) => spawnSync(process.execPath, [join(dir, 'scripts/build-addon.mjs'), ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, PATH: path, npm_config_build_from_source: '' } });
  const stamp = (f = ADDON) => JSON.parse(readFileSync(join(dir, `${f}.json`), 'utf8'));
  const obj = (name) => statSync(join(dir, 'build/Release/obj.target/latchgate/native', `${name}.o`)).mtimeMs;
  const built = () => statSync(join(dir, ADDON));

  // From source, in one line.
  const first = build();
  assert.equal(first.status, 0, first.stdout + first.stderr);
  assert.match(first.stdout, /^build-addon: built build\/Release\/latchgate\.node from source in \d+ s\n$/);
  assert.equal(first.stderr, '');
  assert.equal(stamp().from, 'source');
  const addon = createRequire(import.meta.url)(join(dir, ADDON));
  assert.equal(typeof addon.landlockAbi(), 'number');

  // Unchanged sources: nothing is built, the file stays as it is.
  const before = built();
  const again = build();
  assert.equal(again.stdout, 'build-addon: build/Release/latchgate.node is up to date\n');
  assert.equal(built().ino, before.ino);
  assert.equal(built().mtimeMs, before.mtimeMs);

  // One changed source: that file is compiled again, the others' objects are kept (build/ is not deleted).
  const spawnObj = obj('spawn');
  const fdpassObj = obj('fdpass');
  appendFileSync(join(dir, 'native/fdpass.cc'), '// changed\n');
  const changed = build();
  assert.equal(changed.status, 0, changed.stdout + changed.stderr);
  assert.match(changed.stdout, /^build-addon: built .* from source in \d+ s\n$/);
  assert.equal(obj('spawn'), spawnObj);
  assert.ok(obj('fdpass') > fdpassObj);

  // npm pack's step: the fresh build becomes the prebuilt binary, stamped with its sources.
  const pack = build(['--prebuild']);
  assert.equal(pack.stdout, 'build-addon: build/Release/latchgate.node is up to date; copied into prebuilds/linux-x64/\n');
  assert.equal(stamp(PREBUILT).sources, stamp().sources);

  // A damaged addon with a current stamp is not current: the prebuilt binary replaces it, no compiler needed.
  writeFileSync(join(dir, ADDON), 'damaged');
  const fromPrebuilt = build([], noCompiler);
  assert.equal(fromPrebuilt.status, 0, fromPrebuilt.stdout + fromPrebuilt.stderr);
  assert.equal(fromPrebuilt.stdout, `build-addon: build/Release/latchgate.node: the prebuilt linux-x64 binary loads in Node ${process.version}\n`);
  assert.equal(stamp().from, 'prebuilt');
  assert.deepEqual(readFileSync(join(dir, ADDON)), readFileSync(join(dir, PREBUILT)));

  // --from-source never takes it (npm's --build-from-source neither).
  const forced = build(['--from-source']);
  assert.match(forced.stdout, /^build-addon: built .* from source/);
  assert.equal(stamp().from, 'source');

  // A broken prebuilt binary is not taken: the sources are built.
  writeFileSync(join(dir, PREBUILT), 'broken');
  rmSync(join(dir, ADDON));
  const brokenPrebuilt = build();
  assert.match(brokenPrebuilt.stdout, /^build-addon: built .* from source/, brokenPrebuilt.stderr);
  assert.equal(loadProblem(join(dir, ADDON)), undefined);

  // A prebuilt binary of other sources is not taken either; the build that must then happen fails
  // without a compiler: the one-line reason, node-gyp's log before it, and the working addon left in place.
  build(['--prebuild']);
  appendFileSync(join(dir, 'native/relay.cc'), '// changed\n');
  const working = readFileSync(join(dir, ADDON));
  const failed = build([], noCompiler);
  assert.equal(failed.status, 1);
  assert.equal(failed.stdout, '');
  assert.match(failed.stderr, /gyp ERR!/);
  assert.match(failed.stderr, /\nbuild-addon: could not build build\/Release\/latchgate\.node from source \(node-gyp failed\)\. It needs a C\+\+17 compiler, make and python3 \(Debian: apt-get install g\+\+ make python3\), and Node's headers .*\n$/);
  assert.deepEqual(readFileSync(join(dir, ADDON)), working);
  assert.ok(!existsSync(join(dir, `${ADDON}.json`)), 'no stamp: the next run builds');
});

test('build-addon checks a binary in a child process and says in one line why it does not load', (t) => {
  const dir = tempDir(t);
  assert.equal(loadProblem(join(ROOT, ADDON)), undefined);
  assert.equal(loadProblem(join(dir, 'none.node')), 'missing');
  mkdirSync(join(dir, 'x'));
  writeFileSync(join(dir, 'x', 'bad.node'), 'not elf');
  assert.match(loadProblem(join(dir, 'x', 'bad.node')), /^Error: .*bad\.node: (invalid ELF header|file too short)$/);
});
