// --sandbox-config FILE: the [sandbox.agent] keys at the top level of a file
// of their own, replacing that section; unknown keys refused with the nearest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseStandaloneSandboxConfig } from '../../dist/config/latchgate-toml.js';

const loadStandaloneSandboxConfig = (f) => parseStandaloneSandboxConfig(f, readFileSync(f, 'utf8'));

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

test('the standalone file maps like [sandbox.agent]; an unknown key names the file and the nearest key', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-sc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'agent.toml');
  writeFileSync(f, 'ro_mounts = ["/opt"]\npass_env = ["FOO"]\nallow_hosts = ["api.example.com"]\n\n[credentials.x]\nupstream = "https://api.example.com"\nheader = "x-api-key"\nkey_source = "env:X_KEY"\n');
  const c = loadStandaloneSandboxConfig(f);
  assert.deepEqual(c.roMounts, ['/opt']);
  assert.deepEqual(c.passEnv, ['FOO']);
  assert.deepEqual(c.allowHosts, ['api.example.com']);
  assert.equal(c.credentials.get('x').keySource, 'env:X_KEY');
  writeFileSync(f, 'ro_mount = ["/opt"]\n');
  assert.throws(() => loadStandaloneSandboxConfig(f), new RegExp(`${f}: key "ro_mount": unknown key; did you mean "ro_mounts"\\?`));
  writeFileSync(f, '[sandbox.agent]\nro_mounts = []\n');
  assert.throws(() => loadStandaloneSandboxConfig(f), /key "sandbox": unknown key/, 'the file holds the agent keys at its top level');
});

test('latchgate sandbox --sandbox-config: its mounts reach the plan', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-sc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'agent.toml');
  writeFileSync(f, `ro_mounts = [${JSON.stringify(dir)}]\n`);
  const env = { PATH: '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: path.join(dir, 'none') };
  // A mount is a grant: the file is trusted first.
  assert.equal(spawnSync(process.execPath, [CLI, 'trust', f], { env }).status, 0);
  // The workspace: a project inside HOME (HOME itself or /tmp above it would be refused as a home workspace).
  const ws = path.join(dir, 'project');
  mkdirSync(ws);
  chmodSync(dir, 0o755); // root launches the box as nobody, who must reach it
  const r = spawnSync(process.execPath, [CLI, 'sandbox', '--sandbox-config', f, '--workspace', ws, '--dry-run', '--', 'true'], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  const plan = JSON.parse(r.stdout);
  assert.ok(plan.mounts.some((m) => m.kind === 'bind' && m.path === dir && m.readonly));
});
