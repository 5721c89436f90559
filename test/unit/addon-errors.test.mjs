// A missing or broken addon (src/native/addon.ts): every command says so in
// one line that names the file and the command that fixes it, with no stack
// trace; doctor reports it as its failing check, and the MCP server, which
// never loads it, still serves (here and as latchgate-mcp). Each
// command is run for real on a copy of this installation whose addon is
// missing, not a shared object, empty, or another library. The commands
// are read from the CLI's own help, so a new one is covered without listing it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonFix } from '../../dist/native/addon.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ADDON = 'build/Release/latchgate.node';

/** A copy of this installation at dir (dependencies linked), its addon as given. */
function copyInstall(dir) {
  for (const p of ['package.json', 'dist', 'profiles', 'definitions', 'policies', 'providers/build', ADDON]) cpSync(join(ROOT, p), join(dir, p), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

function environment(home) {
  return { PATH: process.env.PATH, HOME: home, XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'config'), XDG_RUNTIME_DIR: join(home, 'run') };
}

const run = (bin, args, env, cwd) =>
  new Promise((resolve) => {
    const c = spawn(process.execPath, [bin, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('close', (status) => resolve({ args, status, stdout, stderr }));
  });

/** Every leaf command of the CLI, as argv with a placeholder for each required argument, read from its --help. */
async function commands(main, env) {
  const leaves = async (path) => {
    const text = (await run(main, [...path, '--help'], env)).stdout;
    // The Commands: section only: it ends at the next section (Files:, Exit status:), whose lines are no commands.
    const block = text.split(/^Commands:$/m)[1]?.split(/^\S/m)[0];
    if (path.length > 3) throw new Error(`commands nested deeper than any latchgate has: ${path.join(' ')}`);
    if (block === undefined) {
      const usage = text.match(/^Usage: .*$/m)[0];
      return [[...path, ...[...usage.matchAll(/<[^>]+>/g)].map(() => 'x')]];
    }
    const names = [...block.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]).filter((n) => n !== 'help');
    // Two at a time (four with the level below): all at once made some 40 processes on a 2-core machine and starved the other tests.
    return (await inBatches(names, 2, (n) => leaves([...path, n]))).flat();
  };
  return leaves([]);
}

async function inBatches(items, size, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

const BROKEN = {
  missing: (f) => rmSync(f),
  'not a shared object': (f) => copyFileSync('/bin/true', f),
  empty: (f) => writeFileSync(f, ''),
  'another library': (f) => copyFileSync(createRequire(join(ROOT, 'package.json')).resolve('better-sqlite3/build/Release/better_sqlite3.node'), f),
};
const SAYS = {
  missing: 'the native addon is missing \\(<file>\\)',
  'not a shared object': 'the native addon <file> does not load \\([^\\n]+\\)', // dlopen's words (glibc: "cannot dynamically load position-independent executable")
  empty: 'the native addon <file> does not load \\(file too short\\)',
  'another library': 'the native addon <file> is from another version of latchgate \\(it has no spawn, landlockAbi, .*\\)',
};
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('a working addon: the copy runs (the legitimate path the broken copies are compared with)', async (t) => {
  const home = tempDir(t);
  const root = copyInstall(join(tempDir(t), 'latchgate'));
  const r = await run(join(root, 'dist/cli/main.js'), ['status', '--json'], environment(home), home);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).gate_running, false);
});

for (const [kind, breakIt] of Object.entries(BROKEN)) {
  test(`an addon that is ${kind === 'missing' ? 'missing' : kind}: every command says so in one line with the fix; doctor reports it`, async (t) => {
    const home = tempDir(t);
    const root = copyInstall(join(tempDir(t), 'latchgate'));
    const file = join(root, ADDON);
    breakIt(file);
    const env = environment(home);
    const main = join(root, 'dist/cli/main.js');
    const line = new RegExp(`^latchgate: ${SAYS[kind].replace('<file>', escape(file))}: run \`npm run build\` in ${escape(root)}\n$`);
    // Every command for one kind of damage; one command stands for the others (the same loader says it).
    const argvs = kind === 'not a shared object' ? await commands(main, env) : [['status']];
    assert.ok(argvs.length > 30 || kind !== 'not a shared object', `commands read from --help: ${argvs.map((a) => a.join(' ')).join(', ')}`);
    // What commander asks for before any action runs: a required option gets a placeholder, a choice its first value.
    const runGiving = async (args) => {
      const r = await run(main, args, env, home);
      const asked = r.stderr.match(/^latchgate: required option '(?:-\w, )?(--[a-z-]+)/);
      if (asked) return runGiving([...args, asked[1], 'x']);
      const choice = r.stderr.match(/^latchgate: option '(--[a-z-]+) [^']*' argument 'x' is invalid\. Allowed choices are ([a-z-]+)/);
      if (choice) return runGiving(args.map((a, i) => (args[i - 1] === choice[1] ? choice[2] : a)));
      return r;
    };
    const results = await inBatches(argvs, 4, runGiving);
    for (const r of results) {
      if (r.args[0] === 'mcp' && r.args[1] === 'serve') {
        // Never loads the addon (its calls go through the gate's socket): it serves, and ends with its input.
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /^latchgate mcp: serving the gate at /);
        continue;
      }
      if (r.args[0] === 'doctor') {
        assert.equal(r.status, 1, `${r.stdout}${r.stderr}`);
        assert.equal(r.stderr, '');
        assert.match(r.stdout, new RegExp(`^\\[FAIL\\] native addon: ${SAYS[kind].replace('<file>', escape(file))}\n {7}fix: run \`npm run build\` in ${escape(root)}\nisolation: unavailable\n$`, 'm'));
        continue;
      }
      assert.equal(r.status, 125, `latchgate ${r.args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, line, `latchgate ${r.args.join(' ')}`);
      assert.equal(r.stdout, '', `latchgate ${r.args.join(' ')}`);
    }
    const doctorJson = await run(main, ['doctor', '--json'], env, home);
    const check = JSON.parse(doctorJson.stdout).checks.at(-1);
    assert.equal(check.name, 'native addon');
    assert.equal(check.fix, `run \`npm run build\` in ${root}`);
    const mcp = await run(join(root, 'dist/cli/latchgate-mcp.js'), [], env, home);
    assert.equal(mcp.status, 0, mcp.stderr);
    assert.doesNotMatch(mcp.stderr, /native addon/);
    // What needs no addon still works: the version, and the help that lists the commands.
    const version = await run(main, ['--version'], env, home);
    assert.equal(version.status, 0, version.stderr);
  });
}

test('the fix names the way latchgate was installed: a global prefix, a project, a checkout', () => {
  assert.equal(addonFix('/usr/local/lib/node_modules/latchgate'), 'run `npm rebuild -g --prefix /usr/local latchgate`');
  assert.equal(addonFix('/home/al ice/.npm-global/lib/node_modules/latchgate'), "run `npm rebuild -g --prefix '/home/al ice/.npm-global' latchgate`");
  assert.equal(addonFix('/srv/app/node_modules/latchgate'), 'run `npm rebuild latchgate` in /srv/app');
  assert.equal(addonFix('/home/dev/latchgate'), 'run `npm run build` in /home/dev/latchgate');
});
