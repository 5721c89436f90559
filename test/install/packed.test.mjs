// latchgate installed like any npm CLI: `npm pack` (its prepack step builds
// the prebuilt addon), then `npm i -g --prefix` from the tarball into a clean
// prefix, with a clean npm cache and a PATH without a C++ toolchain, as root
// and as an unprivileged user (created as test/helpers/sandbox.mjs does). From
// there: doctor, a box, the gate (up + status), latchgate-mcp, the SDK's
// exports; then a broken addon, whose one-line message gives the command
// that repairs it, run as given: with the prebuilt binary intact it is put
// back without a compiler, with both broken it is compiled from source.
// Slow (npm installs from the registry): `make test-install`, not `make test`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODES, skipReason, testUser } from '../helpers/sandbox.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const isRoot = process.getuid() === 0;
let dir;
let tarball;
let noCompiler;
let sqlitePrebuilds;

/** The runner's environment without what npm passes to its scripts, as a user's shell has it. */
function cleanEnv(extra) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD' && k !== 'NODE_OPTIONS'));
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
}

/** Runs a command as the mode's user; resolves { status, stdout, stderr }. */
function run(mode, cmd, args, { env, cwd, timeoutMs = 300_000 } = {}) {
  const u = testUser();
  const ids = mode === 'user' && isRoot ? { uid: u.uid, gid: u.gid } : {};
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', reject);
    c.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

before(async () => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'latchgate-install-')));
  chmodSync(dir, 0o755);
  // npm pack runs prepack (the prebuilt addon, the providers) and prepare (tsc).
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] });
  const packed = JSON.parse(out.slice(out.search(/^\[/m))); // after what the lifecycle scripts print
  tarball = join(dir, packed[0].filename);
  chmodSync(tarball, 0o644);
  // Users get better-sqlite3's binary from its GitHub release (prebuild-install);
  // that host is out of reach here, so the same file is offered as a local prebuild.
  const require = createRequire(join(ROOT, 'package.json'));
  const bs3 = JSON.parse(readFileSync(require.resolve('better-sqlite3/package.json'), 'utf8')).version;
  const staged = join(dir, 'bs3-stage');
  mkdirSync(join(staged, 'build', 'Release'), { recursive: true });
  copyFileSync(require.resolve('better-sqlite3/build/Release/better_sqlite3.node'), join(staged, 'build', 'Release', 'better_sqlite3.node'));
  sqlitePrebuilds = join(dir, 'sqlite-prebuilds');
  mkdirSync(sqlitePrebuilds);
  execFileSync('tar', ['czf', join(sqlitePrebuilds, `better-sqlite3-v${bs3}-node-v${process.versions.modules}-linux-x64.tar.gz`), '-C', staged, 'build']);
  // node, npm and sh, and no compiler, make or python: what a user without a toolchain has.
  noCompiler = join(dir, 'no-compiler');
  mkdirSync(noCompiler);
  for (const b of ['node', 'npm', 'sh']) symlinkSync(realpathSync(execFileSync('sh', ['-c', `command -v ${b}`], { encoding: 'utf8' }).trim()), join(noCompiler, b));
  chmodSync(noCompiler, 0o755);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the tarball: the CLI, the SDK, the prebuilt linux-x64 addon and the sources to rebuild it; no tests, benchmarks or CI', () => {
  const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
  for (const f of ['package.json', 'README.md', 'LICENSE', 'dist/cli/main.js', 'dist/cli/latchgate-mcp.js', 'dist/sdk/index.js', 'dist/sdk/index.d.ts', 'prebuilds/linux-x64/latchgate.node', 'prebuilds/linux-x64/latchgate.node.json', 'binding.gyp', 'native/addon.cc', 'native/protocol.gen.h', 'scripts/build-addon.mjs', 'scripts/gen-protocol.mjs', 'scripts/build-providers.mjs', 'providers/build/http_api.wasm', 'providers/build/.source-hash', 'wit/latchgate-io.wit', 'definitions/manifests/http_fetch.yaml', 'policies/latchgate.cedar', 'profiles/claude-code.toml']) {
    assert.ok(files.includes(f), `${f} is in the tarball`);
  }
  for (const prefix of ['test/', 'bench/', '.ci/', 'src/', 'build/', 'node_modules/', '.cache/', '.npmrc', 'Makefile']) {
    assert.deepEqual(files.filter((f) => f.startsWith(prefix)), [], `nothing of ${prefix} in the tarball`);
  }
  assert.deepEqual(files.filter((f) => f.endsWith('.map')), []);
  const pkg = JSON.parse(execFileSync('tar', ['xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }));
  assert.equal(pkg.private, undefined);
  assert.deepEqual(pkg.os, ['linux']);
  assert.deepEqual(Object.keys(pkg.bin).sort(), ['latchgate', 'latchgate-mcp']);
  assert.deepEqual(Object.keys(pkg.exports).sort(), ['.', './package.json', './sdk']);
  for (const k of ['repository', 'homepage', 'bugs', 'keywords', 'engines']) assert.ok(pkg[k], `package.json has ${k}`);
});

for (const mode of MODES) {
  test(`[${mode}] npm i -g --prefix from the tarball without a compiler; doctor, a box, the gate; a broken addon is repaired by the command its message gives`, { skip: skipReason(mode), timeout: 900_000 }, async () => {
    const u = testUser();
    const base = join(dir, mode);
    const home = join(base, 'home');
    const ws = join(base, 'ws');
    const prefix = join(base, 'prefix');
    for (const d of [base, home, ws]) mkdirSync(d, { recursive: true });
    const offered = join(base, 'sqlite-prebuilds');
    execFileSync('cp', ['-r', sqlitePrebuilds, offered]);
    // The user's own home, prefix and cache; the workspace is the test user's in both modes, as in the sandbox tests.
    if (isRoot) execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, ws]);
    if (mode === 'user' && isRoot) execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, base]);
    const npmEnv = (path) => cleanEnv({ HOME: home, PATH: path, npm_config_cache: join(home, '.npm'), npm_config_better_sqlite3_local_prebuilds: offered });

    const install = await run(mode, 'npm', ['i', '-g', '--prefix', prefix, tarball], { env: npmEnv(noCompiler), cwd: home });
    assert.equal(install.status, 0, `${install.stdout}\n${install.stderr}`);
    assert.doesNotMatch(`${install.stdout}${install.stderr}`, /gyp info/);
    const pkgDir = join(prefix, 'lib', 'node_modules', 'latchgate');
    const addon = join(pkgDir, 'build', 'Release', 'latchgate.node');
    assert.equal(JSON.parse(readFileSync(`${addon}.json`, 'utf8')).from, 'prebuilt', 'the shipped binary, not a build');

    const env = { ...cleanEnv({}), HOME: home, XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'config'), XDG_RUNTIME_DIR: join(home, 'run'), PATH: `${join(prefix, 'bin')}:/usr/bin:/bin` };
    const latchgate = (...args) => run(mode, 'latchgate', args, { env, cwd: ws, timeoutMs: 120_000 });

    const version = await latchgate('--version');
    assert.equal(version.stdout.trim(), PKG.version, version.stderr);
    const doctor = await latchgate('doctor');
    assert.equal(doctor.status, 0, `${doctor.stdout}${doctor.stderr}`);
    assert.match(doctor.stdout, /^\[ok {2}\] live probe: built a box/m);
    assert.match(doctor.stdout, /^isolation: full$/m);
    const box = await latchgate('sandbox', '--workspace', ws, '--', '/bin/sh', '-c', 'echo in-the-box; touch made-in-box');
    assert.equal(box.status, 0, box.stderr);
    assert.match(box.stdout, /^in-the-box$/m);
    assert.ok(existsSync(join(ws, 'made-in-box')));
    const trueBox = await latchgate('sandbox', '--workspace', ws, '--', 'true');
    assert.equal(trueBox.status, 0, trueBox.stderr);
    const mcp = await run(mode, 'latchgate-mcp', ['--help'], { env, cwd: ws });
    assert.equal(mcp.status, 0, mcp.stderr);

    // The gate: up until it says it is ready, then status from another process.
    const ids = mode === 'user' && isRoot ? { uid: u.uid, gid: u.gid } : {};
    const up = spawn(join(prefix, 'bin', 'latchgate'), ['up', '--json'], { env, cwd: ws, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
    try {
      const ready = await new Promise((resolve, reject) => {
        let out = '';
        let err = '';
        up.stderr.on('data', (d) => (err += d));
        up.stdout.on('data', (d) => {
          out += d;
          if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]));
        });
        up.on('close', (code) => reject(new Error(`latchgate up exited ${code}: ${out}${err}`)));
      });
      assert.equal(ready.status, 'ready');
      const status = await latchgate('status', '--json');
      assert.equal(status.status, 0, status.stderr);
      const s = JSON.parse(status.stdout);
      assert.equal(s.gate_running, true);
      assert.equal(s.ledger.intact, true);
      assert.equal(s.client_socket, ready.client_socket);
    } finally {
      const closed = new Promise((resolve) => (up.exitCode === null ? up.on('close', resolve) : resolve()));
      up.kill('SIGTERM');
      await closed;
    }

    if (mode === 'root') {
      // The SDK from a project that depends on the package: both of its entry points.
      const proj = join(base, 'project');
      mkdirSync(join(proj, 'node_modules'), { recursive: true });
      writeFileSync(join(proj, 'package.json'), '{"type":"module"}');
      symlinkSync(pkgDir, join(proj, 'node_modules', 'latchgate'));
      const sdk = await run(mode, 'node', ['--input-type=module', '-e', "import { LatchGateClient } from 'latchgate'; import * as sdk from 'latchgate/sdk'; console.log(typeof LatchGateClient, sdk.LatchGateClient === LatchGateClient)"], { env, cwd: proj });
      assert.equal(sdk.stdout.trim(), 'function true', sdk.stderr);
    }

    // A broken addon: one line, and the command in it repairs the installation.
    writeFileSync(addon, 'not an addon');
    if (mode === 'root') writeFileSync(join(pkgDir, 'prebuilds', 'linux-x64', 'latchgate.node'), 'not an addon either');
    const broken = await latchgate('status');
    assert.equal(broken.status, 125);
    const fix = `npm rebuild -g --prefix ${prefix} latchgate`;
    assert.equal(broken.stderr, `latchgate: the native addon ${addon} does not load (file too short): run \`${fix}\`\n`);
    // With the prebuilt binary intact (user) no compiler is needed; without it (root) the sources are compiled.
    const repair = await run(mode, 'sh', ['-c', fix], { env: npmEnv(mode === 'root' ? process.env.PATH : noCompiler), cwd: home });
    assert.equal(repair.status, 0, `${repair.stdout}\n${repair.stderr}`);
    assert.equal(JSON.parse(readFileSync(`${addon}.json`, 'utf8')).from, mode === 'root' ? 'source' : 'prebuilt');
    const repaired = await latchgate('status', '--json');
    assert.equal(repaired.status, 0, repaired.stderr);
    assert.equal(JSON.parse(repaired.stdout).ledger.intact, true);
  });
}
