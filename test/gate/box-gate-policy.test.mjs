// A box's gate leaves Cedar to its first decision when the build loaded the
// same policy set under the same Cedar (src/policy/cedar-checked.ts). Run on
// a copy of this installation, whose files a test may change: the first
// decision uses the policy texts read at open, not a file changed since (a
// permissive policy swapped in after open allows nothing); a Cedar package
// changed after open makes every decision a deny and readiness says why;
// changed before open, the gate loads at open and refuses to open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CedarEngine } from '../../dist/policy/cedar.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const INPUTS = new URL('../fixtures/policy/inputs.mjs', import.meta.url).href;
const WASM = 'node_modules/@cedar-policy/cedar-wasm/nodejs/cedar_wasm_bg.wasm';
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

test("a Cedar package changed after a box's gate opened: every decision is a deny and readiness says why; changed before, the gate does not open", (t) => {
  const root = copyInstall(tempDir(t));
  const { lines, stderr } = inBoxGate(root, join(tempDir(t), 'state'), `
    const g = await open();
    print(await g.gate.ready());
    writeFileSync(root + '/${WASM}', 'not webassembly');
    print(await decide(g));
    print(await decide(g));
    print(await g.gate.ready());
    g.close();
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
  assert.match(stderr, /the cedar policy engine did not load/);
  assert.equal(after.status, 'not_ready', JSON.stringify(after));
  assert.ok(after.checks.policy_engine_error, JSON.stringify(after));
  assert.notEqual(reopen, 'opened', 'a gate opened on the changed package loads Cedar at open, and fails');
});
