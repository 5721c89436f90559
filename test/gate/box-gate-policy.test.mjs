// A box's gate leaves Cedar to its first decision when the build loaded the
// same policy set under the same Cedar (src/policy/cedar-checked.ts). Run on
// a copy of this installation, whose files a test may change: the first
// decision uses the policy texts read at open, not a file changed since (a
// permissive policy swapped in after open allows nothing); a Cedar package
// changed after open (its module made to allow everything, or its
// WebAssembly broken) makes every decision a deny and readiness says why;
// changed before open, even only its exports map, the gate loads Cedar at
// open, which refuses to open when it cannot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CedarEngine } from '../../dist/policy/cedar.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const INPUTS = new URL('../fixtures/policy/inputs.mjs', import.meta.url).href;
const CEDAR = 'node_modules/@cedar-policy/cedar-wasm';
const WASM = `${CEDAR}/nodejs/cedar_wasm_bg.wasm`;
const GLUE = `${CEDAR}/nodejs/cedar_wasm.js`;
/** Appended to Cedar's module: every answer it gives becomes an allow. */
const ALLOW_EVERYTHING = `;{ const real = module.exports.statefulIsAuthorized; module.exports.statefulIsAuthorized = (c) => { const r = real(c); if (r.type === 'success') { r.response.decision = 'allow'; r.response.diagnostics.reason = []; } return r; }; }\n`;
const ALLOW_ALL = '@id("allow-all")\npermit (principal, action, resource);\n';

/** A copy of this installation at dir: its Cedar package copied (a test changes it), every other package linked, as `npm link` would. */
function copyInstall(dir) {
  for (const p of ['package.json', 'dist', 'policies', 'definitions', 'providers/build', 'build/Release/latchgate.node']) cpSync(join(ROOT, p), join(dir, p), { recursive: true });
  const nm = (...p) => join('node_modules', ...p);
  mkdirSync(join(dir, nm()));
  for (const m of readdirSync(join(ROOT, nm()))) {
    if (m.startsWith('.')) continue; // npm's own (.bin, .package-lock.json)
    if (m === '@cedar-policy') cpSync(join(ROOT, nm(m)), join(dir, nm(m)), { recursive: true });
    else if (!m.startsWith('@')) symlinkSync(join(ROOT, nm(m)), join(dir, nm(m)));
    else {
      mkdirSync(join(dir, nm(m)));
      for (const p of readdirSync(join(ROOT, nm(m)))) symlinkSync(join(ROOT, nm(m, p)), join(dir, nm(m, p)));
    }
  }
  return dir;
}

/** Runs `steps` (module code with g, root, decide() and print()) after opening a box's gate of the copy at root; resolves its printed lines. */
function inBoxGate(root, state, steps) {
  const script = `import { writeFileSync } from 'node:fs';
    const { openGate } = await import(${JSON.stringify(pathToFileURL(join(root, 'dist/gate/factory.js')).href)});
    const { input } = await import(${JSON.stringify(INPUTS)});
    const root = ${JSON.stringify(root)};
    const print = (x) => console.log(JSON.stringify(x));
    const config = { manifestDirs: [], principals: new Map(), operators: new Map(), policy: {}, publicBaseUrl: 'http://latchgate.local' };
    const open = () => openGate({ stateDir: ${JSON.stringify(state)}, config, role: 'sandbox' });
    const decide = (g) => g.ctx.policy.decide(input(), { acl: {}, allowlist: {} });
    ${steps}
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { lines: r.stdout.trim().split('\n').map((l) => JSON.parse(l)), stderr: r.stderr };
}

test("a box's gate decides with the policy texts it read at open, not with a file changed since", (t) => {
  const root = copyInstall(tempDir(t));
  const { lines } = inBoxGate(root, join(tempDir(t), 'state'), `
    const g = await open();
    writeFileSync(root + '/policies/latchgate.cedar', ${JSON.stringify(ALLOW_ALL)});
    print(await decide(g));
    g.close();
    // A gate opened now reads the new text: not the one the build loaded, so it loads at open, and allows.
    const h = await open();
    print(await decide(h));
    h.close();`);
  const [pinned, reread] = lines;
  assert.equal(pinned.allow, false, JSON.stringify(pinned));
  assert.match(pinned.deny_reason, /^deny-not-in-acl:/);
  assert.equal(pinned.policy_version.split('.')[0], CedarEngine.load().version.slice(0, 16), 'decided by the shipped set');
  assert.equal(reread.allow, true, 'a gate opened after the change decides by the new text');
});

test("a Cedar package changed after a box's gate opened: every decision is a deny and readiness says why; changed before, the gate loads Cedar at open", (t) => {
  const root = copyInstall(tempDir(t));
  const { lines, stderr } = inBoxGate(root, join(tempDir(t), 'state'), `
    const g = await open();
    print(await g.gate.ready());
    // Cedar's module made to allow everything, after open: refused, not run.
    const { appendFileSync } = await import('node:fs');
    appendFileSync(root + '/${GLUE}', ${JSON.stringify(ALLOW_EVERYTHING)});
    print(await decide(g));
    print(await decide(g));
    print(await g.gate.ready());
    g.close();
    // Its WebAssembly broken too: a gate opened now loads Cedar at open, and does not open.
    writeFileSync(root + '/${WASM}', 'not webassembly');
    try {
      (await open()).close();
      print('opened');
    } catch (e) {
      print(e.message);
    }`);
  const [before, first, second, after, reopen] = lines;
  assert.equal(before.status, 'ready', JSON.stringify(before));
  for (const d of [first, second]) {
    assert.equal(d.allow, false, JSON.stringify(d));
    assert.equal(d.deny_reason, 'policy_engine_unavailable', JSON.stringify(d));
  }
  assert.match(stderr, /the cedar policy engine did not load \(the Cedar package .* changed after this gate opened/);
  assert.equal(after.status, 'not_ready', JSON.stringify(after));
  assert.match(after.checks.policy_engine_error, /changed after this gate opened/, JSON.stringify(after));
  assert.notEqual(reopen, 'opened', 'a gate opened on the changed package loads Cedar at open, and fails');
});

test("a Cedar package whose exports lead to another module is not the one the build loaded: a box's gate loads it at open", (t) => {
  const root = copyInstall(tempDir(t));
  // The same module, in another directory, with a line that says when it runs.
  cpSync(join(root, CEDAR, 'nodejs'), join(root, CEDAR, 'other'), { recursive: true });
  const glue = join(root, CEDAR, 'other', 'cedar_wasm.js');
  writeFileSync(glue, `process.stdout.write('"cedar loaded"\\n');\n${readFileSync(glue, 'utf8')}`);
  const pj = join(root, CEDAR, 'package.json');
  const meta = JSON.parse(readFileSync(pj, 'utf8'));
  meta.exports['./nodejs'].import = './other/cedar_wasm.js';
  writeFileSync(pj, JSON.stringify(meta));
  const { lines } = inBoxGate(root, join(tempDir(t), 'state'), `
    const g = await open();
    print('opened');
    print(await decide(g));
    g.close();`);
  assert.deepEqual(lines.slice(0, 2), ['cedar loaded', 'opened'], 'Cedar was loaded at open');
  assert.equal(lines[2].allow, false, JSON.stringify(lines[2]));
});
