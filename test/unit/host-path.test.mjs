// The launcher's PATH (host-path.ts): what the host runs later through a PATH
// directory the box can write. A node_modules directory on PATH stays
// writable for npm but the names the host runs by itself (node, latchgate,
// npm...) do not; a relative or empty entry is refused unless asked for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { protectionPlan } from '../../dist/sandbox/protected-paths.js';
import { buildSandboxPlan } from '../../dist/sandbox/plan.js';
import { resolveIdentity } from '../../dist/sandbox/identity.js';
import { HOST_RUN_NAMES, checkRelativePath, pathRequests } from '../../dist/sandbox/host-path.js';
import { LaunchError } from '../../dist/core/errors.js';
import { assertLaunchError, tempDir } from '../fixtures/unit/helpers.mjs';

const byPath = (actions) => Object.fromEntries(actions.map((a) => [a.path, a]));
const SYSTEM = '/usr/local/bin:/usr/bin:/bin';
const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

function facts(path) {
  const shell = existsSync('/bin/bash') ? '/bin/bash' : '/bin/sh';
  return {
    identity: resolveIdentity({ uid: 1000, gid: 1000, env: {}, passwd: `alice:x:1000:1000:Alice:/home/alice:${shell}\n`, group: 'alice:x:1000:\n', workspaceOwner: { uid: 1000, gid: 1000 } }),
    env: path === undefined ? {} : { PATH: path },
    landlockAbi: 7,
    hardLimits: { nofile: 1048576, nproc: 100000 },
    terminal: null,
    homes: [],
  };
}
const options = (workspace, over = {}) => ({ workspace, ro: [], rw: [], passEnv: [], allowHosts: [], command: ['/bin/true'], strictNet: false, allowDegraded: false, limits: {}, listenPorts: [], ...over });

test('the names latchgate needs are among those a node_modules directory on PATH keeps read-only', () => {
  for (const n of ['node', 'nodejs', 'latchgate', 'latchgate-mcp', 'npm', 'npx', 'corepack', 'yarn', 'yarnpkg', 'pnpm', 'pnpx']) assert.ok(HOST_RUN_NAMES.includes(n), n);
});

test('an absolute node_modules/.bin in the workspace on PATH: node, latchgate, npm... read-only (placeholders where missing); the directory itself stays writable', (t) => {
  const ws = tempDir(t);
  const bin = join(ws, 'node_modules/.bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'tsc'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(join(bin, 'npm'), '#!/bin/sh\n', { mode: 0o755 });
  const a = byPath(protectionPlan([ws], [], { path: `${bin}:${SYSTEM}` }).actions);
  for (const n of HOST_RUN_NAMES.filter((x) => x !== 'npm')) assert.deepEqual(a[join(bin, n)], { action: 'placeholder', path: join(bin, n), type: 'file' }, n);
  assert.deepEqual(a[join(bin, 'npm')], { action: 'readonly', path: join(bin, 'npm'), type: 'file' });
  // Writable, only pinned so it cannot be renamed away; a package's own bin is left alone.
  assert.deepEqual(a[bin], { action: 'pin', path: bin });
  assert.deepEqual(a[join(ws, 'node_modules')], { action: 'pin', path: join(ws, 'node_modules') });
  assert.equal(a[join(bin, 'tsc')], undefined);
});

test('node_modules/.bin on PATH: a symlink named node is covered and its target in the workspace read-only; a directory named node stays as it is', (t) => {
  const ws = tempDir(t);
  const bin = join(ws, 'node_modules/.bin');
  mkdirSync(join(ws, 'node_modules/node/bin'), { recursive: true });
  writeFileSync(join(ws, 'node_modules/node/bin/node'), '#!/bin/sh\n', { mode: 0o755 });
  mkdirSync(bin, { recursive: true });
  symlinkSync('../node/bin/node', join(bin, 'node'));
  symlinkSync('/nonexistent-lg/latchgate', join(bin, 'latchgate'));
  mkdirSync(join(bin, 'npx'));
  const a = byPath(protectionPlan([ws], [], { path: `${SYSTEM}:${bin}` }).actions);
  assert.deepEqual(a[join(bin, 'node')], { action: 'mask-symlink', path: join(bin, 'node') });
  assert.deepEqual(a[join(ws, 'node_modules/node/bin/node')], { action: 'readonly', path: join(ws, 'node_modules/node/bin/node'), type: 'file' });
  assert.deepEqual(a[join(bin, 'latchgate')], { action: 'mask-symlink', path: join(bin, 'latchgate') });
  assert.deepEqual(a[join(bin, 'npx')], { action: 'readonly', path: join(bin, 'npx'), type: 'dir' });
});

test('a symlinked node_modules/.bin on PATH: the names are kept read-only where the link leads, too', (t) => {
  const ws = tempDir(t);
  mkdirSync(join(ws, 'deps/.bin'), { recursive: true });
  symlinkSync('deps', join(ws, 'node_modules'));
  const actions = protectionPlan([ws], [], { path: `${join(ws, 'node_modules/.bin')}:${SYSTEM}` }).actions;
  const a = byPath(actions);
  assert.deepEqual(a[join(ws, 'deps/.bin/node')], { action: 'placeholder', path: join(ws, 'deps/.bin/node'), type: 'file' });
  assert.deepEqual(a[join(ws, 'deps/.bin/latchgate')], { action: 'placeholder', path: join(ws, 'deps/.bin/latchgate'), type: 'file' });
  assert.deepEqual(a[join(ws, 'node_modules')], { action: 'mask-symlink', path: join(ws, 'node_modules') });
});

test('PATH entries other than node_modules in the workspace stay read-only as a whole; written with a trailing slash or dots too', (t) => {
  const ws = tempDir(t);
  mkdirSync(join(ws, 'bin'));
  const a = byPath(protectionPlan([ws], [], { path: `${ws}/bin/:${ws}/./tools//bin:${SYSTEM}` }).actions);
  assert.deepEqual(a[join(ws, 'bin')], { action: 'readonly', path: join(ws, 'bin'), type: 'dir' });
  assert.deepEqual(a[join(ws, 'tools/bin')], { action: 'placeholder', path: join(ws, 'tools/bin'), type: 'dir' });
});

test('PATH entries outside the writable trees, node_modules ones too, protect nothing; an unset PATH neither', (t) => {
  const ws = tempDir(t);
  const other = tempDir(t);
  mkdirSync(join(other, 'node_modules/.bin'), { recursive: true });
  const base = protectionPlan([ws], [], {}).actions.map((a) => a.path).sort();
  const withPath = protectionPlan([ws], [], { path: `${join(other, 'node_modules/.bin')}:${join(other, 'bin')}:${SYSTEM}` }).actions.map((a) => a.path).sort();
  assert.deepEqual(withPath, base);
  assert.deepEqual(pathRequests(undefined), []);
});

test('relative and empty PATH entries are refused, naming the entry, its position and the fix', (t) => {
  const ws = tempDir(t);
  const cases = [
    [`node_modules/.bin:${SYSTEM}`, ['PATH entry 1 "node_modules/.bin" is relative']],
    [`${SYSTEM}:.`, ['PATH entry 4 "." is relative']],
    [`/usr/bin:./bin:/bin`, ['PATH entry 2 "./bin" is relative']],
    [`/usr/bin::/bin`, ['PATH entry 2 is empty']],
    [`:/usr/bin`, ['PATH entry 1 is empty']],
    [`/usr/bin:`, ['PATH entry 2 is empty']],
    ['', ['PATH entry 1 is empty']],
    [`bin:/usr/bin:`, ['PATH entry 1 "bin" is relative', 'entry 3, empty']],
    // bash expands a leading ~ when it searches; execvp and `env node` look for a directory named ~ below the current one.
    [`~/bin:${SYSTEM}`, ['PATH entry 1 "~/bin" is relative', '"$HOME/bin"']],
  ];
  for (const [path, patterns] of cases) {
    assertLaunchError(() => buildSandboxPlan(options(ws), facts(path)), LaunchError, ...patterns, 'remove the entry from PATH or make it absolute', '--allow-relative-path');
    assert.throws(() => checkRelativePath(path, false), (e) => e instanceof LaunchError && e.exitCode === 125, path);
  }
});

test('--allow-relative-path launches and records the weaker mode; an absolute PATH records nothing', (t) => {
  const ws = tempDir(t);
  const plan = buildSandboxPlan(options(ws, { allowRelativePath: true }), facts(`.:node_modules/.bin::${SYSTEM}`));
  assert.deepEqual(plan.degraded, ['relative-path']);
  assert.deepEqual(JSON.parse(JSON.stringify(plan)).degraded, ['relative-path']);
  // Asked for but not needed: nothing weaker.
  assert.deepEqual(buildSandboxPlan(options(ws, { allowRelativePath: true }), facts(SYSTEM)).degraded, []);
  // Only absolute entries, none of them writable in the box: nothing refused, nothing recorded.
  assert.deepEqual(buildSandboxPlan(options(ws), facts(`/opt/x/node_modules/.bin:${SYSTEM}`)).degraded, []);
  assert.deepEqual(buildSandboxPlan(options(ws), facts(undefined)).degraded, []);
});

test('the workspace or a --rw directory itself on PATH (directly or through a symlink) is refused: it cannot be read-only in the box', (t) => {
  const ws = tempDir(t);
  const rw = tempDir(t);
  const links = tempDir(t);
  symlinkSync(ws, join(links, 'proj'));
  assertLaunchError(() => buildSandboxPlan(options(ws), facts(`${SYSTEM}:${ws}/`)), LaunchError, `PATH entry 4 "${ws}/" is the directory mounted read-write by --workspace ${ws}`, 'remove it from PATH');
  assertLaunchError(() => buildSandboxPlan(options(ws), facts(`${join(links, 'proj')}:${SYSTEM}`)), LaunchError, 'PATH entry 1', `--workspace ${ws}`);
  assertLaunchError(() => buildSandboxPlan(options(ws, { rw: [rw] }), facts(`${rw}:${SYSTEM}`)), LaunchError, `--rw ${rw}`);
  // Below a root or above it: the directory is kept read-only, or the box cannot write there at all.
  assert.deepEqual(buildSandboxPlan(options(ws), facts(`${join(ws, 'bin')}:${join(ws, '..')}:${SYSTEM}`)).degraded, []);
  // A node_modules directory mounted read-write and on PATH: the names in it are kept instead.
  const nm = join(ws, 'node_modules/.bin');
  mkdirSync(nm, { recursive: true });
  const plan = buildSandboxPlan(options(ws, { rw: [nm] }), facts(`${nm}:${SYSTEM}`));
  assert.ok(plan.protectedPaths.some((a) => a.path === join(nm, 'node') && a.action === 'placeholder'));
});

test('the command line: a relative PATH entry exits 125 naming it; --allow-relative-path (in --help) runs and is recorded in the --dry-run plan', (t) => {
  const root = tempDir(t, 'latchgate-hostpath-');
  const ws = join(root, 'project');
  mkdirSync(ws);
  const env = { HOME: root, XDG_STATE_HOME: join(root, 'state'), XDG_CONFIG_HOME: join(root, 'config'), XDG_RUNTIME_DIR: join(root, 'run') };
  const run = (path, ...args) => spawnSync(process.execPath, [MAIN, 'sandbox', ...args], { encoding: 'utf8', cwd: ws, env: { ...env, PATH: path } });
  const refused = run(`node_modules/.bin:${SYSTEM}`, '--dry-run', '--workspace', ws, '--', '/bin/true');
  assert.equal(refused.status, 125, refused.stderr);
  assert.match(refused.stderr, /PATH entry 1 "node_modules\/.bin" is relative.*--allow-relative-path/);
  assert.equal(refused.stdout, '');
  const allowed = run(`${SYSTEM}::`, '--dry-run', '--allow-relative-path', '--workspace', ws, '--', '/bin/true');
  assert.equal(allowed.status, 0, allowed.stderr);
  assert.deepEqual(JSON.parse(allowed.stdout).degraded, ['relative-path']);
  const clean = run(SYSTEM, '--dry-run', '--workspace', ws, '--', '/bin/true');
  assert.equal(clean.status, 0, clean.stderr);
  assert.deepEqual(JSON.parse(clean.stdout).degraded, []);
  assert.match(run(SYSTEM, '--help').stdout, /--allow-relative-path/);
});
